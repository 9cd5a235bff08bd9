/** `segcause components`: causal effects of network components on the RoI outcome. */

import { statSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { Command } from "commander";
import { type Case, loadCase } from "../data/case.js";
import { IMAGE_FORMATS, listImages } from "../data/image.js";
import { casesInSplits, readManifest } from "../data/manifest.js";
import { looksLikeVolume } from "../data/volume/volume-case.js";
import { fail } from "../errors.js";
import {
  ABLATIONS,
  type Ablation,
  COMPONENT_OPTIONS,
  DONOR_SAMPLINGS,
  type DonorSampling,
  explainComponents,
  UNIT_LEVELS,
  type UnitLevel,
} from "../explain/components.js";
import type { Device } from "../model/device.js";
import { Model } from "../model/model.js";
import { isVolumeModel } from "../model/volume-card.js";
import { VolumeModel } from "../model/volume-model.js";
import { type ComponentLevel, listComponents } from "../onnx/surgery.js";
import { spatialPngs, writeComponentEffects } from "../report/components.js";
import { countLines, type Evidence, unitEvidence } from "../report/counts.js";
import { OUTCOMES, type OutcomeName } from "../target/outcome.js";
import { parseRoi } from "../target/roi.js";
import { checkOutputFolder, takeOutputFolder } from "../util/files.js";
import { sha256File } from "../util/hash.js";
import { markResumable } from "../util/interrupt.js";
import type { FolderLock } from "../util/lock.js";
import { type ProgressListener, stderrProgress } from "../util/progress.js";
import { Rng } from "../util/rng.js";
import { STREAM } from "../util/streams.js";
import { runVolumeComponents } from "./components-volume.js";
import { addCardFlags, addDeviceFlag, type CardFlags, cardOverrides, fixedOrUndefined, int, intAtLeast, num, oneOf, seed } from "./options.js";
import { addOutputFlags, emit, noteReplaced, type OutputFlags, showProgress } from "./output.js";
import { type ComponentSummary, componentsJson } from "./summary.js";

export interface ComponentFlags extends CardFlags {
  model: string;
  device?: Device;
  image?: string;
  mask?: string;
  roi?: string;
  /** volumes only */
  roiMask?: string;
  label?: string;
  series?: string;
  donors?: string;
  splits: string;
  maxDonors: number;
  level: UnitLevel;
  channelGroup?: number;
  cell?: number;
  tensor?: string[];
  ablation: Ablation;
  donorSampling?: DonorSampling;
  screen: number;
  samples: number;
  tau: number;
  seed: number;
  outcome: OutcomeName;
  batchSize?: number;
  out?: string;
  list?: boolean;
  progress: boolean;
}

function donorPaths(spec: string, splits: string, splitsGiven: boolean): string[] {
  let isDir = false;
  try {
    isDir = statSync(spec).isDirectory();
  } catch {
    fail(`donor source ${spec} does not exist`, "pass a folder of images or a dataset manifest");
  }
  if (
    spec.endsWith(".json") ||
    (isDir &&
      (() => {
        try {
          return statSync(`${spec}/manifest.json`).isFile();
        } catch {
          return false;
        }
      })())
  ) {
    return casesInSplits(
      readManifest(spec),
      splits.split(",").map((s) => s.trim()),
    ).map((c) => c.image);
  }
  if (splitsGiven)
    fail(
      `--splits chooses donors from a dataset manifest, but ${spec} is a folder of images`,
      "drop --splits (every image of the folder is a donor), or pass the manifest as --donors",
    );
  const images = listImages(spec);
  if (images.length === 0)
    fail(`donor folder ${spec} holds no image (${IMAGE_FORMATS})`, "pass a folder of images of the same domain, or a dataset manifest");
  return images;
}

/** --some-flag from someFlag. */
export const flagName = (o: string) => `--${o.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/**
 * The checks of the unit and ablation flags, for images and volumes alike; the donor sampling the
 * flags choose (undefined: the engine's default).
 */
export function checkComponentFlags(f: ComponentFlags, given: (o: string) => boolean): DonorSampling | undefined {
  if (f.channelGroup !== undefined && f.level !== "channel")
    fail("--channel-group only applies to --level channel", "add --level channel --tensor <name>, or drop --channel-group");
  if (f.cell !== undefined && f.level !== "spatial")
    fail("--cell only applies to --level spatial", "add --level spatial --tensor <name>, or drop --cell");
  // Options the chosen ablation would ignore are refused rather than silently dropped.
  for (const o of ["screen", "samples"])
    if (given(o) && f.ablation !== "resample")
      fail(
        `--${o} only applies to --ablation resample (${f.ablation} ablation is deterministic: one pass per component)`,
        `drop --${o}, or use --ablation resample`,
      );
  if (f.donorSampling && f.ablation !== "resample")
    fail(`--donor-sampling only applies to --ablation resample`, "drop --donor-sampling, or use --ablation resample");
  // --screen/--samples set the screened estimator's draws: given alone, they choose random donor draws.
  const donorSampling = f.donorSampling ?? (f.ablation === "resample" && (given("screen") || given("samples")) ? "random" : undefined);
  for (const o of ["screen", "samples"])
    if (given(o) && f.donorSampling === "exact")
      fail(
        `--${o} does not apply to --donor-sampling exact (every unit is evaluated once with each donor)`,
        `drop --${o}, or use --donor-sampling random`,
      );
  if (f.ablation === "zero")
    for (const o of ["donors", "maxDonors", "splits"])
      if (given(o))
        fail(`${flagName(o)} only applies to --ablation resample or mean (zero ablation uses no donors)`, `drop it, or use --ablation resample`);
  for (const o of ["maxDonors", "splits"])
    if (given(o) && !f.donors)
      fail(`${flagName(o)} only applies with --donors (it chooses among the donor images)`, `add --donors <dir|manifest>, or drop ${flagName(o)}`);
  return donorSampling;
}

/** The engine's settings from the flags: one list for images and volumes (the donors differ in kind only). */
export function componentRunOptions<D>(
  f: ComponentFlags,
  donors: D[],
  donorSampling: DonorSampling | undefined,
  onProgress: ProgressListener | undefined,
  checkpointPath: string,
) {
  return {
    level: f.level,
    tensors: f.tensor,
    channelGroup: f.channelGroup,
    cell: f.cell,
    ablation: f.ablation,
    donorSampling,
    donors,
    screen: f.screen,
    samples: f.samples,
    tau: f.tau,
    seed: f.seed,
    batchSize: f.batchSize,
    onProgress,
    checkpointPath,
  };
}

/** Prints a components result (text: the counts and the top five; --json: the summary), for images and volumes. */
export function emitComponents(
  f: OutputFlags & { model: string; out?: string },
  e: ComponentSummary,
  w: { roi: string | undefined; id: string; donors: number; files: string[] },
): void {
  const ev = unitEvidence(e.units);
  const top = e.units
    .map((u, i) => ({ u, ev: ev.perUnit[i] }))
    .sort((a, b) => Math.abs(b.u.effect) - Math.abs(a.u.effect))
    .slice(0, 5);
  const say: Record<Evidence, string> = {
    "excludes-zero": "differs from zero",
    "not-distinguishable": "above τ, not distinguishable from zero",
    "no-interval": "above τ, deterministic",
    "below-tau": "below τ",
    "screened-alone": "cleared by screening",
    "screened-by-group": "cleared by screening",
  };
  emit(
    f,
    () =>
      [
        `components of ${f.model} for RoI ${w.roi} of ${w.id}: ${e.units.length} units, ${e.ablation} ablation${e.ablation !== "zero" ? ` with ${w.donors} donors` : ""}; base ${e.outcome} ${e.baseOutcome.toFixed(3)} vs ${e.reference}`,
        ...countLines({
          signed: true,
          unitKind: "component",
          tau: e.tau,
          units: e.units.length,
          negative: 0,
          positive: 0,
          zero: 0,
          evidence: ev.counts,
        }).map((l) => `  ${l}`),
        ...top.map(
          ({ u, ev: x }) =>
            `  ${u.name}: ATE ${u.effect.toFixed(3)}${Number.isFinite(u.stderr) ? ` ± ${(1.96 * u.stderr).toFixed(3)}` : ""} (${say[x.evidence]})`,
        ),
        ...e.notes.map((n) => `  note: ${n}`),
        ...(e.skipped.length ? [`  skipped ${e.skipped.length} component(s); see manifest.json`] : []),
        `  ${e.forwardPasses} passes in ${(e.wallMs / 1000).toFixed(1)} s; wrote ${w.files.join(", ")} to ${f.out}`,
      ].join("\n"),
    () => componentsJson(e, f.out!, w.files, w.donors),
    e.notes,
  );
}

export function componentsCommand(): Command {
  // The flags' descriptions and defaults come from the declaration; the parsers keep the CLI's messages.
  const O = COMPONENT_OPTIONS;
  const cmd = new Command("components")
    .description("causal effects of network components (stages, blocks, layers or named tensors) on the RoI outcome")
    .requiredOption("--model <file>", "ONNX segmentation model")
    .option("--image <file>", "image to explain, or a volume for a 3D model (.nii/.nii.gz, a DICOM file or series folder)")
    .option(
      "--mask <file>",
      "ground-truth mask (volumes: a label map or DICOM SEG, with --label); without it Dice is against the model's own prediction",
    )
    .option("--roi <r,c,h,w>", "RoI rectangle in model-input pixels; volumes: z,y,x,d,h,w in voxels of the input volume")
    .option("--roi-mask <file>", "volumes: the RoI as a label map on the volume's grid (with --label)")
    .option("--label <n[,n]>", "volumes: the label(s) of the --mask/--roi-mask label map (or DICOM SEG segments) that make the structure")
    .option("--series <uid>", "volumes: the Series Instance UID to read from a DICOM folder holding several series")
    .option(
      "--donors <dir|manifest>",
      "images of the same domain whose activations replace the component's (resample/mean); volumes: a volume data set's manifest or a folder of NIfTI volumes",
    )
    .option("--splits <list>", "manifest splits for donors", "train,val")
    .option("--max-donors <n>", "donor images (or volumes) drawn (seeded) from the source", intAtLeast("max-donors"), 20)
    .option("--level <level>", O.level.description, oneOf("level", UNIT_LEVELS), O.level.default)
    .option("--tensor <name...>", "tensors to intervene on: each its own unit, or the tensor(s) split by --level channel|spatial")
    .option("--channel-group <n>", O.channelGroup.description, intAtLeast("channel-group"))
    .option("--cell <px>", O.cell.description, intAtLeast("cell"))
    .option("--ablation <kind>", O.ablation.description, oneOf("ablation", ABLATIONS), O.ablation.default)
    .option("--donor-sampling <kind>", O.donorSampling.description, oneOf("donor-sampling", DONOR_SAMPLINGS))
    .option("--screen <n>", O.screen.description, int("screen"), O.screen.default)
    .option("--samples <n>", O.samples.description, intAtLeast("samples"), O.samples.default)
    .option("--tau <t>", O.tau.description, num("tau"), O.tau.default)
    .option("--seed <n>", "random seed", seed(), 0)
    .option("--outcome <name>", `RoI outcome: ${OUTCOMES.join(", ")}`, oneOf("outcome", OUTCOMES), "dice")
    .option("--batch-size <n>", "inputs per forward call", intAtLeast("batch-size"))
    .option("--out <dir>", "output folder")
    .option("--list", "only list the components (and their output tensors) at --level")
    .option("--no-progress", "no progress on stderr");
  addOutputFlags(cmd);
  addCardFlags(cmd);
  addDeviceFlag(cmd);
  return cmd.action(async (f: ComponentFlags & OutputFlags, self: Command) => {
    if (f.list) {
      // channel and spatial components live inside one tensor: list the layers whose tensors --tensor can name
      if ((f.level === "channel" || f.level === "spatial") && !f.tensor?.length)
        process.stderr.write(`--level ${f.level} splits one tensor (--tensor <name>); these are the layers and their tensors:\n`);
      const lv: ComponentLevel = f.level === "channel" || f.level === "spatial" ? "layer" : f.level;
      // The model as it runs (layout adapters included), so the names listed are those --tensor takes.
      const model = isVolumeModel(f.model, f.card)
        ? await VolumeModel.load(f.model, { card: f.card, threads: 1 })
        : await Model.load(f.model, { card: f.card, overrides: cardOverrides(f), threads: 1 });
      try {
        const list = listComponents(model.proto(), lv);
        emit(
          f,
          () => list.map((c) => `${c.name}\t${c.outputs.join(" ")}`).join("\n"),
          () => ({ format: "segcause.components-list/1", level: lv, components: list.map((c) => ({ name: c.name, outputs: c.outputs })) }),
        );
      } finally {
        await model.release();
      }
      return;
    }
    const given = (o: string) => self.getOptionValueSource(o) === "cli";
    if (isVolumeModel(f.model, f.card)) return runVolumeComponents(f, given);
    if (f.image && (await looksLikeVolume(f.image)))
      fail(
        `${f.image} is a volume, but ${f.model} is a 2D model (its input is one image)`,
        'run components on volumes with a 3D model whose card declares input.layout "ncdhw" (e.g. models/volumes/unet3d-hippocampus.onnx)',
      );
    for (const o of ["roiMask", "label", "series"] as const)
      if (f[o] !== undefined) fail(`${flagName(o)} applies to volumes explained by a 3D model`, "drop it for a 2D image");
    if (!f.image || !f.roi || !f.out) fail("components needs --image, --roi and --out", "or pass --list to see the components");
    const donorSampling = checkComponentFlags(f, given);
    const roiRect = parseRoi(f.roi);
    checkOutputFolder(f.out, "components");
    noteReplaced(f.out, f.quiet === true);
    markResumable("checkpoints");
    const model = await Model.load(f.model, { card: f.card, overrides: cardOverrides(f), threads: fixedOrUndefined(f.threads), device: f.device });
    let lock: FolderLock | undefined;
    try {
      const kase = await loadCase(model, f.image, f.mask);
      const donors: Case[] = [];
      if (f.donors) {
        // The explained image (by content) is no donor of itself: left out before the seeded draw.
        const all = donorPaths(f.donors, f.splits, given("splits"));
        const paths: string[] = [];
        for (const p of all) if ((await sha256File(p)) !== kase.imageSha256) paths.push(p);
        if (paths.length === 0)
          fail(`every donor image in ${f.donors} is the explained image itself`, "pass other images of the same domain as --donors");
        const picked = new Rng(f.seed, STREAM.donorPick).sampleWithoutReplacement(paths.length, f.maxDonors).sort((a, b) => a - b);
        for (const i of picked) donors.push(await loadCase(model, paths[i]));
      }
      // Finished samples are checkpointed in --out: rerunning the same command after an interruption resumes.
      const checkpointPath = join(f.out, ".checkpoint.json");
      // One writer per folder from here on: the checkpoint, the files and the manifest are this run's.
      lock = takeOutputFolder(f.out, "components");
      const progress = showProgress(f) ? stderrProgress() : undefined;
      const e = await explainComponents(
        model,
        kase,
        { roi: roiRect, outcome: f.outcome },
        componentRunOptions(f, donors, donorSampling, progress, checkpointPath),
      ).finally(() => progress?.end());
      if (lock.note) e.notes.push(lock.note);
      const files = await writeComponentEffects(
        e,
        f.out,
        `${f.ablation} ablation of ${e.level === "tensors" ? "tensors" : `${e.level}s`} · ${kase.id}`,
        e.level === "spatial" ? await spatialPngs(e) : {},
      );
      await rm(checkpointPath, { force: true });
      emitComponents(f, e, { roi: f.roi, id: kase.id, donors: donors.length, files });
    } finally {
      lock?.release();
      await model.release();
    }
  });
}
