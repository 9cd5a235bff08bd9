/**
 * The block engine on volumes: unperturbed pass → volume Target → grid of boxes → screened ATE over
 * an intervention, through the shared batch runner and estimator. A sample's input is a pure
 * function of (seed, unit, draw); the only copies of the volume are the runner's input buffers.
 * The map goes back through the placement onto the input volume's grid.
 */

import type { VolumeBank } from "../../data/volume/volume-bank.js";
import type { VolumeCase } from "../../data/volume/volume-case.js";
import { fromBox } from "../../data/volume/volume-case.js";
import { fail } from "../../errors.js";
import type { VolumeModel } from "../../model/volume-model.js";
import { outcomeUnits } from "../../target/outcome.js";
import { resolveVolumeTarget, type VolumeTarget, type VolumeTargetSpec } from "../../target/volume-target.js";
import { VERSION } from "../../version.js";
import { type AdaptiveSettings, adaptiveAte } from "../adaptive.js";
import { drawNumbering, stratifyDraws } from "../block-effects.js";
import { DEFAULT_CHUNK, type Resumable, resumableEvaluate } from "../checkpoint.js";
import { type ScreenedAteSettings, screenedAte, type UnitEstimate } from "../estimators.js";
import { buildTree } from "../hierarchy.js";
import type { SampleRequest } from "../samples.js";
import { type BoxUnit, boxGrid, forEachCell, paintBoxes } from "./boxes.js";

export const VOLUME_BATCH_SIZE = 4;

/** What replaces a box: a constant (normalised units), or a patch of the bank per draw. */
export type VolumeIntervention = { kind: "constant"; value: number; describe: Record<string, unknown> } | { kind: "bank"; bank: VolumeBank };

export interface VolumeBlockSpec {
  method: string;
  block: number;
  stride?: number;
  estimator: ScreenedAteSettings;
  /** when set, the fast schedule (octree screening, stratified sequential draws) replaces the screened estimator */
  adaptive?: AdaptiveSettings;
  intervention: VolumeIntervention;
  settings: Record<string, unknown>;
  seed?: number;
  batchSize?: number;
  /** file where finished samples are kept; an interrupted run with the same settings resumes from it */
  checkpointPath?: string;
}

export interface VolumeAttribution {
  method: string;
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
  forwardPasses: number;
  wallMs: number;
  notes: string[];
  provenance: Record<string, unknown>;
  /** the resolved RoI on the volume grid, for views */
  roiMask: Uint8Array;
}

/** The unperturbed pass and the Target: a RoI that cannot work is refused before anything is written. */
export async function volumeTarget(model: VolumeModel, kase: VolumeCase, spec: VolumeTargetSpec): Promise<VolumeTarget> {
  const baseOutput = (await model.runOne(kase.input)).data as Float32Array;
  return resolveVolumeTarget(model, kase, spec, baseOutput);
}

/** The boxes and the schedule's settings, checked (the same checks whether called up front or by the engine). */
export function planBoxes(kase: VolumeCase, target: VolumeTarget, spec: VolumeBlockSpec) {
  const roiInBox = new Uint8Array(kase.input.length);
  for (const c of target.roiCells) roiInBox[c] = 1;
  const grid = boxGrid(kase.placement, kase.volume.dims, spec.block, roiInBox, spec.stride);
  const iv = spec.intervention;
  if (iv.kind === "bank" && iv.bank.size !== spec.block)
    fail(
      `--block ${spec.block} does not match the bank's ${iv.bank.size}³ boxes`,
      `build a bank of ${spec.block}-voxel boxes, or use --block ${iv.bank.size}`,
    );
  const draws = iv.kind === "bank" ? iv.bank.count : 1;
  // The fast schedule: octree screening of boxes, draws stratified by the boxes' mean value.
  const ad = spec.adaptive && { ...spec.adaptive, strata: Math.min(spec.adaptive.strata, draws) };
  if (ad && ad.strata < 2)
    fail(`the fast schedule needs at least 2 distinct draws, the intervention has ${draws}`, "use --schedule paper, or a bank with more boxes");
  if (ad && (spec.stride ?? spec.block) !== spec.block)
    fail("the fast schedule needs a partition into boxes (stride = block size)", "use --schedule paper for overlapping windows");
  return { grid, draws, ad };
}

/** `target`: a spec, or a Target resolved by `volumeTarget` (the unperturbed pass is then not run again). */
export async function explainVolumeBlocks(
  model: VolumeModel,
  kase: VolumeCase,
  targetSpec: VolumeTargetSpec | VolumeTarget,
  spec: VolumeBlockSpec,
): Promise<VolumeAttribution> {
  const t0 = Date.now();
  const seed = spec.seed ?? 0;
  const base = kase.input;
  const target = "score" in targetSpec ? targetSpec : await volumeTarget(model, kase, targetSpec);
  const box = kase.placement.box;
  const { grid, draws, ad } = planBoxes(kase, target, spec);
  const { units } = grid;
  const iv = spec.intervention;
  const tree = ad
    ? buildTree(
        units.map((u) => [u.z, u.y, u.x].map((v, a) => Math.floor((v - grid.origin[a]) / spec.block))),
        ad.groupSize,
      )
    : undefined;
  const strat = ad && iv.kind === "bank" ? stratifyDraws(draws, ad.strata, (d) => mean(iv.bank.patch(d))) : undefined;
  const drawOf = drawNumbering(seed, units.length, draws, strat, ad?.commonDraws ?? false);
  const membersOf = (unit: number): BoxUnit[] =>
    unit < units.length ? [units[unit]] : tree!.groups[unit - units.length].members.map((i) => units[i]);
  const write = (r: SampleRequest, dst: Float32Array) => {
    dst.set(base);
    membersOf(r.unit).forEach((u, k) => {
      if (iv.kind === "constant") forEachCell(u, box, spec.block, (c) => (dst[c] = iv.value));
      else {
        const patch = iv.bank.patch(drawOf(r.unit, r.draw, k));
        forEachCell(u, box, spec.block, (c, l) => (dst[c] = patch[l]));
      }
    });
  };
  const runner = model.runner(spec.batchSize ?? VOLUME_BATCH_SIZE);
  // Everything that decides the samples: a rerun with the same key reuses the finished ones.
  const key = {
    model: model.sha256,
    image: kase.imageSha256,
    mask: kase.maskSha256 ?? null,
    card: model.card,
    target: { roi: target.describe, bounds: target.roiBounds, outcome: target.outcome, ref: target.referenceKind },
    method: spec.method,
    block: spec.block,
    stride: spec.stride ?? spec.block,
    seed,
    intervention: iv.kind === "constant" ? iv.describe : iv.bank.describe(),
    draws: ad ? { kind: "stratified", strata: ad.strata, groupSize: ad.groupSize, common: ad.commonDraws } : { kind: "uniform" },
    // a GPU's samples are kept apart from the CPU's (whose keys are unchanged)
    ...(model.sessions.device === "cpu" ? {} : { device: model.sessions.device }),
  };
  let resumable: Resumable | undefined;
  const raw = async (reqs: SampleRequest[]) => {
    const scores = new Float64Array(reqs.length);
    await runner.run(
      reqs,
      (r, [dst]) => write(r, dst),
      (out, slot, r, i) => {
        scores[i] = target.score(out[model.outputName].data as Float32Array, slot);
        resumable!.finished(r, scores[i]);
      },
    );
    return scores;
  };
  resumable = resumableEvaluate(raw, { path: spec.checkpointPath, key, chunk: DEFAULT_CHUNK });
  const evaluate = resumable.evaluate;
  let estimates: UnitEstimate[];
  let groupPasses = 0;
  const scheduleNotes: string[] = [];
  if (ad) {
    const r = await adaptiveAte(tree!, target.base, evaluate, ad, strat!.weights);
    estimates = r.estimates;
    groupPasses = r.groupPasses;
    scheduleNotes.push(
      `fast schedule: ${r.groupsTested} octree groups tested with ${r.groupPasses} passes; ${estimates.filter((e) => e.samples > 0).length} of ${units.length} boxes screened individually`,
    );
    if (r.short)
      scheduleNotes.push(
        `the map's noise is ${r.noiseRatio.toFixed(2)} of its spread, above the target ${ad.fidelity}: no box could take another round — raise --samples for a closer map`,
      );
  } else estimates = await screenedAte(units.length, target.base, evaluate, spec.estimator);
  await resumable.checkpoint?.save();
  const results = units.map((u, i) => ({ ...u, ...estimates[i] }));
  const { dims, affine, spacing } = kase.volume;
  const toVolume = (values: (i: number) => number, fillValue: number) =>
    fromBox(paintBoxes(box, spec.block, units, values, fillValue), dims, kase.placement, Number.NaN);
  const notes = [...kase.notes, ...scheduleNotes, ...(resumable.checkpoint?.notes() ?? [])];
  const tau = (ad ?? spec.estimator).tau;
  if (tau > 0 && results.every((r) => r.effect === 0))
    notes.push(
      `no block moved the RoI's ${target.outcome} by τ = ${tau} on average, so the map is 0 everywhere (base ${target.base.toFixed(2)}): try a RoI on the structure's border, --outcome soft-dice, or a smaller --tau`,
    );
  const settings = { block: spec.block, stride: spec.stride ?? spec.block, ...(ad ?? spec.estimator), ...spec.settings };
  const intervention = iv.kind === "constant" ? iv.describe : iv.bank.describe();
  return {
    method: spec.method,
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
    forwardPasses: 1 + groupPasses + results.reduce((s, r) => s + r.samples, 0),
    wallMs: Date.now() - t0,
    notes,
    roiMask: target.roiMask,
    provenance: {
      versions: { segcause: VERSION },
      createdAt: new Date().toISOString(),
      model: { path: model.path, sha256: model.sha256, card: model.card, cardPath: model.cardPath },
      case: {
        id: kase.id,
        imagePath: kase.imagePath,
        imageSha256: kase.imageSha256,
        source: kase.volume.source.kind,
        maskPath: kase.maskPath,
        maskSha256: kase.maskSha256,
        labels: kase.labels,
      },
      volume: { dims, spacing, affine, placement: kase.placement },
      target: {
        roi: target.describe,
        roiBounds: target.roiBounds,
        outcome: target.outcome,
        reference: target.referenceKind,
        channel: model.card.output.channel,
        threshold: model.card.output.threshold,
      },
      method: spec.method,
      seed,
      settings,
      intervention,
      runner: { batchSize: runner.plan.batchSize, threads: model.threads, device: model.sessions.device },
    },
  };
}

/** Mean of the values (a box of the bank, a whole volume). */
export function mean(a: Float32Array): number {
  let s = 0;
  for (const v of a) s += v;
  return s / a.length;
}
