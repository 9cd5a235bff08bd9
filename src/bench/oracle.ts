/**
 * How well can a schedule with a given number of forward passes do at best? An oracle that knows
 * every block's true ATE and per-draw standard deviation σ_b (measured from a converged reference's
 * own draws), pays nothing for screening, and splits the budget over the blocks as well as possible
 * for the target at hand, each block then reporting the plain mean of its n_b draws:
 *  - expected Pearson with the exact map = sqrt(spread / (spread + Σ σ_b²/n_b)), best with
 *    n_b ∝ σ_b (Neyman), noise (Σ σ_b)²/budget;
 *  - expected share of significant blocks with the right sign = mean of Φ(|ATE_b| √n_b / σ_b), best
 *    with its own allocation (draws go where a sign is nearly decided);
 *  - both targets at once: allocations that trade one against the other (a Lagrangian sweep).
 * Each block's draws are concave in value (σ²/n and Φ(c√n) for n >= 1), so the optimal continuous
 * allocation for a weighted objective is water-filling: every block gets draws until its marginal
 * gain falls to a common level.
 *
 * What it does not cover: schedules that pool or shrink across blocks (biased: smoothing, a smaller
 * bank), noise shared by all blocks (common random numbers leave Pearson untouched by a shift every
 * block shares, though not a block's sign), and sequential stopping on the observed draws, which can
 * reach a fixed-size test's error rates with fewer draws on average (Wald: often about half). Read it
 * as the best of fixed allocations, not a proof for every design.
 */
import { normalSf } from "../evaluate/wilcoxon.js";
import { getOrInsert } from "../util/maps.js";

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
  /** best expected Pearson correlation with the exact map (Neyman allocation) */
  pearson: number;
  /** best expected share of reference-significant blocks with the right sign (its own allocation) */
  sameSign: number;
}

interface Fit {
  pearson: number;
  sameSign: number;
}

const spreadOf = (blocks: readonly OracleBlock[]) => {
  const mean = blocks.reduce((s, b) => s + b.effect, 0) / blocks.length;
  return blocks.reduce((s, b) => s + (b.effect - mean) ** 2, 0);
};

/** Expected Pearson and same-sign share of the per-block means with n[i] draws. */
function fit(blocks: readonly OracleBlock[], n: Float64Array, spread: number): Fit {
  let noise = 0,
    significant = 0,
    same = 0;
  blocks.forEach((b, i) => {
    if (b.sd > 0) noise += n[i] > 0 ? (b.sd * b.sd) / n[i] : Infinity;
    if (!b.significant) return;
    significant++;
    same += b.sd === 0 ? 1 : n[i] > 0 ? 1 - normalSf((Math.abs(b.effect) * Math.sqrt(n[i])) / b.sd) : 0;
  });
  return { pearson: spread + noise > 0 ? Math.sqrt(spread / (spread + noise)) : 1, sameSign: significant ? same / significant : 1 };
}

/**
 * Water-filling allocation of `budget` draws maximising sameSign − λ·noise/spread (λ = 0: sign
 * only; λ = Infinity: Pearson only, i.e. Neyman). Every block with σ > 0 gets at least one draw;
 * undefined (null) when the budget does not cover that.
 */
function allocate(blocks: readonly OracleBlock[], budget: number, lambda: number, spread: number): Float64Array | null {
  const live = blocks.map((_, i) => i).filter((i) => blocks[i].sd > 0);
  const out = new Float64Array(blocks.length);
  if (live.length === 0) return out;
  if (budget < live.length) return null;
  if (lambda === Infinity) {
    // Neyman, with the one-draw floor: blocks below it get one draw, the rest share what is left.
    let fixed = new Set<number>();
    for (;;) {
      const free = live.filter((i) => !fixed.has(i));
      const rest = budget - fixed.size,
        sFree = free.reduce((s, i) => s + blocks[i].sd, 0);
      const low = free.filter((i) => (rest * blocks[i].sd) / sFree < 1);
      if (low.length === 0) {
        for (const i of live) out[i] = fixed.has(i) ? 1 : (rest * blocks[i].sd) / sFree;
        return out;
      }
      fixed = new Set([...fixed, ...low]);
    }
  }
  const nSig = Math.max(1, blocks.filter((b) => b.significant).length);
  // Marginal gain of one more draw at n draws; decreasing in n.
  const gain = (b: OracleBlock, n: number) => {
    let g = (lambda * b.sd * b.sd) / (n * n * Math.max(spread, 1e-300));
    if (b.significant) {
      const c = Math.abs(b.effect) / b.sd,
        z = c * Math.sqrt(n);
      g += ((Math.exp(-0.5 * z * z) / Math.sqrt(2 * Math.PI)) * (c / (2 * Math.sqrt(n)))) / nSig;
    }
    return g;
  };
  const drawsAt = (b: OracleBlock, level: number) => {
    if (gain(b, 1) <= level) return 1;
    let lo = 1,
      hi = Math.min(2, budget);
    while (gain(b, hi) > level && hi < budget) {
      lo = hi;
      hi = Math.min(2 * hi, budget);
    }
    if (gain(b, hi) > level) return budget;
    for (let k = 0; k < 60; k++) {
      const mid = (lo + hi) / 2;
      if (gain(b, mid) > level) lo = mid;
      else hi = mid;
    }
    return (lo + hi) / 2;
  };
  const total = (level: number) => live.reduce((s, i) => s + drawsAt(blocks[i], level), 0);
  // The level at which the blocks' draws add up to the budget (log-space bisection).
  // Above the largest first-draw gain every block keeps its one draw; below, bisect in log space.
  let lo = 1e-300,
    hi = Math.max(...live.map((i) => gain(blocks[i], 1))) * 2;
  for (let k = 0; k < 200 && total(hi) < budget && hi / lo > 1 + 1e-9; k++) {
    const mid = Math.sqrt(lo * hi);
    if (total(mid) > budget) lo = mid;
    else hi = mid;
  }
  for (const i of live) out[i] = drawsAt(blocks[i], hi);
  return out;
}

export function oracleBound(blocks: readonly OracleBlock[], budget: number): OracleBound {
  const spread = spreadOf(blocks);
  const neyman = allocate(blocks, budget, Infinity, spread),
    sign = allocate(blocks, budget, 0, spread);
  return {
    budget,
    pearson: neyman ? fit(blocks, neyman, spread).pearson : 0,
    sameSign: sign ? fit(blocks, sign, spread).sameSign : 0,
  };
}

/** λ values swept between the sign-only and the Pearson-only allocation. */
const LAMBDAS = [0, ...Array.from({ length: 25 }, (_, k) => 10 ** (-6 + k / 2)), Infinity];

/** Whether one allocation of `budget` draws reaches both targets. */
export function oracleReaches(blocks: readonly OracleBlock[], budget: number, pearson: number, sameSign: number): boolean {
  const spread = spreadOf(blocks);
  return LAMBDAS.some((l) => {
    const n = allocate(blocks, budget, l, spread);
    if (!n) return false;
    const f = fit(blocks, n, spread);
    return f.pearson >= pearson && f.sameSign >= sameSign;
  });
}

/**
 * The smallest budget at which one allocation reaches both targets (bisection: feasibility grows
 * with the budget), or Infinity when none up to 10^9 draws does.
 */
export function oracleBudgetFor(blocks: readonly OracleBlock[], pearson: number, sameSign: number): number {
  const ok = (b: number) => oracleReaches(blocks, b, pearson, sameSign);
  let hi = Math.max(1, blocks.filter((b) => b.sd > 0).length);
  while (!ok(hi)) {
    hi *= 2;
    if (hi > 1e9) return Infinity;
  }
  let lo = hi / 2;
  if (ok(lo)) return lo;
  while (hi - lo > hi * 1e-4) {
    const mid = (lo + hi) / 2;
    if (ok(mid)) hi = mid;
    else lo = mid;
  }
  return hi;
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
    getOrInsert(groups, stratum ? stratum(i) : 0, () => []).push(v);
  });
  let v = 0;
  for (const g of groups.values()) {
    if (g.length < 2) continue;
    const m = g.reduce((a, b) => a + b, 0) / g.length;
    v += (g.length / values.length) * (g.reduce((a, b) => a + (b - m) ** 2, 0) / (g.length - 1));
  }
  return Math.sqrt(v);
}
