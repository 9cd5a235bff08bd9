/**
 * The best fidelity that ANY unbiased per-block sampling schedule can reach with a given number of
 * forward passes: an oracle that knows every block's true per-draw standard deviation σ_b (measured
 * from the converged reference's own draws) and which blocks are exactly zero, pays nothing for
 * screening, and allocates draws by Neyman (n_b ∝ σ_b, which minimises the summed variance
 * Σ σ_b²/n_b = (Σ σ_b)²/budget). Its expected Pearson with the exact map is
 * sqrt(spread / (spread + noise)), and its expected share of significant blocks with the right sign
 * is the mean of Φ(|ATE_b| √n_b / σ_b). When this bound misses a target, no schedule of that budget
 * meets it; the gap between a real schedule and the bound is what better design could still win.
 */
import { normalSf } from "../evaluate/wilcoxon.js";

export interface OracleBlock {
  /** the block's ATE in the reference (taken as exact) */
  effect: number;
  /** significant in the reference (|ATE| >= τ) */
  significant: boolean;
  /** standard deviation of one draw's Δ (0 for a block that never moves the outcome) */
  sd: number;
}

export interface OracleBound {
  budget: number;
  /** expected Pearson correlation with the exact map */
  pearson: number;
  /** expected share of reference-significant blocks estimated with the right sign */
  sameSign: number;
}

export function oracleBound(blocks: readonly OracleBlock[], budget: number): OracleBound {
  const n = blocks.length;
  const mean = blocks.reduce((s, b) => s + b.effect, 0) / n;
  const spread = blocks.reduce((s, b) => s + (b.effect - mean) ** 2, 0);
  const sdSum = blocks.reduce((s, b) => s + b.sd, 0);
  const noise = budget > 0 ? (sdSum * sdSum) / budget : Infinity;
  const draws = (b: OracleBlock) => (sdSum > 0 ? (budget * b.sd) / sdSum : 0);
  let significant = 0, same = 0;
  for (const b of blocks) {
    if (!b.significant) continue;
    significant++;
    same += b.sd === 0 ? 1 : 1 - normalSf((Math.abs(b.effect) * Math.sqrt(draws(b))) / b.sd);
  }
  return {
    budget,
    pearson: spread + noise > 0 ? Math.sqrt(spread / (spread + noise)) : 1,
    sameSign: significant ? same / significant : 1,
  };
}

/**
 * Per-draw standard deviation of a block's Δ. With `stratum` (the bank stratum of each draw), the
 * within-stratum part only: the variance a schedule drawing one patch per stratum per round faces,
 * Σ_h w_h σ_h² with w_h the stratum's share of the draws.
 */
export function drawSd(values: readonly number[], stratum?: (i: number) => number): number {
  if (values.length < 2) return 0;
  const groups = new Map<number, number[]>();
  values.forEach((v, i) => {
    const h = stratum ? stratum(i) : 0;
    let g = groups.get(h);
    if (!g) groups.set(h, (g = []));
    g.push(v);
  });
  let v = 0;
  for (const g of groups.values()) {
    if (g.length < 2) continue;
    const m = g.reduce((a, b) => a + b, 0) / g.length;
    v += (g.length / values.length) * (g.reduce((a, b) => a + (b - m) ** 2, 0) / (g.length - 1));
  }
  return Math.sqrt(v);
}

/**
 * The smallest budget at which the oracle reaches both targets (bisection: both measures grow with
 * the budget), or Infinity when it never does (a significant block whose sign stays a coin flip).
 */
export function oracleBudgetFor(blocks: readonly OracleBlock[], pearson: number, sameSign: number): number {
  const ok = (b: number) => {
    const r = oracleBound(blocks, b);
    return r.pearson >= pearson && r.sameSign >= sameSign;
  };
  let hi = 1;
  while (!ok(hi)) {
    hi *= 2;
    if (hi > 1e12) return Infinity;
  }
  let lo = hi / 2;
  if (ok(lo)) lo = 0;
  while (hi - lo > hi * 1e-6 && hi > 1e-9) {
    const mid = (lo + hi) / 2;
    if (ok(mid)) hi = mid;
    else lo = mid;
  }
  return hi;
}
