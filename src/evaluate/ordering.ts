/**
 * Orderings of the explained domain for deletion/insertion curves and top-k sets. The domain is
 * partitioned into units (rank-units.ts); an order ranks whole units and lists their pixels unit by
 * unit, so a curve removes or restores whole units. A method's order: units by decreasing mean
 * support over their pixels. Ties (e.g. the exactly-zero regions of sparse maps, or the blocks of a
 * block map) are broken by one seeded key per unit, uniform(seed, tieBreak, unit label), the same
 * rule for every method and control. With pixel units this is the published protocol: pixels by
 * support, ties by a seeded permutation of the pixels.
 */
import { uniform } from "../util/rng.js";
import { STREAM } from "../util/streams.js";
import { type DomainUnits, pixelUnits, unitCount } from "./rank-units.js";

/** The domain ranked by units. */
export interface Ranking {
  /** domain pixels, unit by unit in rank order */
  order: Uint32Array;
  /** ends[i] = pixels in the first i + 1 ranked units */
  ends: Uint32Array;
  /** positive mass of each ranked unit, |u| · max(mean support, 0) (0 for the controls) */
  mass: Float64Array;
}

/** Units sorted by decreasing score, ties by increasing key; the pixels listed unit by unit. */
function rankBy(units: DomainUnits, score: Float64Array, key: Float64Array, mass: Float64Array): Ranking {
  const idx = Array.from({ length: unitCount(units) }, (_, i) => i);
  idx.sort((a, b) => (score[b] > score[a] ? 1 : score[b] < score[a] ? -1 : 0) || key[a] - key[b]);
  const order = new Uint32Array(units.pixels.length);
  const ends = new Uint32Array(idx.length);
  let n = 0;
  idx.forEach((u, i) => {
    order.set(units.pixels.subarray(units.start[u], units.start[u + 1]), n);
    n += units.start[u + 1] - units.start[u];
    ends[i] = n;
  });
  return { order, ends, mass: Float64Array.from(idx, (u) => mass[u]) };
}

/** Mean of a per-pixel value over each unit's finite values (−Infinity for a unit without any: it ranks last). */
export function unitMeans(units: DomainUnits, values: ArrayLike<number>): Float64Array {
  return Float64Array.from({ length: unitCount(units) }, (_, u) => {
    let s = 0,
      n = 0;
    for (let i = units.start[u]; i < units.start[u + 1]; i++) {
      const v = values[units.pixels[i]];
      if (Number.isFinite(v)) (s += v), n++;
    }
    return n > 0 ? s / n : -Infinity;
  });
}

const tieKeys = (units: DomainUnits, seed: number) => Float64Array.from(units.label, (l) => uniform(seed, STREAM.tieBreak, l));
const size = (units: DomainUnits, u: number) => units.start[u + 1] - units.start[u];

/** A method's order: units by decreasing mean support, ties by the seeded per-unit key. */
export function rankUnits(units: DomainUnits, support: ArrayLike<number>, seed: number): Ranking {
  const mean = unitMeans(units, support);
  return rankBy(
    units,
    mean,
    tieKeys(units, seed),
    Float64Array.from(mean, (m, u) => size(units, u) * Math.max(m, 0)),
  );
}

/** The random control: a seeded uniformly random order of the units. */
export function randomUnits(units: DomainUnits, seed: number): Ranking {
  const n = unitCount(units);
  return rankBy(
    units,
    new Float64Array(n),
    Float64Array.from(units.label, (l) => uniform(seed, STREAM.randomOrder, l)),
    new Float64Array(n),
  );
}

/** The distance control: units by increasing mean distance to the RoI (nearest first), ties by the seeded per-unit key. */
export function distanceUnits(units: DomainUnits, dist: ArrayLike<number>, seed: number): Ranking {
  const mean = unitMeans(units, dist);
  return rankBy(
    units,
    Float64Array.from(mean, (d) => -d),
    tieKeys(units, seed),
    new Float64Array(mean.length),
  );
}

/** Domain pixels sorted by support (descending), ties by the seeded permutation (pixel units). */
export function rankBySupport(support: Float32Array, domain: Uint32Array, seed: number): Uint32Array {
  return rankUnits(pixelUnits(domain), support, seed).order;
}

/** Units removed after step k of K steps: the first round(k·U/K), k = 0..K. */
export function stepCounts(n: number, steps: number): number[] {
  return Array.from({ length: steps + 1 }, (_, k) => Math.round((k * n) / steps));
}

/** Pixels removed after each of the K steps: whole units, round(k·U/K) of them at step k. */
export function stepPixels(r: Ranking, steps: number): number[] {
  return stepCounts(r.ends.length, steps).map((u) => (u === 0 ? 0 : r.ends[u - 1]));
}

/**
 * The top-k% of the attribution mass: the pixels of the shortest prefix of ranked units whose
 * cumulative positive mass reaches fraction `f` of the total positive mass over the domain. Returns
 * its length in pixels (0 when the map has no positive support at all: nothing is claimed to support
 * the RoI, so nothing is intervened on).
 */
export function massPrefix(r: Ranking, f: number): number {
  let total = 0;
  for (const m of r.mass) total += m;
  if (!(total > 0)) return 0;
  const goal = f * total;
  let cum = 0;
  for (let i = 0; i < r.mass.length; i++) {
    cum += r.mass[i];
    if (cum >= goal * (1 - 1e-12)) return r.ends[i];
  }
  return r.order.length;
}

/** The top-k% of the domain's area: the pixels of the shortest prefix of ranked units covering at least fraction `f` of D. */
export function areaPrefix(r: Ranking, f: number): number {
  const goal = f * r.order.length * (1 - 1e-12);
  for (let i = 0; i < r.ends.length; i++) if (r.ends[i] >= goal) return r.ends[i];
  return r.order.length;
}
