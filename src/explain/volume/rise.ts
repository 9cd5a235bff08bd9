/**
 * RISE on volumes: the 2D recipe and estimator (rise.ts) in three dimensions. Each of N masks is an
 * s×s×s Bernoulli(p) grid upsampled trilinearly with a random shift (`riseMask3d`) over the part of
 * the model's box that holds the volume; the input blends the volume (mask 1) with a fill (mask 0:
 * the volume's mean intensity by default, or a constant raw intensity), the RoI's voxels never masked.
 * The centred mask-weighted average (MaskAverage) gives each voxel's effect and standard error.
 * Scores are checkpointed: an interrupted run with the same settings resumes.
 */
import { boxToInput } from "../../data/volume/volume-case.js";
import { fail } from "../../errors.js";
import { threeDModel } from "../../model/volume-model.js";
import { outcomeUnits } from "../../target/outcome.js";
import { type ProgressEvent, ProgressTracker, type WorkPlan } from "../../util/progress.js";
import { DEFAULT_CHUNK, type Resumable, resumableEvaluate } from "../checkpoint.js";
import { checkCount } from "../coalitions.js";
import type { FillKind } from "../interventions.js";
import type { VolumeForm } from "../methods.js";
import { riseEstimate, riseMask3d } from "../rise-masks.js";
import type { SampleRequest } from "../samples.js";
import { volumeRange } from "./boxes.js";
import { scoreVolumeSamples, VOLUME_BATCH_SIZE } from "./engine.js";
import { refuseBlur, volumeFill } from "./fills.js";
import { slidingCount, slidingForward } from "./gradients.js";
import { volumeProvenance } from "./provenance.js";

interface RiseVolumeOptions {
  masks: number;
  cells: number;
  keepProbability: number;
  fillKind: FillKind;
  fill: number;
  sigma: number;
}

export const riseVolume: VolumeForm<RiseVolumeOptions> = {
  summary: "random s³-cell masks (trilinear, random shift) blending the volume with its mean (or --fill); centred mask-weighted average per voxel",
  windows: true,
  check: (o) => refuseBlur("rise", o.fillKind),
  plan: ({ model: net, kase, target }, o) => {
    const model = threeDModel(net, "rise");
    checkCount("masks", o.masks, 2, "use --masks 4000");
    checkCount("cells", o.cells, 2, "use --cells 8");
    const range = volumeRange(kase.placement, kase.space.dims);
    const sub = range.map(([lo, hi]) => hi - lo);
    if (o.cells > Math.min(...sub))
      fail(`cells (${o.cells}) must not exceed the volume's ${sub.join("x")} voxels in the model's box`, "use --cells 4 or 8");
    return async (run) => {
      const t0 = Date.now();
      const seed = run.seed ?? 0;
      const [D, H, W_] = sub;
      const n = D * H * W_;
      const [bx, by] = kase.placement.box;
      // cell of the model's box of sub-box index l, and whether the RoI holds it
      const cellOf = new Uint32Array(n);
      for (let z = 0; z < D; z++)
        for (let y = 0; y < H; y++)
          for (let x = 0; x < W_; x++) cellOf[(z * H + y) * W_ + x] = ((z + range[0][0]) * by + y + range[1][0]) * bx + x + range[2][0];
      const inRoi = new Uint8Array(kase.input.length);
      for (const c of target.roiCells) inRoi[c] = 1;
      const fill = volumeFill(kase, o.fillKind, o.fill);
      const mask = new Float32Array(n);
      const settings = {
        masks: o.masks,
        cells: o.cells,
        keepProbability: o.keepProbability,
        fill: { kind: o.fillKind, value: o.fill, sigma: o.sigma },
        upsampling: "trilinear to (s+1)*ceil(n/s) per axis, random shift",
        estimator: "centred mask-weighted average",
      };
      const runner = model.runner(run.batchSize ?? VOLUME_BATCH_SIZE);
      // A sliding card's Target reads the windows' stitched RoI: every mask runs the windows over the RoI.
      const forward = kase.placement.kind === "sliding" ? await slidingForward(model, kase, target, runner) : undefined;
      const W = forward?.used.length ?? 1;
      // Everything that decides the scores: a rerun with the same key reuses the finished ones.
      const key = {
        model: model.sha256,
        image: kase.imageSha256,
        mask: kase.maskSha256 ?? null,
        // the labels that made the reference mask, and a GPU's samples apart (as the box engine's key)
        ...(kase.labels ? { labels: kase.labels } : {}),
        ...(model.device === "cpu" ? {} : { device: model.device }),
        card: model.card,
        target: { roi: target.describe, bounds: target.roiBounds, outcome: target.outcome, ref: target.referenceKind },
        method: "rise",
        seed,
        settings,
        intervention: fill.describe,
        // sliding cards only, so the keys of centre cards stay as they were
        ...(kase.placement.kind === "sliding" ? { placement: kase.placement } : {}),
      };
      let resumable: Resumable | undefined;
      // a mask touches the whole volume's part of the box, so it re-runs every window over the RoI
      const whole = { z: range[0][0], y: range[1][0], x: range[2][0], depth: D, height: H, width: W_ };
      let maskOf = -1;
      const perturb = (r: SampleRequest, put: (cell: number, value: number) => void) => {
        if (maskOf !== r.draw) riseMask3d(seed, r.draw, sub, o.cells, o.keepProbability, mask);
        maskOf = r.draw;
        for (let l = 0; l < n; l++) {
          const c = cellOf[l];
          if (!inRoi[c]) put(c, fill.value + mask[l] * (kase.input[c] - fill.value));
        }
      };
      const raw = (reqs: SampleRequest[]) =>
        scoreVolumeSamples(model, runner, target, forward, kase.input, reqs, { boxes: () => [whole], perturb }, (r, _, v) =>
          resumable!.finished(r, v),
        );
      // Progress in model passes: the unperturbed pass (reported with the first event), then W per mask.
      const listen = run.onProgress;
      const plan: WorkPlan = { total: W * (1 + o.masks), bound: W * (1 + o.masks) };
      let baseReported = false;
      const onProgress =
        listen &&
        ((e: ProgressEvent) => {
          listen({ ...e, done: e.done * W, total: e.total * W, resumed: (e.resumed ?? 0) * W, plan });
          if (baseReported) return;
          baseReported = true;
          new ProgressTracker("unperturbed pass", W, (b) => listen({ ...b, plan })).add(W);
        });
      resumable = resumableEvaluate(raw, { path: run.checkpointPath, key, chunk: DEFAULT_CHUNK, onProgress });
      const scores = await resumable.evaluate(
        Array.from({ length: o.masks }, (_, i) => ({ unit: 0, draw: i })),
        "masks",
      );
      await resumable.checkpoint?.save();
      const {
        effect,
        stderr,
        mean: meanScore,
      } = riseEstimate(scores, o.keepProbability, n, (i, out) => riseMask3d(seed, i, sub, o.cells, o.keepProbability, out));
      const count = forward && slidingCount(kase, forward);
      // On the box: the estimate over the volume's part, 0 (stderr NaN) on the RoI, which is never masked.
      const boxMap = new Float32Array(kase.input.length),
        boxErr = new Float32Array(kase.input.length).fill(Number.NaN);
      for (let l = 0; l < n; l++) {
        const c = cellOf[l];
        boxMap[c] = inRoi[c] ? 0 : effect[l];
        boxErr[c] = inRoi[c] ? Number.NaN : stderr[l];
      }
      const { dims, affine, spacing } = kase.volume;
      return {
        method: "rise",
        unitKind: "voxel",
        signed: true,
        valueUnits: outcomeUnits(target.outcome),
        baseOutcome: target.base,
        outcome: target.outcome,
        reference: target.referenceKind,
        roi: target.describe,
        tau: 0,
        map: boxToInput(kase, boxMap),
        stderrMap: boxToInput(kase, boxErr),
        dims,
        affine,
        spacing,
        units: [],
        roiCells: 0,
        samples: o.masks,
        forwardPasses: forward ? W * (1 + o.masks) : 1 + o.masks,
        ...(count ? { windows: count } : {}),
        wallMs: Date.now() - t0,
        notes: [
          ...kase.notes,
          ...(count
            ? [
                `sliding windows of ${count.patch.join("x")} (overlap ${count.overlap}, ${count.weighting} weights) over the ${[...kase.placement.box].reverse().join("x")} padded volume: ${W} of its ${count.total} windows overlap the RoI; each mask re-ran all ${W} (${W * (1 + o.masks)} passes with the unperturbed ones)`,
              ]
            : []),
          `RISE: mean outcome over ${o.masks} masks ${meanScore.toFixed(4)} (unperturbed ${target.base.toFixed(4)})`,
          ...(resumable.checkpoint?.notes() ?? []),
        ],
        roiMask: target.roiMask,
        provenance: volumeProvenance(model, kase, target, {
          method: "rise",
          seed,
          settings,
          intervention: fill.describe,
          runner: { batchSize: runner.plan.batchSize, threads: model.threads, device: model.device },
          ...(count ? { passes: { samples: o.masks, model: W * (1 + o.masks), windows: count } } : {}),
        }),
      };
    };
  },
};
