/** Two-sided 95% quantile of Student's t, for confidence intervals from few Monte-Carlo rounds. */
const T975 = [Number.NaN, 12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042];

/** t_{0.975}(df); fractional df (Welch–Satterthwaite) round down, which is conservative. */
export function t975(df: number): number {
  if (!(df >= 1)) return Number.NaN;
  const d = Math.floor(df);
  if (d < T975.length) return T975[d];
  // Cornish-Fisher-style tail correction; within 0.1% of the exact quantile for df > 30.
  return 1.959964 + 2.37228 / d + 2.82202 / (d * d);
}
