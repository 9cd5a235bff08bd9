/**
 * PdCR on superpixels: PdCR's natural-patch intervention and screened ATE estimator (S draws to
 * screen, N fresh draws for units passing it, τ rule) with SLIC superpixels as units instead of 8×8
 * blocks. A superpixel is tiled with bank patches over its bounding box and replaced on its own
 * pixels only (PatchIntervention); the RoI's pixels are cut out of every superpixel (partition.ts).
 * Runs on the shared block engine (explainBlocks with a precomputed unit list).
 */
import type { Case } from "../data/case.js";
import type { PatchBank } from "../data/patchbank.js";
import type { Model } from "../model/model.js";
import type { TargetSpec } from "../target/target.js";
import type { Attribution } from "./attribution.js";
import { explainBlocks } from "./block-effects.js";
import { PAPER_SCREENED_ATE } from "./estimators.js";
import { PatchIntervention } from "./interventions.js";
import { defined } from "./lime.js";
import { defineMethod } from "./methods.js";
import { choice, int, num } from "./options.js";
import { type ColorSpace, superpixelPartition } from "./partition.js";
import type { RunOptions } from "./run.js";

export interface PdcrSuperpixelOptions extends RunOptions {
  bank: PatchBank;
  /** SLIC superpixels (default 100) */
  segments?: number;
  /** SLIC compactness (default 10) */
  compactness?: number;
  /** SLIC colour space (default "lab") */
  colorSpace?: ColorSpace;
  /** screening draws S (default 3) */
  screen?: number;
  /** fresh draws N for superpixels passing the screen (default 50) */
  samples?: number;
  /** τ in outcome units (default 0.02 Dice points) */
  tau?: number;
}

export const PDCR_SUPERPIXEL_DEFAULTS = { segments: 100, compactness: 10, colorSpace: "lab" as ColorSpace, ...PAPER_SCREENED_ATE };

export async function explainPdcrSuperpixel(model: Model, kase: Case, target: TargetSpec, opts: PdcrSuperpixelOptions): Promise<Attribution> {
  const o = { ...PDCR_SUPERPIXEL_DEFAULTS, ...defined(opts) };
  const slicOpts = { segments: o.segments, compactness: o.compactness, colorSpace: o.colorSpace };
  return explainBlocks(
    model,
    kase,
    target,
    {
      method: "pdcr-superpixel",
      blockSize: opts.bank.patchSize,
      estimator: { screen: o.screen, samples: o.samples, tau: o.tau },
      makeIntervention: (m, k) => new PatchIntervention(opts.bank, m, undefined, k),
      units: (t) => superpixelPartition(kase.image, t.region, slicOpts),
      settings: { partition: "superpixels", ...slicOpts },
    },
    opts,
  );
}

export const pdcrSuperpixelMethod = defineMethod({
  name: "pdcr-superpixel",
  family: "causal",
  summary: "PdCR on ~100 SLIC superpixels: each replaced by tiled natural patches from the bank, screened ATE (S=3, N=50, tau=0.02)",
  cost: "1 + 3*superpixels + 50*(superpixels passing the screen)",
  needsBank: true,
  options: {
    segments: int({ description: "approximate number of SLIC superpixels", default: PDCR_SUPERPIXEL_DEFAULTS.segments, min: 2 }),
    compactness: num({
      description: "SLIC compactness (larger = squarer superpixels)",
      default: PDCR_SUPERPIXEL_DEFAULTS.compactness,
      min: 0,
      minExclusive: true,
    }),
    colorSpace: choice(["lab", "rgb"], { description: "colour space of SLIC's colour distance", default: PDCR_SUPERPIXEL_DEFAULTS.colorSpace }),
    screen: int({ description: "screening draws S per unit", default: PDCR_SUPERPIXEL_DEFAULTS.screen, min: 1 }),
    samples: int({ description: "fresh draws N per unit passing the screen", default: PDCR_SUPERPIXEL_DEFAULTS.samples, min: 1 }),
    tau: num({ description: "effects with |ATE| below tau (outcome units) are set to 0", default: PDCR_SUPERPIXEL_DEFAULTS.tau, min: 0 }),
  },
  explain: (ctx, o) => explainPdcrSuperpixel(ctx.model, ctx.kase, ctx.target, { ...ctx.run, bank: ctx.bank!, ...o }),
});
