/**
 * KernelSHAP (Lundberg & Lee 2017) over superpixels: the Shapley values of the units for the RoI
 * outcome, v(S) = outcome with the units outside S removed (filled with the image's mean colour by
 * default). Coalitions are sampled from the Shapley kernel (size k with probability ∝ 1/(k(d−k)),
 * then a uniform subset), in complementary pairs; the weighted regression with intercept f(none)
 * is solved under the constraint Σφ = f(all) − f(none) exactly (elimination of the last unit).
 * When every coalition fits the budget (2^d − 2 ≤ coalitions) all are evaluated once with their
 * exact kernel weights, and the result is the exact Shapley value.
 * The map holds effect = −φ (removal-effect sign convention): Σ effect = f(none) − f(all).
 */
import type { Case } from "../data/case.js";
import { fail } from "../errors.js";
import type { Model } from "../model/model.js";
import type { TargetSpec } from "../target/target.js";
import type { Attribution } from "./attribution.js";
import { checkCount, enumeratedCoalition, explainCoalitions, shapleyCoalition, shapleyKernelWeight } from "./coalitions.js";
import { COALITION_DEFAULTS, type CoalitionCommonOptions, coalitionBasics, coalitionOptionDecls, defined } from "./lime.js";
import { defineMethod } from "./methods.js";
import { shapleyFit } from "./surrogates.js";

export type KernelShapOptions = CoalitionCommonOptions;
export const KERNELSHAP_DEFAULTS = { ...COALITION_DEFAULTS };

const enumerable = (d: number, budget: number) => d < 31 && 2 ** d - 2 <= budget;

export async function explainKernelShap(model: Model, kase: Case, target: TargetSpec, opts: KernelShapOptions = {}): Promise<Attribution> {
  const o = { ...KERNELSHAP_DEFAULTS, ...defined(opts) };
  checkCount("coalitions", o.coalitions, 2, "use --coalitions 1000");
  return explainCoalitions(
    model,
    kase,
    target,
    {
      method: "kernelshap",
      ...coalitionBasics(o),
      count: (d) => {
        if (enumerable(d, o.coalitions)) return 2 ** d - 2;
        if (o.coalitions < 2 * d)
          fail(
            `${o.coalitions} coalitions are too few for ${d} units (KernelSHAP needs at least 2 per unit, and many more for a precise answer)`,
            `use ${Math.max(1000, 10 * d)} coalitions (explain: --coalitions; evaluate: --set kernelshap.coalitions=), or fewer units (--segments)`,
          );
        return o.coalitions;
      },
      sample: (seed, i, d) => (enumerable(d, o.coalitions) ? enumeratedCoalition(i, d) : shapleyCoalition(seed, i, d)),
      needsEmpty: true,
      fit: (Z, y, d, fAll, fNone) => {
        const n = y.length;
        const exact = enumerable(d, o.coalitions);
        const w = new Float64Array(n).fill(1);
        if (exact) {
          for (let i = 0; i < n; i++) {
            let k = 0;
            for (let j = 0; j < d; j++) k += Z[i * d + j];
            w[i] = shapleyKernelWeight(d, k);
          }
        }
        const f = shapleyFit(Z, y, w, d, fAll, fNone);
        if (d === 1) return { effect: f.phi.map((v) => -v), stderr: Float64Array.of(0), notes: ["one unit: its Shapley value is f(all) - f(none)"] };
        return {
          effect: f.phi.map((v) => -v),
          stderr: exact ? new Float64Array(d) : f.stderr,
          notes: [
            exact
              ? `exact Shapley values: all ${n} coalitions of ${d} units enumerated`
              : `KernelSHAP: ${n} paired coalitions of ${d} units, weighted R² ${f.r2.toFixed(3)}`,
          ],
        };
      },
      settings: {
        sampler: "Shapley kernel sizes, complementary pairs (exact enumeration when 2^d - 2 <= coalitions)",
        constraint: "sum(phi) = f(all) - f(none)",
      },
    },
    opts,
  );
}

export const kernelshapMethod = defineMethod({
  name: "kernelshap",
  family: "perturbation",
  summary:
    "KernelSHAP: Shapley values of ~100 SLIC superpixels (removed = image mean colour), 1000 paired coalitions from the Shapley kernel, efficiency exact; effect = -phi",
  cost: "2 + coalitions (or 2^units when that is smaller: exact)",
  options: coalitionOptionDecls(),
  explain: (ctx, o) => explainKernelShap(ctx.model, ctx.kase, ctx.target, { ...ctx.run, ...o }),
});
