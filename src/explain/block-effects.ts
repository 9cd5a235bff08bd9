/**
 * The shared engine of block-intervention methods (PdCR, zero ablation, and later occlusion
 * variants): unperturbed pass → Target → grid of units → screened ATE over interventions.
 * Methods differ only in the Intervention and the estimator settings they pass in.
 */
import type { Case } from "../data/case.js";
import { fail } from "../errors.js";
import type { Model } from "../model/model.js";
import { outcomeUnits } from "../target/outcome.js";
import type { Target, TargetSpec } from "../target/target.js";
import { randomInt } from "../util/rng.js";
import { type AdaptiveResult, type AdaptiveSettings, adaptiveAte, type ScreenLoss } from "./adaptive.js";
import { type Attribution, paint } from "./attribution.js";
import { DEFAULT_CHUNK } from "./checkpoint.js";
import { type ScreenedAteSettings, screenedAte, type UnitEstimate } from "./estimators.js";
import { buildQuadtree } from "./hierarchy.js";
import { ImportanceSampler, IS_BINS_PER_STRATUM, IS_MIX } from "./importance.js";
import { FillIntervention, type Intervention } from "./interventions.js";
import { type PriorResult, priorAte, StratifiedSampler } from "./prior-schedule.js";
import { type FullRecord, type IncrementalMode, type PassShape, RoiExecutor } from "./roi-executor.js";
import { RunContext, type RunOptions } from "./run.js";
import { blockGrid, type Unit, type UnitKind } from "./units.js";

/** Splits draws 0..count-1 into R strata of near-equal size by their key (ties by draw number). */
export function stratifyDraws(count: number, R: number, key: (d: number) => number): { strata: number[][]; weights: number[] } {
  const order = Array.from({ length: count }, (_, d) => d).sort((a, b) => key(a) - key(b) || a - b);
  const strata = Array.from({ length: R }, (_, h) => order.slice(Math.floor((h * count) / R), Math.floor(((h + 1) * count) / R)));
  return { strata, weights: strata.map((s) => s.length / count) };
}

/** The paper schedule's draw: patch of the j-th draw of a unit, uniform over the bank's `count` patches. */
export function uniformDraw(seed: number, unit: number, draw: number, count: number): number {
  return randomInt(seed, unit, draw, count);
}

/**
 * Which draw of the intervention request (unit, draw) uses: the paper draws uniformly; the fast
 * schedule draws round by round, one per stratum; a group draw (unit >= unitCount) gives every
 * member block its own patch.
 */
export function drawNumbering(
  seed: number,
  unitCount: number,
  draws: number,
  strat: { strata: number[][] } | undefined,
  commonDraws: boolean,
): (unit: number, draw: number, member?: number) => number {
  return (unit, draw, member = 0) => {
    if (draws === 1) return 0;
    if (unit >= unitCount) return randomInt(seed, unit, draw * 65536 + member, draws);
    if (!strat) return uniformDraw(seed, unit, draw, draws);
    const s = strat.strata[draw % strat.strata.length];
    return s[randomInt(seed, commonDraws ? -1 : unit, draw, s.length)];
  };
}

/** An outcome amount for a note: two decimals, or two significant digits below 0.01 (0 stays "0"). */
function fmtSmall(x: number): string {
  return x === 0 ? "0" : Math.abs(x) >= 0.01 ? x.toFixed(2) : x.toPrecision(2);
}

/** A noise-to-spread ratio for a note: "0.42", or "more than 10 times" when the map is mostly noise. */
function fmtRatio(x: number): string {
  return x > 10 ? "more than 10 times" : x.toFixed(2);
}

/** What the prior's fit was, for the run's notes. */
function priorNote(p: PriorResult, blocks: number): string {
  const f = p.fit;
  const drawn = p.estimates.filter((e) => e.samples > 0).length;
  const line = `ATE ≈ ${fmtSmall(f.intercept)} + ${f.slope.toFixed(3)}·(zero-fill Δ), between-block sd ${fmtSmall(Math.sqrt(f.tau2))} (fitted on ${f.blocks} blocks)`;
  const sp = p.split;
  const inert = sp && p.estimates.filter((e) => Math.abs(e.priorValue!) <= sp.cut).length;
  const how = !sp
    ? `block means shrunk toward ${line}`
    : sp.inert
      ? `the ${inert} blocks with |zero-fill Δ| <= ${fmtSmall(sp.cut)} shrunk toward their own mean ${fmtSmall(sp.inert.intercept)}, between-block sd ${fmtSmall(Math.sqrt(sp.inert.tau2))} (fitted on ${sp.inert.blocks} blocks), the others toward ${line}`
      : `too few blocks with |zero-fill Δ| <= ${fmtSmall(sp.cut)} (${inert}) or above it to fit them apart, so one fit: block means shrunk toward ${line}`;
  return `fast schedule with a zero-fill prior${sp ? " split at |zero-fill Δ| = τ" : ""}: ${blocks} zero-fill passes, two pilot rounds on ${p.pilot} blocks, ${drawn} of ${blocks} blocks drawn; ${how}: shrinkage estimates, biased toward that line; their intervals hold the ATEs at the nominal rate on average over the blocks`;
}

/** What importance sampling did, for the run's notes. */
function importanceNote(estimates: readonly UnitEstimate[], q: readonly (readonly number[])[]): string {
  const ess = estimates.filter((e) => e.ess !== undefined).map((e) => e.ess! / e.samples);
  const mean = ess.reduce((a, b) => a + b, 0) / Math.max(ess.length, 1);
  return `importance sampling of patches: ${IS_BINS_PER_STRATUM} brightness bins per stratum, proposal at the end ${q.map((s) => s.map((x) => x.toFixed(2)).join(" ")).join(" | ")} (mixed ${IS_MIX} with the plain draw, so weights <= ${(1 / IS_MIX).toFixed(2)}); weighted means are unbiased for the uniform-bank ATE; effective sample size ${(100 * mean).toFixed(0)}% of the draws on average (per block in units[].ess, weights in units[].weights)`;
}

/** What `explain --queue` can split into shards, as a fix to give when it cannot. */
export const QUEUE_SCHEDULES_FIX = "--queue runs pdcr --schedule paper, pdcr-superpixel, zero and occlusion; run other maps without --queue";

export interface BlockMethodSpec {
  method: string;
  blockSize: number;
  /** window step; default the block size (a partition) */
  stride?: number;
  estimator: ScreenedAteSettings;
  /** when set, the fast schedule (hierarchical screening, stratified sequential draws) replaces the screened estimator */
  adaptive?: AdaptiveSettings;
  makeIntervention: (model: Model, kase: Case) => Intervention | Promise<Intervention>;
  /** the method's own settings, recorded in the provenance */
  settings: Record<string, unknown>;
  /**
   * Precomputed units (e.g. superpixels) instead of the block grid, given the resolved Target;
   * their settings (`spec.settings`) then enter the checkpoint key. Grids are unaffected.
   */
  units?: (target: Target) => { units: Unit[]; roiCells: number; unitKind: UnitKind };
}

export async function explainBlocks(
  model: Model,
  kase: Case,
  targetSpec: TargetSpec,
  spec: BlockMethodSpec,
  run: RunOptions = {},
): Promise<Attribution> {
  const t0 = Date.now();
  const intervention = await spec.makeIntervention(model, kase);
  // Unperturbed pass: gives m(X), and the reference mask when explaining the model's own prediction.
  const ctx = await RunContext.open(model, kase, targetSpec, run, { t0 });
  const { seed, target } = ctx;
  const custom = spec.units?.(target);
  const grid = custom ? { ...custom, stride: spec.blockSize } : blockGrid(model.height, model.width, spec.blockSize, target.region, spec.stride);
  const units = grid.units;
  // With fewer distinct draws than strata (a tiny bank) every draw is its own stratum.
  const ad = spec.adaptive && { ...spec.adaptive, strata: Math.min(spec.adaptive.strata, intervention.draws) };
  if (ad && ad.strata < 2)
    fail(
      `the fast schedule needs at least 2 distinct draws, the intervention has ${intervention.draws}`,
      "use --schedule paper, or a bank with more patches",
    );
  if (ad && custom)
    fail(
      "the fast schedule needs a grid of blocks (its quadtree screening groups neighbouring blocks)",
      "use the paper schedule for irregular units",
    );
  if (ad && grid.stride !== spec.blockSize)
    fail("the fast schedule needs a partition into blocks (stride = block size)", "use --schedule paper for overlapping windows");
  // a shard of the units is the map only when every unit's samples depend on that unit's outcomes alone
  if (run.shard && ad) fail("the fast schedule's rounds depend on every block at once, so its map cannot be split into shards", QUEUE_SCHEDULES_FIX);
  const tree = ad ? buildQuadtree(units, grid.stride, ad.groupSize) : undefined;
  const strat = ad ? stratifyDraws(intervention.draws, ad.strata, (d) => intervention.drawKey?.(d) ?? d) : undefined;
  const drawOf = drawNumbering(seed, units.length, intervention.draws, strat, ad?.commonDraws ?? false);
  const membersOf = (unit: number): Unit[] => (unit < units.length ? [units[unit]] : tree!.groups[unit - units.length].members.map((i) => units[i]));

  // RoI-cropped passes (off unless asked): the executor's scores equal the full model's up to float
  // rounding, so it enters the key; blocks outside the input the RoI reads are not run at all.
  const { executor, why, full } = await RoiExecutor.open(
    model,
    target,
    { input: ctx.base, output: ctx.baseOutput },
    run.incremental ?? "off",
    ctx.runner.batchSize,
    { units, executor: run.incrementalExecutor, shape: passShape(intervention.draws, ad ? ad.strata : spec.estimator.screen) },
  );
  try {
    return await explainWith(ctx, spec, intervention, {
      units,
      grid,
      custom,
      ad,
      tree,
      strat,
      drawOf,
      membersOf,
      executor,
      why,
      full,
      t0,
      mode: run.incremental ?? "off",
    });
  } finally {
    await executor?.release();
  }
}

/**
 * How the run's passes come, for the executor's cost model: a block's draws of one round run in one call
 * (its screen: S draws, or one per stratum; a deterministic fill repeats none), and every block in reach
 * is screened once. Not a bound when the schedule adapts: passing blocks take more rounds, and the fast
 * schedule's quadtree clears most blocks in groups (its maps in docs/performance.md ran 5-55% of it).
 */
function passShape(draws: number, perRound: number): PassShape {
  const k = Math.max(1, Math.min(draws, perRound));
  return { itemsPerBox: k, passesPerBlock: k };
}

interface Plan {
  units: Unit[];
  grid: { stride: number; roiCells: number };
  custom: ReturnType<NonNullable<BlockMethodSpec["units"]>> | undefined;
  ad: AdaptiveSettings | undefined;
  tree: ReturnType<typeof buildQuadtree> | undefined;
  strat: ReturnType<typeof stratifyDraws> | undefined;
  drawOf: ReturnType<typeof drawNumbering>;
  membersOf: (unit: number) => Unit[];
  executor: RoiExecutor | undefined;
  why: string;
  /** auto's cost model chose full passes: its record */
  full?: FullRecord;
  t0: number;
  mode: IncrementalMode;
}

async function explainWith(ctx: RunContext, spec: BlockMethodSpec, intervention: Intervention, p: Plan): Promise<Attribution> {
  const { model, target } = ctx;
  const { units, grid, custom, ad, tree, strat, drawOf, membersOf, executor, t0 } = p;
  const key = ctx.checkpointKey([
    "model",
    "image",
    "mask",
    "target",
    "card",
    { method: spec.method, block: spec.blockSize, stride: grid.stride },
    "seed",
    {
      intervention: intervention.describe(),
      // Samples depend only on how draws are numbered, not on S, N or τ: a rerun with more samples
      // or another τ reuses every finished sample.
      draws: ad
        ? {
            kind: "stratified",
            strata: ad.strata,
            groupSize: ad.groupSize,
            common: ad.commonDraws,
            ...(ad.prior ? { prior: ad.prior } : {}),
            // which patch an importance draw takes depends on every outcome before it, so on every setting
            // that steers the schedule: a checkpoint resumes only under the same ones
            ...(ad.sampling ? { sampling: ad.sampling, bins: IS_BINS_PER_STRATUM, mix: IS_MIX, schedule: ad } : {}),
          }
        : { kind: "uniform" },
      units: custom ? spec.settings : undefined,
    },
    executor ? { executor: executor.record.executor } : {},
  ]);
  // With a prior, the cheap map's samples are units past the blocks and groups (draw 0 each).
  const priorBase = units.length + (tree?.groups.length ?? 0);
  const cheap = ad?.prior !== undefined ? await FillIntervention.create(model, ctx.kase.image, { kind: "constant", value: 0 }) : undefined;
  // Importance sampling decides a draw's patch when it is requested (from the outcomes before it).
  let importance: ImportanceSampler | undefined;
  // A perturbation the RoI cannot see (outside the input region it reads) scores m(X) without a pass.
  const unitOf = (unit: number): Unit[] => (unit >= priorBase ? [units[unit - priorBase]] : membersOf(unit));
  const skip = executor && ((unit: number) => !unitOf(unit).some((u) => executor.reaches(u.row, u.col, u.height, u.width)));
  const scorer = ctx.scorer(
    key,
    (unit, draw, dst) =>
      cheap && unit >= priorBase
        ? cheap.apply(dst, units[unit - priorBase])
        : importance
          ? intervention.apply(dst, units[unit], importance.patch(unit, draw))
          : membersOf(unit).forEach((u, k) => intervention.apply(dst, u, drawOf(unit, draw, k))),
    { chunk: DEFAULT_CHUNK, runner: executor, skip },
  );
  const evaluate = scorer.evaluate;

  let estimates: UnitEstimate[];
  let extraPasses = 0;
  let screenLoss: ScreenLoss | undefined;
  let timeBudgetPasses: number | undefined;
  const notes = [...(intervention.notes ?? []), ...(executor?.notes ?? [])];
  if (!executor && p.mode !== "off") notes.push(`full passes (--incremental ${p.mode}): ${p.why}`);
  if (ad) {
    // The time left, at the pass rate measured so far (all cached: no limit from the clock).
    let screenMs = 0;
    const passesFor = (spent: number) => {
      screenMs = Date.now() - t0;
      return scorer.ranPasses === 0
        ? Infinity
        : spent + Math.max(0, ((ad.maxSeconds * 1000 - screenMs) * scorer.ranPasses) / Math.max(scorer.ranMs, 1));
    };
    const onPartialMap = ctx.run.onPartialMap;
    const onRound =
      onPartialMap &&
      ((est: UnitEstimate[], spent: number) =>
        onPartialMap({
          height: model.height,
          width: model.width,
          valueUnits: outcomeUnits(target.outcome),
          passes: spent,
          units: units.map((u, i) => ({ ...u, ...est[i] })),
        }));
    let r: AdaptiveResult;
    if (cheap) {
      const priorReqs = units.map((_, b) => ({ unit: priorBase + b, draw: 0 }));
      const cheapMap = Array.from(await evaluate(priorReqs, "zero-fill prior"), (v) => v - target.base);
      if (ad.sampling === "importance") {
        importance = new ImportanceSampler(strat!.strata, strat!.weights, ctx.seed, target.base, evaluate);
      }
      const sampler = importance ?? new StratifiedSampler(strat!.weights, target.base, evaluate);
      const p = await priorAte(cheapMap, units.length, sampler, ad, ad.strata, passesFor, ctx.plan, undefined, onRound);
      r = p;
      extraPasses = p.priorPasses;
      notes.push(priorNote(p, units.length));
      if (importance) notes.push(importanceNote(p.estimates, importance.proposal()));
    } else {
      r = await adaptiveAte(tree!, target.base, evaluate, ad, strat!.weights, passesFor, ctx.plan, undefined, onRound);
      extraPasses = r.groupPasses;
      screenLoss = r.screenLoss;
      notes.push(
        `fast schedule: ${r.groupsTested} quadtree groups tested with ${r.groupPasses} passes; ${r.estimates.filter((e) => e.samples > 0).length} of ${units.length} blocks screened individually`,
      );
    }
    estimates = r.estimates;
    const b = r.budget;
    if (b?.byTime) timeBudgetPasses = b.passes;
    if (b?.byTime && b.binding && screenMs > ad.maxSeconds * 1000) {
      notes.push(
        `time budget ${ad.maxSeconds} s: the screen alone took ${(screenMs / 1000).toFixed(screenMs < 10_000 ? 1 : 0)} s (it always completes, so every block has an estimate); no further rounds ran — raise --max-time or use larger blocks (--max-passes ${b.passes} reproduces this map)`,
      );
    } else if (b?.byTime && b.binding) {
      notes.push(
        `time budget ${ad.maxSeconds} s: ${b.passes} passes at the pass rate measured during the screen (${((1000 * scorer.ranPasses) / Math.max(scorer.ranMs, 1)).toFixed(1)}/s); the map depends on the machine's speed — rerun with --max-passes ${b.passes} to reproduce it exactly`,
      );
    }
    if (b && b.screen > b.passes) {
      notes.push(
        `pass budget exceeded: the screen alone needed ${b.screen} passes (budget ${b.passes}); it always completes, so every block has an estimate${b.binding ? `, but no further rounds ran — raise --max-passes above ${b.screen} or use larger blocks` : ", and the map needed no further rounds"}`,
      );
    } else if (b?.binding)
      notes.push(
        `${b.byTime ? "time" : "pass"} budget reached: ${b.spent} of ${b.passes} passes; the map's noise is ${fmtRatio(r.noiseRatio)} of its spread (the schedule's target: ${ad.fidelity}) — the per-block standard errors say how far to trust each block`,
      );
    if (r.short)
      notes.push(
        `the map's noise is ${fmtRatio(r.noiseRatio)} of its spread, above the target ${ad.fidelity} (--map-noise): no block could take another round (each reached the cap of ${Math.floor(ad.maxSamples / ad.strata) * ad.strata} draws, or a standard error below ${ad.absTol}) — raise --samples for a closer map; the per-block standard errors say how far to trust each block`,
      );
  } else {
    estimates = await screenedAte(units.length, target.base, evaluate, spec.estimator, ctx.plan);
  }
  await scorer.save();
  if (skip) {
    // Their samples score m(X) exactly, as full passes would: the estimates are those of a run without
    // the executor (the same schedule, fit and standard errors), only cheaper.
    const out = units.filter((_, i) => skip(i)).length;
    if (out > 0)
      notes.push(
        `${out} of ${units.length} ${custom ? custom.unitKind : "block"}s lie outside the input the RoI's outputs read (outside the RoI's reach): every draw of them leaves the RoI's outputs unchanged (Δ = 0 exactly), so the ${scorer.skippedPasses} samples the schedule drew of them (alone or in quadtree groups of such blocks) took no pass`,
      );
  }

  const results = units.map((u, i) => ({ ...u, ...estimates[i] }));
  // An all-zero map is a finding, but usually of the RoI rather than the model: say why and what to try.
  const tau = (ad ?? spec.estimator).tau;
  if (tau > 0 && results.every((r) => r.effect === 0)) {
    const unit = custom ? custom.unitKind : "block";
    notes.push(
      `no ${unit} moved the RoI's ${target.outcome} by τ = ${tau} on average, so the map is 0 everywhere (base ${target.base.toFixed(2)}): a RoI well inside the structure or in the background often keeps its Dice whatever one ${unit} holds — try a RoI on the structure's border, --outcome soft-dice, or a smaller --tau`,
    );
  }
  if (screenLoss && screenLoss.blocks > 0) {
    const total = results.reduce((s, r) => s + Math.abs(r.effect), 0);
    const share = total > 0 ? ` (${((100 * screenLoss.bound) / total).toFixed(1)}% of the map's total |effect|, ${total.toFixed(2)})` : "";
    notes.push(
      `the screen set ${screenLoss.blocks} blocks to 0 (${screenLoss.groups} quadtree group${screenLoss.groups === 1 ? "" : "s"} cleared whole, ${screenLoss.alone} block${screenLoss.alone === 1 ? "" : "s"} alone); their largest |Δ| in any screening draw sums to ${fmtSmall(screenLoss.bound)}${share}: with additive block effects, about as much effect as they may hide, unless effects of opposite sign cancel within a group or a rare patch moves the RoI more`,
    );
  }
  return ctx.finish({
    method: spec.method,
    unitKind: custom ? custom.unitKind : grid.stride < spec.blockSize ? "window" : "block",
    signed: true,
    map: paint(model.height, model.width, units, (i) => results[i].effect),
    stderrMap: paint(model.height, model.width, units, (i) => results[i].stderr, Number.NaN),
    units: results,
    roiCells: grid.roiCells,
    forwardPasses: 1 + extraPasses + results.reduce((s, r) => s + r.samples, 0),
    tau,
    screenLoss,
    notes,
    settings: {
      blockSize: spec.blockSize,
      stride: grid.stride,
      ...(ad ?? spec.estimator),
      ...spec.settings,
      ...(timeBudgetPasses !== undefined ? { timeBudgetPasses } : {}),
      ...(executor ? { incremental: { ...executor.record, skippedPasses: scorer.skippedPasses } } : p.full ? { incremental: p.full } : {}),
    },
    intervention: intervention.describe(),
  });
}
