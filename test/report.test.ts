import { describe, expect, it } from "vitest";
import { heatRgb, overlayRgb } from "../src/report/colormap.js";
import { mapStats } from "../src/report/stats.js";
import { boxPanelsSvg } from "../src/evaluate/plots.js";
import { Region } from "../src/target/roi.js";
import { encodeNpy, decodeNpy } from "../src/util/npy.js";
import type { Attribution } from "../src/explain/attribution.js";

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
      method: "pdcr", outcome: "dice", reference: "ground-truth", baseOutcome: 90, forwardPasses: 10, wallMs: 1, roiCells: 16,
      units: effects.map((effect, i) => ({ index: i, row: 0, col: 8 * i, height: 8, width: 8, effect, rawEffect: effect, stderr: 0, samples: 53, status: "above-tau" })),
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
    expect(Math.min(...ticks(split))).toBeLessThanOrEqual(8); // the axis reaches the box (was 9.45..10.55)
    expect(split).toMatch(/2 outliers beyond the axes/); // the two zeros
  });
  it("draw every point when none lies beyond the whiskers", () => {
    const svg = boxPanelsSvg("t", [{ title: "p", yLabel: "y", groups: [{ label: "a", colour: "#f00", values: [1, 2, 3, 4, 5] }] }]);
    expect(svg).not.toMatch(/outlier/);
    expect(svg.match(/<circle/g)).toHaveLength(5);
    expect(Math.max(...ticks(svg))).toBeGreaterThanOrEqual(5);
  });
});
