/**
 * The gradient layer on volumes: the same GradientSession and method bodies as on images (saliency,
 * gradient × input, IG, SmoothGrad, Grad-CAM), given the volume's box as the model input. The
 * differentiated score is the 2D one, S = Σ_{v ∈ RoI} prob_c(x)[v], over the RoI's voxels in the
 * box; the map (one value per voxel of the box) goes back onto the input volume's grid.
 */

import { boxToInput, type VolumeCase } from "../../data/volume/volume-case.js";
import { threeDModel, type VolumeModel, type VolumeNet } from "../../model/volume-model.js";
import { makeProbability } from "../../target/outcome.js";
import { flatLayout, type VolumeTarget } from "../../target/volume-target.js";
import type { ProgressEvent, ProgressListener, WorkPlan } from "../../util/progress.js";
import { ProgressTracker } from "../../util/progress.js";
import { type GradientCore, type GradientMap, gradientScaffold, roiScore, zeroMapNote } from "../gradients.js";
import { VOLUME_BATCH_SIZE, type VolumeAttribution } from "./engine.js";
import { volumeProvenance } from "./provenance.js";
import type { RunBound } from "./run-bound.js";

export interface VolumeRunOptions {
  seed?: number;
  batchSize?: number;
  /** file where finished samples are kept (sampling methods); an interrupted run with the same settings resumes from it */
  checkpointPath?: string;
  onProgress?: ProgressListener;
  /** box methods' fixed schedules: stops between batches at --max-passes/--max-time (run-bound.ts) */
  bound?: RunBound;
}

/** The RoI score on a volume's box: S over the RoI's cells of the card's channel, read with the card's activation. */
export function volumeRoiScore(model: VolumeModel, target: VolumeTarget) {
  const prob = makeProbability(model.card.output, flatLayout(model));
  return roiScore(target.roiCells, model.outputLayout.channels, model.card.output.channel, model.inputSize, prob);
}

/** S of plain inputs of the box, one forward pass each (batches of at most `batchSize`, no padding past the inputs). */
export async function volumeForwardScores(
  model: VolumeModel,
  inputs: Float32Array[],
  batchSize: number,
  scoreOfRaw: (data: Float32Array, slot: number) => number,
): Promise<number[]> {
  const out = new Array<number>(inputs.length);
  const runner = model.runner(Math.max(1, Math.min(batchSize, inputs.length)));
  await runner.run(
    inputs,
    (x, [dst]) => dst.set(x),
    (res, slot, _x, i) => {
      out[i] = scoreOfRaw(res[model.outputName].data as Float32Array, slot);
    },
  );
  return out;
}

/** Runs a gradient method's body on a volume and assembles the voxel-level Attribution. */
export async function explainVolumeGradient(
  net: VolumeNet,
  kase: VolumeCase,
  target: VolumeTarget,
  run: VolumeRunOptions,
  method: string,
  settings: Record<string, unknown>,
  body: (env: GradientCore) => Promise<GradientMap>,
): Promise<VolumeAttribution> {
  const model = threeDModel(net, method);
  const t0 = Date.now();
  const batchSize = run.batchSize ?? VOLUME_BATCH_SIZE;
  const { roiSeed, scoreOfProb, scoreOfRaw } = volumeRoiScore(model, target);
  let forwardPasses = 0;
  const forwardScores = async (inputs: Float32Array[]) => {
    forwardPasses += inputs.length;
    return volumeForwardScores(model, inputs, batchSize, scoreOfRaw);
  };
  // Progress as on images: each stage's events carry the run's plan; every evaluation counts in the current stage.
  let workPlan: WorkPlan | undefined;
  const listen = run.onProgress && ((e: ProgressEvent) => run.onProgress!({ ...e, ...(workPlan ? { plan: workPlan } : {}) }));
  const scaffold = gradientScaffold(
    method,
    model,
    batchSize,
    (name, total) => new ProgressTracker(name, total, listen),
    (p) => (workPlan = p),
  );
  const [baseScore] = await forwardScores([kase.input]);
  const env: GradientCore = {
    seed: run.seed ?? 0,
    input: kase.input,
    channels: 1,
    plane: model.inputSize,
    baseScore,
    roiSeed,
    scoreOfProb,
    forwardScores,
    ...scaffold.parts,
    batchSize,
  };
  const result = await scaffold.run(env, body);
  const { sessions } = scaffold;
  const ch = model.card.output.channel;
  const notes = [
    ...kase.notes,
    `gradient target: S = sum of the channel-${ch} probability over the ${target.roiCells.length} RoI voxels (S(x) = ${baseScore.toPrecision(6)}); gradients are w.r.t. the model input (the normalised volume in the model's box)`,
    ...(result.notes ?? []),
    ...new Set(sessions.flatMap((s) => s.notes)),
  ];
  zeroMapNote(result.map, notes);
  const { dims, affine, spacing } = kase.volume;
  const toVolume = (m: Float32Array) => boxToInput(kase, m);
  return {
    method,
    unitKind: "voxel",
    signed: result.signed,
    valueUnits: result.valueUnits,
    baseOutcome: target.base,
    outcome: target.outcome,
    reference: target.referenceKind,
    roi: target.describe,
    tau: 0,
    map: toVolume(result.map),
    stderrMap: toVolume(result.stderrMap ?? new Float32Array(result.map.length).fill(Number.NaN)),
    dims,
    affine,
    spacing,
    units: [],
    roiCells: 0,
    samples: forwardPasses + sessions.reduce((n, s) => n + s.forwardPasses, 0),
    forwardPasses: forwardPasses + sessions.reduce((n, s) => n + s.forwardPasses, 0),
    backwardPasses: sessions.reduce((n, s) => n + s.backwardPasses, 0),
    wallMs: Date.now() - t0,
    notes,
    roiMask: target.roiMask,
    provenance: volumeProvenance(model, kase, target, {
      method,
      seed: env.seed,
      settings: { ...settings, ...(result.settings ?? {}), score: "sum of class probability over the RoI" },
      intervention: { name: "gradient", rule: sessions[0]?.rule ?? "gradient" },
      runner: { batchSize: sessions[0]?.batchSize ?? batchSize, threads: model.threads, device: model.device },
    }),
  };
}
