/**
 * Estimators: how outcome samples become a unit's effect.
 * ScreenedAte is PdCR's: screen with S draws, drop the unit when every |Δ| < τ; otherwise the
 * mean Δ of N fresh draws, dropped again when |mean| < τ.
 */
import { fail } from "../errors.js";
import type { WorkPlan } from "../util/progress.js";
import type { Evaluate, SampleRequest } from "./samples.js";
import { ONE_PASS, type PassCost, paperPlanOf } from "./work-plan.js";

/**
 * What the τ rule did with a unit: "above-tau" means |mean Δ| >= τ, not a significance test
 * (src/report/counts.ts tests the effects against zero across the map).
 */
export type UnitStatus = "screened-out" | "below-tau" | "above-tau";

export interface UnitEstimate {
  /** ATE in outcome units (Dice points for the dice outcome); 0 unless above τ */
  effect: number;
  /** the mean Δ before the τ rule (kept so users can see what was zeroed) */
  rawEffect: number;
  /** standard error of the mean Δ (NaN with fewer than two samples) */
  stderr: number;
  /** forward passes spent on this unit */
  samples: number;
  status: UnitStatus;
  /** degrees of freedom of the standard error (for t-based intervals); undefined = samples − 1 */
  dof?: number;
  /** with a prior (--prior): the block's own stratified draw mean (unbiased; `rawEffect` is the shrunk posterior mean), when it has draws */
  drawMean?: number;
  /** with a prior: the block's Δ under the cheap intervention the posterior shrinks toward a regression on */
  priorValue?: number;
  /** with importance sampling: the block's effective sample size (Σw)²/Σw² and its draws' weights p/q, in draw order */
  ess?: number;
  weights?: number[];
}

export interface ScreenedAteSettings {
  /** screening draws S (paper: 3) */
  screen: number;
  /** fresh draws N for units passing the screen (paper: 50); 0 = use the screening mean */
  samples: number;
  /** τ in outcome units (paper: 0.02 Dice points) */
  tau: number;
}

export const PAPER_SCREENED_ATE: ScreenedAteSettings = { screen: 3, samples: 50, tau: 0.02 };

export function meanSe(xs: ArrayLike<number>, offset: number, n: number, base: number): [number, number] {
  let s = 0;
  for (let i = 0; i < n; i++) s += xs[offset + i] - base;
  const mean = s / n;
  if (n < 2) return [mean, Number.NaN];
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (xs[offset + i] - base - mean) ** 2;
  return [mean, Math.sqrt(ss / (n - 1) / n)];
}

/** `plan` hears the run's passes: the worst case before the screen, the exact count after it. */
export async function screenedAte(
  unitCount: number,
  base: number,
  evaluate: Evaluate,
  st: ScreenedAteSettings,
  plan?: (p: WorkPlan) => void,
  /** the model passes of a sample, for the plan (one each by default) */
  cost: PassCost = ONE_PASS,
): Promise<UnitEstimate[]> {
  if (!Number.isInteger(st.screen) || st.screen < 1) fail(`screening draws must be >= 1, got ${st.screen}`, "use --screen 3");
  if (!Number.isInteger(st.samples) || st.samples < 0) fail(`samples must be >= 0, got ${st.samples}`, "use --samples 50");
  if (!(st.tau >= 0)) fail(`tau must be >= 0, got ${st.tau}`, "use --tau 0.02");
  const S = st.screen,
    N = st.samples;
  plan?.(paperPlanOf(cost, unitCount, S, N));
  const screenReqs: SampleRequest[] = [];
  for (let u = 0; u < unitCount; u++) for (let j = 0; j < S; j++) screenReqs.push({ unit: u, draw: j });
  const screened = await evaluate(screenReqs, "screening");
  const result: UnitEstimate[] = [];
  const passing: number[] = [];
  for (let u = 0; u < unitCount; u++) {
    let any = false;
    for (let j = 0; j < S; j++) if (Math.abs(screened[u * S + j] - base) >= st.tau) any = true;
    const [m, se] = meanSe(screened, u * S, S, base);
    result.push({ effect: 0, rawEffect: m, stderr: se, samples: S, status: "screened-out" });
    if (any) passing.push(u);
  }
  plan?.(paperPlanOf(cost, unitCount, S, N, passing));
  if (N === 0) {
    for (const u of passing) {
      const r = result[u];
      const sig = Math.abs(r.rawEffect) >= st.tau;
      r.status = sig ? "above-tau" : "below-tau";
      r.effect = sig ? r.rawEffect : 0;
    }
    return result;
  }
  // Fresh draws S..S+N-1: the screening draws are not reused in the estimate (as in the paper's code).
  const fineReqs: SampleRequest[] = [];
  for (const u of passing) for (let j = 0; j < N; j++) fineReqs.push({ unit: u, draw: S + j });
  const fine = await evaluate(fineReqs, "estimating");
  passing.forEach((u, k) => {
    const [m, se] = meanSe(fine, k * N, N, base);
    const sig = Math.abs(m) >= st.tau;
    // The SE comes from the N fresh draws only (the screening draws are not in the mean).
    result[u] = { effect: sig ? m : 0, rawEffect: m, stderr: se, samples: S + N, status: sig ? "above-tau" : "below-tau", dof: N - 1 };
  });
  return result;
}
