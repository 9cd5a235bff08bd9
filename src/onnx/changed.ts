/**
 * Changed-region execution (issue 24, phase 3, after Krypton): one ONNX graph that recomputes every
 * tensor only over a window around the part a perturbation changes and the RoI needs, reading the
 * rest from the unperturbed pass's tensors (fed as constant inputs). Window positions and sizes are
 * inputs (int64 starts and pads), so one session serves every perturbation box.
 *
 * Each tensor x has a *tile*: its values over its window. An op reads x over the box R its output
 * window reads: the tile pasted into the cached tensor there (Where over a Slice of the cache and a
 * Slice of the tile padded into a canvas, with its mask). The cache is padded with the op's padding
 * value, so a Conv/pool over R with no padding of its own computes the full graph's values; Resize
 * and ConvTranspose run on a widened window and the wanted part is sliced out (as in crop.ts). A
 * unary per-position op whose input has no other reader reads that tile directly.
 *
 * A tile holds the true perturbed values wherever the tensor is needed: there it is computed from
 * inputs that are true where needed (by induction), and a needed cell outside the window is not
 * changed, so the cache is right. Cells outside the needed region may be stale; nothing needed reads them.
 */
import { clone, create, toBinary } from "@bufbuild/protobuf";
import { type ModelProto, ModelProtoSchema, type NodeProto, NodeProtoSchema, TensorProto_DataType } from "onnx-buf";
import { attrInt, attrInts, attrString, describeNode, opsetOf } from "./attributes.js";
import { attribute, floatTensor, int64Tensor, valueInfo } from "./builder.js";
import { CropRefused, live, roiNeeded } from "./crop.js";
import { resizeGeometry, type WindowParams, windowParams } from "./op-params.js";
import { type Box, changedRegions, nodeMacs, type Region, type RegionGraph, type RegionNode, regionGraph } from "./regions.js";
import { inferStatic, POSITIONWISE_OPS, type StaticInfo } from "./shapes.js";
import { BINARY } from "./values.js";

/** A spatial window: [lo, hi) on each of the two spatial axes. */
export type Win = [number, number][];

/** A cached unperturbed tensor, padded on its spatial axes with `value` (the padding its readers assume). */
export interface CacheSpec {
  feed: string;
  tensor: string;
  pad: [number, number][];
  value: number;
}

interface ReadSpec {
  tensor: string;
  /** undefined: the op reads the producer's tile directly (same window by construction) */
  cache?: CacheSpec;
  feed: string;
}

type OpKind = "window" | "transpose" | "resize" | "pointwise";

interface OpSpec {
  rn: RegionNode;
  kind: OpKind;
  y: string;
  /** per node input: how it is read (undefined for a static input) */
  reads: (ReadSpec | undefined)[];
  p?: WindowParams;
  scales?: number[];
  mode?: string;
  /** feed prefix of the slice that cuts a widened window's output to the tile */
  cut?: string;
  /** AveragePool: the cells its divisor counts (per spatial axis, tensor coordinates), divided out explicitly */
  counted?: [number, number][];
}

export interface ChangedGraph {
  bytes: Uint8Array;
  g: RegionGraph;
  need: Map<string, Region>;
  /** the model input: fed as its tile [N, C, h, w] */
  input: string;
  /** the derived graph's output: the model output's tile */
  output: string;
  caches: CacheSpec[];
  ops: OpSpec[];
  /** tensors read through a canvas (pasted), with their feed prefix */
  canvases: Map<string, string>;
  /** multiply-adds of one full pass */
  fullMacs: number;
  /** ops of the derived graph (the model's own and the pastes' slices, pads and Wheres): each costs a pass its overhead */
  nodes: number;
}

/** The int64 feeds, the tile windows and the multiply-adds of one perturbation box. */
export interface BoxPlan {
  ints: Record<string, BigInt64Array>;
  input: Win;
  output: Win;
  macs: number;
}

const PREFIX = "segcause_chg_";
const POINTWISE = new Set([...POSITIONWISE_OPS, ...Object.keys(BINARY), "Xor", "Where", "Sum", "Mean", "Cast", "Identity", "BatchNormalization"]);
const WINDOW = new Set(["Conv", "MaxPool", "AveragePool", "LpPool"]);
const SHIFTABLE_RESIZE = new Set(["half_pixel", "asymmetric", "pytorch_half_pixel"]);
const isPow2 = (x: number) => x > 0 && Number.isInteger(Math.log2(x));
/** MaxPool's padding never wins; the largest finite float32 in magnitude keeps Where/Slice free of infinities. */
const MAX_POOL_PAD = -3.4028234663852886e38;

const spatial = (b: Box): Win => [b[2], b[3]];

/**
 * The changed-region graph of `model` (static shapes, one NCHW image input, 2D) for the RoI `roi`.
 * Throws CropRefused when an op the RoI needs has no changed-region rule (a global op, a reshape, ...).
 */
export function changedGraph(model: ModelProto, roi: { rows: [number, number]; cols: [number, number] }): ChangedGraph {
  if (opsetOf(model) < 11) throw new CropRefused("opset below 11 has no Pad with inputs");
  const g = regionGraph(model);
  const infos = inferStatic(model, 1);
  const inDims = g.dims.get(g.input)!;
  if (inDims.length !== 4) throw new CropRefused("the changed-region graph is 2D (NCHW) only");
  const outDims = g.dims.get(g.output)!;
  const r = outDims.length;
  const outBox: Box = outDims.map((d) => [0, d]);
  outBox[r - 2] = roi.rows;
  outBox[r - 1] = roi.cols;
  const need = roiNeeded(g, outBox);
  const dimsOf = (t: string) => g.dims.get(t) ?? infos.get(t)?.dims;

  const live = g.nodes.filter((n) => n.node.output.some((t) => t && need.has(t)));
  const readers = new Map<string, number>();
  for (const n of live) for (const t of n.node.input) if (g.dims.has(t)) readers.set(t, (readers.get(t) ?? 0) + 1);
  const caches = new Map<string, CacheSpec>();
  const cacheFor = (x: string, value: number, pad: [number, number][]): CacheSpec => {
    if (infos.get(x)?.dtype !== TensorProto_DataType.FLOAT) throw new CropRefused(`'${x}' is not float: no cached copy to paste into`);
    const key = `${x}\u0000${value}`;
    const c = caches.get(key) ?? {
      feed: `${PREFIX}cache${caches.size}`,
      tensor: x,
      pad: [
        [0, 0],
        [0, 0],
      ] as [number, number][],
      value,
    };
    c.pad = c.pad.map(([lo, hi], i) => [Math.max(lo, pad[i][0]), Math.max(hi, pad[i][1])]);
    caches.set(key, c);
    return c;
  };
  const canvases = new Map<string, string>();
  let nRead = 0;
  const pasted = (
    x: string,
    value = 0,
    pad: [number, number][] = [
      [0, 0],
      [0, 0],
    ],
  ): ReadSpec => {
    if (!canvases.has(x)) canvases.set(x, `${PREFIX}canvas${canvases.size}`);
    return { tensor: x, cache: cacheFor(x, value, pad), feed: `${PREFIX}read${nRead++}` };
  };

  const ops: OpSpec[] = [];
  for (const rn of live) {
    const node = rn.node;
    const op = node.opType;
    const y = node.output[0];
    const yDims = g.dims.get(y)!;
    if (rn.global) throw new CropRefused(`${describeNode(node)} mixes all positions`);
    if (yDims.length !== 4 || node.output.length !== 1) throw new CropRefused(`${describeNode(node)} is not one NCHW tensor`);
    const dyn = node.input.map((t) => !!t && g.dims.has(t));
    const x = node.input[0];
    if (WINDOW.has(op) && !dyn.slice(1).some(Boolean)) {
      const xd = g.dims.get(x)!;
      const p = windowParams(node, xd, dimsOf(node.input[1]));
      const pad: [number, number][] = [0, 1].map((i) => {
        const [k, s, d, pb] = [p.kernel[i], p.strides[i], p.dilations[i], p.pads[i]];
        return [pb, Math.max(0, (yDims[i + 2] - 1) * s - pb + (k - 1) * d + 1 - xd[i + 2])];
      });
      // An average over a window that passes the edge divides by the cells it counts (inside the tensor, or
      // inside its padding with count_include_pad; ceil_mode's last window never counts beyond the padding).
      const counted: [number, number][] | undefined =
        op === "AveragePool" && pad.some(([lo, hi]) => lo > 0 || hi > 0)
          ? attrInt(node, "count_include_pad", 0) === 1
            ? [0, 1].map((i): [number, number] => [-p.pads[i], xd[i + 2] + p.pads[i + 2]])
            : [0, 1].map((i): [number, number] => [0, xd[i + 2]])
          : undefined;
      ops.push({
        rn,
        kind: "window",
        y,
        reads: [pasted(x, op === "MaxPool" ? MAX_POOL_PAD : 0, pad), ...node.input.slice(1).map(() => undefined)],
        p,
        counted,
      });
    } else if (
      op === "ConvTranspose" &&
      !dyn.slice(1).some(Boolean) &&
      attrString(node, "auto_pad", "NOTSET") === "NOTSET" &&
      !attrInts(node, "output_shape") &&
      (attrInts(node, "output_padding") ?? [0, 0]).every((o, i) => o <= (attrInts(node, "pads") ?? [0, 0, 0, 0])[i + 2])
    ) {
      const p = windowParams(node, g.dims.get(x)!, dimsOf(node.input[1]));
      ops.push({ rn, kind: "transpose", y, reads: [pasted(x), ...node.input.slice(1).map(() => undefined)], p, cut: `${PREFIX}cut${ops.length}` });
    } else if ((op === "Resize" || op === "Upsample") && !attrInts(node, "axes") && !dyn.slice(1).some(Boolean)) {
      const legacy = node.input.length <= 2;
      const mode = attrString(node, "coordinate_transformation_mode", legacy ? "asymmetric" : "half_pixel");
      const info = (t: string | undefined): StaticInfo | undefined => (t ? infos.get(t) : undefined);
      const { scales } = resizeGeometry(node, infos.get(x)!, info(node.input[legacy ? 1 : 2]), info(node.input[3]));
      if (!SHIFTABLE_RESIZE.has(mode) || scales.some((s, i) => (i < 2 ? s !== 1 : !isPow2(s) || s < 1)))
        throw new CropRefused(`${describeNode(node)}: a Resize (${mode}, scales ${scales.join("x")}) that does not commute with a shift`);
      ops.push({
        rn,
        kind: "resize",
        y,
        reads: [pasted(x), ...node.input.slice(1).map(() => undefined)],
        scales,
        mode,
        cut: `${PREFIX}cut${ops.length}`,
      });
    } else if (POINTWISE.has(op) || op === "Concat") {
      if (op === "Concat" && (attrInt(node, "axis", 0) + 4) % 4 >= 2)
        throw new CropRefused(`${describeNode(node)} concatenates along a spatial axis`);
      const reads = node.input.map((t, k): ReadSpec | undefined => {
        if (!dyn[k]) {
          const d = dimsOf(t);
          // trailing-aligned broadcasting: a rank-1 [W] constant spans the width too (BatchNormalization's [C] inputs are per channel)
          if (t && (!d || (op !== "BatchNormalization" && d.some((s, i) => i + 4 - d.length >= 2 && s > 1))))
            throw new CropRefused(`${describeNode(node)}: a constant with spatial extent`);
          return undefined;
        }
        if ((op === "BatchNormalization" && k > 0) || g.dims.get(t)!.length !== 4 || g.dims.get(t)!.some((s, i) => s !== yDims[i] && i >= 2))
          throw new CropRefused(`${describeNode(node)}: input '${t}' is broadcast over the positions`);
        // A unary op on a tensor nobody else reads: the same window (changed and needed regions pass through unchanged).
        const direct =
          dyn.filter(Boolean).length === 1 && op !== "Concat" && readers.get(t) === 1 && t !== g.input && sameWin(need.get(t)!, need.get(y)!);
        return direct ? { tensor: t, feed: "" } : pasted(t);
      });
      ops.push({ rn, kind: "pointwise", y, reads });
    } else throw new CropRefused(`${describeNode(node)} has no changed-region rule`);
  }
  const fullMacs = g.nodes.reduce((s, n) => s + nodeMacs(g, n), 0);
  const built = buildGraph(model, g, infos, ops, [...caches.values()], canvases);
  return {
    ...built,
    g,
    need,
    input: g.input,
    output: g.output,
    caches: [...caches.values()],
    ops,
    canvases,
    fullMacs,
  };
}

const sameWin = (a: Region, b: Region) =>
  a.box[2][0] === b.box[2][0] && a.box[2][1] === b.box[2][1] && a.box[3][0] === b.box[3][0] && a.box[3][1] === b.box[3][1];

function buildGraph(
  model: ModelProto,
  g: RegionGraph,
  infos: Map<string, StaticInfo>,
  ops: OpSpec[],
  caches: CacheSpec[],
  canvases: Map<string, string>,
): { bytes: Uint8Array; nodes: number } {
  const nodes: NodeProto[] = [];
  const inits = [int64Tensor(`${PREFIX}axes`, [2], [2, 3])];
  const ints: [string, number][] = [];
  let fresh = 0;
  const name = (what: string) => `${PREFIX}${what}_${fresh++}`;
  const emit = (opType: string, inputs: string[], attrs: NodeProto["attribute"] = [], out = name(opType), from?: NodeProto) => {
    nodes.push(
      create(NodeProtoSchema, {
        opType,
        input: inputs,
        output: [out],
        attribute: attrs,
        name: name(from?.name || opType),
        domain: from?.domain ?? "",
      }),
    );
    return out;
  };
  const intFeed = (n: string, len: number) => {
    if (!ints.some(([m]) => m === n)) ints.push([n, len]);
    return n;
  };
  const slice = (t: string, feed: string) => emit("Slice", [t, intFeed(`${feed}_s`, 2), intFeed(`${feed}_e`, 2), `${PREFIX}axes`]);
  // The canvas of each pasted tensor: its tile and a mask of ones, padded on both sides by the longest read.
  const canvasOf = new Map<string, { tile: string; mask: string }>();
  const canvas = (x: string) => {
    let c = canvasOf.get(x);
    if (!c) {
      const f = canvases.get(x)!;
      const pads = intFeed(`${f}_pads`, 8);
      const ones = emit("ConstantOfShape", [intFeed(`${f}_shape`, 4)], [attribute("value", floatTensor(name("one"), [1], [1]))]);
      c = { tile: emit("Pad", [x, pads]), mask: emit("Pad", [ones, pads]) };
      canvasOf.set(x, c);
    }
    return c;
  };
  const read = (r: ReadSpec | undefined, t: string): string => {
    if (!r) return t;
    if (!r.cache) return r.tensor;
    const c = canvas(r.tensor);
    const mask = emit("Cast", [slice(c.mask, `${r.feed}_c`)], [attribute("to", TensorProto_DataType.BOOL)]);
    return emit("Where", [mask, slice(c.tile, `${r.feed}_c`), slice(r.cache.feed, `${r.feed}_k`)]);
  };
  const drop = (node: NodeProto, names: string[]) => node.attribute.filter((a) => !names.includes(a.name));

  const specs = new Map(ops.map((o) => [o.rn.node, o]));
  for (const node of model.graph!.node) {
    const o = specs.get(node);
    if (!o) {
      if (g.nodes.some((n) => n.node === node)) continue; // computed from the input, not needed
      const reads = node.input.filter((t) => g.dims.has(t));
      if (reads.length === 0) nodes.push(node);
      else if (node.opType === "Shape" || node.opType === "Size") {
        const v = infos.get(node.output[0])?.value;
        if (!v) throw new CropRefused(`${describeNode(node)}: its value is not known statically`);
        inits.push(int64Tensor(node.output[0], node.opType === "Size" ? [] : [v.length], v));
      } else throw new CropRefused(`${describeNode(node)} reads a tensor computed from the input outside the region rules`);
      continue;
    }
    const inputs = node.input.map((t, k) => read(o.reads[k], t));
    if (o.kind === "window" && o.counted) {
      // mean over the window / share of it counted, both averages over the whole window
      const attrs = [...drop(node, ["pads", "auto_pad", "ceil_mode", "count_include_pad"]), attribute("pads", [0, 0, 0, 0])];
      const r = o.reads[0]!;
      const c = r.cache!;
      const d = g.dims.get(r.tensor)!;
      const [Hp, Wp] = [d[2] + c.pad[0][0] + c.pad[0][1], d[3] + c.pad[1][0] + c.pad[1][1]];
      const inside = (v: number, i: number) => v - c.pad[i][0] >= o.counted![i][0] && v - c.pad[i][0] < o.counted![i][1];
      const ind = name("counted");
      inits.push(
        floatTensor(
          ind,
          [1, 1, Hp, Wp],
          Array.from({ length: Hp * Wp }, (_, k) => (inside(Math.floor(k / Wp), 0) && inside(k % Wp, 1) ? 1 : 0)),
        ),
      );
      const share = emit(node.opType, [slice(ind, `${r.feed}_k`)], attrs, name("share"), node);
      emit("Div", [emit(node.opType, inputs, attrs, name("mean"), node), share], [], o.y);
    } else if (o.kind === "window") {
      emit(node.opType, inputs, [...drop(node, ["pads", "auto_pad", "ceil_mode"]), attribute("pads", [0, 0, 0, 0])], o.y, node);
    } else if (o.kind === "transpose") {
      const tmp = emit(
        node.opType,
        inputs,
        [...drop(node, ["pads", "auto_pad", "output_padding", "output_shape"]), attribute("pads", [0, 0, 0, 0])],
        name("transposed"),
        node,
      );
      emit("Slice", [tmp, intFeed(`${o.cut}_s`, 2), intFeed(`${o.cut}_e`, 2), `${PREFIX}axes`], [], o.y); // the wanted part of the widened window
    } else if (o.kind === "resize") {
      const sc = name("scales");
      inits.push(floatTensor(sc, [4], o.scales!));
      const legacy = node.input.length <= 2;
      const tmp = emit(node.opType, [inputs[0], ...(legacy ? [] : [node.input[1] ?? ""]), sc], node.attribute, name("resized"), node);
      emit("Slice", [tmp, intFeed(`${o.cut}_s`, 2), intFeed(`${o.cut}_e`, 2), `${PREFIX}axes`], [], o.y); // the wanted part of the widened window
    } else emit(node.opType, inputs, node.attribute, o.y, node);
  }
  const m = clone(ModelProtoSchema, model);
  const graph = m.graph!;
  const inDims = g.dims.get(g.input)!;
  graph.input = [
    valueInfo(g.input, ["N", inDims[1], "h", "w"]),
    ...caches.map((c) => valueInfo(c.feed, cacheDims(c, g.dims.get(c.tensor)!))),
    ...ints.map(([n, len]) => valueInfo(n, [len], TensorProto_DataType.INT64)),
  ];
  graph.node = live(nodes, g.output);
  const used = new Set(graph.node.flatMap((n) => n.input));
  graph.initializer = [...graph.initializer, ...inits].filter((t) => used.has(t.name));
  graph.valueInfo = [];
  graph.output = [valueInfo(g.output, ["N", g.dims.get(g.output)![1], "oh", "ow"])];
  return { bytes: toBinary(ModelProtoSchema, m), nodes: graph.node.length };
}

/** The dims of a cached copy: [1, C, H, W] padded. */
export function cacheDims(c: CacheSpec, dims: number[]): number[] {
  return [1, dims[1], dims[2] + c.pad[0][0] + c.pad[0][1], dims[3] + c.pad[1][0] + c.pad[1][1]];
}

/** The cached copy of a [1, C, H, W] tensor: padded on its spatial axes with the spec's value. */
export function paddedCache(c: CacheSpec, dims: number[], src: Float32Array): Float32Array {
  const [C, H, W] = [dims[1], dims[2], dims[3]];
  const [Hp, Wp] = [H + c.pad[0][0] + c.pad[0][1], W + c.pad[1][0] + c.pad[1][1]];
  const dst = new Float32Array(C * Hp * Wp);
  if (c.value !== 0) dst.fill(c.value);
  for (let ch = 0; ch < C; ch++)
    for (let y = 0; y < H; y++) dst.set(src.subarray((ch * H + y) * W, (ch * H + y + 1) * W), (ch * Hp + y + c.pad[0][0]) * Wp + c.pad[1][0]);
  return dst;
}

/** The window of tensor `t` for this box: changed ∩ needed, or one needed cell when the change does not reach it. */
function windowOf(cg: ChangedGraph, changed: Map<string, Region>, t: string): Win {
  const n = spatial(cg.need.get(t)!.box);
  const c = changed.get(t);
  const w: Win = c ? n.map(([lo, hi], i) => [Math.max(lo, c.box[i + 2][0]), Math.min(hi, c.box[i + 2][1])]) : [];
  return w.length && w.every(([lo, hi]) => lo < hi) ? w : n.map(([lo]) => [lo, lo + 1]);
}

/** What a window op's, ConvTranspose's or Resize's output window [a, b) reads on spatial axis i, and where its output starts. */
function readBox(o: OpSpec, g: RegionGraph, i: number, a: number, b: number): { R: [number, number]; off?: number } {
  const X = g.dims.get(o.rn.node.input[0])![i + 2];
  if (o.kind === "pointwise") return { R: [a, b] };
  if (o.kind === "window") {
    const [k, s, d, pb] = [o.p!.kernel[i], o.p!.strides[i], o.p!.dilations[i], o.p!.pads[i]];
    return { R: [a * s - pb, (b - 1) * s - pb + (k - 1) * d + 1] };
  }
  const m = o.rn.maps[0][0]!.axes[i + 2];
  let [rlo, rhi] = [Infinity, -Infinity];
  if (m.kind === "reads") for (let q = a; q < b; q++) for (const j of m.reads[q]) (rlo = Math.min(rlo, j)), (rhi = Math.max(rhi, j + 1));
  if (o.kind === "transpose") {
    const [k, s, d, pb] = [o.p!.kernel[i], o.p!.strides[i], o.p!.dilations[i], o.p!.pads[i]];
    const lo = Math.max(0, Math.min(rlo, Math.floor((a + pb) / s)));
    const hi = Math.min(X, Math.max(rhi, Math.ceil((b + pb - (k - 1) * d - 1) / s) + 1));
    const off = lo * s - pb;
    if (a < off || b - off > (hi - lo - 1) * s + (k - 1) * d + 1)
      throw new Error(`internal: ${describeNode(o.rn.node)} window ${a}..${b} not covered`);
    return { R: [lo, hi], off };
  }
  const s = o.scales![i + 2];
  const lo = Math.max(0, Math.min(rlo, Math.floor(a / s)));
  const hi = Math.min(X, Math.max(rhi, Math.ceil(b / s)));
  const off = lo * s;
  if (!Number.isInteger(off) || b - off > Math.floor((hi - lo) * s) || (o.mode === "pytorch_half_pixel" && (hi - lo) * s <= 1))
    throw new Error(`internal: ${describeNode(o.rn.node)} window ${a}..${b} not covered`);
  return { R: [lo, hi], off };
}

/**
 * The feeds of one perturbation whose changed input lies in `input` (rows, cols; inside the input's
 * needed box): every tensor's window, what each op reads, and the multiply-adds of the pass.
 */
export function planBox(cg: ChangedGraph, input: Win): BoxPlan {
  const { g } = cg;
  const inDims = g.dims.get(g.input)!;
  const changed = changedRegions(g, [[0, inDims[0]], [0, inDims[1]], ...input]);
  const win = new Map<string, Win>([[g.input, input]]);
  for (const o of cg.ops) win.set(o.y, windowOf(cg, changed, o.y));
  const ints: Record<string, BigInt64Array> = {};
  const put = (n: string, v: number[]) => (ints[n] = BigInt64Array.from(v.map((x) => BigInt(x))));
  const reads: { r: ReadSpec; R: Win }[] = [];
  let macs = 0;
  for (const o of cg.ops) {
    const W = win.get(o.y)!;
    const boxes = W.map(([a, b], i) => readBox(o, g, i, a, b));
    const yDims = g.dims.get(o.y)!;
    o.reads.forEach((r) => {
      if (!r?.cache) return;
      const xd = g.dims.get(r.tensor)!;
      // a per-position op reads index 0 of an input's axis of size 1
      reads.push({ r, R: boxes.map((b, i) => (o.kind === "pointwise" && xd[i + 2] === 1 ? [0, 1] : b.R)) });
    });
    let outBox: Box;
    if (o.cut) {
      const size = (i: number) =>
        o.kind === "resize"
          ? Math.floor((boxes[i].R[1] - boxes[i].R[0]) * o.scales![i + 2])
          : (boxes[i].R[1] - boxes[i].R[0] - 1) * o.p!.strides[i] + (o.p!.kernel[i] - 1) * o.p!.dilations[i] + 1;
      put(
        `${o.cut}_s`,
        W.map(([a], i) => a - boxes[i].off!),
      );
      put(
        `${o.cut}_e`,
        W.map(([, b], i) => b - boxes[i].off!),
      );
      outBox = [
        [0, 1],
        [0, yDims[1]],
        [0, size(0)],
        [0, size(1)],
      ];
      // ConvTranspose's count is per input element: scale it to the window it scatters from
      if (o.kind === "transpose") outBox = [[0, 1], [0, yDims[1]], ...W];
    } else outBox = [[0, 1], [0, yDims[1]], ...W];
    macs += nodeMacs(g, o.rn, outBox);
  }
  // Canvases: the tile padded by the longest read on each side, so a read disjoint from the tile slices only padding.
  const longest = new Map<string, number[]>();
  for (const { r, R } of reads) {
    const l = longest.get(r.tensor) ?? [0, 0];
    longest.set(
      r.tensor,
      l.map((v, i) => Math.max(v, R[i][1] - R[i][0])),
    );
  }
  for (const [x, f] of cg.canvases) {
    const P = longest.get(x) ?? [1, 1];
    const W = win.get(x)!;
    put(`${f}_pads`, [0, 0, P[0], P[1], 0, 0, P[0], P[1]]);
    put(`${f}_shape`, [1, 1, W[0][1] - W[0][0], W[1][1] - W[1][0]]);
  }
  for (const { r, R } of reads) {
    const W = win.get(r.tensor)!;
    const P = longest.get(r.tensor)!;
    const starts = R.map(([lo, hi], i) => {
      const len = hi - lo;
      const canvasLen = W[i][1] - W[i][0] + 2 * P[i];
      return Math.min(Math.max(P[i] + lo - W[i][0], 0), canvasLen - len);
    });
    put(`${r.feed}_c_s`, starts);
    put(
      `${r.feed}_c_e`,
      starts.map((s, i) => s + R[i][1] - R[i][0]),
    );
    const c = r.cache!;
    put(
      `${r.feed}_k_s`,
      R.map(([lo], i) => lo + c.pad[i][0]),
    );
    put(
      `${r.feed}_k_e`,
      R.map(([, hi], i) => hi + c.pad[i][0]),
    );
  }
  return { ints, input, output: win.get(g.output)!, macs };
}
