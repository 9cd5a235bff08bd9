/**
 * DeepLIFT with the rescale rule (Shrikumar et al. 2017): multipliers m from the gradient builder's
 * "deeplift" rule, run on the image and the baseline together, give contributions
 * C_c(p) = m_c(p) · (x − b)_c(p) that add up to S(x) − S(b) (completeness, checked in the notes).
 * The map holds −Σ_c C_c(p) (removal-effect convention). Baselines as IG's. Summation-to-delta is
 * exact only without Softmax/LayerNormalization (the builder uses their gradient at x) and without
 * data-dependent switches (SegNet's unpooling masks): on SegFormer and SegNet the gap is large and
 * the notes say so.
 */
import type { Case } from "../data/case.js";
import type { Model } from "../model/model.js";
import type { TargetSpec } from "../target/target.js";
import type { Attribution } from "./attribution.js";
import { BASELINE_OPTIONS, type BaselineOptions, baselineInput, explainGradient } from "./gradients.js";
import { completenessNote, IG_DEFAULTS } from "./ig.js";
import { defineMethod } from "./methods.js";
import { fillOf } from "./options.js";
import type { RunOptions } from "./run.js";

export interface DeepLiftOptions extends RunOptions {
  baseline?: Partial<BaselineOptions>;
}

export function explainDeepLift(model: Model, kase: Case, target: TargetSpec, opts: DeepLiftOptions = {}): Promise<Attribution> {
  const b: BaselineOptions = { ...IG_DEFAULTS.baseline, ...opts.baseline };
  return explainGradient(
    model,
    kase,
    target,
    opts,
    "deeplift",
    { rule: "deeplift-rescale", fillKind: b.kind, fill: b.value, sigma: b.sigma },
    async (env) => {
      const { input: base, describe } = await baselineInput(model, kase, b);
      const x = env.input;
      const plane = model.height * model.width;
      env.plan(3); // the unperturbed pass, one DeepLIFT evaluation and the baseline's forward pass
      const s = await env.session({ rule: "deeplift" });
      const map = new Float32Array(plane);
      let total = 0;
      await s.run(
        [0],
        (_, f) => (f.input.set(x), f.reference!.set(base), f.seed.set(env.roiSeed)),
        (slot) => {
          for (let c = 0; c < model.channels; c++) {
            for (let p = 0; p < plane; p++) {
              const i = c * plane + p;
              const contrib = slot.inputGrad[i] * (x[i] - base[i]);
              map[p] -= contrib;
              total += contrib;
            }
          }
        },
      );
      const [sBase] = await env.forwardScores([base]);
      const c = completenessNote(total, env.baseScore - sBase);
      const notes = [`baseline: ${describe}`, c.note];
      // InstanceNormalization is also how PyTorch exports GroupNorm.
      const nonLocal = model.graph.opTypes.filter(
        (op) =>
          op === "Softmax" || op === "LogSoftmax" || op === "LayerNormalization" || op === "InstanceNormalization" || op === "GroupNormalization",
      );
      const switches = model.graph.opTypes.filter((op) => ["Equal", "Greater", "Less", "Where", "ArgMax", "ArgMin", "MaxUnpool"].includes(op));
      if (c.gap > 0.05) {
        const why = [
          ...(nonLocal.length ? [`${nonLocal.join(" and ")} use their gradient at x, not a DeepLIFT multiplier`] : []),
          ...(switches.length
            ? [
                `data-dependent switches (${switches.join(", ")}, e.g. SegNet's max-unpooling masks) differ between image and baseline and carry no multiplier`,
              ]
            : []),
        ];
        notes.push(
          `summation-to-delta does not hold for this network${why.length ? `: ${why.join("; ")}` : ""}; read the map as a gradient-like attribution`,
        );
      }
      return {
        map,
        signed: true,
        valueUnits: "DeepLIFT contribution to S(baseline) - S(x) of replacing the pixel by the baseline (-sum_c m*(x-b))",
        notes,
        settings: { completenessGap: c.gap, baselineScore: sBase },
      };
    },
  );
}

export const deepLiftMethod = defineMethod({
  name: "deeplift",
  family: "gradient",
  summary: "DeepLIFT (rescale rule) against a black (or mean/blur) baseline; -sum_c contributions per pixel (signed), completeness in the notes",
  cost: "2 forward + 1 DeepLIFT pass (forward of image and baseline, 1 backward)",
  options: { ...BASELINE_OPTIONS },
  explain: (ctx, o) => explainDeepLift(ctx.model, ctx.kase, ctx.target, { ...ctx.run, baseline: fillOf(o) }),
});
