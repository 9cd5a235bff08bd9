/**
 * RoI-cropped execution (src/onnx/crop.ts, src/explain/roi-executor.ts): the derived graph's outputs
 * inside the RoI equal full inference on random conv/pool/resize/ConvTranspose/skip stacks; on a tiny
 * model maps are identical with --incremental on and off and the blocks outside the RoI's reach are
 * skipped; on shipped models the RoI's outputs and thresholded masks agree with full inference on
 * every pass of a short run, and maps are identical for a fixed seed.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { loadCase } from "../src/data/case.js";
import { explainOcclusion } from "../src/explain/occlusion.js";
import { explainPdcr, explainZero } from "../src/explain/pdcr.js";
import { Model } from "../src/model/model.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import { CropRefused, cropGraph } from "../src/onnx/crop.js";
import { parseModel } from "../src/onnx/graph.js";
import { Rng } from "../src/util/rng.js";
import { agreementWithFull } from "./helpers/full-agreement.js";
import { crop, rand, randomStack, run } from "./helpers/stacks.js";
import { flatBank, localConvModel, tmp, writeImage, writeModel } from "./helpers/tiny.js";

const STACKS = Number(process.env.CROP_STACKS ?? 40);
/** These tests check phase 2's executor: the counts would pick changed-region passes (changed.test.ts) on some of them. */
const CROP = { incrementalExecutor: "roi-crop" } as const;

describe("the RoI-cropped graph", () => {
  it("computes the full graph's outputs inside the RoI on random conv/pool/resize/ConvTranspose/skip stacks", async () => {
    const rng = new Rng(24);
    let cropped = 0;
    for (let t = 0; t < STACKS; t++) {
      const { bytes, inDims, outDims } = randomStack(rng);
      const [H, W] = outDims.slice(2);
      const h = 1 + rng.int(Math.min(8, H));
      const w = 1 + rng.int(Math.min(8, W));
      const rows = [rng.int(H - h + 1), 0];
      rows[1] = rows[0] + h;
      const cols = [rng.int(W - w + 1), 0];
      cols[1] = cols[0] + w;
      const cg = cropGraph(parseModel(bytes), { rows: rows as [number, number], cols: cols as [number, number] });
      expect(cg.whole).toEqual([]);
      const x = rand(rng, 2 * inDims.slice(1).reduce((a, b) => a * b, 1));
      const full = await run(bytes, x, [2, ...inDims.slice(1)]);
      const ib = cg.inputBox;
      const part = await run(cg.bytes, crop(x, [2, ...inDims.slice(1)], ib[2], ib[3]), [2, inDims[1], ib[2][1] - ib[2][0], ib[3][1] - ib[3][0]]);
      expect(part.dims.slice(2)).toEqual([h, w]);
      const want = crop(full.data, [2, outDims[1], H, W], rows, cols);
      let diff = 0;
      want.forEach((v, i) => (diff = Math.max(diff, Math.abs(v - part.data[i]))));
      expect(diff, `stack ${t}`).toBeLessThan(1e-5);
      if (cg.macs < cg.fullMacs) cropped++;
    }
    expect(cropped).toBeGreaterThan(STACKS / 2); // most RoIs need less than the whole network
  });

  it("runs an op without a windowed rule whole when its input is whole, and refuses it on part of a tensor", () => {
    const g = new GraphBuilder("global");
    const x = g.input("x", ["N", 1, 16, 16]);
    const c = g.node("Conv", [x, g.constant([1, 1, 3, 3], new Float32Array(9).fill(0.1))], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
    const pooled = g.node("GlobalAveragePool", [c]);
    g.node("Add", [c, pooled], {}, ["y"]);
    g.output("y", ["N", 1, 16, 16]);
    const cg = cropGraph(parseModel(g.toBytes()), { rows: [0, 2], cols: [0, 2] });
    expect(cg.whole).toHaveLength(1);
    expect(cg.whole[0]).toMatch(/^GlobalAveragePool/);
    expect(cg.inputBox.slice(2)).toEqual([
      [0, 16],
      [0, 16],
    ]);
    const t = new GraphBuilder("transpose");
    const tx = t.input("x", ["N", 1, 16, 16]);
    const tc = t.node("Conv", [tx, t.constant([1, 1, 3, 3], new Float32Array(9).fill(0.1))], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
    t.node("Transpose", [tc], { perm: [0, 1, 3, 2] }, ["y"]);
    t.output("y", ["N", 1, 16, 16]);
    expect(() => cropGraph(parseModel(t.toBytes()), { rows: [0, 2], cols: [0, 2] })).toThrow(CropRefused);
  });
});

describe("--incremental on a tiny local model", () => {
  let modelPath: string, image: string;
  beforeAll(async () => {
    const dir = tmp();
    modelPath = writeModel(dir, "local.onnx", localConvModel());
    image = await writeImage(dir, "img.png", (y, x) => (y * 7 + x * 13) % 256);
  });
  const ROI = { row: 8, col: 8, height: 8, width: 8 };

  it("gives the same maps on and off for zero, occlusion and pdcr, skips the blocks outside the RoI's reach and records the executor", async () => {
    const model = await Model.load(modelPath, { threads: 1 });
    try {
      const kase = await loadCase(model, image);
      const target = { roi: ROI, outcome: "soft-dice" as const, reference: "prediction" as const };
      const bank = flatBank([0, 60, 120, 180, 240]);
      const runs = [
        (incremental: "on" | "off") => explainZero(model, kase, target, { seed: 3, incremental, ...CROP }),
        (incremental: "on" | "off") => explainOcclusion(model, kase, target, { seed: 3, incremental, window: 8, stride: 4, ...CROP }),
        (incremental: "on" | "off") => explainPdcr(model, kase, target, { seed: 3, incremental, bank, samples: 8, ...CROP }),
      ];
      for (const r of runs) {
        const [on, off] = [await r("on"), await r("off")];
        expect(Buffer.from(on.map.buffer).equals(Buffer.from(off.map.buffer))).toBe(true);
        // standard errors too: the skipped samples score m(X) exactly, as the full passes do
        expect(Buffer.from(on.stderrMap.buffer).equals(Buffer.from(off.stderrMap.buffer))).toBe(true);
        expect(on.units.map((u) => [u.effect, u.stderr, u.samples, u.status])).toEqual(
          off.units.map((u) => [u.effect, u.stderr, u.samples, u.status]),
        );
        expect(on.provenance.settings.incremental).toMatchObject({
          executor: "roi-crop",
          inputBox: [
            [6, 18],
            [6, 18],
          ],
          maxDiff: 0,
        });
        expect(off.provenance.settings.incremental).toBeUndefined();
        expect(off.notes.join(" ")).not.toMatch(/incremental|reach/);
        // every unit wholly outside rows/cols 6..17 has effect exactly 0
        const outside = on.units.filter((u) => u.row >= 18 || u.col >= 18 || u.row + u.height <= 6 || u.col + u.width <= 6);
        expect(outside.length).toBeGreaterThan(0);
        for (const u of outside) expect(u.effect, `${on.method} ${JSON.stringify(u)}`).toBe(0);
        expect(on.notes.find((n) => n.includes("outside the RoI's reach"))).toContain(`${outside.length} of ${on.units.length}`);
      }
      const zero = await explainZero(model, kase, target, { seed: 3, incremental: "on", ...CROP });
      expect(zero.provenance.settings.incremental).toMatchObject({ skippedPasses: 7 });
    } finally {
      await model.release();
    }
  });

  it("on a model without a cropped graph: auto runs full passes and says why, on fails with one line", async () => {
    const g = new GraphBuilder("transposed");
    const x = g.input("image", ["N", 3, 32, 32]);
    const c = g.node("Conv", [x, g.constant([1, 3, 3, 3], new Float32Array(27).fill(0.05))], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
    g.output(g.node("Sigmoid", [g.node("Transpose", [c], { perm: [0, 1, 3, 2] })], {}, ["mask"]), ["N", 1, 32, 32]);
    const path = writeModel(tmp(), "t.onnx", g.toBytes());
    const model = await Model.load(path, { threads: 1 });
    try {
      const kase = await loadCase(model, image);
      const target = { roi: ROI, outcome: "soft-dice" as const, reference: "prediction" as const };
      const auto = await explainZero(model, kase, target, { incremental: "auto" });
      expect(auto.notes.find((n) => n.startsWith("full passes (--incremental auto)"))).toMatch(/Transpose/);
      await expect(explainZero(model, kase, target, { incremental: "on" })).rejects.toThrow(/no RoI-cropped graph.*Transpose/);
    } finally {
      await model.release();
    }
  });
});

const SAMPLE = join(import.meta.dirname, "..", "samples", "lesion.png");
const shipped = (name: string) => join(import.meta.dirname, "..", "models", `${name}.onnx`);

describe("--incremental on shipped models", () => {
  for (const [name, roi] of [
    ["unet-ph2", { row: 56, col: 112, height: 32, width: 32 }],
    ["segnet-ph2", { row: 112, col: 112, height: 32, width: 32 }],
    ["deeplab-hc18", { row: 48, col: 48, height: 32, width: 32 }],
  ] as const) {
    it(`${name}: the RoI's outputs and mask agree with full inference on every pass of a short zero run`, async () => {
      if (!existsSync(shipped(name))) return void console.warn(`skipped: ${shipped(name)} is absent`);
      // the passes of a zero run with 32 px blocks, within the RoI's reach (the others are never run)
      const { boxes, passes, diff, flips } = await agreementWithFull(shipped(name), SAMPLE, roi, { batchSize: 4 }, (executor, model) => {
        const blocks = [];
        for (let r = 0; r < model.height; r += 32)
          for (let c = 0; c < model.width; c += 32) if (executor.reaches(r, c, 32, 32)) blocks.push({ row: r, col: c, height: 32, width: 32 });
        return blocks;
      });
      expect(passes).toBe(boxes.length);
      expect(flips).toBe(0);
      expect(diff).toBeLessThan(1e-4);
    });
  }

  // unet-ph2's cropped graph is bit-exact (max |difference| 0), so even a continuous outcome gives the same map; deeplab-hc18's
  // differs by float rounding (1e-7): its maps agree to that, and two runs with the same seed are identical.
  it("unet-ph2 and deeplab-hc18: zero maps on and off for a fixed seed", async () => {
    for (const [name, roi, block] of [
      ["unet-ph2", { row: 56, col: 112, height: 32, width: 32 }, 32],
      ["deeplab-hc18", { row: 48, col: 48, height: 32, width: 32 }, 16],
    ] as const) {
      if (!existsSync(shipped(name))) return void console.warn(`skipped: ${shipped(name)} is absent`);
      const model = await Model.load(shipped(name), { threads: 1 });
      try {
        const kase = await loadCase(model, SAMPLE);
        const target = { roi, reference: "prediction" as const, outcome: "mean-prob" as const };
        const on = await explainZero(model, kase, target, { seed: 1, blockSize: block, incremental: "on", ...CROP });
        const off = await explainZero(model, kase, target, { seed: 1, blockSize: block, incremental: "off" });
        expect(on.provenance.settings.incremental, name).toMatchObject({ executor: "roi-crop" });
        if (name === "unet-ph2") expect(Buffer.from(on.map.buffer).equals(Buffer.from(off.map.buffer)), name).toBe(true);
        else {
          const again = await explainZero(model, kase, target, { seed: 1, blockSize: block, incremental: "on", ...CROP });
          expect(Buffer.from(on.map.buffer).equals(Buffer.from(again.map.buffer)), name).toBe(true);
          let diff = 0;
          on.map.forEach((v, i) => (diff = Math.max(diff, Math.abs(v - off.map[i]))));
          expect(diff, name).toBeLessThan(1e-4);
          expect(on.map.some((v) => v !== 0)).toBe(true);
        }
      } finally {
        await model.release();
      }
    }
  });
});
