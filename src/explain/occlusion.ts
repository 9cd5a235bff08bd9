/**
 * Occlusion (Zeiler & Fergus): slide a window over the image, replace it by a fill (constant,
 * image mean or blurred image), one forward pass per window; overlapping windows are averaged
 * per pixel. The same engine as PdCR with a deterministic Intervention and no screening.
 */
import type { Case } from "../data/case.js";
import type { Model } from "../model/model.js";
import type { TargetSpec } from "../target/target.js";
import type { Attribution } from "./attribution.js";
import { explainBlocks } from "./block-effects.js";
import { FillIntervention, type FillKind } from "./interventions.js";
import { checkBlockFits, defineMethod } from "./methods.js";
import { fillOptions, int, num } from "./options.js";
import type { RunOptions } from "./run.js";
import { occlusionVolume } from "./volume/block-methods.js";

export interface OcclusionOptions extends RunOptions {
  /** window size in pixels (default 16) */
  window?: number;
  /** window step in pixels (default 8: overlapping windows) */
  stride?: number;
  /** default "constant" */
  fill?: FillKind;
  /** pixel value for the constant fill (default 0) */
  value?: number;
  /** Gaussian sigma for the blur fill (default 5) */
  sigma?: number;
  /** effects below tau are set to 0 (default 0: keep every effect) */
  tau?: number;
}

export const OCCLUSION_DEFAULTS = { window: 16, stride: 8, fill: "constant" as FillKind, value: 0, sigma: 5, tau: 0 };

export function explainOcclusion(model: Model, kase: Case, target: TargetSpec, opts: OcclusionOptions = {}): Promise<Attribution> {
  const o = { ...OCCLUSION_DEFAULTS, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) };
  return explainBlocks(
    model,
    kase,
    target,
    {
      method: "occlusion",
      blockSize: o.window,
      stride: o.stride,
      estimator: { screen: 1, samples: 0, tau: o.tau },
      makeIntervention: (m, k) => FillIntervention.create(m, k.image, { kind: o.fill, value: o.value, sigma: o.sigma }),
      settings: { fill: o.fill, value: o.value, sigma: o.sigma },
    },
    opts,
  );
}

export const occlusionMethod = defineMethod({
  name: "occlusion",
  family: "perturbation",
  summary: "occlusion: 16x16 window every 8 px filled with a constant (or the image mean, or a blur), overlaps averaged",
  cost: "1 + windows (about 900 at 256x256)",
  options: {
    block: int({ description: "window size in pixels", default: OCCLUSION_DEFAULTS.window, min: 1 }),
    stride: int({ description: "window step in pixels", default: OCCLUSION_DEFAULTS.stride, min: 1 }),
    ...fillOptions("what replaces the window", {
      fillKind: OCCLUSION_DEFAULTS.fill,
      fill: OCCLUSION_DEFAULTS.value,
      sigma: OCCLUSION_DEFAULTS.sigma,
    }),
    tau: num({ description: "effects with |ATE| below tau (outcome units) are set to 0", default: OCCLUSION_DEFAULTS.tau, min: 0 }),
  },
  check: (ctx) => checkBlockFits(ctx),
  explain: (ctx, o) =>
    explainOcclusion(ctx.model, ctx.kase, ctx.target, {
      ...ctx.run,
      window: o.block,
      stride: o.stride,
      fill: o.fillKind,
      value: o.fill,
      sigma: o.sigma,
      tau: o.tau,
    }),
  volume: occlusionVolume,
});
