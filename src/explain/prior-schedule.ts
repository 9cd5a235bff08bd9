/**
 * The fast schedule with a prior (--prior zero-fill): the same estimand (the ATE of replacing a block
 * by a natural patch drawn uniformly from the bank), estimated by shrinking each block's stratified
 * draw mean toward a regression on a cheap map that costs one pass per block (./prior-shrinkage.ts).
 * There is no screen: the cheap map says where the effects are, so the rounds go straight where
 *  they remove the most posterior variance, starting from two pilot rounds on blocks spread over the
 * cheap map's range (the regression needs blocks with draws). A block without draws reports the
 * line's value at its cheap-map value, with the between-block variance as its uncertainty.
 * Estimates are shrinkage estimates, biased toward the line; `drawMean` keeps the unbiased one.
 * With --prior zero-fill-split the blocks whose |zero-fill Δ| is at most τ form a class of their own
 * (own mean, own between-block variance, own pilot): where the zero-fill map shows them inert and
 * their draws agree, their prior is narrow and the rounds go elsewhere.
 */
import type { WorkPlan } from "../util/progress.js";
import {
  type AdaptiveResult,
  type AdaptiveSettings,
  type BlockEstimate,
  BlockSamples,
  checkAdaptive,
  moderatedEstimates,
  passBudget,
  sampleRounds,
} from "./adaptive.js";
import type { UnitEstimate } from "./estimators.js";
import { fitAt, fitPrior, fitSplit, isInert, type PriorFit, posterior, roundsVariance, type SplitFit } from "./prior-shrinkage.js";
import type { Evaluate } from "./samples.js";
import { fastPlan, ONE_PASS, type PassCost } from "./work-plan.js";

/** How a block's draws are taken and turned into its mean and SE: stratified rounds, or importance sampling (./importance.ts). */
export interface BlockSampler {
  rounds(b: number): number;
  has(b: number): boolean;
  addRound(blocks: readonly number[], stage: string): Promise<void>;
  estimates(blocks: readonly number[]): Map<number, BlockEstimate & { ess?: number; weights?: number[] }>;
}

/** The fast schedule's stratified rounds (one draw per brightness stratum), as a BlockSampler. */
export class StratifiedSampler implements BlockSampler {
  private readonly samples = new Map<number, BlockSamples>();
  constructor(
    private readonly weights: readonly number[],
    private readonly base: number,
    private readonly evaluate: Evaluate,
  ) {}
  rounds(b: number): number {
    return this.samples.get(b)?.rounds ?? 0;
  }
  has(b: number): boolean {
    return this.samples.has(b);
  }
  async addRound(blocks: readonly number[], stage: string): Promise<void> {
    for (const b of blocks) if (!this.samples.has(b)) this.samples.set(b, new BlockSamples(this.weights.length));
    await sampleRounds(blocks, this.samples, this.base, this.evaluate, stage);
  }
  estimates(blocks: readonly number[]): Map<number, BlockEstimate> {
    return moderatedEstimates(blocks, this.samples, this.weights);
  }
}

/** Rounds a block gets when first drawn (the pilot's, and any block's later). */
const FIRST_ROUNDS = 2;

export interface PriorResult extends AdaptiveResult {
  /** the line's fit (with --prior zero-fill-split, the active class's) */
  fit: PriorFit;
  /** --prior zero-fill-split: both classes' fits (`inert` undefined when a class had too few blocks to fit apart) */
  split?: SplitFit;
  /** passes spent on the cheap map */
  priorPasses: number;
  /** blocks given the pilot round */
  pilot: number;
}

/** Blocks of the pilot round: min(n, max(24, ⌈4√n⌉)), evenly spaced over the blocks sorted by the cheap map. */
export function pilotBlocks(prior: readonly number[]): number[] {
  return spreadPilot(
    prior,
    prior.map((_, b) => b),
    Math.max(24, Math.ceil(4 * Math.sqrt(prior.length))),
  );
}

/** Up to `m` of `blocks`, evenly spaced over them sorted by the cheap map. */
function spreadPilot(prior: readonly number[], blocks: readonly number[], m: number): number[] {
  const n = blocks.length;
  m = Math.min(n, m);
  const order = [...blocks].sort((a, b) => prior[a] - prior[b] || a - b);
  return [...new Set(Array.from({ length: m }, (_, i) => order[Math.floor(((i + 0.5) * n) / m)]))].sort((a, b) => a - b);
}

/**
 * --prior zero-fill-split's pilot: in each class (|cheap-map value| <= cut, and the others)
 * min(n_c, max(12, ⌈2√n_c⌉)) blocks spread over the class's cheap-map range, so each class has enough
 * blocks to fit its own τ², and a large inert class (most blocks of a local model) costs few draws.
 */
export function splitPilotBlocks(prior: readonly number[], cut: number): number[] {
  const all = prior.map((_, b) => b);
  const per = (blocks: number[]) => spreadPilot(prior, blocks, Math.max(12, Math.ceil(2 * Math.sqrt(blocks.length))));
  const inert = all.filter((b) => isInert(cut, prior[b]));
  return [...per(inert), ...per(all.filter((b) => !isInert(cut, prior[b])))].sort((a, b) => a - b);
}

/**
 * `prior[b]` is block b's Δ under the cheap intervention, `priorPasses` what it cost. The stopping
 * rule is the schedule's: Σ posterior variance <= fidelity² · spread of the posterior means. For
 * Bayes posterior means the spread of the means is the ATEs' spread net of the noise, so the
 * expected Pearson with the exact map is again about 1/sqrt(1 + fidelity²).
 */
export async function priorAte(
  prior: readonly number[],
  priorPasses: number,
  sampler: BlockSampler,
  st: AdaptiveSettings,
  /** draws per round */
  R: number,
  passesFor?: (spent: number) => number,
  plan?: (p: WorkPlan) => void,
  cost: PassCost = ONE_PASS,
  /** hears the map after the pilot and after each round (an observer: the result is the same without it) */
  onRound?: (estimates: UnitEstimate[], spent: number) => void,
): Promise<PriorResult> {
  checkAdaptive(st);
  const n = prior.length;
  const maxRounds = Math.floor(st.maxSamples / R);
  const sumOf = (units: readonly number[]) => units.reduce((a, u) => a + cost.of(u), 0);
  // --prior zero-fill-split: the blocks the cheap map shows below τ are a class of their own
  const split = st.prior === "zero-fill-split";
  const pilot = split ? splitPilotBlocks(prior, st.tau) : pilotBlocks(prior);
  const all = Array.from({ length: n }, (_, b) => b);
  plan?.(fastPlan(cost.base + priorPasses, R * sumOf(all) * maxRounds, st.maxPasses, R * sumOf(pilot)));
  // Two rounds: one stratified round gives no within-stratum variance, and its conservative SE
  // (./adaptive.ts) would make every block look noisier than the spread around the line.
  for (let k = 0; k < FIRST_ROUNDS; k++) await sampler.addRound(pilot, "pilot rounds");
  let spent = cost.base + priorPasses + FIRST_ROUNDS * R * sumOf(pilot);
  const screen = spent;
  const { maxPasses, byTime } = passBudget(st, spent, passesFor);

  const estimate = () => {
    const drawn = all.filter((b) => sampler.has(b));
    // Split: the SEs are moderated within each class (pooling an inert block's variance with the active
    // blocks' would give blocks whose draws all agree the active blocks' noise, and draw them for it).
    const inert = drawn.filter((b) => isInert(st.tau, prior[b]));
    const apart = split && inert.length >= 3 && drawn.length - inert.length >= 3;
    const own = apart
      ? new Map([...sampler.estimates(inert), ...sampler.estimates(drawn.filter((b) => !isInert(st.tau, prior[b])))])
      : sampler.estimates(drawn);
    const [x, y, v] = [drawn.map((b) => prior[b]), drawn.map((b) => own.get(b)!.mean), drawn.map((b) => own.get(b)!.se ** 2)];
    const sf: SplitFit = split ? fitSplit(x, y, v, st.tau) : { cut: 0, inert: undefined, active: fitPrior(x, y, v) };
    const at = all.map((b) => fitAt(sf, prior[b]));
    const post = all.map((b) => {
      const o = own.get(b);
      return posterior(at[b].fit, at[b].x, o && { y: o.mean, v: o.se ** 2 });
    });
    return { own, fit: sf.active, sf, at, post };
  };

  let binding = false,
    short = false,
    noiseRatio = 0;
  let cur = estimate();
  const mapOf = ({ own, at, post }: typeof cur): UnitEstimate[] =>
    all.map((b) => {
      const p = post[b];
      const sig = Math.abs(p.mean) >= st.tau;
      const o = own.get(b);
      return {
        effect: sig ? p.mean : 0,
        rawEffect: p.mean,
        stderr: Math.sqrt(p.variance),
        samples: sampler.rounds(b) * R,
        status: sig ? "above-tau" : "below-tau",
        dof: at[b].fit.df,
        ...(o ? { drawMean: o.mean } : {}),
        ...(o?.ess !== undefined ? { ess: o.ess, weights: o.weights } : {}),
        priorValue: prior[b],
      };
    });
  for (;;) {
    onRound?.(mapOf(cur), spent);
    const { own, at, post } = cur;
    const mapMean = post.reduce((a, p) => a + p.mean, 0) / n;
    const spread = post.reduce((a, p) => a + (p.mean - mapMean) ** 2, 0);
    const noise = post.reduce((a, p) => a + p.variance, 0);
    noiseRatio = noise === 0 ? 0 : Math.sqrt(noise / Math.max(spread, Number.MIN_VALUE));
    const deficit = noise - st.fidelity * st.fidelity * spread;
    if (deficit <= 0) break;
    // Per-round variance of a block's stratified mean: its own, or the typical one before it has draws.
    const perRound = new Map<number, number>();
    for (const [b, e] of own) perRound.set(b, e.se * e.se * sampler.rounds(b));
    const typical = [...perRound.values()].sort((a, b) => a - b)[Math.floor(perRound.size / 2)] ?? 0;
    const rounds = (b: number) => sampler.rounds(b);
    const s2 = (b: number) => perRound.get(b) ?? typical;
    // A block's first allocation is FIRST_ROUNDS rounds; the gain is per round taken.
    const step = (b: number) => (rounds(b) === 0 ? FIRST_ROUNDS : 1);
    const tau2 = (b: number) => at[b].fit.tau2;
    const gain = (b: number) => (roundsVariance(tau2(b), s2(b), rounds(b)) - roundsVariance(tau2(b), s2(b), rounds(b) + step(b))) / step(b);
    const open = all.filter((b) => rounds(b) + step(b) <= maxRounds && Math.sqrt(post[b].variance) > st.absTol && gain(b) > 0);
    open.sort((x, y) => gain(y) - gain(x) || x - y);
    const need: number[] = [];
    let covered = 0;
    for (const b of open) {
      if (covered >= deficit) break;
      need.push(b);
      covered += gain(b) * step(b);
    }
    if (need.length === 0) {
      short = true;
      break;
    }
    if (maxPasses > 0) {
      let affordable = 0;
      for (let left = maxPasses - spent; affordable < need.length && R * step(need[affordable]) * cost.of(need[affordable]) <= left; affordable++)
        left -= R * step(need[affordable]) * cost.of(need[affordable]);
      if (affordable === 0) {
        binding = true;
        break;
      }
      need.length = affordable;
    }
    const passes = need.reduce((a, b) => a + R * step(b) * cost.of(b), 0);
    plan?.(
      fastPlan(
        spent,
        all.reduce((a, b) => a + (maxRounds - rounds(b)) * R * cost.of(b), 0),
        maxPasses,
        0,
        passes,
      ),
    );
    const fresh = need.filter((b) => !sampler.has(b));
    await sampler.addRound(need, "estimating");
    for (let k = 1; k < FIRST_ROUNDS; k++) await sampler.addRound(fresh, "estimating");
    spent += passes;
    cur = estimate();
  }
  const estimates = mapOf(cur);
  const budget = maxPasses > 0 ? { passes: maxPasses, spent, binding, screen, byTime } : undefined;
  return {
    estimates,
    groupPasses: 0,
    groupsTested: 0,
    noiseRatio,
    short,
    budget,
    screenLoss: { bound: 0, blocks: 0, groups: 0, alone: 0 },
    fit: cur.fit,
    ...(split ? { split: cur.sf } : {}),
    priorPasses,
    pilot: pilot.length,
  };
}
