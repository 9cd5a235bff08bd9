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
  // An SE of exactly 0 comes from an exact computation (an enumeration, or draws that cannot vary
  // within their strata): the mean is the effect itself, so it is zero or it is not.
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
const add = (a: SignCounts, b: SignCounts): SignCounts => ({
  total: a.total + b.total,
  negative: a.negative + b.negative,
  positive: a.positive + b.positive,
});
const none = (): SignCounts => ({ total: 0, negative: 0, positive: 0 });

export function testDescription(units: number, fdr = FDR): string {
  return `two-sided t test of each unit's mean change on its standard error and degrees of freedom, Benjamini–Hochberg at ${fdr * 100}% false discovery rate across the ${units} units outside the RoI (a unit without its own estimate counts with p = 1)`;
}

/** The evidence of every unit and the counts, from the estimates alone. */
export function unitEvidence(units: readonly UnitLike[], fdr = FDR): { perUnit: UnitEvidence[]; counts: EvidenceCounts } {
  const ps = units.map(unitP);
  const qs = bhAdjust(ps);
  const counts: EvidenceCounts = {
    test: testDescription(units.length, fdr),
    fdr,
    units: units.length,
    excludesZero: none(),
    notDistinguishable: none(),
    noInterval: none(),
    belowTau: 0,
    screenedAlone: 0,
    screenedByGroup: 0,
  };
  const perUnit = units.map((u, i): UnitEvidence => {
    let evidence: Evidence;
    if (u.status === "screened-out") evidence = u.samples === 0 ? "screened-by-group" : "screened-alone";
    else if (u.status === "below-tau") evidence = "below-tau";
    else if (qs[i] === null) evidence = "no-interval";
    else evidence = qs[i]! <= fdr ? "excludes-zero" : "not-distinguishable";
    switch (evidence) {
      case "excludes-zero":
        counts.excludesZero = add(counts.excludesZero, sign(u.effect));
        break;
      case "not-distinguishable":
        counts.notDistinguishable = add(counts.notDistinguishable, sign(u.effect));
        break;
      case "no-interval":
        counts.noInterval = add(counts.noInterval, sign(u.effect));
        break;
      case "below-tau":
        counts.belowTau++;
        break;
      case "screened-alone":
        counts.screenedAlone++;
        break;
      case "screened-by-group":
        counts.screenedByGroup++;
        break;
    }
    return { p: ps[i], q: qs[i], evidence };
  });
  return { perUnit, counts };
}

const plural = (n: number, unit: string) => `${n} ${unit}${n === 1 ? "" : "s"}`;

/**
 * The counts in words, one line each, for stdout and summary.png: what differs from zero (with the
 * correction named), what is above τ but indistinguishable from zero, what was never estimated alone.
 */
export function countLines(s: {
  signed: boolean;
  unitKind: string;
  tau: number;
  units: number;
  positive: number;
  negative: number;
  zero: number;
  evidence?: EvidenceCounts;
}): string[] {
  const u = s.unitKind;
  const e = s.evidence;
  const sides = (c: SignCounts) =>
    s.signed
      ? `${c.negative} supported the RoI prediction (red), ${c.positive} worked against it (blue)`
      : `${c.positive} important (red; unsigned map)`;
  if (!e) {
    // Pixel maps (gradients) carry no per-pixel uncertainty: signs only, and said so.
    return [
      s.signed
        ? `${plural(s.units, u)} outside the RoI: ${s.negative} < 0 (red, supports), ${s.positive} > 0 (blue, against), ${s.zero} exactly 0 — signs of the map's values, no test (gradient maps carry no per-pixel uncertainty)`
        : `${plural(s.units, u)} outside the RoI: ${s.positive} with importance > 0 (red; this map is unsigned), ${s.zero} with none — no test (gradient maps carry no per-pixel uncertainty)`,
    ];
  }
  const lines: string[] = [];
  const tested = e.excludesZero.total + e.notDistinguishable.total;
  const tau = `τ = ${s.tau}`;
  if (tested > 0 || e.noInterval.total === 0) {
    lines.push(
      `${plural(e.excludesZero.total, u)} differ from zero (Benjamini–Hochberg, ${e.fdr * 100}% false discovery rate across all ${e.units}; t test on each ${u}'s estimate and standard error)${e.excludesZero.total ? `: ${sides(e.excludesZero)}` : ""}`,
    );
    lines.push(
      `${plural(e.notDistinguishable.total, u)} above ${tau} but not distinguishable from zero${e.notDistinguishable.total ? ` (${s.signed ? `${e.notDistinguishable.negative} on the supporting side, ${e.notDistinguishable.positive} against` : `${e.notDistinguishable.positive} important`})` : ""}`,
    );
  }
  if (e.noInterval.total > 0)
    lines.push(`${plural(e.noInterval.total, u)} above ${tau} with no interval (one deterministic pass each, untested): ${sides(e.noInterval)}`);
  const cleared = e.screenedAlone + e.screenedByGroup;
  lines.push(
    `${e.belowTau} estimated below τ and ${cleared} cleared by screening (${e.screenedAlone} by their own draws, ${e.screenedByGroup} with their group, never estimated alone): drawn as 0`,
  );
  return lines;
}

/** The closing line of a run: how to read the picture, in the terms of this map's sign convention. */
export function readingLine(signed: boolean, file: string, markers: boolean): string {
  return signed
    ? `open ${file}: red held up the segmentation of the green RoI, blue worked against it${markers ? "; dots mark the units that differ from zero" : ""}`
    : `open ${file}: red marks where the map puts importance for the green RoI (unsigned: it says how much, not in which direction)`;
}
