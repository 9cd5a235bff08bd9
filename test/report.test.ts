import { describe, expect, it } from "vitest";
import { boxPanelsSvg } from "../src/evaluate/plots.js";
import type { Attribution } from "../src/explain/attribution.js";
import { summarySvg } from "../src/report/charts.js";
import { heatRgb, overlayRgb } from "../src/report/colormap.js";
import { countLines, readingLine } from "../src/report/counts.js";
import { colourBarSvg } from "../src/report/picture.js";
import { colourScale, parseScale } from "../src/report/scale.js";
import { mapStats } from "../src/report/stats.js";
import { Region } from "../src/target/roi.js";
import { decodeNpy, encodeNpy } from "../src/util/npy.js";

describe("paper colour map", () => {
  it("maps -max to red, +max to blue, 0 to white and the RoI to green", () => {
    const map = Float32Array.from([-2, 1, 2, 0]);
    const roi = Region.rect({ row: 1, col: 1, height: 1, width: 1 }, 2, 2);
    const rgb = heatRgb(map, 2, 2, roi);
    expect(Array.from(rgb.subarray(0, 3))).toEqual([255, 0, 0]);
    expect(Array.from(rgb.subarray(3, 6))).toEqual([128, 128, 255]); // h = 0.5 → (0.5, 0.5, 1)
    expect(Array.from(rgb.subarray(6, 9))).toEqual([0, 0, 255]);
    expect(Array.from(rgb.subarray(9, 12))).toEqual([0, 255, 0]);
    const over = overlayRgb(rgb, { width: 2, height: 2, channels: 3, data: new Uint8Array(12).fill(100) });
    expect(over[0]).toBe(Math.round(0.7 * 255 + 0.3 * 100));
  });
});

describe("map statistics", () => {
  it("counts signs without the RoI blocks and bins effects as the paper's code", () => {
    const effects = [-5, -2, -0.5, -0.1, 0, 0.01, 0.1, 0.5, 2, 5];
    const a = {
      method: "pdcr",
      signed: true,
      outcome: "dice",
      reference: "ground-truth",
      baseOutcome: 90,
      forwardPasses: 10,
      wallMs: 1,
      roiCells: 16,
      units: effects.map((effect, i) => ({
        index: i,
        row: 0,
        col: 8 * i,
        height: 8,
        width: 8,
        effect,
        rawEffect: effect,
        stderr: 0,
        samples: 53,
        status: "above-tau",
      })),
    } as unknown as Attribution;
    const s = mapStats(a, 0.02);
    expect([s.negative, s.positive, s.zero]).toEqual([4, 5, 1]);
    expect(s.histogram.map((b) => b.blocks)).toEqual([1, 1, 1, 1, 2 + 16, 1, 1, 1, 1]);
    expect(s.minEffect).toBe(-5);
    expect(s.maxEffect).toBe(5);
  });
});

describe("npy", () => {
  it("round-trips float32 with a 64-byte aligned header", () => {
    const data = Float32Array.from([1.5, -2, Number.NaN, 0]);
    const buf = encodeNpy(data, [2, 2]);
    expect((buf.readUInt16LE(8) + 10) % 64).toBe(0);
    const back = decodeNpy(buf);
    expect(back.shape).toEqual([2, 2]);
    expect(Array.from(back.data)).toEqual(Array.from(data));
  });
});

describe("box plots", () => {
  const ticks = (svg: string) => [...svg.matchAll(/text-anchor="end"[^>]*font-size="10">(-?[\d.]+)</g)].map((m) => Number(m[1]));
  it("keep the axis on the whiskers and mark outliers beyond it on the edge, with their count", () => {
    const values = [...Array.from({ length: 20 }, (_, i) => 0.1 + i * 0.005), 100];
    const svg = boxPanelsSvg("t", [{ title: "p", yLabel: "y", groups: [{ label: "a", colour: "#f00", values }] }]);
    expect(svg).toMatch(/1 outlier beyond the axes/);
    expect(ticks(svg).length).toBeGreaterThan(2);
    expect(Math.max(...ticks(svg))).toBeLessThan(1); // not squashed up to 100
    expect(svg.match(/<circle/g)).toHaveLength(20); // the outlier is a triangle, not a point
    expect(svg).toMatch(/<path d="M[^"]+Z" fill="#f00"\/><text[^>]*>1<\/text>/);
  });
  it("show all the data when the boxes are tied (most values equal), and never cut a box", () => {
    const panel = (values: number[]) => boxPanelsSvg("t", [{ title: "p", yLabel: "y", groups: [{ label: "a", colour: "#f00", values }] }]);
    const zeros = panel([...Array(16).fill(0), 3, 5, 8, 12]); // chain extents: 0 but for a few maps
    expect(zeros).not.toMatch(/outlier/);
    expect(zeros.match(/<circle/g)).toHaveLength(20);
    expect(Math.max(...ticks(zeros))).toBeGreaterThanOrEqual(10);
    const split = panel([0, 0, 10, 10, 10, 10, 10, 10]); // q1 = 7.5: the whisker reaches down at least to the box
    expect(Math.min(...ticks(split))).toBeLessThanOrEqual(8); // the axis reaches the box
    expect(split).toMatch(/2 outliers beyond the axes/); // the two zeros
  });
  it("draw every point when none lies beyond the whiskers", () => {
    const svg = boxPanelsSvg("t", [{ title: "p", yLabel: "y", groups: [{ label: "a", colour: "#f00", values: [1, 2, 3, 4, 5] }] }]);
    expect(svg).not.toMatch(/outlier/);
    expect(svg.match(/<circle/g)).toHaveLength(5);
    expect(Math.max(...ticks(svg))).toBeGreaterThanOrEqual(5);
  });
});

describe("honest counts in the stats and the printed lines", () => {
  const unit = (i: number, status: string, effect: number, stderr: number, samples: number) => ({
    index: i,
    row: 0,
    col: 8 * i,
    height: 8,
    width: 8,
    effect: status === "above-tau" ? effect : 0,
    rawEffect: effect,
    stderr,
    samples,
    status,
  });
  const attribution = (signed: boolean, units: ReturnType<typeof unit>[]) =>
    ({
      method: "pdcr",
      signed,
      unitKind: "block",
      outcome: "dice",
      reference: "ground-truth",
      baseOutcome: 90,
      forwardPasses: 10,
      backwardPasses: 0,
      wallMs: 1,
      roiCells: 0,
      units,
    }) as unknown as Attribution;
  const units = [
    unit(0, "above-tau", -10, 1, 50), // differs from zero, supports
    unit(1, "above-tau", 0.4, 1, 50), // above τ, not distinguishable
    unit(2, "below-tau", 0.01, 1, 50),
    unit(3, "screened-out", 0.001, 0.01, 4),
    unit(4, "screened-out", 0, Number.NaN, 0),
    unit(5, "screened-out", 0, Number.NaN, 0),
  ];

  it("stats.json carries the evidence counts beside the sign counts", () => {
    const s = mapStats(attribution(true, units), 0.02);
    expect(s.evidence?.excludesZero).toEqual({ total: 1, negative: 1, positive: 0 });
    expect(s.evidence?.notDistinguishable).toEqual({ total: 1, negative: 0, positive: 1 });
    expect([s.evidence?.belowTau, s.evidence?.screenedAlone, s.evidence?.screenedByGroup]).toEqual([1, 1, 2]);
    expect([s.negative, s.positive, s.zero]).toEqual([1, 1, 4]);
  });

  it("the printed lines state the correction and never call a screened block 'no effect'", () => {
    const lines = countLines(mapStats(attribution(true, units), 0.02));
    expect(lines[0]).toBe(
      "1 block differ from zero (Benjamini–Hochberg, 5% false discovery rate across all 6; t test on each block's estimate and standard error): 1 supported the RoI prediction (red), 0 worked against it (blue)",
    );
    expect(lines[1]).toBe("1 block above τ = 0.02 but not distinguishable from zero (0 on the supporting side, 1 against)");
    expect(lines[2]).toBe(
      "1 estimated below τ and 3 cleared by screening (1 by their own draws, 2 with their group, never estimated alone): drawn as 0",
    );
    expect(lines.join(" ")).not.toMatch(/had no effect/);
  });

  it("deterministic maps say their units are untested", () => {
    const det = [unit(0, "above-tau", -3, Number.NaN, 1), unit(1, "screened-out", 0, Number.NaN, 1)];
    const lines = countLines(mapStats(attribution(true, det), 0.02));
    expect(lines).toEqual([
      "1 block above τ = 0.02 with no interval (one deterministic pass each, untested): 1 supported the RoI prediction (red), 0 worked against it (blue)",
      "0 estimated below τ and 1 cleared by screening (1 by their own draws, 0 with their group, never estimated alone): drawn as 0",
    ]);
  });

  it("pixel maps say they carry no test, and unsigned ones no direction", () => {
    const roi = Region.rect({ row: 0, col: 0, height: 1, width: 1 }, 2, 2);
    const a = { ...attribution(false, []), unitKind: "pixel", map: Float32Array.from([9, 0, 2, 1]) } as unknown as Attribution;
    const s = mapStats(a, 0, roi);
    expect(s.evidence).toBeUndefined();
    expect(countLines(s)).toEqual([
      "3 pixels outside the RoI: 2 with importance > 0 (red; this map is unsigned), 1 with none — no test (gradient maps carry no per-pixel uncertainty)",
    ]);
    // unsigned histogram: bins over [0, ∞) only, the first holds the zero and the RoI pixel
    expect(s.histogram[0].lo).toBe(0);
    expect(s.histogram.every((b) => b.lo >= 0)).toBe(true);
    expect(s.histogram.map((b) => b.blocks)).toEqual([2, 0, 0, 0, 2]); // edges 0, 2e-6, 0.02, 0.2, 1 (= m/2), inf
  });

  it("the closing line fits the map's sign convention", () => {
    expect(readingLine(true, "o.png", true)).toMatch(/red held up .* blue worked against it; dots mark/);
    expect(readingLine(false, "o.png", false)).not.toMatch(/blue|against/);
    expect(readingLine(false, "o.png", false)).toMatch(/unsigned/);
  });
});

describe("colour scales", () => {
  const map = Float32Array.from([...Array.from({ length: 99 }, (_, i) => -(i + 1) / 100), 100]); // |values| 0.01..0.99 and one 100
  it("max is the paper's, pNN a percentile of |value| outside the RoI, fixed:V the user's", () => {
    expect(colourScale(map, undefined, parseScale("max")).maxAbs).toBe(100);
    const p = colourScale(map, undefined, parseScale("p99"));
    expect(p.maxAbs).toBeCloseTo(0.99, 6); // nearest rank: the 99th of 100
    expect(p.label).toBe("99th percentile of |value| outside the RoI (larger values saturate)");
    expect(colourScale(map, undefined, parseScale("fixed:2")).maxAbs).toBe(2);
    const roi = Region.rect({ row: 0, col: 99, height: 1, width: 1 }, 1, 100);
    expect(colourScale(map, roi, parseScale("max")).maxAbs).toBeCloseTo(0.99, 6);
  });
  it("refuses a bad rule with one line", () => {
    for (const bad of ["p0", "p101", "fixed:0", "fixed:x", "huge"]) expect(() => parseScale(bad)).toThrow(/cannot parse --colour-scale/);
  });
  it("saturates beyond the scale, and the default is bit-identical to the paper's", () => {
    const m = Float32Array.from([-4, 1, 2, 0]);
    expect(Array.from(heatRgb(m, 2, 2, undefined, 2).subarray(0, 3))).toEqual([255, 0, 0]); // -4 at scale 2: full red
    expect(heatRgb(m, 2, 2)).toEqual(heatRgb(m, 2, 2, undefined, colourScale(m, undefined, { kind: "max" }).maxAbs));
  });
  it("an all-zero map says so instead of a 0 … 0 bar", () => {
    const svg = colourBarSvg(0, 0, 100, true, colourScale(new Float32Array(4), undefined, { kind: "max" }), "Dice points");
    expect(svg).toMatch(/all values are 0 outside the RoI/);
    expect(svg).not.toMatch(/linearGradient/);
  });
  it("shows the end values and units on the bar", () => {
    const svg = colourBarSvg(0, 0, 100, true, { spec: "max", maxAbs: 0.283, label: "largest |value| outside the RoI" }, "Dice points (Dice × 100)");
    expect(svg).toMatch(/>−0.283</);
    expect(svg).toMatch(/>\+0.283</);
    expect(svg).toMatch(/Dice points \(Dice × 100\); full colour at the largest/);
  });
});

describe("summary.png", () => {
  it("an unsigned map gets no 'against' side and no blue bars", () => {
    const a = {
      method: "saliency",
      signed: false,
      unitKind: "pixel",
      outcome: "dice",
      reference: "ground-truth",
      baseOutcome: 90,
      forwardPasses: 1,
      backwardPasses: 1,
      wallMs: 1,
      roiCells: 0,
      units: [],
      map: Float32Array.from([0, 1, 2, 3]),
      valueUnits: "d/dx",
    } as unknown as Attribution;
    const svg = summarySvg(mapStats(a, 0), "t", Buffer.from([1, 2, 3]));
    expect(svg).not.toMatch(/against/);
    expect(svg).not.toMatch(/#1f5fbf/);
    expect(svg).toMatch(/<image [^>]*href="data:image\/png;base64,AQID"/); // the map beside the statistics
  });
});
