/** `segcause explain`: a causal map for one image, model and RoI. */

import { rm } from "node:fs/promises";
import { join } from "node:path";
import { Command } from "commander";
import { type Case, loadCase } from "../data/case.js";
import { IMAGE_FORMATS } from "../data/image.js";
import { PatchBank } from "../data/patchbank.js";
import { looksLikeVolume } from "../data/volume/volume-case.js";
import { fail } from "../errors.js";
import type { Attribution } from "../explain/attribution.js";
import { QUEUE_SCHEDULES_FIX } from "../explain/block-effects.js";
import { allMethods, getMethod, methodNames } from "../explain/catalog.js";
import { flagLabel, kebab, type MethodDefinition, type MethodOption, resolveOptions } from "../explain/methods.js";
import { INCREMENTAL_MODES, type IncrementalMode } from "../explain/roi-executor.js";
import type { RunOptions } from "../explain/run.js";
import { BOX_UNITS } from "../explain/volume/box-size.js";
import type { Device } from "../model/device.js";
import { Model } from "../model/model.js";
import { DEFAULT_BATCH_SIZE } from "../model/runner.js";
import { SLICE_AXES } from "../model/slice-model.js";
import { type ExecutionPlan, tuneExecution } from "../model/tune.js";
import { isVolumeModel } from "../model/volume-card.js";
import type { RemoteCells } from "../queue/remote-cells.js";
import { dropShards, gatherShards, openShardQueue, passesTime, type QueuedMap, recordQueue } from "../queue/remote-explain.js";
import { DEFAULT_SHARDS, unshardable } from "../queue/shards.js";
import { countLines } from "../report/counts.js";
import { parseScale, SCALE_HELP } from "../report/scale.js";
import { type WrittenOutputs, writeAttribution } from "../report/write.js";
import { OUTCOMES, type OutcomeName } from "../target/outcome.js";
import { parseRoi } from "../target/roi.js";
import { loadRoiMask } from "../target/roi-mask.js";
import type { TargetSpec } from "../target/target.js";
import { checkOutputFolder, takeOutputFolder } from "../util/files.js";
import { markResumable } from "../util/interrupt.js";
import type { FolderLock } from "../util/lock.js";
import { getOrInsert } from "../util/maps.js";
import { type ProgressListener, stderrProgress } from "../util/progress.js";
import { t975 } from "../util/tdist.js";
import { checkNoImageFlags, emitVolume, runVolumeExplain, type VolumeExplainResult, type VolumeExplainStopped } from "./explain-volume.js";
import {
  addCardFlags,
  addDeviceFlag,
  CARD_FLAG_KEYS,
  type CardFlags,
  cardOverrides,
  fixedOrUndefined,
  intAtLeast,
  intOrAuto,
  methodOptionParser,
  oneOf,
  seed,
} from "./options.js";
import { addOutputFlags, emit, noteReplaced, type OutputFlags, showProgress } from "./output.js";
import { explainJson } from "./summary.js";

export interface ExplainFlags extends CardFlags {
  model: string;
  image: string;
  mask?: string;
  roi?: string;
  roiMask?: string;
  /** volumes only */
  label?: string;
  series?: string;
  /** volumes explained by a 2D model: the voxel axis the slices are cut across */
  sliceAxis?: "i" | "j" | "k";
  bank?: string;
  out: string;
  method: string;
  seed: number;
  outcome: OutcomeName;
  reference: "auto" | "ground-truth" | "prediction";
  batchSize?: number | "auto";
  workers?: number | "auto";
  /** block-intervention methods on 2D models: RoI-cropped passes (default auto) */
  incremental?: IncrementalMode;
  /** execution provider (default cpu) */
  device?: Device;
  progress: boolean;
  /** colour scale of the pictures: max, pNN or fixed:V */
  colourScale?: string;
  /** Redis URL: the map's samples are computed by `segcause worker`s, in `shards` shards */
  queue?: string;
  shards?: number;
  /** method options (block, samples, tau, ...), checked against the method's declared options */
  [option: string]: unknown;
}

/** The flags that are not method options. */
/** The explain flags that are not method options (the rest are checked against the method's); demo shares them. */
export const COMMON = new Set<string>([
  "model",
  "image",
  "mask",
  "roi",
  "roiMask",
  "bank",
  "out",
  "method",
  "seed",
  "outcome",
  "reference",
  "batchSize",
  "workers",
  "incremental",
  "device",
  "progress",
  "colourScale",
  "queue",
  "shards",
  "json",
  "quiet",
  "label",
  "series",
  "boxUnit",
  "sliceAxis",
  ...CARD_FLAG_KEYS,
]);

export interface ExplainResult {
  attribution: Attribution;
  written: WrittenOutputs;
  kase: Case;
}

/** Runs one explanation from flag values; shared by `explain`, `demo` and the viewer's runs (which listen to its progress). */
export async function runExplain(
  f: ExplainFlags,
  hooks: { onProgress?: ProgressListener; onPartialMap?: RunOptions["onPartialMap"] } = {},
): Promise<ExplainResult> {
  const def = getMethod(f.method);
  if (f.label !== undefined || f.series !== undefined)
    fail(`--${f.label !== undefined ? "label" : "series"} applies to volumes (NIfTI or DICOM) explained by a 3D model`, "drop it for a 2D image");
  if (f.sliceAxis !== undefined) fail("--slice-axis applies to volumes explained by a 2D model slice by slice", "drop --slice-axis for a 2D image");
  if (f.boxUnit !== undefined)
    fail("--box-unit applies to volumes (blocks in mm or voxels); 2D blocks are in pixels", "drop --box-unit for a 2D image");
  const given = Object.fromEntries(Object.entries(f).filter(([k]) => !COMMON.has(k)));
  const options = resolveOptions(def, given);
  if (!f.roi && !f.roiMask) fail("no RoI given", "pass --roi row,col,height,width (model-input pixels) or --roi-mask mask.png");
  if (f.roi && f.roiMask) fail("both --roi and --roi-mask are given", "pass only one of them");
  const rect = f.roi ? parseRoi(f.roi) : undefined;
  const scale = parseScale(f.colourScale ?? "max");
  checkOutputFolder(f.out, "explain");
  noteReplaced(f.out, f.quiet === true);
  markResumable("checkpoints");
  if (def.needsBank && !f.bank)
    fail(
      `${def.name} needs a patch bank of natural patches`,
      "build one with `segcause bank build --images <dir> --model <model> --out bank.scbank`, then pass --bank",
    );
  if (f.queue) checkQueueable(f, def, options);
  else if (f.shards !== undefined)
    fail("--shards applies with --queue (the map's jobs for the workers)", "add --queue redis://host:6379/0, or drop --shards");
  const load = { card: f.card, overrides: cardOverrides(f), device: f.device };
  const model = await Model.load(f.model, { ...load, threads: fixedOrUndefined(f.threads), workers: fixedOrUndefined(f.workers) });
  let lock: FolderLock | undefined;
  let remote: RemoteCells | undefined;
  try {
    // A setting that can never work on this model (or bank) stops here, before the case, tuning or any pass.
    const bank = def.needsBank ? await PatchBank.load(f.bank!) : undefined;
    def.check?.({ model, options, bankPatchSize: bank?.patchSize, label: flagLabel });
    const kase = await loadCase(model, f.image, f.mask);
    // Anything not fixed by a flag is chosen by a short (cached) probe of this model on this machine.
    let batchSize = fixedOrUndefined(f.batchSize);
    let tuned: ExecutionPlan | undefined;
    // --queue: the passes run on the workers, at the given batch size (or the default), so nothing is probed here
    if (f.queue) batchSize ??= DEFAULT_BATCH_SIZE;
    else if ([f.threads, f.workers, f.batchSize].some((v) => v === undefined || v === "auto")) {
      // Leaves the model at the chosen threads and workers.
      tuned = await tuneExecution(model, model.preprocess(kase.image), {
        threads: fixedOrUndefined(f.threads),
        workers: fixedOrUndefined(f.workers),
        batchSize,
      });
      batchSize = tuned.batchSize;
    }
    const roi: TargetSpec["roi"] = rect ?? { mask: await loadRoiMask(f.roiMask!, model, kase) };
    const target: TargetSpec = { roi, outcome: f.outcome, reference: f.reference };
    // One progress display for the whole run, whatever stages the method goes through.
    const progress = f.progress ? stderrProgress() : undefined;
    const run = {
      seed: f.seed,
      batchSize,
      onProgress: hooks.onProgress ?? progress,
      onPartialMap: hooks.onPartialMap,
      checkpointPath: join(f.out, ".checkpoint.json"),
      incremental: f.incremental ?? "auto",
    };
    // --queue: the workers compute the samples into this run's checkpoint; the run below then computes none
    const shardQueue: QueuedMap | undefined = f.queue
      ? {
          url: f.queue,
          shards: f.shards ?? DEFAULT_SHARDS,
          out: f.out,
          checkpointPath: run.checkpointPath,
          model,
          ...(f.card ? { cardPath: f.card } : {}),
          kase,
          ...(bank ? { bankPath: f.bank } : {}),
          roi: rect ?? { maskPath: f.roiMask! },
          method: { name: def.name, options: given },
          outcome: f.outcome,
          reference: f.reference,
          incremental: run.incremental,
          seed: f.seed,
          batchSize: batchSize!,
          threads: fixedOrUndefined(f.threads),
          onProgress: run.onProgress,
        }
      : undefined;
    // an unreachable Redis or an input it cannot carry stops here, before the folder is taken
    remote = shardQueue && (await openShardQueue(shardQueue));
    // One writer per folder from here on: the checkpoint, the files and the manifest are this run's.
    lock = takeOutputFolder(f.out, "explain");
    const queued = shardQueue && remote && (await gatherShards(shardQueue, remote));
    const attribution = await def
      .explain({
        model,
        kase,
        target,
        run: { ...run, ...(queued ? { replayOnly: true, onReplayMiss: () => dropShards(f.out) } : {}) },
        bank,
        options,
      })
      .finally(() => progress?.end());
    if (queued) recordQueue(attribution, queued);
    if (lock.note) attribution.notes.push(lock.note);
    if (tuned && tuned.probe.length > 0) {
      const p = tuned.probe.map((c) => `${c.workers}x${c.threads} threads batch ${c.batchSize}: ${c.perSecond.toFixed(1)}/s`).join("; ");
      attribution.notes.push(
        `execution ${tuned.cached ? "(cached probe)" : "probed"}: ${tuned.workers} session(s) x ${tuned.threads} thread(s), batch ${tuned.batchSize} [${p}]`,
      );
    }
    const written = await writeAttribution(attribution, kase, f.out, { scale });
    await rm(run.checkpointPath, { force: true });
    if (queued) dropShards(f.out);
    return { attribution, written, kase };
  } finally {
    lock?.release();
    await remote?.close();
    await model.release();
  }
}

/** What --queue cannot take, refused before anything is loaded, written or queued. */
function checkQueueable(f: ExplainFlags, def: MethodDefinition, options: Record<string, unknown>): void {
  const problem = unshardable(def, options);
  if (problem) fail(problem, QUEUE_SCHEDULES_FIX);
  if (f.device && f.device !== "cpu")
    fail(`--device ${f.device} does not apply with --queue (the workers run on their CPUs)`, "drop --device, or run without --queue");
  const overrides = Object.entries(cardOverrides(f)).filter(([, v]) => v !== undefined);
  if (overrides.length > 0)
    fail(
      "card flags (--input-size, --channels, --mean, ...) do not reach the queue's workers",
      "write them into a card file and pass it with --card, or run without --queue",
    );
  if (f.workers !== undefined && f.workers !== 1 && f.workers !== "auto")
    fail("--workers applies to a local run; with --queue, start more `segcause worker`s", "drop --workers");
}

export function describeResult(r: ExplainResult): string {
  const s = r.written.stats;
  const a = r.attribution;
  const top = [...a.units]
    .filter((u) => u.effect < 0)
    .sort((x, y) => x.effect - y.effect)
    .slice(0, 3);
  const lines = [
    `${a.method} map of ${r.kase.id}: RoI rows ${a.roi.row}..${a.roi.row + a.roi.height - 1}, cols ${a.roi.col}..${a.roi.col + a.roi.width - 1}`,
    a.backwardPasses > 0
      ? `  gradients of S, the class probability summed over the RoI (see the notes); the RoI's ${a.outcome} vs the ${a.reference === "ground-truth" ? "ground-truth mask" : "model's own prediction"} is ${a.baseOutcome.toFixed(3)}`
      : `  outcome: ${a.outcome} inside the RoI vs the ${a.reference === "ground-truth" ? "ground-truth mask" : "model's own unperturbed prediction"}; base = ${a.baseOutcome.toFixed(3)}`,
    ...countLines(s).map((l) => `  ${l}`),
    `  ${s.minEffect === 0 && s.maxEffect === 0 ? `all values${a.unitKind === "pixel" ? " outside the RoI" : ""} are 0 (${a.valueUnits})` : `values${a.unitKind === "pixel" ? " outside the RoI" : ""} range ${s.minEffect.toPrecision(4)} .. ${s.maxEffect.toPrecision(4)} ${a.valueUnits}`}; ${a.forwardPasses} forward${a.backwardPasses ? ` + ${a.backwardPasses} backward` : ""} passes ${passesTime(a)}`,
  ];
  const withCi = top.some((u) => u.samples > 1);
  if (top.length)
    lines.push(
      `  strongest support${withCi ? " (effect ± half-width of its own 95% interval, uncorrected)" : ""}: ${top.map((u) => `${a.unitKind} (${u.row},${u.col}) ${u.effect.toFixed(2)}${u.samples > 1 ? `±${(t975(u.dof ?? u.samples - 1) * u.stderr).toFixed(2)}` : ""}`).join(", ")}`,
    );
  for (const n of a.notes) lines.push(`  note: ${n}`);
  lines.push(`  wrote ${Object.keys(r.written.files).join(", ")} to ${r.written.dir}`);
  return lines.join("\n");
}

/** Adds one flag per method option (shared by name across methods), with each method's default in the help. */
export function addMethodFlags(cmd: Command, methods: readonly MethodDefinition[]): Command {
  const seen = new Map<string, { o: MethodOption; defaults: string[] }>();
  for (const m of methods) {
    for (const o of m.options) {
      getOrInsert(seen, o.name, () => ({ o, defaults: [] as string[] })).defaults.push(
        `${m.name} ${Array.isArray(o.default) ? o.default.join(",") : String(o.default)}`,
      );
    }
  }
  for (const [name, { o, defaults }] of seen) {
    const arg = o.type === "string" ? (o.choices ? o.choices.join("|") : "value") : o.type === "numbers" ? "a,b,..." : "n";
    cmd.option(`--${kebab(name)} <${arg}>`, `${o.description} (default: ${defaults.join("; ")})`, methodOptionParser(o, kebab(o.name)));
  }
  return cmd;
}

export function explainCommand(): Command {
  const cmd = new Command("explain")
    .description("map of which parts of the image drive the model's segmentation inside a region of interest")
    .requiredOption("--model <file>", "ONNX segmentation model")
    .requiredOption("--image <file>", `image to explain (${IMAGE_FORMATS}), or a volume for a 3D model (.nii/.nii.gz, a DICOM file or series folder)`)
    .option(
      "--mask <file>",
      "ground-truth binary mask (any two values, e.g. 0/255 or 0/1; any image format); without it Dice is measured against the model's own prediction. Volumes: a NIfTI label map (with --label) or a DICOM SEG",
    )
    .option(
      "--label <n[,n]>",
      "volumes: the label(s) of the --mask/--roi-mask label map, or the segment number(s) of a DICOM SEG, that make the structure (default: every non-zero label, or the SEG's one segment)",
    )
    .option("--series <uid>", "volumes: the Series Instance UID to read from a DICOM folder holding several series")
    .option(
      "--slice-axis <i|j|k>",
      "volumes with a 2D model: the voxel axis the slices are cut across (default: the card's input.slices.axis, else k = axial for RAS volumes)",
      oneOf("slice-axis", SLICE_AXES),
    )
    .option(
      "--box-unit <mm|vox>",
      "volumes: --block and --stride in millimetres (default; converted per axis to voxels by the model's spacing) or in voxels",
      oneOf("box-unit", BOX_UNITS),
    )
    .option(
      "--roi <r,c,h,w>",
      "RoI rectangle in model-input pixels: row,col,height,width (or row,col,size); volumes: z,y,x,d,h,w in voxels of the input volume",
    )
    .option("--roi-mask <file>", "RoI as a mask image instead of a rectangle (volumes: a label map on the volume's grid, with --label)")
    .option("--bank <file>", "patch bank built with `segcause bank build` (needed by pdcr and pdcr-superpixel)")
    .requiredOption("--out <dir>", "output folder")
    .option("--method <name>", `method: ${methodNames().join(", ")} (see \`segcause methods\`)`, oneOf("method", methodNames()), "pdcr")
    .option("--seed <n>", "random seed", seed(), 0)
    .option("--outcome <name>", `RoI outcome: ${OUTCOMES.join(", ")}`, oneOf("outcome", OUTCOMES), "dice")
    .option("--reference <kind>", "auto, ground-truth or prediction", oneOf("reference", ["auto", "ground-truth", "prediction"] as const), "auto")
    .option("--batch-size <n|auto>", "inputs per forward call (default auto: probed once per model and machine)", intOrAuto("batch-size"))
    .option(
      "--workers <n|auto>",
      "concurrent ONNX Runtime sessions (default auto: 1 session with a thread per core or a session per core with 1 thread each, whichever the probe finds faster)",
      intOrAuto("workers"),
    )
    .option(
      "--queue <url>",
      "compute the map's samples on `segcause worker`s through this Redis (redis://host:6379/0; rediss:// for TLS); the map is the local run's bit for bit. pdcr --schedule paper, pdcr-superpixel, zero and occlusion; volumes: pdcr --schedule paper, zero and occlusion",
    )
    .option("--shards <n>", `with --queue: the map's units are split into this many jobs (default ${DEFAULT_SHARDS})`, intAtLeast("shards"))
    .option("--colour-scale <rule>", `colour scale of heatmap.png and overlay.png: ${SCALE_HELP}`, "max")
    .option("--no-progress", "no progress bar on stderr");
  addIncrementalFlag(cmd);
  addOutputFlags(cmd);
  addMethodFlags(cmd, allMethods());
  addCardFlags(cmd);
  addDeviceFlag(cmd);
  return cmd.action(async (opts: ExplainFlags & OutputFlags) => {
    const volume = await runVolumeCommand(opts);
    if (volume) {
      emitVolume(opts, volume, { format: "segcause.volume-summary/1" });
      return;
    }
    const r = await runExplain({ ...opts, progress: showProgress(opts) });
    emit(
      opts,
      () => describeResult(r),
      () => explainJson(r),
      r.attribution.notes,
    );
  });
}

/**
 * The command's volume run (a 3D model, or a 2D model slice by slice on a volume), or undefined for a
 * 2D image; the viewer's run child calls it too, with its own progress listener.
 */
export async function runVolumeCommand(
  opts: ExplainFlags & OutputFlags,
  hooks: Parameters<typeof runVolumeExplain>[2] = {},
): Promise<VolumeExplainResult | VolumeExplainStopped | undefined> {
  const volumeModel = isVolumeModel(opts.model, opts.card);
  const volumeImage = await looksLikeVolume(opts.image);
  if (volumeModel && !volumeImage)
    fail(
      `${opts.model} is a 3D model (its card declares a volume input), but ${opts.image} is not a volume`,
      "give a NIfTI volume (.nii/.nii.gz) or a DICOM series folder as --image",
    );
  if (!volumeModel && !volumeImage) return undefined;
  if (opts.shards !== undefined && !opts.queue)
    fail("--shards applies with --queue (the map's jobs for the workers)", "add --queue redis://host:6379/0, or drop --shards");
  // A 2D model on a volume runs slice by slice (src/model/slice-model.ts).
  checkNoImageFlags(opts, volumeModel ? "volume" : "slices");
  const overrides = volumeModel ? undefined : cardOverrides(opts);
  return runVolumeExplain({ ...opts, cardOverrides: overrides, progress: hooks.onProgress ? false : showProgress(opts) }, COMMON, hooks);
}

export function methodsCommand(): Command {
  return new Command("methods")
    .description("list the explanation methods with their cost and options")
    .option("--verbose", "also list every option with its default")
    .action((f: { verbose?: boolean }) => {
      for (const m of allMethods()) {
        const volumes = m.volume
          ? `volumes: yes (${m.volume.summary}${m.volume.windows ? "" : "; not through sliding windows"}); 2D model slice by slice: ${m.volume.slices ? "yes" : "no"}`
          : "volumes: no";
        process.stdout.write(`${m.name.padEnd(14)} ${m.summary}; passes: ${m.cost}; ${volumes}\n`);
        if (f.verbose) {
          for (const o of m.options) {
            const only = o.appliesWhen ? ` [only with ${o.appliesWhen.values.map((v) => flagLabel(o.appliesWhen!.option, v)).join(" or ")}]` : "";
            process.stdout.write(`${"".padEnd(16)}--${kebab(o.name)} (default ${String(o.default)}): ${o.description}${only}\n`);
          }
        }
      }
    });
}

/** --incremental, shared by explain and demo. */
export function addIncrementalFlag(cmd: Command): Command {
  return cmd.option(
    "--incremental <auto|on|off>",
    "pdcr, pdcr-superpixel, zero, occlusion on 2D models: run each pass only on what the RoI's outputs need (a derived graph on the cropped input) and skip blocks outside the RoI's reach; on local models (U-Net, SegNet) recompute only what each block changes, from the unperturbed pass's tensors, when a cost model (multiply-adds plus a cost per op, per call and for opening it; see segcause info) puts the run below the cropped passes; auto: the cheapest of full, cropped and changed-region passes by that cost model; on: the cheaper incremental one",
    oneOf("incremental", INCREMENTAL_MODES),
    "auto",
  );
}
