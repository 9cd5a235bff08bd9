/**
 * Integrated gradients (Sundararajan et al. 2017) of the RoI score S along the straight path from
 * a baseline b to the image x, in model-input space:
 *
 *   IG_c(p) = (x − b)_c(p) · (1/m) Σ_{k=0}^{m−1} ∂S/∂x_c(p) at b + α_k (x − b),  α_k = (k + ½)/m
 *
 * (the Riemann midpoint rule: m gradient evaluations, batched along the path). The map holds
 * −Σ_c IG_c(p) — the removal-effect convention: Σ_p map = S(b) − S(x) up to the quadrature error,
 * which is reported in the notes as the completeness gap. Baselines as occlusion's fills: black
 * (default), the image's mean colour, or a Gaussian blur.
 */

import type { Case } from "../data/case.js";
import { fail } from "../errors.js";
import type { Model } from "../model/model.js";
import type { TargetSpec } from "../target/target.js";
import type { Attribution } from "./attribution.js";
import { BASELINE_OPTIONS, type BaselineOptions, baselineInput, explainGradient, type GradientCore, type GradientMap } from "./gradients.js";
import { defineMethod } from "./methods.js";
import { fillOf, int } from "./options.js";
import type { RunOptions } from "./run.js";
import { filledBox, refuseBlur, volumeFill } from "./volume/fills.js";
import { explainVolumeGradient } from "./volume/gradients.js";

export interface IgOptions extends RunOptions {
  /** path points m (default 32) */
  steps?: number;
  baseline?: Partial<BaselineOptions>;
}

export const IG_DEFAULTS = { steps: 32, baseline: { kind: "constant", value: 0, sigma: 5 } as BaselineOptions };

/** "Σ attributions = a vs S(x) − S(b) = d (gap g%)", the completeness check of additive methods. */
export function completenessNote(total: number, diff: number): { note: string; gap: number } {
  const gap = Math.abs(total - diff) / Math.max(Math.abs(diff), 1e-12);
  return {
    note: `completeness: sum of attributions = ${total.toPrecision(6)} vs S(x) - S(baseline) = ${diff.toPrecision(6)} (gap ${(100 * gap).toFixed(2)}%)`,
    gap,
  };
}

/** The settings IG records (2D and 3D alike). */
export function igSettings(steps: number, b: BaselineOptions): Record<string, unknown> {
  return { steps, rule: "riemann-midpoint", fillKind: b.kind, fill: b.value, sigma: b.sigma };
}

/** Integrated gradients from `baseline` (model input, same shape as x) on an image or a volume. */
export async function igMap(env: GradientCore, steps: number, baseline: { input: Float32Array; describe: string }): Promise<GradientMap> {
  const { input: base, describe } = baseline;
  const x = env.input;
  const n = x.length;
  const plane = env.plane;
  const { forward, gradient } = env.passes;
  env.plan(forward + steps * gradient + forward); // the unperturbed pass, the steps and the baseline's forward pass
  env.stage("integrated gradients", steps * gradient + forward);
  const s = await env.session();
  const mean = new Float64Array(n);
  const alphas = Array.from({ length: steps }, (_, k) => (k + 0.5) / steps);
  await s.run(
    alphas,
    (a, f) => {
      for (let i = 0; i < n; i++) f.input[i] = base[i] + a * (x[i] - base[i]);
      f.seed.set(env.roiSeed);
    },
    (slot) => {
      for (let i = 0; i < n; i++) mean[i] += slot.inputGrad[i];
    },
  );
  const map = new Float32Array(plane);
  let total = 0;
  for (let c = 0; c < env.channels; c++) {
    for (let p = 0; p < plane; p++) {
      const i = c * plane + p;
      const attr = ((x[i] - base[i]) * mean[i]) / steps;
      map[p] -= attr;
      total += attr;
    }
  }
  const [sBase] = await env.forwardScores([base]);
  const c = completenessNote(total, env.baseScore - sBase);
  return {
    map,
    signed: true,
    valueUnits: "change of S (RoI probability sum) attributed to replacing the pixel by the baseline (-sum_c IG)",
    notes: [`baseline: ${describe}; ${steps} midpoint steps`, c.note],
    settings: { completenessGap: c.gap, baselineScore: sBase },
  };
}

export function checkSteps(steps: number): void {
  if (!Number.isInteger(steps) || steps < 1) fail(`--steps must be a positive integer, got ${steps}`, "use --steps 32");
}

export function explainIg(model: Model, kase: Case, target: TargetSpec, opts: IgOptions = {}): Promise<Attribution> {
  const steps = opts.steps ?? IG_DEFAULTS.steps;
  const b: BaselineOptions = { ...IG_DEFAULTS.baseline, ...opts.baseline };

  checkSteps(steps);
  return explainGradient(model, kase, target, opts, "ig", igSettings(steps, b), async (env) =>
    igMap(env, steps, await baselineInput(model, kase, b)),
  );
}

export const igMethod = defineMethod({
  name: "ig",
  family: "gradient",
  summary: "integrated gradients from a black (or mean/blur) baseline, 32 midpoint steps; -sum_c IG per pixel (signed), completeness in the notes",
  cost: "2 forward + steps forward/backward (32)",
  options: {
    steps: int({ description: "points on the path from the baseline to the image", default: IG_DEFAULTS.steps, min: 1 }),
    ...BASELINE_OPTIONS,
  },
  explain: (ctx, o) => explainIg(ctx.model, ctx.kase, ctx.target, { ...ctx.run, steps: o.steps, baseline: fillOf(o) }),
  volume: {
    summary: "integrated gradients from the volume set to raw intensity --fill (default 0) or its mean, per voxel (signed)",
    windows: true,
    check: (o) => refuseBlur("ig", o.fillKind),
    plan: (ctx, o) => {
      checkSteps(o.steps);
      const f = volumeFill(ctx.kase, o.fillKind, o.fill);
      const baseline = {
        input: filledBox(ctx.kase, f.value),
        describe: f.describe.kind === "mean" ? `the volume's mean intensity ${f.describe.raw.toPrecision(6)}` : `raw intensity ${f.describe.raw}`,
      };
      const settings = { ...igSettings(o.steps, fillOf(o)), baseline: f.describe };
      return (run) => explainVolumeGradient(ctx.model, ctx.kase, ctx.target, run, "ig", settings, (env) => igMap(env, o.steps, baseline));
    },
  },
});
