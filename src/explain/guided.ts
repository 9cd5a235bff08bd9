/**
 * Guided backpropagation (Springenberg et al. 2015): the gradient of the RoI score where every
 * ReLU passes back only positive gradients at positive inputs (the "guided" rule of the gradient
 * builder). Shown like saliency: max over channels of |·|. Unsigned.
 */
import type { Case } from "../data/case.js";
import type { Model } from "../model/model.js";
import type { TargetSpec } from "../target/target.js";
import type { Attribution } from "./attribution.js";
import { explainGradient, inputGradientMap, maxAbsOverChannels } from "./gradients.js";
import { defineMethod } from "./methods.js";
import type { RunOptions } from "./run.js";

export function explainGuided(model: Model, kase: Case, target: TargetSpec, run: RunOptions = {}): Promise<Attribution> {
  return explainGradient(model, kase, target, run, "guided", { rule: "guided" }, async (env) => {
    const map = await inputGradientMap(env, (g) => maxAbsOverChannels(g, model.channels, model.height * model.width), { rule: "guided" });
    return { map, signed: false, valueUnits: "|guided-backprop dS/dx| (S = RoI probability sum), max over channels" };
  });
}

export const guidedMethod = defineMethod({
  name: "guided",
  family: "gradient",
  summary: "guided backpropagation: ReLUs pass back only positive gradients; max |.| over channels (unsigned)",
  cost: "1 forward + 1 forward/backward",
  options: {},
  explain: (ctx) => explainGuided(ctx.model, ctx.kase, ctx.target, ctx.run),
});
