/**
 * The block engine on volumes: unperturbed pass → volume Target → grid of boxes → screened ATE over
 * an intervention, through the shared batch runner and estimator. A sample's input is a pure
 * function of (seed, unit, draw); the only copies of the volume are the runner's input buffers.
 * Boxes live in model space (the card's axes and spacing); the map goes back through the placement
 * and the model-space transform onto the input volume's grid. With a sliding placement the model sees
 * the volume in windows (windows.ts): a sample re-runs only the windows over the RoI that hold a
 * changed voxel, and is scored on the stitched output.
 */

import { modelSpaceRecord } from "../../data/volume/model-space.js";
import type { VolumeBank } from "../../data/volume/volume-bank.js";
import type { VolumeCase } from "../../data/volume/volume-case.js";
import { boxToInput } from "../../data/volume/volume-case.js";
import { fail } from "../../errors.js";
import type { BatchRunner } from "../../model/batches.js";
import { SliceModel } from "../../model/slice-model.js";
import type { VolumeNet } from "../../model/volume-model.js";
import { outcomeUnits } from "../../target/outcome.js";
import { checkUnperturbedOutput } from "../../target/target.js";
import { resolveVolumeRoi, resolveVolumeTarget, type VolumeTarget, type VolumeTargetSpec } from "../../target/volume-target.js";
import { getOrInsert } from "../../util/maps.js";
import { type ProgressEvent, type ProgressListener, ProgressTracker, type WorkPlan } from "../../util/progress.js";
import { type AdaptiveSettings, adaptiveAte, type BudgetUse } from "../adaptive.js";
import { drawNumbering, QUEUE_SCHEDULES_FIX, stratifyDraws } from "../block-effects.js";
import { DEFAULT_CHUNK, type Resumable, resumableEvaluate } from "../checkpoint.js";
import { type ScreenedAteSettings, screenedAte, type UnitEstimate } from "../estimators.js";
import { buildTree } from "../hierarchy.js";
import { replayMiss, type Shard } from "../run.js";
import type { Evaluate, SampleRequest } from "../samples.js";
import { ONE_PASS, type PassCost } from "../work-plan.js";
import { describeSize, type Size3, sizeRecord } from "./box-size.js";
import { type BoxGrid, type BoxUnit, boxGrid, forEachCell, paintBoxes } from "./boxes.js";
import { volumeProvenance } from "./provenance.js";
import { BoundReached, type RunBound, RunStopped } from "./run-bound.js";
import { type ChangedBox, VolumeForward } from "./windows.js";

export const VOLUME_BATCH_SIZE = 4;

/** What replaces a box: a constant (normalised units), or a patch of the bank per draw. */
export type VolumeIntervention = { kind: "constant"; value: number; describe: Record<string, unknown> } | { kind: "bank"; bank: VolumeBank };

export interface VolumeBlockSpec {
  method: string;
  /** box size in model-space voxels, (D, H, W) */
  block: Size3;
  stride?: Size3;
  estimator: ScreenedAteSettings;
  /** when set, the fast schedule (octree screening, stratified sequential draws) replaces the screened estimator */
  adaptive?: AdaptiveSettings;
  intervention: VolumeIntervention;
  settings: Record<string, unknown>;
  seed?: number;
  batchSize?: number;
  /** file where finished samples are kept; an interrupted run with the same settings resumes from it */
  checkpointPath?: string;
  /** hears each stage's progress, with the run's WorkPlan (passes, the unperturbed one included) */
  onProgress?: ProgressListener;
  /**
   * Stops a fixed schedule (no `adaptive`) between batches, throwing RunStopped once the finished
   * samples are saved; needs `checkpointPath`. The fast schedule takes its budget in `adaptive`.
   */
  bound?: RunBound;
  /** hears the map as the fast schedule's rounds fill it in (an observer: the result is the same without it) */
  onPartialMap?: (p: VolumePartialMap) => void;
  /**
   * `explain --queue` (fixed schedules only): a worker's shard, whose run samples only the units u with
   * u % count === index and scores the others m(X) without a pass (their samples are not returned)
   */
  shard?: Shard;
  /** `explain --queue`'s gathering run: every sample must come from the checkpoint (a pass to run is an error) */
  replayOnly?: boolean;
  /** called when the replay lacks samples, before it fails */
  onReplayMiss?: () => void;
}

/** A volume map still being estimated: the effects so far on the input volume's grid (as map.nii.gz), and the passes spent. */
export interface VolumePartialMap {
  dims: [number, number, number];
  affine: number[];
  map: Float32Array;
  valueUnits: string;
  passes: number;
}

export interface VolumeAttribution {
  method: string;
  /** "box": effects of boxes (the block engine); "voxel": a map per voxel (gradient methods, RISE), with no box units */
  unitKind: "box" | "voxel";
  /** false for maps that are magnitudes (saliency, SmoothGrad, Grad-CAM) */
  signed: boolean;
  valueUnits: string;
  baseOutcome: number;
  outcome: VolumeTarget["outcome"];
  reference: VolumeTarget["referenceKind"];
  roi: string;
  tau: number;
  /** on the input volume's grid (i fastest); NaN where the model's box does not see the volume */
  map: Float32Array;
  stderrMap: Float32Array;
  dims: [number, number, number];
  affine: number[];
  spacing: [number, number, number];
  units: (BoxUnit & UnitEstimate)[];
  roiCells: number;
  /** perturbed inputs scored */
  samples: number;
  /** model passes: the unperturbed pass and the samples' (with sliding windows, one per window run) */
  forwardPasses: number;
  /** gradient methods: backward passes */
  backwardPasses?: number;
  /** sliding windows only: the windows, and how many of them the RoI needs */
  windows?: SlidingCount;
  wallMs: number;
  notes: string[];
  provenance: Record<string, unknown>;
  /** the resolved RoI on the volume grid, for views */
  roiMask: Uint8Array;
}

export interface SlidingCount {
  /** a 2D model slice by slice: the voxel axis the slices are cut across (each window is a slice, or a tile of one) */
  sliceAxis?: "i" | "j" | "k";
  patch: [number, number, number];
  overlap: number;
  weighting: "gaussian" | "constant";
  /** windows over the whole padded volume */
  total: number;
  /** windows overlapping the RoI: the unperturbed pass */
  overRoi: number;
}

/** A resolved Target; with sliding windows it carries the forward holding the unperturbed windows. */
export type ResolvedVolumeTarget = VolumeTarget & { forward?: VolumeForward };

/**
 * The unperturbed pass and the Target: a RoI that cannot work is refused before anything is
 * written. With sliding windows the pass runs the windows overlapping the RoI only.
 */
export async function volumeTarget(
  model: VolumeNet,
  kase: VolumeCase,
  spec: VolumeTargetSpec,
  batchSize = VOLUME_BATCH_SIZE,
): Promise<ResolvedVolumeTarget> {
  const p = kase.placement;
  if (p.kind !== "sliding") {
    const baseOutput = (await model.runOne(kase.input)).data as Float32Array;
    return resolveVolumeTarget(model, kase, spec, baseOutput);
  }
  const forward = new VolumeForward(model, p, kase.input, resolveVolumeRoi(kase, spec).roiCells);
  const stitched = await forward.runBase(model.runner(batchSize));
  // A 2D model's output is checked as on an image: the stitch puts slices side by side (only tiles' overlaps are averaged), so these are its raw values
  if (model instanceof SliceModel) checkUnperturbedOutput(stitched.data, model.model2d.card.output, model.outputName, "volume's slices (on the RoI)");
  return { ...resolveVolumeTarget(model, kase, spec, stitched), forward };
}

/** A sample: the boxes of cells it changes (the windows it touches), and its changed cells' values. */
export interface VolumeSample<T> {
  boxes: (s: T) => readonly ChangedBox[];
  /** writes every changed cell of the (padded) box through `put` */
  perturb: (s: T, put: (cell: number, value: number) => void) => void;
}

/**
 * The RoI outcome of perturbed samples: on the model's box (the unperturbed input with the sample's cells
 * written in, one pass each), or through the sliding windows of `forward` (only the windows they touch).
 * `done` hears each score as it is known, for checkpoints.
 */
export async function scoreVolumeSamples<T>(
  model: VolumeNet,
  runner: BatchRunner,
  target: VolumeTarget,
  forward: VolumeForward | undefined,
  input: Float32Array,
  samples: readonly T[],
  sample: VolumeSample<T>,
  done: (s: T, index: number, value: number) => void = () => {},
): Promise<Float64Array> {
  if (forward) return forward.evaluate(runner, samples, sample, (stitched) => target.score(stitched.data, 0), done);
  const scores = new Float64Array(samples.length);
  await runner.run(
    samples,
    (s, [dst]) => {
      dst.set(input);
      sample.perturb(s, (c, v) => (dst[c] = v));
    },
    (out, slot, s, i) => {
      scores[i] = target.score(out[model.outputName].data as Float32Array, slot);
      done(s, i, scores[i]);
    },
  );
  return scores;
}

/** The boxes and the schedule's settings, checked (the same checks whether called up front or by the engine). */
export function planBoxes(kase: VolumeCase, target: VolumeTarget, spec: VolumeBlockSpec) {
  const roiInBox = new Uint8Array(kase.input.length);
  for (const c of target.roiCells) roiInBox[c] = 1;
  const grid = boxGrid(kase.placement, kase.space.dims, spec.block, roiInBox, spec.stride);
  const iv = spec.intervention;
  if (iv.kind === "bank" && iv.bank.box.some((n, a) => n !== spec.block[a]))
    fail(
      `the block is ${describeSize(spec.block)} voxels (DxHxW) in model space, the bank's boxes are ${describeSize(iv.bank.box)}`,
      `build the bank with the same size (bank build --patch-size, in mm on volumes), or give --block ${cubeHint(iv.bank.box)}`,
    );
  const draws = iv.kind === "bank" ? iv.bank.count : 1;
  // The fast schedule: octree screening of boxes, draws stratified by the boxes' mean value.
  const ad = spec.adaptive && { ...spec.adaptive, strata: Math.min(spec.adaptive.strata, draws) };
  if (ad && ad.strata < 2)
    fail(`the fast schedule needs at least 2 distinct draws, the intervention has ${draws}`, "use --schedule paper, or a bank with more boxes");
  if (ad && spec.stride?.some((n, a) => n !== spec.block[a]))
    fail("the fast schedule needs a partition into boxes (stride = block size)", "use --schedule paper for overlapping windows");
  return { grid, draws, ad };
}

/** The fast schedule's octree over the grid's boxes. */
export function boxTree(grid: BoxGrid, block: Size3, groupSize: number) {
  return buildTree(
    grid.units.map((u) => [u.z, u.y, u.x].map((v, a) => Math.floor((v - grid.origin[a]) / block[a]))),
    groupSize,
  );
}

/** `target`: a spec, or a Target resolved by `volumeTarget` (the unperturbed pass is then not run again). */
export async function explainVolumeBlocks(
  model: VolumeNet,
  kase: VolumeCase,
  targetSpec: VolumeTargetSpec | VolumeTarget,
  spec: VolumeBlockSpec,
): Promise<VolumeAttribution> {
  const t0 = Date.now();
  const seed = spec.seed ?? 0;
  const base = kase.input;
  const target: ResolvedVolumeTarget = "score" in targetSpec ? targetSpec : await volumeTarget(model, kase, targetSpec, spec.batchSize);
  const runner = model.runner(spec.batchSize ?? VOLUME_BATCH_SIZE);
  let forward = target.forward;
  if (kase.placement.kind === "sliding" && !forward) {
    // A Target resolved by the caller without its windows: the unperturbed windows are run here.
    forward = new VolumeForward(model, kase.placement, base, target.roiCells);
    await forward.runBase(runner);
  }
  const box = kase.placement.box;
  const { grid, draws, ad } = planBoxes(kase, target, spec);
  const { units } = grid;
  const iv = spec.intervention;
  // a shard of the units is the map only when every unit's samples depend on that unit's outcomes alone
  if (ad && (spec.shard || spec.replayOnly))
    fail("the fast schedule's rounds depend on every box at once, so its map cannot be split into shards", QUEUE_SCHEDULES_FIX);
  const tree = ad ? boxTree(grid, spec.block, ad.groupSize) : undefined;
  const strat = ad && iv.kind === "bank" ? stratifyDraws(draws, ad.strata, (d) => mean(iv.bank.patch(d))) : undefined;
  const drawOf = drawNumbering(seed, units.length, draws, strat, ad?.commonDraws ?? false);
  const membersOf = (unit: number): BoxUnit[] =>
    unit < units.length ? [units[unit]] : tree!.groups[unit - units.length].members.map((i) => units[i]);
  // Model passes of a sample: with sliding windows, the windows over the RoI its boxes touch.
  const unitPasses = new Map<number, number>();
  const cost: PassCost = forward
    ? { base: forward.used.length, of: (u) => getOrInsert(unitPasses, u, () => forward!.passesFor(membersOf(u))) }
    : ONE_PASS;
  /** Every changed cell of a sample and its value. */
  const perturb = (r: SampleRequest, put: (cell: number, value: number) => void) =>
    membersOf(r.unit).forEach((u, k) => {
      if (iv.kind === "constant") forEachCell(u, box, spec.block, (c) => put(c, iv.value));
      else {
        const patch = iv.bank.patch(drawOf(r.unit, r.draw, k));
        forEachCell(u, box, spec.block, (c, l) => put(c, patch[l]));
      }
    });
  // Progress: every stage's events carry the latest plan; the unperturbed pass (which plans count,
  // run by volumeTarget) is reported after the first stage's first event, as in 2D runs.
  let workPlan: WorkPlan | undefined;
  const plan = (p: WorkPlan) => {
    workPlan = p;
  };
  let baseReported = false;
  const onProgress =
    spec.onProgress &&
    ((e: ProgressEvent) => {
      const to = spec.onProgress!;
      to({ ...e, ...(workPlan ? { plan: workPlan } : {}) });
      if (baseReported) return;
      baseReported = true;
      new ProgressTracker("unperturbed pass", cost.base, (b) => to({ ...b, ...(workPlan ? { plan: workPlan } : {}) })).add(cost.base);
    });
  const bound = !ad && spec.bound?.active ? spec.bound : undefined;
  if (bound && !spec.checkpointPath) fail("a bounded volume run needs a checkpoint to keep its samples", "pass checkpointPath with bound");
  // A sample's passes run together: a pass bound below the costliest sample would stop every rerun before it.
  const minPasses = bound && bound.settings.maxPasses > 0 && forward ? units.reduce((m, _, u) => Math.max(m, cost.of(u)), 0) : 0;
  if (bound && bound.settings.maxPasses < minPasses)
    fail(
      `--max-passes ${bound.settings.maxPasses} is below the ${minPasses} passes (${model.slicing ? "2D passes of slices" : "window runs"}) one sample of this run needs, so no run would progress`,
      `use --max-passes ${minPasses} or more`,
    );
  // Everything that decides the samples: a rerun with the same key reuses the finished ones.
  const key = {
    model: model.sha256,
    image: kase.imageSha256,
    mask: kase.maskSha256 ?? null,
    // the labels (or SEG segments) that made the reference mask: a label map's hash alone does not say
    ...(kase.labels ? { labels: kase.labels } : {}),
    card: model.card,
    target: { roi: target.describe, bounds: target.roiBounds, outcome: target.outcome, ref: target.referenceKind },
    method: spec.method,
    block: sizeRecord(spec.block),
    stride: sizeRecord(spec.stride ?? spec.block),
    seed,
    intervention: iv.kind === "constant" ? iv.describe : iv.bank.describe(),
    draws: ad ? { kind: "stratified", strata: ad.strata, groupSize: ad.groupSize, common: ad.commonDraws } : { kind: "uniform" },
    // Centre placement adds nothing, so the checkpoints of earlier versions still resume.
    ...(kase.placement.kind === "sliding" ? { placement: kase.placement } : {}),
    // only when the volume was moved, so the keys of runs on volumes already in model space stay as they were
    ...(kase.space.identity ? {} : { modelSpace: modelSpaceRecord(kase.space) }),
    // a GPU's samples are kept apart from the CPU's (whose keys are unchanged)
    ...(model.sessions.device === "cpu" ? {} : { device: model.sessions.device }),
  };
  let resumable: Resumable | undefined;
  // The pass rate of this run's own passes (resumed ones took no time here): a time budget's passes.
  let ranPasses = 0,
    ranMs = 0;
  const runPart = async (reqs: SampleRequest[], scores: Float64Array, at: number) => {
    const t = Date.now();
    const part = await scoreVolumeSamples(model, runner, target, forward, base, reqs, { boxes: (r) => membersOf(r.unit), perturb }, (r, _, v) =>
      resumable!.finished(r, v),
    );
    scores.set(part, at);
    // Budgets and bounds count model passes (one per sample without windows, one per window run with them).
    const passes = reqs.reduce((a, r) => a + cost.of(r.unit), 0);
    ranPasses += passes;
    ranMs += Date.now() - t;
    bound?.count(passes);
  };
  const { shard, replayOnly } = spec;
  const raw = async (all: SampleRequest[]) => {
    // a shard's run scores the other shards' units as m(X), without a pass (those samples are never returned)
    const reqs = shard ? all.filter((r) => r.unit % shard.count === shard.index) : all;
    if (replayOnly && reqs.length > 0) replayMiss(reqs.length, spec.onReplayMiss);
    if (reqs.length < all.length) return otherShards(all, await rawOf(reqs));
    return rawOf(reqs);
  };
  /** The shard's scores in the order of `all`, m(X) for the other shards' units (kept in the worker's checkpoint, never returned). */
  const otherShards = (all: SampleRequest[], mine: Float64Array) => {
    let k = 0;
    return Float64Array.from(all, (r) => {
      if (r.unit % shard!.count === shard!.index) return mine[k++];
      resumable!.finished(r, target.base);
      return target.base;
    });
  };
  const rawOf = async (reqs: SampleRequest[]) => {
    const scores = new Float64Array(reqs.length);
    if (!bound) await runPart(reqs, scores, 0);
    // Bounded: a few batches at a time, so the run stops close to its bound: the samples whose passes it allows.
    for (let at = 0, step = runner.plan.batchSize * 2; bound && at < reqs.length; ) {
      const next = reqs.slice(at, at + step);
      let left = bound.allow(next.reduce((a, r) => a + cost.of(r.unit), 0)),
        n = 0;
      for (; n < next.length && cost.of(next[n].unit) <= left; n++) left -= cost.of(next[n].unit);
      if (n === 0) throw new BoundReached();
      await runPart(reqs.slice(at, at + n), scores, at);
      at += n;
    }
    return scores;
  };
  resumable = resumableEvaluate(raw, {
    path: spec.checkpointPath,
    key,
    chunk: DEFAULT_CHUNK,
    onProgress,
    ...(forward ? { passes: (r: SampleRequest) => cost.of(r.unit) } : {}),
  });
  // Samples and their model passes, counted from the requests (a resumed run counts the same).
  const passesOf = new Map<string, number>();
  const evaluate: Evaluate = (reqs, stage) => {
    for (const r of reqs) {
      const k = `${r.unit}:${r.draw}`;
      if (!passesOf.has(k)) passesOf.set(k, cost.of(r.unit));
    }
    return resumable!.evaluate(reqs, stage);
  };
  const toVolume = (values: (i: number) => number, fillValue: number) => boxToInput(kase, paintBoxes(box, spec.block, units, values, fillValue));
  let estimates: UnitEstimate[];
  let groupPasses = 0;
  const scheduleNotes: string[] = [];
  let timeBudgetPasses: number | undefined;
  if (ad) {
    // A time budget becomes a pass budget after the screen, at this run's measured pass rate (as in 2D).
    const passesFor = (spent: number) =>
      ranPasses === 0 ? Infinity : spent + Math.max(0, ((ad.maxSeconds * 1000 - (Date.now() - t0)) * ranPasses) / Math.max(ranMs, 1));
    const onPartial = spec.onPartialMap;
    const onRound =
      onPartial &&
      ((est: UnitEstimate[], spent: number) =>
        onPartial({
          dims: kase.volume.dims,
          affine: kase.volume.affine,
          map: toVolume((i) => est[i].effect, 0),
          valueUnits: outcomeUnits(target.outcome),
          passes: spent,
        }));
    const r = await adaptiveAte(tree!, target.base, evaluate, ad, strat!.weights, passesFor, plan, cost, onRound);
    estimates = r.estimates;
    groupPasses = r.groupPasses;
    scheduleNotes.push(
      `fast schedule: ${r.groupsTested} octree groups tested with ${r.groupPasses} passes; ${estimates.filter((e) => e.samples > 0).length} of ${units.length} boxes screened individually`,
    );
    scheduleNotes.push(...budgetNotes(r.budget, ad.maxSeconds));
    if (r.budget?.byTime) timeBudgetPasses = r.budget.passes;
    if (r.short)
      scheduleNotes.push(
        `the map's noise is ${r.noiseRatio.toFixed(2)} of its spread, above the target ${ad.fidelity}: no box could take another round — raise --samples for a closer map`,
      );
  } else {
    try {
      estimates = await screenedAte(units.length, target.base, evaluate, spec.estimator, plan, cost);
    } catch (e) {
      if (!(e instanceof BoundReached) || !bound) throw e;
      await resumable.checkpoint?.save();
      const kept = resumable.checkpoint?.kept ?? 0;
      const done = cost.base + (resumable.checkpoint?.store.weighted(cost.of) ?? 0);
      throw new RunStopped(bound.reason(), bound.passes, kept, spec.checkpointPath!, workPlan, done);
    }
  }
  await resumable.checkpoint?.save();
  const results = units.map((u, i) => ({ ...u, ...estimates[i] }));
  const { dims, affine, spacing } = kase.volume;
  const samples = passesOf.size;
  let samplePasses = 0;
  for (const n of passesOf.values()) samplePasses += n;
  const windows: SlidingCount | undefined =
    forward && kase.placement.kind === "sliding"
      ? {
          ...(model.slicing ? { sliceAxis: model.slicing.axis } : {}),
          patch: [kase.placement.patch[2], kase.placement.patch[1], kase.placement.patch[0]],
          overlap: kase.placement.overlap,
          weighting: kase.placement.weighting,
          total: forward.windows.length,
          overRoi: forward.used.length,
        }
      : undefined;
  const forwardPasses = windows ? windows.overRoi + samplePasses : 1 + groupPasses + results.reduce((s, r) => s + r.samples, 0);
  const windowNotes = windows?.sliceAxis
    ? [
        `slice by slice along ${windows.sliceAxis}: ${windows.overRoi} of the volume's ${windows.total > kase.placement.box[2] ? `${windows.total} slice tiles (${kase.placement.box[2]} slices)` : `${windows.total} slices`} hold the RoI and ran unperturbed; the ${samples} samples re-ran only those holding a changed voxel (${samplePasses} 2D passes, ${(samplePasses / Math.max(1, samples)).toFixed(2)} per sample)`,
      ]
    : windows
      ? [
          `sliding windows of ${windows.patch.join("x")} (overlap ${windows.overlap}, ${windows.weighting} weights) over the ${[...kase.placement.box].reverse().join("x")} padded volume: ${windows.overRoi} of its ${windows.total} windows overlap the RoI and ran unperturbed; the ${samples} samples re-ran only those holding a changed voxel (${samplePasses} passes, ${(samplePasses / Math.max(1, samples)).toFixed(2)} per sample)`,
        ]
      : [];
  const notes = [...kase.notes, ...windowNotes, ...scheduleNotes, ...(resumable.checkpoint?.notes() ?? [])];
  const tau = (ad ?? spec.estimator).tau;
  if (tau > 0 && results.every((r) => r.effect === 0))
    notes.push(
      `no block moved the RoI's ${target.outcome} by τ = ${tau} on average, so the map is 0 everywhere (base ${target.base.toFixed(2)}): try a RoI on the structure's border, --outcome soft-dice, or a smaller --tau`,
    );
  const settings = {
    block: sizeRecord(spec.block),
    stride: sizeRecord(spec.stride ?? spec.block),
    ...(ad ?? spec.estimator),
    ...spec.settings,
    ...(timeBudgetPasses !== undefined ? { timeBudgetPasses } : {}),
  };
  const intervention = iv.kind === "constant" ? iv.describe : iv.bank.describe();
  return {
    method: spec.method,
    unitKind: "box",
    signed: true,
    valueUnits: outcomeUnits(target.outcome),
    baseOutcome: target.base,
    outcome: target.outcome,
    reference: target.referenceKind,
    roi: target.describe,
    tau,
    map: toVolume((i) => results[i].effect, 0),
    stderrMap: toVolume((i) => results[i].stderr, Number.NaN),
    dims,
    affine,
    spacing,
    units: results,
    roiCells: grid.roiCells,
    samples,
    forwardPasses,
    ...(windows ? { windows } : {}),
    wallMs: Date.now() - t0,
    notes,
    roiMask: target.roiMask,
    provenance: volumeProvenance(model, kase, target, {
      method: spec.method,
      seed,
      settings,
      intervention,
      runner: { batchSize: runner.plan.batchSize, threads: model.threads, device: model.sessions.device },
      passes: { samples, model: forwardPasses, ...(windows ? { windows } : {}) },
    }),
  };
}

/** "--block 8 --box-unit vox" for a cubic bank box, else the hint to rebuild. */
function cubeHint(box: readonly number[]): string {
  return box.every((n) => n === box[0]) ? `${box[0]} --box-unit vox` : "in millimetres that give the bank's box on this model";
}

/** What a fast-schedule budget did to the map (the 2D notes' volume form). */
function budgetNotes(b: BudgetUse | undefined, maxSeconds: number): string[] {
  if (!b) return [];
  const out: string[] = [];
  if (b.byTime && b.binding)
    out.push(
      `time budget ${maxSeconds} s: ${b.passes} passes at the pass rate measured during the screen; the map depends on the machine's speed — rerun with --max-passes ${b.passes} to reproduce it exactly`,
    );
  if (b.screen > b.passes)
    out.push(`budget exceeded: the screen alone needed ${b.screen} passes (budget ${b.passes}); it always completes, so every box has an estimate`);
  else if (b.binding)
    out.push(
      `${b.byTime ? "time" : "pass"} budget reached: ${b.spent} of ${b.passes} passes; the per-box standard errors say how far to trust each box`,
    );
  return out;
}

/** Mean of the values (a box of the bank, a whole volume). */
export function mean(a: Float32Array): number {
  let s = 0;
  for (const v of a) s += v;
  return s / a.length;
}
