/**
 * Random 2D conv/pool/resize/ConvTranspose/skip stacks and a tiny local model, shared by the tests of
 * the RoI-cropped (crop.test.ts) and changed-region (changed.test.ts) graphs, and a bare ORT run.
 */
import ort from "onnxruntime-node";
import { type AttrValue, GraphBuilder } from "../../src/onnx/builder.js";
import { parseModel } from "../../src/onnx/graph.js";
import { inferStatic } from "../../src/onnx/shapes.js";
import { Rng } from "../../src/util/rng.js";

export const pick = <T>(rng: Rng, xs: T[]): T => xs[rng.int(xs.length)];
export const rand = (rng: Rng, n: number) => Float32Array.from({ length: n }, () => rng.next() * 2 - 1);

/** One random 2D layer on `x` of dims `d`: conv, pool, ×2 resize, ConvTranspose, a channel skip, or a sigmoid. */
export function layer(g: GraphBuilder, x: string, d: number[], rng: Rng): string {
  const kind = rng.int(6);
  const c = d[1];
  if (kind === 0) {
    const k = pick(rng, [1, 3, 5]);
    const attrs: Record<string, AttrValue> = {
      kernel_shape: [k, k],
      strides: Array(2).fill(pick(rng, [1, 1, 2])),
      dilations: Array(2).fill(pick(rng, [1, 2])),
    };
    if (rng.next() < 0.3 && attrs.dilations !== undefined && (attrs.dilations as number[])[0] === 1)
      attrs.auto_pad = pick(rng, ["SAME_UPPER", "SAME_LOWER"]);
    else attrs.pads = Array.from({ length: 4 }, () => rng.int(k));
    return g.node("Conv", [x, g.constant([2, c, k, k], rand(rng, 2 * c * k * k)), g.constant([2], rand(rng, 2))], attrs);
  }
  if (kind === 1) {
    const k = pick(rng, [2, 3]);
    return g.node(pick(rng, ["MaxPool", "AveragePool"]), [x], {
      kernel_shape: [k, k],
      strides: [2, 2],
      pads: Array.from({ length: 4 }, () => rng.int(Math.ceil(k / 2))),
      ceil_mode: rng.int(2),
    });
  }
  if (kind === 2)
    return g.node("Resize", [x, "", g.constant([4], [1, 1, 2, 2])], {
      mode: pick(rng, ["nearest", "linear"]),
      coordinate_transformation_mode: pick(rng, ["half_pixel", "asymmetric"]),
      nearest_mode: "floor",
    });
  if (kind === 3) {
    const k = pick(rng, [2, 3]);
    return g.node("ConvTranspose", [x, g.constant([c, 2, k, k], rand(rng, c * 2 * k * k))], {
      kernel_shape: [k, k],
      strides: [2, 2],
      pads: Array.from({ length: 4 }, () => rng.int(k)),
    });
  }
  if (kind === 4) {
    const branch = g.node("Conv", [x, g.constant([2, c, 3, 3], rand(rng, 2 * c * 9))], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
    return g.node("Concat", [x, g.node("Relu", [branch])], { axis: 1 });
  }
  return g.node("Sigmoid", [x]);
}

/**
 * One block that mixes all positions of `x` (dims `d`), joined to a local path as DeepLab's ASPP, a
 * normalisation or a token MLP does: global average pooling expanded and concatenated with a local
 * branch, or added broadcast; x minus its ReduceMean over the spatial axes; a Flatten into tokens, a
 * MatMul over channels and a Reshape back, added to x. Returns the output and its channels.
 */
export function globalLayer(g: GraphBuilder, x: string, d: number[], rng: Rng, kind = rng.int(4)): { y: string; channels: number } {
  const [c, H, W] = d.slice(1);
  const conv1 = (t: string, cin: number, cout: number) =>
    g.node("Conv", [t, g.constant([cout, cin, 1, 1], rand(rng, cout * cin)), g.constant([cout], rand(rng, cout))], { kernel_shape: [1, 1] });
  if (kind === 0) {
    const pooled = g.node("Relu", [conv1(g.node("GlobalAveragePool", [x]), c, 2)]);
    const local = g.node("Relu", [g.node("Conv", [x, g.constant([2, c, 3, 3], rand(rng, 2 * c * 9))], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] })]);
    const wide = g.node("Expand", [pooled, g.constantInt64([1, 2, H, W])]);
    return { y: g.node("Concat", [local, x, wide], { axis: 1 }), channels: c + 4 };
  }
  if (kind === 1) return { y: g.node("Add", [x, g.node("Sigmoid", [conv1(g.node("GlobalAveragePool", [x]), c, c)])]), channels: c };
  if (kind === 2) return { y: g.node("Sub", [x, g.node("ReduceMean", [x], { axes: [2, 3], keepdims: 1 })]), channels: c };
  const tokens = g.node("Transpose", [g.node("Flatten", [x], { axis: 2 })], { perm: [1, 0] });
  const mixed = g.node("MatMul", [tokens, g.constant([c, c], rand(rng, c * c))]);
  const back = g.node("Reshape", [g.node("Transpose", [mixed], { perm: [1, 0] }), g.constantInt64([1, c, H, W])]);
  return { y: g.node("Add", [x, back]), channels: c };
}

/**
 * A random stack of 3-6 layers on a 1×2×24..39² input whose sizes stay in [4, 64]; with `global`, one
 * block from globalLayer() (of `kind`, else random) after the first layer (batch 1 only for the token block).
 */
export function randomStack(rng: Rng, opts: { global?: boolean; kind?: number } = {}): { bytes: Uint8Array; inDims: number[]; outDims: number[] } {
  const inDims = [1, 2, 24 + rng.int(16), 24 + rng.int(16)];
  const g = new GraphBuilder("stack");
  let x = g.input("x", ["N", ...inDims.slice(1)]);
  let dims = inDims;
  let global = !!opts.global;
  for (let n = 0, tries = 0; n < 3 + rng.int(4) && tries < 40; tries++) {
    if (global && n === 1) {
      const { y, channels } = globalLayer(g, x, dims, rng, opts.kind);
      x = y;
      dims = [1, channels, ...dims.slice(2)];
      global = false;
    }
    const trial = new GraphBuilder("probe");
    const seed = rng.int(1 << 30);
    const y = layer(trial, trial.input("x", dims), dims, new Rng(seed));
    const out = inferStatic(parseModel(trial.toBytes()), 1).get(y)?.dims;
    if (!out || out.slice(2).some((v) => v < 4 || v > 64)) continue;
    x = layer(g, x, dims, new Rng(seed));
    dims = [1, ...out.slice(1)];
    n++;
  }
  x = g.node("Identity", [x], {}, ["y"]);
  g.output("y", ["N", ...dims.slice(1)]);
  return { bytes: g.toBytes(), inDims, outDims: dims };
}

export async function run(bytes: Uint8Array, input: Float32Array, dims: number[]): Promise<{ data: Float32Array; dims: readonly number[] }> {
  const s = await ort.InferenceSession.create(bytes, { logSeverityLevel: 3, intraOpNumThreads: 1 });
  const out = (await s.run({ [s.inputNames[0]]: new ort.Tensor("float32", input, dims) }))[s.outputNames[0]];
  await s.release();
  return { data: out.data as Float32Array, dims: out.dims };
}

/** Rows r0..r1 and cols c0..c1 of every (n, c) plane of an NCHW tensor. */
export function crop(x: Float32Array, dims: number[], [r0, r1]: number[], [c0, c1]: number[]): Float32Array {
  const [N, C, H, W] = dims;
  const out = new Float32Array(N * C * (r1 - r0) * (c1 - c0));
  let k = 0;
  for (let p = 0; p < N * C; p++) for (let y = r0; y < r1; y++) for (let c = c0; c < c1; c++) out[k++] = x[(p * H + y) * W + c];
  return out;
}

// A local model: two 3×3 convs, so RoI rows/cols 8..15 read input rows/cols 6..17 (9 of the 16 8×8 blocks).
