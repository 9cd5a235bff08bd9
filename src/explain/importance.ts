/**
 * Importance sampling of patches within the fast schedule's brightness strata (--sampling importance,
 * with --prior). Each stratum is split into bins by brightness; a round still takes one draw per
 * stratum, but within its stratum the draw picks bin h with probability q(h|s) instead of its share
 * p(h|s), then a patch uniformly within the bin, and carries the weight w = p(h|s)/q(h|s). The draw's
 * value is y = c + w·(Δ − c), with c the mean Δ of the block's earlier draws in that stratum (0 before
 * any): E[y] = E_p[Δ | s] whatever c and q, as long as both are fixed before the draw. A block's ATE
 * is the stratified mean of y (Σ_s W_s · mean of y in stratum s): unbiased for the uniform-bank ATE,
 * with the stratification's gain kept. Centring on c makes the weights work on Δ's spread around the
 * block's stratum mean rather than on Δ itself (weighting a nearly constant Δ only adds noise).
 * The proposal is learned online from all blocks' earlier draws: q(h|s) ∝ p(h|s) · rms (Δ − c) in bin
 * h (the variance-minimising choice for a block like the average), mixed with p(h|s) (share IS_MIX)
 * so that no weight exceeds 1/IS_MIX. It changes only between batches of draws, and only from the
 * outcomes drawn before, so a resumed run with the same settings (all in the checkpoint key) draws the same patches.
 */
import { fail } from "../errors.js";
import { getOrInsert } from "../util/maps.js";
import { randomInt, uniform } from "../util/rng.js";
import { type BlockEstimate, BlockSamples, moderatedEstimates } from "./adaptive.js";
import type { Evaluate, SampleRequest } from "./samples.js";

/** Bins per brightness stratum the proposal is over, and the share of the plain within-stratum draw in the mixture. */
export const IS_BINS_PER_STRATUM = 4;
export const IS_MIX = 0.3;

export interface ImportanceEstimate extends BlockEstimate {
  /** effective sample size (Σw)²/Σw² */
  ess: number;
  /** weights p/q of the block's draws, in draw order */
  weights: number[];
}

export class ImportanceSampler {
  /** per block: w·Δ by stratum (the stratified estimator's input) and the weights in draw order */
  private readonly weighted = new Map<number, BlockSamples>();
  private readonly weightsOf = new Map<number, number[]>();
  /** per block and stratum: Σ Δ and count of its draws, for the centring constant c */
  private readonly raw = new Map<number, { sum: number[]; n: number[] }>();
  private readonly patchOf = new Map<string, number>();
  /** bins[s][i]: the draws of bin i of stratum s */
  private readonly bins: number[][][];
  private readonly sum2: number[][];
  private readonly count: number[][];

  /** `strata`: the bank's draws by brightness stratum, each sorted by brightness; `weights` their shares. */
  constructor(
    strata: readonly (readonly number[])[],
    private readonly weights: readonly number[],
    private readonly seed: number,
    private readonly base: number,
    private readonly evaluate: Evaluate,
  ) {
    this.bins = strata.map((s) => {
      const G = Math.max(1, Math.min(IS_BINS_PER_STRATUM, s.length));
      return Array.from({ length: G }, (_, i) => s.slice(Math.floor((i * s.length) / G), Math.floor(((i + 1) * s.length) / G)));
    });
    this.sum2 = this.bins.map((b) => b.map(() => 0));
    this.count = this.bins.map((b) => b.map(() => 0));
  }

  rounds(b: number): number {
    return this.weighted.get(b)?.rounds ?? 0;
  }

  has(b: number): boolean {
    return this.weighted.has(b);
  }

  /** The patch of (unit, draw), for the intervention: decided by `addRound` before it evaluates. */
  patch(unit: number, draw: number): number {
    const k = this.patchOf.get(`${unit}:${draw}`);
    if (k === undefined) fail(`internal: importance draw ${draw} of unit ${unit} has no patch yet`, "report this as a bug");
    return k;
  }

  /** p(h|s) of the bins of stratum s. */
  private share(s: number): number[] {
    const n = this.bins[s].reduce((a, b) => a + b.length, 0);
    return this.bins[s].map((b) => b.length / n);
  }

  /** The current proposal q(h|s), stratum by stratum: p(h|s) until a bin of the stratum has been drawn. */
  proposal(): number[][] {
    return this.bins.map((bins, s) => {
      const p = this.share(s);
      const rms = bins.map((_, h) => (this.count[s][h] > 0 ? Math.sqrt(this.sum2[s][h] / this.count[s][h]) : Number.NaN));
      const known = rms.filter((x) => !Number.isNaN(x));
      if (known.length === 0) return p;
      // A bin not drawn yet is taken as the average of the stratum's others.
      const fill = known.reduce((a, b) => a + b, 0) / known.length;
      const score = rms.map((x, h) => p[h] * (Number.isNaN(x) ? fill : x));
      const total = score.reduce((a, b) => a + b, 0);
      if (!(total > 0)) return p;
      return score.map((x, h) => (1 - IS_MIX) * (x / total) + IS_MIX * p[h]);
    });
  }

  /** One round (a draw per stratum, from the current proposal) for each of `blocks`. */
  async addRound(blocks: readonly number[], stage: string): Promise<void> {
    const q = this.proposal();
    const R = this.bins.length;
    const reqs: SampleRequest[] = [];
    const meta: { b: number; s: number; h: number; w: number; c: number }[] = [];
    for (const b of blocks) {
      const r = this.rounds(b);
      const raw = this.raw.get(b);
      for (let s = 0; s < R; s++) {
        const j = r * R + s;
        const p = this.share(s);
        let u = uniform(this.seed, b, 2 * j),
          h = 0;
        while (h < q[s].length - 1 && u >= q[s][h]) u -= q[s][h++];
        const bin = this.bins[s][h];
        this.patchOf.set(`${b}:${j}`, bin[randomInt(this.seed, b, 2 * j + 1, bin.length)]);
        reqs.push({ unit: b, draw: j });
        meta.push({ b, s, h, w: p[h] / q[s][h], c: raw && raw.n[s] > 0 ? raw.sum[s] / raw.n[s] : 0 });
      }
    }
    const out = await this.evaluate(reqs, stage);
    meta.forEach(({ b, s, h, w, c }, i) => {
      const delta = out[i] - this.base;
      getOrInsert(this.weighted, b, () => new BlockSamples(R)).byStratum[s].push(c + w * (delta - c));
      getOrInsert(this.weightsOf, b, () => []).push(w);
      const raw = getOrInsert(this.raw, b, () => ({ sum: new Array(R).fill(0), n: new Array(R).fill(0) }));
      raw.sum[s] += delta;
      raw.n[s]++;
      this.sum2[s][h] += (delta - c) ** 2;
      this.count[s][h]++;
    });
  }

  /** The stratified estimate of the draws' values y (moderated SEs, ./adaptive.ts), with each block's weights and ESS. */
  estimates(blocks: readonly number[]): Map<number, ImportanceEstimate> {
    const out = new Map<number, ImportanceEstimate>();
    for (const [b, e] of moderatedEstimates(blocks, this.weighted, this.weights)) {
      const w = this.weightsOf.get(b)!;
      const sw = w.reduce((a, x) => a + x, 0);
      out.set(b, { ...e, ess: (sw * sw) / w.reduce((a, x) => a + x * x, 0), weights: [...w] });
    }
    return out;
  }
}
