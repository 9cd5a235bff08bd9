/**
 * Empirical-Bayes shrinkage of block means toward a regression on a cheap map (the Fay–Herriot
 * model): a block's ATE θ_i = a + b·x_i + u_i with u_i ~ (0, τ²) across blocks, and its draw mean
 * y_i = θ_i + e_i with e_i ~ (0, v_i), v_i its squared standard error. a, b and τ² are estimated
 * from the blocks themselves (τ² by the Prasad–Rao method of moments, floored, then a and b by weighted
 * least squares), and each block's posterior mean pulls its draw mean toward the line by
 * B_i = v_i / (v_i + τ²). The posterior means are biased toward the line (shrinkage); their
 * intervals cover the ATEs at the nominal rate on average over the blocks, not block by block
 * (a block far off the line is covered less often than one near it).
 *
 * `fitSplit` (--prior zero-fill-split) makes the between-block variance depend on the cheap map: blocks
 * whose |cheap-map value| is at most a cut (the ones it shows inert) form a class of their own, shrunk
 * toward their own mean with their own τ², and the others toward the line with theirs. Where the inert
 * blocks' ATEs are all near 0 their τ² is small, so drawing them removes little variance.
 */

export interface PriorFit {
  /** the line a + b·x */
  intercept: number;
  slope: number;
  /** between-block variance of the ATEs around the line (outcome units²) */
  tau2: number;
  /** covariance of (a, b): the line's own uncertainty, added to every posterior variance */
  cov: [number, number, number];
  /** blocks with draws that the fit used */
  blocks: number;
  /** residual degrees of freedom (blocks − parameters of the line), for t quantiles */
  df: number;
}

export interface Posterior {
  mean: number;
  /** posterior variance: (1 − B)·v + B²·var(line at x) with draws, τ² + var(line at x) without */
  variance: number;
}

/** Solves the 2x2 (or 1x1 when the cheap map is constant) weighted least squares of y on [1, x]. */
function wls(x: readonly number[], y: readonly number[], w: readonly number[], withSlope: boolean) {
  let sw = 0,
    sx = 0,
    sy = 0;
  for (let i = 0; i < x.length; i++) (sw += w[i]), (sx += w[i] * x[i]), (sy += w[i] * y[i]);
  const mx = sx / sw,
    my = sy / sw;
  if (!withSlope) return { a: my, b: 0, cov: [1 / sw, 0, 0] as [number, number, number] };
  let sxx = 0,
    sxy = 0;
  for (let i = 0; i < x.length; i++) (sxx += w[i] * (x[i] - mx) ** 2), (sxy += w[i] * (x[i] - mx) * (y[i] - my));
  const b = sxy / sxx;
  // cov of (a, b) for a = my − b·mx: var(b) = 1/sxx, var(a) = 1/sw + mx²/sxx, cov(a, b) = −mx/sxx.
  return { a: my - b * mx, b, cov: [1 / sw + (mx * mx) / sxx, -mx / sxx, 1 / sxx] as [number, number, number] };
}

/** Fits the line and τ² to the blocks with draws: x their cheap-map values, y their draw means, v their squared SEs. */
export function fitPrior(x: readonly number[], y: readonly number[], v: readonly number[]): PriorFit {
  const m = x.length;
  const mean = x.reduce((s, a) => s + a, 0) / m;
  const sxx = x.reduce((s, a) => s + (a - mean) ** 2, 0);
  // A constant cheap map (or too few blocks) carries no slope: shrink toward the blocks' mean.
  const withSlope = m >= 3 && sxx > 1e-12 * Math.max(1, mean * mean);
  const p = withSlope ? 2 : 1;
  const ols = wls(x, y, new Array(m).fill(1), withSlope);
  // Prasad–Rao: E[RSS] = (m − p)·τ² + Σ (1 − h_ii)·v_i, with h_ii the OLS leverages.
  let rss = 0,
    noise = 0;
  for (let i = 0; i < m; i++) {
    rss += (y[i] - ols.a - ols.b * x[i]) ** 2;
    const h = withSlope ? 1 / m + (x[i] - mean) ** 2 / sxx : 1 / m;
    noise += (1 - h) * v[i];
  }
  // Floored at the moment estimator's standard error when τ² = 0 (sqrt(2 Σ v²)/(m − p)): an estimate of
  // 0, common by chance, would put every block on the line with the line's own tiny variance.
  const floor = m > p ? Math.sqrt(2 * v.reduce((s, vi) => s + vi * vi, 0)) / (m - p) : 0;
  const tau2 = m > p ? Math.max(floor, (rss - noise) / (m - p)) : 0;
  const fit = wls(
    x,
    y,
    v.map((vi) => 1 / Math.max(vi + tau2, 1e-12)),
    withSlope,
  );
  return { intercept: fit.a, slope: fit.b, tau2, cov: fit.cov, blocks: m, df: Math.max(m - p, 1) };
}

/** The line's variance at x. */
function lineVariance(f: PriorFit, x: number): number {
  return f.cov[0] + 2 * x * f.cov[1] + x * x * f.cov[2];
}

/** A block's posterior: with its draw mean y and squared SE v, or from the line alone (no draws). */
export function posterior(f: PriorFit, x: number, drawn?: { y: number; v: number }): Posterior {
  const line = f.intercept + f.slope * x;
  const g2 = lineVariance(f, x);
  if (!drawn) return { mean: line, variance: f.tau2 + g2 };
  const B = f.tau2 + drawn.v > 0 ? drawn.v / (drawn.v + f.tau2) : 1;
  return { mean: drawn.y - B * (drawn.y - line), variance: (1 - B) * drawn.v + B * B * g2 };
}

/** Posterior variance after k rounds of per-round variance s2 (line uncertainty left out: it is shared). */
export function roundsVariance(tau2: number, s2: number, k: number): number {
  if (k === 0) return tau2;
  return tau2 > 0 ? 1 / (1 / tau2 + k / s2) : 0;
}

/** The fits of --prior zero-fill-split: the blocks with |x| <= cut (inert by the cheap map) and the others. */
export interface SplitFit {
  cut: number;
  /** undefined when fewer than 3 inert blocks (or fewer than 3 others) have draws: then `active` is one fit over all */
  inert: PriorFit | undefined;
  active: PriorFit;
}

/** Whether a block of cheap-map value x belongs to the inert class of a split at `cut`. */
export function isInert(cut: number, x: number): boolean {
  return Math.abs(x) <= cut;
}

/**
 * Fits the two classes apart (each as `fitPrior`, the inert one without a slope: its x carry no signal),
 * or one fit over all when a class has fewer than 3 blocks with draws.
 */
export function fitSplit(x: readonly number[], y: readonly number[], v: readonly number[], cut: number): SplitFit {
  const inert = x.map((xi) => isInert(cut, xi));
  const pick = <T>(a: readonly T[], want: boolean) => a.filter((_, i) => inert[i] === want);
  const nInert = inert.filter(Boolean).length;
  if (nInert < 3 || x.length - nInert < 3) return { cut, inert: undefined, active: fitPrior(x, y, v) };
  return {
    cut,
    inert: fitPrior(
      pick(x, true).map(() => 0),
      pick(y, true),
      pick(v, true),
    ),
    active: fitPrior(pick(x, false), pick(y, false), pick(v, false)),
  };
}

/** The fit that holds for a block of cheap-map value x, and the x it takes (0 in the inert class). */
export function fitAt(f: SplitFit, x: number): { fit: PriorFit; x: number } {
  return f.inert && isInert(f.cut, x) ? { fit: f.inert, x: 0 } : { fit: f.active, x };
}
