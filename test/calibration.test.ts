import { describe, expect, it } from "vitest";
import { summarise } from "../src/bench/calibration.js";
import { t975 } from "../src/util/tdist.js";

describe("calibration summary", () => {
  // Reference means 0, 10, 20, 30 with SE 0.6; one fast run off by 0, 0.8, -2.5 and 5 with SE 0.8 (z = 0, 0.8, -2.5, 5).
  const ref = {
    effect: [0, 10, 20, 30],
    raw: [0, 10, 20, 30],
    se: [0.6, 0.6, 0.6, 0.6],
    dof: [99, 99, 99, 99],
    passing: [true, true, true, true],
    forwardPasses: 400,
  };
  const run = {
    effect: [0, 10.8, 17.5, 35],
    raw: [0, 10.8, 17.5, 35],
    se: [0.8, 0.8, 0.8, 0.8],
    dof: [1000, 1000, 1000, 1000],
    passing: [true, true, true, true],
    forwardPasses: 40,
  };

  it("z pools fast and reference SEs; coverage counts |z| within the t quantile and the plain interval", () => {
    const r = summarise("m", "c", 8, 0.3, ref, [run]);
    expect(r.intervals).toBe(4);
    expect(r.zeroSe).toBe(0);
    const z = [0, 0.8, -2.5, 5];
    const m = z.reduce((a, b) => a + b) / 4;
    expect(r.zSd).toBeCloseTo(Math.sqrt(z.reduce((a, b) => a + (b - m) ** 2, 0) / 3), 12);
    expect(r.coverageNoiseAware).toBe(0.5); // |z| = 0, 0.8 inside t975(1000) ≈ 1.96
    // plain interval ±t975·0.8 = ±1.57: holds offsets 0 and 0.8 only
    expect(t975(1000) * 0.8).toBeLessThan(2.5);
    expect(r.coverage).toBe(0.5);
    expect(r.refSeRatio).toBeCloseTo(0.75, 12);
    expect(r.promised).toBeCloseTo(1 / Math.sqrt(1.09), 12);
    expect(r.fastPasses).toBe(40);
  });

  it("screened-out blocks enter the map as 0 and leave the intervals; Pearson is corrected for the reference's noise", () => {
    const out = { ...run, passing: [true, true, true, false] };
    const r = summarise("m", "c", 8, 0.3, ref, [out]);
    expect(r.intervals).toBe(3);
    // map 0, 10.8, 17.5, 0 against 0, 10, 20, 30
    const a = [0, 10.8, 17.5, 0],
      b = [0, 10, 20, 30];
    const ma = a.reduce((x, y) => x + y) / 4,
      mb = b.reduce((x, y) => x + y) / 4;
    const sab = a.reduce((s, x, i) => s + (x - ma) * (b[i] - mb), 0),
      saa = a.reduce((s, x) => s + (x - ma) ** 2, 0),
      sbb = b.reduce((s, x) => s + (x - mb) ** 2, 0);
    const p = sab / Math.sqrt(saa * sbb);
    expect(r.pearsonMean).toBeCloseTo(p, 12);
    // reliability of the reference: 1 − Σ SE² / Σ (ref − mean)² = 1 − 4·0.36/500
    expect(r.pearsonCorrected).toBeCloseTo(p / Math.sqrt(1 - 1.44 / 500), 12);
  });
});
