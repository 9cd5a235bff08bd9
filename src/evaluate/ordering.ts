/**
 * Orderings of the explained domain for deletion/insertion curves: pixels sorted by decreasing
 * support, ties broken by a seeded random permutation (so block maps, whose pixels share a value,
 * and maps with many zeros are ordered reproducibly without favouring any position); the random
 * control uses the permutation alone.
 */
import { uniform } from "../util/rng.js";

/** Stream numbers of the benchmark's random choices (pure functions of the seed, see util/rng). */
export const STREAM = { tieBreak: 0x7e51, randomOrder: 0x7e52, fillDraws: 0x7e53, noise: 0x7e54, roi: 0x7e55 } as const;

/** Domain pixels sorted by support (descending), ties by the seeded permutation. */
export function rankBySupport(support: Float32Array, domain: Uint32Array, seed: number): Uint32Array {
  const key = Float64Array.from(domain, (p) => uniform(seed, STREAM.tieBreak, p));
  // NaN (no value) ranks last, like the least supportive pixel
  const s = Float64Array.from(domain, (p) => (Number.isNaN(support[p]) ? -Infinity : support[p]));
  const idx = Array.from({ length: domain.length }, (_, i) => i);
  idx.sort((a, b) => (s[b] > s[a] ? 1 : s[b] < s[a] ? -1 : 0) || key[a] - key[b]);
  return Uint32Array.from(idx, (i) => domain[i]);
}

/** A seeded uniformly random order of the domain (the control). */
export function randomOrder(domain: Uint32Array, seed: number): Uint32Array {
  const key = Float64Array.from(domain, (p) => uniform(seed, STREAM.randomOrder, p));
  const idx = Array.from({ length: domain.length }, (_, i) => i).sort((a, b) => key[a] - key[b]);
  return Uint32Array.from(idx, (i) => domain[i]);
}

/** Pixels removed after step k of K equal-area steps: the first round(k·N/K) of the order. */
export function stepCounts(n: number, steps: number): number[] {
  return Array.from({ length: steps + 1 }, (_, k) => Math.round((k * n) / steps));
}

/**
 * The top-k% of the attribution mass: the shortest prefix of the support order whose cumulative
 * positive support Σ max(s,0) reaches fraction `f` of the total positive support over the domain.
 * Returns its length (0 when the map has no positive support at all: nothing is claimed to support
 * the RoI, so nothing is intervened on).
 */
export function massPrefix(order: Uint32Array, support: Float32Array, f: number): number {
  let total = 0;
  for (const p of order) if (support[p] > 0) total += support[p];
  if (!(total > 0)) return 0;
  const goal = f * total;
  let cum = 0;
  for (let i = 0; i < order.length; i++) {
    const s = support[order[i]];
    if (s > 0) cum += s;
    if (cum >= goal * (1 - 1e-12)) return i + 1;
  }
  return order.length;
}
