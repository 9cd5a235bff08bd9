/**
 * LIME (Ribeiro et al. 2016), as lime_image runs it: superpixels; coalitions keeping each unit
 * with probability 1/2 (the first coalition is the unperturbed image); weights
 * sqrt(exp(−d²/w²)) with d the cosine distance of the coalition to the all-kept one and w = 0.25;
 * a ridge regression (alpha 1, unpenalised intercept) of the RoI outcome on the keep indicators.
 * The coefficient of "unit kept" is the surrogate's effect of the unit's presence, so the map holds
 * effect = −coefficient (removal-effect sign convention). Removed units get the image's mean colour
 * by default (lime_image's default is each superpixel's own mean colour).
 */
import type { Case } from "../data/case.js";
import { fail } from "../errors.js";
import type { Model } from "../model/model.js";
import type { TargetSpec } from "../target/target.js";
import type { Attribution } from "./attribution.js";
import { bernoulliCoalition, checkCount, explainCoalitions } from "./coalitions.js";
import type { FillKind } from "./interventions.js";
import { defineMethod } from "./methods.js";
import { choice, fillOptions, int, num } from "./options.js";
import type { ColorSpace, PartitionKind } from "./partition.js";
import type { RunOptions } from "./run.js";
import { weightedLeastSquares } from "./surrogates.js";

/** Partition and fill options shared by the coalition methods (LIME, KernelSHAP). */
export interface CoalitionCommonOptions extends RunOptions {
  /** "superpixels" (default) or "grid" */
  partition?: PartitionKind;
  /** SLIC superpixels (default 100) */
  segments?: number;
  /** SLIC compactness (default 10) */
  compactness?: number;
  /** SLIC colour space (default "lab") */
  colorSpace?: ColorSpace;
  /** grid cell size in pixels when partition = "grid" (default 16) */
  block?: number;
  /** default "mean" */
  fillKind?: FillKind;
  /** pixel value of the constant fill (default 0) */
  fill?: number;
  /** Gaussian sigma of the blur fill (default 5) */
  sigma?: number;
  /** number of sampled coalitions (default 1000) */
  coalitions?: number;
}

const PARTITION_KINDS = ["superpixels", "grid"] as const satisfies readonly PartitionKind[];
const COLOR_SPACES = ["lab", "rgb"] as const satisfies readonly ColorSpace[];

export const COALITION_DEFAULTS = {
  partition: "superpixels" as PartitionKind,
  segments: 100,
  compactness: 10,
  colorSpace: "lab" as ColorSpace,
  block: 16,
  fillKind: "mean" as FillKind,
  fill: 0,
  sigma: 5,
  coalitions: 1000,
};

export interface LimeOptions extends CoalitionCommonOptions {
  /** kernel width on the cosine distance (default 0.25, lime_image's) */
  kernelWidth?: number;
  /** ridge penalty alpha (default 1, lime's) */
  ridge?: number;
}

export const LIME_DEFAULTS = { ...COALITION_DEFAULTS, kernelWidth: 0.25, ridge: 1 };

export function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export function coalitionBasics(o: typeof COALITION_DEFAULTS) {
  return {
    partition: { partition: o.partition, segments: o.segments, compactness: o.compactness, colorSpace: o.colorSpace, block: o.block },
    fill: { kind: o.fillKind, value: o.fill, sigma: o.sigma },
    coalitions: o.coalitions,
  };
}

export async function explainLime(model: Model, kase: Case, target: TargetSpec, opts: LimeOptions = {}): Promise<Attribution> {
  const o = { ...LIME_DEFAULTS, ...defined(opts) };
  if (!(o.kernelWidth > 0)) fail(`kernel width must be > 0, got ${o.kernelWidth}`, "use --kernel-width 0.25");
  if (!(o.ridge >= 0)) fail(`ridge must be >= 0, got ${o.ridge}`, "use --ridge 1");
  checkCount("coalitions", o.coalitions, 2, "use --coalitions 1000");
  return explainCoalitions(
    model,
    kase,
    target,
    {
      method: "lime",
      ...coalitionBasics(o),
      // lime_image: the first sample is the unperturbed image, then each unit kept with probability 1/2
      sample: (seed, i, d) => (i === 0 ? new Uint8Array(d).fill(1) : bernoulliCoalition(seed, i, d, 0.5)),
      fit: (Z, y, d) => {
        const n = y.length;
        const X = Float64Array.from(Z);
        const w = new Float64Array(n);
        for (let i = 0; i < n; i++) {
          let k = 0;
          for (let j = 0; j < d; j++) k += Z[i * d + j];
          const dist = 1 - Math.sqrt(k / d); // cosine distance to the all-ones coalition (1 for the empty one)
          w[i] = Math.sqrt(Math.exp(-(dist * dist) / (o.kernelWidth * o.kernelWidth)));
        }
        const f = weightedLeastSquares(X, y, w, d, o.ridge, true);
        return {
          effect: f.coef.map((c) => -c),
          stderr: f.stderr,
          notes: [`LIME surrogate: intercept ${f.intercept.toFixed(4)}, weighted R² ${f.r2.toFixed(3)} on ${n} coalitions of ${d} units`],
        };
      },
      settings: {
        kernel: "sqrt(exp(-d^2/w^2)), d = cosine distance to the all-kept coalition",
        kernelWidth: o.kernelWidth,
        ridge: o.ridge,
        sampler: "bernoulli(0.5), first coalition all kept",
      },
    },
    opts,
  );
}

/** Options of the coalition methods in the registry, in declaration order. */
export function coalitionOptionDecls() {
  const d = COALITION_DEFAULTS;
  const onlySuperpixels = { appliesWhen: { option: "partition", values: ["superpixels"] } };
  return {
    partition: choice(PARTITION_KINDS, { description: "units: SLIC superpixels or a grid of --block cells", default: d.partition }),
    segments: int({ description: "approximate number of SLIC superpixels", default: d.segments, min: 2, ...onlySuperpixels }),
    compactness: num({
      description: "SLIC compactness (larger = squarer superpixels)",
      default: d.compactness,
      min: 0,
      minExclusive: true,
      ...onlySuperpixels,
    }),
    colorSpace: choice(COLOR_SPACES, { description: "colour space of SLIC's colour distance", default: d.colorSpace, ...onlySuperpixels }),
    block: int({ description: "grid cell size in pixels", default: d.block, min: 1, appliesWhen: { option: "partition", values: ["grid"] } }),
    coalitions: int({ description: "number of sampled coalitions (forward passes)", default: d.coalitions, min: 2 }),
    ...fillOptions("what replaces a removed unit", d),
  };
}

export const limeMethod = defineMethod({
  name: "lime",
  family: "perturbation",
  summary:
    "LIME: ~100 SLIC superpixels, 1000 coalitions (each unit kept w.p. 1/2, removed = image mean colour), cosine-kernel ridge regression; effect = -coefficient",
  cost: "coalitions (the first coalition is the unperturbed image, scored once)",
  options: {
    ...coalitionOptionDecls(),
    kernelWidth: num({
      description: "LIME kernel width on the cosine distance to the unperturbed coalition",
      default: LIME_DEFAULTS.kernelWidth,
      min: 0,
      minExclusive: true,
    }),
    ridge: num({ description: "ridge penalty (alpha) of the surrogate regression", default: LIME_DEFAULTS.ridge, min: 0 }),
  },
  explain: (ctx, o) => explainLime(ctx.model, ctx.kase, ctx.target, { ...ctx.run, ...o }),
});
