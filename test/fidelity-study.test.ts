import { describe, expect, it } from "vitest";
import { estimatesOf, type ReferenceMap, scoreAgainst } from "../src/bench/fidelity-study.js";
import { t975 } from "../src/util/tdist.js";

describe("fidelity study scoring", () => {
  // Four blocks: the reference's interval excludes 0 for blocks 0 and 2 only (|mean| > t975(99)·SE).
  const ref: ReferenceMap = {
    model: "m",
    caseId: "c",
    roi: { row: 0, col: 0, height: 8, width: 8 },
    samples: 100,
    seed: 1000,
    forwardPasses: 400,
    mean: [5, 0.1, -3, 0.5],
    se: [1, 1, 1, 1],
    dof: [99, 99, 99, 99],
  };

  it("the reference's own interval decides which blocks have a sign to get right, not τ", () => {
    expect(t975(99)).toBeLessThan(3);
    // right on block 0, wrong on block 2; blocks 1 and 3 do not count whatever their sign
    const s = scoreAgainst(ref, [4, -1, 2, -7]);
    expect(s.signBlocks).toBe(2);
    expect(s.sign).toBe(0.5);
    // a 0 (screened out) is not the right sign
    expect(scoreAgainst(ref, [4, 0, 0, 0]).sign).toBe(0.5);
    expect(scoreAgainst(ref, ref.mean).pearson).toBeCloseTo(1, 12);
    expect(scoreAgainst(ref, ref.mean).spearman).toBeCloseTo(1, 12);
    // ranks only: a monotone transform keeps Spearman at 1
    expect(
      scoreAgainst(
        ref,
        ref.mean.map((x) => x ** 3),
      ).spearman,
    ).toBeCloseTo(1, 12);
  });

  it("a map's estimates are its block means, 0 where the schedule screened a block out", () => {
    const units = [
      { status: "above-tau" as const, rawEffect: 2 },
      { status: "screened-out" as const, rawEffect: 0.7 },
      { status: "below-tau" as const, rawEffect: 0.01 },
    ];
    expect(estimatesOf({ units } as never)).toEqual([2, 0, 0.01]);
  });
});
