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
 *
 * Where locality breaks (issue 24, step 4: an op without a windowed rule, such as global pooling, a
 * reshape into tokens or a MatMul), the op runs whole on whole inputs: a changed-region input is its
 * tile pasted into the cached tensor. From there on a tensor's changed region is all of it, so its
 * window is static: its needed box (as crop.ts computes it), or whole for an op run whole; such an
 * input is read as a fixed slice of its tile, padded where the read passes its window (only padding,
 * or cells no tap reads). An op mixing both kinds of input (ASPP's Concat) reads each its own way.
 */
import { clone, create, toBinary } from "@bufbuild/protobuf";
import { type ModelProto, ModelProtoSchema, type NodeProto, NodeProtoSchema, TensorProto_DataType } from "onnx-buf";
import { attr, attrInt, attrInts, attrString, describeNode, opsetOf } from "./attributes.js";
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
  /** the feed prefix of this read's int64 inputs ("" for a direct read) */
  feed: string;
  /** pasted into the cached copy: the input's window moves with the box (undefined with no `fixed`: the producer's tile, same window) */
  cache?: CacheSpec;
  /** with `cache`: the whole tensor (a global op's input), the tile padded to its size and pasted into the cache */
  whole?: boolean;
  /** the input's window is static (computed over its needed box, or whole): the box R it reads, sliced from its tile and padded with `value` where R passes the window */
  fixed?: { R: Win; value: number };
}

type OpKind = "window" | "transpose" | "resize" | "pointwise" | "whole";

interface OpSpec {
  rn: RegionNode;
  kind: OpKind;
  y: string;
  /** per node input: how it is read (undefined for a static input, or a tensor computed whole) */
  reads: (ReadSpec | undefined)[];
  /** its output's window is static (it lies downstream of an op computed whole): its needed box, or whole for a "whole" op */
  fixed: boolean;
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
  /** the static window of every 4D tensor downstream of an op computed whole (its needed box, or whole) */
  fixedWin: Map<string, Win>;
  /** multiply-adds of one full pass */
  fullMacs: number;
  /** of which in ops computed by changed regions (upstream of every op computed whole) */
  localMacs: number;
  /** the ops computed whole (no windowed rule: global pooling, tokens, ...), as describeNode says them, in graph order */
  wholeOps: string[];
  /** ops of the derived graph (the model's own and the pastes' slices, pads and Wheres): each costs a pass its overhead */
  nodes: number;
}

/** The int64 feeds, the tile windows and the multiply-adds of one perturbation box. */
export interface BoxPlan {
  ints: Record<string, BigInt64Array>;
  input: Win;
  output: Win;
  macs: number;
  /** of which in ops with a static window (downstream of an op computed whole): the same for every box */
  fixedMacs: number;
}

const PREFIX = "segcause_chg_";
const POINTWISE = new Set([...POSITIONWISE_OPS, ...Object.keys(BINARY), "Xor", "Where", "Sum", "Mean", "Cast", "Identity", "BatchNormalization"]);
const WINDOW = new Set(["Conv", "MaxPool", "AveragePool", "LpPool"]);
const SHIFTABLE_RESIZE = new Set(["half_pixel", "asymmetric", "pytorch_half_pixel"]);
const isPow2 = (x: number) => x > 0 && Number.isInteger(Math.log2(x));
/** MaxPool's padding never wins; the largest finite float32 in magnitude keeps Where/Slice free of infinities. */
const MAX_POOL_PAD = -3.4028234663852886e38;

const spatial = (b: Box): Win => [b[2], b[3]];
const wholeWin = (dims: number[]): Win => [
  [0, dims[2]],
  [0, dims[3]],
];
const winEq = (a: Win, b: Win) => a.every(([lo, hi], i) => lo === b[i][0] && hi === b[i][1]);

/** How a windowed op reads one dynamic input, before the read is bound to a cache or a static slice. */
interface ReadWant {
  t: string;
  value: number;
  pad: [number, number][];
  /** may read the producer's tile directly when both are computed by changed regions */
  direct: boolean;
}

/**
 * The changed-region graph of `model` (static shapes, one NCHW image input, 2D) for the RoI `roi`.
 * Ops without a windowed rule (global pooling, reshapes into tokens, MatMul, ...) are computed whole on
 * their inputs' whole tensors (a changed-region input pasted into its cached copy), and from there on
 * every tensor is computed over its needed box (as crop.ts does): locality breaks there, and the
 * unchanged prefix is still reused. Throws CropRefused when a graph cannot be built at all.
 */
export function changedGraph(model: ModelProto, roi: { rows: [number, number]; cols: [number, number] }): ChangedGraph {
  if (opsetOf(model) < 11) throw new CropRefused("opset below 11 has no Pad with inputs");
  const g = regionGraph(model);
  const infos = inferStatic(model, 1);
  const inDims = g.dims.get(g.input)!;
  if (inDims.length !== 4) throw new CropRefused("the changed-region graph is 2D (NCHW) only");
  const outDims = g.dims.get(g.output)!;
  if (outDims.length !== 4) throw new CropRefused("the changed-region graph needs an NCHW output");
  const outBox: Box = outDims.map((d) => [0, d]);
  outBox[2] = roi.rows;
  outBox[3] = roi.cols;
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
  const materialised = new Map<string, string>();
  let nRead = 0;
  let nCut = 0;
  const fixedWin = new Map<string, Win>();
  /** a tensor with a static window: downstream of an op computed whole (every non-4D tensor is) */
  const isFixed = (t: string) => fixedWin.has(t) || g.dims.get(t)!.length !== 4;
  const bind = (w: ReadWant): ReadSpec => {
    if (isFixed(w.t)) return { tensor: w.t, feed: "", fixed: { R: [], value: w.value } };
    if (w.direct) return { tensor: w.t, feed: "" };
    if (!canvases.has(w.t)) canvases.set(w.t, `${PREFIX}canvas${canvases.size}`);
    return { tensor: w.t, cache: cacheFor(w.t, w.value, w.pad), feed: `${PREFIX}read${nRead++}` };
  };
  const noPad: [number, number][] = [
    [0, 0],
    [0, 0],
  ];

  /** The op's windowed form, or CropRefused when it has none (then it is computed whole). */
  const windowed = (rn: RegionNode, fixedOut: boolean): Omit<OpSpec, "reads" | "fixed"> & { wants: (ReadWant | undefined)[] } => {
    const node = rn.node;
    const op = node.opType;
    const y = node.output[0];
    const yDims = g.dims.get(y)!;
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
      const value = op === "MaxPool" ? MAX_POOL_PAD : 0;
      return { rn, kind: "window", y, wants: [{ t: x, value, pad, direct: false }, ...node.input.slice(1).map(() => undefined)], p, counted };
    }
    if (
      op === "ConvTranspose" &&
      !dyn.slice(1).some(Boolean) &&
      attrString(node, "auto_pad", "NOTSET") === "NOTSET" &&
      !attrInts(node, "output_shape") &&
      (attrInts(node, "output_padding") ?? [0, 0]).every((o, i) => o <= (attrInts(node, "pads") ?? [0, 0, 0, 0])[i + 2])
    ) {
      const p = windowParams(node, g.dims.get(x)!, dimsOf(node.input[1]));
      return {
        rn,
        kind: "transpose",
        y,
        wants: [{ t: x, value: 0, pad: noPad, direct: false }, ...node.input.slice(1).map(() => undefined)],
        p,
        cut: `${PREFIX}cut${nCut++}`,
      };
    }
    if ((op === "Resize" || op === "Upsample") && !attrInts(node, "axes") && !dyn.slice(1).some(Boolean)) {
      const legacy = node.input.length <= 2;
      const mode = attrString(node, "coordinate_transformation_mode", legacy ? "asymmetric" : "half_pixel");
      const info = (t: string | undefined): StaticInfo | undefined => (t ? infos.get(t) : undefined);
      const { scales } = resizeGeometry(node, infos.get(x)!, info(node.input[legacy ? 1 : 2]), info(node.input[3]));
      if (!SHIFTABLE_RESIZE.has(mode) || scales.some((s, i) => (i < 2 ? s !== 1 : !isPow2(s) || s < 1)))
        throw new CropRefused(`${describeNode(node)}: a Resize (${mode}, scales ${scales.join("x")}) that does not commute with a shift`);
      return {
        rn,
        kind: "resize",
        y,
        wants: [{ t: x, value: 0, pad: noPad, direct: false }, ...node.input.slice(1).map(() => undefined)],
        scales,
        mode,
        cut: `${PREFIX}cut${nCut++}`,
      };
    }
    if (POINTWISE.has(op) || op === "Concat") {
      if (op === "Concat" && (attrInt(node, "axis", 0) + 4) % 4 >= 2)
        throw new CropRefused(`${describeNode(node)} concatenates along a spatial axis`);
      const wants = node.input.map((t, k): ReadWant | undefined => {
        if (!dyn[k]) {
          const d = dimsOf(t);
          // trailing-aligned broadcasting: a rank-1 [W] constant spans the width too (BatchNormalization's [C] inputs are per channel)
          if (t && (!d || (op !== "BatchNormalization" && d.some((s, i) => i + 4 - d.length >= 2 && s > 1))))
            throw new CropRefused(`${describeNode(node)}: a constant with spatial extent`);
          return undefined;
        }
        const td = g.dims.get(t)!;
        // an input of one position broadcast over the output's (ASPP's pooled branch) is read whole: only with static windows
        const bcast = td.some((s, i) => i >= 2 && s !== yDims[i]);
        if (
          (op === "BatchNormalization" && k > 0) ||
          td.length !== 4 ||
          (bcast && !(fixedOut && td.every((s, i) => i < 2 || s === 1 || s === yDims[i])))
        )
          throw new CropRefused(`${describeNode(node)}: input '${t}' is broadcast over the positions`);
        // A unary op on a tensor nobody else reads: the same window (changed and needed regions pass through unchanged).
        const direct =
          !fixedOut &&
          dyn.filter(Boolean).length === 1 &&
          op !== "Concat" &&
          readers.get(t) === 1 &&
          t !== g.input &&
          sameWin(need.get(t)!, need.get(y)!);
        return { t, value: 0, pad: noPad, direct };
      });
      return { rn, kind: "pointwise", y, wants };
    }
    throw new CropRefused(`${describeNode(node)} has no changed-region rule`);
  };

  const ops: OpSpec[] = [];
  const wholeOps: string[] = [];
  const liveOutputs = new Set(live.flatMap((n) => n.node.output));
  let localMacs = 0;
  for (const rn of live) {
    const node = rn.node;
    const y = node.output[0];
    const yDims = g.dims.get(y)!;
    const dynIn = node.input.filter((t) => t && g.dims.has(t));
    const fixedOut = dynIn.some(isFixed);
    let spec: OpSpec | undefined;
    if (!rn.global && yDims.length === 4 && node.output.length === 1 && dynIn.every((t) => g.dims.get(t)!.length === 4)) {
      let w: ReturnType<typeof windowed> | undefined;
      let boxes: [number, number][] | undefined;
      try {
        w = windowed(rn, fixedOut);
        // a static window: the needed box, and the box it reads of each input
        if (fixedOut) boxes = spatial(need.get(y)!.box).map(([a, b], i) => readBox({ ...w!, reads: [], fixed: true }, g, i, a, b).R);
      } catch (e) {
        if (!(e instanceof CropRefused) && !(e instanceof Error && e.message.startsWith("internal:"))) throw e;
        w = undefined;
      }
      if (w) {
        spec = { ...w, fixed: fixedOut, reads: w.wants.map((want) => want && bind(want)) };
        for (const r of spec.reads)
          if (r?.fixed) {
            const xd = g.dims.get(r.tensor)!;
            r.fixed.R = boxes!.map((b, i) => (w!.kind === "pointwise" && xd[i + 2] === 1 ? [0, 1] : b));
          }
        if (fixedOut) fixedWin.set(y, spatial(need.get(y)!.box));
      }
    }
    if (!spec) {
      // Computed whole, on whole inputs: a changed-region input is pasted into its cached copy, a static one padded to its size.
      const reads = node.input.map((t): ReadSpec | undefined => {
        if (!t || !g.dims.has(t) || g.dims.get(t)!.length !== 4) return undefined;
        // An input the RoI needs none of is not computed, so the op cannot run whole on it (e.g. a roll's unused half).
        if (t !== g.input && !liveOutputs.has(t))
          throw new CropRefused(`${describeNode(node)} runs whole but reads '${t}', of which the RoI needs nothing`);
        const whole = wholeWin(g.dims.get(t)!);
        const fw = fixedWin.get(t);
        if (fw) return winEq(fw, whole) ? undefined : { tensor: t, feed: "", fixed: { R: whole, value: 0 } };
        if (!materialised.has(t)) materialised.set(t, `${PREFIX}whole${materialised.size}`);
        return { tensor: t, cache: cacheFor(t, 0, noPad), whole: true, feed: materialised.get(t)! };
      });
      spec = { rn, kind: "whole", y, reads, fixed: true };
      for (const t of node.output) if (t && g.dims.get(t)?.length === 4) fixedWin.set(t, wholeWin(g.dims.get(t)!));
      wholeOps.push(describeNode(node));
    }
    if (!spec.fixed) localMacs += nodeMacs(g, rn);
    ops.push(spec);
  }
  const fullMacs = g.nodes.reduce((s, n) => s + nodeMacs(g, n), 0);
  const built = buildGraph(model, g, infos, ops, [...caches.values()], canvases, fixedWin);
  return {
    ...built,
    g,
    need,
    input: g.input,
    output: g.output,
    caches: [...caches.values()],
    ops,
    canvases,
    fixedWin,
    fullMacs,
    localMacs,
    wholeOps,
  };
}

/** Whether a tensor is computed whole in the changed-region graph (its Shape is the full graph's). */
const computedWhole = (g: RegionGraph, fixedWin: Map<string, Win>, t: string) => {
  const d = g.dims.get(t)!;
  const w = fixedWin.get(t);
  return d.length !== 4 || (!!w && winEq(w, wholeWin(d)));
};

const sameWin = (a: Region, b: Region) =>
  a.box[2][0] === b.box[2][0] && a.box[2][1] === b.box[2][1] && a.box[3][0] === b.box[3][0] && a.box[3][1] === b.box[3][1];

function buildGraph(
  model: ModelProto,
  g: RegionGraph,
  infos: Map<string, StaticInfo>,
  ops: OpSpec[],
  caches: CacheSpec[],
  canvases: Map<string, string>,
  fixedWin: Map<string, Win>,
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
  const constInts = (values: number[]) => {
    const n = name("c");
    inits.push(int64Tensor(n, [values.length], values));
    return n;
  };
  /** A static read: the box R of a tensor with a static window, sliced from its tile and padded with `value` where R passes the window. */
  const fixedRead = (x: string, R: Win, value: number): string => {
    const Wx = fixedWin.get(x)!;
    const cut = R.map(([lo, hi], i): [number, number] => [Math.max(lo, Wx[i][0]), Math.min(hi, Wx[i][1])]);
    if (cut.some(([lo, hi]) => hi <= lo)) throw new CropRefused(`a read of '${x}' misses its computed window`);
    let out = x;
    if (!winEq(cut, Wx))
      out = emit("Slice", [x, constInts(cut.map(([lo], i) => lo - Wx[i][0])), constInts(cut.map(([, hi], i) => hi - Wx[i][0])), `${PREFIX}axes`]);
    const pads = [0, 0, cut[0][0] - R[0][0], cut[1][0] - R[1][0], 0, 0, R[0][1] - cut[0][1], R[1][1] - cut[1][1]];
    if (pads.some((v) => v !== 0)) {
      const v = name("value");
      inits.push(floatTensor(v, [], [value]));
      out = emit("Pad", [out, constInts(pads), v]);
    }
    return out;
  };
  // A changed-region tensor read whole (by an op computed whole): its tile padded to the tensor's size, pasted into the cache.
  const wholeOf = new Map<string, string>();
  const materialise = (r: ReadSpec): string => {
    let out = wholeOf.get(r.tensor);
    if (!out) {
      const c = r.cache!;
      const d = g.dims.get(r.tensor)!;
      const pads = intFeed(`${r.feed}_pads`, 8);
      const ones = emit("ConstantOfShape", [intFeed(`${r.feed}_shape`, 4)], [attribute("value", floatTensor(name("one"), [1], [1]))]);
      const mask = emit("Cast", [emit("Pad", [ones, pads])], [attribute("to", TensorProto_DataType.BOOL)]);
      const cached = c.pad.some(([lo, hi]) => lo > 0 || hi > 0)
        ? emit("Slice", [c.feed, constInts([c.pad[0][0], c.pad[1][0]]), constInts([c.pad[0][0] + d[2], c.pad[1][0] + d[3]]), `${PREFIX}axes`])
        : c.feed;
      out = emit("Where", [mask, emit("Pad", [r.tensor, pads]), cached]);
      wholeOf.set(r.tensor, out);
    }
    return out;
  };
  const read = (r: ReadSpec | undefined, t: string): string => {
    if (!r) return t;
    if (r.fixed) return fixedRead(r.tensor, r.fixed.R, r.fixed.value);
    if (!r.cache) return r.tensor;
    if (r.whole) return materialise(r);
    const c = canvas(r.tensor);
    const mask = emit("Cast", [slice(c.mask, `${r.feed}_c`)], [attribute("to", TensorProto_DataType.BOOL)]);
    return emit("Where", [mask, slice(c.tile, `${r.feed}_c`), slice(r.cache.feed, `${r.feed}_k`)]);
  };
  const drop = (node: NodeProto, names: string[]) => node.attribute.filter((a) => !names.includes(a.name));

  const specs = new Map(ops.map((o) => [o.rn.node, o]));
  const computed = new Set([g.input, ...ops.flatMap((o) => o.rn.node.output)]);
  for (const node of model.graph!.node) {
    const o = specs.get(node);
    if (!o) {
      if (g.nodes.some((n) => n.node === node)) continue; // computed from the input, not needed
      const reads = node.input.filter((t) => g.dims.has(t));
      if (reads.length === 0) nodes.push(node);
      else if ((node.opType === "Shape" || node.opType === "Size") && reads.every((t) => computedWhole(g, fixedWin, t))) nodes.push(node);
      else if (node.opType === "Shape" || node.opType === "Size") {
        const v = infos.get(node.output[0])?.value;
        if (!v) throw new CropRefused(`${describeNode(node)}: its value is not known statically`);
        const full = g.dims.get(reads[0])!;
        const rank = full.length;
        // Shape's start/end (opset 15) select a range of axes; negative values count from the end, out-of-range ones clamp.
        const axis = (a: number | undefined, dflt: number) => (a === undefined ? dflt : Math.min(rank, Math.max(0, a < 0 ? a + rank : a)));
        const given = (n: string) => (attr(node, n) ? Number(attr(node, n)!.i) : undefined);
        const [s, e] = [axis(given("start"), 0), axis(given("end"), rank)];
        const readsBatch = computed.has(reads[0]) && rank > 0 && (node.opType === "Size" || s === 0) && e > s;
        if (!readsBatch) inits.push(int64Tensor(node.output[0], node.opType === "Size" ? [] : [v.length], v));
        else {
          // The value has the tile's batch in place of the full graph's, so a reshape into tokens keeps a call's items apart.
          const batch = emit("Slice", [emit("Shape", [reads[0]]), constInts([0]), constInts([1])]);
          const out = { output: [node.output[0]], name: name(node.opType.toLowerCase()) };
          if (node.opType === "Size") {
            const perItem = full.slice(1).reduce((a, b) => a * b, 1);
            const scaled = emit("Mul", [batch, constInts([perItem])]);
            nodes.push(create(NodeProtoSchema, { opType: "Reshape", input: [scaled, constInts([])], ...out })); // a scalar, as Size gives
          } else if (e - s === 1) nodes.push(create(NodeProtoSchema, { opType: "Identity", input: [batch], ...out }));
          else
            nodes.push(
              create(NodeProtoSchema, { opType: "Concat", input: [batch, constInts(full.slice(1, e))], attribute: [attribute("axis", 0)], ...out }),
            );
        }
      } else throw new CropRefused(`${describeNode(node)} reads a tensor computed from the input outside the region rules`);
      continue;
    }
    const inputs = node.input.map((t, k) => read(o.reads[k], t));
    if (o.kind === "window" && o.counted) {
      // mean over the window / share of it counted, both averages over the whole window
      const attrs = [...drop(node, ["pads", "auto_pad", "ceil_mode", "count_include_pad"]), attribute("pads", [0, 0, 0, 0])];
      const r = o.reads[0]!;
      const d = g.dims.get(r.tensor)!;
      // the indicator over the padded tensor (sliced like the cache), or over the static read box
      const origin = r.fixed ? r.fixed.R.map(([lo]) => lo) : r.cache!.pad.map(([lo]) => -lo);
      const [Hp, Wp] = r.fixed
        ? r.fixed.R.map(([lo, hi]) => hi - lo)
        : [d[2] + r.cache!.pad[0][0] + r.cache!.pad[0][1], d[3] + r.cache!.pad[1][0] + r.cache!.pad[1][1]];
      const inside = (v: number, i: number) => v + origin[i] >= o.counted![i][0] && v + origin[i] < o.counted![i][1];
      const ind = name("counted");
      inits.push(
        floatTensor(
          ind,
          [1, 1, Hp, Wp],
          Array.from({ length: Hp * Wp }, (_, k) => (inside(Math.floor(k / Wp), 0) && inside(k % Wp, 1) ? 1 : 0)),
        ),
      );
      const share = emit(node.opType, [r.fixed ? ind : slice(ind, `${r.feed}_k`)], attrs, name("share"), node);
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
    } else if (o.kind === "whole")
      nodes.push(
        create(NodeProtoSchema, {
          opType: node.opType,
          input: inputs,
          output: node.output,
          attribute: node.attribute,
          name: name(node.name || node.opType),
          domain: node.domain,
        }),
      );
    else emit(node.opType, inputs, node.attribute, o.y, node);
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
  for (const o of cg.ops) {
    if (!o.fixed) win.set(o.y, windowOf(cg, changed, o.y));
    else for (const t of o.rn.node.output) if (cg.fixedWin.has(t)) win.set(t, cg.fixedWin.get(t)!);
  }
  const ints: Record<string, BigInt64Array> = {};
  const put = (n: string, v: number[]) => (ints[n] = BigInt64Array.from(v.map((x) => BigInt(x))));
  const reads: { r: ReadSpec; R: Win }[] = [];
  let macs = 0;
  let fixedMacs = 0;
  for (const o of cg.ops) {
    if (o.kind === "whole") {
      // the tile of a changed-region input, padded to the whole tensor
      for (const r of o.reads)
        if (r?.whole) {
          const W = win.get(r.tensor)!;
          const d = g.dims.get(r.tensor)!;
          put(`${r.feed}_pads`, [0, 0, W[0][0], W[1][0], 0, 0, d[2] - W[0][1], d[3] - W[1][1]]);
          put(`${r.feed}_shape`, [1, 1, W[0][1] - W[0][0], W[1][1] - W[1][0]]);
        }
      const m = nodeMacs(g, o.rn);
      macs += m;
      fixedMacs += m;
      continue;
    }
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
    const m = nodeMacs(g, o.rn, outBox);
    macs += m;
    if (o.fixed) fixedMacs += m;
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
  return { ints, input, output: win.get(g.output)!, macs, fixedMacs };
}
