/**
 * Changed-region execution (src/onnx/changed.ts, src/explain/changed-executor.ts): on random
 * conv/pool/resize/ConvTranspose/skip stacks, a perturbed box recomputed over the changed and needed
 * windows from the cached unperturbed tensors gives the full graph's RoI outputs; on a tiny model maps
 * are identical with changed-region passes and full passes for zero, occlusion and pdcr; on shipped
 * U-Net and SegNet every pass of a short zero run agrees with full inference with no RoI mask flip.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import ort from "onnxruntime-node";
import { beforeAll, describe, expect, it } from "vitest";
import { executorInfo } from "../src/cli/info.js";
import { loadCase } from "../src/data/case.js";
import type { AutoPreview } from "../src/explain/executor-choice.js";
import { executorCosts, type RunShape } from "../src/explain/executor-cost.js";
import { explainOcclusion } from "../src/explain/occlusion.js";
import { explainPdcr, explainZero } from "../src/explain/pdcr.js";
import { type ExecutorRecord, RoiExecutor } from "../src/explain/roi-executor.js";
import { RunContext } from "../src/explain/run.js";
import { Model } from "../src/model/model.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import { cacheDims, changedGraph, paddedCache, planBox } from "../src/onnx/changed.js";
import { CropRefused } from "../src/onnx/crop.js";
import { parseModel } from "../src/onnx/graph.js";
import { exposeTensors } from "../src/onnx/surgery.js";
import { Rng } from "../src/util/rng.js";
import { agreementWithFull } from "./helpers/full-agreement.js";
import { crop, rand, randomStack } from "./helpers/stacks.js";
import { flatBank, localConvModel, tmp, writeImage, writeModel } from "./helpers/tiny.js";

const STACKS = Number(process.env.CHANGED_STACKS ?? 30);

async function session(bytes: Uint8Array): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(bytes, { logSeverityLevel: 3, intraOpNumThreads: 1 });
}

describe("the changed-region graph", () => {
  it("gives the full graph's RoI outputs for a perturbed box on random conv/pool/resize/ConvTranspose/skip stacks", async () => {
    const rng = new Rng(15);
    let checked = 0;
    let worst = 0;
    for (let t = 0; t < STACKS; t++) {
      const { bytes, inDims, outDims } = randomStack(rng);
      const [H, W] = outDims.slice(2);
      const [h, w] = [1 + rng.int(Math.min(8, H)), 1 + rng.int(Math.min(8, W))];
      const rows: [number, number] = [rng.int(H - h + 1), 0];
      rows[1] = rows[0] + h;
      const cols: [number, number] = [rng.int(W - w + 1), 0];
      cols[1] = cols[0] + w;
      const cg = changedGraph(parseModel(bytes), { rows, cols });
      // the unperturbed input and its tensors; a random box of the input (inside what the RoI reads) redrawn
      const n = inDims.slice(1).reduce((a, b) => a * b, 1);
      const x = rand(rng, n);
      const cached = cg.caches.map((c) => c.tensor).filter((t) => t !== cg.input);
      const probe = await session(exposeTensors(parseModel(bytes), [...new Set(cached)]));
      const base = cached.length ? await probe.run({ x: new ort.Tensor("float32", x, inDims) }) : {};
      await probe.release();
      const [[r0, r1], [c0, c1]] = cg.need.get(cg.input)!.box.slice(2);
      const [bh, bw] = [1 + rng.int(Math.min(8, r1 - r0)), 1 + rng.int(Math.min(8, c1 - c0))];
      const box: [number, number][] = [
        [r0 + rng.int(r1 - r0 - bh + 1), 0],
        [c0 + rng.int(c1 - c0 - bw + 1), 0],
      ];
      box[0][1] = box[0][0] + bh;
      box[1][1] = box[1][0] + bw;
      const xp = Float32Array.from(x);
      const [C, IH, IW] = inDims.slice(1);
      for (let c = 0; c < C; c++)
        for (let y = box[0][0]; y < box[0][1]; y++) for (let i = box[1][0]; i < box[1][1]; i++) xp[(c * IH + y) * IW + i] = rng.next() * 2 - 1;
      const full = await session(bytes);
      const want = crop((await full.run({ x: new ort.Tensor("float32", xp, inDims) })).y.data as Float32Array, outDims, rows, cols);
      await full.release();
      // the changed-region pass
      const plan = planBox(cg, box);
      const feeds: Record<string, ort.Tensor> = { x: new ort.Tensor("float32", crop(xp, inDims, box[0], box[1]), [1, C, bh, bw]) };
      for (const c of cg.caches) {
        const d = cg.g.dims.get(c.tensor)!;
        feeds[c.feed] = new ort.Tensor(
          "float32",
          paddedCache(c, d, c.tensor === cg.input ? x : (base[c.tensor].data as Float32Array)),
          cacheDims(c, d),
        );
      }
      for (const [k, v] of Object.entries(plan.ints)) feeds[k] = new ort.Tensor("int64", v, [v.length]);
      const s = await session(cg.bytes);
      const out = (await s.run(feeds)).y;
      await s.release();
      // the output tile covers every RoI cell the box changes; the others keep their unperturbed values
      const [[w0, w1], [v0, v1]] = plan.output;
      expect(out.dims.slice(2)).toEqual([w1 - w0, v1 - v0]);
      const baseOut = await session(bytes).then(async (f) => {
        const o = (await f.run({ x: new ort.Tensor("float32", x, inDims) })).y.data as Float32Array;
        await f.release();
        return o;
      });
      const got = Float32Array.from(baseOut);
      const tile = out.data as Float32Array;
      for (let c = 0; c < outDims[1]; c++)
        for (let y = w0; y < w1; y++) for (let i = v0; i < v1; i++) got[(c * H + y) * W + i] = tile[(c * (w1 - w0) + y - w0) * (v1 - v0) + i - v0];
      const mine = crop(got, outDims, rows, cols);
      let diff = 0;
      want.forEach((v, i) => (diff = Math.max(diff, Math.abs(v - mine[i]))));
      expect(diff, `stack ${t}`).toBeLessThan(1e-5);
      worst = Math.max(worst, diff);
      if (plan.macs < cg.fullMacs) checked++;
    }
    expect(checked).toBeGreaterThan(STACKS / 2); // most boxes recompute less than the whole network
    console.log(`changed-region graph on ${STACKS} random stacks: max |difference| from full inference ${worst.toPrecision(2)}`);
  });

  it("refuses an op without a changed-region rule", () => {
    const g = new GraphBuilder("global");
    const x = g.input("x", ["N", 1, 16, 16]);
    const c = g.node("Conv", [x, g.constant([1, 1, 3, 3], new Float32Array(9).fill(0.1))], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
    g.node("Add", [c, g.node("GlobalAveragePool", [c])], {}, ["y"]);
    g.output("y", ["N", 1, 16, 16]);
    expect(() => changedGraph(parseModel(g.toBytes()), { rows: [0, 2], cols: [0, 2] })).toThrow(CropRefused);
  });

  it("refuses a rank-1 constant that broadcasts along the width (a tile would read the wrong columns)", () => {
    const g = new GraphBuilder("row-vector");
    const x = g.input("x", ["N", 1, 16, 16]);
    const c = g.node("Conv", [x, g.constant([1, 1, 3, 3], new Float32Array(9).fill(0.1))], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
    g.node(
      "Add",
      [
        c,
        g.constant(
          [16],
          Float32Array.from({ length: 16 }, (_, i) => i / 16),
        ),
      ],
      {},
      ["y"],
    );
    g.output("y", ["N", 1, 16, 16]);
    expect(() => changedGraph(parseModel(g.toBytes()), { rows: [0, 2], cols: [0, 2] })).toThrow(/constant with spatial extent/);
  });
});

describe("changed-region passes on a tiny local model", () => {
  let modelPath: string, image: string;
  beforeAll(async () => {
    const dir = tmp();
    modelPath = writeModel(dir, "local.onnx", localConvModel());
    image = await writeImage(dir, "img.png", (y, x) => (y * 7 + x * 13) % 256);
  });

  it("gives the same maps as full passes for zero, occlusion and pdcr and records the executor", async () => {
    const model = await Model.load(modelPath, { threads: 1 });
    try {
      const kase = await loadCase(model, image);
      const target = { roi: { row: 8, col: 8, height: 8, width: 8 }, outcome: "soft-dice" as const, reference: "prediction" as const };
      const bank = flatBank([0, 60, 120, 180, 240]);
      const CHANGED = { incrementalExecutor: "changed-region" } as const;
      const runs = [
        (incremental: "on" | "off") => explainZero(model, kase, target, { seed: 3, incremental, blockSize: 4, ...CHANGED }),
        (incremental: "on" | "off") => explainOcclusion(model, kase, target, { seed: 3, incremental, window: 8, stride: 4, ...CHANGED }),
        (incremental: "on" | "off") => explainPdcr(model, kase, target, { seed: 3, incremental, bank, samples: 8, ...CHANGED }),
      ];
      for (const r of runs) {
        const [on, off] = [await r("on"), await r("off")];
        expect(Buffer.from(on.map.buffer).equals(Buffer.from(off.map.buffer)), on.method).toBe(true);
        expect(Buffer.from(on.stderrMap.buffer).equals(Buffer.from(off.stderrMap.buffer))).toBe(true);
        expect(on.provenance.settings.incremental).toMatchObject({ executor: "changed-region", cropMacShare: expect.any(Number) });
        const rec = on.provenance.settings.incremental as { macShare: number; cropMacShare: number; maxDiff: number };
        expect(rec.macShare).toBeLessThan(rec.cropMacShare);
        expect(rec.maxDiff).toBeLessThan(1e-6);
        expect(on.notes.join(" ")).toMatch(/incremental \(changed-region\) passes/);
      }
      // auto follows the cost model: on 4 px blocks the changed-region pass has fewer multiply-adds, but on a model this small
      // the per-op overhead of its many small ops and its opening cost dominate, so the cropped passes are cheaper
      const auto = await explainZero(model, kase, target, { seed: 3, incremental: "auto", blockSize: 4 });
      const rec = auto.provenance.settings.incremental as ExecutorRecord;
      expect(rec.executor).toBe(rec.cost!.pick);
      expect(rec.cost!.changed).toBeGreaterThan(rec.cost!.cropped);
      expect(rec.executor).toBe("roi-crop");
      expect(auto.notes.join(" ")).toMatch(/RoI-cropped rather than changed-region passes: the cost model/);
    } finally {
      await model.release();
    }
  });
});

describe("the executor cost model", () => {
  // a 256² U-Net's shape: a cropped pass of 29% of the multiply-adds, a changed-region pass of 3% with six times the ops
  const shape: RunShape = {
    fullMacs: 3e9,
    fullOps: 60,
    cropMacs: 0.29 * 3e9,
    cropOps: 62,
    changedMacs: 0.03 * 3e9,
    changedOps: 360,
    batch: 8,
    itemsPerBox: 1,
    passes: 250,
  };
  it("charges per op and per call, shares them among the items of a call, and amortises the opening over the passes", () => {
    const at = (s: Partial<RunShape>) => executorCosts({ ...shape, ...s });
    // per-op overhead: more ops in the changed-region graph cost more, fewer multiply-adds cost less
    expect(at({ changedOps: 720 }).changed).toBeGreaterThan(at({}).changed);
    expect(at({ changedMacs: 0.01 * 3e9 }).changed).toBeLessThan(at({}).changed);
    // the draws of one block share a call: more items per box, cheaper per pass (up to the batch size)
    expect(at({ itemsPerBox: 4 }).changed).toBeLessThan(at({}).changed);
    expect(at({ itemsPerBox: 64 }).changed).toBe(at({ itemsPerBox: 8 }).changed);
    // the opening is paid once: with no passes the cropped run costs nothing and wins, with many the per-pass cost decides
    expect(at({ passes: 0 }).pick).toBe("roi-crop");
    const perPass = (s: Partial<RunShape>) => (at({ ...s, passes: 2000 }).changed - at({ ...s, passes: 1000 }).changed) / 1000;
    const cropPerPass = (at({ passes: 2000 }).cropped - at({ passes: 1000 }).cropped) / 1000;
    expect(perPass({ itemsPerBox: 4 })).toBeLessThan(cropPerPass);
    expect(at({ itemsPerBox: 4, passes: 1e5 }).pick).toBe("changed-region");
    // the choice is strict: equal costs keep the cropped passes
    const c = at({});
    expect(c.pick).toBe(c.changed < c.cropped ? "changed-region" : "roi-crop");
  });
});

const SAMPLE = join(import.meta.dirname, "..", "samples", "lesion.png");
const shipped = (name: string) => join(import.meta.dirname, "..", "models", `${name}.onnx`);

describe("changed-region passes on shipped models", () => {
  it("unet-ph2: auto picks what the cost model says, changed-region for several draws per block, and records the estimate", async () => {
    if (!existsSync(shipped("unet-ph2"))) return void console.warn(`skipped: ${shipped("unet-ph2")} is absent`);
    const model = await Model.load(shipped("unet-ph2"), { threads: 1 });
    try {
      const kase = await loadCase(model, SAMPLE);
      const roi = { row: 112, col: 112, height: 32, width: 32 };
      const ctx = await RunContext.open(model, kase, { roi, reference: "prediction", outcome: "mean-prob" }, { batchSize: 8 });
      const units: { row: number; col: number; height: number; width: number }[] = [];
      for (let r = 0; r < model.height; r += 16) for (let c = 0; c < model.width; c += 16) units.push({ row: r, col: c, height: 16, width: 16 });
      const fullMacs = changedGraph(model.proto(), { rows: [112, 144], cols: [112, 144] }).fullMacs;
      // what `segcause info` says for the centre 32 px RoI and 16 px blocks: the same picks and estimates
      const info = executorInfo(model) as AutoPreview[];
      for (const k of [4, 1]) {
        const { executor } = await RoiExecutor.open(model, ctx.target, { input: ctx.base, output: ctx.baseOutput }, "auto", 8, {
          units,
          shape: { itemsPerBox: k, passesPerBlock: k },
        });
        try {
          const rec = executor!.record;
          const cost = rec.cost!;
          expect(rec.executor).toBe(cost.pick);
          expect(cost.itemsPerBox).toBe(k);
          const inReach = units.filter((u) => executor!.reaches(u.row, u.col, u.height, u.width)).length;
          expect(cost.passes).toBe(inReach * k);
          // the estimate again from what the record says (its shares are rounded to 4 digits)
          const changedShare = rec.executor === "changed-region" ? rec.macShare : undefined;
          const cropShare = rec.cropMacShare ?? rec.macShare;
          if (changedShare !== undefined) {
            const again = executorCosts({
              fullMacs,
              fullOps: cost.ops[0],
              cropMacs: cropShare * fullMacs,
              cropOps: cost.ops[1],
              changedMacs: changedShare * fullMacs,
              changedOps: cost.ops[2],
              batch: 8,
              itemsPerBox: k,
              passes: cost.passes,
            });
            expect(again.changed / fullMacs).toBeCloseTo(cost.changed, 0);
            expect(again.cropped / fullMacs).toBeCloseTo(cost.cropped, 0);
          }
          // four draws of a block per call (PdCR's rounds) share the changed-region graph's overhead: it wins on this 256² U-Net
          if (k === 4) expect(rec.executor).toBe("changed-region");
          const said = info.find((x) => x.block === 16 && x.itemsPerBox === k)!;
          expect(said.pick).toBe(rec.executor);
          expect(said.cost![0]).toBeCloseTo(cost.cropped, 1);
          expect(said.cost![1]).toBeCloseTo(cost.changed, 1);
          console.log(`unet-ph2, ${k} item(s) per call: cost model ${cost.changed} vs ${cost.cropped} full passes -> ${cost.pick}`);
        } finally {
          await executor?.release();
        }
      }
    } finally {
      await model.release();
    }
  });

  it("deeplab-hc18: segcause info says auto keeps RoI-cropped passes, since the global pooling leaves no changed-region graph", async () => {
    if (!existsSync(shipped("deeplab-hc18"))) return void console.warn(`skipped: ${shipped("deeplab-hc18")} is absent`);
    const model = await Model.load(shipped("deeplab-hc18"), { threads: 1 });
    try {
      const info = executorInfo(model) as AutoPreview[];
      expect(info.length).toBe(4);
      for (const x of info) {
        expect(x.pick).toBe("roi-crop");
        expect(x.why).toMatch(/no changed-region graph: GlobalAveragePool/);
      }
    } finally {
      await model.release();
    }
  });

  for (const [name, roi] of [
    ["unet-ph2", { row: 56, col: 112, height: 32, width: 32 }],
    ["segnet-ph2", { row: 112, col: 112, height: 32, width: 32 }],
  ] as const) {
    it(`${name}: the RoI's outputs and mask agree with full inference on every pass of a short zero run`, async () => {
      if (!existsSync(shipped(name))) return void console.warn(`skipped: ${shipped(name)} is absent`);
      const grid = (model: Model) => {
        const units: { row: number; col: number; height: number; width: number }[] = [];
        for (let r = 0; r < model.height; r += 32) for (let c = 0; c < model.width; c += 32) units.push({ row: r, col: c, height: 32, width: 32 });
        return units;
      };
      // every third 32 px block in reach, and one 64 px box (a quadtree group), zero-filled
      const { record, boxes, passes, diff, flips } = await agreementWithFull(
        shipped(name),
        SAMPLE,
        roi,
        { batchSize: 4, units: grid, executor: "changed-region" },
        (executor, model) => [
          ...grid(model)
            .filter((u) => executor.reaches(u.row, u.col, u.height, u.width))
            .filter((_, i) => i % 3 === 0),
          { row: 96, col: 96, height: 64, width: 64 },
        ],
      );
      expect(record.executor).toBe("changed-region");
      expect(passes).toBe(boxes.length);
      expect(flips).toBe(0);
      expect(diff).toBeLessThan(1e-4);
      console.log(`${name}: ${boxes.length} changed-region passes, max |difference| from full inference ${diff.toPrecision(2)}, ${flips} flips`);
    });
  }
});
