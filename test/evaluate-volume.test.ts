import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it, vi } from "vitest";
import "../src/explain/catalog.js";
import { readDicomVolume } from "../src/data/volume/dicom/index.js";
import { writeNifti } from "../src/data/volume/nifti-write.js";
import { runEvaluation } from "../src/evaluate/benchmark.js";
import { type EvaluateConfig, PROTOCOL_DEFAULTS } from "../src/evaluate/protocol.js";
import { blockLabels, gridLabels } from "../src/evaluate/rank-units.js";
import { writeEvaluationReport } from "../src/evaluate/report.js";
import { cellDir, controlPath } from "../src/evaluate/store.js";
import { blurVolume } from "../src/explain/volume/blur.js";
import { type ChangedBox, VolumeForward } from "../src/explain/volume/windows.js";
import type { BatchRunner } from "../src/model/batches.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import { AFFINE, CARD, causalBoxVolume, inCausal, N, ROI, writeCausalFixture } from "./helpers/causal3d.js";
import { segcause } from "./helpers/cli.js";
import { regionMeanModel, tmp, writeModel } from "./helpers/tiny.js";

// The known-answer 3D fixture (helpers/causal3d.ts): on a 16³ volume, every voxel is foreground iff
// the mean of the causal box (z 0..7, y 0..7, x 8..15) is high. The RoI is the label map's structure,
// the box z 8..15, y 8..15, x 0..7. Rank units of 4 voxels: 64 boxes, 8 in the RoI, 8 in the causal box.
let dir: string;
let model: string;
let manifest: string;
const inRoi = (i: number, j: number, k: number) => k >= ROI.z && j >= ROI.y && i < ROI.x + ROI.width;
/** the causal box as cells of the model's box (the volume fills it: centre placement, offset 0) */
const causalCells = Uint8Array.from({ length: N ** 3 }, (_, c) => (inCausal(c % N, Math.floor(c / N) % N, Math.floor(c / N ** 2)) ? 1 : 0));

function config(out: string, over: Partial<EvaluateConfig> = {}): EvaluateConfig {
  return {
    models: [model],
    dataset: manifest,
    split: "test",
    methods: [
      { name: "zero", options: {} },
      { name: "pdcr", options: { schedule: "paper", screen: 1, samples: 2, tau: 0 } },
    ],
    rois: { rules: [] },
    bankSplits: ["train"],
    bankPatchSize: 8,
    out,
    seed: 0,
    protocol: {
      ...PROTOCOL_DEFAULTS,
      steps: 7,
      rankUnits: { kind: "block", size: 4 },
      fills: ["zero", "mean", "patches"],
      topk: [0.1],
      topArea: [0.14],
    },
    volume: { boxUnit: "vox" },
    ...over,
  } as EvaluateConfig;
}

/** Dice points as sums of floats: compared to 1e-6 */
const round = (xs: number[]) => xs.map((v) => Math.round(v * 1e6) / 1e6 + 0);
const readCell = (out: string, image: string, method: string) =>
  JSON.parse(readFileSync(join(cellDir(out, { dataset: "tiny3d", model: "causal3d", image, roi: "label-1" }, method), "cell.json"), "utf8"));
const readControl = (out: string, image: string) =>
  JSON.parse(readFileSync(controlPath(out, { dataset: "tiny3d", model: "causal3d", image, roi: "label-1" }), "utf8"));

beforeAll(async () => {
  dir = tmp("evalvol");
  const f = await writeCausalFixture(dir);
  model = f.model;
  // two test volumes (the second with another background) and the RoI's label map
  const labels = Float32Array.from({ length: N ** 3 }, (_, c) => (inRoi(c % N, Math.floor(c / N) % N, Math.floor(c / N ** 2)) ? 1 : 0));
  await writeNifti(join(dir, "labels.nii.gz"), { dims: [N, N, N], affine: AFFINE, data: labels });
  await writeNifti(join(dir, "case2.nii.gz"), { dims: [N, N, N], affine: AFFINE, data: causalBoxVolume().map((v) => (v === 1 ? 1.2 : v)) });
  const m = JSON.parse(readFileSync(f.manifest, "utf8"));
  m.cases.push({ id: "case", image: "case.nii.gz", mask: "labels.nii.gz", split: "test" });
  m.cases.push({ id: "case2", image: "case2.nii.gz", mask: "labels.nii.gz", split: "test" });
  writeFileSync(f.manifest, JSON.stringify(m));
  manifest = f.manifest;
});

describe("evaluate on a volume data set (known answer)", () => {
  it("the 3D blur: constants stay, an impulse spreads symmetrically with sigma in mm", () => {
    const dims: [number, number, number] = [9, 9, 9];
    expect([...new Set(blurVolume(new Float32Array(729).fill(2), dims, [1, 1, 1], 2))].map((v) => +v.toFixed(5))).toEqual([2]);
    const impulse = new Float32Array(729);
    impulse[(4 * 9 + 4) * 9 + 4] = 1;
    const b = blurVolume(impulse, dims, [1, 1, 2], 1);
    expect(b.reduce((a, v) => a + v, 0)).toBeCloseTo(1, 5);
    const at = (i: number, j: number, k: number) => b[(k * 9 + j) * 9 + i];
    expect(at(3, 4, 4)).toBeCloseTo(at(5, 4, 4), 7);
    expect(at(4, 3, 4)).toBeCloseTo(at(3, 4, 4), 7);
    // k voxels are 2 mm: one voxel along k is as far as two along i
    expect(at(4, 4, 5)).toBeCloseTo(at(2, 4, 4), 3);
  });

  it("rank-unit grids: 2D blocks as before, 3D boxes from the volume's corner", () => {
    const [H, W, s] = [37, 29, 8];
    const old = Uint32Array.from({ length: H * W }, (_, p) => Math.floor(Math.floor(p / W) / s) * Math.ceil(W / s) + Math.floor((p % W) / s));
    expect(blockLabels(H, W, s)).toEqual(old);
    // a 3x4x5 grid of boxes 2x2x2 from origin (1, 0, 1): cell (z, y, x) → ((z-1)/2, y/2, (x-1)/2)
    const g = gridLabels([3, 4, 5], [2, 2, 2], [1, 0, 1]);
    const at = (z: number, y: number, x: number) => g[(z * 4 + y) * 5 + x];
    expect(at(1, 0, 1)).toBe(0);
    expect(at(2, 1, 2)).toBe(0);
    expect(at(1, 2, 1)).toBe(2); // y box 1 of 2, x box 0 of 2
    expect(at(2, 3, 4)).toBe(3);
    expect(at(0, 0, 0)).toBe(0); // padding before the origin joins the first box
  });

  it("the method that finds the causal box beats the random order; curves, controls and records as expected", async () => {
    const out = join(dir, "run");
    const s = await runEvaluation(config(out), { causalMask: () => causalCells });
    expect(s).toMatchObject({ computed: 4, resumed: 0, skipped: 0, failed: 0 });
    for (const image of ["case", "case2"]) {
      const control = readControl(out, image);
      expect(control.roiBox).toEqual([8, 8, 0, 15, 15, 7]);
      for (const fill of ["zero", "mean", "patches"]) {
        // removing the whole domain (the causal box with it) makes every voxel background
        expect(round([control.fills[fill].ends.base, control.fills[fill].ends.removed])).toEqual([100, 0]);
        for (const method of ["zero", "pdcr"]) {
          const c = readCell(out, image, method);
          const r = c.fills[fill];
          // step 1 removes 8 of the 56 boxes: the causal box's, ranked first; inserting them first restores the RoI
          expect(round(r.curves.deletion)).toEqual([100, 0, 0, 0, 0, 0, 0, 0]);
          expect(round(r.curves.insertion)).toEqual([0, 100, 100, 100, 100, 100, 100, 100]);
          expect(c.metrics[`del_auc:${fill}`]).toBeLessThan(control.fills[fill].curves.deletionAuc);
          expect(c.metrics[`ins_auc:${fill}`]).toBeGreaterThan(control.fills[fill].curves.insertionAuc);
          // the area-matched top 14% of the domain (8 of 56 boxes) is the causal box
          expect(c.metrics[`toparea14:${fill}`]).toBeCloseTo(-100, 6);
        }
      }
      const zero = readCell(out, image, "zero");
      expect(zero.metrics.outside_causal).toBe(0);
      expect(zero.roiKind).toBe("label");
      // the map is written on the input volume's grid, (k, j, i)
      const npy = readFileSync(join(cellDir(out, { dataset: "tiny3d", model: "causal3d", image, roi: "label-1" }, "zero"), "map.npy"));
      expect(npy.toString("latin1", 0, 80)).toContain("'shape': (16, 16, 16)");
    }
    // the natural-patch fill's and PdCR's volume bank, built as `bank build` does, cached in out/banks
    expect(readdirSync(join(out, "banks")).filter((n) => n.endsWith(".scvbank"))).toHaveLength(1);
    const r = await writeEvaluationReport(out);
    expect(r.summary.cells).toBeGreaterThan(0);
    const csv = readFileSync(join(out, "cells.csv"), "utf8");
    expect(csv).toContain("label-1");
    expect(existsSync(join(out, "report.html"))).toBe(true);
    expect(existsSync(join(out, "plots", "curves-tiny3d-zero.png"))).toBe(true);
  });

  it("voxel maps (saliency, RISE) are ranked on the same boxes: the gradient finds the causal box", async () => {
    const out = join(dir, "voxel");
    const methods = [
      { name: "saliency", options: {} },
      { name: "rise", options: { masks: 16, cells: 2 } },
    ];
    const s = await runEvaluation(config(out, { methods, protocol: { ...config(out).protocol, fills: ["zero", "blur"] } }), {
      causalMask: () => causalCells,
    });
    expect(s).toMatchObject({ computed: 4, failed: 0 });
    for (const image of ["case", "case2"]) {
      const saliency = readCell(out, image, "saliency");
      expect(saliency.signed).toBe(false);
      expect(round(saliency.fills.zero.curves.deletion)).toEqual([100, 0, 0, 0, 0, 0, 0, 0]);
      expect(saliency.metrics.outside_causal).toBe(0);
      expect(readCell(out, image, "rise").metrics.forward).toBeGreaterThan(0);
      // the blur fill: the same end point m(X), and the curves' steps
      expect(saliency.fills.blur.curves.deletion[0]).toBeCloseTo(100, 6);
      expect(saliency.fills.blur.curves.insertion).toHaveLength(8);
    }
  });

  it("resumes without recomputing cells, and a stopped run ends with the uninterrupted run's numbers", async () => {
    const out = join(dir, "resume");
    const first = await runEvaluation(config(out), {});
    expect(first.computed).toBe(4);
    const zeroCell = join(cellDir(out, { dataset: "tiny3d", model: "causal3d", image: "case", roi: "label-1" }, "zero"), "cell.json");
    const mtime = statSync(zeroCell).mtimeMs;
    const again = await runEvaluation(config(out), {});
    expect(again).toMatchObject({ computed: 0, resumed: 4 });
    expect(statSync(zeroCell).mtimeMs).toBe(mtime);

    const stopped = join(dir, "stopped");
    expect((await runEvaluation(config(stopped), { maxCells: 1 })).stoppedEarly).toBe(true);
    const rest = await runEvaluation(config(stopped), {});
    expect(rest).toMatchObject({ computed: 3, resumed: 1 });
    for (const image of ["case", "case2"])
      for (const method of ["zero", "pdcr"])
        expect(readCell(stopped, image, method).metrics).toMatchObject({ ...readCell(out, image, method).metrics, wall_s: expect.any(Number) });

    // a case whose label map holds no structure is skipped with the reason, as an empty 2D mask
    const m = JSON.parse(readFileSync(manifest, "utf8"));
    await writeNifti(join(dir, "empty.nii.gz"), { dims: [N, N, N], affine: AFFINE, data: new Float32Array(N ** 3) });
    m.cases.push({ id: "case3", image: "case.nii.gz", mask: "empty.nii.gz", split: "test" });
    const withEmpty = join(dir, "with-empty.json");
    writeFileSync(withEmpty, JSON.stringify(m));
    const more = await runEvaluation(config(out, { dataset: withEmpty }), {});
    expect(more).toMatchObject({ computed: 0, resumed: 4, skipped: 2 });
    expect(more.notes.join("\n")).toMatch(/case3: its label map empty.nii.gz holds no labelled voxel/);

    // other settings (rank units in mm instead of voxels) are refused in the same folder
    await expect(runEvaluation(config(out, { volume: { boxUnit: "mm" } }), {})).rejects.toThrow(/different settings/);
  });
});

// Sliding windows (as test/volume-windows.test.ts): 8³ windows over a 24x16x16 volume, a model whose
// logit at v is 10·x(v + one voxel along W), the RoI z,y,x 4..7, 4..7, 8..11 bright. Only the RoI's
// column x = 11 reads outside the RoI (x = 12): the rank unit z 4, y 4, x 12 (4 voxels) is the causal box.
describe("evaluate on a volume seen in sliding windows", () => {
  it("the curves run only the windows the changed voxels touch, and find the causal box first", async () => {
    const d = join(dir, "sliding");
    mkdirSync(d, { recursive: true });
    const g = new GraphBuilder("shift-3d");
    const x = g.input("image", ["N", 1, "D", "H", "W"]);
    const w = new Float32Array(27);
    w[(1 * 3 + 1) * 3 + 2] = 10;
    const conv = g.node("Conv", [x, g.constant([1, 1, 3, 3, 3], w), g.constant([1], [0])], { kernel_shape: [3, 3, 3], pads: [1, 1, 1, 1, 1, 1] });
    g.output(g.node("Identity", [conv], {}, ["mask"]), ["N", 1, "D", "H", "W"]);
    const input = { ...CARD.input, depth: 8, height: 8, width: 8, placement: { kind: "sliding", overlap: 0.5, weighting: "gaussian", fill: 0 } };
    const shift = writeModel(d, "shift.onnx", g.toBytes(), { ...CARD, name: "shift", input });
    const [SX, SY, SZ] = [24, 16, 16];
    const roi = (i: number, j: number, k: number) => i >= 8 && i <= 11 && j >= 4 && j <= 7 && k >= 4 && k <= 7;
    const at = (f: (i: number, j: number, k: number) => number) =>
      Float32Array.from({ length: SX * SY * SZ }, (_, c) => f(c % SX, Math.floor(c / SX) % SY, Math.floor(c / (SX * SY))));
    await writeNifti(join(d, "v.nii.gz"), {
      dims: [SX, SY, SZ],
      affine: AFFINE,
      data: at((i, j, k) => (roi(i, j, k) || (i === 12 && j >= 4 && j <= 7 && k >= 4 && k <= 7) ? 3 : 1)),
    });
    await writeNifti(join(d, "l.nii.gz"), { dims: [SX, SY, SZ], affine: AFFINE, data: at((i, j, k) => (roi(i, j, k) ? 1 : 0)) });
    writeFileSync(
      join(d, "manifest.json"),
      JSON.stringify({ name: "shift3d", cases: [{ id: "v", image: "v.nii.gz", mask: "l.nii.gz", split: "test" }] }),
    );
    const out = join(d, "out");
    const cfg = config(out, { models: [shift], dataset: join(d, "manifest.json"), methods: [{ name: "zero", options: { block: 4, tau: 0 } }] });
    // The cell's curve samples (the prober's items are {set, draw}; the method's own are {unit, draw}, and the
    // control's curves run before the method): the changed boxes each names, and the windows the runner was given for them.
    const changed: ChangedBox[][] = [];
    let ran = 0;
    const evaluate = VolumeForward.prototype.evaluate;
    const spy = vi.spyOn(VolumeForward.prototype, "evaluate").mockImplementation(function (
      this: VolumeForward,
      runner,
      samples,
      sample,
      score,
      done,
    ) {
      if (!samples.every((s) => typeof s === "object" && s !== null && "set" in s)) {
        changed.length = 0;
        ran = 0;
        return evaluate.call(this, runner, samples, sample, score, done);
      }
      for (const s of samples) changed.push([...sample.boxes(s)]);
      const counting = Object.create(runner) as BatchRunner;
      counting.run = (items, ...rest) => {
        ran += items.length;
        return runner.run(items, ...rest);
      };
      return evaluate.call(this, counting, samples, sample, score, done);
    });
    const s = await runEvaluation({ ...cfg, protocol: { ...cfg.protocol, steps: 5, fills: ["zero"] } }, {}).finally(() => spy.mockRestore());
    expect(s).toMatchObject({ computed: 1, failed: 0 });
    const id = { dataset: "shift3d", model: "shift", image: "v", roi: "label-1" };
    const c = JSON.parse(readFileSync(join(cellDir(out, id, "zero"), "cell.json"), "utf8"));
    const control = JSON.parse(readFileSync(controlPath(out, id), "utf8"));
    const { base, removed } = control.fills.zero.ends;
    expect(base).toBeCloseTo(100, 6);
    expect(removed).toBeLessThan(95);
    // the first step removes the causal box: every later point is the outcome with all of D removed
    expect(
      c.fills.zero.curves.deletion
        .slice(1)
        .map((v: number) => v - removed)
        .map((v: number) => Math.abs(v) < 1e-6),
    ).toEqual([true, true, true, true, true]);
    // 8³ windows at stride 4: x from 0, 4, ..., 16, y and z from 0, 4, 8 (45); the RoI (z 4..7, y 4..7, x 8..11)
    // lies in the 8 starting at z, y in {0, 4} and x in {4, 8}. A curve sample runs those of the 8 its changed
    // boxes overlap, counted here from that geometry.
    const starts = (n: number) => Array.from({ length: (n - 8) / 4 + 1 }, (_, i) => 4 * i);
    const hits = (lo: number, len: number, w0: number) => lo < w0 + 8 && w0 < lo + len;
    const windows = starts(SZ).flatMap((z) => starts(SY).flatMap((y) => starts(SX).map((x) => ({ z, y, x }))));
    expect(windows).toHaveLength(45);
    const overRoi = windows.filter((w) => hits(4, 4, w.z) && hits(4, 4, w.y) && hits(8, 4, w.x));
    expect(overRoi).toHaveLength(8);
    const touched = (boxes: ChangedBox[]) =>
      overRoi.filter((w) => boxes.some((b) => hits(b.z, b.depth, w.z) && hits(b.y, b.height, w.y) && hits(b.x, b.width, w.x))).length;
    // the 10 curve samples: 4 + 4 inner points of deletion and insertion, top-k and top-area
    expect(changed).toHaveLength(10);
    // deletion's first point removes only the causal box's unit (x 12..15): the 4 windows starting at x 8
    const expected = changed.reduce((n, b) => n + touched(b), 0);
    expect(changed.map(touched)).toContain(4);
    expect(expected).toBeLessThan(10 * 8);
    expect(ran).toBe(expected);
    expect(c.cost.evaluationPasses).toBe(expected);
  });
});

describe("evaluate on a volume data set: bad inputs, one line, exit 1", () => {
  const oneLine = (r: { code: number | null; stderr: string }) => {
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).not.toMatch(/ at .*\.js:\d+/);
  };

  it("a 2D model on a volume data set", () => {
    const m2d = writeModel(dir, "flat2d.onnx", regionMeanModel([{ row: 0, col: 16, height: 16, width: 16, weight: 50 }], -40));
    const r = segcause("evaluate", "--models", m2d, "--dataset", manifest, "--methods", "zero", "--out", join(dir, "bad1"), "--no-progress");
    oneLine(r);
    expect(r.stderr).toMatch(/2D model.*holds volumes/);
    expect(existsSync(join(dir, "bad1", "run.json"))).toBe(false);
  });

  it("a manifest mixing 2D images and volumes", () => {
    const mixed = join(dir, "mixed.json");
    writeFileSync(
      mixed,
      JSON.stringify({
        name: "mixed",
        cases: [
          { id: "a", image: "case.nii.gz", mask: "labels.nii.gz", split: "test" },
          { id: "b", image: "b.png", split: "test" },
        ],
      }),
    );
    const r = segcause("evaluate", "--models", model, "--dataset", mixed, "--methods", "zero", "--out", join(dir, "bad2"), "--no-progress");
    oneLine(r);
  });

  it("2D RoI rules, --stability and a method without a volume form on a volume data set", () => {
    const base = ["evaluate", "--models", model, "--dataset", manifest, "--no-progress", "--box-unit", "vox"];
    const rois = segcause(...base, "--methods", "zero", "--rois", "boundary:8", "--out", join(dir, "bad3"));
    oneLine(rois);
    expect(rois.stderr).toMatch(/--rois/);
    const stability = segcause(...base, "--methods", "zero", "--fills", "zero", "--stability", "--out", join(dir, "bad4"));
    oneLine(stability);
    expect(stability.stderr).toMatch(/--stability/);
    // a block larger than the volume stops the run before the first cell, not as a refusal per cell
    const block = segcause(...base, "--methods", "zero", "--set", "zero.block=32", "--fills", "zero", "--out", join(dir, "bad6"));
    oneLine(block);
    expect(block.stderr).toMatch(/block size 32³ voxels does not fit/);
    expect(existsSync(join(dir, "bad6", "cells"))).toBe(false);
    const method = segcause(...base, "--methods", "misure", "--fills", "zero", "--out", join(dir, "bad5"));
    oneLine(method);
    expect(method.stderr).toMatch(/does not run on volumes/);
  });
});

// End to end on real hippocampus volumes with the shipped 3D model (skipped without ../shared/data).
const HIPPO = join(__dirname, "..", "..", "shared", "data", "hippocampus");
const haveHippo = existsSync(join(HIPPO, "manifest.json"));
if (!haveHippo) console.warn("evaluate-volume.test.ts: ../shared/data/hippocampus is absent, so the real-data run is skipped (CI has the data)");

describe.skipIf(!haveHippo)("evaluate on real hippocampus volumes with the shipped 3D model", () => {
  it("zero and occlusion on 2 test cases: cells, controls and a report", () => {
    const out = join(dir, "hippo");
    const r = segcause(
      "evaluate",
      "--models",
      join(__dirname, "..", "models", "volumes", "unet3d-hippocampus.onnx"),
      "--dataset",
      HIPPO,
      "--images",
      "2",
      "--methods",
      "zero,occlusion",
      "--set",
      "zero.block=12",
      "--set",
      "occlusion.block=12",
      "--set",
      "occlusion.stride=12",
      "--rank-units",
      "block:8",
      "--fills",
      "zero",
      "--steps",
      "5",
      "--topk",
      "10",
      "--top-area",
      "10",
      "--threads",
      "2",
      "--out",
      out,
      "--no-progress",
      "--json",
    );
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.run).toMatchObject({ computed: 4, failed: 0, skipped: 0 });
    const rows = readFileSync(join(out, "cells.csv"), "utf8").trim().split("\n");
    // 2 cases × (2 methods + the random and distance controls)
    expect(rows.length).toBe(1 + 2 * 4);
    const run = JSON.parse(readFileSync(join(out, "run.json"), "utf8"));
    expect(JSON.stringify(run)).toContain('"boxUnit":"mm"');
  });
});

// A data set of DICOM series folders (the MR series cropped around the hippocampus), each with a label
// map written here on its grid: the box the explain DICOM test explains (skipped without ../shared/data).
const DICOM = join(__dirname, "..", "..", "shared", "data", "dicom", "mr-hippocrop");
const haveDicom = existsSync(join(DICOM, "study1"));
if (!haveDicom) console.warn("evaluate-volume.test.ts: ../shared/data/dicom is absent, so the DICOM-series run is skipped (CI has the data)");

describe.skipIf(!haveDicom)("evaluate on a data set of DICOM series", () => {
  it("reads each series folder and its label map, and evaluates zero on the structure", async () => {
    const ds = join(dir, "dicomset");
    mkdirSync(ds, { recursive: true });
    const cases = [];
    for (const study of ["study1", "study2"]) {
      const v = await readDicomVolume(join(DICOM, study));
      const [nx, ny] = v.dims;
      // the RoI z,y,x 12,16,14 of size 6x8x6 voxels
      const labels = new Float32Array(v.data.length);
      for (let k = 12; k < 18; k++) for (let j = 16; j < 24; j++) for (let i = 14; i < 20; i++) labels[(k * ny + j) * nx + i] = 1;
      await writeNifti(join(ds, `${study}-labels.nii.gz`), { dims: v.dims, affine: v.affine, data: labels });
      cases.push({ id: study, image: join(DICOM, study), mask: `${study}-labels.nii.gz`, split: "test" });
    }
    writeFileSync(join(ds, "manifest.json"), JSON.stringify({ name: "mr-dicom", kind: "volume", cases }));
    const out = join(dir, "dicom-out");
    const r = segcause(
      "evaluate",
      "--models",
      join(__dirname, "..", "models", "volumes", "unet3d-hippocampus.onnx"),
      "--dataset",
      ds,
      "--methods",
      "zero",
      "--set",
      "zero.block=16",
      "--reference",
      "prediction",
      "--fills",
      "zero",
      "--steps",
      "4",
      "--topk",
      "10",
      "--top-area",
      "10",
      "--controls",
      "random",
      "--out",
      out,
      "--no-progress",
      "--json",
    );
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).run).toMatchObject({ computed: 2, failed: 0, skipped: 0 });
    const cell = JSON.parse(
      readFileSync(
        join(cellDir(out, { dataset: "mr-dicom", model: "unet3d-hippocampus", image: "study1", roi: "label-1" }, "zero"), "cell.json"),
        "utf8",
      ),
    );
    expect(cell.reference).toBe("prediction");
    expect(cell.fills.zero.curves.deletion).toHaveLength(5);
    // the map is on the series' own grid, (k, j, i)
    const v = await readDicomVolume(join(DICOM, "study1"));
    const npy = readFileSync(
      join(cellDir(out, { dataset: "mr-dicom", model: "unet3d-hippocampus", image: "study1", roi: "label-1" }, "zero"), "map.npy"),
    );
    expect(npy.toString("latin1", 0, 80)).toContain(`'shape': (${v.dims[2]}, ${v.dims[1]}, ${v.dims[0]})`);
  });
});
