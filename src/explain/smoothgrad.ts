/**
 * SmoothGrad (Smilkov et al. 2017): the gradient of the RoI score averaged over noisy copies of the
 * input, x + N(0, σ²) with σ = noise · (max − min of the model input), then shown like saliency:
 *
 *   map(p) = max_c | (1/n) Σ_j ∂S/∂x_c(p) at x + ε_j |
 *
 * (the paper averages the gradient itself, not its magnitude). Unsigned; the standard error of the
 * mean gradient (of the channel giving the pixel its value) is the stderr map. Noise is drawn from the
 * counter-based generator keyed by (seed, sample, element), so the map does not depend on the
 * batch size.
 */

import type { Case } from "../data/case.js";
import { fail } from "../errors.js";
import type { Model } from "../model/model.js";
import type { TargetSpec } from "../target/target.js";
import { uniform } from "../util/rng.js";
import { STREAM } from "../util/streams.js";
import type { Attribution } from "./attribution.js";
import { explainGradient, type GradientCore, type GradientMap, maxAbsOverChannels } from "./gradients.js";
import { defineMethod } from "./methods.js";
import { int, num } from "./options.js";
import type { RunOptions } from "./run.js";
import { explainVolumeGradient } from "./volume/gradients.js";

export interface SmoothGradOptions extends RunOptions {
  /** noisy samples n (default 25) */
  samples?: number;
  /** noise standard deviation as a fraction of the model input's range (default 0.15) */
  noise?: number;
}

export const SMOOTHGRAD_DEFAULTS = { samples: 25, noise: 0.15 };

/** Standard normal number for (seed, stream, index), Box-Muller on two counter-based uniforms. */
export function gaussian(seed: number, stream: number, index: number): number {
  const u1 = 1 - uniform(seed, stream, 2 * index); // (0, 1]
  const u2 = uniform(seed, stream, 2 * index + 1);
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}

export function checkSmoothGrad(samples: number, noise: number): void {
  if (!Number.isInteger(samples) || samples < 1) fail(`--samples must be a positive integer, got ${samples}`, "use --samples 25");
  if (!(noise >= 0)) fail(`--noise must be >= 0, got ${noise}`, "use --noise 0.15 (a fraction of the input range)");
}

/** The SmoothGrad map of an image or a volume. */
export async function smoothGradMap(env: GradientCore, samples: number, noise: number): Promise<GradientMap> {
  const x = env.input;
  const n = x.length;
  let lo = Infinity,
    hi = -Infinity;
  for (const v of x) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  const sigma = noise * (hi - lo);
  env.plan(env.passes.forward + samples * env.passes.gradient);
  env.stage("smoothgrad", samples * env.passes.gradient);
  const s = await env.session();
  const mean = new Float64Array(n),
    sq = new Float64Array(n);
  const ids = Array.from({ length: samples }, (_, j) => j);
  await s.run(
    ids,
    (j, f) => {
      for (let i = 0; i < n; i++) f.input[i] = x[i] + (sigma > 0 ? sigma * gaussian(env.seed, STREAM.smoothGradNoise + j, i) : 0);
      f.seed.set(env.roiSeed);
    },
    (slot) => {
      for (let i = 0; i < n; i++) {
        const g = slot.inputGrad[i];
        mean[i] += g;
        sq[i] += g * g;
      }
    },
  );
  for (let i = 0; i < n; i++) mean[i] /= samples;
  const { plane, channels } = env;
  const map = maxAbsOverChannels(mean, channels, plane);
  // Standard error of the mean gradient of the channel that gives the pixel its value.
  const stderrMap = new Float32Array(plane).fill(Number.NaN);
  if (samples > 1) {
    for (let p = 0; p < plane; p++) {
      let best = 0;
      for (let c = 1; c < channels; c++) if (Math.abs(mean[c * plane + p]) > Math.abs(mean[best * plane + p])) best = c;
      const i = best * plane + p;
      const variance = Math.max(0, (sq[i] - samples * mean[i] * mean[i]) / (samples - 1));
      stderrMap[p] = Math.sqrt(variance / samples);
    }
  }
  return {
    map,
    stderrMap,
    signed: false,
    valueUnits: "|mean over noisy copies of dS/dx| (S = RoI probability sum), max over channels",
    notes: [`noise sigma = ${noise} x input range ${(hi - lo).toPrecision(4)} = ${sigma.toPrecision(4)} (model-input units), ${samples} samples`],
  };
}

export function explainSmoothGrad(model: Model, kase: Case, target: TargetSpec, opts: SmoothGradOptions = {}): Promise<Attribution> {
  const samples = opts.samples ?? SMOOTHGRAD_DEFAULTS.samples;
  const noise = opts.noise ?? SMOOTHGRAD_DEFAULTS.noise;

  checkSmoothGrad(samples, noise);
  return explainGradient(model, kase, target, opts, "smoothgrad", { samples, noise }, (env) => smoothGradMap(env, samples, noise));
}

export const smoothGradMethod = defineMethod({
  name: "smoothgrad",
  family: "gradient",
  summary: "SmoothGrad: gradient averaged over 25 noisy copies (sigma 0.15 of the input range), max |.| over channels (unsigned)",
  cost: "1 forward + samples forward/backward (25)",
  options: {
    samples: int({ description: "noisy copies of the input", default: SMOOTHGRAD_DEFAULTS.samples, min: 1 }),
    noise: num({ description: "noise standard deviation as a fraction of the model input's range", default: SMOOTHGRAD_DEFAULTS.noise, min: 0 }),
  },
  explain: (ctx, o) => explainSmoothGrad(ctx.model, ctx.kase, ctx.target, { ...ctx.run, samples: o.samples, noise: o.noise }),
  volume: {
    summary: "gradient averaged over noisy copies of the model's box, |.| per voxel (unsigned)",
    windows: true,
    plan: (ctx, o) => {
      checkSmoothGrad(o.samples, o.noise);
      const settings = { samples: o.samples, noise: o.noise };
      return (run) =>
        explainVolumeGradient(ctx.model, ctx.kase, ctx.target, run, "smoothgrad", settings, (env) => smoothGradMap(env, o.samples, o.noise));
    },
  },
});
