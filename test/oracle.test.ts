import { describe, expect, it } from "vitest";
import { drawSd, oracleBound, oracleBudgetFor } from "../src/bench/oracle.js";

describe("oracle bound of unbiased schedules", () => {
  it("allocates by Neyman: noise (Σσ)²/budget, Pearson sqrt(spread/(spread+noise))", () => {
    const blocks = [
      { effect: 0, significant: false, sd: 1 },
      { effect: 2, significant: true, sd: 3 },
    ];
    // spread = 2 (mean 1); noise = (1+3)²/16 = 1
    expect(oracleBound(blocks, 16).pearson).toBeCloseTo(Math.sqrt(2 / 3), 12);
    // the significant block gets 12 of the 16 draws: z = 2·sqrt(12)/3
    const z = (2 * Math.sqrt(12)) / 3;
    expect(oracleBound(blocks, 16).sameSign).toBeCloseTo(1 - 0.5 * erfc(z / Math.SQRT2), 6);
  });

  it("a block that never varies is always right and costs nothing", () => {
    const blocks = [
      { effect: 1, significant: true, sd: 2 },
      { effect: -5, significant: true, sd: 0 },
    ];
    // every draw goes to the first block: n = 4, z = 1·2/2 = 1 → Φ(1) = 0.841345
    expect(oracleBound(blocks, 4).sameSign).toBeCloseTo((0.841345 + 1) / 2, 5);
  });

  it("the within-strata spread removes the between-strata part", () => {
    expect(drawSd([0, 0, 10, 10])).toBeCloseTo(Math.sqrt(100 / 3), 12);
    expect(drawSd([0, 0, 10, 10], (i) => (i < 2 ? 0 : 1))).toBe(0);
    expect(drawSd([1, 3, 10, 14], (i) => (i < 2 ? 0 : 1))).toBeCloseTo(Math.sqrt(0.5 * 2 + 0.5 * 8), 12);
  });

  it("finds the smallest budget that meets both targets", () => {
    const blocks = Array.from({ length: 20 }, (_, i) => ({ effect: i - 10, significant: i !== 10, sd: 1 + (i % 3) }));
    const b = oracleBudgetFor(blocks, 0.95, 0.95);
    const at = oracleBound(blocks, b), below = oracleBound(blocks, b * 0.99);
    expect(at.pearson >= 0.95 && at.sameSign >= 0.95).toBe(true);
    expect(below.pearson >= 0.95 && below.sameSign >= 0.95).toBe(false);
  });
});

/** erfc by its series-free definition through the error function's integral (Simpson, fine grid). */
function erfc(x: number): number {
  const n = 20000, h = x / n;
  let s = 0;
  for (let i = 0; i <= n; i++) s += (i === 0 || i === n ? 1 : i % 2 ? 4 : 2) * Math.exp(-((i * h) ** 2));
  return 1 - ((2 / Math.sqrt(Math.PI)) * s * h) / 3;
}
