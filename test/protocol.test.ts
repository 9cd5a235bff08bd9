/**
 * The benchmark's ranking protocol: every map ranked on the same units (grid blocks clipped to the
 * explained domain, superpixels or pixels), ties broken per unit by one seeded rule, curves over whole
 * units, area-matched top-k, insertion − deletion, and the random and distance-to-RoI controls; the
 * published run's pixel protocol keeps its cell keys and numbers.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { type MethodDefinition, registerMethod } from "../src/explain/methods.js";
import "../src/explain/catalog.js";
import { SegcauseError } from "../src/errors.js";
import { runEvaluation } from "../src/evaluate/benchmark.js";
import { addRoiNote } from "../src/evaluate/cell.js";
import { protocolKey } from "../src/evaluate/cell-key.js";
import { distanceToRoi, explainedDomain } from "../src/evaluate/map-metrics.js";
import { areaPrefix, distanceUnits, massPrefix, randomUnits, rankUnits, stepPixels } from "../src/evaluate/ordering.js";
import { type EvaluateConfig, PROTOCOL_DEFAULTS, type Protocol, parseControls, parseTopArea } from "../src/evaluate/protocol.js";
import { blockLabels, domainUnits, parseRankUnits, pixelUnits, unitsFromLabelMap } from "../src/evaluate/rank-units.js";
import { writeEvaluationReport } from "../src/evaluate/report.js";
import { parseRoiSpec } from "../src/evaluate/rois.js";
import { listCells, listControls } from "../src/evaluate/store.js";
import { summarize, withInsMinusDel } from "../src/evaluate/summary.js";
import type { Attribution, Provenance } from "../src/explain/attribution.js";
import { Region } from "../src/target/roi.js";
import { regionMeanModel, tmp, writeImage, writeMask, writeModel } from "./helpers/tiny.js";

const S = 32;
const rect = (row: number, col: number, size: number) => Region.rect({ row, col, height: size, width: size }, S, S);

describe("rank units", () => {
  it("one --rank-units note per model, the one of its fewest units, in whatever order the RoIs (or a queue's workers) give them", () => {
    const few = (model: string, n: number) =>
      `${model}: --rank-units block:8 leaves as few as ${n} units for --steps 20, so some curve steps remove no unit (use smaller units or fewer steps)`;
    const given = [few("a", 9), "other", few("b", 12), few("a", 4), "other", few("a", 7)];
    const orders = [given, [...given].reverse()].map((xs) => {
      const notes: string[] = [];
      for (const n of xs) addRoiNote(notes, n);
      return notes.sort();
    });
    expect(orders[0]).toEqual([few("a", 4), few("b", 12), "other"]);
    expect(orders[1]).toEqual(orders[0]);
  });

  it("block units are the grid cells clipped to the domain, listed by cell; pixel units are the pixels", () => {
    // 10 x 10 image, 4 px cells (3 x 3 cells, the last row/column 2 px wide), RoI rows 3-5, cols 3-5
    const region = Region.rect({ row: 3, col: 3, height: 3, width: 3 }, 10, 10);
    const domain = explainedDomain(region);
    const u = domainUnits({ kind: "block", size: 4 }, domain, 10, 10);
    expect([...u.label]).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    const sizes = Array.from(u.label, (_, i) => u.start[i + 1] - u.start[i]);
    // cell 0 (rows 0-3, cols 0-3) loses the RoI pixel (3,3); cell 4 (rows 4-7, cols 4-7) loses (4,4),(4,5),(5,4),(5,5)
    expect(sizes).toEqual([15, 14, 8, 14, 12, 8, 8, 8, 4]);
    expect(u.pixels.length).toBe(100 - 9);
    expect([...u.pixels.subarray(u.start[8], u.start[9])]).toEqual([88, 89, 98, 99]);
    // a RoI covering a whole cell removes that unit
    const whole = domainUnits({ kind: "block", size: 4 }, explainedDomain(Region.rect({ row: 0, col: 0, height: 4, width: 4 }, 10, 10)), 10, 10);
    expect([...whole.label]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    const px = pixelUnits(domain);
    expect(px.label.length).toBe(91);
    expect([...blockLabels(2, 5, 2)]).toEqual([0, 0, 1, 1, 2, 0, 0, 1, 1, 2]);
    expect([...unitsFromLabelMap([5, 5, 2, 2], Uint32Array.from([0, 1, 3])).label]).toEqual([2, 5]);
  });

  it("superpixel units are SLIC's superpixels of the image cut by the RoI, covering the domain once", () => {
    // left half dark, right half bright: 4 superpixels, none crossing the edge at x = 16
    const data = new Uint8Array(S * S * 3);
    for (let p = 0; p < S * S; p++) data.fill(p % S < 16 ? 40 : 200, 3 * p, 3 * p + 3);
    const image = { width: S, height: S, channels: 3 as const, data };
    const region = rect(8, 12, 8); // straddles the edge
    const domain = explainedDomain(region);
    const u = domainUnits({ kind: "superpixel", segments: 4 }, domain, S, S, image);
    expect(u.label.length).toBe(4);
    expect([...u.pixels].sort((a, b) => a - b)).toEqual([...domain]);
    for (let i = 0; i < u.label.length; i++) {
      const xs = Array.from(u.pixels.subarray(u.start[i], u.start[i + 1]), (p) => p % S);
      expect(xs.every((x) => x < 16) || xs.every((x) => x >= 16)).toBe(true);
    }
  });

  it("parses --rank-units, --top-area and --controls, refusing bad values with one line", () => {
    expect(parseRankUnits("block:16")).toEqual({ kind: "block", size: 16 });
    expect(parseRankUnits("superpixel:100")).toEqual({ kind: "superpixel", segments: 100 });
    expect(parseRankUnits("pixel")).toEqual({ kind: "pixel" });
    for (const bad of ["block", "block:0", "blocks:8", "superpixel:1", "block:-3"]) expect(() => parseRankUnits(bad)).toThrow(SegcauseError);
    expect(() => domainUnits({ kind: "block", size: 64 }, new Uint32Array(4), 32, 32)).toThrow(/block:64 is larger than the 32x32 input/);
    expect(parseTopArea("10,1,5")).toEqual([0.01, 0.05, 0.1]);
    expect(parseTopArea("none")).toEqual([]);
    expect(() => parseTopArea("0,5")).toThrow(SegcauseError);
    expect(parseControls("distance,random")).toEqual(["random", "distance"]);
    expect(() => parseControls("distance")).toThrow(/leaves out the random order/);
    expect(() => parseControls("random,nearest")).toThrow(/unknown control 'nearest'/);
  });
});

describe("unit orders", () => {
  const region = rect(8, 8, 8);
  const domain = explainedDomain(region);
  const units = domainUnits({ kind: "block", size: 8 }, domain, S, S);

  it("a map is ranked by its mean per unit, whole units at a time, ties by one seeded key per unit for every method", () => {
    // support 2 on one pixel of cell 15, 1 on all of cell 5, -1 on cell 0, 0 elsewhere
    const s = new Float32Array(S * S);
    for (let y = 8; y < 16; y++) for (let x = 16; x < 24; x++) s[y * S + x] = 1; // cell 6 (row 1, col 2)
    s[31 * S + 31] = 2; // cell 15, mean 2/64
    for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) s[y * S + x] = -1; // cell 0
    const r = rankUnits(units, s, 0);
    const unitOf = (p: number) => Math.floor(Math.floor(p / S) / 8) * 4 + Math.floor((p % S) / 8);
    const cells = Array.from(r.ends, (e) => unitOf(r.order[e - 1]));
    expect(cells.length).toBe(15); // 16 cells, the RoI's cell (1,1) = 5 excluded
    expect(cells.slice(0, 2)).toEqual([6, 15]);
    expect(cells[14]).toBe(0);
    // every unit's pixels are contiguous in the order
    expect(Array.from(r.order, unitOf)).toEqual(cells.flatMap((c) => new Array(64).fill(c)));
    // the 12 zero cells are ordered by the seeded key alone: the same for another map with the same ties
    const other = Float32Array.from(s, (v) => (v === 1 ? 3 : v));
    const r2 = rankUnits(units, other, 0);
    expect([...r2.order]).toEqual([...r.order]);
    expect([...rankUnits(units, s, 1).order]).not.toEqual([...r.order]);
    // mass: |u| · max(mean, 0): 64 for cell 6, 2 for cell 15
    expect([...r.mass.slice(0, 3)]).toEqual([64, 2, 0]);
    expect(massPrefix(r, 0.5)).toBe(64);
    expect(massPrefix(r, 0.99)).toBe(128);
  });

  it("steps remove round(k·U/K) whole units; area-matched top-k is the shortest unit prefix covering k% of D", () => {
    const r = rankUnits(units, new Float32Array(S * S), 0);
    expect(stepPixels(r, 20)).toEqual(Array.from({ length: 21 }, (_, k) => 64 * Math.round((k * 15) / 20)));
    expect(stepPixels(r, 5)).toEqual([0, 192, 384, 576, 768, 960]);
    // D = 960 px; 10% = 96 px → 2 units (128 px); 1% → 1 unit
    expect(areaPrefix(r, 0.1)).toBe(128);
    expect(areaPrefix(r, 0.01)).toBe(64);
    expect(areaPrefix(r, 1)).toBe(960);
    // pixel units: equal-area steps and ceil(k·N) pixels
    const p = rankUnits(pixelUnits(domain), new Float32Array(S * S), 0);
    expect(stepPixels(p, 20)).toEqual(Array.from({ length: 21 }, (_, k) => 48 * k));
    expect(areaPrefix(p, 0.1)).toBe(96);
  });

  it("controls: random is a seeded permutation of the units; distance puts the units nearest the RoI first", () => {
    const a = randomUnits(units, 0),
      b = randomUnits(units, 0),
      c = randomUnits(units, 3);
    expect([...a.order]).toEqual([...b.order]);
    expect([...a.order]).not.toEqual([...c.order]);
    expect([...a.order].sort((x, y) => x - y)).toEqual([...domain]);
    const d = distanceUnits(units, distanceToRoi(region), 0);
    const unitOf = (p: number) => Math.floor(Math.floor(p / S) / 8) * 4 + Math.floor((p % S) / 8);
    const cells = Array.from(d.ends, (e) => unitOf(d.order[e - 1]));
    // RoI = cell 5 (row 1, col 1): first its 4 edge neighbours (tied, in seeded order), then the 4 diagonal ones
    expect(cells.slice(0, 4).sort()).toEqual([1, 4, 6, 9]);
    expect(cells.slice(4, 8).sort()).toEqual([0, 10, 2, 8]);
    expect(cells.slice(8).sort((x, y) => x - y)).toEqual([3, 7, 11, 12, 13, 14, 15]);
  });

  it("insertion − deletion is derived from the AUCs, raw and normalised, and undefined where a normalised AUC is", () => {
    expect(
      withInsMinusDel({
        "del_auc:zero": 10,
        "ins_auc:zero": 60,
        "del_norm:zero": 0.1,
        "ins_norm:zero": 0.6,
        "del_norm:blur": null,
        "ins_norm:blur": 0.3,
        leakage: 0.2,
      }),
    ).toEqual({
      "del_auc:zero": 10,
      "ins_auc:zero": 60,
      "del_norm:zero": 0.1,
      "ins_norm:zero": 0.6,
      "del_norm:blur": null,
      "ins_norm:blur": 0.3,
      leakage: 0.2,
      "ins_minus_del:zero": 50,
      "ins_minus_del_norm:zero": 0.5,
      "ins_minus_del_norm:blur": null,
    });
  });
});

// Known causal structure: every pixel's prediction is foreground iff the mean of the 24 x 24 square
// rows 0-23, cols 0-23 (which holds the RoI, rows 8-15 x cols 8-15, and the ring of 8 grid cells
// around it) exceeds 0.76. The square is 230 (0.902 after /255), the rest darker texture. With the
// black fill, removing n of its 576 pixels gives a mean 0.902·(576 − n)/576, which flips the RoI
// from Dice 100 to 0 once n ≥ 91 (two 8 px cells: the RoI's own 64 px are never removed).
const inSquare = (p: number) => Math.floor(p / S) < 24 && p % S < 24;
const FLIP = 91;
const flipped = (order: Uint32Array, n: number) => order.subarray(0, n).reduce((c, p) => c + (inSquare(p) ? 1 : 0), 0) >= FLIP;

/** A map that is zero everywhere except a far 8 x 8 patch (rows 24-31, cols 24-31) outside the causal square. */
const farPatch = (p: number) => (Math.floor(p / S) >= 24 && p % S >= 24 ? 1 : 0);

function handMade(name: string, support: (p: number) => number): MethodDefinition {
  return {
    name,
    family: "perturbation",
    summary: `test map ${name}`,
    cost: "0",
    options: [],
    explain: async (ctx) => {
      const map = Float32Array.from({ length: S * S }, (_, p) => support(p));
      const a: Attribution = {
        method: name,
        unitKind: "pixel",
        valueUnits: "test",
        signed: false,
        height: S,
        width: S,
        map,
        stderrMap: new Float32Array(S * S).fill(Number.NaN),
        units: [],
        baseOutcome: 0,
        outcome: "dice",
        reference: "ground-truth",
        roi: ctx.target.roi as never,
        region: "mask" in ctx.target.roi ? Region.mask(ctx.target.roi.mask, S, S) : Region.rect(ctx.target.roi, S, S),
        tau: 0,
        roiCells: 0,
        forwardPasses: 0,
        backwardPasses: 0,
        wallMs: 0,
        notes: [],
        provenance: {} as Provenance,
      };
      return a;
    },
  };
}
registerMethod(handMade("t-farpatch", farPatch));

describe("the protocol on a model whose causal region hugs the RoI", () => {
  let dir: string, model: string, manifest: string, rois: string;
  beforeAll(async () => {
    dir = tmp("segcause-protocol-");
    model = writeModel(dir, "ring.onnx", regionMeanModel([{ row: 0, col: 0, height: 24, width: 24, weight: 50 }], -38));
    const cases = [];
    for (let i = 0; i < 4; i++) {
      await writeImage(dir, `img${i}.png`, (y, x) => (inSquare(y * S + x) ? 230 : 70 + ((x * 37 + y * 23 + 11 * i) % 60)));
      await writeMask(dir, `img${i}_mask.png`, (_y, x) => x < 16);
      cases.push({ id: `img${i}`, image: `img${i}.png`, mask: `img${i}_mask.png`, split: i < 2 ? "train" : "test" });
    }
    manifest = join(dir, "manifest.json");
    writeFileSync(manifest, JSON.stringify({ name: "ring", cases }));
    rois = join(dir, "rois.csv");
    writeFileSync(rois, "image,row,col,size\nimg2,8,8,8\nimg3,8,8,8\n");
  });
  const config = (out: string, protocol: Partial<Protocol>, seed = 0): EvaluateConfig => ({
    models: [model],
    dataset: manifest,
    split: "test",
    methods: [{ name: "t-farpatch", options: {} }],
    rois: parseRoiSpec(rois),
    bankSplits: ["train"],
    bankPatchSize: 8,
    out,
    seed,
    threads: 1,
    protocol: { ...PROTOCOL_DEFAULTS, fills: ["zero"], radius: 8, ...protocol },
  });
  const domain = explainedDomain(rect(8, 8, 8));
  const expectedCurve = (order: Uint32Array, ends: number[]) => ends.map((n) => (flipped(order, n) ? 0 : 100));

  it("a map with a large exactly-zero region scores differently under pixel and block tie-breaking, each as its order predicts", async () => {
    const auc: Record<string, number> = {};
    for (const [name, rankUnitsSpec] of [
      ["pixel", "pixel"],
      ["block:8", "block:8"],
    ] as const) {
      const out = tmp("segcause-protocol-ties-");
      await runEvaluation(config(out, { rankUnits: parseRankUnits(rankUnitsSpec), steps: 20 }));
      const cells = listCells(out);
      expect(cells).toHaveLength(2);
      const ranking = rankUnits(
        domainUnits(parseRankUnits(rankUnitsSpec), domain, S, S),
        Float32Array.from({ length: S * S }, (_, p) => farPatch(p)),
        0,
      );
      for (const c of cells) {
        // the known answer: Dice 100 until 91 pixels of the causal square are gone, then 0
        expect(c.fills.zero!.curves.deletion, name).toEqual(expectedCurve(ranking.order, stepPixels(ranking, 20)).map((v) => expect.closeTo(v, 6)));
      }
      auc[name] = cells[0].metrics["del_auc:zero"]!;
    }
    // pixel ties scatter the zero region's removal over the whole domain like salt-and-pepper noise, so
    // the causal square loses 91 pixels long before the first of its cells would be removed whole
    console.log(
      `far-patch map, deletion AUC (zero fill, Dice points): pixel ties ${auc.pixel.toFixed(2)}, block:8 ties ${auc["block:8"].toFixed(2)}`,
    );
    expect(Math.abs(auc.pixel - auc["block:8"])).toBeGreaterThan(5);
  });

  it("the distance-to-RoI control beats the random control (known curves), and both are pseudo-methods in the summary", async () => {
    const dist: number[] = [],
      rnd: number[] = [];
    for (const seed of [0, 1, 2, 3, 4]) {
      const out = tmp("segcause-protocol-dist-");
      await runEvaluation(config(out, { rankUnits: { kind: "block", size: 8 }, steps: 20 }, seed));
      const controls = listControls(out);
      expect(controls).toHaveLength(2);
      for (const k of controls) {
        // the ring's cells are the 8 nearest units and two of them flip the RoI: 1 of 15 units is gone at
        // k = 1 (round(15/20)), 2 at k = 2 (round(30/20)), so the curve is 100, 100, 0, ... and its AUC 150/20
        expect(k.distance!.zero!.curves.deletion.slice(0, 4)).toEqual([100, 100, 0, 0].map((v) => expect.closeTo(v, 6)));
        expect(k.distance!.zero!.curves.deletionAuc).toBeCloseTo(7.5, 6);
        const r = randomUnits(domainUnits({ kind: "block", size: 8 }, domain, S, S), seed);
        expect(k.fills!.zero!.curves.deletion).toEqual(expectedCurve(r.order, stepPixels(r, 20)).map((v) => expect.closeTo(v, 6)));
        dist.push(k.distance!.zero!.curves.deletionAuc);
        rnd.push(k.fills!.zero!.curves.deletionAuc);
        // area-matched top-10% = 2 units (128 px ≥ 96) for every order: the distance order's flips the RoI
        expect(k.distance!.zero!.topArea!.find((t) => t.k === 0.1)).toMatchObject({ area: 128 / 960, effect: expect.closeTo(-100, 6) });
      }
      const s = summarize(listCells(out), listControls(out));
      expect(s.methods).toEqual(["t-farpatch", "random", "distance"]);
      const mean = (m: string, metric: string) => s.stats.find((r) => r.scope === "all" && r.method === m && r.metric === metric)!.mean;
      expect(mean("distance", "del_auc:zero")).toBeCloseTo(7.5, 6);
      expect(mean("distance", "ins_minus_del:zero")).toBeCloseTo(mean("distance", "ins_auc:zero") - 7.5, 6);
      expect(s.pairs.some((p) => p.metric === "toparea10:zero" && [p.a, p.b].includes("distance") && [p.a, p.b].includes("t-farpatch"))).toBe(true);
      expect(s.pairs.some((p) => p.metric === "ins_minus_del_norm:zero")).toBe(true);
      // controls are yardsticks, not ranked
      expect(s.ranks!.some((r) => r.method === "distance" || r.method === "random")).toBe(false);
    }
    console.log(
      `deletion AUC (zero fill) over seeds 0-4: distance ${dist.map((v) => v.toFixed(1)).join(", ")}; random ${rnd.map((v) => v.toFixed(1)).join(", ")}`,
    );
    for (let i = 0; i < dist.length; i++) expect(dist[i]).toBeLessThanOrEqual(rnd[i] + 1e-9);
    expect(dist.reduce((a, b) => a + b)).toBeLessThan(rnd.reduce((a, b) => a + b));
  });
});

describe("the report of a unit-protocol run", () => {
  it("lists the controls as methods, insertion − deletion and area-matched top-k in its tables, and plots the area-matched top-k", async () => {
    const dir = tmp("segcause-protocol-report-");
    const model = writeModel(dir, "ring.onnx", regionMeanModel([{ row: 0, col: 0, height: 24, width: 24, weight: 50 }], -38));
    const cases = [];
    for (let i = 0; i < 4; i++) {
      await writeImage(dir, `img${i}.png`, (y, x) => (inSquare(y * S + x) ? 230 : 70 + ((x * 37 + y * 23 + 11 * i) % 60)));
      await writeMask(dir, `img${i}_mask.png`, (_y, x) => x < 16);
      cases.push({ id: `img${i}`, image: `img${i}.png`, mask: `img${i}_mask.png`, split: i < 2 ? "train" : "test" });
    }
    writeFileSync(join(dir, "manifest.json"), JSON.stringify({ name: "ring", cases }));
    const out = tmp("segcause-protocol-report-out-");
    const run = await runEvaluation({
      models: [model],
      dataset: join(dir, "manifest.json"),
      split: "test",
      methods: [{ name: "t-farpatch", options: {} }],
      rois: parseRoiSpec("boundary:8"),
      bankSplits: ["train"],
      bankPatchSize: 8,
      out,
      seed: 0,
      threads: 1,
      protocol: { ...PROTOCOL_DEFAULTS, fills: ["zero"], radius: 8 },
    });
    // 16 px blocks on a 32 px input: 4 units (the 8 px RoI cuts one) for 20 steps, said once
    expect(
      run.notes.filter((n) => /--rank-units block:16 leaves as few as 4 units for --steps 20, so some curve steps remove no unit/.test(n)),
    ).toHaveLength(1);
    const r = await writeEvaluationReport(out);
    expect(r.files).toContain("plots/toparea-ring.png");
    const csvText = readFileSync(join(out, "cells.csv"), "utf8");
    const head = csvText.split("\n")[0].split(",");
    expect(head).toEqual(expect.arrayContaining(["ins_minus_del:zero", "ins_minus_del_norm:zero", "toparea10:zero", "toparea10_area"]));
    const methodCol = head.indexOf("method");
    expect(
      new Set(
        csvText
          .trim()
          .split("\n")
          .slice(1)
          .map((l) => l.split(",")[methodCol]),
      ),
    ).toEqual(new Set(["t-farpatch", "random", "distance"]));
    const md = readFileSync(join(out, "report.md"), "utf8");
    expect(md).toMatch(/\| method \| del_norm:zero ↓ \| ins_norm:zero ↑ \| ins_minus_del_norm:zero ↑ \| top10:zero ↓ \| toparea10:zero ↓ \|/);
    expect(md).toMatch(/\n\| distance \| /);
    expect(md).toMatch(/random and distance controls excluded/);
  });
});

describe("the published run's protocol", () => {
  it("its settings with --rank-units pixel --top-area none --controls random give its protocol key", () => {
    const run = JSON.parse(readFileSync(join(import.meta.dirname, "..", "docs", "results", "run.json"), "utf8")) as {
      protocol: Record<string, unknown> & { seed: number };
    };
    const { seed, ...settings } = run.protocol;
    const key = protocolKey({ ...(settings as unknown as Protocol), rankUnits: { kind: "pixel" }, topArea: [], controls: ["random"] }, seed);
    // the published cells are keyed by JSON.stringify({ ...protocol, seed }) of these settings, which run.json records
    expect(JSON.stringify(key)).toBe(JSON.stringify(run.protocol));
    // any other setting is keyed
    expect(
      protocolKey(
        { ...(settings as unknown as Protocol), rankUnits: { kind: "block", size: 16 }, topArea: [0.1], controls: ["random", "distance"] },
        seed,
      ),
    ).toMatchObject({ rankUnits: "block:16", topArea: [0.1], controls: ["random", "distance"] });
  });

  it("cells computed with it keep their pinned keys, metrics and control curves", async () => {
    const dir = tmp("segcause-protocol-legacy-");
    const inC = (p: number) => Math.floor(p / S) < 16 && p % S >= 16;
    const modelPath = writeModel(dir, "causal.onnx", regionMeanModel([{ row: 0, col: 16, height: 16, width: 16, weight: 50 }], -40));
    const cases = [];
    for (let i = 0; i < 4; i++) {
      await writeImage(dir, `img${i}.png`, (y, x) => (inC(y * S + x) ? 230 : 70 + ((x * 37 + y * 23 + 11 * i) % 60)));
      await writeMask(dir, `img${i}_mask.png`, (_y, x) => x < 16);
      cases.push({ id: `img${i}`, image: `img${i}.png`, mask: `img${i}_mask.png`, split: i < 2 ? "train" : "test" });
    }
    writeFileSync(join(dir, "manifest.json"), JSON.stringify({ name: "tiny", cases }));
    const out = tmp("segcause-protocol-legacy-out-");
    await runEvaluation({
      models: [modelPath],
      dataset: join(dir, "manifest.json"),
      split: "test",
      images: 1,
      methods: [{ name: "zero", options: {} }],
      rois: parseRoiSpec("boundary:8"),
      bankSplits: ["train"],
      bankPatchSize: 8,
      out,
      seed: 0,
      threads: 1,
      protocol: {
        ...PROTOCOL_DEFAULTS,
        steps: 8,
        patchDraws: 1,
        fills: ["zero", "patches"],
        rankUnits: { kind: "pixel" },
        topArea: [],
        controls: ["random"],
      },
    });
    const [cell] = listCells(out),
      [control] = listControls(out);
    // pinned: the published protocol's cell keys must not change (same model, images, settings)
    expect(cell.key).toBe("10d5ae9ceee80b630ab3d88f0e0f059136bfe3e2a79aa2396829d45ca6c401bf");
    expect(control.key).toBe("74840fbdf33ad70ab4336505c3c703900f50bdeeec880cf98b08bbcbe5f97a61");
    const { wall_s, ...metrics } = cell.metrics;
    expect(wall_s).toBeGreaterThanOrEqual(0);
    expect(metrics).toEqual({
      "del_auc:zero": 6.249999999995118,
      "ins_auc:zero": 81.24999999993653,
      "del_norm:zero": 0.0625,
      "ins_norm:zero": 0.8125,
      "top1:zero": 0,
      "top5:zero": 0,
      "top10:zero": 0,
      "top20:zero": -99.99999999992188,
      "del_auc:patches": 6.249999999995118,
      "ins_auc:patches": 81.24999999993653,
      "del_norm:patches": 0.0625,
      "ins_norm:patches": 0.8125,
      "top1:patches": 0,
      "top5:patches": 0,
      "top10:patches": 0,
      "top20:patches": 0,
      top1_area: 0.003125,
      top5_area: 0.013541666666666667,
      top10_area: 0.027083333333333334,
      top20_area: 0.05416666666666667,
      leakage: 0,
      gini: 0.7333333333333333,
      forward: 16,
      backward: 0,
    });
    expect(control.distance).toBeUndefined();
    expect(control.fills!.patches!.curves.deletion).toEqual([
      99.99999999992188, 99.99999999992188, 99.99999999992188, 99.99999999992188, 0, 0, 0, 0, 0,
    ]);
    expect(control.fills!.patches!.curves.insertion).toEqual([0, 0, 0, 0, 0, 0, 99.99999999992188, 99.99999999992188, 99.99999999992188]);
    expect(Object.keys(cell.fills.zero!)).toEqual(["ends", "curves", "topk"]);
  });
});
