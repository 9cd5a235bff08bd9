/**
 * Gradient × input (Shrikumar et al. 2016): the first-order Taylor estimate of what removing each
 * pixel does to the RoI score, with "removed" = 0 in model-input space (black for the zoo's
 * unnormalised models; the mean colour of a model normalised with mean/std).
 *
 *   effect(p) = −Σ_c ∂S/∂x_c(p) · x_c(p)     ≈ S(x with pixel p set to 0) − S(x)
 *
 * Signed in the removal-effect convention: negative = the pixel's content supported the RoI.
 */
import type { Case } from "../data/case.js";
import type { Model } from "../model/model.js";
import type { TargetSpec } from "../target/target.js";
import type { Attribution } from "./attribution.js";
import { explainGradient, type GradientCore, type GradientMap, inputGradientMap, sumOverChannels } from "./gradients.js";
import { defineMethod } from "./methods.js";
import type { RunOptions } from "./run.js";
import { explainVolumeGradient } from "./volume/gradients.js";

/** The gradient × input map of an image or a volume. */
export async function gradXInputMap(env: GradientCore): Promise<GradientMap> {
  const map = await inputGradientMap(env, (g) => sumOverChannels(g, env.input, undefined, env.channels, env.plane, -1));
  return {
    map,
    signed: true,
    valueUnits: "first-order change of S (RoI probability sum) when the pixel is set to 0 in model-input space: -sum_c g*x",
  };
}

export const GRADXINPUT_SETTINGS = { baseline: "zero model input" };

export function explainGradXInput(model: Model, kase: Case, target: TargetSpec, run: RunOptions = {}): Promise<Attribution> {
  return explainGradient(model, kase, target, run, "gradxinput", GRADXINPUT_SETTINGS, gradXInputMap);
}

export const gradXInputMethod = defineMethod({
  name: "gradxinput",
  family: "gradient",
  summary: "gradient x input: -sum_c dS/dx * x, first-order effect of zeroing each pixel of the model input (signed)",
  cost: "1 forward + 1 forward/backward",
  options: {},
  explain: (ctx) => explainGradXInput(ctx.model, ctx.kase, ctx.target, ctx.run),
  volume: {
    summary: "-dS/dx * x per voxel, x = the normalised volume (signed)",
    windows: true,
    plan: (ctx) => (run) => explainVolumeGradient(ctx.model, ctx.kase, ctx.target, run, "gradxinput", GRADXINPUT_SETTINGS, gradXInputMap),
  },
});
