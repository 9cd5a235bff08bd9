/**
 * Coalition sampling and evaluation, shared by LIME and KernelSHAP. A sample is a binary keep-mask
 * over the units of a partition: the model input is the image where a unit is kept and the fill
 * (FillIntervention: constant, image mean or blur) where it is removed; the RoI is always kept.
 * Coalition i is a pure function of (seed, i), so results do not depend on the batch size and an
 * interrupted run resumes from its checkpoint with the identical map.
 *
 * A method is then a recipe: which coalitions (the neighbourhood) and which fit (the loss).
 */
import type { Case } from "../data/case.js";
import { fail } from "../errors.js";
import type { Model } from "../model/model.js";
import type { TargetSpec } from "../target/target.js";
import { hash3, Rng, uniform } from "../util/rng.js";
import { STREAM } from "../util/streams.js";
import { type Attribution, paint, type UnitResult } from "./attribution.js";
import { FillIntervention, type FillOptions } from "./interventions.js";
import { makePartition, type PartitionOptions } from "./partition.js";
import { RunContext, type RunOptions } from "./run.js";

const COALITION_STREAM = STREAM.coalition;

/** Coalition i with every unit kept independently with probability p (LIME's image sampler uses p = 0.5). */
export function bernoulliCoalition(seed: number, i: number, d: number, p = 0.5): Uint8Array {
  const s = hash3(seed, COALITION_STREAM, i);
  return Uint8Array.from({ length: d }, (_, j) => (uniform(s, 0, j) < p ? 1 : 0));
}

/** Shapley kernel weight of a coalition of size k out of d: (d−1) / (C(d,k)·k·(d−k)). */
export function shapleyKernelWeight(d: number, k: number): number {
  let logC = 0;
  for (let j = 1; j <= k; j++) logC += Math.log(d - k + j) - Math.log(j);
  return (d - 1) / (Math.exp(logC) * k * (d - k));
}

/**
 * KernelSHAP's paired sampler: pair j = ⌊i/2⌋ draws a size k ∈ 1..d−1 with probability
 * ∝ 1/(k(d−k)) (the Shapley kernel summed over the coalitions of that size), then a uniform subset
 * of that size; odd i is the complement of i−1. Sampled this way, every coalition gets weight 1.
 */
export function shapleyCoalition(seed: number, i: number, d: number): Uint8Array {
  const s = hash3(seed, COALITION_STREAM + 1, i >> 1);
  let total = 0;
  for (let k = 1; k < d; k++) total += 1 / (k * (d - k));
  let u = uniform(s, 0, 0) * total,
    k = 1;
  for (; k < d - 1; k++) {
    u -= 1 / (k * (d - k));
    if (u < 0) break;
  }
  const z = new Uint8Array(d);
  for (const j of new Rng(s, 1).sampleWithoutReplacement(d, k)) z[j] = 1;
  if (i & 1) for (let j = 0; j < d; j++) z[j] = 1 - z[j];
  return z;
}

/** Coalition i of the full enumeration (every coalition but the empty and the full one): the bits of i+1. */
export function enumeratedCoalition(i: number, d: number): Uint8Array {
  return Uint8Array.from({ length: d }, (_, j) => (Math.floor((i + 1) / 2 ** j) % 2 === 1 ? 1 : 0));
}

export interface CoalitionFit {
  /** per unit, with the removal-effect sign convention (negative = the unit supported the RoI) */
  effect: Float64Array;
  stderr: Float64Array;
  notes: string[];
}

export interface CoalitionRecipe {
  method: string;
  partition: PartitionOptions;
  fill: FillOptions;
  /** number of coalitions sampled */
  coalitions: number;
  /** coalition i (1 = unit kept) for d units */
  sample: (seed: number, i: number, d: number) => Uint8Array;
  /** how many coalitions are actually used for d units (default `coalitions`; KernelSHAP enumerates small d) */
  count?: (d: number) => number;
  /** whether the fit needs f(none), the outcome with every unit removed */
  needsEmpty?: boolean;
  /** Z: n×d coalitions, y: their outcomes; fAll = m(X), fNone = outcome with every unit removed (NaN unless needsEmpty) */
  fit: (Z: Uint8Array, y: Float64Array, d: number, fAll: number, fNone: number) => CoalitionFit;
  /** the method's own settings, for provenance and the checkpoint key */
  settings: Record<string, unknown>;
}

export function checkCount(name: string, v: number, min: number, hint: string): void {
  if (!Number.isInteger(v) || v < min) fail(`${name} must be an integer >= ${min}, got ${v}`, hint);
}

export async function explainCoalitions(
  model: Model,
  kase: Case,
  targetSpec: TargetSpec,
  recipe: CoalitionRecipe,
  run: RunOptions = {},
): Promise<Attribution> {
  checkCount("coalitions", recipe.coalitions, 1, "use --coalitions 1000");
  const fill = await FillIntervention.create(model, kase.image, recipe.fill);
  const s = await RunContext.open(model, kase, targetSpec, run);
  const part = makePartition(kase.image, s.target.region, recipe.partition);
  const units = part.units;
  const d = units.length;
  const n = recipe.count?.(d) ?? recipe.coalitions;
  const Z = new Uint8Array(n * d);
  for (let i = 0; i < n; i++) Z.set(recipe.sample(s.seed, i, d), i * d);
  const write = (stream: number, i: number, dst: Float32Array): void => {
    for (let j = 0; j < d; j++) if (stream === 1 || Z[i * d + j] === 0) fill.apply(dst, units[j]);
  };
  const settings = { ...part.describe, fill: recipe.fill, coalitions: recipe.coalitions, ...recipe.settings };
  const scorer = s.scorer(
    s.checkpointKey([
      "model",
      "image",
      "mask",
      "card",
      "seed",
      "target",
      { method: recipe.method, settings, units: d, intervention: fill.describe() },
    ]),
    write,
  );
  // Coalitions keeping every unit are the unperturbed input: their outcome is m(X), no pass needed.
  const y = new Float64Array(n);
  const todo: number[] = [];
  for (let i = 0; i < n; i++) {
    let all = true;
    for (let j = 0; j < d && all; j++) all = Z[i * d + j] === 1;
    if (all) y[i] = s.target.base;
    else todo.push(i);
  }
  const passes = 1 + todo.length + (recipe.needsEmpty ? 1 : 0);
  s.planExactly(passes);
  const fNone = recipe.needsEmpty ? (await scorer.score(1, [0], "empty coalition"))[0] : Number.NaN;
  const scored = await scorer.score(0, todo, "coalitions");
  todo.forEach((i, k) => (y[i] = scored[k]));
  const fit = recipe.fit(Z, y, d, s.target.base, fNone);
  const results: UnitResult[] = units.map((u, j) => ({
    ...u,
    effect: fit.effect[j],
    rawEffect: fit.effect[j],
    stderr: fit.stderr[j],
    samples: n,
    status: "above-tau",
    ...(n - d - 1 > 0 ? { dof: n - d - 1 } : {}),
  }));
  const notes = [...fit.notes];
  if (recipe.needsEmpty)
    notes.push(`outcome with every unit removed f(none) = ${fNone.toFixed(4)}, unperturbed f(all) = ${s.target.base.toFixed(4)}`);
  return s.finish({
    method: recipe.method,
    unitKind: part.unitKind,
    signed: true,
    map: paint(model.height, model.width, units, (i) => results[i].effect),
    stderrMap: paint(model.height, model.width, units, (i) => results[i].stderr, Number.NaN),
    units: results,
    roiCells: part.roiCells,
    forwardPasses: passes,
    tau: 0,
    settings,
    intervention: fill.describe(),
    notes,
  });
}
