/**
 * Wilcoxon signed-rank test for paired samples (two-sided), following scipy.stats.wilcoxon's
 * defaults (zero_method "wilcox", no continuity correction, method "auto"):
 * - zero differences are dropped;
 * - |d| is ranked with average ranks for ties; W+ = sum of the ranks of positive differences and the
 *   reported statistic is min(W+, W−);
 * - exact p-value (enumeration of the 2^n sign patterns by dynamic programming) when n ≤ 50 and no
 *   |d| is tied; otherwise the normal approximation with the tie correction
 *   var = n(n+1)(2n+1)/24 − Σ(t³ − t)/48.
 */
export interface WilcoxonResult {
  /** pairs with a non-zero difference */
  n: number;
  /** pairs dropped because the difference was 0 */
  zeros: number;
  wPlus: number;
  wMinus: number;
  /** min(W+, W−), as scipy reports it */
  statistic: number;
  /** two-sided p-value; NaN when n = 0 */
  p: number;
  method: "exact" | "normal";
}

/** Average ranks (1-based) of xs, ties sharing the mean of their positions; also the tie group sizes. */
export function averageRanks(xs: ArrayLike<number>): { ranks: Float64Array; ties: number[] } {
  const n = xs.length;
  const idx = Array.from({ length: n }, (_, i) => i).sort((a, b) => xs[a] - xs[b]);
  const ranks = new Float64Array(n);
  const ties: number[] = [];
  for (let i = 0; i < n; ) {
    let j = i;
    while (j + 1 < n && xs[idx[j + 1]] === xs[idx[i]]) j++;
    const r = (i + j + 2) / 2;
    for (let k = i; k <= j; k++) ranks[idx[k]] = r;
    if (j > i) ties.push(j - i + 1);
    i = j + 1;
  }
  return { ranks, ties };
}

/** Standard normal upper tail 1 − Φ(z) (erfc of Numerical Recipes, relative error < 1.2e-7). */
export function normalSf(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.5 * x);
  const erfc =
    t *
    Math.exp(
      -x * x -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return z >= 0 ? erfc / 2 : 1 - erfc / 2;
}

export function wilcoxon(differences: ArrayLike<number>): WilcoxonResult {
  const d = Array.from(differences).filter((v) => Number.isFinite(v));
  const nonzero = d.filter((v) => v !== 0);
  const zeros = d.length - nonzero.length;
  const n = nonzero.length;
  if (n === 0) return { n, zeros, wPlus: 0, wMinus: 0, statistic: 0, p: Number.NaN, method: "exact" };
  const { ranks, ties } = averageRanks(nonzero.map(Math.abs));
  let wPlus = 0;
  nonzero.forEach((v, i) => {
    if (v > 0) wPlus += ranks[i];
  });
  const total = (n * (n + 1)) / 2;
  const wMinus = total - wPlus;
  const statistic = Math.min(wPlus, wMinus);
  if (n <= 50 && ties.length === 0) {
    // counts[s] = number of subsets of {1..n} with rank sum s
    const counts = new Float64Array(total + 1);
    counts[0] = 1;
    for (let k = 1; k <= n; k++) for (let s = total; s >= k; s--) counts[s] += counts[s - k];
    let tail = 0;
    for (let s = 0; s <= Math.floor(statistic); s++) tail += counts[s];
    return { n, zeros, wPlus, wMinus, statistic, p: Math.min(1, (2 * tail) / 2 ** n), method: "exact" };
  }
  const mean = total / 2;
  const variance = (n * (n + 1) * (2 * n + 1)) / 24 - ties.reduce((s, t) => s + t ** 3 - t, 0) / 48;
  const z = variance > 0 ? (statistic - mean) / Math.sqrt(variance) : 0;
  return { n, zeros, wPlus, wMinus, statistic, p: Math.min(1, 2 * normalSf(Math.abs(z))), method: "normal" };
}
