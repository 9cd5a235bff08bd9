/**
 * PdCR (Jiang et al., arXiv 2602.20511): replace each grid block outside the RoI by natural
 * patches from other images and estimate the ATE on the RoI outcome with the screened estimator.
 * `zero` is the paper's ablation: each block set to black once, same τ rule.
 */
import type { Case } from "../data/case.js";
import type { PatchBank } from "../data/patchbank.js";
import type { Model } from "../model/model.js";
import type { TargetSpec } from "../target/target.js";
import type { Attribution } from "./attribution.js";
import { explainBlocks, type RunOptions } from "./block-effects.js";
import { PAPER_SCREENED_ATE } from "./estimators.js";
import { FillIntervention, PatchIntervention } from "./interventions.js";

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
}

export const PDCR_DEFAULTS = { blockSize: 8, ...PAPER_SCREENED_ATE, seed: 0 };

export function explainPdcr(model: Model, kase: Case, target: TargetSpec, opts: PdcrOptions): Promise<Attribution> {
  const blockSize = opts.blockSize ?? PDCR_DEFAULTS.blockSize;
  return explainBlocks(
    model,
    kase,
    target,
    {
      method: "pdcr",
      blockSize,
      estimator: { screen: opts.screen ?? PDCR_DEFAULTS.screen, samples: opts.samples ?? PDCR_DEFAULTS.samples, tau: opts.tau ?? PDCR_DEFAULTS.tau },
      makeIntervention: (m) => new PatchIntervention(opts.bank, m, blockSize),
      settings: { schedule: "paper" },
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
