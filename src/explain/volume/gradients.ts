/**
 * The gradient layer on volumes: the same GradientSession and method bodies as on images (saliency,
 * gradient × input, IG, SmoothGrad, Grad-CAM), given the volume's box as the model input. The
 * differentiated score is the 2D one, S = Σ_{v ∈ RoI} prob_c(x)[v], over the RoI's voxels in the
 * box; the map (one value per voxel of the box) goes back onto the input volume's grid. Through
 * sliding windows (a volume needing more than one) S is read on the windows' stitched output and
 * each evaluation runs window by window (window-gradients.ts); every window run counts as a pass.
 */

import { boxToInput, type Placement, type VolumeCase } from "../../data/volume/volume-case.js";
import { fail } from "../../errors.js";
import type { BatchRunner } from "../../model/batches.js";
import { threeDModel, type VolumeModel, type VolumeNet } from "../../model/volume-model.js";
import { makeProbability } from "../../target/outcome.js";
import { flatLayout, type VolumeTarget } from "../../target/volume-target.js";
import type { ProgressEvent, ProgressListener, WorkPlan } from "../../util/progress.js";
import { ProgressTracker } from "../../util/progress.js";
import {
  type GradientCore,
  type GradientMap,
  GradientSession,
  type GradientSessionOptions,
  gradientScaffold,
  roiScore,
  zeroMapNote,
} from "../gradients.js";
import type { Shard } from "../run.js";
import { type ResolvedVolumeTarget, type SlidingCount, VOLUME_BATCH_SIZE, type VolumeAttribution, type VolumePartialMap } from "./engine.js";
import { volumeProvenance } from "./provenance.js";
import type { RunBound } from "./run-bound.js";
import { rawOutput, WindowedGradientSession } from "./window-gradients.js";
import { type StitchedRoi, VolumeForward } from "./windows.js";

export interface VolumeRunOptions {
  seed?: number;
  batchSize?: number;
  /** file where finished samples are kept (sampling methods); an interrupted run with the same settings resumes from it */
  checkpointPath?: string;
  onProgress?: ProgressListener;
  /** box methods' fixed schedules: stops between batches at --max-passes/--max-time (run-bound.ts) */
  bound?: RunBound;
  /** the box methods' fast schedule: hears the map after each round (an observer only) */
  onPartialMap?: (p: VolumePartialMap) => void;
  /** `explain --queue` (box methods' fixed schedules): a worker's shard of the units, or the gathering run that only replays */
  shard?: Shard;
  replayOnly?: boolean;
  onReplayMiss?: () => void;
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
  // Progress as on images: each stage's events carry the run's plan; every evaluation counts in the current stage.
  let workPlan: WorkPlan | undefined;
  const windowed = needsWindows(kase) ? await windowedParts(model, kase, target, batchSize, method) : undefined;
  // the unperturbed pass (W windows through windows) is reported with the first event, as the box engine does
  const basePasses = windowed?.forward.used.length ?? 1;
  let baseReported = false;
  const to = run.onProgress;
  const listen =
    to &&
    ((e: ProgressEvent) => {
      const plan = workPlan ? { plan: workPlan } : {};
      to({ ...e, ...plan });
      if (baseReported) return;
      baseReported = true;
      new ProgressTracker("unperturbed pass", basePasses, (b) => to({ ...b, ...plan })).add(basePasses);
    });
  const open = (name: string, total: number) => new ProgressTracker(name, total, listen);
  const setPlan = (p: WorkPlan) => (workPlan = p);
  const scaffold = gradientScaffold(method, model, batchSize, open, setPlan, windowed?.create);
  let forwardPasses = 0;
  let parts: Pick<GradientCore, "plane" | "baseScore" | "roiSeed" | "scoreOfProb" | "forwardScores" | "passes">;
  if (windowed) {
    forwardPasses = windowed.forward.used.length; // the unperturbed windows, run for the Target
    parts = {
      ...windowed.parts,
      forwardScores: async (inputs) => {
        const out = await windowed.parts.forwardScores(inputs);
        forwardPasses += inputs.length * windowed.forward.used.length;
        scaffold.evaluated(inputs.length * windowed.forward.used.length);
        return out;
      },
    };
  } else {
    const { roiSeed, scoreOfProb, scoreOfRaw } = volumeRoiScore(model, target);
    const forwardScores = async (inputs: Float32Array[]) => {
      forwardPasses += inputs.length;
      return volumeForwardScores(model, inputs, batchSize, scoreOfRaw);
    };
    const [baseScore] = await forwardScores([kase.input]);
    const counted = async (inputs: Float32Array[]) => {
      const out = await forwardScores(inputs);
      scaffold.evaluated(inputs.length);
      return out;
    };
    parts = { plane: model.inputSize, baseScore, roiSeed, scoreOfProb, forwardScores: counted, passes: { forward: 1, gradient: 1 } };
  }
  const env: GradientCore = {
    seed: run.seed ?? 0,
    input: kase.input,
    channels: 1,
    ...parts,
    ...scaffold.parts,
    batchSize,
  };
  const baseScore = env.baseScore;
  const result = await scaffold.run(env, body);
  const { sessions } = scaffold;
  const ch = model.card.output.channel;
  const notes = [
    ...kase.notes,
    `gradient target: S = sum of the channel-${ch} probability over the ${target.roiCells.length} RoI voxels (S(x) = ${baseScore.toPrecision(6)}); gradients are w.r.t. the model input (the normalised volume in the model's box)`,
    ...(windowed ? [windowed.note] : []),
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
    ...(windowed ? { windows: windowed.count } : {}),
    wallMs: Date.now() - t0,
    notes,
    roiMask: target.roiMask,
    provenance: volumeProvenance(model, kase, target, {
      method,
      seed: env.seed,
      settings: { ...settings, ...(result.settings ?? {}), score: "sum of class probability over the RoI" },
      intervention: { name: "gradient", rule: sessions[0]?.rule ?? "gradient" },
      runner: { batchSize: sessions[0]?.batchSize ?? batchSize, threads: model.threads, device: model.device },
      ...(windowed ? { passes: { model: forwardPasses + sessions.reduce((n, s) => n + s.forwardPasses, 0), windows: windowed.count } } : {}),
    }),
  };
}

/** Whether a volume runs through more than one sliding window (one window is the whole box: run as one box). */
export function needsWindows(kase: VolumeCase): boolean {
  const p = kase.placement;
  return p.kind === "sliding" && p.box.some((b, a) => b > p.patch[a]);
}

/** The Target's windows (a Target resolved without them: the unperturbed windows are run here). */
export async function slidingForward(model: VolumeModel, kase: VolumeCase, target: VolumeTarget, runner: BatchRunner): Promise<VolumeForward> {
  const own = (target as ResolvedVolumeTarget).forward;
  if (own) return own;
  const forward = new VolumeForward(model, kase.placement as Placement & { kind: "sliding" }, kase.input, target.roiCells);
  await forward.runBase(runner);
  return forward;
}

/** The windows and counts of a sliding placement, as map.json and the provenance record them. */
export function slidingCount(kase: VolumeCase, forward: VolumeForward): SlidingCount {
  const p = kase.placement as Placement & { kind: "sliding" };
  return {
    patch: [p.patch[2], p.patch[1], p.patch[0]],
    overlap: p.overlap,
    weighting: p.weighting,
    total: forward.windows.length,
    overRoi: forward.used.length,
  };
}

/**
 * A gradient method's parts through sliding windows: S and its seed over the padded volume's RoI
 * cells, forward scores of stitched windows, and sessions that run every evaluation window by window
 * (window-gradients.ts). One evaluation costs a forward pass per window over the RoI (stitching), and
 * a gradient one forward pass more per window (the stitched value the activation's derivative needs).
 */
async function windowedParts(model: VolumeModel, kase: VolumeCase, target: VolumeTarget, batchSize: number, method: string) {
  const runner = model.runner(batchSize);
  const f = await slidingForward(model, kase, target, runner);
  const n = target.roiCells.length;
  const prob = makeProbability(f.spec, { channels: f.keep.length, height: 1, width: n });
  const score = (st: StitchedRoi) => {
    let s = 0;
    for (let i = 0; i < n; i++) s += prob(st.data, 0, i);
    return s;
  };
  const plane = kase.input.length;
  const C = model.outputLayout.channels;
  const { roiSeed, scoreOfProb } = roiScore(
    target.roiCells,
    C,
    model.card.output.channel,
    plane,
    makeProbability(model.card.output, { channels: C, height: 1, width: plane }),
  );
  const W = f.used.length;
  const count = slidingCount(kase, f);
  const create = async (o: GradientSessionOptions) => {
    if ((o.layers?.length ?? 0) > 0 || (o.rule ?? "gradient") !== "gradient")
      fail(
        `${method} does not run through sliding windows: it reads a layer's feature map, and each window has its own`,
        "use --method saliency, gradxinput, ig or smoothgrad on this volume, or a card whose box holds the whole volume",
      );
    const inner = await GradientSession.create(rawOutput(model), o);
    return new WindowedGradientSession(inner, f, runner, C);
  };
  const parts = {
    plane,
    baseScore: score(f.stitch()),
    roiSeed,
    scoreOfProb,
    forwardScores: async (inputs: Float32Array[]) => {
      const out: number[] = [];
      for (const x of inputs) out.push(score(await f.stitchOf(runner, x)));
      return out;
    },
    passes: { forward: W, gradient: 2 * W },
  };
  const note = `sliding windows of ${count.patch.join("x")} (overlap ${count.overlap}, ${count.weighting} weights) over the ${[...kase.placement.box].reverse().join("x")} padded volume: ${W} of its ${count.total} windows overlap the RoI; S is read on their stitched output, and each gradient runs them forward (the stitched value) and then forward/backward with the outcome's gradient scaled by each window's weights, the windows' input gradients summed`;
  return { forward: f, parts, create, count, note };
}
