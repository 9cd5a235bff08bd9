/**
 * RISE (Petsiuk et al. 2018): N random masks, each an s×s grid of cells kept with probability p,
 * upsampled bilinearly to (s+1)·⌈H/s⌉ and cropped at a random shift (the reference
 * implementation's recipe), so masks are smooth and continuous in [0, 1]. The model input blends
 * the image (mask 1) with a fill (mask 0): by default the image's mean colour, since RISE's
 * reference code multiplies the *normalised* tensor, i.e. blends towards the dataset mean. The RoI
 * is never masked (PdCR's rule).
 *
 * Estimator: the mask-weighted average, centred so that it has the removal-effect sign convention:
 * effect(x) = mean_i −(f_i − f̄)(m_i(x)/p − 1)/(1 − p), which for binary masks estimates
 * E[f | x removed] − E[f | x kept]; RISE's saliency S = Σ f m /(N p) is the uncentred version
 * (effect = −(S − f̄·m̄/p)/(1 − p)). Per-pixel standard errors come from the same N terms.
 */
import type { Case } from "../data/case.js";
import { fail } from "../errors.js";
import type { Model } from "../model/model.js";
import type { TargetSpec } from "../target/target.js";
import type { Attribution } from "./attribution.js";
import { checkCount } from "./coalitions.js";
import { FillIntervention, type FillKind } from "./interventions.js";
import { defined } from "./lime.js";
import { defineMethod } from "./methods.js";
import { fillOptions, int, num } from "./options.js";
import { riseEstimate, riseMask } from "./rise-masks.js";
import { RunContext, type RunOptions } from "./run.js";
import { riseVolume } from "./volume/rise.js";

export interface RiseOptions extends RunOptions {
  /** number of random masks N (default 4000) */
  masks?: number;
  /** grid cells per side s (default 8) */
  cells?: number;
  /** probability p that a cell is kept (default 0.5) */
  keepProbability?: number;
  /** default "mean" */
  fillKind?: FillKind;
  /** pixel value of the constant fill (default 0) */
  fill?: number;
  /** Gaussian sigma of the blur fill (default 5) */
  sigma?: number;
}

export { riseMask };

export const RISE_DEFAULTS = { masks: 4000, cells: 8, keepProbability: 0.5, fillKind: "mean" as FillKind, fill: 0, sigma: 5 };

export async function explainRise(model: Model, kase: Case, targetSpec: TargetSpec, opts: RiseOptions = {}): Promise<Attribution> {
  const o = { ...RISE_DEFAULTS, ...defined(opts) };
  checkCount("masks", o.masks, 2, "use --masks 4000");
  checkCount("cells", o.cells, 2, "use --cells 8");
  if (o.cells > Math.min(model.height, model.width))
    fail(`cells (${o.cells}) must not exceed the input size ${model.height}x${model.width}`, "use --cells 8");
  if (!(o.keepProbability > 0 && o.keepProbability < 1))
    fail(`keep probability must be in (0, 1), got ${o.keepProbability}`, "use --keep-probability 0.5");
  const H = model.height,
    W = model.width,
    plane = H * W,
    C = model.channels;
  const fillIv = await FillIntervention.create(model, kase.image, { kind: o.fillKind, value: o.fill, sigma: o.sigma });
  const s = await RunContext.open(model, kase, targetSpec, opts);
  const filled = Float32Array.from(s.base);
  fillIv.apply(filled, { index: 0, row: 0, col: 0, height: H, width: W });
  const inside = s.target.region.inside;
  const mask = new Float32Array(plane);
  const write = (_stream: number, i: number, dst: Float32Array) => {
    riseMask(s.seed, i, H, W, o.cells, o.keepProbability, mask);
    for (let px = 0; px < plane; px++) {
      if (inside[px]) continue;
      const m = mask[px];
      for (let c = 0; c < C; c++) {
        const k = c * plane + px;
        dst[k] = filled[k] + m * (dst[k] - filled[k]);
      }
    }
  };
  const settings = {
    masks: o.masks,
    cells: o.cells,
    keepProbability: o.keepProbability,
    fill: { kind: o.fillKind, value: o.fill, sigma: o.sigma },
    upsampling: "bilinear to (s+1)*ceil(H/s), random shift",
    estimator: "centred mask-weighted average",
  };
  const scorer = s.scorer(
    s.checkpointKey(["model", "image", "mask", "card", "seed", "target", { method: "rise", settings, intervention: fillIv.describe() }]),
    write,
  );
  s.planExactly(1 + o.masks);
  const scores = await scorer.score(
    0,
    Array.from({ length: o.masks }, (_, i) => i),
    "masks",
  );
  const { effect, stderr, mean } = riseEstimate(scores, o.keepProbability, plane, (i, out) =>
    riseMask(s.seed, i, H, W, o.cells, o.keepProbability, out),
  );
  const map = new Float32Array(plane),
    stderrMap = new Float32Array(plane);
  for (let px = 0; px < plane; px++) {
    map[px] = inside[px] ? 0 : effect[px];
    stderrMap[px] = inside[px] ? Number.NaN : stderr[px];
  }
  return s.finish({
    method: "rise",
    unitKind: "pixel",
    signed: true,
    map,
    stderrMap,
    units: [],
    roiCells: 0,
    forwardPasses: 1 + o.masks,
    tau: 0,
    settings,
    intervention: fillIv.describe(),
    notes: [`RISE: mean outcome over ${o.masks} masks ${mean.toFixed(4)} (unperturbed ${s.target.base.toFixed(4)})`],
  });
}

export const riseMethod = defineMethod({
  name: "rise",
  family: "perturbation",
  summary:
    "RISE: 4000 random smooth masks (8x8 cells kept w.p. 0.5, bilinear, random shift) blending the image with its mean colour; centred mask-weighted average per pixel",
  cost: "1 + masks",
  options: {
    masks: int({ description: "number of random masks N (forward passes)", default: RISE_DEFAULTS.masks, min: 2 }),
    cells: int({ description: "mask grid cells per side s", default: RISE_DEFAULTS.cells, min: 2 }),
    keepProbability: num({
      description: "probability p that a mask cell keeps the image",
      default: RISE_DEFAULTS.keepProbability,
      min: 0,
      max: 1,
      minExclusive: true,
      maxExclusive: true,
    }),
    ...fillOptions("what the mask blends the image with", RISE_DEFAULTS),
  },
  explain: (ctx, o) => explainRise(ctx.model, ctx.kase, ctx.target, { ...ctx.run, ...o }),
  volume: riseVolume,
});
