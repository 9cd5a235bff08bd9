/**
 * Local surrogate estimators of the perturbation family ("Which Explanation Should I Choose?":
 * LIME, KernelSHAP, occlusion and RISE fit one local model each, differing only in the neighbourhood
 * sampled and the loss). All are solved in float64 with the Cholesky solver of linalg.ts.
 *
 * - weighted least squares with an optional ridge penalty and weighted centring (LIME: sklearn's
 *   Ridge(alpha) with sample weights and an unpenalised intercept);
 * - the Shapley-constrained fit (KernelSHAP): intercept fixed to f(none) and Σφ = f(all) − f(none)
 *   imposed exactly by eliminating the last unit;
 * - the mask-weighted average (RISE).
 *
 * Standard errors are the sandwich A⁻¹(Σ w² x xᵀ)A⁻¹·σ² under independent homoscedastic residuals
 * (σ² from the weighted residuals): a guide to precision, not an exact interval for a surrogate.
 */
import { fail } from "../errors.js";
import { cholesky, choleskyInverse, choleskySolve } from "./linalg.js";

export interface LinearFit {
  coef: Float64Array;
  stderr: Float64Array;
  /** covariance of the coefficients (d×d, row-major) */
  cov: Float64Array;
  intercept: number;
  /** weighted R² of the surrogate on its samples */
  r2: number;
}

/**
 * Weighted least squares y ≈ X·β (+ intercept), minimising Σ w (y − ŷ)² + ridge·|β|². X is n×d
 * row-major. With `intercept`, X and y are centred with the weighted means first (the intercept is
 * not penalised), as sklearn's Ridge does.
 */
export function weightedLeastSquares(
  X: Float64Array,
  y: ArrayLike<number>,
  w: ArrayLike<number>,
  d: number,
  ridge: number,
  intercept: boolean,
): LinearFit {
  const n = y.length;
  let sw = 0;
  for (let i = 0; i < n; i++) sw += w[i];
  if (!(sw > 0)) fail("every sample has weight 0: the surrogate cannot be fitted", "use a larger --kernel-width");
  const xm = new Float64Array(d);
  let ym = 0;
  if (intercept) {
    for (let i = 0; i < n; i++) {
      ym += w[i] * y[i];
      for (let j = 0; j < d; j++) xm[j] += w[i] * X[i * d + j];
    }
    ym /= sw;
    for (let j = 0; j < d; j++) xm[j] /= sw;
  }
  const A = new Float64Array(d * d),
    M = new Float64Array(d * d),
    b = new Float64Array(d);
  const xc = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    const wi = w[i];
    if (wi === 0) continue;
    for (let j = 0; j < d; j++) xc[j] = X[i * d + j] - xm[j];
    const yc = y[i] - ym;
    for (let j = 0; j < d; j++) {
      const a = wi * xc[j];
      if (a === 0) continue;
      b[j] += a * yc;
      for (let k = 0; k <= j; k++) {
        A[j * d + k] += a * xc[k];
        M[j * d + k] += a * wi * xc[k];
      }
    }
  }
  for (let j = 0; j < d; j++) {
    for (let k = 0; k < j; k++) {
      A[k * d + j] = A[j * d + k];
      M[k * d + j] = M[j * d + k];
    }
    A[j * d + j] += ridge;
  }
  const L = cholesky(A, d);
  if (!L)
    fail(
      `the surrogate's ${d}x${d} normal equations are singular (${n} samples for ${d} units)`,
      "sample more coalitions (--coalitions) or use fewer units (--segments), or set --ridge > 0",
    );
  const coef = choleskySolve(L, d, b);
  const icpt = intercept ? ym - xm.reduce((s, v, j) => s + v * coef[j], 0) : 0;
  let rss = 0,
    tss = 0;
  for (let i = 0; i < n; i++) {
    let yhat = icpt;
    for (let j = 0; j < d; j++) yhat += X[i * d + j] * coef[j];
    rss += w[i] * (y[i] - yhat) ** 2;
    tss += w[i] * (y[i] - ym) ** 2;
  }
  const dof = n - d - (intercept ? 1 : 0);
  const sigma2 = dof > 0 ? (rss / sw) * (n / dof) : Number.NaN;
  const Ainv = choleskyInverse(L, d);
  // cov = σ² A⁻¹ M A⁻¹
  const MA = new Float64Array(d * d),
    cov = new Float64Array(d * d);
  for (let k = 0; k < d; k++)
    for (let l = 0; l < d; l++) {
      const m = M[k * d + l];
      if (m !== 0) for (let j = 0; j < d; j++) MA[k * d + j] += m * Ainv[l * d + j];
    }
  for (let i = 0; i < d; i++)
    for (let k = 0; k < d; k++) {
      const a = Ainv[i * d + k];
      if (a !== 0) for (let j = 0; j < d; j++) cov[i * d + j] += a * MA[k * d + j];
    }
  for (let i = 0; i < d * d; i++) cov[i] *= sigma2;
  const stderr = Float64Array.from({ length: d }, (_, j) => Math.sqrt(Math.max(0, cov[j * d + j])));
  return { coef, stderr, cov, intercept: icpt, r2: tss > 0 ? 1 - rss / tss : Number.NaN };
}

/**
 * KernelSHAP's constrained regression: minimise Σ w (y − f(none) − zᵀφ)² subject to
 * Σφ = f(all) − f(none), solved exactly by substituting φ_last = Δ − Σ_{j<last} φ_j. Z holds the
 * 0/1 coalitions (n×d). Σφ equals Δ up to float rounding whatever the samples.
 */
export function shapleyFit(
  Z: Uint8Array,
  y: ArrayLike<number>,
  w: ArrayLike<number>,
  d: number,
  fAll: number,
  fNone: number,
): { phi: Float64Array; stderr: Float64Array; r2: number } {
  const delta = fAll - fNone;
  if (d === 1) return { phi: Float64Array.of(delta), stderr: Float64Array.of(0), r2: Number.NaN };
  const n = y.length,
    m = d - 1;
  const X = new Float64Array(n * m),
    yy = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const last = Z[i * d + m];
    for (let j = 0; j < m; j++) X[i * m + j] = Z[i * d + j] - last;
    yy[i] = y[i] - fNone - last * delta;
  }
  const fit = weightedLeastSquares(X, yy, w, m, 0, false);
  const phi = new Float64Array(d);
  let rest = 0;
  for (let j = 0; j < m; j++) {
    phi[j] = fit.coef[j];
    rest += fit.coef[j];
  }
  phi[m] = delta - rest;
  // Var(φ_last) = Var(Σ_{j<last} φ_j) = 1ᵀ Cov 1
  const stderr = new Float64Array(d);
  let v = 0;
  for (let j = 0; j < m; j++) stderr[j] = fit.stderr[j];
  for (let i = 0; i < m * m; i++) v += fit.cov[i];
  stderr[m] = Math.sqrt(Math.max(0, v));
  return { phi, stderr, r2: fit.r2 };
}

/**
 * RISE's weighted average over random masks, centred: for every pixel x,
 * effect(x) = mean_i t_i(x) with t_i(x) = −(f_i − f̄)(m_i(x)/p − 1)/(1 − p).
 * For binary masks E[t] = E[f | x removed] − E[f | x kept] (the removal-effect sign convention);
 * in terms of RISE's saliency S(x) = Σ f_i m_i(x) / (N p): effect = −(S − f̄·m̄(x)/p)/(1 − p).
 * Feed the masks in sample order (the sums are then independent of batching).
 */
export class MaskAverage {
  private readonly sum: Float64Array;
  private readonly sumSq: Float64Array;
  private count = 0;

  constructor(
    size: number,
    private readonly p: number,
    private readonly meanScore: number,
  ) {
    this.sum = new Float64Array(size);
    this.sumSq = new Float64Array(size);
  }

  add(score: number, mask: Float32Array): void {
    const a = -(score - this.meanScore) / (1 - this.p);
    const ip = 1 / this.p;
    for (let x = 0; x < mask.length; x++) {
      const t = a * (mask[x] * ip - 1);
      this.sum[x] += t;
      this.sumSq[x] += t * t;
    }
    this.count++;
  }

  result(): { effect: Float64Array; stderr: Float64Array } {
    const N = this.count;
    const effect = new Float64Array(this.sum.length),
      stderr = new Float64Array(this.sum.length);
    for (let x = 0; x < effect.length; x++) {
      const mean = this.sum[x] / N;
      effect[x] = mean;
      stderr[x] = N > 1 ? Math.sqrt(Math.max(0, (this.sumSq[x] - N * mean * mean) / (N - 1) / N)) : Number.NaN;
    }
    return { effect, stderr };
  }
}
