/**
 * The fast PdCR schedule: the same estimand as the paper (the ATE of replacing a block by a
 * natural patch drawn uniformly from the bank), reached with far fewer forward passes by
 *  1. hierarchical screening — quadtree groups of blocks are replaced at once; only groups whose
 *     replacement moves the RoI outcome by >= τ are split, down to single blocks;
 *  2. stratified draws — the bank is split into R equal strata by patch brightness and every
 *     round draws one patch per stratum, which removes the between-strata part of the variance
 *     without biasing the uniform-bank mean;
 *  3. sequential estimation — rounds go where they remove the most squared error, until the map
 *     as a whole is precise enough;
 *  (common random numbers — draw j of every block using the same patch — are available but off:
 *  they made the cost and fidelity swing with the seed, 11-84% of the paper's passes on the HC18
 *  models, while independent draws stayed at 35-53% with a better same-sign share; see
 *  docs/performance.md.)
 * Every block reports its standard error and degrees of freedom, so the map carries its
 * uncertainty; the errors are moderated across the blocks estimated together, so a block whose few
 * discrete draws happen to be equal is not taken for noise-free.
 */
import { fail } from "../errors.js";
import type { WorkPlan } from "../util/progress.js";
import type { UnitEstimate } from "./estimators.js";
import { blockOf, isBlockRef, type Quadtree } from "./hierarchy.js";
import { fitVariancePrior, moderate } from "./moderated-variance.js";
import type { Evaluate, SampleRequest } from "./samples.js";
import { fastPlan, ONE_PASS, type PassCost } from "./work-plan.js";

export interface AdaptiveSettings {
  /** τ in outcome units (as the paper: 0.02 Dice points) */
  tau: number;
  /** edge of the top-level quadtree groups, in blocks (a power of two; 1 = no hierarchy) */
  groupSize: number;
  /** draws per group test (each draw replaces every block of the group) */
  groupDraws: number;
  /** strata R of the bank = draws per round; the first round of a block is its screen */
  strata: number;
  /** rounds every block passing the screen gets at least */
  minRounds: number;
  /** cap of draws per block (the paper's N = 50) */
  maxSamples: number;
  /** blocks whose SE is below this (outcome units) get no more rounds */
  absTol: number;
  /**
   * Rounds are added, where they remove the most squared error, until the map is precise:
   * Σ SE² <= fidelity² · (Σ (ATE − mean ATE)² − Σ SE²), i.e. noise at most `fidelity` of the
   * map's own spread (expected Pearson with the exact map about 1/sqrt(1 + fidelity²)).
   */
  fidelity: number;
  /**
   * Common random numbers: draw j of every block uses the same patch, so the part of the noise
   * that all blocks share cancels between blocks; each block's estimate stays unbiased. Off by
   * default: the per-block standard errors ignore the correlation it creates, and the stopping
   * rule then stopped far too early or too late depending on the seed.
   */
  commonDraws: boolean;
  /**
   * Forward-pass budget of the whole map, the unperturbed pass included (0 = none). The screen
   * (group tests and every candidate block's first round) always completes, since a block left
   * unscreened would have no estimate; the sequential rounds then stop at the budget. Cached
   * samples of a resumed run count too, so a budget gives the same map with or without resuming.
   */
  maxPasses: number;
  /**
   * Wall-time budget in seconds (0 = none), turned into a pass budget once the screen is done, from
   * the pass rate measured so far; the map then depends on the machine, so the passes it was given
   * are reported (rerun with that `maxPasses` to reproduce it exactly).
   */
  maxSeconds: number;
  /**
   * A cheap map to shrink toward (./prior-schedule.ts): "zero-fill" sets each block to black once;
   * "zero-fill-split" too, with a between-block variance that grows with |zero-fill Δ| (./prior-shrinkage.ts).
   * It replaces the screen; unset (the default) = the screened schedule above.
   */
  prior?: PriorKind;
  /** with a prior: "importance" draws patches from a proposal learned online (./importance.ts) instead of stratified rounds */
  sampling?: "importance";
}

export const SAMPLINGS = ["stratified", "importance"] as const;

export const PRIORS = ["none", "zero-fill", "zero-fill-split"] as const;
export type PriorKind = Exclude<(typeof PRIORS)[number], "none">;

export const FAST_SCHEDULE: AdaptiveSettings = {
  tau: 0.02,
  groupSize: 8,
  groupDraws: 2,
  strata: 4,
  minRounds: 1,
  maxSamples: 48,
  absTol: 0.01,
  fidelity: 0.3,
  commonDraws: false,
  maxPasses: 0,
  maxSeconds: 0,
};

export interface AdaptiveResult {
  estimates: UnitEstimate[];
  /** forward passes spent on group tests */
  groupPasses: number;
  groupsTested: number;
  /** the map's noise as a fraction of its spread when the rounds stopped (the quantity `fidelity` bounds) */
  noiseRatio: number;
  /** the rounds stopped short of `fidelity` because no block could take another (all at the sample cap, or precise to `absTol`) */
  short: boolean;
  /** set when a pass budget was given */
  budget?: BudgetUse;
  screenLoss: ScreenLoss;
}

export interface BudgetUse {
  /** the budget, unperturbed pass included */
  passes: number;
  /** passes the map used, unperturbed pass included */
  spent: number;
  /** the budget stopped the rounds while some were still wanted (the map short of `fidelity`) */
  binding: boolean;
  /** passes the screen alone needed (it completes even beyond the budget) */
  screen: number;
  /** the budget came from `maxSeconds` (smaller than `maxPasses`, if any) */
  byTime: boolean;
}

export function checkAdaptive(st: AdaptiveSettings): void {
  if (!(st.tau >= 0)) fail(`tau must be >= 0, got ${st.tau}`, "use --tau 0.02");
  if (!Number.isInteger(st.groupSize) || st.groupSize < 1 || (st.groupSize & (st.groupSize - 1)) !== 0)
    fail(`group size must be a power of two >= 1, got ${st.groupSize}`, "set groupSize to 8 (1 disables hierarchical screening)");
  if (!Number.isInteger(st.groupDraws) || st.groupDraws < 1) fail(`group draws must be >= 1, got ${st.groupDraws}`, "set groupDraws to 1 or more");
  if (!Number.isInteger(st.strata) || st.strata < 2) fail(`strata must be an integer >= 2, got ${st.strata}`, "set strata to 4");
  if (!Number.isInteger(st.maxSamples) || st.maxSamples < st.strata)
    fail(`max samples must be an integer >= strata (${st.strata}), got ${st.maxSamples}`, "set maxSamples to 48");
  if (!Number.isInteger(st.minRounds) || st.minRounds < 1) fail(`min rounds must be >= 1, got ${st.minRounds}`);
  for (const k of ["absTol", "fidelity"] as const) if (!(st[k] >= 0)) fail(`${k} must be >= 0, got ${st[k]}`);
  if (!Number.isInteger(st.maxPasses) || st.maxPasses < 0)
    fail(`the pass budget must be an integer >= 0 (0 = none), got ${st.maxPasses}`, "use --max-passes 20000, or leave it out");
  if (st.prior !== undefined && !PRIORS.includes(st.prior)) fail(`unknown prior '${st.prior}'`, `use one of ${PRIORS.join(", ")}`);
  if (st.sampling !== undefined && st.sampling !== "importance") fail(`unknown sampling '${st.sampling}'`, `use one of ${SAMPLINGS.join(", ")}`);
  if (st.sampling === "importance" && st.prior === undefined)
    fail("importance sampling runs in the screen-free schedule of a prior", "add --prior zero-fill, or leave --sampling out");
  if (!(st.maxSeconds >= 0 && Number.isFinite(st.maxSeconds)))
    fail(`the time budget must be a number of seconds >= 0 (0 = none), got ${st.maxSeconds}`, "use --max-time 60, or leave it out");
}

/** Per-block running state: Δ values by stratum, one per round. */
export class BlockSamples {
  readonly byStratum: number[][];
  constructor(strata: number) {
    this.byStratum = Array.from({ length: strata }, () => []);
  }
  get rounds(): number {
    return this.byStratum[0].length;
  }
}

/**
 * A block's own stratified mean and its standard error. With one round the within-stratum variance
 * is unknown; the variance of all R values (which includes the between-strata part) bounds it from
 * above, so the first SE is conservative. Degrees of freedom by Welch–Satterthwaite. The SE is 0
 * when the draws are equal, which discrete outcomes make common: `moderatedEstimates` is what the
 * schedule uses.
 */
export function stratifiedEstimate(s: BlockSamples, weights: readonly number[]): BlockEstimate {
  const R = weights.length;
  const k = s.rounds;
  let mean = 0;
  const means = s.byStratum.map((v) => v.reduce((a, b) => a + b, 0) / k);
  for (let h = 0; h < R; h++) mean += weights[h] * means[h];
  if (k === 1) {
    const all = s.byStratum.map((v) => v[0]);
    const m = all.reduce((a, b) => a + b, 0) / R;
    const s2 = all.reduce((a, b) => a + (b - m) ** 2, 0) / (R - 1);
    const w2 = weights.reduce((a, w) => a + w * w, 0);
    return { mean, se: Math.sqrt(w2 * s2), df: R - 1 };
  }
  let v = 0,
    denom = 0;
  for (let h = 0; h < R; h++) {
    const s2 = s.byStratum[h].reduce((a, b) => a + (b - means[h]) ** 2, 0) / (k - 1);
    const a = (weights[h] * weights[h] * s2) / k;
    v += a;
    denom += (a * a) / (k - 1);
  }
  return { mean, se: Math.sqrt(v), df: denom > 0 ? (v * v) / denom : R * (k - 1) };
}

/** One more stratified round (a draw per stratum) for each of `blocks`, its Δs appended to their samples. */
export async function sampleRounds(
  blocks: readonly number[],
  samples: ReadonlyMap<number, BlockSamples>,
  base: number,
  evaluate: Evaluate,
  stage: string,
): Promise<void> {
  const reqs: SampleRequest[] = [];
  let R = 0;
  for (const b of blocks) {
    const s = samples.get(b)!;
    R = s.byStratum.length;
    for (let h = 0; h < R; h++) reqs.push({ unit: b, draw: s.rounds * R + h });
  }
  const out = await evaluate(reqs, stage);
  blocks.forEach((b, i) => {
    const s = samples.get(b)!;
    for (let h = 0; h < R; h++) s.byStratum[h].push(out[i * R + h] - base);
  });
}

export interface BlockEstimate {
  mean: number;
  se: number;
  df: number;
}

/**
 * The blocks' estimates with standard errors that a few equal draws cannot make 0: each block's
 * variance of one draw is moderated toward a prior fitted to the blocks estimated together
 * (./moderated-variance.ts), and the block reports the larger of its own and the moderated
 * variance, with that estimate's degrees of freedom. The moderated variance alone would shrink the
 * largest variances toward the typical one: those dominate the map's noise, and the stopping rule
 * would then stop before the map is as precise as it states.
 */
export function moderatedEstimates(
  blocks: readonly number[],
  samples: ReadonlyMap<number, BlockSamples>,
  weights: readonly number[],
): Map<number, BlockEstimate> {
  const w2 = weights.reduce((a, w) => a + w * w, 0);
  const own = blocks.map((b) => ({ e: stratifiedEstimate(samples.get(b)!, weights), k: samples.get(b)!.rounds }));
  // Variance of one draw: the scale every block shares, whatever its number of rounds.
  const perDraw = own.map(({ e, k }) => ({ v: (e.se * e.se * k) / w2, df: e.df }));
  const prior = fitVariancePrior(perDraw);
  const poolDf = perDraw.reduce((a, p) => a + (p.v > 0 ? p.df : 0), 0);
  const out = new Map<number, BlockEstimate>();
  blocks.forEach((b, i) => {
    const m = moderate(perDraw[i], prior, poolDf - (perDraw[i].v > 0 ? perDraw[i].df : 0));
    const v = m.v > perDraw[i].v ? m : perDraw[i];
    out.set(b, { mean: own[i].e.mean, se: Math.sqrt((v.v * w2) / own[i].k), df: v.df });
  });
  return out;
}

/**
 * What the screen may have dropped: every quadtree group and block it cleared moved the RoI outcome
 * by less than τ in each of its draws; `bound` sums their largest |Δ|. Under additive block effects
 * it bounds the total |ATE| of the cleared blocks as far as the draws show it (effects of opposite
 * sign within a group cancel in its draws, and a rare patch with a large effect can be missed).
 */
export interface ScreenLoss {
  /** Σ over cleared groups and blocks of the largest |Δ| among their draws (outcome units) */
  bound: number;
  /** blocks set to 0 by the screen */
  blocks: number;
  /** quadtree groups cleared whole */
  groups: number;
  /** blocks cleared by their own first round (the others went with their group) */
  alone: number;
}

/**
 * The pass budget after the screen: --max-passes, or the time budget turned into passes at the rate
 * measured so far when that is the smaller (0 = none).
 */
export function passBudget(
  st: { maxPasses: number; maxSeconds: number },
  spent: number,
  passesFor?: (spent: number) => number,
): { maxPasses: number; byTime: boolean } {
  const timed = st.maxSeconds > 0 ? passesFor?.(spent) : undefined;
  if (timed !== undefined && Number.isFinite(timed) && (st.maxPasses === 0 || timed < st.maxPasses))
    return { maxPasses: Math.max(Math.floor(timed), 1), byTime: true };
  return { maxPasses: st.maxPasses, byTime: false };
}

/**
 * `passesFor(spent)`, when given, turns the time budget into a pass budget after the screen (the
 * caller knows the clock and the pass rate). `plan` hears the run's passes as far as they are known.
 */
export async function adaptiveAte(
  tree: Quadtree,
  base: number,
  evaluate: Evaluate,
  st: AdaptiveSettings,
  weights: readonly number[],
  passesFor?: (spent: number) => number,
  plan?: (p: WorkPlan) => void,
  /** model passes of a sample of a block or group (its key), and of the unperturbed input: the budget and plans count them */
  cost: PassCost = ONE_PASS,
  /**
   * Hears the map as it stands after the screen and after each sequential round (the last call is
   * the result's estimates), with the passes spent so far: for a display that fills in round by round.
   * An observer only: the draws, the stopping rule and the result are the same with or without it.
   */
  onRound?: (estimates: UnitEstimate[], spent: number) => void,
): Promise<AdaptiveResult> {
  checkAdaptive(st);
  const n = tree.blockCount;
  const R = weights.length;
  const moved = (v: number) => Math.abs(v - base) >= st.tau;
  const capRounds = Math.floor(st.maxSamples / R);
  const sumOf = (units: readonly number[]) => units.reduce((a, u) => a + cost.of(u), 0);
  const blocks = Array.from({ length: n }, (_, b) => b);
  const allGroups = sumOf(tree.groups.map((_, g) => n + g));
  plan?.(fastPlan(cost.base, st.groupDraws * allGroups + R * sumOf(blocks) * capRounds, st.maxPasses, st.groupDraws * allGroups + R * sumOf(blocks)));

  // 1. Hierarchical screening: test groups level by level; collect blocks to screen individually.
  let frontier = tree.top;
  const candidates: number[] = [];
  let groupPasses = 0,
    groupsTested = 0;
  const loss: ScreenLoss = { bound: 0, blocks: 0, groups: 0, alone: 0 };
  while (frontier.length > 0) {
    const groups = frontier.filter((r) => !isBlockRef(r));
    for (const r of frontier) if (isBlockRef(r)) candidates.push(blockOf(r));
    if (groups.length === 0) break;
    const reqs: SampleRequest[] = [];
    for (const key of groups) for (let j = 0; j < st.groupDraws; j++) reqs.push({ unit: key, draw: j });
    const out = await evaluate(reqs, "screening groups");
    groupPasses += st.groupDraws * sumOf(groups);
    groupsTested += groups.length;
    const next: number[] = [];
    groups.forEach((key, gi) => {
      let active = false,
        largest = 0;
      for (let j = 0; j < st.groupDraws; j++) {
        if (moved(out[gi * st.groupDraws + j])) active = true;
        largest = Math.max(largest, Math.abs(out[gi * st.groupDraws + j] - base));
      }
      if (active) next.push(...tree.groups[key - n].children);
      else {
        loss.bound += largest;
        loss.blocks += tree.groups[key - n].members.length;
        loss.groups++;
      }
    });
    frontier = next;
  }

  // 2. Block screen = the first stratified round.
  const samples = new Map<number, BlockSamples>();
  // Blocks left out with their quadtree group were never sampled alone: no standard error (NaN).
  const result: UnitEstimate[] = Array.from({ length: n }, () => ({
    effect: 0,
    rawEffect: 0,
    stderr: Number.NaN,
    samples: 0,
    status: "screened-out" as const,
  }));
  const runRounds = (blocks: number[], stage: string) => sampleRounds(blocks, samples, base, evaluate, stage);
  candidates.sort((a, b) => a - b);
  for (const b of candidates) samples.set(b, new BlockSamples(R));
  plan?.(fastPlan(cost.base + groupPasses, sumOf(candidates) * R * capRounds, st.maxPasses, sumOf(candidates) * R));
  await runRounds(candidates, "screening blocks");
  const passing = candidates.filter((b) => samples.get(b)!.byStratum.some((v) => Math.abs(v[0]) >= st.tau));
  // Blocks the screen clears report their first round, its SE moderated among the blocks cleared.
  const isPassing = new Set(passing);
  const cleared = candidates.filter((b) => !isPassing.has(b));
  for (const [b, est] of moderatedEstimates(cleared, samples, weights)) {
    result[b] = { effect: 0, rawEffect: est.mean, stderr: est.se, samples: R, status: "screened-out", dof: est.df };
    loss.bound += Math.max(...samples.get(b)!.byStratum.map((v) => Math.abs(v[0])));
    loss.blocks++;
    loss.alone++;
  }

  // 3. Sequential rounds until every block, or the map as a whole, is precise enough, or the
  // budget is spent (each round of a block costs R samples).
  const maxRounds = Math.floor(st.maxSamples / R);
  let spent = cost.base + groupPasses + sumOf(candidates) * R;
  const screen = spent;
  let binding = false,
    noiseRatio = 0,
    short = false;
  const { maxPasses, byTime } = passBudget(st, spent, passesFor);
  // The map from the estimates of the blocks past the screen: each round's, and the result's.
  const mapOf = (est: ReadonlyMap<number, BlockEstimate>): UnitEstimate[] => {
    const out = result.slice();
    for (const [b, e] of est) {
      const sig = Math.abs(e.mean) >= st.tau;
      out[b] = {
        effect: sig ? e.mean : 0,
        rawEffect: e.mean,
        stderr: e.se,
        samples: samples.get(b)!.rounds * R,
        status: sig ? "above-tau" : "below-tau",
        dof: e.df,
      };
    }
    return out;
  };
  let est = moderatedEstimates(passing, samples, weights);
  for (; ; est = moderatedEstimates(passing, samples, weights)) {
    onRound?.(mapOf(est), spent);
    let sum = 0;
    for (const e of est.values()) sum += e.mean;
    const mapMean = sum / n;
    let spread = (n - passing.length) * mapMean * mapMean,
      noise = 0;
    for (const e of est.values()) {
      spread += (e.mean - mapMean) ** 2;
      noise += e.se * e.se;
    }
    // The spread of estimates includes their noise: compare against the spread net of it.
    noiseRatio = noise === 0 ? 0 : Math.sqrt(noise / Math.max(spread - noise, Number.MIN_VALUE));
    const deficit = noise - st.fidelity * st.fidelity * Math.max(0, spread - noise);
    const need = passing.filter((b) => samples.get(b)!.rounds < st.minRounds);
    if (deficit > 0) {
      // Greedy allocation: one more round where it removes the most squared error (SE²/(k+1)),
      // until the expected removal covers the deficit.
      const gain = (b: number) => est.get(b)!.se ** 2 / (samples.get(b)!.rounds + 1);
      const open = passing.filter((b) => samples.get(b)!.rounds >= st.minRounds && samples.get(b)!.rounds < maxRounds && est.get(b)!.se > st.absTol);
      open.sort((x, y) => gain(y) - gain(x) || x - y);
      let covered = 0;
      for (const b of open) {
        if (covered >= deficit) break;
        need.push(b);
        covered += gain(b);
      }
    }
    if (need.length === 0) {
      short = deficit > 0;
      break;
    }
    if (maxPasses > 0) {
      // `need` lists the blocks owed their minimum rounds first, then by squared error removed: the
      // longest head of it whose rounds fit the budget.
      let affordable = 0;
      for (let left = maxPasses - spent; affordable < need.length && R * cost.of(need[affordable]) <= left; affordable++)
        left -= R * cost.of(need[affordable]);
      if (affordable === 0) {
        binding = true; // rounds were still wanted
        break;
      }
      need.length = affordable;
    }
    plan?.(
      fastPlan(
        spent,
        passing.reduce((a, b) => a + (maxRounds - samples.get(b)!.rounds) * R * cost.of(b), 0),
        maxPasses,
        0,
        sumOf(need) * R,
      ),
    );
    await runRounds(need, "estimating");
    spent += sumOf(need) * R;
  }
  // No round ran since the loop's last estimates (and `onRound`'s last call): they are the result.
  const estimates = mapOf(est);
  const budget = maxPasses > 0 ? { passes: maxPasses, spent, binding, screen, byTime } : undefined;
  return { estimates, groupPasses, groupsTested, noiseRatio, short, budget, screenLoss: loss };
}
