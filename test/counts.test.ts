/** Known answers for the statistics behind every printed count: t p-values, Benjamini–Hochberg, unit evidence. */
import { describe, expect, it } from "vitest";
import type { UnitEstimate } from "../src/explain/estimators.js";
import { bhAdjust, unitEvidence } from "../src/report/counts.js";
import { t975, tTwoSidedP } from "../src/util/tdist.js";

describe("two-sided t p-values", () => {
  it("give 5% at the tabulated 97.5% quantiles", () => {
    for (let d = 1; d <= 30; d++) expect(tTwoSidedP(t975(d), d)).toBeCloseTo(0.05, 3);
    expect(tTwoSidedP(1.959964, 1e9)).toBeCloseTo(0.05, 5);
  });
  it("match known values", () => {
    expect(tTwoSidedP(0, 7)).toBe(1);
    expect(tTwoSidedP(1, 1)).toBeCloseTo(0.5, 8); // Cauchy: P(|T| >= 1) = 1/2
    expect(tTwoSidedP(-1, 1)).toBeCloseTo(0.5, 8);
    expect(tTwoSidedP(2, 2)).toBeCloseTo(1 - 2 / Math.sqrt(6), 8); // df 2: P(|T|>=t) = 1 - t/sqrt(2+t²)
    expect(tTwoSidedP(3.25, 9)).toBeCloseTo(0.01, 3); // t_{0.995}(9) = 3.250
    expect(tTwoSidedP(Infinity, 3)).toBe(0);
  });
});

describe("Benjamini–Hochberg", () => {
  it("rejects the largest k with p_(k) <= k·q/m", () => {
    const ps = [0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216];
    const q = bhAdjust(ps);
    expect(q.filter((x) => x! <= 0.05)).toHaveLength(2);
    expect(q[0]).toBeCloseTo(0.01, 12);
    expect(q[1]).toBeCloseTo(0.04, 12);
    expect(q[2]).toBeCloseTo(0.084, 12); // min over j >= 3 of m·p_(j)/j: 0.13, 0.1025, 0.084, 0.1, ...
  });
  it("all rejected when every p_(k) is under its line", () => {
    expect(bhAdjust([0.01, 0.04, 0.03, 0.005]).every((x) => x! <= 0.05)).toBe(true);
  });
  it("counts units without a p-value in the family with p = 1", () => {
    const q = bhAdjust([0.04, ...Array(19).fill(null)]);
    expect(q[0]).toBeCloseTo(0.8, 12);
    expect(q.slice(1).every((x) => x === null)).toBe(true);
  });
});

describe("unit evidence", () => {
  const u = (status: UnitEstimate["status"], rawEffect: number, stderr: number, samples: number, dof?: number): UnitEstimate => ({
    status,
    rawEffect,
    effect: status === "above-tau" ? rawEffect : 0,
    stderr,
    samples,
    dof,
  });
  it("sorts units into what their counts rest on", () => {
    const units = [
      u("above-tau", -10, 1, 50), // t = -10: excludes zero, supports
      u("above-tau", 8, 1, 50), // excludes zero, hurts
      u("above-tau", 0.5, 1, 50), // p = 0.62: not distinguishable
      u("above-tau", -3, Number.NaN, 1), // one deterministic pass: no interval
      u("below-tau", 0.01, 0.5, 20),
      u("screened-out", 0.001, 0.001, 4), // its own screening draws
      u("screened-out", 0, Number.NaN, 0), // cleared with its group
      u("screened-out", 0, Number.NaN, 0),
    ];
    const { perUnit, counts } = unitEvidence(units);
    expect(perUnit.map((e) => e.evidence)).toEqual([
      "excludes-zero",
      "excludes-zero",
      "not-distinguishable",
      "no-interval",
      "below-tau",
      "screened-alone",
      "screened-by-group",
      "screened-by-group",
    ]);
    expect(counts.excludesZero).toEqual({ total: 2, negative: 1, positive: 1 });
    expect(counts.notDistinguishable).toEqual({ total: 1, negative: 0, positive: 1 });
    expect(counts.noInterval).toEqual({ total: 1, negative: 1, positive: 0 });
    expect([counts.belowTau, counts.screenedAlone, counts.screenedByGroup]).toEqual([1, 1, 2]);
    expect(counts.units).toBe(8);
    expect(perUnit[3].p).toBeNull();
    expect(perUnit[6].q).toBeNull();
    expect(counts.test).toMatch(/Benjamini–Hochberg at 5% false discovery rate across the 8 units/);
  });
  it("corrects across blocks: an uncorrected 5% interval is not enough among many", () => {
    // t = 2.2 on 49 dof: p ≈ 0.033 alone, but one of 100 blocks
    const lone = unitEvidence([u("above-tau", 2.2, 1, 50)]);
    expect(lone.counts.excludesZero.total).toBe(1);
    const many = unitEvidence([u("above-tau", 2.2, 1, 50), ...Array.from({ length: 99 }, () => u("screened-out", 0, Number.NaN, 0))]);
    expect(many.counts.excludesZero.total).toBe(0);
    expect(many.counts.notDistinguishable.total).toBe(1);
    expect(many.counts.screenedByGroup).toBe(99);
  });
  it("uses the estimator's degrees of freedom when given", () => {
    // t = 2.5: p = 0.016 on 49 dof, 0.13 on 2 dof
    expect(unitEvidence([u("above-tau", 2.5, 1, 50)]).perUnit[0].evidence).toBe("excludes-zero");
    expect(unitEvidence([u("above-tau", 2.5, 1, 50, 2)]).perUnit[0].evidence).toBe("not-distinguishable");
  });
});
