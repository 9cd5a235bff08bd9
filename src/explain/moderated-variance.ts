/**
 * Moderated variances (empirical Bayes, Smyth 2004): each block's variance estimate is shrunk
 * toward a prior fitted to the variances of all blocks estimated together, with the prior's
 * degrees of freedom added to the block's own. A block whose few draws happen to be equal (common:
 * Dice changes are discrete) then gets a standard error from its neighbours in the fit instead of
 * 0, and blocks with honest spread keep most of it when the blocks' variances differ widely (the
 * fit then gives the prior few degrees of freedom).
 */
import { digamma, trigamma, trigammaInverse } from "../util/polygamma.js";

export interface VarianceEstimate {
  /** variance estimate (of one draw, or of a mean: the scale cancels in the fit only if all share it) */
  v: number;
  /** its degrees of freedom */
  df: number;
}

export interface VariancePrior {
  /** prior variance s0² */
  scale: number;
  /** prior degrees of freedom d0 (0: no pooling; Infinity: every block's variance is s0²) */
  dof: number;
}

export const NO_PRIOR: VariancePrior = { scale: 0, dof: 0 };

/**
 * Fits the scaled inverse-χ² prior by the moments of log variance (Smyth 2004, limma's fitFDist).
 * Zero variances carry no log-scale information and are left out of the fit; with fewer than two
 * positive variances there is no spread to fit: one positive variance is the prior itself, with its
 * own degrees of freedom. When every variance is 0 the prior is 0 (the blocks look deterministic and
 * nothing says otherwise).
 */
export function fitVariancePrior(est: readonly VarianceEstimate[]): VariancePrior {
  const pos = est.filter((e) => e.v > 0 && e.df > 0 && Number.isFinite(e.v));
  if (pos.length === 1) return { scale: pos[0].v, dof: pos[0].df };
  if (pos.length === 0) return est.length > 1 && est.every((e) => e.v === 0) ? { scale: 0, dof: Number.POSITIVE_INFINITY } : NO_PRIOR;
  const e = pos.map((p) => Math.log(p.v) - digamma(p.df / 2) + Math.log(p.df / 2));
  const n = e.length;
  const mean = e.reduce((a, b) => a + b, 0) / n;
  const evar = e.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1) - pos.reduce((a, p) => a + trigamma(p.df / 2), 0) / n;
  if (!(evar > 0)) return { scale: Math.exp(mean), dof: Number.POSITIVE_INFINITY };
  const dof = 2 * trigammaInverse(evar);
  return { scale: Math.exp(mean + digamma(dof / 2) - Math.log(dof / 2)), dof };
}

/**
 * The posterior variance estimate and its degrees of freedom. The prior's degrees of freedom are
 * capped by those the fit rests on (`poolDf`), so a prior fitted to a handful of blocks cannot
 * claim more certainty than those blocks hold.
 */
export function moderate(own: VarianceEstimate, prior: VariancePrior, poolDf: number): VarianceEstimate {
  const d0 = Math.min(prior.dof, Math.max(0, poolDf));
  if (!(d0 > 0)) return own;
  return { v: (d0 * prior.scale + own.df * own.v) / (d0 + own.df), df: d0 + own.df };
}
