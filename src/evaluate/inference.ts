/**
 * Inference for the benchmark tables: Holm's step-down adjustment across a family of tests, and a
 * cluster bootstrap (images are the clusters: the same image explained by several models is one
 * independent observation, not several) for intervals of means, paired differences and ranks.
 */
import { Rng } from "../util/rng.js";
import { STREAM } from "../util/streams.js";

/** Bootstrap resamples behind every interval (percentile intervals; seeded, so reports are reproducible). */
export const BOOTSTRAP_RESAMPLES = 1000;

/**
 * Holm-adjusted p-values: p_(i) · (m − i + 1), made monotone, capped at 1; m counts the finite p.
 * NaN (no test possible) stays NaN and does not enter the family.
 */
export function holm(ps: readonly number[]): number[] {
  const idx = ps
    .map((p, i) => [p, i] as const)
    .filter(([p]) => Number.isFinite(p))
    .sort((a, b) => a[0] - b[0]);
  const out = ps.map(() => Number.NaN);
  const m = idx.length;
  let running = 0;
  idx.forEach(([p, i], k) => {
    running = Math.max(running, Math.min(1, p * (m - k)));
    out[i] = running;
  });
  return out;
}

/** Percentile at q ∈ [0, 1] of sorted values (linear interpolation). */
function percentile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const pos = q * (sorted.length - 1);
  const lo = Math.floor(pos),
    hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

export function median(xs: readonly number[]): number {
  return percentile(
    [...xs].sort((a, b) => a - b),
    0.5,
  );
}

/**
 * The bootstrap's resamples of n clusters: BOOTSTRAP_RESAMPLES rows of n indices drawn with
 * replacement. Every table with n clusters shares them (common random numbers: intervals are
 * reproducible and computed without drawing again per row).
 */
const resampleCache = new Map<number, Int32Array>();
function resamples(n: number): Int32Array {
  let r = resampleCache.get(n);
  if (!r) {
    const rng = new Rng(n, STREAM.bootstrap);
    r = new Int32Array(BOOTSTRAP_RESAMPLES * n);
    for (let i = 0; i < r.length; i++) r[i] = rng.int(n);
    resampleCache.set(n, r);
  }
  return r;
}

/**
 * 95% percentile bootstrap interval of a mean over cells, resampling whole clusters: `sums[c]` and
 * `counts[c]` are cluster c's sum and number of values (counts of 1: a plain mean of cluster values).
 */
export function bootstrapMeanCi(sums: readonly number[], counts?: readonly number[]): [number, number] {
  const n = sums.length;
  if (n < 2) return [Number.NaN, Number.NaN];
  const idx = resamples(n);
  const means = new Float64Array(BOOTSTRAP_RESAMPLES);
  for (let b = 0, o = 0; b < BOOTSTRAP_RESAMPLES; b++) {
    let s = 0,
      w = 0;
    for (let i = 0; i < n; i++, o++) {
      s += sums[idx[o]];
      w += counts ? counts[idx[o]] : 1;
    }
    means[b] = s / w;
  }
  return [selectPercentile(means, 0.025), selectPercentile(means, 0.975)];
}

/** percentile() of unsorted values by quickselect (a sort per row would dominate the report's time); reorders xs. */
function selectPercentile(xs: Float64Array, q: number): number {
  const pos = q * (xs.length - 1);
  const lo = Math.floor(pos),
    hi = Math.ceil(pos);
  const a = select(xs, lo);
  return hi === lo ? a : a + (select(xs, hi) - a) * (pos - lo);
}

/** The k-th smallest value (0-based) of xs, by Hoare-partition quickselect with a median-of-three pivot. */
function select(xs: Float64Array, k: number): number {
  let left = 0,
    right = xs.length - 1;
  while (right > left) {
    const mid = (left + right) >>> 1;
    const pivot = Math.max(Math.min(xs[left], xs[mid]), Math.min(Math.max(xs[left], xs[mid]), xs[right]));
    let i = left,
      j = right;
    while (i <= j) {
      while (xs[i] < pivot) i++;
      while (xs[j] > pivot) j--;
      if (i <= j) {
        const t = xs[i];
        xs[i] = xs[j];
        xs[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) right = j;
    else if (k >= i) left = i;
    else return xs[k];
  }
  return xs[k];
}

/**
 * Rank of each method (1 = most faithful) by its mean over cells, and its 95% bootstrap interval:
 * clusters are resampled with replacement and the means re-ranked. `sums[m][c]` and `counts[m][c]` are
 * method m's sum and number of values on cluster c (0 where absent). Ties share the better rank.
 */
export function bootstrapRanks(
  sums: readonly (readonly number[])[],
  counts: readonly (readonly number[])[],
  lowerIsBetter: boolean,
): { rank: number; low: number; high: number }[] {
  const M = sums.length;
  const C = M ? sums[0].length : 0;
  const rankOf = (weights: readonly number[]): number[] => {
    const means = sums.map((row, m) => {
      let s = 0,
        w = 0;
      for (let c = 0; c < C; c++)
        if (weights[c]) {
          s += row[c] * weights[c];
          w += counts[m][c] * weights[c];
        }
      return w ? s / w : Number.NaN;
    });
    return means.map((m) =>
      Number.isFinite(m) ? 1 + means.filter((o) => Number.isFinite(o) && (lowerIsBetter ? o < m : o > m)).length : Number.NaN,
    );
  };
  const point = rankOf(new Array<number>(C).fill(1));
  const idx = C > 1 ? resamples(C) : new Int32Array(0);
  const draws: number[][] = sums.map(() => []);
  for (let b = 0; b < BOOTSTRAP_RESAMPLES && C > 1; b++) {
    const w = new Array<number>(C).fill(0);
    for (let i = 0; i < C; i++) w[idx[b * C + i]]++;
    rankOf(w).forEach((r, m) => {
      if (Number.isFinite(r)) draws[m].push(r);
    });
  }
  return point.map((rank, m) => {
    const d = draws[m].sort((a, b) => a - b);
    // Ranks are integers: the interval is widened to the ranks that bound it.
    return { rank, low: d.length ? Math.floor(percentile(d, 0.025)) : Number.NaN, high: d.length ? Math.ceil(percentile(d, 0.975)) : Number.NaN };
  });
}
