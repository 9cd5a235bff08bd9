/**
 * `segcause explain` on a volume: a 3D model (volume card) with a NIfTI file or a DICOM series.
 * The method's options are the 2D method's declared options (same flags, same defaults); the method's
 * volume form in the registry (`volume` in its declaration) runs it; methods without one are refused
 * in one line naming those that run on volumes.
 */
import { rmSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { checkBankForCard, VolumeBank } from "../data/volume/volume-bank.js";
import { boxCornerOnInput, loadVolumeCase, readStructure, type VolumeCase } from "../data/volume/volume-case.js";
import { fail } from "../errors.js";
import { getMethod, methodNames, volumeMethodNames, windowedMethodNames } from "../explain/catalog.js";
import type { VolumeForm, VolumeRun } from "../explain/methods.js";
import { resolveOptions } from "../explain/methods.js";
import { type BoxUnitName, describeSize } from "../explain/volume/box-size.js";
import { costLine, measurePassMs, plannedCost } from "../explain/volume/cost.js";
import { VOLUME_BATCH_SIZE, type VolumeAttribution, type VolumePartialMap, volumeTarget } from "../explain/volume/engine.js";
import { RunBound, type RunBoundSettings, RunStopped } from "../explain/volume/run-bound.js";
import type { CardOverrides } from "../model/card.js";
import type { Device } from "../model/device.js";
import { SliceModel } from "../model/slice-model.js";
import { isVolumeModel, refuseCardless3d } from "../model/volume-card.js";
import { VolumeModel, type VolumeNet } from "../model/volume-model.js";
import { dropShards, passesTime, recordQueue } from "../queue/remote-explain.js";
import { DEFAULT_SHARDS } from "../queue/shards.js";
import { openVolumeShardQueue, QUEUE_VOLUME_FIX, unshardableVolume, type VolumeShardQueue } from "../queue/volume-enqueue.js";
import { parseScale } from "../report/scale.js";
import { type WrittenVolume, writeVolumeAttribution } from "../report/volume-write.js";
import type { OutcomeName } from "../target/outcome.js";
import type { VolumeRoiBox } from "../target/volume-roi.js";
import { parseVolumeRoi } from "../target/volume-roi.js";
import type { VolumeTargetSpec } from "../target/volume-target.js";
import { checkOutputFolder, takeOutputFolder } from "../util/files.js";
import { markResumable } from "../util/interrupt.js";
import type { FolderLock } from "../util/lock.js";
import { type ProgressListener, stderrProgress } from "../util/progress.js";
import { t975 } from "../util/tdist.js";
import { emit, noteReplaced, type OutputFlags } from "./output.js";

export interface VolumeExplainFlags {
  model: string;
  image: string;
  card?: string;
  /** execution provider (default cpu) */
  device?: Device;
  mask?: string;
  label?: string;
  series?: string;
  /** a 2D model slice by slice: its 2D card flags (--channel, --output-kind, ...), which win over its card */
  cardOverrides?: CardOverrides;
  /** a 2D model slice by slice: the voxel axis the slices are cut across (default the card's, else k) */
  sliceAxis?: "i" | "j" | "k";
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

  /** --block and --stride in millimetres (default) or voxels */
  boxUnit?: BoxUnitName;
  /** a progress display on stderr (the caller folds --no-progress and --quiet into it) */
  progress?: boolean;
  /** no cost line or other stderr lines */
  quiet?: boolean;
  /** Redis URL: the map's samples are computed by `segcause worker`s, in `shards` shards */
  queue?: string;
  shards?: number;
  [option: string]: unknown;
}

export interface VolumeExplainResult {
  attribution: VolumeAttribution;
  written: WrittenVolume;
  kase: VolumeCase;
}

/** A run that --max-passes / --max-time stopped before its map was done (only the checkpoint is written). */
export interface VolumeExplainStopped {
  stopped: RunStopped;
}

/**
 * --max-passes and --max-time on volumes: the fast schedule fits its map to them (as in 2D); a fixed
 * schedule (paper, zero, occlusion) stops at them and a rerun continues from the checkpoint.
 */
function runBounds(f: Record<string, unknown>): RunBoundSettings {
  const maxPasses = (f.maxPasses as number | undefined) ?? 0;
  const maxSeconds = (f.maxTime as number | undefined) ?? 0;
  if (!Number.isInteger(maxPasses) || maxPasses < 0)
    fail(`--max-passes must be an integer >= 0 (0 = none), got ${maxPasses}`, "use --max-passes 500");
  if (!(Number.isFinite(maxSeconds) && maxSeconds >= 0)) fail(`--max-time must be seconds >= 0 (0 = none), got ${maxSeconds}`, "use --max-time 60");
  return { maxPasses, maxSeconds };
}

/** The image flags a 2D model slice by slice cannot take (the others override its card). */
const SLICE_REFUSED = ["workers", "resize"];

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

/** A volume method's form and options, resolved and checked before any file is read (a local run and a queue worker alike). */
export interface VolumeMethod {
  name: string;
  form: VolumeForm;
  /** the options as given (the method's flags), which a queue's worker resolves again */
  given: Record<string, unknown>;
  options: Record<string, unknown>;
  /** pdcr's fast schedule (it takes --max-passes/--max-time as its budget) */
  fast: boolean;
  bounds: RunBoundSettings;
}

export function volumeMethod(method: string, given: Record<string, unknown>): VolumeMethod {
  const def = methodNames().includes(method) ? getMethod(method) : undefined;
  const form = def?.volume;
  if (!form)
    fail(
      `${def ? `method ${method} does not run on volumes yet` : `unknown method '${method}'`}`,
      `use --method ${volumeMethodNames().join(", ")} on a volume (see \`segcause methods\`)`,
    );
  // The bounds are the fast schedule's own options; every other volume run takes them as a stop.
  const bounds = runBounds(given);
  const { maxPasses: _p, maxTime: _t, ...fixed } = given;
  const fast = method === "pdcr" && resolveOptions(def, fixed).schedule === "fast";
  const options = resolveOptions(def, fast ? given : fixed);
  return { name: method, form: form as VolumeForm, given, options, fast, bounds };
}

/** What a volume run reads: a local run's flags, or the files a queue worker fetched for its shard. */
export interface VolumeInputs {
  model: string;
  image: string;
  card?: string;
  device?: Device;
  mask?: string;
  label?: string;
  series?: string;
  cardOverrides?: CardOverrides;
  sliceAxis?: "i" | "j" | "k";
  roi?: string;
  roiMask?: string;
  /** the RoI structure's name (it enters the checkpoint key): a worker's is the enqueuer's --roi-mask */
  roiName?: string;
  bank?: string;
  batchSize?: number | "auto";
  threads?: number | "auto";
  boxUnit?: BoxUnitName;
  outcome: OutcomeName;
  reference: "auto" | "ground-truth" | "prediction";
}

/** The flags' checks that read no file; the RoI box, and whether a 2D model runs slice by slice. */
export function checkVolumeInputs(f: VolumeInputs, m: VolumeMethod): { roiBox?: VolumeRoiBox; sliced: boolean } {
  if (!f.roi && !f.roiMask) fail("no RoI given", "pass --roi z,y,x,d,h,w (voxels of the input volume) or --roi-mask labels.nii.gz (with --label)");
  if (f.roi && f.roiMask) fail("both --roi and --roi-mask are given", "pass only one of them");
  if (f.label !== undefined && !f.mask && !f.roiMask)
    fail("--label is given without a label map", "pass --mask and/or --roi-mask labels.nii.gz with --label");
  const roiBox = f.roi ? parseVolumeRoi(f.roi) : undefined;
  // A model whose card is not a volume card is a 2D model: it explains the volume slice by slice.
  const sliced = !isVolumeModel(f.model, f.card);
  if (sliced) refuseCardless3d(f.model, f.card);
  if (!sliced && f.sliceAxis !== undefined)
    fail("--slice-axis applies to a 2D model run slice by slice; a 3D model takes the whole volume", "drop --slice-axis");
  if (sliced && !m.form.slices)
    fail(
      `${m.name} does not run slice by slice (a 2D model on a volume): only the box methods do`,
      "use --method zero, occlusion or pdcr with a 2D model, or give a 3D model for this method",
    );
  m.form.check?.(m.options, { bank: f.bank !== undefined });
  return { roiBox, sliced };
}

export interface OpenedVolumeRun {
  model: VolumeNet;
  kase: VolumeCase;
  resolved: Awaited<ReturnType<typeof volumeTarget>>;
  run: VolumeRun;
  batchSize?: number;
}

/**
 * Loads the model, the bank and the volume, runs the unperturbed pass (the Target) and plans the
 * method: every check on the inputs, before anything is written. The caller releases `model`.
 */
export async function openVolumeRun(f: VolumeInputs, m: VolumeMethod, checked: ReturnType<typeof checkVolumeInputs>): Promise<OpenedVolumeRun> {
  const threads = typeof f.threads === "number" ? f.threads : undefined;
  const model: VolumeNet = checked.sliced
    ? await SliceModel.load(f.model, { card: f.card, overrides: f.cardOverrides, threads, device: f.device, axis: f.sliceAxis })
    : await VolumeModel.load(f.model, { card: f.card, threads, device: f.device });
  try {
    const bank = f.bank ? await VolumeBank.load(f.bank) : undefined;
    const kase = await loadVolumeCase(model, f.image, { mask: f.mask, label: f.mask ? f.label : undefined, seriesUid: f.series });
    if (model instanceof SliceModel) {
      // what the 2D card did not state (a model without a card) is said, as for a 2D run
      kase.notes.unshift(sliceNote(model, kase), ...sliceAssumptions(model));
    }
    if (bank) checkBankForCard(bank, model.card, f.bank!, model.slicing ? { axis: model.slicing.axis, modelPath: model.path } : undefined);
    const roiName = f.roiName ?? f.roiMask!;
    const roi: VolumeTargetSpec["roi"] = checked.roiBox ?? {
      mask: (await readStructure(f.roiMask!, kase.volume, f.image, f.label)).mask,
      // the labels name the structure (and so enter the checkpoint key, with the RoI's bounds)
      name: f.label === undefined ? roiName : `${roiName} (label ${f.label})`,
    };
    const target: VolumeTargetSpec = { roi, outcome: f.outcome, reference: f.reference };
    const batchSize = typeof f.batchSize === "number" ? f.batchSize : undefined;
    const resolved = await volumeTarget(model, kase, target, batchSize);
    const p = kase.placement;
    if (p.kind === "sliding" && !m.form.windows && p.box.some((b, a) => b > p.patch[a]))
      fail(
        `${m.name} does not run over sliding windows${m.form.noWindows ? ` (${m.form.noWindows})` : " yet"}, and this volume (${[...p.box].reverse().join("x")} voxels DxHxW in the model's space, padded to at least one window) needs more than one ${[...p.patch].reverse().join("x")} window`,
        `use --method ${windowedMethodNames().join(", ")} on this volume, or a card whose box holds the whole volume`,
      );
    const run = await m.form.plan({ model, kase, target: resolved, bank, boxUnit: f.boxUnit }, m.options);
    if (!run.blockSpec && (m.bounds.maxPasses > 0 || m.bounds.maxSeconds > 0))
      fail(
        `--max-passes and --max-time bound the box methods on volumes (zero, occlusion, pdcr); ${m.name} does not take them`,
        "drop them (rise's cost is --masks; the gradient methods' is a few passes)",
      );
    return { model, kase, resolved, run, batchSize };
  } catch (e) {
    await model.release();
    throw e;
  }
}

export async function runVolumeExplain(
  f: VolumeExplainFlags,
  common: ReadonlySet<string>,
  hooks: { onProgress?: ProgressListener; onPartialMap?: (p: VolumePartialMap) => void } = {},
): Promise<VolumeExplainResult | VolumeExplainStopped> {
  const scale = parseScale(f.colourScale ?? "max");
  const given = Object.fromEntries(
    Object.entries(f).filter(
      ([k, v]) => !common.has(k) && !["label", "series", "boxUnit", "sliceAxis", "cardOverrides"].includes(k) && v !== undefined,
    ),
  );
  const m = volumeMethod(f.method, given);
  const checked = checkVolumeInputs(f, m);
  if (f.queue) checkVolumeQueueable(f, m);
  checkOutputFolder(f.out, "explain");
  noteReplaced(f.out, f.quiet === true);
  markResumable("checkpoints");
  const { model, kase, resolved, run, batchSize } = await openVolumeRun(f, m, checked);
  let lock: FolderLock | undefined;
  let queue: VolumeShardQueue | undefined;
  try {
    const checkpointPath = join(f.out, ".checkpoint.json");
    // --queue: the workers compute the samples into this run's checkpoint; the run below then computes none.
    // An unreachable Redis or an input it cannot carry stops here, before the folder is taken.
    queue = f.queue
      ? await openVolumeShardQueue({
          url: f.queue,
          shards: f.shards ?? DEFAULT_SHARDS,
          out: f.out,
          checkpointPath,
          model,
          inputs: f,
          method: m,
          batchSize,
        })
      : undefined;
    if (run.blockSpec && !f.quiet && !queue)
      process.stderr.write(
        `${costLine(plannedCost(kase, resolved, run.blockSpec), await measurePassMs(model, kase.input, batchSize ?? VOLUME_BATCH_SIZE))}\n`,
      );
    lock = takeOutputFolder(f.out, "explain");
    // an earlier result's manifest would make a stopped or failed run's folder look complete
    rmSync(join(f.out, "manifest.json"), { force: true });
    const progress = f.progress ? stderrProgress() : undefined;
    const queued = await queue?.gather(hooks.onProgress ?? progress);
    let attribution: VolumeAttribution;
    try {
      attribution = await run({
        seed: f.seed,
        batchSize,
        checkpointPath,
        onProgress: hooks.onProgress ?? progress,
        onPartialMap: hooks.onPartialMap,
        bound: m.fast ? undefined : new RunBound(m.bounds),
        ...(queued ? { replayOnly: true, onReplayMiss: () => dropShards(f.out) } : {}),
      });
    } catch (e) {
      if (e instanceof RunStopped) return { stopped: e };
      throw e;
    } finally {
      progress?.end();
    }
    if (queued) recordQueue(attribution, queued);
    const written = await writeVolumeAttribution(attribution, kase, f.out, { scale });
    await rm(checkpointPath, { force: true });
    if (queued) dropShards(f.out);
    return { attribution, written, kase };
  } finally {
    lock?.release();
    await queue?.close();
    await model.release();
  }
}

/** What --queue cannot take on a volume, refused before anything is read, written or queued. */
function checkVolumeQueueable(f: VolumeExplainFlags, m: VolumeMethod): void {
  const problem = unshardableVolume(m);
  if (problem) fail(problem, QUEUE_VOLUME_FIX);
  if (m.bounds.maxPasses > 0 || m.bounds.maxSeconds > 0)
    fail("--max-passes and --max-time stop a local run; a queued map is computed whole", "drop them, or run without --queue");
  if (f.device && f.device !== "cpu")
    fail(`--device ${f.device} does not apply with --queue (the workers run on their CPUs)`, "drop --device, or run without --queue");
  if (f.cardOverrides && Object.values(f.cardOverrides).some((v) => v !== undefined))
    fail(
      "card flags (--channel, --output-kind, ...) do not reach the queue's workers",
      "write them into a card file and pass it with --card, or run without --queue",
    );
}

/** What the 2D card did not state, but for the resize filter (slices are not resized). */
function sliceAssumptions(model: SliceModel): string[] {
  const r = model.model2d.resolved;
  return r.assumptions.filter((a) => a !== r.assumed.resize).map((a) => `assumed: ${a}`);
}

/** How the volume met the 2D model, for the summary and the result's notes. */
function sliceNote(model: SliceModel, kase: VolumeCase): string {
  const { axis, window } = model.slicing;
  const [nx, ny, nz] = kase.space.dims;
  return `a 2D model slice by slice: ${nz} slices across voxel axis ${axis} (${ny}x${nx} each, rows x columns; the model takes ${model.card.input.height}x${model.card.input.width}, slices are centred or tiled, not resized), each volume windowed to its ${window.low}–${window.high} percentiles → pixels 0..255, then the 2D card's scale/mean/std; the voxels are taken as stored (axes ${kase.space.input.axes}, not reoriented: a model trained on slices in another orientation sees them turned or mirrored)`;
}

/**
 * `model` "volume": a 3D model, whose card states everything. "slices": a 2D model run slice by slice
 * takes the 2D card flags as for images (they override its card: see cardOverrides), but for
 * --resize (slices are not resized) and --workers (one session runs the slices).
 */
export function checkNoImageFlags(f: Record<string, unknown>, model: "volume" | "slices" = "volume"): void {
  const flag = (k: string) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
  const given = IMAGE_ONLY.filter((k) => f[k] !== undefined && (model === "volume" || SLICE_REFUSED.includes(k)));
  if (!given.length) return;
  if (model === "volume")
    fail(
      `${flag(given[0])} applies to 2D images; a volume model's card states its input`,
      "drop the flag (set the volume model's settings in its card)",
    );
  fail(
    `${flag(given[0])} does not apply to a 2D model run slice by slice (${given[0] === "resize" ? "slices are centred or tiled at their own size, never resized" : "one session runs the slices; set --threads"})`,
    "drop the flag",
  );
}

export function describeVolumeResult(r: VolumeExplainResult): string {
  const a = r.attribution;
  const top = [...a.units]
    .filter((u) => u.effect < 0)
    .sort((x, y) => x.effect - y.effect)
    .slice(0, 3);
  // the box's corner in voxels of the input volume, as --roi is given
  const toVolume = (u: (typeof a.units)[number]) => `(${boxCornerOnInput(r.kase, u.z, u.y, u.x, [u.width, u.height, u.depth]).join(",")})`;
  const nonzero = a.units.filter((u) => u.effect !== 0).length;
  const lines = [
    `${a.method} map of ${r.kase.id} (${a.dims.join("x")} voxels): RoI ${a.roi}`,
    `  outcome: ${a.outcome} inside the RoI vs the ${a.reference === "ground-truth" ? "ground-truth mask" : "model's own unperturbed prediction"}; base = ${a.baseOutcome.toFixed(3)}`,
  ];
  if (a.unitKind === "voxel") lines.push(...voxelLines(a));
  else
    lines.push(
      `  ${a.units.length} boxes of ${describeSize(blockOf(a))} voxels (${a.roiCells} overlapping the RoI not explained); ${nonzero} with a non-zero effect${a.tau > 0 ? ` (|mean Δ| >= τ = ${a.tau})` : ""}; ${a.samples} samples, ${a.forwardPasses} forward passes${a.windows ? (a.windows.sliceAxis ? ` (2D passes, slice by slice along ${a.windows.sliceAxis})` : ` (windows of ${a.windows.patch.join("x")})`) : ""} ${passesTime(a)}`,
    );
  const withCi = top.some((u) => u.samples > 1);
  if (top.length)
    lines.push(
      `  strongest support${withCi ? " (effect ± half-width of its own 95% interval, uncorrected)" : ""}: ${top.map((u) => `box at z,y,x ${toVolume(u)} ${u.effect.toFixed(2)}${u.samples > 1 ? `±${(t975(u.dof ?? u.samples - 1) * u.stderr).toFixed(2)}` : ""}`).join(", ")}`,
    );
  for (const n of a.notes) lines.push(`  note: ${n}`);
  lines.push(`  wrote ${Object.keys(r.written.files).join(", ")} to ${r.written.dir}`);
  return lines.join("\n");
}

/** The summary of a voxel map (gradient methods, RISE): its units, range and passes; no boxes. */
function voxelLines(a: VolumeAttribution): string[] {
  let lo = Infinity,
    hi = -Infinity;
  for (const v of a.map) if (Number.isFinite(v)) (lo = Math.min(lo, v)), (hi = Math.max(hi, v));
  const backward = a.backwardPasses ? ` + ${a.backwardPasses} backward` : "";
  return [
    `  a value per voxel${a.signed ? "" : " (unsigned)"}: ${a.valueUnits}; range ${lo.toPrecision(3)} .. ${hi.toPrecision(3)}`,
    `  ${a.forwardPasses} forward${backward} passes ${passesTime(a)}`,
  ];
}

/** The attribution's box size (D, H, W), from its settings (one number for a cube). */
function blockOf(a: VolumeAttribution): number[] {
  const b = (a.provenance.settings as { block: number | number[] }).block;
  return typeof b === "number" ? [b, b, b] : b;
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
    unitKind: a.unitKind,
    signed: a.signed,
    units: a.units.length,
    roiCells: a.roiCells,
    samples: a.samples,
    forwardPasses: a.forwardPasses,
    backwardPasses: a.backwardPasses,
    ...(a.windows ? { windows: a.windows } : {}),
    wallMs: a.wallMs,
    notes: a.notes,
    files: r.written.files,
  };
}

/** Prints a volume run's summary (or, for a bounded run that stopped, what is kept and how to continue). */
export function emitVolume(f: OutputFlags, r: VolumeExplainResult | VolumeExplainStopped, extra: Record<string, unknown> = {}): void {
  if ("stopped" in r) {
    const s = r.stopped;
    emit(
      f,
      () => s.describe(),
      () => ({
        ...extra,
        complete: false,
        stoppedAt: s.bound,
        ranPasses: s.ranPasses,
        keptSamples: s.keptSamples,
        donePasses: s.donePasses,
        checkpoint: s.checkpointPath,
        plan: s.plan ?? null,
      }),
    );
    return;
  }
  emit(
    f,
    () => describeVolumeResult(r),
    () => ({ ...extra, complete: true, ...volumeJson(r) }),
    r.attribution.notes,
  );
}
