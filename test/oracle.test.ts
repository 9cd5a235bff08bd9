import { describe, expect, it } from "vitest";
import { drawSd, oracleBound, oracleBudgetFor, oracleReaches } from "../src/bench/oracle.js";
import { normalSf } from "../src/evaluate/wilcoxon.js";

const Phi = (z: number) => 1 - normalSf(z);

describe("oracle of fixed allocations", () => {
  it("Pearson: Neyman allocation, noise (Σσ)²/budget, Pearson sqrt(spread/(spread+noise))", () => {
    const blocks = [
      { effect: 0, significant: false, sd: 1 },
      { effect: 2, significant: true, sd: 3 },
    ];
    // n = 4 and 12: noise = 1/4 + 9/12 = 1; spread = 2 (mean 1)
    expect(oracleBound(blocks, 16).pearson).toBeCloseTo(Math.sqrt(2 / 3), 9);
    // sign: the non-significant block keeps its one draw, the other gets 15
    expect(oracleBound(blocks, 16).sameSign).toBeCloseTo(Phi((2 * Math.sqrt(15)) / 3), 6);
  });

  it("Neyman keeps one draw for a block it would starve", () => {
    const blocks = [
      { effect: 0, significant: false, sd: 0.001 },
      { effect: 1, significant: false, sd: 1 },
    ];
    // unconstrained Neyman would give the first block 0.01 of a draw
    const noise = 0.001 ** 2 / 1 + 1 / 9;
    expect(oracleBound(blocks, 10).pearson).toBeCloseTo(Math.sqrt(0.5 / (0.5 + noise)), 9);
  });

  it("the sign allocation puts draws where a sign can be decided, not where σ is largest", () => {
    const blocks = [
      { effect: 10, significant: true, sd: 1 }, // decided with one draw
      { effect: 0.1, significant: true, sd: 10 }, // a coin flip whatever one does
      { effect: 1, significant: true, sd: 2 }, // decidable with a few draws
    ];
    const B = 30;
    const neymanSign = (Phi(10 * Math.sqrt((B * 1) / 13)) + Phi(0.01 * Math.sqrt((B * 10) / 13)) + Phi(0.5 * Math.sqrt((B * 2) / 13))) / 3;
    const best = oracleBound(blocks, B).sameSign;
    expect(best).toBeGreaterThan(neymanSign + 0.02);
    // and no split of the draws between the last two blocks (one draw to the first) does better
    let brute = 0;
    for (let k = 1; k <= B - 2; k++) brute = Math.max(brute, (Phi(10) + Phi(0.01 * Math.sqrt(k)) + Phi(0.5 * Math.sqrt(B - 1 - k))) / 3);
    expect(best).toBeGreaterThanOrEqual(brute - 1e-3);
  });

  it("a block that never varies is always right and costs nothing", () => {
    const blocks = [
      { effect: 1, significant: true, sd: 2 },
      { effect: -5, significant: true, sd: 0 },
    ];
    expect(oracleBound(blocks, 4).sameSign).toBeCloseTo((Phi(1) + 1) / 2, 6);
  });

  it("finds the smallest budget at which one allocation meets both targets", () => {
    const blocks = Array.from({ length: 20 }, (_, i) => ({ effect: i - 10, significant: i !== 10, sd: 1 + (i % 3) }));
    const b = oracleBudgetFor(blocks, 0.95, 0.95);
    expect(oracleReaches(blocks, b, 0.95, 0.95)).toBe(true);
    expect(oracleReaches(blocks, b * 0.99, 0.95, 0.95)).toBe(false);
    // each target alone is reached with at most that budget
    expect(oracleBound(blocks, b).pearson).toBeGreaterThanOrEqual(0.95);
    expect(oracleBound(blocks, b).sameSign).toBeGreaterThanOrEqual(0.95);
  });

  it("the within-strata spread removes the between-strata part", () => {
    expect(drawSd([0, 0, 10, 10])).toBeCloseTo(Math.sqrt(100 / 3), 12);
    expect(drawSd([0, 0, 10, 10], (i) => (i < 2 ? 0 : 1))).toBe(0);
    expect(drawSd([1, 3, 10, 14], (i) => (i < 2 ? 0 : 1))).toBeCloseTo(Math.sqrt(0.5 * 2 + 0.5 * 8), 12);
  });
});
