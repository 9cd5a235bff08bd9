/**
 * `segcause explain` on a volume: a 3D model (volume card) with a NIfTI file or a DICOM series.
 * The method's options are the 2D method's declared options (same flags, same defaults), run by the
 * block engine on boxes; methods without a volume form are refused in one line.
 */
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { VolumeBank } from "../data/volume/volume-bank.js";
import { loadVolumeCase, readStructure, type VolumeCase } from "../data/volume/volume-case.js";
import { fail } from "../errors.js";
import { FAST_SCHEDULE } from "../explain/adaptive.js";
import { getMethod, methodNames } from "../explain/catalog.js";
import { resolveOptions } from "../explain/methods.js";
import { explainVolumeBlocks, mean, planBoxes, type VolumeAttribution, type VolumeBlockSpec, volumeTarget } from "../explain/volume/engine.js";
import type { Device } from "../model/device.js";
import type { VolumeCard } from "../model/volume-card.js";
import { VolumeModel } from "../model/volume-model.js";
import { parseScale } from "../report/scale.js";
import { type WrittenVolume, writeVolumeAttribution } from "../report/volume-write.js";
import type { OutcomeName } from "../target/outcome.js";
import { parseVolumeRoi } from "../target/volume-roi.js";
import type { VolumeTargetSpec } from "../target/volume-target.js";
import { checkOutputFolder, claimOutputDir } from "../util/files.js";
import { markResumable } from "../util/interrupt.js";
import { type FolderLock, lockFolder } from "../util/lock.js";
import { t975 } from "../util/tdist.js";
import { noteReplaced } from "./output.js";

/** The methods that run on volumes, and what each does there. */
export const VOLUME_METHODS: Record<string, string> = {
  zero: "each box set to raw intensity --fill (default 0) once, normalised as the volume is",
  occlusion: "sliding box (--block, --stride) filled with a constant raw intensity or the volume mean; overlaps averaged",
  pdcr: "boxes replaced by natural boxes of a volume bank; fast schedule (octree screening, stratified draws) or --schedule paper (S=3, N=50, tau)",
};

export interface VolumeExplainFlags {
  model: string;
  image: string;
  card?: string;
  /** execution provider (default cpu) */
  device?: Device;
  mask?: string;
  label?: string;
  series?: string;
  roi?: string;
  roiMask?: string;
  bank?: string;
  out: string;
  method: string;
  seed: number;
  outcome: OutcomeName;
  reference: "auto" | "ground-truth" | "prediction";
  batchSize?: number | "auto";
  threads?: number | "auto";
  /** the mosaic's colour scale (max, pNN, fixed:V), as for 2D maps */
  colourScale?: string;
  [option: string]: unknown;
}

export interface VolumeExplainResult {
  attribution: VolumeAttribution;
  written: WrittenVolume;
  kase: VolumeCase;
}

/** Flags of 2D runs only: given with a volume they would be silently ignored, so they are refused. */
const IMAGE_ONLY = [
  "workers",
  "inputSize",
  "channels",
  "scale",
  "mean",
  "std",
  "resize",
  "layout",
  "outputLayout",
  "outputKind",
  "channel",
  "threshold",
];

/** A bank cut under another normalisation or spacing would paste out-of-range content: refused. */
function checkBankForCard(bank: VolumeBank, card: VolumeCard, path: string): void {
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  if (!same(bank.header.normalisation, card.input.normalisation) || !same(bank.header.spacing, card.input.spacing))
    fail(
      `bank ${path} was cut with ${JSON.stringify(bank.header.normalisation)} at ${bank.header.spacing.join("x")} mm, the model's card says ${JSON.stringify(card.input.normalisation)} at ${card.input.spacing.join("x")} mm`,
      "build the bank again with `segcause bank build --model <this model>`",
    );
}

export async function runVolumeExplain(f: VolumeExplainFlags, common: ReadonlySet<string>): Promise<VolumeExplainResult> {
  const scale = parseScale(f.colourScale ?? "max");
  if (!(f.method in VOLUME_METHODS)) {
    const known = methodNames().includes(f.method);
    fail(
      `${known ? `method ${f.method} does not run on volumes yet` : `unknown method '${f.method}'`}`,
      `use --method ${Object.keys(VOLUME_METHODS).join(", ")} on a volume (see \`segcause methods\`)`,
    );
  }
  const def = getMethod(f.method);
  const given = Object.fromEntries(Object.entries(f).filter(([k, v]) => !common.has(k) && !["label", "series"].includes(k) && v !== undefined));
  const o = resolveOptions(def, given);
  if (!f.roi && !f.roiMask) fail("no RoI given", "pass --roi z,y,x,d,h,w (voxels of the input volume) or --roi-mask labels.nii.gz (with --label)");
  if (f.roi && f.roiMask) fail("both --roi and --roi-mask are given", "pass only one of them");
  if (f.label !== undefined && !f.mask && !f.roiMask)
    fail("--label is given without a label map", "pass --mask and/or --roi-mask labels.nii.gz with --label");
  const roiBox = f.roi ? parseVolumeRoi(f.roi) : undefined;
  if (f.method === "pdcr" && !f.bank)
    fail(
      "pdcr needs a volume bank of natural boxes",
      "build one with `segcause bank build --images <volume manifest.json> --model <3D model> --patch-size 8 --out bank.scvbank`, then pass --bank",
    );
  if (f.method === "pdcr" && o.schedule === "fast" && (o.maxTime as number) > 0)
    fail("--max-time does not apply to volumes yet", "bound the run with --max-passes instead");
  if (f.method === "pdcr" && o.schedule === "fast" && !((o.samples as number) >= FAST_SCHEDULE.strata))
    fail(
      `the fast schedule draws boxes in rounds of ${FAST_SCHEDULE.strata}, so --samples must be >= ${FAST_SCHEDULE.strata}, got ${o.samples}`,
      `use --samples ${FAST_SCHEDULE.strata} or more, or --schedule paper`,
    );
  if (f.method === "occlusion" && o.fillKind === "blur")
    fail("occlusion with --fill-kind blur does not run on volumes yet", "use --fill-kind constant or mean on volumes");
  checkOutputFolder(f.out, "explain");
  noteReplaced(f.out, f.quiet === true);
  markResumable("checkpoints");
  const threads = typeof f.threads === "number" ? f.threads : undefined;
  const model = await VolumeModel.load(f.model, { card: f.card, threads, device: f.device });
  let lock: FolderLock | undefined;
  try {
    const bank = f.bank ? await VolumeBank.load(f.bank) : undefined;
    if (bank) checkBankForCard(bank, model.card, f.bank!);
    const kase = await loadVolumeCase(model, f.image, { mask: f.mask, label: f.mask ? f.label : undefined, seriesUid: f.series });
    const roi: VolumeTargetSpec["roi"] = roiBox ?? { mask: (await readStructure(f.roiMask!, kase.volume, f.image, f.label)).mask, name: f.roiMask! };
    const target: VolumeTargetSpec = { roi, outcome: f.outcome, reference: f.reference };
    const spec = methodSpec(f.method, o, kase, bank);
    const batchSize = typeof f.batchSize === "number" ? f.batchSize : undefined;
    // The RoI, the reference and the boxes are checked before the folder is claimed.
    const resolved = await volumeTarget(model, kase, target);
    planBoxes(kase, resolved, spec);
    claimOutputDir(f.out, "explain");
    lock = lockFolder(f.out, { what: `--out ${f.out} is being written` });
    const attribution = await explainVolumeBlocks(model, kase, resolved, {
      ...spec,
      seed: f.seed,
      batchSize,
      checkpointPath: join(f.out, ".checkpoint.json"),
    });
    const written = await writeVolumeAttribution(attribution, kase, f.out, { scale });
    await rm(join(f.out, ".checkpoint.json"), { force: true });
    return { attribution, written, kase };
  } finally {
    lock?.release();
    await model.release();
  }
}

/** The engine settings of a method from its resolved 2D options. */
function methodSpec(
  method: string,
  o: Record<string, unknown>,
  kase: VolumeCase,
  bank: VolumeBank | undefined,
): Omit<VolumeBlockSpec, "seed" | "batchSize"> {
  const block = o.block as number;
  const tau = o.tau as number;
  switch (method) {
    case "zero": {
      const raw = o.fill as number;
      return {
        method,
        block,
        estimator: { screen: 1, samples: 0, tau },
        intervention: { kind: "constant", value: kase.normalise(raw), describe: { kind: "constant", raw, normalised: kase.normalise(raw) } },
        settings: { fill: raw },
      };
    }
    case "occlusion": {
      const kind = o.fillKind as string;
      const raw = kind === "mean" ? mean(kase.volume.data) : (o.fill as number);
      return {
        method,
        block,
        stride: o.stride as number,
        estimator: { screen: 1, samples: 0, tau },
        intervention: { kind: "constant", value: kase.normalise(raw), describe: { kind, raw, normalised: kase.normalise(raw) } },
        settings: { fillKind: kind, fill: raw },
      };
    }
    default: {
      const { bank: used, removed } = bank!.without(kase.imageSha256);
      if (used.count === 0)
        fail("the bank holds only boxes of the volume explained", "build the bank from other volumes of the data set (e.g. --splits train)");
      const spec: Omit<VolumeBlockSpec, "seed" | "batchSize"> = {
        method,
        block,
        estimator: { screen: o.screen as number, samples: o.samples as number, tau },
        intervention: { kind: "bank", bank: used },
        adaptive:
          o.schedule === "fast"
            ? { ...FAST_SCHEDULE, tau, maxSamples: o.samples as number, fidelity: o.mapNoise as number, maxPasses: o.maxPasses as number }
            : undefined,
        settings: { schedule: o.schedule },
      };
      if (removed > 0) kase.notes.push(`${removed} boxes of the bank came from the volume explained and were left out`);
      return spec;
    }
  }
}

export function checkNoImageFlags(f: Record<string, unknown>): void {
  const given = IMAGE_ONLY.filter((k) => f[k] !== undefined);
  if (given.length)
    fail(
      `--${given[0].replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} applies to 2D images; a volume model's card states its input`,
      "drop the flag (set the volume model's settings in its card)",
    );
}

export function describeVolumeResult(r: VolumeExplainResult): string {
  const a = r.attribution;
  const top = [...a.units]
    .filter((u) => u.effect < 0)
    .sort((x, y) => x.effect - y.effect)
    .slice(0, 3);
  const toVolume = (u: (typeof a.units)[number]) => {
    const p = r.kase.placement;
    return `(${u.z - p.offset[2]},${u.y - p.offset[1]},${u.x - p.offset[0]})`;
  };
  const nonzero = a.units.filter((u) => u.effect !== 0).length;
  const lines = [
    `${a.method} map of ${r.kase.id} (${a.dims.join("x")} voxels): RoI ${a.roi}`,
    `  outcome: ${a.outcome} inside the RoI vs the ${a.reference === "ground-truth" ? "ground-truth mask" : "model's own unperturbed prediction"}; base = ${a.baseOutcome.toFixed(3)}`,
    `  ${a.units.length} boxes of ${(a.provenance.settings as { block: number }).block}³ voxels (${a.roiCells} overlapping the RoI not explained); ${nonzero} with a non-zero effect${a.tau > 0 ? ` (|mean Δ| >= τ = ${a.tau})` : ""}; ${a.forwardPasses} forward passes in ${(a.wallMs / 1000).toFixed(1)} s`,
  ];
  const withCi = top.some((u) => u.samples > 1);
  if (top.length)
    lines.push(
      `  strongest support${withCi ? " (effect ± half-width of its own 95% interval, uncorrected)" : ""}: ${top.map((u) => `box at z,y,x ${toVolume(u)} ${u.effect.toFixed(2)}${u.samples > 1 ? `±${(t975(u.dof ?? u.samples - 1) * u.stderr).toFixed(2)}` : ""}`).join(", ")}`,
    );
  for (const n of a.notes) lines.push(`  note: ${n}`);
  lines.push(`  wrote ${Object.keys(r.written.files).join(", ")} to ${r.written.dir}`);
  return lines.join("\n");
}

export function volumeJson(r: VolumeExplainResult): Record<string, unknown> {
  const a = r.attribution;
  return {
    method: a.method,
    case: r.kase.id,
    dims: a.dims,
    spacing: a.spacing,
    baseOutcome: a.baseOutcome,
    outcome: a.outcome,
    reference: a.reference,
    roi: a.roi,
    units: a.units.length,
    roiCells: a.roiCells,
    forwardPasses: a.forwardPasses,
    wallMs: a.wallMs,
    notes: a.notes,
    files: r.written.files,
  };
}
