/**
 * Deletion and insertion curves and top-k effects on the RoI outcome of the method's Target.
 *
 * - Deletion: starting from the image, replace the explained domain's units in rank order (most
 *   supporting first), K steps; point k = outcome after removing the first round(k·U/K) units
 *   (with pixel units, round(k·N/K) pixels: equal-area steps).
 * - Insertion: starting from the fully removed image (every domain pixel replaced), restore them in
 *   the same order; point k = outcome with the first round(k·U/K) units restored.
 * - Both curves share their end points: m(X) (nothing removed) and m(removed) (all removed).
 * - Stochastic fills (natural patches) are averaged over the same draws at every point.
 */

import type { Unit } from "../explain/units.js";
import type { Model } from "../model/model.js";
import type { Runner } from "../model/runner.js";
import type { Target } from "../target/target.js";
import type { CurveFill } from "./fills.js";
import { trapezoidAuc } from "./map-metrics.js";
import { areaPrefix, massPrefix, type Ranking, stepPixels } from "./ordering.js";

/**
 * What the curves need of a model: the RoI outcome with each set of domain cells (pixels, or voxels
 * of a volume's box) replaced by a fill, averaged over the fill's draws.
 */
export interface CurveProber<F> {
  /** model passes run so far */
  readonly passes: number;
  outcomes(sets: readonly Uint32Array[], fill: F): Promise<number[]>;
}

/** Runs intervened inputs: base input with a pixel set replaced by a fill, outcome averaged over the fill's draws. */
export class Prober implements CurveProber<CurveFill> {
  passes = 0;
  constructor(
    private readonly model: Model,
    private readonly runner: Runner,
    private readonly base: Float32Array,
    private readonly target: Target,
  ) {}

  async outcomes(sets: readonly Uint32Array[], fill: CurveFill): Promise<number[]> {
    const { height, width } = this.model;
    const items: { set: number; draw: number }[] = [];
    sets.forEach((_, s) => fill.draws.forEach((d) => items.push({ set: s, draw: d })));
    const units: Unit[] = sets.map((pixels) => ({ index: 0, row: 0, col: 0, height, width, pixels }));
    const scores = await this.runner.evaluate(
      items,
      (it, dst) => {
        dst.set(this.base);
        if (units[it.set].pixels!.length > 0) fill.intervention.apply(dst, units[it.set], it.draw);
      },
      (data, slot) => this.target.score(data, slot),
    );
    this.passes += items.length;
    const out = new Array<number>(sets.length).fill(0);
    items.forEach((it, i) => (out[it.set] += scores[i] / fill.draws.length));
    return out;
  }
}

export interface CurvePair {
  /** K+1 points, Dice points (or the Target's outcome units) */
  deletion: number[];
  insertion: number[];
  /** trapezoid mean height over the removed fraction in [0,1] (outcome units) */
  deletionAuc: number;
  insertionAuc: number;
  /** (AUC − m(removed)) / (m(X) − m(removed)); null unless m(X) − m(removed) ≥ minRange */
  deletionAucNorm: number | null;
  insertionAucNorm: number | null;
}

export interface Endpoints {
  base: number;
  removed: number;
}

export function normalise(auc: number, ends: Endpoints, minRange: number): number | null {
  const range = ends.base - ends.removed;
  return range >= minRange ? (auc - ends.removed) / range : null;
}

export async function curvePair<F>(
  prober: CurveProber<F>,
  ranking: Ranking,
  fill: F,
  steps: number,
  ends: Endpoints,
  minRange: number,
): Promise<CurvePair> {
  const order = ranking.order;
  const n = stepPixels(ranking, steps);
  const inner = n.slice(1, -1);
  const sets = [...inner.map((c) => order.subarray(0, c)), ...inner.map((c) => order.subarray(c))];
  const m = await prober.outcomes(sets, fill);
  const deletion = [ends.base, ...m.slice(0, inner.length), ends.removed];
  const insertion = [ends.removed, ...m.slice(inner.length), ends.base];
  const deletionAuc = trapezoidAuc(deletion),
    insertionAuc = trapezoidAuc(insertion);
  return {
    deletion,
    insertion,
    deletionAuc,
    insertionAuc,
    deletionAucNorm: normalise(deletionAuc, ends, minRange),
    insertionAucNorm: normalise(insertionAuc, ends, minRange),
  };
}

export interface TopK {
  /** fraction of the positive support mass (top<k>) or of the domain's area (toparea<k>) */
  k: number;
  /** share of the domain's pixels in the top-k set */
  area: number;
  /** m(X with the top-k set replaced) − m(X), outcome units (negative = removing it lowered the outcome) */
  effect: number;
}

/** Outcome changes when the first `lens[i]` pixels of the order are replaced (an empty set changes nothing). */
async function prefixEffects<F>(prober: CurveProber<F>, r: Ranking, lens: number[], ks: readonly number[], fill: F, base: number): Promise<TopK[]> {
  const m = await prober.outcomes(
    lens.map((l) => r.order.subarray(0, l)),
    fill,
  );
  return ks.map((k, i) => ({ k, area: lens[i] / r.order.length, effect: lens[i] === 0 ? 0 : m[i] - base }));
}

/** Top-k% of the attribution mass (whole units; see massPrefix). */
export function topKEffects<F>(prober: CurveProber<F>, r: Ranking, fill: F, ks: readonly number[], base: number): Promise<TopK[]> {
  return prefixEffects(
    prober,
    r,
    ks.map((k) => massPrefix(r, k)),
    ks,
    fill,
    base,
  );
}

/** Top-k% of the domain's area in the order (whole units; see areaPrefix): the same area for every method, up to one unit. */
export function topAreaEffects<F>(prober: CurveProber<F>, r: Ranking, fill: F, ks: readonly number[], base: number): Promise<TopK[]> {
  return prefixEffects(
    prober,
    r,
    ks.map((k) => areaPrefix(r, k)),
    ks,
    fill,
    base,
  );
}
