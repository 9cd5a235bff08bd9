/**
 * The region rules (src/onnx/regions.ts) against brute force: random conv/pool/resize/concat stacks
 * built here, run fully with onnxruntime. Every output cell a perturbation changes lies in the
 * predicted changed region; perturbing every input cell outside the predicted needed region leaves the
 * RoI's outputs bit-identical; on single conv/pool/resize ops the predicted regions equal brute force.
 */
import { join } from "node:path";
import ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { type AttrValue, GraphBuilder } from "../src/onnx/builder.js";
import { parseModel, readModelFile } from "../src/onnx/graph.js";
import { incrementalMacs, neededMacs, networkMacs } from "../src/onnx/region-flops.js";
import { type Box, changedRegions, firstGlobal, neededRegions, type RegionGraph, regionGraph } from "../src/onnx/regions.js";
import { inferStatic } from "../src/onnx/shapes.js";
import { Rng } from "../src/util/rng.js";
import { segcause } from "./helpers/cli.js";

/** One op added to a builder: reads tensor `x` with dims `d` (batch 1), returns its output tensor. */
type Layer = (g: GraphBuilder, x: string, d: number[], rng: Rng) => string;

const pick = <T>(rng: Rng, xs: T[]): T => xs[rng.int(xs.length)];
const rand = (rng: Rng, n: number, lo = -1, hi = 1) => Float32Array.from({ length: n }, () => lo + (hi - lo) * rng.next());

function conv(
  g: GraphBuilder,
  x: string,
  d: number[],
  rng: Rng,
  opts: { k?: number; s?: number; dil?: number; cout?: number; positive?: boolean } = {},
): string {
  const r = d.length - 2;
  const k = opts.k ?? pick(rng, [1, 2, 3, 5]);
  const s = opts.s ?? pick(rng, [1, 1, 2]);
  const dil = opts.dil ?? pick(rng, [1, 1, 2]);
  const cin = d[1];
  const group = opts.cout === undefined && cin % 2 === 0 && rng.next() < 0.3 ? 2 : 1;
  const cout = opts.cout ?? pick(rng, [2, 4]);
  const attrs: Record<string, AttrValue> = {
    kernel_shape: new Array(r).fill(k),
    strides: new Array(r).fill(s),
    dilations: new Array(r).fill(dil),
    group,
  };
  const padKind = rng.int(4);
  // ONNX Runtime refuses SAME padding with dilation
  if (padKind === 0) attrs.auto_pad = dil === 1 ? pick(rng, ["SAME_UPPER", "SAME_LOWER", "VALID"]) : "VALID";
  else attrs.pads = Array.from({ length: 2 * r }, () => rng.int(k));
  const nw = cout * (cin / group) * k ** r;
  const w = g.constant([cout, cin / group, ...new Array(r).fill(k)], opts.positive ? rand(rng, nw, 0.1, 1) : rand(rng, nw));
  return g.node("Conv", [x, w, g.constant([cout], rand(rng, cout))], attrs);
}

function pool(g: GraphBuilder, x: string, d: number[], rng: Rng, op = pick(rng, ["MaxPool", "AveragePool"])): string {
  const r = d.length - 2;
  const k = pick(rng, [2, 3]);
  return g.node(op, [x], {
    kernel_shape: new Array(r).fill(k),
    strides: new Array(r).fill(pick(rng, [1, 2])),
    pads: Array.from({ length: 2 * r }, () => rng.int(Math.ceil(k / 2))),
    ceil_mode: rng.int(2),
  });
}

function resize(g: GraphBuilder, x: string, d: number[], rng: Rng): string {
  const mode = pick(rng, ["nearest", "linear"]);
  const attrs: Record<string, AttrValue> = {
    mode,
    coordinate_transformation_mode: pick(rng, ["half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel"]),
  };
  if (mode === "nearest") attrs.nearest_mode = pick(rng, ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]);
  // scales, not sizes: sizes would fix the batch axis, and the brute force runs a batch
  const scales = d.map((_, i) => (i < 2 ? 1 : pick(rng, [2, 1.5, 1.7, 0.5, 0.6])));
  return g.node("Resize", [x, "", g.constant([d.length], scales)], attrs);
}

function convTranspose(g: GraphBuilder, x: string, d: number[], rng: Rng): string {
  const r = d.length - 2;
  const k = pick(rng, [2, 3, 4]);
  const s = pick(rng, [1, 2]);
  const cout = 2;
  const w = g.constant([d[1], cout, ...new Array(r).fill(k)], rand(rng, d[1] * cout * k ** r));
  return g.node("ConvTranspose", [x, w], {
    kernel_shape: new Array(r).fill(k),
    strides: new Array(r).fill(s),
    pads: Array.from({ length: 2 * r }, () => rng.int(k)),
    output_padding: new Array(r).fill(s > 1 ? rng.int(s) : 0),
  });
}

/** A skip connection: Concat(x, conv(x)) on channels, or relu(x + conv(x)). */
function skip(g: GraphBuilder, x: string, d: number[], rng: Rng): string {
  const r = d.length - 2;
  const k = pick(rng, [1, 3]);
  const branch = (cout: number) =>
    g.node("Conv", [x, g.constant([cout, d[1], ...new Array(r).fill(k)], rand(rng, cout * d[1] * k ** r))], {
      kernel_shape: new Array(r).fill(k),
      pads: new Array(2 * r).fill((k - 1) / 2),
    });
  if (rng.next() < 0.5) return g.node("Concat", [x, g.node("Relu", [branch(2)])], { axis: 1 });
  return g.node("Relu", [g.node("Add", [x, branch(d[1])])]);
}

function pad(g: GraphBuilder, x: string, d: number[], rng: Rng): string {
  const pads = d.map((_, i) => (i < 2 ? 0 : rng.int(3)));
  return g.node("Pad", [x, g.constantInt64([...pads, ...d.map((_, i) => (i < 2 ? 0 : rng.int(3)))])], {
    mode: pick(rng, ["constant", "reflect", "edge"]),
  });
}

function slice(g: GraphBuilder, x: string, d: number[], rng: Rng): string {
  const axis = 2 + rng.int(d.length - 2);
  const start = rng.int(3);
  return g.node("Slice", [x, g.constantInt64([start]), g.constantInt64([d[axis] - rng.int(3)]), g.constantInt64([axis])]);
}

const LAYERS: Layer[] = [conv, conv, pool, resize, convTranspose, skip, skip, pad, slice, (g, x) => g.node("Sigmoid", [x])];

/** The stack's ops and attributes, for a failure message. */
function describeStack(bytes: Uint8Array): string {
  return parseModel(bytes)
    .graph!.node.map(
      (n) =>
        `${n.opType}(${n.attribute.map((a) => `${a.name}=${a.ints.length ? a.ints.join(",") : a.s.length ? new TextDecoder().decode(a.s) : a.i}`).join(" ")})`,
    )
    .join(" → ");
}

interface Stack {
  bytes: Uint8Array;
  inDims: number[];
  outDims: number[];
}

/** Builds `layers` (functions of a fresh builder) and returns the model with the output declared. */
function build(input: number[], layers: ((g: GraphBuilder, x: string) => string)[]): { bytes: Uint8Array; outDims: number[] } {
  const g = new GraphBuilder("stack");
  let x = g.input("x", ["N", ...input.slice(1)]);
  for (const l of layers) x = l(g, x);
  x = g.node("Identity", [x], {}, ["y"]);
  const probe = parseModel(g.toBytes());
  const outDims = inferStatic(probe, 1).get("y")!.dims;
  if (outDims.some((v) => !(v >= 1))) throw new Error(`empty output ${outDims}`);
  g.output("y", ["N", ...outDims.slice(1)]);
  return { bytes: g.toBytes(), outDims };
}

/** A random stack of 2–5 layers whose spatial sizes stay in [3, 48]. */
function randomStack(rng: Rng, spatialRank: number): Stack {
  const inDims = [1, 1 + rng.int(2), ...Array.from({ length: spatialRank }, () => 10 + rng.int(spatialRank === 2 ? 14 : 5))];
  const layers: ((g: GraphBuilder, x: string) => string)[] = [];
  const depth = 2 + rng.int(4);
  let dims = inDims;
  for (let tries = 0; layers.length < depth && tries < 50; tries++) {
    const seed = rng.int(1 << 30);
    const layer = pick(rng, LAYERS);
    const before = dims;
    const candidate = (g: GraphBuilder, x: string) => layer(g, x, before, new Rng(seed));
    try {
      const { outDims } = build(inDims, [...layers, candidate]);
      if (outDims.slice(2).some((v) => v < 3 || v > 48)) continue;
      layers.push(candidate);
      dims = outDims;
    } catch {
      // a configuration static inference refuses: draw another layer
    }
  }
  const { bytes, outDims } = build(inDims, layers);
  return { bytes, inDims, outDims };
}

async function runBatch(bytes: Uint8Array, inDims: number[], inputs: Float32Array[]): Promise<Float32Array[]> {
  // unoptimised: ONNX Runtime's Pad fusion folds a Pad into a following pool's pads beyond the kernel size, which it then refuses
  // (errors only: onnxruntime warns that its own output_shape inference disagrees with the declared output)
  const session = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: "disabled", logSeverityLevel: 3 });
  const n = inputs[0].length;
  const data = new Float32Array(n * inputs.length);
  inputs.forEach((x, i) => data.set(x, i * n));
  const out = (await session.run({ x: new ort.Tensor("float32", data, [inputs.length, ...inDims.slice(1)]) })).y.data as Float32Array;
  await session.release();
  const m = out.length / inputs.length;
  return inputs.map((_, i) => out.subarray(i * m, (i + 1) * m));
}

/** Visits every index of a tensor of `dims` (batch axis included) with its coordinates. */
function forEachCell(dims: number[], f: (flat: number, coord: number[]) => void): void {
  const n = dims.reduce((a, b) => a * b, 1);
  const coord = new Array(dims.length).fill(0);
  for (let flat = 0; flat < n; flat++) {
    f(flat, coord);
    for (let a = dims.length - 1; a >= 0; a--) {
      if (++coord[a] < dims[a]) break;
      coord[a] = 0;
    }
  }
}

const inBox = (c: number[], b: Box) => c.every((v, i) => v >= b[i][0] && v < b[i][1]);

/** A random box over the spatial axes (batch and channel axes whole). */
function randomBox(rng: Rng, dims: number[], maxSide: number): Box {
  return dims.map((d, i): [number, number] => {
    if (i < 2) return [0, d];
    const side = 1 + rng.int(Math.min(maxSide, d));
    const lo = rng.int(d - side + 1);
    return [lo, lo + side];
  });
}

/** Bounding box of the cells where `a` and `b` differ (undefined when none does). */
function diffBox(dims: number[], a: Float32Array, b: Float32Array): Box | undefined {
  let box: Box | undefined;
  forEachCell(dims, (flat, c) => {
    if (a[flat] === b[flat]) return;
    box = box ? box.map(([lo, hi], i) => [Math.min(lo, c[i]), Math.max(hi, c[i] + 1)]) : c.map((v) => [v, v + 1]);
  });
  return box;
}

const TRIALS = 12;

async function checkChanged(stack: Stack, rng: Rng): Promise<number> {
  const rg = regionGraph(parseModel(stack.bytes));
  const base = rand(
    rng,
    stack.inDims.reduce((a, b) => a * b, 1),
  );
  const boxes = Array.from({ length: TRIALS }, () => randomBox(rng, stack.inDims, 6));
  const inputs = [base, ...boxes.map((b) => perturbInside(stack.inDims, base, b, rng))];
  const [y0, ...ys] = await runBatch(stack.bytes, stack.inDims, inputs);
  let changedCells = 0;
  ys.forEach((y, t) => {
    const predicted = changedRegions(rg, boxes[t]).get("y")?.box;
    forEachCell(stack.outDims, (flat, c) => {
      if (y[flat] === y0[flat]) return;
      changedCells++;
      expect(
        predicted && inBox(c, predicted),
        `output cell ${c} changed outside ${JSON.stringify(predicted)} (input box ${JSON.stringify(boxes[t])}) in ${describeStack(stack.bytes)}`,
      ).toBe(true);
    });
  });
  return changedCells;
}

function perturbInside(dims: number[], base: Float32Array, box: Box, rng: Rng, inside = true): Float32Array {
  const x = Float32Array.from(base);
  forEachCell(dims, (flat, c) => {
    if (inBox(c, box) === inside) x[flat] += 1 + rng.next();
  });
  return x;
}

async function checkNeeded(stack: Stack, rng: Rng): Promise<number> {
  const rg = regionGraph(parseModel(stack.bytes));
  const base = rand(
    rng,
    stack.inDims.reduce((a, b) => a * b, 1),
  );
  const rois = Array.from({ length: TRIALS }, () => randomBox(rng, stack.outDims, 5));
  const needed = rois.map((r) => neededRegions(rg, r).get("x")?.box ?? stack.inDims.map((): [number, number] => [0, 0]));
  const inputs = [base, ...needed.map((b) => perturbInside(stack.inDims, base, b, rng, false))];
  const [y0, ...ys] = await runBatch(stack.bytes, stack.inDims, inputs);
  let checked = 0;
  ys.forEach((y, t) => {
    forEachCell(stack.outDims, (flat, c) => {
      if (!inBox(c, rois[t])) return;
      checked++;
      expect(y[flat], `RoI cell ${c} changed by inputs outside the needed region ${JSON.stringify(needed[t])} of ${describeStack(stack.bytes)}`).toBe(
        y0[flat],
      );
    });
  });
  return checked;
}

describe("region rules against brute force (random stacks)", () => {
  for (const rank of [2, 3]) {
    it(`${rank}D: changed cells lie in the predicted changed region; inputs outside the needed region never change the RoI`, async () => {
      const rng = new Rng(rank === 2 ? 24 : 2403);
      let changed = 0;
      let roiCells = 0;
      for (let s = 0; s < (rank === 2 ? 30 : 12); s++) {
        const stack = randomStack(rng, rank);
        changed += await checkChanged(stack, rng);
        roiCells += await checkNeeded(stack, rng);
      }
      // the stacks are not degenerate: perturbations changed outputs and RoIs were checked
      expect(changed).toBeGreaterThan(1000);
      expect(roiCells).toBeGreaterThan(100);
    });
  }
});

/** Brute-force needed region: the bounding box of the input cells whose own perturbation changes the RoI. */
async function bruteNeeded(stack: Stack, roi: Box, rng: Rng): Promise<Box | undefined> {
  const n = stack.inDims.reduce((a, b) => a * b, 1);
  const base = rand(rng, n);
  const inputs = [base];
  for (let i = 0; i < n; i++) {
    const x = Float32Array.from(base);
    x[i] += 100;
    inputs.push(x);
  }
  const [y0, ...ys] = await runBatch(stack.bytes, stack.inDims, inputs);
  let box: Box | undefined;
  forEachCell(stack.inDims, (i, c) => {
    let hit = false;
    forEachCell(stack.outDims, (flat, oc) => {
      if (!hit && inBox(oc, roi) && ys[i][flat] !== y0[flat]) hit = true;
    });
    if (hit) box = box ? box.map(([lo, hi], a) => [Math.min(lo, c[a]), Math.max(hi, c[a] + 1)]) : c.map((v) => [v, v + 1]);
  });
  return box;
}

/** Resize by `f[i]` on spatial axis i. */
const resizeBy = (g: GraphBuilder, x: string, d: number[], f: number[], attrs: Record<string, AttrValue>) =>
  g.node(
    "Resize",
    [
      x,
      "",
      g.constant(
        [d.length],
        d.map((_, i) => (i < 2 ? 1 : f[i - 2])),
      ),
    ],
    attrs,
  );

describe("region rules are tight on single ops", () => {
  const single: [string, Layer][] = [
    ["Conv (positive weights)", (g, x, d, rng) => conv(g, x, d, rng, { positive: true })],
    ["MaxPool", (g, x, d, rng) => pool(g, x, d, rng, "MaxPool")],
    ["AveragePool", (g, x, d, rng) => pool(g, x, d, rng, "AveragePool")],
    [
      "nearest Resize",
      (g, x, d, rng) =>
        resizeBy(
          g,
          x,
          d,
          d.map(() => pick(rng, [2, 3])),
          { mode: "nearest" },
        ),
    ],
    [
      "nearest Resize as PyTorch exports it (asymmetric, floor)",
      (g, x, d) => resizeBy(g, x, d, [2, 2, 2], { mode: "nearest", coordinate_transformation_mode: "asymmetric", nearest_mode: "floor" }),
    ],
    ["linear Resize ×2", (g, x, d) => resizeBy(g, x, d, [2, 2, 2], { mode: "linear" })],
  ];
  for (const [name, layer] of single)
    for (const rank of [2, 3])
      it(`${name}, ${rank}D: predicted changed and needed regions equal brute force`, async () => {
        const rng = new Rng(name.length * 7 + rank);
        for (let s = 0; s < 4; s++) {
          const inDims = [1, 2, ...new Array(rank).fill(rank === 2 ? 12 : 7)];
          let stack: Stack | undefined;
          while (!stack) {
            const seed = rng.int(1 << 30);
            try {
              stack = { inDims, ...build(inDims, [(g, x) => layer(g, x, inDims, new Rng(seed))]) };
            } catch {
              // a window larger than the padded input: draw another
            }
          }
          const { bytes, outDims } = stack;
          const rg = regionGraph(parseModel(bytes));
          // changed: +100 inside the box moves every output whose window holds a box cell (max, mean and positive conv alike)
          const box = randomBox(rng, inDims, 4);
          const base = rand(
            rng,
            inDims.reduce((a, b) => a * b, 1),
          );
          const pert = Float32Array.from(base);
          forEachCell(inDims, (flat, c) => {
            if (inBox(c, box)) pert[flat] += 100;
          });
          const [y0, y1] = await runBatch(bytes, inDims, [base, pert]);
          expect(changedRegions(rg, box).get("y")?.box).toEqual(diffBox(outDims, y0, y1));
          const roi = randomBox(rng, outDims, 3);
          expect(neededRegions(rg, roi).get("x")?.box).toEqual(await bruteNeeded(stack, roi, rng));
        }
      });
});

describe("global ops", () => {
  it("GlobalAveragePool, a spatial ReduceMean and a MatMul over positions make the region everything from that node on", () => {
    const g = new GraphBuilder("global");
    const x = g.input("x", ["N", 2, 16, 16]);
    const c = g.node("Conv", [x, g.constant([2, 2, 3, 3], new Float32Array(36).fill(0.1))], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }, ["c"]);
    const gap = g.node("GlobalAveragePool", [c], {}, ["gap"]);
    g.node("Mul", [c, gap], {}, ["y"]);
    g.output("y", ["N", 2, 16, 16]);
    const rg = regionGraph(parseModel(g.toBytes()));
    expect(firstGlobal(rg)?.node.opType).toBe("GlobalAveragePool");
    const ch = changedRegions(rg, [
      [0, 1],
      [0, 2],
      [4, 6],
      [4, 6],
    ]);
    expect(ch.get("c")).toEqual({
      box: [
        [0, 1],
        [0, 2],
        [3, 7],
        [3, 7],
      ],
      global: false,
    });
    expect(ch.get("y")).toEqual({
      box: [
        [0, 1],
        [0, 2],
        [0, 16],
        [0, 16],
      ],
      global: true,
    });
    const need = neededRegions(rg, [
      [0, 1],
      [0, 1],
      [0, 1],
      [0, 1],
    ]);
    expect(need.get("x")).toEqual({
      box: [
        [0, 1],
        [0, 2],
        [0, 16],
        [0, 16],
      ],
      global: true,
    });
  });

  it("a reshape that merges the spatial axes (as transformers flatten tokens) is global; one that splits channels is not", () => {
    const g = new GraphBuilder("reshape");
    const x = g.input("x", ["N", 4, 8, 8]);
    const split = g.node("Reshape", [x, g.constantInt64([1, 2, 2, 8, 8])], {}, ["split"]);
    const back = g.node("Reshape", [split, g.constantInt64([1, 4, 8, 8])], {}, ["back"]);
    g.node("Reshape", [back, g.constantInt64([1, 4, 64])], {}, ["y"]);
    g.output("y", ["N", 4, 64]);
    const rg = regionGraph(parseModel(g.toBytes()));
    const ch = changedRegions(rg, [
      [0, 1],
      [0, 4],
      [2, 3],
      [5, 7],
    ]);
    expect(ch.get("back")).toEqual({
      box: [
        [0, 1],
        [0, 4],
        [2, 3],
        [5, 7],
      ],
      global: false,
    });
    expect(ch.get("y")?.global).toBe(true);
  });
});

const MODELS = join(import.meta.dirname, "..", "models");

/** A shipped model's output for a batch of inputs, with the runtime's default (optimised) session. */
async function runShipped(path: string, inDims: number[], inputs: Float32Array[]): Promise<Float32Array[]> {
  const session = await ort.InferenceSession.create(path);
  const n = inputs[0].length;
  const data = new Float32Array(n * inputs.length);
  inputs.forEach((x, i) => data.set(x, i * n));
  const feeds = { [session.inputNames[0]]: new ort.Tensor("float32", data, [inputs.length, ...inDims.slice(1)]) };
  const out = (await session.run(feeds))[session.outputNames[0]].data as Float32Array;
  await session.release();
  const m = out.length / inputs.length;
  return inputs.map((_, i) => out.subarray(i * m, (i + 1) * m));
}

describe("region rules on shipped models against brute force", () => {
  for (const [name, boxSide, roiSide] of [
    ["segnet-ph2.onnx", 8, 32],
    ["deeplab-hc18.onnx", 8, 32],
    ["volumes/unet3d-hippocampus.onnx", 8, 16],
  ] as const)
    it(`${name}: a block changes only predicted output cells; inputs outside the RoI's needed region never change its outputs`, async () => {
      const path = join(MODELS, name);
      const rg = regionGraph(readModelFile(path).proto);
      const inDims = rg.dims.get(rg.input)!;
      const outDims = rg.dims.get(rg.output)!;
      const rng = new Rng(name.length);
      const base = rand(
        rng,
        inDims.reduce((a, b) => a * b, 1),
      );
      const boxes = [0, 1].map(() =>
        randomBox(rng, inDims, boxSide).map(([lo, hi], i): [number, number] => (i < 2 ? [lo, hi] : [lo, lo + Math.min(boxSide, inDims[i] - lo)])),
      );
      const roi = outDims.map((d, i): [number, number] =>
        i < 2 ? [0, d] : [Math.floor((d - roiSide) / 3), Math.floor((d - roiSide) / 3) + roiSide],
      );
      const needed = neededRegions(rg, roi).get(rg.input)!;
      const outside = perturbInside(inDims, base, needed.box, rng, false);
      const [y0, y1, y2, yOut] = await runShipped(path, inDims, [base, ...boxes.map((b) => perturbInside(inDims, base, b, rng)), outside]);
      [y1, y2].forEach((y, t) => {
        const predicted = changedRegions(rg, boxes[t]).get(rg.output)!.box;
        const actual = diffBox(outDims, y0, y);
        expect(actual, "the block changed some output").toBeDefined();
        actual!.forEach(([lo, hi], a) =>
          expect(lo >= predicted[a][0] && hi <= predicted[a][1], `axis ${a}: changed ${lo}..${hi} outside ${predicted[a]}`).toBe(true),
        );
      });
      let roiCells = 0;
      forEachCell(outDims, (flat, c) => {
        if (!inBox(c, roi)) return;
        roiCells++;
        expect(yOut[flat]).toBe(y0[flat]);
      });
      expect(roiCells).toBeGreaterThan(0);
    });
});

describe("multiply-adds from the region rules", () => {
  // x [1,2,8,8] → Conv 3×3, 4 channels, pads 1 → Relu → (GlobalAveragePool → Mul with the Relu)
  function tiny(): RegionGraph {
    const g = new GraphBuilder("macs");
    const x = g.input("x", ["N", 2, 8, 8]);
    const c = g.node("Conv", [x, g.constant([4, 2, 3, 3], new Float32Array(72).fill(0.1))], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
    const r = g.node("Relu", [c]);
    g.node("Mul", [r, g.node("GlobalAveragePool", [r])], {}, ["y"]);
    g.output("y", ["N", 4, 8, 8]);
    return regionGraph(parseModel(g.toBytes()));
  }

  it("counts conv exactly, elementwise per element, and splits local from after the first global op", () => {
    const conv = 8 * 8 * 4 * (2 * 9);
    const perMap = 4 * 8 * 8;
    const m = networkMacs(tiny());
    expect(m).toMatchObject({ full: conv + perMap + perMap + perMap, local: conv + perMap });
    expect(m.firstGlobal).toMatch(/^GlobalAveragePool /);
  });

  it("an incremental pass recomputes the changed (and needed) 3×3 of the conv and Relu, and everything after the global op", () => {
    const g = tiny();
    const whole = neededRegions(g, [
      [0, 1],
      [0, 4],
      [0, 8],
      [0, 8],
    ]);
    const box: Box = [
      [0, 1],
      [0, 2],
      [4, 5],
      [4, 5],
    ];
    expect(incrementalMacs(g, box, whole)).toBe(9 * 4 * 18 + 9 * 4 + 4 * 64 + 4 * 64);
    // an RoI of one output pixel of channel 0 needs the whole conv and Relu maps (through the global op), channel 0 of
    // the pooled vector (64 taps) and its own Mul output
    const one = neededRegions(g, [
      [0, 1],
      [0, 1],
      [0, 1],
      [0, 1],
    ]);
    expect(neededMacs(g, one)).toBe(8 * 8 * 4 * 18 + 4 * 64 + 64 + 1);
  });

  it("segcause info says what share is local and names the first global op", () => {
    const r = segcause("info", "--model", join(MODELS, "deeplab-hc18.onnx"), "--json");
    expect(r.code, r.stderr).toBe(0);
    const { regions } = JSON.parse(r.stdout);
    const g = regionGraph(readModelFile(join(MODELS, "deeplab-hc18.onnx")).proto);
    expect(regions).toEqual(networkMacs(g));
    expect(regions.firstGlobal).toMatch(/^GlobalAveragePool/);
    expect(regions.local).toBeLessThan(regions.full);
    const t = segcause("info", "--model", join(MODELS, "unet-hc18.onnx"));
    expect(t.stdout).toMatch(/incremental inference: 100\.0% of the network's [\d.]+ GMAC per pass is local \(no op mixes all positions\)/);
  });
});

describe("ConvTranspose padding modes", () => {
  it("explicit pads are tight; SAME auto_pad and output_shape (whose split of the padding the rules over-cover) stay sound", async () => {
    let checked = 0;
    for (const mode of ["pads", "SAME_UPPER", "SAME_LOWER", "output_shape+1", "output_shape-1"])
      for (const k of [2, 3, 4])
        for (const s of [1, 2, 3]) {
          const n = 6;
          const attrs: Record<string, AttrValue> = { kernel_shape: [1, k], strides: [1, s] };
          if (mode === "pads") attrs.pads = [0, 1, 0, k - 1];
          else if (mode.startsWith("output_shape")) attrs.output_shape = [1, n * s + (mode.endsWith("+1") ? 1 : -1)];
          else attrs.auto_pad = mode;
          const inDims = [1, 1, 1, n];
          const { bytes, outDims } = build(inDims, [
            (g, x) => g.node("ConvTranspose", [x, g.constant([1, 1, 1, k], new Float32Array(k).fill(1))], attrs),
          ]);
          const rg = regionGraph(parseModel(bytes));
          const inputs = [new Float32Array(n), ...Array.from({ length: n }, (_, p) => Float32Array.from({ length: n }, (_, i) => (i === p ? 1 : 0)))];
          const [y0, ...ys] = await runBatch(bytes, inDims, inputs);
          // SAME with a kernel smaller than the stride: shapes.ts (input × stride, as the spec says) and onnxruntime disagree on the size
          if (y0.length !== outDims[3]) continue;
          ys.forEach((y, p) => {
            const actual = diffBox(outDims, y0, y);
            const predicted = changedRegions(rg, [
              [0, 1],
              [0, 1],
              [0, 1],
              [p, p + 1],
            ]).get("y")?.box;
            if (!actual) return;
            checked++;
            if (mode === "pads" || mode.startsWith("SAME")) expect(predicted, `${mode} k ${k} s ${s} at ${p}`).toEqual(actual);
            else expect(predicted![3][0] <= actual[3][0] && actual[3][1] <= predicted![3][1], `${mode} k ${k} s ${s} at ${p}`).toBe(true);
          });
        }
    expect(checked).toBeGreaterThan(200);
  });
});
