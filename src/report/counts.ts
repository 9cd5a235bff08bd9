/**
 * What each unit of a map rests on, and the counts every writer prints (stdout, summary.png,
 * map.json, stats.json): units whose effect differs from zero at a 5% false discovery rate
 * (Benjamini–Hochberg across every unit outside the RoI; two-sided t test of the unit's mean Δ on
 * its standard error and degrees of freedom), units above τ that are not distinguishable from zero,
 * units above τ without an interval (one deterministic pass), units estimated below τ, and units
 * cleared by screening, alone or with their group (never estimated on their own).
 */
import type { UnitEstimate } from "../explain/estimators.js";
import { tTwoSidedP } from "../util/tdist.js";

/** False discovery rate of the Benjamini–Hochberg procedure across the units of one map. */
export const FDR = 0.05;

export type Evidence = "excludes-zero" | "not-distinguishable" | "no-interval" | "below-tau" | "screened-alone" | "screened-by-group";

export interface SignCounts {
  total: number;
  /** effect < 0: the unit's content supported the RoI prediction (signed maps) */
  negative: number;
  /** effect > 0: it worked against it (signed maps); important (unsigned maps) */
  positive: number;
}

export interface EvidenceCounts {
  /** the statistic the counts rest on, in words */
  test: string;
  fdr: number;
  /** units in the family (every unit outside the RoI) */
  units: number;
  /** above τ, and the effect differs from zero after the correction */
  excludesZero: SignCounts;
  /** above τ, but the corrected test cannot tell the effect from zero */
  notDistinguishable: SignCounts;
  /** above τ, with no standard error (a deterministic single pass): untested */
  noInterval: SignCounts;
  /** estimated on their own, |mean Δ| < τ: drawn as 0 */
  belowTau: number;
  /** cleared by their own screening draws (every |Δ| < τ): drawn as 0 */
  screenedAlone: number;
  /** cleared with their group (the whole group moved the outcome by < τ): never estimated alone, drawn as 0 */
  screenedByGroup: number;
}

export interface UnitEvidence {
  /** two-sided p-value of the unit's mean Δ (null without a standard error) */
  p: number | null;
  /** Benjamini–Hochberg adjusted p-value across the map's units (null without a p-value) */
  q: number | null;
  evidence: Evidence;
}

type UnitLike = Pick<UnitEstimate, "effect" | "rawEffect" | "stderr" | "samples" | "status" | "dof">;

/** Two-sided p-value of a unit's mean Δ, or null when it has no standard error. */
export function unitP(u: UnitLike): number | null {
  const df = u.dof ?? u.samples - 1;
  if (!Number.isFinite(u.stderr) || !(df > 0) || u.samples < 2) return null;
  if (u.stderr === 0) return u.rawEffect === 0 ? 1 : 0;
  return tTwoSidedP(u.rawEffect / u.stderr, df);
}

/** Benjamini–Hochberg adjusted p-values (a null p counts as 1 in the family; its q stays null). */
export function bhAdjust(ps: readonly (number | null)[]): (number | null)[] {
  const m = ps.length;
  const order = ps.map((p, i) => [p ?? 1, i] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const q = new Array<number | null>(m).fill(null);
  let running = 1;
  for (let k = m - 1; k >= 0; k--) {
    const [p, i] = order[k];
    running = Math.min(running, (p * m) / (k + 1));
    if (ps[i] !== null) q[i] = Math.min(1, running);
  }
  return q;
}

const sign = (effect: number): SignCounts => ({ total: 1, negative: effect < 0 ? 1 : 0, positive: effect > 0 ? 1 : 0 });
const add = (a: SignCounts, b: SignCounts): SignCounts => ({ total: a.total + b.total, negative: a.negative + b.negative, positive: a.positive + b.positive });
const none = (): SignCounts => ({ total: 0, negative: 0, positive: 0 });

export function testDescription(units: number, fdr = FDR): string {
  return `two-sided t test of each unit's mean change on its standard error and degrees of freedom, Benjamini–Hochberg at ${fdr * 100}% false discovery rate across the ${units} units outside the RoI (a unit without its own estimate counts with p = 1)`;
}

/** The evidence of every unit and the counts, from the estimates alone. */
export function unitEvidence(units: readonly UnitLike[], fdr = FDR): { perUnit: UnitEvidence[]; counts: EvidenceCounts } {
  const ps = units.map(unitP);
  const qs = bhAdjust(ps);
  const counts: EvidenceCounts = {
    test: testDescription(units.length, fdr), fdr, units: units.length,
    excludesZero: none(), notDistinguishable: none(), noInterval: none(), belowTau: 0, screenedAlone: 0, screenedByGroup: 0,
  };
  const perUnit = units.map((u, i): UnitEvidence => {
    let evidence: Evidence;
    if (u.status === "screened-out") evidence = u.samples === 0 ? "screened-by-group" : "screened-alone";
    else if (u.status === "below-tau") evidence = "below-tau";
    else if (qs[i] === null) evidence = "no-interval";
    else evidence = qs[i]! <= fdr ? "excludes-zero" : "not-distinguishable";
    switch (evidence) {
      case "excludes-zero": counts.excludesZero = add(counts.excludesZero, sign(u.effect)); break;
      case "not-distinguishable": counts.notDistinguishable = add(counts.notDistinguishable, sign(u.effect)); break;
      case "no-interval": counts.noInterval = add(counts.noInterval, sign(u.effect)); break;
      case "below-tau": counts.belowTau++; break;
      case "screened-alone": counts.screenedAlone++; break;
      case "screened-by-group": counts.screenedByGroup++; break;
    }
    return { p: ps[i], q: qs[i], evidence };
  });
  return { perUnit, counts };
}
