/**
 * Changed-region execution (src/onnx/changed.ts, src/explain/changed-executor.ts): on random
 * conv/pool/resize/ConvTranspose/skip stacks, with or without a block that mixes all positions (GAP/ASPP,
 * ReduceMean, Flatten + MatMul tokens, computed whole), a perturbed box recomputed over the changed and
 * needed windows from the cached unperturbed tensors gives the full graph's RoI outputs; on tiny models
 * (local, and with a global branch) maps are identical with changed-region passes and full passes for
 * zero, occlusion and pdcr; on shipped U-Net, SegNet and DeepLab every pass of a short zero run agrees
 * with full inference with no RoI mask flip.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import ort from "onnxruntime-node";
import { beforeAll, describe, expect, it } from "vitest";
import { describeExecutors, executorInfo } from "../src/cli/info.js";
import { loadCase } from "../src/data/case.js";
import { type AutoPreview, type PixelBox, runCosts } from "../src/explain/executor-choice.js";
import { type ExecutorPick, executorCosts, fallbackPick, incrementalPick, type RunShape } from "../src/explain/executor-cost.js";
import { explainOcclusion } from "../src/explain/occlusion.js";
import { explainPdcr, explainZero } from "../src/explain/pdcr.js";
import { type ExecutorRecord, type FullRecord, RoiExecutor } from "../src/explain/roi-executor.js";
import { RunContext } from "../src/explain/run.js";
import { Model } from "../src/model/model.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import { cacheDims, changedGraph, paddedCache, planBox } from "../src/onnx/changed.js";
import { parseModel } from "../src/onnx/graph.js";
import type { Box } from "../src/onnx/regions.js";
import { exposeTensors } from "../src/onnx/surgery.js";
import { Rng } from "../src/util/rng.js";
import { agreementWithFull } from "./helpers/full-agreement.js";
import { crop, rand, randomStack } from "./helpers/stacks.js";
import { flatBank, globalBranchModel, localConvModel, tmp, writeImage, writeModel } from "./helpers/tiny.js";

const STACKS = Number(process.env.CHANGED_STACKS ?? 30);
const GLOBAL_STACKS = Number(process.env.CHANGED_STACKS ?? 24);

async function session(bytes: Uint8Array): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(bytes, { logSeverityLevel: 3, intraOpNumThreads: 1 });
}

/** A random RoI of the stack's output and a random perturbed box of the input it reads: max |changed-region pass − full graph| over the RoI. */
async function changedVsFull(
  rng: Rng,
  bytes: Uint8Array,
  inDims: number[],
  outDims: number[],
): Promise<{ diff: number; partial: boolean; whole: number }> {
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
  const baseOut = (await full.run({ x: new ort.Tensor("float32", x, inDims) })).y.data as Float32Array;
  await full.release();
  // the changed-region pass
  const plan = planBox(cg, box);
  const feeds: Record<string, ort.Tensor> = { x: new ort.Tensor("float32", crop(xp, inDims, box[0], box[1]), [1, C, bh, bw]) };
  for (const c of cg.caches) {
    const d = cg.g.dims.get(c.tensor)!;
    feeds[c.feed] = new ort.Tensor("float32", paddedCache(c, d, c.tensor === cg.input ? x : (base[c.tensor].data as Float32Array)), cacheDims(c, d));
  }
  for (const [k, v] of Object.entries(plan.ints)) feeds[k] = new ort.Tensor("int64", v, [v.length]);
  const s = await session(cg.bytes);
  const out = (await s.run(feeds)).y;
  await s.release();
  // the output tile covers every RoI cell the box changes; the others keep their unperturbed values
  const [[w0, w1], [v0, v1]] = plan.output;
  expect(out.dims.slice(2)).toEqual([w1 - w0, v1 - v0]);
  const got = Float32Array.from(baseOut);
  const tile = out.data as Float32Array;
  for (let c = 0; c < outDims[1]; c++)
    for (let y = w0; y < w1; y++) for (let i = v0; i < v1; i++) got[(c * H + y) * W + i] = tile[(c * (w1 - w0) + y - w0) * (v1 - v0) + i - v0];
  const mine = crop(got, outDims, rows, cols);
  let diff = 0;
  want.forEach((v, i) => (diff = Math.max(diff, Math.abs(v - mine[i]))));
  return { diff, partial: plan.macs < cg.fullMacs, whole: cg.wholeOps.length };
}

describe("the changed-region graph", () => {
  it("gives the full graph's RoI outputs for a perturbed box on random conv/pool/resize/ConvTranspose/skip stacks", async () => {
    const rng = new Rng(15);
    let checked = 0;
    let worst = 0;
    for (let t = 0; t < STACKS; t++) {
      const { bytes, inDims, outDims } = randomStack(rng);
      const { diff, partial } = await changedVsFull(rng, bytes, inDims, outDims);
      expect(diff, `stack ${t}`).toBeLessThan(1e-5);
      worst = Math.max(worst, diff);
      if (partial) checked++;
    }
    expect(checked).toBeGreaterThan(STACKS / 2); // most boxes recompute less than the whole network
    console.log(`changed-region graph on ${STACKS} random stacks: max |difference| from full inference ${worst.toPrecision(2)}`);
  });

  it("computes ops without a windowed rule whole and stays exact: random stacks with a pooled, normalised or token block", async () => {
    // kinds in turn: GAP expanded and concatenated with a local branch (ASPP), GAP added broadcast, x − ReduceMean, Flatten + MatMul tokens
    const rng = new Rng(24);
    let worst = 0;
    let partial = 0;
    for (let t = 0; t < GLOBAL_STACKS; t++) {
      const { bytes, inDims, outDims } = randomStack(rng, { global: true, kind: t % 4 });
      const r = await changedVsFull(rng, bytes, inDims, outDims);
      expect(r.whole, `stack ${t}`).toBeGreaterThan(0);
      expect(r.diff, `stack ${t}`).toBeLessThan(1e-5);
      worst = Math.max(worst, r.diff);
      if (r.partial) partial++;
    }
    expect(partial).toBeGreaterThan(0); // the prefix before the global block still runs by changed regions
    console.log(`changed-region graph on ${GLOBAL_STACKS} random stacks with a global block: max |difference| ${worst.toPrecision(2)}`);
  });

  it("computes a GlobalAveragePool branch and a rank-1 constant broadcast along the width whole, and says where locality breaks", async () => {
    const gap = new GraphBuilder("global");
    let x = gap.input("x", ["N", 1, 16, 16]);
    let c = gap.node("Conv", [x, gap.constant([1, 1, 3, 3], new Float32Array(9).fill(0.1))], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
    gap.node("Add", [c, gap.node("GlobalAveragePool", [c])], {}, ["y"]);
    gap.output("y", ["N", 1, 16, 16]);
    const row = new GraphBuilder("row-vector");
    x = row.input("x", ["N", 1, 16, 16]);
    c = row.node("Conv", [x, row.constant([1, 1, 3, 3], new Float32Array(9).fill(0.1))], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
    row.node(
      "Add",
      [
        c,
        row.constant(
          [16],
          Float32Array.from({ length: 16 }, (_, i) => i / 16),
        ),
      ],
      {},
      ["y"],
    );
    row.output("y", ["N", 1, 16, 16]);
    const rng = new Rng(3);
    for (const [g, breaks] of [
      [gap, /^GlobalAveragePool/],
      [row, /^Add/],
    ] as const) {
      const cg = changedGraph(parseModel(g.toBytes()), { rows: [0, 2], cols: [0, 2] });
      expect(cg.wholeOps[0]).toMatch(breaks);
      expect(cg.localMacs).toBe(9 * 256); // the conv runs by changed regions
      for (let k = 0; k < 5; k++) expect((await changedVsFull(rng, g.toBytes(), [1, 1, 16, 16], [1, 1, 16, 16])).diff).toBeLessThan(1e-5);
    }
  });
});

describe("changed-region passes on a tiny local model", () => {
  let modelPath: string, globalPath: string, image: string;
  beforeAll(async () => {
    const dir = tmp();
    modelPath = writeModel(dir, "local.onnx", localConvModel());
    globalPath = writeModel(dir, "global.onnx", globalBranchModel());
    image = await writeImage(dir, "img.png", (y, x) => (y * 7 + x * 13) % 256);
  });

  for (const which of ["local", "global-branch"] as const)
    it(`gives the same maps as full passes for zero, occlusion and pdcr and records the executor (${which})`, async () => {
      const model = await Model.load(which === "local" ? modelPath : globalPath, { threads: 1 });
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
          const rec = on.provenance.settings.incremental as ExecutorRecord;
          expect(rec.macShare).toBeLessThan(rec.cropMacShare!);
          expect(rec.maxDiff).toBeLessThan(1e-6);
          expect(on.notes.join(" ")).toMatch(/incremental \(changed-region\) passes/);
          // the global branch: every block reaches the RoI through the pooling, which is computed whole
          if (which === "global-branch") {
            expect(rec.breaksAt).toMatch(/^GlobalAveragePool/);
            expect(on.notes.join(" ")).toMatch(/locality breaks at GlobalAveragePool/);
          } else expect(rec.breaksAt).toBeUndefined();
        }
        if (which === "global-branch") return;
        // auto follows the cost model: on 4 px blocks the changed-region pass has fewer multiply-adds, but on a model this small
        // the per-op overhead of its many small ops and its opening cost dominate, so it is never picked; full passes (fewest ops)
        // or cropped ones run, as the model says, and the record gives all three estimates
        const auto = await explainZero(model, kase, target, { seed: 3, incremental: "auto", blockSize: 4 });
        const rec = auto.provenance.settings.incremental as ExecutorRecord | FullRecord;
        const c = rec.cost!;
        expect(rec.executor).toBe(c.pick);
        expect(c.pick).toBe(cheapest(c));
        expect(c.changed!).toBeGreaterThan(Math.min(c.full, c.cropped));
        if (rec.executor === "full") {
          expect(auto.notes.join(" ")).toMatch(
            /full passes \(--incremental auto\): the cost model puts the run at [\d.]+ full passes' worth with full passes/,
          );
          // the same map as full passes, bit for bit, since full passes ran
          const off = await explainZero(model, kase, target, { seed: 3, incremental: "off", blockSize: 4 });
          expect(Buffer.from(auto.map.buffer).equals(Buffer.from(off.map.buffer))).toBe(true);
        } else expect(auto.notes.join(" ")).toMatch(/RoI-cropped rather than changed-region passes: the cost model/);
      } finally {
        await model.release();
      }
    });
});

/** The cheapest of the three estimates (ties: full, then cropped), as the cost model picks. */
function cheapest(c: { full: number; cropped: number; changed?: number }): ExecutorPick {
  const changed = c.changed ?? Infinity;
  return c.full <= c.cropped && c.full <= changed ? "full" : c.cropped <= changed ? "roi-crop" : "changed-region";
}

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
  const at = (s: Partial<RunShape>) => executorCosts({ ...shape, ...s });
  it("charges per op and per call, shares them among the items of a call, and amortises the opening over the passes", () => {
    // per-op overhead: more ops in the changed-region graph cost more, fewer multiply-adds cost less
    expect(at({ changedOps: 720 }).changed).toBeGreaterThan(at({}).changed);
    expect(at({ changedMacs: 0.01 * 3e9 }).changed).toBeLessThan(at({}).changed);
    // the draws of one block share a call: more items per box, cheaper per pass (up to the batch size)
    expect(at({ itemsPerBox: 4 }).changed).toBeLessThan(at({}).changed);
    expect(at({ itemsPerBox: 64 }).changed).toBe(at({ itemsPerBox: 8 }).changed);
    // the opening is paid once: with no passes the full run costs nothing and wins, with many the per-pass cost decides
    expect(at({ passes: 0 }).pick).toBe("full");
    const perPass = (s: Partial<RunShape>) => (at({ ...s, passes: 2000 }).changed - at({ ...s, passes: 1000 }).changed) / 1000;
    const cropPerPass = (at({ passes: 2000 }).cropped - at({ passes: 1000 }).cropped) / 1000;
    const fullPerPass = (at({ passes: 2000 }).full - at({ passes: 1000 }).full) / 1000;
    expect(perPass({ itemsPerBox: 4 })).toBeLessThan(cropPerPass);
    expect(cropPerPass).toBeLessThan(fullPerPass);
    expect(at({ itemsPerBox: 4, passes: 1e5 }).pick).toBe("changed-region");
    // every estimate grows with the passes; full passes also pay for the blocks out of the RoI's reach, the executors skip them
    for (const k of ["full", "cropped", "changed"] as const) expect(at({ passes: 500 })[k]).toBeGreaterThan(at({})[k]);
    expect(at({ fullPasses: 400 }).full).toBeGreaterThan(at({}).full);
    expect(at({ fullPasses: 400 }).cropped).toBe(at({}).cropped);
    // the choice is the cheapest of the three, strict: ties keep the simpler executor
    for (const s of [{}, { itemsPerBox: 4 }, { passes: 10 }, { passes: 1e5, itemsPerBox: 4 }]) expect(at(s).pick).toBe(cheapest(at(s)));
    // without a changed-region graph the choice is between full and cropped passes
    expect(at({ changedMacs: undefined, changedOps: undefined }).changed).toBe(Infinity);
    expect(at({ changedMacs: undefined, changedOps: undefined }).pick).toBe("roi-crop");
  });

  it("picks changed-region over full passes when the cropped pass costs more than 60% (a UNeXt-like shape), and falls back to the cheaper", () => {
    // a light network whose cropped pass keeps 81% of the multiply-adds, but whose changed-region pass computes 5%
    const unext: RunShape = { ...shape, fullMacs: 1e9, fullOps: 60, cropMacs: 0.81e9, cropOps: 70, changedMacs: 0.05e9, changedOps: 300 };
    const c = executorCosts({ ...unext, itemsPerBox: 4, passes: 2000 });
    expect(unext.cropMacs / unext.fullMacs).toBeGreaterThan(0.6);
    expect(c.pick).toBe("changed-region");
    expect(c.changed).toBeLessThan(c.full);
    expect(c.cropped).toBeLessThan(c.full);
    // the changed-region check fails at open: auto runs the cheaper of the other two (here cropped), on runs cropped
    expect(fallbackPick(c)).toBe("roi-crop");
    expect(incrementalPick(c)).toBe("changed-region");
    // a cropped graph with many more ops than the full one costs more than full passes: that is the fallback then
    const d = executorCosts({ ...unext, cropOps: 2000, itemsPerBox: 4, passes: 2000 });
    expect(d.pick).toBe("changed-region");
    expect(d.cropped).toBeGreaterThan(d.full);
    expect(fallbackPick(d)).toBe("full");
    // short maps do not repay opening the changed-region passes
    expect(executorCosts({ ...unext, itemsPerBox: 4, passes: 20 }).pick).not.toBe("changed-region");
  });

  it("prices the run over the blocks: the executors skip those out of the RoI's reach, full passes run them", () => {
    // a 64² input of 8 px blocks with the RoI on block (0,0): 63 units; an input box of the top half reaches 31 of them
    const units: PixelBox[] = [];
    for (let y = 0; y < 64; y += 8) for (let x = 0; x < 64; x += 8) if (y || x) units.push({ row: y, col: x, height: 8, width: 8 });
    const top: Box = [
      [0, 1],
      [0, 3],
      [0, 32],
      [0, 64],
    ];
    const g = { fullMacs: 1e9, fullOps: 60, crop: { macs: 0.5e9, ops: 62 } };
    const c = runCosts(g, units, top, { itemsPerBox: 1, passesPerBlock: 3 }, 8);
    expect(c).toMatchObject({ passes: 93, fullPasses: 189, changed: Infinity });
    const same = executorCosts({
      ...shape,
      fullMacs: 1e9,
      cropMacs: 0.5e9,
      changedMacs: undefined,
      changedOps: undefined,
      passes: 93,
      fullPasses: 189,
    });
    expect([c.full, c.cropped, c.pick]).toEqual([same.full, same.cropped, same.pick]);
  });
});

const SAMPLE = join(import.meta.dirname, "..", "samples", "lesion.png");
const shipped = (name: string) => join(import.meta.dirname, "..", "models", `${name}.onnx`);

describe("changed-region passes on shipped models", () => {
  it("unet-ph2: auto picks what the cost model says, changed-region for a PdCR map at 8 px, and records the three estimates", async () => {
    if (!existsSync(shipped("unet-ph2"))) return void console.warn(`skipped: ${shipped("unet-ph2")} is absent`);
    const model = await Model.load(shipped("unet-ph2"), { threads: 1 });
    try {
      const kase = await loadCase(model, SAMPLE);
      const roi = { row: 112, col: 112, height: 32, width: 32 };
      const ctx = await RunContext.open(model, kase, { roi, reference: "prediction", outcome: "mean-prob" }, { batchSize: 8 });
      const fullMacs = changedGraph(model.proto(), { rows: [112, 144], cols: [112, 144] }).fullMacs;
      // what `segcause info` says for the centre 32 px RoI: the same picks and estimates
      const info = executorInfo(model) as AutoPreview[];
      // a zero map of 16 px blocks (one item per call), a fast-schedule PdCR map of 8 px blocks (its quadtree screen, 4 per call)
      for (const [block, k] of [
        [8, 4],
        [16, 1],
      ]) {
        const units: PixelBox[] = [];
        for (let r = 0; r < model.height; r += block)
          for (let c = 0; c < model.width; c += block)
            if (!(r < 144 && r + block > 112 && c < 144 && c + block > 112)) units.push({ row: r, col: c, height: block, width: block });
        const shape = { itemsPerBox: k, passesPerBlock: k, ...(k > 1 ? { quadtree: { groupSize: 8, groupDraws: 2 } } : {}) };
        const { executor } = await RoiExecutor.open(model, ctx.target, { input: ctx.base, output: ctx.baseOutput }, "auto", 8, { units, shape });
        try {
          const rec = executor!.record;
          const cost = rec.cost!;
          expect(rec.executor).toBe(cost.pick);
          expect(cost.pick).toBe(cheapest(cost));
          expect(cost.itemsPerBox).toBe(k);
          const inReach = units.filter((u) => executor!.reaches(u.row, u.col, u.height, u.width)).length;
          expect([cost.passes, cost.fullPasses]).toEqual([inReach * k, units.length * k]);
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
              fullPasses: cost.fullPasses,
            });
            for (const x of ["full", "cropped", "changed"] as const) expect(again[x] / fullMacs).toBeCloseTo(cost[x]!, 0);
          }
          // four draws of a block per call (PdCR's rounds) share the changed-region graph's overhead: it wins on this 256² U-Net at 8 px
          if (k === 4) expect(rec.executor).toBe("changed-region");
          const said = info.find((x) => x.block === block && x.itemsPerBox === k)!;
          expect(said.pick).toBe(rec.executor);
          expect(said.cost!.full).toBeCloseTo(cost.full, 1);
          expect(said.cost!.cropped).toBeCloseTo(cost.cropped, 1);
          expect(said.cost!.changed!).toBeCloseTo(cost.changed!, 1);
          console.log(
            `unet-ph2, ${block} px, ${k} item(s) per call: full ${cost.full}, cropped ${cost.cropped}, changed ${cost.changed} -> ${cost.pick}`,
          );
        } finally {
          await executor?.release();
        }
      }
    } finally {
      await model.release();
    }
  });

  it("deeplab-hc18: segcause info names the global pooling where locality breaks, and picks what the cost model says", async () => {
    if (!existsSync(shipped("deeplab-hc18"))) return void console.warn(`skipped: ${shipped("deeplab-hc18")} is absent`);
    const model = await Model.load(shipped("deeplab-hc18"), { threads: 1 });
    try {
      const info = executorInfo(model) as AutoPreview[];
      expect(info.length).toBe(4);
      for (const x of info) {
        expect(x.breaksAt).toMatch(/^GlobalAveragePool/);
        expect(x.localShare!).toBeGreaterThan(0.3);
        expect(x.localShare!).toBeLessThan(0.7);
        // a changed-region pass costs less than a cropped one; the part past the pooling is the same for every block
        expect(x.changedShare!).toBeLessThan(x.cropShare!);
        expect(x.fixedShare!).toBeGreaterThan(0);
        expect(x.fixedShare!).toBeLessThan(x.changedShare!);
        expect(x.pick).toBe(cheapest(x.cost!));
      }
      // the printed line says it
      expect(describeExecutors(info).join("\n")).toMatch(/locality breaks at GlobalAveragePool node '[^']+' \(2 ops run whole\)/);
    } finally {
      await model.release();
    }
  });

  it("unext-ph2: its cropped pass costs more than 60%, yet auto prices all three executors and takes the cheapest", async () => {
    if (!existsSync(shipped("unext-ph2"))) return void console.warn(`skipped: ${shipped("unext-ph2")} is absent`);
    const model = await Model.load(shipped("unext-ph2"), { threads: 1 });
    try {
      const info = executorInfo(model) as AutoPreview[];
      expect(info.length).toBe(4);
      for (const x of info) {
        expect(x.cropShare!).toBeGreaterThan(0.6);
        expect(x.changedShare!).toBeLessThan(0.3);
        expect(x.pick).toBe(cheapest(x.cost!));
        // before, auto ran full passes here without asking the cost model; the model puts cropped passes below full ones
        expect(x.cost!.cropped).toBeLessThan(x.cost!.full);
        expect(x.pick).toBe("roi-crop");
      }
      const text = describeExecutors(info).join("\n");
      expect(text).toMatch(/RoI-cropped pass 81%/);
      expect(text).toMatch(
        /16 px blocks, 1 item per call \(zero, occlusion\): roi-crop \(\d+ full, \d+ cropped, \d+ changed-region; changed-region pass 2\d\.\d%/,
      );
    } finally {
      await model.release();
    }
  });

  for (const [name, roi] of [
    ["unet-ph2", { row: 56, col: 112, height: 32, width: 32 }],
    ["segnet-ph2", { row: 112, col: 112, height: 32, width: 32 }],
    ["deeplab-hc18", { row: 48, col: 48, height: 32, width: 32 }],
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
          { row: model.height / 2 - 32, col: model.width / 2 - 32, height: 64, width: 64 },
        ],
      );
      expect(record.executor).toBe("changed-region");
      // DeepLab: the ASPP's global pooling runs whole, the backbone before it by changed regions
      if (name === "deeplab-hc18") expect(record.breaksAt).toMatch(/^GlobalAveragePool/);
      expect(passes).toBe(boxes.length);
      expect(flips).toBe(0);
      expect(diff).toBeLessThan(1e-4);
      console.log(`${name}: ${boxes.length} changed-region passes, max |difference| from full inference ${diff.toPrecision(2)}, ${flips} flips`);
    });
  }
});
