import { describe, expect, it } from "vitest";
import { bootstrapMeanCi, bootstrapRanks, holm, median } from "../src/evaluate/inference.js";
import { modelPairs } from "../src/evaluate/strategies/pairs.js";
import { holmSignificant, type Row, summarizeRows } from "../src/evaluate/summary.js";

describe("Holm's adjustment", () => {
  it("multiplies the k-th smallest p by (m − k + 1), keeps the order monotone and caps at 1", () => {
    const close = (got: number[], want: number[]) => got.forEach((g, i) => expect(g).toBeCloseTo(want[i], 12));
    close(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06]);
    close(holm([0.5, 0.001]), [0.5, 0.002]);
    close(holm([0.9, 0.8]), [1, 1]);
    close(holm([0.6, 0.7, 0.01]), [1, 1, 0.03]);
    close(holm([0.2, 0.01, 0.3]), [0.4, 0.03, 0.4]);
  });
  it("leaves untestable comparisons (NaN) out of the family", () => {
    const q = holm([0.02, Number.NaN, 0.01]);
    expect(q[0]).toBeCloseTo(0.02, 15);
    expect(q[1]).toBeNaN();
    expect(q[2]).toBeCloseTo(0.02, 15);
  });
});

describe("image bootstrap", () => {
  it("an interval of a constant is that constant; it is reproducible and contains the mean", () => {
    expect(bootstrapMeanCi([2, 2, 2, 2])).toEqual([2, 2]);
    const xs = [1, 5, 2, 8, 3, 9, 4, 7];
    const a = bootstrapMeanCi(xs);
    expect(bootstrapMeanCi(xs)).toEqual(a);
    expect(a[0]).toBeLessThan(4.875);
    expect(a[1]).toBeGreaterThan(4.875);
    expect(a[0]).toBeGreaterThanOrEqual(1);
    expect(a[1]).toBeLessThanOrEqual(9);
    expect(bootstrapMeanCi([3])).toEqual([NaN, NaN]);
    expect(median([3, 1, 2, 10])).toBe(2.5);
  });
  it("a method better on every image has rank 1 with the interval [1, 1]; two interleaved methods share an interval", () => {
    const ones = [1, 1, 1, 1, 1];
    const r = bootstrapRanks(
      [
        [-1, -1, -1, -1, -1],
        [2, 2, 2, 2, 2],
        [3, 0, 3, 0, 3],
      ],
      [ones, ones, ones],
      true,
    );
    expect(r[0]).toEqual({ rank: 1, low: 1, high: 1 });
    // method 2 (mean 1.8) is 2nd or 3rd depending on the images drawn; method 1 the other of the two
    expect(r[2]).toEqual({ rank: 2, low: 2, high: 3 });
    expect(r[1]).toEqual({ rank: 3, low: 2, high: 3 });
  });
  it("ranks and intervals rest on the mean over cells: an image with more cells weighs more, as in the tables", () => {
    // method 0: image 0 has 3 cells summing to 0 (mean 0), image 1 one cell of 10: cell mean 2.5, image-mean mean 5
    // method 1: one cell of 4 on each image: 4. Lower is better: by cells method 0 ranks first, by images second.
    const r = bootstrapRanks(
      [
        [0, 10],
        [4, 4],
      ],
      [
        [3, 1],
        [1, 1],
      ],
      true,
    );
    expect(r.map((x) => x.rank)).toEqual([1, 2]);
    const [lo, hi] = bootstrapMeanCi([0, 10], [3, 1]);
    expect(lo).toBeLessThanOrEqual(2.5);
    expect(hi).toBeGreaterThanOrEqual(2.5);
    expect(lo).toBeGreaterThanOrEqual(0);
    expect(hi).toBeLessThanOrEqual(10);
  });
});

describe("clustered paired tests", () => {
  const row = (model: string, image: string, method: string, v: number): Row => ({
    cellKey: `d|${model}|${image}|r`,
    dataset: "d",
    model,
    image,
    roi: "r",
    method,
    metrics: { "del_norm:zero": v },
  });
  it("five models on the same 8 images are 8 observations at the dataset level, not 40", () => {
    const rows: Row[] = [];
    for (let m = 0; m < 5; m++)
      for (let i = 0; i < 8; i++) {
        rows.push(row(`m${m}`, `img${i}`, "a", 0.2 + 0.01 * i));
        rows.push(row(`m${m}`, `img${i}`, "b", 0.5 + 0.01 * m));
      }
    const s = summarizeRows(rows, ["a", "b"]);
    const ds = s.pairs.find((p) => p.scope === "dataset")!;
    expect(ds.n).toBe(8);
    expect(ds.cells).toBe(40);
    expect(ds.better).toBe("a"); // lower deletion AUC is more faithful
    expect(ds.p).toBeCloseTo(2 / 256, 12); // exact: all 8 image differences negative
    expect(ds.pHolm).toBeCloseTo(ds.p, 12); // one pair: a family of one
    const perModel = s.pairs.filter((p) => p.scope === "model");
    expect(perModel).toHaveLength(5);
    for (const p of perModel) expect(p.n).toBe(8);
  });
  it("'better' follows the test's ranks, not the mean, when one outlier drags the mean", () => {
    // a is lower on 7 of 8 images by 0.01, higher on one by 1: mean favours b, ranks favour... the test's statistic decides
    const rows: Row[] = [];
    for (let i = 0; i < 8; i++) {
      rows.push(row("m", `img${i}`, "a", i === 0 ? 1.5 : 0.49 - 0.001 * i));
      rows.push(row("m", `img${i}`, "b", 0.5));
    }
    const p = summarizeRows(rows, ["a", "b"]).pairs.find((x) => x.scope === "model")!;
    expect(p.meanDiff).toBeGreaterThan(0); // by mean, b looks better (lower)
    expect(p.wPlus).toBe(8); // the one positive difference has the largest rank
    expect(p.better).toBe("a"); // W− = 28 > W+ = 8: the test favours a
  });
  it("'better' is 'none' where the test cannot favour either method: one image, or p = 1", () => {
    const one = summarizeRows([row("m", "img0", "a", 0.1), row("m", "img0", "b", 0.9)], ["a", "b"]).pairs.find((x) => x.scope === "model")!;
    expect(one).toMatchObject({ n: 1, p: 1, better: "none" });
    // two images, differences −0.1 and +0.2: W+ = 2, W− = 1, and the exact two-sided p is 1
    const two = summarizeRows(
      [row("m", "img0", "a", 0.4), row("m", "img0", "b", 0.5), row("m", "img1", "a", 0.7), row("m", "img1", "b", 0.5)],
      ["a", "b"],
    ).pairs.find((x) => x.scope === "model")!;
    expect(two).toMatchObject({ n: 2, wPlus: 2, p: 1, better: "none" });
    expect(holmSignificant({ ...two, pHolm: 0 })).toBe(false);
    // three images all lower for a: p = 0.25 < 1, so the test favours a (a finding only if Holm's p < 0.05)
    const three = summarizeRows(
      ["img0", "img1", "img2"].flatMap((im, i) => [row("m", im, "a", 0.1 + 0.01 * i), row("m", im, "b", 0.5)]),
      ["a", "b"],
    ).pairs.find((x) => x.scope === "model")!;
    expect(three).toMatchObject({ n: 3, better: "a" });
    expect(three.p).toBeCloseTo(0.25, 12);
  });
});

describe("strategy model comparisons", () => {
  it("are Holm-adjusted within each (dataset, method, statistic) family of model pairs", () => {
    const stats = (v: number) =>
      ({ localShare: v, spread: v / 2, entropy: 0.5, chainExtent: Number.NaN }) as unknown as Parameters<typeof modelPairs>[0][number]["stats"];
    const maps = ["a", "b", "c"].flatMap((model, m) =>
      Array.from({ length: 6 }, (_, i) => ({
        dataset: "d",
        model,
        image: `img${i}`,
        roi: "r",
        roiRect: { row: 0, col: 0, height: 8, width: 8 },
        method: "pdcr",
        stats: stats(m + 0.1 * i * (m + 1)),
      })),
    );
    const pairs = modelPairs(maps);
    const local = pairs.filter((p) => p.stat === "localShare");
    expect(local.map((p) => `${p.a}-${p.b}`)).toEqual(["a-b", "a-c", "b-c"]);
    const want = holm(local.map((p) => p.p));
    local.forEach((p, i) => expect(p.pHolm).toBe(want[i]));
    expect(pairs.some((p) => p.stat === "chainExtent")).toBe(false); // no finite values: no test
  });
});
