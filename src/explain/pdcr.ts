/**
 * PdCR (Jiang et al., arXiv 2602.20511): replace each grid block outside the RoI by natural
 * patches from other images and estimate the ATE on the RoI outcome with the screened estimator.
 * `zero` is the paper's ablation: each block set to black once, same τ rule.
 */
import type { Case } from "../data/case.js";
import type { PatchBank } from "../data/patchbank.js";
import { fail } from "../errors.js";
import type { Model } from "../model/model.js";
import type { TargetSpec } from "../target/target.js";
import { type AdaptiveSettings, FAST_SCHEDULE, PRIORS, SAMPLINGS } from "./adaptive.js";
import type { Attribution } from "./attribution.js";
import { explainBlocks } from "./block-effects.js";
import { PAPER_SCREENED_ATE } from "./estimators.js";
import { FillIntervention, PatchIntervention, PIXEL_VALUE } from "./interventions.js";
import { checkBlockFits, defineMethod } from "./methods.js";
import { choice, int, num } from "./options.js";
import type { RunOptions } from "./run.js";
import { pdcrVolume, zeroVolume } from "./volume/block-methods.js";

export interface PdcrOptions extends RunOptions {
  bank: PatchBank;
  /** block size in pixels (paper: 8) */
  blockSize?: number;
  /** screening draws S (paper: 3) */
  screen?: number;
  /** fresh draws N for blocks passing the screen (paper: 50) */
  samples?: number;
  /** τ in outcome units (paper: 0.02 Dice points) */
  tau?: number;
  /** "fast" (default): hierarchical screening + stratified sequential draws; "paper": the paper's exact schedule */
  schedule?: Schedule;
  /** fast-schedule settings beyond τ and the sample cap */
  fast?: Partial<AdaptiveSettings>;
}

export type Schedule = "fast" | "paper";
export const SCHEDULES: readonly Schedule[] = ["fast", "paper"];

/** Revision of the fast schedule's maps (evaluate's cell keys and the calibration bench's caches carry it). */
export const FAST_REVISION = "3";

export const PDCR_DEFAULTS = { blockSize: 8, ...PAPER_SCREENED_ATE, seed: 0, schedule: "fast" as Schedule };

export function explainPdcr(model: Model, kase: Case, target: TargetSpec, opts: PdcrOptions): Promise<Attribution> {
  const blockSize = opts.blockSize ?? PDCR_DEFAULTS.blockSize;
  const schedule = opts.schedule ?? PDCR_DEFAULTS.schedule;
  if (!SCHEDULES.includes(schedule)) fail(`unknown schedule '${schedule}'`, `use one of ${SCHEDULES.join(", ")}`);
  const estimator = {
    screen: opts.screen ?? PDCR_DEFAULTS.screen,
    samples: opts.samples ?? PDCR_DEFAULTS.samples,
    tau: opts.tau ?? PDCR_DEFAULTS.tau,
  };
  // The fast schedule draws in rounds of one patch per stratum: a cap below one round cannot be honoured.
  const strata = opts.fast?.strata ?? FAST_SCHEDULE.strata;
  if (schedule === "fast" && !(estimator.samples >= strata)) {
    fail(
      `the fast schedule draws patches in rounds of ${strata} (one per brightness stratum of the bank), so --samples must be >= ${strata}, got ${estimator.samples}`,
      `use --samples ${strata} or more, or --schedule paper`,
    );
  }
  return explainBlocks(
    model,
    kase,
    target,
    {
      method: "pdcr",
      blockSize,
      estimator,
      adaptive: schedule === "fast" ? { ...FAST_SCHEDULE, tau: estimator.tau, maxSamples: estimator.samples, ...opts.fast } : undefined,
      makeIntervention: (m, k) => new PatchIntervention(opts.bank, m, blockSize, k),
      settings: { schedule },
    },
    opts,
  );
}

export interface ZeroOptions extends RunOptions {
  blockSize?: number;
  tau?: number;
  /** replacement pixel value in 0..scale units (paper: 0, black) */
  fill?: number;
}

export function explainZero(model: Model, kase: Case, target: TargetSpec, opts: ZeroOptions = {}): Promise<Attribution> {
  const fill = opts.fill ?? 0;
  return explainBlocks(
    model,
    kase,
    target,
    {
      method: "zero",
      blockSize: opts.blockSize ?? PDCR_DEFAULTS.blockSize,
      // One deterministic pass per block; the τ rule applies to its Δ.
      estimator: { screen: 1, samples: 0, tau: opts.tau ?? PDCR_DEFAULTS.tau },
      makeIntervention: (m, k) => FillIntervention.create(m, k.image, { kind: "constant", value: fill }),
      settings: { fill },
    },
    opts,
  );
}

const tau = num({ description: "effects with |ATE| below tau (outcome units) are set to 0", default: PDCR_DEFAULTS.tau, min: 0 });
const block = int({ description: "block (unit) size in pixels", default: PDCR_DEFAULTS.blockSize, min: 1 });
const onlyFast = { appliesWhen: { option: "schedule", values: ["fast"] } };

export const pdcrMethod = defineMethod({
  name: "pdcr",
  family: "causal",
  // 2: the fast schedule draws patches independently per block (was: common random numbers)
  // 3: its standard errors are never below a variance moderated across blocks (rounds and stopping change)
  // 3: the fast schedule's moderated standard errors; the paper schedule's maps are unchanged since 2.
  revision: (o) => (o.schedule === "paper" ? "2" : FAST_REVISION),
  summary:
    "PdCR: 8x8 blocks replaced by natural patches from a bank, ATE on the RoI's Dice (tau=0.02); fast schedule by default, --schedule paper reproduces the paper (S=3, N=50)",
  cost: "paper: 1 + 3*blocks + 50*(blocks passing the screen); fast: about 23% of that on the demo's local U-Net, about 46% on deeplab-hc18, whose RoI sees the whole image (quadtree screening + stratified sequential draws)",
  needsBank: true,
  options: {
    schedule: choice(SCHEDULES, {
      description:
        "sampling schedule: fast (hierarchical screening, stratified sequential draws, per-block standard errors) or paper (exact reproduction)",
      default: PDCR_DEFAULTS.schedule,
    }),
    block,
    screen: int({
      description: "screening draws S per block (paper schedule)",
      default: PDCR_DEFAULTS.screen,
      min: 1,
      appliesWhen: { option: "schedule", values: ["paper"] },
    }),
    samples: int({
      description: "draws N per block passing the screen (paper: exactly N; fast: at most N, in whole rounds of 4)",
      default: PDCR_DEFAULTS.samples,
      min: 1,
    }),
    tau,
    mapNoise: num({
      description:
        "fast schedule: stop when the map's noise (root of the summed squared SEs) is this fraction of its spread; smaller = more passes, closer to the converged map",
      default: FAST_SCHEDULE.fidelity,
      min: 0,
      ...onlyFast,
    }),
    maxPasses: int({
      description:
        "fast schedule: forward-pass budget of the map (0 = none); the screen always completes, then rounds stop at the budget and a note gives the map's noise reached (volumes: also bounds the paper schedule, zero and occlusion, which stop at it and resume on a rerun)",
      default: FAST_SCHEDULE.maxPasses,
      min: 0,
      ...onlyFast,
      addedLater: true,
    }),
    maxTime: num({
      description:
        "fast schedule: wall-time budget in seconds (0 = none), turned into a pass budget after the screen at the measured pass rate; the note gives the passes used (--max-passes reproduces the map) (volumes: also bounds the paper schedule, zero and occlusion, which stop at it and resume on a rerun)",
      default: FAST_SCHEDULE.maxSeconds,
      min: 0,
      ...onlyFast,
      addedLater: true,
    }),
    prior: choice(PRIORS, {
      description:
        "fast schedule: zero-fill = set each block to black once (one pass per block) and shrink the blocks' draw means toward a regression on that map (empirical Bayes; no screen, rounds go where they remove the most posterior variance); zero-fill-split = the same, but the blocks whose |zero-fill Δ| <= tau are shrunk apart toward their own mean with their own between-block variance, so blocks the zero-fill map shows inert are rarely drawn; estimates are biased toward the line, see docs/performance.md",
      default: "none",
      ...onlyFast,
      addedLater: true,
    }),
    sampling: choice(SAMPLINGS, {
      description:
        "fast schedule with --prior: importance = draw patches from a proposal over the bank's brightness bins learned online from earlier draws (mixed with uniform, weights <= 3.3), weighted means unbiased, effective sample size per block; stratified = one draw per brightness stratum per round",
      default: "stratified",
      ...onlyFast,
      addedLater: true,
    }),
  },
  check: (ctx) => {
    checkBlockFits(ctx);
    if (ctx.options.sampling === "importance" && ctx.options.prior === "none")
      fail("--sampling importance runs in the screen-free schedule of a prior", "add --prior zero-fill, or leave --sampling out");
    const block = ctx.options.block;
    if (ctx.bankPatchSize !== undefined && ctx.bankPatchSize !== block) {
      fail(
        `${ctx.label("block", String(block))} does not match the bank's ${ctx.bankPatchSize}x${ctx.bankPatchSize} patches`,
        `make a bank of ${block} px patches, or use ${ctx.label("block", String(ctx.bankPatchSize))}`,
      );
    }
  },
  explain: (ctx, o) =>
    explainPdcr(ctx.model, ctx.kase, ctx.target, {
      ...ctx.run,
      bank: ctx.bank!,
      schedule: o.schedule,
      fast: {
        fidelity: o.mapNoise,
        maxPasses: o.maxPasses,
        maxSeconds: o.maxTime,
        ...(o.prior !== "none" ? { prior: o.prior } : {}),
        ...(o.sampling === "importance" ? { sampling: o.sampling } : {}),
      },
      blockSize: o.block,
      screen: o.screen,
      samples: o.samples,
      tau: o.tau,
    }),
  volume: pdcrVolume,
});

export const zeroMethod = defineMethod({
  name: "zero",
  family: "causal",
  summary: "the paper's ablation: each 8x8 block set to black (or --fill v) once, tau rule",
  cost: "1 + blocks",
  options: {
    block,
    tau,
    fill: num({ description: "replacement pixel value (0..255 image units; 0 = black)", default: 0, ...PIXEL_VALUE }),
  },
  check: (ctx) => checkBlockFits(ctx),
  explain: (ctx, o) => explainZero(ctx.model, ctx.kase, ctx.target, { ...ctx.run, blockSize: o.block, tau: o.tau, fill: o.fill }),
  volume: zeroVolume,
});
