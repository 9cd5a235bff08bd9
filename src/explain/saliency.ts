/**
 * Saliency (Simonyan et al. 2014): |∂S/∂x|, the largest magnitude over the input channels, where
 * S is the RoI score of gradients.ts (sum of the class probability over the RoI). Unsigned.
 */
import type { Case } from "../data/case.js";
import type { Model } from "../model/model.js";
import type { TargetSpec } from "../target/target.js";
import type { Attribution } from "./attribution.js";
import { explainGradient, type GradientCore, type GradientMap, inputGradientMap, maxAbsOverChannels } from "./gradients.js";
import { defineMethod } from "./methods.js";
import type { RunOptions } from "./run.js";
import { explainVolumeGradient } from "./volume/gradients.js";

/** The saliency map of an image or a volume. */
export async function saliencyMap(env: GradientCore): Promise<GradientMap> {
  const map = await inputGradientMap(env, (g) => maxAbsOverChannels(g, env.channels, env.plane));
  return { map, signed: false, valueUnits: "|dS/dx| (S = RoI probability sum, x = model input), max over channels" };
}

export function explainSaliency(model: Model, kase: Case, target: TargetSpec, run: RunOptions = {}): Promise<Attribution> {
  return explainGradient(model, kase, target, run, "saliency", {}, saliencyMap);
}

export const saliencyMethod = defineMethod({
  name: "saliency",
  family: "gradient",
  summary: "saliency: |d(RoI probability sum)/d(input)|, max over channels (unsigned)",
  cost: "1 forward + 1 forward/backward",
  options: {},
  explain: (ctx) => explainSaliency(ctx.model, ctx.kase, ctx.target, ctx.run),
  volume: {
    summary: "|dS/dx| per voxel of the model's box (unsigned)",
    windows: true,
    plan: (ctx) => (run) => explainVolumeGradient(ctx.model, ctx.kase, ctx.target, run, "saliency", {}, saliencyMap),
  },
});
