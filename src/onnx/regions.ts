/**
 * Region rules for incremental inference (issue 24): which part of every tensor a perturbation box of
 * the input changes (forward), and which part of every tensor the RoI's outputs need (backward). A
 * region is a box (a half-open interval on every axis of the tensor). Each op maps output axes to input
 * axes through its geometry (conv/pool windows, Resize's coordinate transform, Pad, Slice, Concat,
 * broadcasting, Transpose, reshapes that keep axes); an op that mixes all positions of a spatial axis
 * (global pooling, reductions, MatMul/Gemm, normalisation or softmax over spatial axes, reshapes that
 * merge spatial axes, any op without a rule) makes its output "global": from there on the region is
 * the whole tensor. Shapes come from shapes.ts, op parameters from op-params.ts.
 */
import type { ModelProto, NodeProto } from "onnx-buf";
import { fail } from "../errors.js";
import { attrInt, attrInts, attrString, describeNode, opsetOf } from "./attributes.js";
import { graphInputs } from "./graph.js";
import { normAxis, padAmounts, resizeGeometry, sliceParams, splitEven, windowParams } from "./op-params.js";
import { inferStatic, POSITIONWISE_OPS, type StaticInfo } from "./shapes.js";
import { BINARY, numel } from "./values.js";

/** Half-open interval [lo, hi) per axis. */
export type Box = [number, number][];

export interface Region {
  box: Box;
  /** the region is the whole tensor because an op upstream (forward) or downstream (backward) mixes all positions */
  global: boolean;
}

/**
 * How one output axis reads one input: the same index (id), every index of the input axis (all), index 0
 * of a broadcast axis (bcast, `from` undefined when the input has no such axis), or a table of the input
 * indices each output index reads (reads).
 */
type AxisMap =
  | { kind: "id"; from: number }
  | { kind: "all"; from: number }
  | { kind: "bcast"; from: number | undefined }
  | { kind: "reads"; from: number; reads: number[][] };

/** How output m of a node reads its input k: per output axis, plus input axes no output axis follows (read whole). */
interface InputMap {
  axes: AxisMap[];
  whole: number[];
}

export interface RegionNode {
  node: NodeProto;
  /** maps[m][k]: how output m reads dynamic input k (undefined for a static input) */
  maps: (InputMap | undefined)[][];
  /** mixes all positions of a spatial axis: its outputs' regions are the whole tensors */
  global: boolean;
  /** multiply-adds per element of output 0, averaged over the output */
  macsPerOutput: number;
}

export interface RegionGraph {
  input: string;
  output: string;
  dims: Map<string, number[]>;
  /** the nodes whose outputs depend on the input's values, in graph order */
  nodes: RegionNode[];
}

/** Per-position ops (any number of broadcast inputs). */
const ELEMENTWISE = new Set([...POSITIONWISE_OPS, ...Object.keys(BINARY), "Xor", "Where", "Sum", "Mean", "Cast", "Expand"]);

/** Ops whose outputs depend on the input's shape only, never its values. */
const SHAPE_ONLY = new Set(["Shape", "Size"]);

const WINDOW_OPS = new Set(["Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool"]);

const id = (from: number): AxisMap => ({ kind: "id", from });

/** Trailing-aligned broadcast of an input of `inDims` to `outDims`. */
function broadcastMap(inDims: number[], outDims: number[]): InputMap {
  const pad = outDims.length - inDims.length;
  return {
    axes: outDims.map((d, i) =>
      i < pad ? { kind: "bcast", from: undefined } : inDims[i - pad] === 1 && d !== 1 ? { kind: "bcast", from: i - pad } : id(i - pad),
    ),
    whole: [],
  };
}

/** The reads table of a window op's spatial axis: output o reads o·s − pb + j·d for j < k, inside the input. */
function windowReads(inSize: number, outSize: number, k: number, s: number, d: number, pb: number): number[][] {
  return Array.from({ length: outSize }, (_, o) => {
    const r: number[] = [];
    for (let j = 0; j < k; j++) {
      const i = o * s - pb + j * d;
      if (i >= 0 && i < inSize) r.push(i);
    }
    return r;
  });
}

/** ConvTranspose: output o receives input i when i·s − pb + j·d = o for some j < k. */
function transposedReads(inSize: number, outSize: number, k: number, s: number, d: number, pb: number): number[][] {
  const reads: number[][] = Array.from({ length: outSize }, () => []);
  for (let i = 0; i < inSize; i++)
    for (let j = 0; j < k; j++) {
      const o = i * s - pb + j * d;
      if (o >= 0 && o < outSize) reads[o].push(i);
    }
  for (const r of reads) r.sort((a, b) => a - b);
  return reads;
}

function windowMaps(node: NodeProto, x: number[], w: number[] | undefined, out: number[]): InputMap {
  const op = node.opType;
  const p = windowParams(node, x, w);
  const r = x.length - 2;
  const spatial: AxisMap[] = [];
  for (let i = 0; i < r; i++) {
    const [inS, outS, k, s, d] = [x[i + 2], out[i + 2], p.kernel[i], p.strides[i], p.dilations[i]];
    if (op === "ConvTranspose") {
      // total padding of the transposed window: explicit pads (NOTSET), split as the spec splits auto_pad
      // (SAME_*), or, with output_shape, every split the spec and ONNX Runtime's integer division allow
      const autoPad = attrString(node, "auto_pad", "NOTSET");
      const outPad = attrInts(node, "output_padding")?.[i] ?? 0;
      const total = s * (inS - 1) + outPad + (k - 1) * d + 1 - outS;
      const half = [Math.floor(total / 2), Math.trunc(total / 2)];
      // (ONNX Runtime pads no less than 0: a larger output_shape only grows the end)
      const heads = attrInts(node, "output_shape")
        ? [total, Math.max(total, 0)].flatMap((t) => [Math.floor(t / 2), Math.trunc(t / 2), t - Math.floor(t / 2), t - Math.trunc(t / 2)])
        : autoPad === "NOTSET"
          ? [attrInts(node, "pads")?.[i] ?? 0]
          : [autoPad === "SAME_LOWER" ? total - half[0] : half[0]];
      const tables = [...new Set(heads)].map((pb) => transposedReads(inS, outS, k, s, d, pb));
      const reads = tables[0].map((_, o) => [...new Set(tables.flatMap((t) => t[o]))].sort((a, b) => a - b));
      spatial.push({ kind: "reads", from: i + 2, reads });
    } else spatial.push({ kind: "reads", from: i + 2, reads: windowReads(inS, outS, k, s, d, p.pads[i]) });
  }
  const conv = op === "Conv" || op === "ConvTranspose";
  return { axes: [id(0), conv ? { kind: "all", from: 1 } : id(1), ...spatial], whole: [] };
}

/** Input coordinate of output index o under Resize's coordinate transform (ONNX spec). */
function resizeCoordinate(mode: string, o: number, scale: number, inS: number, outS: number): number {
  switch (mode) {
    case "half_pixel":
      return (o + 0.5) / scale - 0.5;
    case "pytorch_half_pixel":
      return outS > 1 ? (o + 0.5) / scale - 0.5 : 0;
    case "align_corners":
      return outS === 1 ? 0 : (o * (inS - 1)) / (outS - 1);
    case "asymmetric":
      return o / scale;
    case "tf_half_pixel_for_nearest":
      return (o + 0.5) / scale;
    case "half_pixel_symmetric": {
      const adj = outS / (scale * inS);
      return (inS / 2) * (1 - adj) + (o + 0.5) / scale - 0.5;
    }
    default:
      fail(`Resize coordinate_transformation_mode '${mode}' has no region rule`);
  }
}

function nearestIndex(x: number, mode: string): number {
  switch (mode) {
    case "floor":
      return Math.floor(x);
    case "ceil":
      return Math.ceil(x);
    case "round_prefer_ceil":
      return Math.floor(x + 0.5);
    default: // round_prefer_floor
      return x === Math.floor(x) + 0.5 ? Math.floor(x) : Math.round(x);
  }
}

function resizeMaps(node: NodeProto, x: StaticInfo, ins: (StaticInfo | undefined)[], out: number[]): InputMap | undefined {
  const upsample = node.opType === "Upsample";
  const { scales } = resizeGeometry(node, x, upsample ? ins[1] : ins[2], upsample ? undefined : ins[3]);
  const mode = attrString(node, "mode", "nearest");
  const transform = upsample ? "asymmetric" : attrString(node, "coordinate_transformation_mode", "half_pixel");
  const nearestMode = upsample ? "floor" : attrString(node, "nearest_mode", "round_prefer_floor");
  if (transform === "tf_crop_and_resize") return undefined;
  const antialias = attrInt(node, "antialias", 0) === 1;
  const axes = x.dims.map((inS, a): AxisMap => {
    const outS = out[a];
    if (inS === outS && scales[a] === 1) return id(a);
    if (antialias && outS < inS) return { kind: "all", from: a }; // the filter widens with the downscale factor
    // ONNX Runtime computes the coordinate in float32. When the factor it divides by is a float32 and the
    // coordinate a short binary fraction, that is exact; otherwise a coordinate near a rounding tie (nearest)
    // or an integer (linear, cubic) may land on either side, and both sides are read.
    const factor = transform === "align_corners" ? (inS - 1) / Math.max(outS - 1, 1) : scales[a];
    const exactFactor = Math.fround(factor) === factor && transform !== "half_pixel_symmetric";
    const reads = Array.from({ length: outS }, (_, o) => {
      const c = resizeCoordinate(transform, o, scales[a], inS, outS);
      const eps = exactFactor && Number.isInteger(c * 1024) ? 0 : 1e-4;
      const clamp = (i: number) => Math.min(Math.max(i, 0), inS - 1);
      if (mode === "nearest") return [...new Set([c - eps, c + eps].map((v) => clamp(nearestIndex(v, nearestMode))))].sort((p, q) => p - q);
      // linear reads floor(c) and the next input (unless c is an integer: weight 0), cubic one more on each side
      const lo = Math.floor(c - eps);
      const hi = eps === 0 && Number.isInteger(c) ? c : Math.floor(c + eps) + 1;
      const span = mode === "cubic" ? 1 : 0;
      const taps: number[] = [];
      for (let i = clamp(lo - span); i <= clamp(hi + span); i++) taps.push(i);
      return taps;
    });
    return { kind: "reads", from: a, reads };
  });
  return { axes, whole: [] };
}

function padMaps(node: NodeProto, x: StaticInfo, ins: (StaticInfo | undefined)[], out: number[]): InputMap {
  const pads = padAmounts(node, x, ins);
  const mode = attrString(node, "mode", "constant");
  const r = x.dims.length;
  const axes = x.dims.map((inS, a): AxisMap => {
    if (pads[a] === 0 && pads[a + r] === 0) return id(a);
    const reads = Array.from({ length: out[a] }, (_, o) => {
      let i = o - pads[a];
      if (i >= 0 && i < inS) return [i];
      if (mode === "constant") return [];
      if (mode === "edge") return [Math.min(Math.max(i, 0), inS - 1)];
      if (mode === "wrap") return [((i % inS) + inS) % inS];
      // reflect (without repeating the edge)
      const period = 2 * (inS - 1);
      i = ((i % period) + period) % period;
      return [i < inS ? i : period - i];
    });
    return { kind: "reads", from: a, reads };
  });
  return { axes, whole: [] };
}

/** Slice-like selection: output o of axis a reads start + o·step. */
function selectMap(rank: number, out: number[], picks: Map<number, (o: number) => number>): InputMap {
  return {
    axes: Array.from({ length: rank }, (_, a): AxisMap => {
      const f = picks.get(a);
      return f ? { kind: "reads", from: a, reads: Array.from({ length: out[a] }, (_, o) => [f(o)]) } : id(a);
    }),
    whole: [],
  };
}

/**
 * Reshape, Flatten, Squeeze, Unsqueeze: axes grouped where the products of sizes agree; a group of one
 * axis of the same size on both sides (size-1 axes aside) keeps its index, others mix.
 */
function reshapeMap(inDims: number[], outDims: number[]): InputMap {
  const axes: AxisMap[] = new Array(outDims.length);
  const whole: number[] = [];
  let i = 0;
  let j = 0;
  while (i < inDims.length || j < outDims.length) {
    const gi = [i];
    const gj = [j];
    let pi = inDims[i] ?? 1;
    let pj = outDims[j] ?? 1;
    i++;
    j++;
    while (pi !== pj) {
      if (pi < pj && i < inDims.length) {
        pi *= inDims[i];
        gi.push(i++);
      } else if (j < outDims.length) {
        pj *= outDims[j];
        gj.push(j++);
      } else break;
    }
    const realIn = gi.filter((a) => a < inDims.length && inDims[a] > 1);
    const realOut = gj.filter((a) => a < outDims.length && outDims[a] > 1);
    if (realIn.length <= 1 && realOut.length <= 1) {
      for (const b of gj) if (b < outDims.length) axes[b] = realOut.includes(b) ? id(realIn[0]) : { kind: "bcast", from: undefined };
      for (const a of gi) if (a < inDims.length && !realIn.includes(a)) whole.push(a);
    } else {
      for (const b of gj) if (b < outDims.length) axes[b] = { kind: "all", from: realIn[0] };
      for (const a of realIn.slice(1)) whole.push(a);
    }
  }
  return { axes, whole };
}

/** Ops that mix all indices of some axes: those axes read whole, the others keep their index. */
function mixMap(rank: number, mixed: number[], outRank = rank, keep = true): InputMap {
  if (keep) return { axes: Array.from({ length: rank }, (_, a) => (mixed.includes(a) ? { kind: "all", from: a } : id(a))), whole: [] };
  const kept = [...Array(rank).keys()].filter((a) => !mixed.includes(a));
  return { axes: kept.slice(0, outRank).map(id), whole: mixed };
}

/** The region rules of one node: maps per (output, dynamic input), or undefined when it has none (global). */
function nodeMaps(
  node: NodeProto,
  ins: (StaticInfo | undefined)[],
  outs: StaticInfo[],
  dynamic: boolean[],
  opset: number,
): (InputMap | undefined)[][] | undefined {
  const op = node.opType;
  const x = ins[0]!;
  const out0 = outs[0].dims;
  const firstOnly = dynamic.every((d, k) => k === 0 || !d);
  const each = (f: (k: number) => InputMap | undefined) => outs.map(() => ins.map((_, k) => (dynamic[k] ? f(k) : undefined)));
  if (ELEMENTWISE.has(op)) return each((k) => broadcastMap(ins[k]!.dims, out0));
  if (op === "BatchNormalization" || op === "Identity") return firstOnly ? each(() => broadcastMap(x.dims, out0)) : undefined;
  if (WINDOW_OPS.has(op)) return firstOnly ? each(() => windowMaps(node, x.dims, ins[1]?.dims, out0)) : undefined;
  if (op === "Resize" || op === "Upsample") {
    const m = firstOnly ? resizeMaps(node, x, ins, out0) : undefined;
    return m && each(() => m);
  }
  if (op === "Pad") return firstOnly ? each(() => padMaps(node, x, ins, out0)) : undefined;
  if (op === "Slice") {
    if (!firstOnly) return undefined;
    const { starts, axes, steps } = sliceParams(node, x, ins);
    return each(() => selectMap(x.dims.length, out0, new Map(axes.map((a, i) => [a, (o: number) => starts[i] + o * steps[i]]))));
  }
  if (op === "Split") {
    if (!firstOnly) return undefined;
    const axis = normAxis(attrInt(node, "axis", 0), x.dims.length);
    const sizes = attrInts(node, "split") ?? (opset >= 13 ? ins[1]?.value : undefined) ?? splitEven(x.dims[axis], node.output.length);
    let off = 0;
    const maps = sizes.map((s) => {
      const start = off;
      off += s;
      return [
        selectMap(
          x.dims.length,
          outs[0].dims.map((d, a) => (a === axis ? s : d)),
          new Map([[axis, (o: number) => start + o]]),
        ),
      ];
    });
    return maps;
  }
  if (op === "Concat") {
    const axis = normAxis(attrInt(node, "axis", 0), x.dims.length);
    const offsets: number[] = [];
    ins.reduce((off, t) => (offsets.push(off), off + (t?.dims[axis] ?? 0)), 0);
    return each((k) => {
      const size = ins[k]!.dims[axis];
      const reads = Array.from({ length: out0[axis] }, (_, o) => (o >= offsets[k] && o < offsets[k] + size ? [o - offsets[k]] : []));
      return { axes: out0.map((_, a) => (a === axis ? { kind: "reads", from: a, reads } : id(a))), whole: [] };
    });
  }
  if (op === "Transpose") {
    const perm = attrInts(node, "perm") ?? [...x.dims.keys()].reverse();
    return firstOnly ? [[{ axes: perm.map(id), whole: [] }]] : undefined;
  }
  if (op === "Reshape" || op === "Flatten" || op === "Squeeze" || op === "Unsqueeze") {
    if (!firstOnly) return undefined;
    return [[reshapeMap(x.dims, out0)]];
  }
  const rank = x.dims.length;
  if (op === "GlobalAveragePool" || op === "GlobalMaxPool" || op === "GlobalLpPool") {
    const mixed = [...Array(rank).keys()].filter((a) => a >= 2);
    return firstOnly ? [[mixMap(rank, mixed)]] : undefined;
  }
  if (op.startsWith("Reduce") || op === "ArgMax" || op === "ArgMin") {
    if (!firstOnly) return undefined;
    const { reduceAxes } = op.startsWith("Arg")
      ? { reduceAxes: [normAxis(attrInt(node, "axis", 0), rank)] }
      : { reduceAxes: reduceAxesOf(node, ins, rank) };
    const keep = attrInt(node, "keepdims", 1) === 1;
    return [[mixMap(rank, reduceAxes, out0.length, keep)]];
  }
  if (op === "Softmax" || op === "LogSoftmax" || op === "Hardmax" || op === "LpNormalization") {
    if (!firstOnly) return undefined;
    const axis = normAxis(attrInt(node, "axis", op === "LpNormalization" || opset >= 13 ? -1 : 1), rank);
    const mixed = op === "LpNormalization" || opset >= 13 ? [axis] : [...Array(rank).keys()].filter((a) => a >= axis);
    return [[mixMap(rank, mixed)]];
  }
  if (op === "LayerNormalization" || op === "InstanceNormalization" || op === "GroupNormalization") {
    if (!firstOnly) return undefined;
    const from = op === "LayerNormalization" ? normAxis(attrInt(node, "axis", -1), rank) : op === "InstanceNormalization" ? 2 : 1;
    const mixed = [...Array(rank).keys()].filter((a) => a >= from);
    return outs.map(() => [mixMap(rank, mixed)]);
  }
  return undefined;
}

function reduceAxesOf(node: NodeProto, ins: (StaticInfo | undefined)[], rank: number): number[] {
  const fromAttr = attrInts(node, "axes");
  const axes = fromAttr ?? (node.input[1] ? ins[1]?.value : undefined);
  if (!axes || axes.length === 0) return attrInt(node, "noop_with_empty_axes", 0) ? [] : [...Array(rank).keys()];
  return axes.map((a) => normAxis(a, rank));
}

/** Multiply-adds per element of the node's first output (conv, matmul and gemm exact; windows per tap; others 1). */
function macsPerOutput(node: NodeProto, ins: (StaticInfo | undefined)[], out: number[]): number {
  const op = node.opType;
  const x = ins[0]!.dims;
  const w = ins[1]?.dims;
  switch (op) {
    case "Conv":
      return numel(w!.slice(1));
    case "ConvTranspose":
      // every input element scatters into Cout/group · prod(kernel) outputs
      return (numel(x) * numel(w!.slice(1))) / numel(out);
    case "MatMul":
      return x[x.length - 1];
    case "Gemm":
      return attrInt(node, "transA", 0) ? x[0] : x[1];
    case "MaxPool":
    case "AveragePool":
    case "LpPool":
      return numel(windowParams(node, x).kernel);
    default:
      return Math.max(numel(x) / Math.max(numel(out), 1), 1);
  }
}

/** Whether an output position reads all positions of a spatial axis (of size > 1) of some input. */
function mixesSpatial(maps: (InputMap | undefined)[][], ins: (StaticInfo | undefined)[], spatial: (Set<number> | undefined)[]): boolean {
  return maps.some((perInput) =>
    perInput.some((map, k) => {
      const wide = (a: number | undefined) => a !== undefined && !!spatial[k]?.has(a) && ins[k]!.dims[a] > 1;
      return !!map && (map.axes.some((a) => a.kind === "all" && wide(a.from)) || map.whole.some(wide));
    }),
  );
}

/**
 * The region graph of a model at batch 1: static shapes, the nodes that depend on the input's values and
 * each one's region rules. `input` and `output` default to the graph's first input and output.
 */
export function regionGraph(model: ModelProto, opts: { input?: string; output?: string } = {}): RegionGraph {
  const input = opts.input ?? graphInputs(model)[0].name;
  const output = opts.output ?? model.graph!.output[0].name;
  const infos = inferStatic(model, 1);
  const opset = opsetOf(model) || 13;
  const dynamicT = new Set([input]);
  // the axes of each tensor that carry the input's spatial positions (the input's axes 2 on)
  const inRank = infos.get(input)?.dims.length ?? fail(`the model has no input '${input}'`);
  const spatial = new Map([[input, new Set([...Array(inRank).keys()].filter((a) => a >= 2))]]);
  const nodes: RegionNode[] = [];
  for (const node of model.graph!.node) {
    const dynamic = node.input.map((t) => t !== "" && dynamicT.has(t));
    if (!dynamic.some(Boolean) || SHAPE_ONLY.has(node.opType)) continue;
    const ins = node.input.map((t) => (t === "" ? undefined : infos.get(t)));
    const outs = node.output.map((t) => infos.get(t)!);
    const unknown = [...ins, ...outs].find((i) => i?.unknown);
    if (unknown) fail(`${describeNode(node)}: region rules need static shapes (${unknown.unknown})`);
    for (const o of node.output) if (o) dynamicT.add(o);
    const maps = nodeMaps(node, ins, outs, dynamic, opset);
    const global =
      !maps ||
      mixesSpatial(
        maps,
        ins,
        node.input.map((t) => spatial.get(t)),
      );
    node.output.forEach((t, m) => {
      const axes = new Set<number>();
      if (!global)
        maps[m].forEach((map, k) => {
          const from = spatial.get(node.input[k]);
          map?.axes.forEach((a, i) => a.kind !== "all" && a.from !== undefined && from?.has(a.from) && axes.add(i));
        });
      spatial.set(t, axes);
    });
    nodes.push({
      node,
      maps: maps ?? node.output.map(() => ins.map(() => undefined)),
      global,
      macsPerOutput: macsPerOutput(node, ins, outs[0].dims),
    });
  }
  if (!dynamicT.has(output)) fail(`the model's output '${output}' does not depend on its input '${input}'`);
  const dims = new Map([...infos].filter(([t]) => dynamicT.has(t)).map(([t, i]) => [t, i.dims]));
  return { input, output, dims, nodes };
}

const fullBox = (dims: number[]): Box => dims.map((d) => [0, d]);
const isEmpty = (b: Box) => b.some(([lo, hi]) => hi <= lo);

/** Bounding box of two boxes of one tensor. */
function hull(a: Box | undefined, b: Box): Box {
  return a ? a.map(([lo, hi], i) => [Math.min(lo, b[i][0]), Math.max(hi, b[i][1])]) : b;
}

export function intersect(a: Box, b: Box): Box {
  return a.map(([lo, hi], i) => [Math.max(lo, b[i][0]), Math.min(hi, b[i][1])]);
}

export function boxVolume(b: Box): number {
  return b.reduce((v, [lo, hi]) => v * Math.max(hi - lo, 0), 1);
}

/** Per input index of a reads table: the first and last output that reads it (-1 when none); built once per table. */
const readers = new WeakMap<number[][], { first: Int32Array; last: Int32Array }>();
function readersOf(reads: number[][]): { first: Int32Array; last: Int32Array } {
  let r = readers.get(reads);
  if (!r) {
    const size = reads.reduce((m, rs) => rs.reduce((n, i) => Math.max(n, i + 1), m), 0);
    r = { first: new Int32Array(size).fill(-1), last: new Int32Array(size).fill(-1) };
    reads.forEach((rs, o) => {
      for (const i of rs) {
        if (r!.first[i] < 0) r!.first[i] = o;
        r!.last[i] = o;
      }
    });
    readers.set(reads, r);
  }
  return r;
}

/** The interval of one output axis whose outputs read the input box `inBox` along the mapped input axis. */
function forwardAxis(m: AxisMap, inBox: Box, outSize: number): [number, number] {
  if (m.kind === "id") return inBox[m.from];
  if (m.kind !== "reads") return [0, outSize];
  const [lo, hi] = inBox[m.from];
  const { first: f, last: l } = readersOf(m.reads);
  let first = -1;
  let last = -1;
  for (let i = Math.max(lo, 0); i < Math.min(hi, f.length); i++)
    if (f[i] >= 0) {
      if (first < 0 || f[i] < first) first = f[i];
      if (l[i] > last) last = l[i];
    }
  return first < 0 ? [0, 0] : [first, last + 1];
}

/**
 * The changed region of every tensor when the input changes inside `box` (a box over every input axis).
 * Tensors the change does not reach are absent.
 */
export function changedRegions(g: RegionGraph, box: Box): Map<string, Region> {
  const out = new Map<string, Region>();
  if (!isEmpty(box)) out.set(g.input, { box, global: false });
  for (const n of g.nodes) {
    n.node.output.forEach((t, m) => {
      if (!t) return;
      const dims = g.dims.get(t)!;
      let res: Box | undefined;
      let global = n.global;
      n.node.input.forEach((src, k) => {
        const r = out.get(src);
        if (!r) return;
        global ||= r.global;
        const map = n.maps[m][k];
        const b = n.global || !map ? fullBox(dims) : map.axes.map((a, i) => forwardAxis(a, r.box, dims[i]));
        if (!isEmpty(b)) res = hull(res, b);
      });
      if (res) out.set(t, { box: global ? fullBox(dims) : res, global });
    });
  }
  return out;
}

/** The box of an input that output box `outBox` reads through `map` (axes no output axis follows: whole). */
function backwardAxes(map: InputMap, outBox: Box, inDims: number[]): Box {
  const box: Box = fullBox(inDims);
  map.axes.forEach((m, i) => {
    if (m.from === undefined) return;
    if (m.kind === "id") box[m.from] = outBox[i];
    else if (m.kind === "bcast") box[m.from] = [0, 1];
    else if (m.kind === "reads") {
      let lo = Infinity;
      let hi = -Infinity;
      for (let o = outBox[i][0]; o < outBox[i][1]; o++)
        for (const r of m.reads[o]) {
          lo = Math.min(lo, r);
          hi = Math.max(hi, r + 1);
        }
      box[m.from] = lo < hi ? [lo, hi] : [0, 0];
    }
  });
  return box;
}

/**
 * The needed region of every tensor for the outputs inside `box` (a box over every output axis).
 * `widen(node, k, inBox, outBox)` may enlarge what input k must hold (an executor's halo).
 */
export function neededRegions(g: RegionGraph, box: Box, widen?: (n: RegionNode, k: number, inBox: Box, outBox: Box) => Box): Map<string, Region> {
  const need = new Map<string, Region>();
  if (!isEmpty(box)) need.set(g.output, { box, global: false });
  for (let j = g.nodes.length - 1; j >= 0; j--) {
    const n = g.nodes[j];
    n.node.output.forEach((t, m) => {
      const r = t ? need.get(t) : undefined;
      if (!r) return;
      n.node.input.forEach((src, k) => {
        const dims = g.dims.get(src);
        if (!dims) return; // a static input
        const map = n.maps[m][k];
        const global = r.global || n.global || !map;
        const read = global ? fullBox(dims) : backwardAxes(map, r.box, dims);
        const b = widen && !global ? widen(n, k, read, r.box) : read;
        if (isEmpty(b)) return;
        const prev = need.get(src);
        need.set(src, { box: hull(prev?.box, b), global: global || !!prev?.global });
      });
    });
  }
  return need;
}

/** The first node that mixes all positions (its name and op), if any. */
export function firstGlobal(g: RegionGraph): RegionNode | undefined {
  return g.nodes.find((n) => n.global);
}

/** Multiply-adds of the node's first output over `box` (the whole output when undefined). */
export function nodeMacs(g: RegionGraph, n: RegionNode, box?: Box): number {
  const t = n.node.output[0];
  return n.macsPerOutput * (box ? boxVolume(box) : numel(g.dims.get(t)!));
}
