import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import sharp from "sharp";
import { beforeAll, describe, expect, it } from "vitest";
import { type MethodDefinition, registerMethod } from "../src/explain/methods.js";
import "../src/explain/catalog.js";
import { loadCase } from "../src/data/case.js";
import { readManifest } from "../src/data/manifest.js";
import { PatchBank } from "../src/data/patchbank.js";
import { fail } from "../src/errors.js";
import { type RunControl, runEvaluation } from "../src/evaluate/benchmark.js";
import { makeFills } from "../src/evaluate/fills.js";
import { gini, spearman, trapezoidAuc } from "../src/evaluate/map-metrics.js";
import { massPrefix, rankBySupport, rankUnits, stepCounts } from "../src/evaluate/ordering.js";
import { type EvaluateConfig, PROTOCOL_DEFAULTS } from "../src/evaluate/protocol.js";
import { pixelUnits } from "../src/evaluate/rank-units.js";
import { writeEvaluationReport } from "../src/evaluate/report.js";
import { candidates, parseRoiSpec, selectRois } from "../src/evaluate/rois.js";
import { cellDir, listCells, listControls } from "../src/evaluate/store.js";
import { holmSignificant, type StatRow, type Summary, summarize, winners } from "../src/evaluate/summary.js";
import { normalSf, wilcoxon } from "../src/evaluate/wilcoxon.js";
import type { Attribution, Provenance } from "../src/explain/attribution.js";
import { Model } from "../src/model/model.js";
import { Region } from "../src/target/roi.js";
import type { RunStatus } from "../src/util/progress.js";
import { uniform } from "../src/util/rng.js";
import { segcause } from "./helpers/cli.js";
import { regionMeanModel, tmp, writeImage, writeMask, writeModel } from "./helpers/tiny.js";

// Known causal structure: the prediction (the same at every pixel) is foreground iff the mean of
// rows 0-15, cols 16-31 (the causal region C, 256 px) exceeds 0.8. The images are bright (230) on C
// and darker textured elsewhere, so replacing enough of C with any fill flips the RoI to background.
const S = 32;
const inC = (p: number) => Math.floor(p / S) < 16 && p % S >= 16;
const causal = Uint8Array.from({ length: S * S }, (_, p) => (inC(p) ? 1 : 0));
const texture = (y: number, x: number, i = 0) => (inC(y * S + x) ? 230 : 70 + ((x * 37 + y * 23 + 11 * i) % 60));

let dir: string;
let modelPath: string;
let modelPath2: string;
let manifest: string;

/** Hand-made attributions: support = fn(pixel); `calls` counts explain() invocations per method. */
const calls: Record<string, number> = {};
let failOn: { method: string; call: number } | undefined;
function handMade(name: string, support: (p: number, seed: number) => number): MethodDefinition {
  return {
    name,
    family: "perturbation",
    summary: `test map ${name}`,
    cost: "0",
    options: [],
    explain: async (ctx) => {
      calls[name] = (calls[name] ?? 0) + 1;
      if (failOn && failOn.method === name && calls[name] === failOn.call) throw new Error("injected failure");
      const H = ctx.model.height,
        W = ctx.model.width;
      const seed = ctx.run.seed ?? 0;
      const map = Float32Array.from({ length: H * W }, (_, p) => support(p, seed));
      const roi = "mask" in ctx.target.roi ? { row: 0, col: 0, height: 1, width: 1 } : ctx.target.roi;
      const a: Attribution = {
        method: name,
        unitKind: "pixel",
        valueUnits: "test",
        signed: false,
        height: H,
        width: W,
        map,
        stderrMap: new Float32Array(H * W).fill(Number.NaN),
        units: [],
        baseOutcome: 0,
        outcome: "dice",
        reference: "ground-truth",
        roi,
        region: "mask" in ctx.target.roi ? Region.mask(ctx.target.roi.mask, H, W) : Region.rect(roi, H, W),
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
registerMethod(handMade("t-oracle", (p) => (inC(p) ? 1 : 0)));
registerMethod(handMade("t-anti", (p) => (inC(p) ? 0 : 1)));
registerMethod(handMade("t-random", (p, seed) => uniform(seed + 99, 7, p)));
registerMethod({
  ...handMade("t-refuse", () => 0),
  explain: async () => {
    calls["t-refuse"] = (calls["t-refuse"] ?? 0) + 1;
    return fail("t-refuse cannot explain this model", "it never can");
  },
});

beforeAll(async () => {
  dir = tmp("segcause-eval-");
  modelPath = writeModel(dir, "causal.onnx", regionMeanModel([{ row: 0, col: 16, height: 16, width: 16, weight: 50 }], -40));
  // same threshold on the mean of C, plus a weak dependence on the bottom-left corner
  modelPath2 = writeModel(
    dir,
    "causal2.onnx",
    regionMeanModel(
      [
        { row: 0, col: 16, height: 16, width: 16, weight: 40 },
        { row: 24, col: 0, height: 8, width: 8, weight: 0.5 },
      ],
      -32.2,
    ),
  );
  const cases = [];
  for (let i = 0; i < 6; i++) {
    const id = `img${i}`;
    await writeImage(dir, `${id}.png`, (y, x) => texture(y, x, i));
    // ground truth: the left half is the structure (so boundary RoIs exist at cols 8-15)
    await writeMask(dir, `${id}_mask.png`, (_y, x) => x < 16);
    cases.push({ id, image: `${id}.png`, mask: `${id}_mask.png`, split: i < 3 ? "train" : "test" });
  }
  manifest = join(dir, "manifest.json");
  writeFileSync(manifest, JSON.stringify({ name: "tiny", cases }));
});

function config(out: string, methods: string[], extra: Partial<EvaluateConfig> = {}): EvaluateConfig {
  return {
    models: [modelPath],
    dataset: manifest,
    split: "test",
    methods: methods.map((name) => ({ name, options: {} })),
    rois: parseRoiSpec("boundary:8x2"),
    bankSplits: ["train"],
    bankPatchSize: 8,
    out,
    seed: 0,
    protocol: { ...PROTOCOL_DEFAULTS, radius: 8, rankUnits: { kind: "pixel" } },
    threads: 1,
    ...extra,
  };
}
const ctl = (extra: RunControl = {}): RunControl => ({ causalMask: () => causal, ...extra });
const mean = (xs: (number | null)[]) => xs.reduce<number>((s, v) => s + (v ?? NaN), 0) / xs.length;

describe("statistics", () => {
  it("Wilcoxon signed-rank matches scipy.stats.wilcoxon", () => {
    // Darwin's Zea mays differences (scipy docs example): W = 24, exact two-sided p = 0.041259765625
    const darwin = wilcoxon([6, 8, 14, 16, 23, 24, 28, 29, 41, -48, 49, 56, 60, -67, 75]);
    expect(darwin.statistic).toBe(24);
    expect(darwin.method).toBe("exact");
    expect(darwin.p).toBeCloseTo(0.041259765625, 12);
    // paired x, y (scipy): statistic 5, exact p = 0.0390625
    const x = [1.83, 0.5, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.3],
      y = [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29];
    const r = wilcoxon(x.map((v, i) => v - y[i]));
    expect(r.statistic).toBe(5);
    expect(r.p).toBeCloseTo(0.0390625, 12);
    // zeros dropped, then exact on n = 8: scipy p = 0.0546875
    const z = wilcoxon([0, 0, 1.5, -2, 3, 4, -0.5, 2.5, 3.5, 6]);
    expect([z.n, z.zeros, z.statistic]).toEqual([8, 2, 4]);
    expect(z.p).toBeCloseTo(0.0546875, 12);
    // ties → normal approximation with tie correction: scipy 1.17 (method="approx") p = 7.606579428084361e-05
    const t = wilcoxon([1, 2, 2, 3, 3, 3, -1, 4, 5, 5, -2, 6, 7, 7, 8, 9, -3, 10, 11, 12, 12, 13, -4, 14, 15, 16, 17, 18, -19, 20, 21, 22]);
    expect(t.method).toBe("normal");
    expect(t.statistic).toBe(52.5);
    expect(t.p / 7.606579428084361e-5).toBeCloseTo(1, 5);
    const t2 = wilcoxon([
      0.5, -1.2, 2.3, 2.3, -0.4, 1.1, 0.9, -2.2, 3.1, 0.7, 1.5, -0.6, 2.8, 1.9, 0.3, -1.0, 2.2, 1.4, 0.8, 2.5, -0.2, 1.7, 0.6, 2.1, 1.3, 0.9, -0.5,
      1.6, 2.0, 0.4,
    ]);
    expect(t2.statistic).toBe(70);
    expect(t2.p / 0.0008291209612085804).toBeCloseTo(1, 5);
    expect(normalSf(1.959963985)).toBeCloseTo(0.025, 7);
  });

  it("Gini, Spearman, trapezoid AUC, equal-area steps and mass prefixes", () => {
    const all = Uint32Array.from({ length: 4 }, (_, i) => i);
    expect(gini(Float32Array.from([1, 1, 1, 1]), all)).toBeCloseTo(0, 12);
    expect(gini(Float32Array.from([0, 0, 0, 5]), all)).toBeCloseTo(0.75, 12);
    expect(spearman(Float32Array.from([1, 2, 3, 4]), Float32Array.from([10, 20, 35, 100]), all)).toBeCloseTo(1, 12);
    expect(spearman(Float32Array.from([1, 2, 3, 4]), Float32Array.from([4, 3, 2, 1]), all)).toBeCloseTo(-1, 12);
    expect(trapezoidAuc([1, 0, 0])).toBeCloseTo(0.25, 12);
    expect(stepCounts(960, 20)).toEqual(Array.from({ length: 21 }, (_, k) => 48 * k));
    const support = Float32Array.from([5, 3, 2, 0, -4]);
    const dom = Uint32Array.from([0, 1, 2, 3, 4]);
    const ranking = rankUnits(pixelUnits(dom), support, 0);
    expect([...ranking.order]).toEqual([0, 1, 2, 3, 4]);
    expect([...rankBySupport(support, dom, 0)]).toEqual([0, 1, 2, 3, 4]);
    expect(massPrefix(ranking, 0.5)).toBe(1); // 5 of 10 reaches 50%
    expect(massPrefix(ranking, 0.6)).toBe(2);
    expect(massPrefix(rankUnits(pixelUnits(dom), Float32Array.from([0, -1, 0, 0, 0]), 0), 0.1)).toBe(0); // no positive support: nothing removed
  });

  it("ties in the support are broken by a seeded permutation", () => {
    const flat = new Float32Array(100);
    const dom = Uint32Array.from({ length: 100 }, (_, i) => i);
    const a = rankBySupport(flat, dom, 0),
      b = rankBySupport(flat, dom, 0),
      c = rankBySupport(flat, dom, 1);
    expect([...a]).toEqual([...b]);
    expect([...a]).not.toEqual([...c]);
    expect([...a].sort((x, y) => x - y)).toEqual([...dom]);
  });
});

describe("RoI rules", () => {
  it("boundary / inside / outside squares are seeded, aligned, clipped and of the right kind", () => {
    const H = 64,
      W = 64;
    const mask = Uint8Array.from({ length: H * W }, (_, p) => (Math.hypot(Math.floor(p / W) - 30, (p % W) - 34) < 15 ? 1 : 0));
    const spec = parseRoiSpec("boundary:16x3,inside:16,outside:16");
    const a = selectRois(spec, "case1", mask, H, W, 0);
    expect(a.map((r) => r.id)).toEqual(["boundary16-0", "boundary16-1", "boundary16-2", "inside16-0", "outside16-0"]);
    expect(selectRois(spec, "case1", mask, H, W, 0)).toEqual(a);
    expect(selectRois(spec, "case1", mask, H, W, 1)).not.toEqual(a);
    for (const r of a) {
      expect(r.rect.row % 8).toBe(0);
      expect(r.rect.col % 8).toBe(0);
      expect(r.rect.row + r.rect.height).toBeLessThanOrEqual(H);
      expect(r.rect.col + r.rect.width).toBeLessThanOrEqual(W);
    }
    const fg = (r: (typeof a)[0]) => {
      let n = 0;
      for (let y = r.rect.row; y < r.rect.row + 16; y++) for (let x = r.rect.col; x < r.rect.col + 16; x++) n += mask[y * W + x];
      return n;
    };
    for (const r of a.filter((x) => x.kind === "boundary")) expect(fg(r)).toBeGreaterThan(0);
    expect(candidates(mask, H, W, "boundary").every((p) => mask[p] === 1)).toBe(true);
    // a CSV file selects rows by image id
    const csvPath = join(tmp(), "rois.csv");
    writeFileSync(csvPath, "image,row,col,size\ncase1,8,16,16\ncase2,0,0,8\ncase1,40,40,8\n");
    const f = selectRois(parseRoiSpec(csvPath), "case1", undefined, H, W, 0);
    expect(f.map((r) => [r.id, r.rect.row, r.rect.col, r.rect.height])).toEqual([
      ["file-0", 8, 16, 16],
      ["file-2", 40, 40, 8],
    ]);
  });
});

describe("a bank built from the evaluated split", () => {
  it("leaves each image's own patches out of its natural-patch fill and notes the overlap", async () => {
    const o = tmp("segcause-eval-banksplit-");
    const s = await runEvaluation(
      config(o, ["zero"], { bankSplits: ["train", "test"], images: 1, protocol: { ...PROTOCOL_DEFAULTS, radius: 8, fills: ["patches"], steps: 2 } }),
      ctl(),
    );
    expect(s.computed).toBe(2);
    expect(s.notes.join("\n")).toMatch(/built from split 'test', which is also evaluated: each image's own patches are left out/);
    const cell = listCells(o)[0];
    expect(cell.metrics["del_auc:patches"]).toEqual(expect.any(Number));
    // the fill of one image draws from the other images' patches only
    const bank = await PatchBank.load(join(o, "banks", readdirSync(join(o, "banks")).find((f) => f.endsWith(".scbank"))!));
    const model = await Model.load(modelPath, { threads: 1 });
    const kase = await loadCase(model, join(dir, "img3.png"), join(dir, "img3_mask.png"));
    const [fill] = await makeFills(model, kase, ["patches"], { patchDraws: 1, blurSigma: 5, seed: 0 }, bank);
    const mine = bank.sourcesOf(kase);
    expect(mine.filter(Boolean)).toHaveLength(1);
    const own = bank.header.sources[mine.indexOf(true)];
    expect(own.sha256).toBe(kase.imageSha256);
    expect(own.patches).toBeGreaterThan(0);
    expect(fill.intervention.draws).toBe(bank.count - own.patches);
    expect(fill.intervention.notes?.join(" ")).toMatch(/img3\.png\); they were left out/);
    await model.release();
  });
});

describe("whole-run progress", () => {
  it("each finished cell logs how many of the run's cells are accounted for, with an ETA", async () => {
    const o = tmp("segcause-eval-progress-");
    const lines: string[] = [];
    await runEvaluation(config(o, ["zero", "occlusion"], { images: 2 }), ctl({ log: (l) => lines.push(l) }));
    const done = lines.filter((l) => l.includes("done:"));
    // 2 test images × 2 RoIs (boundary:8x2) × 2 methods
    expect(done).toHaveLength(8);
    expect(done[0]).toMatch(/cells 1 of about 8, ETA \d+:\d\d$/);
    expect(done[7]).toMatch(/cells 8 of about 8, ETA 0:00$/);
    const again: string[] = [];
    await runEvaluation(config(o, ["zero", "occlusion", "gradxinput"], { images: 2 }), ctl({ log: (l) => again.push(l) }));
    // a resumed run counts the cells it finds, and estimates from the ones it computes
    expect(again.filter((l) => l.includes("done:")).at(-1)).toMatch(/cells 12 of about 12, ETA 0:00$/);
  });

  it("one display in cells: the current cell and its method's stage as the label; resumed cells not in the rate", async () => {
    const o = tmp("segcause-eval-status-");
    const statuses: RunStatus[] = [];
    const lines: string[] = [];
    await runEvaluation(config(o, ["zero", "occlusion"], { images: 2 }), ctl({ onStatus: (s) => statuses.push(s), log: (l) => lines.push(l) }));
    expect(lines.some((l) => l.includes("done:"))).toBe(false); // the display shows the cells, not the log
    expect(statuses.some((s) => /^\S+ · \S+ · \S+ · occlusion: \S.* \d+%$/.test(s.label))).toBe(true);
    // rules place the RoIs image by image: until the last, 8 cells is a bound
    expect(statuses[0]).toMatchObject({ unit: "cells", exact: false, bound: 8, total: undefined });
    expect(statuses.at(-1)).toMatchObject({ unit: "cells", done: 8, total: 8, exact: true, resumed: 0, etaMs: 0 });
    const again: RunStatus[] = [];
    await runEvaluation(config(o, ["zero", "occlusion", "gradxinput"], { images: 2 }), ctl({ onStatus: (s) => again.push(s) }));
    // cells found on disk are done, but not in the rate: before the first new cell is computed there is no ETA
    expect(again[0]).toMatchObject({ done: 2, resumed: 2, etaMs: undefined });
    expect(again.at(-1)).toMatchObject({ done: 12, total: 12, resumed: 8 });
  });
});

describe("RoI files that select nothing", () => {
  it("an image id the dataset does not have, or RoIs only on images outside the evaluated split, are refused", async () => {
    const o = tmp("segcause-eval-roifile-");
    const csv = (name: string, text: string) => (writeFileSync(join(o, name), text), parseRoiSpec(join(o, name)));
    await expect(
      runEvaluation(config(join(o, "a"), ["zero"], { rois: csv("typo.csv", "image,row,col,size\nimg33,0,0,8\nimg3,0,0,8\n") }), ctl()),
    ).rejects.toThrow(/names 1 image\(s\) that are not in tiny: img33/);
    const e = await runEvaluation(config(join(o, "b"), ["zero"], { rois: csv("train.csv", "image,row,col,size\nimg0,0,0,8\n") }), ctl()).catch(
      (x) => x,
    );
    expect(e.oneLine()).toMatch(/none of the 3 images evaluated \(split 'test'\) has a RoI .*use --split train/);
    expect(existsSync(join(o, "a"))).toBe(false);
    expect(existsSync(join(o, "b"))).toBe(false);
  });

  it("a RoI outside the input (its file line counted with comments) or spanning it is refused before any cell", async () => {
    const o = tmp("segcause-eval-roioob-");
    const csv = (name: string, text: string) => (writeFileSync(join(o, name), text), parseRoiSpec(join(o, name)));
    const late = csv("late.csv", "# RoIs\nimage,row,col,size\n\nimg3,0,0,8\nimg4,28,0,8\n");
    await expect(runEvaluation(config(join(o, "a"), ["t-oracle"], { rois: late }), ctl())).rejects.toMatchObject({
      message: expect.stringMatching(/^case img4: RoI file .*late\.csv line 5 \(img4,28,0,8\) lies outside the 32x32 model input$/),
      hint: expect.stringMatching(/model-input pixels/),
    });
    expect(listCells(join(o, "a"))).toHaveLength(0);
    await expect(
      runEvaluation(config(join(o, "b"), ["t-oracle"], { rois: csv("whole.csv", "image,row,col,size\nimg3,0,0,32\n") }), ctl()),
    ).rejects.toThrow(/line 2 \(img3,0,0,32\) spans the 32x32 model input: nothing outside it/);
  });

  it("a repeated RoI, a size of 0, a folder given as --rois, and a manifest with a repeated case id or no case are refused", () => {
    const o = tmp("segcause-eval-badrois-");
    const csv = (name: string, text: string) => (writeFileSync(join(o, name), text), join(o, name));
    expect(() => parseRoiSpec(csv("dup.csv", "image,row,col,size\nimg3,0,0,8\nimg4,0,0,8\nimg3,0,0,8\n"))).toThrow(
      /line 4 repeats line 2 \(img3,0,0,8\)/,
    );
    expect(() => parseRoiSpec(csv("zero.csv", "image,row,col,size\nimg3,0,0,0\n"))).toThrow(/line 2: size must be at least 1, got 0/);
    expect(() => parseRoiSpec(csv("hex.csv", "image,row,col,size\nimg3,0x10,0,8\n"))).toThrow(/line 2: row, col and size must be integers/);
    expect(() => parseRoiSpec(o)).toThrow(/is a folder, not a RoI rule or a \.csv RoI file/);
    const man = (name: string, cases: unknown[]) => (writeFileSync(join(o, name), JSON.stringify({ name: "m", cases })), join(o, name));
    const c = { id: "a", image: "a.png", split: "test" };
    expect(() => readManifest(man("dup.json", [c, { ...c, image: "b.png" }]))).toThrow(/lists case id 'a' twice/);
    expect(() => readManifest(man("none.json", []))).toThrow(/lists no cases/);
    const mask = new Uint8Array(32 * 32).fill(1, 0, 512);
    expect(() => selectRois(parseRoiSpec("boundary:8", 500), "img", mask, 32, 32, 0)).toThrow(
      /--roi-align 500 is not smaller than the 32x32 model input/,
    );
    expect(() => selectRois(parseRoiSpec("inside:32"), "img", mask, 32, 32, 0)).toThrow(/RoI size 32 spans the 32x32 model input/);
  });
});

describe("faithfulness benchmark on a model with a known causal region", () => {
  let out: string;
  beforeAll(async () => {
    out = tmp("segcause-eval-run-");
    const s = await runEvaluation(config(out, ["t-oracle", "t-anti", "t-random", "zero", "occlusion", "pdcr"]), ctl());
    expect(s.computed).toBe(3 * 2 * 6);
  });

  it("the causal ground truth gives the steepest deletion curve and the best insertion curve, for every fill", () => {
    const cells = listCells(out);
    const by = (m: string, k: string) => mean(cells.filter((c) => c.method === m).map((c) => c.metrics[k]));
    for (const fill of ["patches", "blur", "zero", "mean"]) {
      // the oracle's deletion AUC is below the random map's and the anti-oracle's; the reverse for insertion
      expect(by("t-oracle", `del_auc:${fill}`), fill).toBeLessThan(by("t-random", `del_auc:${fill}`));
      expect(by("t-random", `del_auc:${fill}`), fill).toBeLessThan(by("t-anti", `del_auc:${fill}`) + 1e-9);
      // insertion: with black the oracle restores the RoI first; a blurred C is barely below the threshold,
      // so any restored pixels bring the RoI back (a tie is all that can be asked there)
      if (fill === "zero") expect(by("t-oracle", `ins_auc:${fill}`), fill).toBeGreaterThan(by("t-random", `ins_auc:${fill}`));
      expect(by("t-oracle", `ins_auc:${fill}`), fill).toBeGreaterThanOrEqual(by("t-random", `ins_auc:${fill}`) - 1e-9);
      expect(by("t-anti", `ins_auc:${fill}`), fill).toBeLessThanOrEqual(by("t-random", `ins_auc:${fill}`) + 1e-9);
    }
    // with black, the oracle's first step (48 px of C) already flips the RoI: Dice 100 → 0
    for (const c of cells.filter((x) => x.method === "t-oracle")) {
      expect(c.fills.zero!.curves.deletion[0]).toBeCloseTo(100, 6);
      expect(c.fills.zero!.curves.deletion[1]).toBeCloseTo(0, 6);
      expect(c.fills.zero!.curves.deletionAucNorm).toBeCloseTo(0.025, 6);
      expect(c.metrics.outside_causal).toBe(0);
      expect(c.metrics["top1:zero"]).toBeCloseTo(0, 6); // 1% of the mass = 3 px of C: not enough to flip
      expect(c.metrics["top20:zero"]).toBeCloseTo(-100, 6); // 52 px of C: flips
    }
    // the zero-ablation method finds C too, so it is as faithful as the oracle under its own fill,
    // and PdCR (natural patches from the train images' bank, built on the fly) under the patch fill
    expect(by("zero", "del_auc:zero")).toBeLessThanOrEqual(by("t-oracle", "del_auc:zero") + 1e-9);
    expect(by("pdcr", "del_auc:patches")).toBeLessThanOrEqual(by("t-oracle", "del_auc:patches") + 1e-9);
    expect(by("pdcr", "outside_causal")).toBe(0);
    expect(by("t-random", "outside_causal")).toBeGreaterThan(0.6);
    expect(by("t-anti", "outside_causal")).toBe(1);
  });

  it("a perfect attribution is favoured over a random one in the paired tests, with images as the unit, and the random control sits near 0.5", () => {
    const s = summarize(listCells(out), listControls(out));
    const pair = s.pairs.find(
      (p) => p.scope === "all" && p.metric === "del_norm:zero" && [p.a, p.b].includes("t-oracle") && [p.a, p.b].includes("t-random"),
    )!;
    // 6 cells = 3 images × 2 RoIs: the two RoIs of an image are averaged, so the test has n = 3
    expect(pair.cells).toBe(6);
    expect(pair.n).toBe(3);
    expect(pair.better).toBe("t-oracle");
    expect(pair.wPlus === 0 || pair.wPlus === 6).toBe(true); // all 3 image differences favour the oracle
    expect(Math.abs(pair.rankBiserial!)).toBe(1);
    // the 3 image differences are tied (the oracle's curve is the same on every image), so scipy's rule
    // takes the normal approximation: var = 3·4·7/24 − (3³ − 3)/48 = 3, z = −3/√3, p = 2Φ(−√3)
    expect(pair.test).toBe("normal");
    expect(pair.p).toBeCloseTo(2 * normalSf(Math.sqrt(3)), 12);
    expect(pair.pHolm!).toBeGreaterThanOrEqual(pair.p);
    expect(holmSignificant(pair)).toBe(false); // 3 images cannot show it at 5%, and the report says so
    // the mean difference's interval lies on the oracle's side (every image favours it)
    const sign = pair.a === "t-oracle" ? -1 : 1;
    expect(sign * pair.ciLow!).toBeGreaterThan(0);
    const oracleRank = s.ranks!.find((r) => r.scope === "all" && r.metric === "del_norm:zero" && r.method === "t-oracle")!;
    expect(oracleRank.images).toBe(3);
    expect(oracleRank.rank).toBeLessThanOrEqual(oracleRank.high);
    const rnd = s.stats.find((r) => r.scope === "all" && r.method === "random" && r.metric === "del_norm:zero")!;
    expect(rnd.mean).toBeGreaterThan(0.05);
    expect(rnd.mean).toBeLessThan(0.5);
    expect(s.stats.find((r) => r.scope === "all" && r.method === "t-oracle" && r.metric === "del_norm:zero")!.mean).toBeLessThan(rnd.mean);
  });

  it("winners: methods tied with the top mean share the place", () => {
    const row = (method: string, mean: number): StatRow => ({
      scope: "model",
      dataset: "d",
      model: "m",
      method,
      metric: "del_norm:zero",
      mean,
      sd: 0,
      n: 3,
    });
    const s: Summary = {
      format: "segcause.evalsummary/1",
      cells: 9,
      controls: 0,
      skippedRois: 0,
      methods: ["a", "b", "c"],
      models: [{ dataset: "d", model: "m" }],
      stats: [row("a", 0.4), row("b", 0.2), row("c", 0.2)],
      pairs: [],
    };
    expect(winners(s, "del_norm:zero")[0]).toMatchObject({ best: "b = c", mean: 0.2 });
  });

  it("writes tables, plots and a self-contained HTML report", async () => {
    const r = await writeEvaluationReport(out);
    for (const f of [
      "cells.jsonl",
      "cells.csv",
      "summary.json",
      "summary.csv",
      "pairs.csv",
      "report.html",
      "plots/curves-tiny-zero.png",
      "plots/auc-tiny-patches.png",
    ])
      expect(r.files).toContain(f);
    const html = readFileSync(join(out, "report.html"), "utf8");
    expect(html).toContain("data:image/png;base64,");
    expect(html).not.toMatch(/<script|https?:\/\//);
    expect(readFileSync(join(out, "cells.jsonl"), "utf8").trim().split("\n")).toHaveLength(36);
    const map = readFileSync(join(cellDir(out, { dataset: "tiny", model: "causal", image: "img3", roi: "boundary8-0" }, "t-oracle"), "map.npy"));
    expect(map.length).toBe(128 + S * S * 4);
  });

  it("skips RoIs whose Dice is undefined (no structure inside) with the reason", async () => {
    const o = tmp("segcause-eval-skip-");
    const csvPath = join(o, "rois.csv");
    writeFileSync(csvPath, "image,row,col,size\nimg3,8,24,8\n"); // right half: no structure in the ground truth
    const s = await runEvaluation(config(o, ["t-oracle"], { rois: parseRoiSpec(csvPath), images: 1 }), ctl());
    expect(s.skipped).toBe(1);
    expect(s.notes.join(" ")).toMatch(/empty inside the RoI/);
    expect(summarize(listCells(o), listControls(o)).skippedRois).toBe(1);
  });

  it("an empty ground truth skips that image's RoIs; a missing image or a bad mask stops the run before any cell", async () => {
    const d = tmp("segcause-eval-badcase-");
    const cases = [];
    for (let i = 0; i < 3; i++) {
      await writeImage(d, `c${i}.png`, (y, x) => texture(y, x, i));
      await writeMask(d, `c${i}_mask.png`, (_y, x) => i !== 1 && x < 16); // c1: empty
      cases.push({ id: `c${i}`, image: `c${i}.png`, mask: `c${i}_mask.png`, split: "test" });
    }
    const m = (cs: unknown[]) => {
      const f = join(d, `m${Math.random().toString(36).slice(2)}.json`);
      writeFileSync(f, JSON.stringify({ name: "bad", cases: cs }));
      return f;
    };
    const rois = parseRoiSpec("inside:8");
    const protocol = { ...PROTOCOL_DEFAULTS, radius: 8, fills: ["zero" as const], steps: 2 };
    const o = tmp("segcause-eval-empty-");
    const s = await runEvaluation(config(o, ["t-oracle"], { dataset: m(cases), rois, protocol }), ctl());
    expect(s.computed).toBe(2); // c0 and c2; c1 has no structure to place an inside RoI on
    expect(s.notes.join(" ")).toMatch(/c1 at 32x32: mask .*c1_mask\.png is empty \(no foreground pixel\)/);
    // an outside RoI can be placed on c1, but Dice against an empty structure is undefined: skipped with the reason
    const oo = tmp("segcause-eval-empty-out-");
    const so = await runEvaluation(config(oo, ["t-oracle"], { dataset: m(cases), rois: parseRoiSpec("outside:8"), protocol }), ctl());
    expect(so.skipped).toBe(3); // outside RoIs hold no ground-truth structure on any image; c1 is skipped, not an error
    expect(so.notes.join(" ")).toMatch(/c1 outside8-0: skipped \(.*empty/);
    // a label-map mask (three values) stops the run before any cell, naming the case
    const labels = join(d, "labels.png");
    await sharp(
      Uint8Array.from({ length: 32 * 32 }, (_, p) => [0, 1, 2][p % 3]),
      { raw: { width: 32, height: 32, channels: 1 } },
    )
      .png()
      .toFile(labels);
    const o3 = tmp("segcause-eval-labels-");
    await expect(
      runEvaluation(
        config(o3, ["t-oracle"], { dataset: m([...cases, { id: "lab", image: "c0.png", mask: "labels.png", split: "test" }]), rois, protocol }),
        ctl(),
      ),
    ).rejects.toThrow(/^case lab: /);
    expect(listCells(o3)).toHaveLength(0);
    // a missing image third in line: refused before the first cell, naming the case; nothing recorded
    let recorded = 0;
    const o2 = tmp("segcause-eval-missing-");
    const missing = [...cases.slice(0, 2), { id: "gone", image: "gone.png", mask: "c0_mask.png", split: "test" }];
    await expect(
      runEvaluation(config(o2, ["t-oracle"], { dataset: m(missing), rois, protocol }), ctl({ onValidated: async () => void recorded++ })),
    ).rejects.toThrow(/^case gone: cannot read image/);
    expect(listCells(o2)).toHaveLength(0);
    expect(recorded).toBe(0);
  });

  it("settings that cannot work on a model stop the run before any cell (not one refusal per cell)", async () => {
    const o = tmp("segcause-eval-check-");
    const run = (name: string, options: Record<string, unknown>) => runEvaluation({ ...config(o, []), methods: [{ name, options }] }, ctl());
    await expect(run("zero", { block: 1000 })).rejects.toThrow(/^--set zero\.block=1000: the block does not fit the 32x32 input/);
    await expect(run("pdcr", { block: 16 })).rejects.toMatchObject({
      message: "--set pdcr.block=16 does not match the bank's 8x8 patches",
      hint: "make a bank of 16 px patches, or use --set pdcr.block=8",
    });
    await expect(run("occlusion", { block: 8, stride: 16 })).rejects.toThrow(/--set occlusion\.stride=16 is larger than the block/);
    await expect(run("gradcam", { layer: "nope" })).rejects.toThrow(/Grad-CAM/);
    expect(listCells(o)).toHaveLength(0);
  });

  it("refuses two models with the same file name (they would share cells)", async () => {
    const d2 = tmp("segcause-eval-samefile-");
    mkdirSync(join(d2, "a"));
    const copy = join(d2, "a", basename(modelPath));
    copyFileSync(modelPath, copy);
    await expect(runEvaluation(config(tmp("segcause-eval-samefile-out-"), ["t-oracle"], { models: [modelPath, copy] }), ctl())).rejects.toThrow(
      /have the same file name 'causal\.onnx'/,
    );
  });
});

describe("a run where no cell's outcome range reaches --min-range", () => {
  it("writes no empty curve or AUC plot, and says why in the report and its notes", async () => {
    const out = tmp("segcause-eval-minrange-");
    const s = await runEvaluation(
      config(out, ["zero"], { protocol: { ...PROTOCOL_DEFAULTS, radius: 8, rankUnits: { kind: "pixel" }, minRange: 1000 } }),
      ctl(),
    );
    expect(s.computed).toBe(6);
    const r = await writeEvaluationReport(out);
    expect(r.files.filter((f) => /^plots\/(curves|auc)-/.test(f))).toEqual([]);
    const fills = [...new Set(r.summary.stats.map((x) => x.metric.split(":")[1]).filter(Boolean))];
    expect(fills.length).toBeGreaterThan(0);
    expect(r.notes).toHaveLength(fills.length);
    for (const n of r.notes) expect(n).toMatch(/^tiny, fill \S+: no curve or AUC plot, since no cell's m\(X\) − m\(removed\) reaches --min-range /);
    const html = readFileSync(join(out, "report.html"), "utf8");
    expect(html).toContain("note: tiny, fill ");
  });
});

describe("resumption and determinism", () => {
  const methods = ["t-oracle", "t-random", "zero"];
  const strip = (out: string) => {
    const s = summarize(listCells(out), listControls(out));
    return JSON.stringify({ ...s, stats: s.stats.filter((r) => r.metric !== "wall_s") });
  };

  it("a killed run resumes without recomputing finished cells and ends with the same numbers", async () => {
    const two = { models: [modelPath, modelPath2] };
    const config2 = (out: string, m: string[]) => config(out, m, two);
    const full = tmp("segcause-eval-full-");
    await runEvaluation(config2(full, methods), ctl());
    expect(listCells(full)).toHaveLength(36);

    const part = tmp("segcause-eval-part-");
    // 1. a run limited to 4 cells
    const first = await runEvaluation(config2(part, methods), ctl({ maxCells: 4 }));
    expect(first).toMatchObject({ computed: 4, stoppedEarly: true });
    const finished = listCells(part);
    expect(finished).toHaveLength(4);
    const mtimes = new Map(finished.map((c) => [cellDir(part, c.id, c.method), statSync(join(cellDir(part, c.id, c.method), "cell.json")).mtimeMs]));
    // partial results are readable
    expect((await writeEvaluationReport(part)).summary.cells).toBe(4);
    // 2. a run that dies inside a method (its cell folder is left without cell.json)
    calls["t-random"] = 0;
    failOn = { method: "t-random", call: 2 };
    await expect(runEvaluation(config2(part, methods), ctl())).rejects.toThrow(/injected failure/);
    failOn = undefined;
    const afterCrash = listCells(part).length;
    expect(afterCrash).toBeGreaterThan(4);
    // 3. the rerun computes only the missing cells
    const seen: string[] = [];
    const last = await runEvaluation(config2(part, methods), ctl({ beforeCell: (id, m) => seen.push(`${id.image}/${id.roi}/${m}`) }));
    expect(last.computed).toBe(36 - afterCrash);
    expect(last.resumed).toBe(afterCrash);
    expect(seen).toHaveLength(36 - afterCrash);
    for (const [d, t] of mtimes) expect(statSync(join(d, "cell.json")).mtimeMs).toBe(t);
    expect(listCells(part)).toHaveLength(36);
    // 4. same final numbers as the uninterrupted run (wall times aside)
    expect(strip(part)).toBe(strip(full));
    // a further rerun is a no-op
    expect((await runEvaluation(config2(part, methods), ctl())).computed).toBe(0);
  });

  it("is deterministic for a seed and changes with the seed", async () => {
    const a = tmp("segcause-eval-a-"),
      b = tmp("segcause-eval-b-"),
      c = tmp("segcause-eval-c-");
    await runEvaluation(config(a, ["t-random"]), ctl());
    await runEvaluation(config(b, ["t-random"]), ctl());
    await runEvaluation(config(c, ["t-random"], { seed: 5 }), ctl());
    expect(strip(a)).toBe(strip(b));
    expect(strip(a)).not.toBe(strip(c));
    expect(existsSync(join(a, "controls"))).toBe(true);
  });

  it("records a cell its method refuses (a one-line error), reports it and does not retry it", async () => {
    const o = tmp("segcause-eval-refuse-");
    const first = await runEvaluation(config(o, ["t-refuse", "t-oracle"], { images: 1 }), ctl());
    expect(first).toMatchObject({ computed: 2, failed: 2 });
    expect(first.notes.join(" ")).toMatch(/t-refuse cannot explain this model/);
    const n = calls["t-refuse"];
    const again = await runEvaluation(config(o, ["t-refuse", "t-oracle"], { images: 1 }), ctl());
    expect(again).toMatchObject({ computed: 0, resumed: 2, failed: 2 });
    expect(calls["t-refuse"]).toBe(n);
    await writeEvaluationReport(o);
    expect(readFileSync(join(o, "report.md"), "utf8")).toMatch(/Cells a method refused[\s\S]*t-refuse: t-refuse cannot explain this model/);
  });

  it("refuses to mix cells computed with different settings in one folder", async () => {
    const o = tmp("segcause-eval-mix-");
    await runEvaluation(config(o, ["t-oracle"], { images: 1 }), ctl());
    let recorded = 0;
    await expect(
      runEvaluation(
        config(o, ["t-oracle"], { images: 1, protocol: { ...PROTOCOL_DEFAULTS, radius: 8, steps: 10 } }),
        ctl({ onValidated: async () => void recorded++ }),
      ),
    ).rejects.toThrow(/different settings \(.*another protocol setting \(e\.g\. --steps/);
    expect(recorded).toBe(0); // the refused rerun is not recorded as a command that wrote into the folder
    // the refusal names what it can see changed: a method option, the seed
    const z = tmp("segcause-eval-mix-opt-");
    await runEvaluation({ ...config(z, []), images: 1, methods: [{ name: "zero", options: { block: 8 } }] }, ctl());
    await expect(runEvaluation({ ...config(z, []), images: 1, methods: [{ name: "zero", options: { block: 4 } }] }, ctl())).rejects.toThrow(
      /different settings \(--set zero\.block: 8 then, 4 now\)/,
    );
    await expect(runEvaluation({ ...config(z, []), images: 1, seed: 3, methods: [{ name: "zero", options: { block: 8 } }] }, ctl())).rejects.toThrow(
      /--seed: 0 then, 3 now/,
    );
  });

  it("refuses another dataset under the same name in one folder (its cells would pool with the first's)", async () => {
    const o = tmp("segcause-eval-samename-");
    const protocol = { ...PROTOCOL_DEFAULTS, radius: 8, fills: ["patches" as const], steps: 2 };
    await runEvaluation(config(o, ["t-oracle"], { images: 1, protocol }), ctl());
    const other = tmp("segcause-eval-other-");
    const cases = [];
    for (let i = 0; i < 4; i++) {
      await writeImage(other, `x${i}.png`, (y, x) => texture(y, x, i + 20));
      await writeMask(other, `x${i}_mask.png`, (_y, x) => x < 16);
      cases.push({ id: `x${i}`, image: `x${i}.png`, mask: `x${i}_mask.png`, split: i < 2 ? "train" : "test" });
    }
    writeFileSync(join(other, "manifest.json"), JSON.stringify({ name: "tiny", cases }));
    await expect(runEvaluation(config(o, ["t-oracle"], { dataset: join(other, "manifest.json"), images: 1, protocol }), ctl())).rejects.toThrow(
      /was evaluated on another dataset named 'tiny'/,
    );
    // the same dataset again resumes
    expect((await runEvaluation(config(o, ["t-oracle"], { images: 1, protocol }), ctl())).computed).toBe(0);
  });
});

describe("stability", () => {
  it("Spearman of the map under input noise and a second seed", async () => {
    const o = tmp("segcause-eval-stab-");
    await runEvaluation(config(o, ["t-oracle", "t-random"], { images: 1, protocol: { ...PROTOCOL_DEFAULTS, radius: 8, stability: true } }), ctl());
    const cells = listCells(o);
    const get = (m: string, k: string) => cells.find((c) => c.method === m)!.metrics[k];
    expect(get("t-oracle", "stab_noise")).toBeCloseTo(1, 12);
    expect(get("t-oracle", "stab_seed")).toBeCloseTo(1, 12);
    expect(get("t-random", "stab_noise")).toBeCloseTo(1, 12); // its map ignores the image
    expect(Math.abs(get("t-random", "stab_seed")!)).toBeLessThan(0.2); // but not the seed
  });
});

describe("command line", () => {
  const run = (args: string[]) => segcause(...args);

  it("evaluate runs, resumes, and strategies reads its cells", () => {
    const out = tmp("segcause-eval-cli-");
    const args = [
      "evaluate",
      "--models",
      modelPath,
      "--dataset",
      dir,
      "--images",
      "1",
      "--methods",
      "zero,occlusion",
      "--set",
      "occlusion.stride=4",
      "--set",
      "occlusion.block=8",
      "--rois",
      "boundary:8",
      "--steps",
      "5",
      "--fills",
      "zero,mean",
      "--radius",
      "8",
      "--threads",
      "1",
      "--out",
      out,
      "--no-progress",
    ];
    const a = run(args);
    expect(a.stderr).toBe("");
    expect(a.code).toBe(0);
    expect(a.stdout).toMatch(/^2 cells computed, 0 already finished, 0 skipped/);
    expect(existsSync(join(out, "report.html"))).toBe(true);
    const cell = JSON.parse(
      readFileSync(join(cellDir(out, { dataset: "tiny", model: "causal", image: "img3", roi: "boundary8-0" }, "occlusion"), "cell.json"), "utf8"),
    );
    expect(cell.options).toMatchObject({ stride: 4, block: 8 });
    expect(cell.fills.zero.curves.deletion).toHaveLength(6);
    const b = run(args);
    expect(b.stdout).toMatch(/^0 cells computed, 2 already finished/);
    expect(JSON.parse(readFileSync(join(out, "run.json"), "utf8")).commands).toHaveLength(1);
    // A second command with other method options into the same folder: the report keeps both settings.
    const c = run([
      ...args.slice(0, args.indexOf("--methods")),
      "--methods",
      "rise",
      "--set",
      "rise.masks=20",
      ...args.slice(args.indexOf("--rois")),
    ]);
    expect(c.code).toBe(0);
    expect(c.stdout).toMatch(/^1 cells computed/);
    const html = readFileSync(join(out, "report.html"), "utf8");
    expect(html).toContain("settings 1 of 2");
    expect(html).toMatch(/settings 2 of 2[\s\S]*rise \{(&quot;|")masks(&quot;|"):20\}/);
    expect(html).toMatch(/occlusion \{(&quot;|")stride(&quot;|"):4/);
    const s = run(["strategies", "--maps", out, "--out", join(out, "strategies")]);
    expect(s.code).toBe(0);
    expect(s.stdout).toMatch(/^3 maps: /);
    // --json: one JSON document on stdout, nothing else there
    const j = run([...args, "--json"]);
    expect(j.code, j.stderr).toBe(0);
    expect(JSON.parse(j.stdout)).toMatchObject({ format: "segcause.evaluate-summary/1", run: { computed: 0, resumed: 2 }, cells: 3 });
    expect(JSON.parse(j.stdout).files).toContain("report.html");
  });

  it("rejects options a method does not declare", () => {
    const r = run(["evaluate", "--models", modelPath, "--dataset", dir, "--methods", "zero", "--set", "zero.samples=3", "--out", tmp()]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/zero has no option 'samples'/);
    const r2 = run(["evaluate", "--models", modelPath, "--dataset", dir, "--methods", "zero", "--set", "pdcr.samples=3", "--out", tmp()]);
    expect(r2.stderr).toMatch(/method pdcr is not in --methods/);
  });
});
