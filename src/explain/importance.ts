/**
 * Importance sampling of patches (--sampling importance, with --prior): a block's draws come from a
 * proposal over the bank's brightness bins instead of uniformly, and its ATE is the mean of w·Δ with
 * w = p/q (p the bin's share of the bank, q its proposal probability; uniform within a bin), which
 * is unbiased for the uniform-bank ATE whatever the proposal. The proposal is learned online from
 * all blocks' earlier draws: bins where the outcome moved more (root mean Δ²) are drawn more, which
 * is the variance-minimising choice for a block like the average; it is mixed with the uniform
 * proposal (share IS_MIX) so that no weight exceeds 1/IS_MIX. It changes only between batches of
 * draws, and only from the outcomes drawn before, so a resumed run draws the same patches.
 */
import { fail } from "../errors.js";
import { getOrInsert } from "../util/maps.js";
import { randomInt, uniform } from "../util/rng.js";
import type { BlockEstimate } from "./adaptive.js";
import { fitVariancePrior, moderate } from "./moderated-variance.js";
import type { Evaluate, SampleRequest } from "./samples.js";

/** Brightness bins of the bank the proposal is over, and the uniform proposal's share of the mixture. */
export const IS_BINS = 16;
export const IS_MIX = 0.3;

export interface ImportanceDraw {
  patch: number;
  weight: number;
  delta: number;
}

export interface ImportanceEstimate extends BlockEstimate {
  /** effective sample size (Σw)²/Σw² */
  ess: number;
  weights: number[];
}

export class ImportanceSampler {
  private readonly byBlock = new Map<number, ImportanceDraw[]>();
  private readonly patchOf = new Map<string, number>();
  private readonly p: number[];
  private readonly sum2: number[];
  private readonly count: number[];

  /** `bins`: the bank's draws split into bins (e.g. by brightness); `perRound` draws make one round. */
  constructor(
    private readonly bins: readonly (readonly number[])[],
    private readonly perRound: number,
    private readonly seed: number,
    private readonly base: number,
    private readonly evaluate: Evaluate,
  ) {
    const K = bins.reduce((a, b) => a + b.length, 0);
    this.p = bins.map((b) => b.length / K);
    this.sum2 = bins.map(() => 0);
    this.count = bins.map(() => 0);
  }

  rounds(b: number): number {
    return Math.floor((this.byBlock.get(b)?.length ?? 0) / this.perRound);
  }

  has(b: number): boolean {
    return this.byBlock.has(b);
  }

  /** The patch of (unit, draw), for the intervention: decided by `addRounds` before it evaluates. */
  patch(unit: number, draw: number): number {
    const k = this.patchOf.get(`${unit}:${draw}`);
    if (k === undefined) fail(`internal: importance draw ${draw} of unit ${unit} has no patch yet`, "report this as a bug");
    return k;
  }

  /** The current proposal over the bins: (1 − IS_MIX)·(p·rms Δ, normalised) + IS_MIX·p; p itself before any draw moved the outcome. */
  proposal(): number[] {
    const seen = this.count.map((c, h) => (c > 0 ? Math.sqrt(this.sum2[h] / c) : Number.NaN));
    const known = seen.filter((s) => !Number.isNaN(s));
    if (known.length === 0) return [...this.p];
    // A bin not drawn yet is taken as the average of the others.
    const fill = known.reduce((a, b) => a + b, 0) / known.length;
    const score = seen.map((s, h) => this.p[h] * (Number.isNaN(s) ? fill : s));
    const total = score.reduce((a, b) => a + b, 0);
    if (!(total > 0)) return [...this.p];
    return score.map((s, h) => (1 - IS_MIX) * (s / total) + IS_MIX * this.p[h]);
  }

  /** One round (perRound draws from the current proposal) for each of `blocks`. */
  async addRound(blocks: readonly number[], stage: string): Promise<void> {
    const q = this.proposal();
    const cdf: number[] = [];
    q.reduce((a, x, h) => (cdf[h] = a + x), 0);
    const reqs: SampleRequest[] = [];
    const meta: { b: number; h: number; patch: number }[] = [];
    for (const b of blocks) {
      const start = this.byBlock.get(b)?.length ?? 0;
      for (let i = 0; i < this.perRound; i++) {
        const j = start + i;
        const u = uniform(this.seed, b, 2 * j) * cdf[cdf.length - 1];
        let h = cdf.findIndex((c) => u < c);
        if (h < 0) h = cdf.length - 1;
        const patch = this.bins[h][randomInt(this.seed, b, 2 * j + 1, this.bins[h].length)];
        this.patchOf.set(`${b}:${j}`, patch);
        reqs.push({ unit: b, draw: j });
        meta.push({ b, h, patch });
      }
    }
    const out = await this.evaluate(reqs, stage);
    meta.forEach(({ b, h, patch }, i) => {
      const delta = out[i] - this.base;
      getOrInsert(this.byBlock, b, () => []).push({ patch, weight: this.p[h] / q[h], delta });
      this.sum2[h] += delta * delta;
      this.count[h]++;
    });
  }

  /**
   * Each block's weighted mean Σ w·Δ / n with the SE of that mean; the variance of one weighted draw
   * is moderated across the blocks (./moderated-variance.ts) as the stratified estimates are, so equal
   * draws do not give an SE of 0.
   */
  estimates(blocks: readonly number[]): Map<number, ImportanceEstimate> {
    const own = blocks.map((b) => {
      const d = this.byBlock.get(b)!;
      const y = d.map((x) => x.weight * x.delta);
      const n = y.length;
      const mean = y.reduce((a, v) => a + v, 0) / n;
      const v = n > 1 ? y.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1) : 0;
      const w = d.map((x) => x.weight);
      const sw = w.reduce((a, x) => a + x, 0);
      return { mean, n, per: { v, df: n - 1 }, ess: (sw * sw) / w.reduce((a, x) => a + x * x, 0), weights: w };
    });
    const prior = fitVariancePrior(own.map((o) => o.per));
    const poolDf = own.reduce((a, o) => a + (o.per.v > 0 ? o.per.df : 0), 0);
    const out = new Map<number, ImportanceEstimate>();
    blocks.forEach((b, i) => {
      const o = own[i];
      const m = moderate(o.per, prior, poolDf - (o.per.v > 0 ? o.per.df : 0));
      const v = m.v > o.per.v ? m : o.per;
      out.set(b, { mean: o.mean, se: Math.sqrt(v.v / o.n), df: v.df, ess: o.ess, weights: o.weights });
    });
    return out;
  }
}
