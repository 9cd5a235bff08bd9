/**
 * The donor-enumerated ATE of resample ablation: with a finite donor set the expectation over donors
 * is computed exactly, each unit evaluated once with every donor (draw d = donor d), instead of being
 * estimated from draws with replacement. Units every path passes through then get identical effects,
 * as they must, and the only noise left is the donor sample's: the standard error is that of a mean
 * over D donors drawn from the domain (sd / √D, D − 1 degrees of freedom).
 */
import { fail } from "../errors.js";
import { meanSe, type UnitEstimate } from "./estimators.js";
import type { Evaluate, SampleRequest } from "./samples.js";

export interface DonorAteSettings {
  /** number of donors D; every unit is evaluated with each */
  donors: number;
  /** τ in outcome units: a mean with |ATE| < τ is set to 0, as in the screened estimator */
  tau: number;
}

export async function donorEnumeratedAte(unitCount: number, base: number, evaluate: Evaluate, st: DonorAteSettings): Promise<UnitEstimate[]> {
  if (!Number.isInteger(st.donors) || st.donors < 1)
    fail(`donor enumeration needs at least one donor, got ${st.donors}`, "pass --donors with images of the same domain");
  if (!(st.tau >= 0)) fail(`tau must be >= 0, got ${st.tau}`, "use --tau 0.02");
  const D = st.donors;
  const reqs: SampleRequest[] = [];
  for (let u = 0; u < unitCount; u++) for (let d = 0; d < D; d++) reqs.push({ unit: u, draw: d });
  const scores = await evaluate(reqs, "estimating");
  const result: UnitEstimate[] = [];
  for (let u = 0; u < unitCount; u++) {
    const [m, se] = meanSe(scores, u * D, D, base);
    const sig = Math.abs(m) >= st.tau;
    result.push({ effect: sig ? m : 0, rawEffect: m, stderr: se, samples: D, status: sig ? "above-tau" : "below-tau" });
  }
  return result;
}
