/**
 * RoI-cropped execution (issue 24, phase 2): from a model and an output box (the RoI), one ONNX graph
 * that computes every tensor only over its needed region (regions.ts, bounding boxes). Each windowed op
 * reads a Slice of its input's computed box and keeps its padding only where the window passes the
 * real tensor's edge, so it computes exactly the full graph's values there; Resize and ConvTranspose,
 * whose windowed form is not the op on a window, run on the window their outputs read and the wanted
 * part is sliced out. An op without a windowed rule runs unchanged when its inputs are computed whole
 * (global pooling, attention: the needed region is whole from there on), else the graph is refused.
 * The graph's input is the model input cropped to its needed box; its output is the output box.
 */
import { clone, create, toBinary } from "@bufbuild/protobuf";
import { type ModelProto, ModelProtoSchema, type NodeProto, NodeProtoSchema } from "onnx-buf";
import { attrInt, attrInts, attrString, describeNode, opsetOf, tensorType } from "./attributes.js";
import { attribute, floatTensor, int64Tensor } from "./builder.js";
import { resizeGeometry, windowParams } from "./op-params.js";
import { type Box, neededRegions, nodeMacs, type Region, type RegionGraph, regionGraph } from "./regions.js";
import { inferStatic, POSITIONWISE_OPS, type StaticInfo } from "./shapes.js";
import { BINARY } from "./values.js";

export interface CroppedGraph {
  /** the derived model, serialised */
  bytes: Uint8Array;
  /** the model input's box the graph reads (every axis; batch axis at batch 1) */
  inputBox: Box;
  /** the model output's box the graph computes (every axis; channels whole) */
  outputBox: Box;
  /** multiply-adds of one pass of the derived graph, and of the full graph */
  macs: number;
  fullMacs: number;
  /** ops run on whole tensors because they have no windowed rule (op and name), in graph order */
  whole: string[];
  /** ops of the derived graph (a pass's per-op overhead scales with them) */
  nodes: number;
}

/** Ops that read their own position of every (broadcast) input. */
const ELEMENTWISE = new Set([...POSITIONWISE_OPS, ...Object.keys(BINARY), "Xor", "Where", "Sum", "Mean", "Cast", "Identity"]);
const WINDOW = new Set(["Conv", "MaxPool", "AveragePool", "LpPool"]);
/** Resize coordinate transforms that commute with a shift of the input by whole cells (power-of-two scales). */
const SHIFTABLE_RESIZE = new Set(["half_pixel", "asymmetric", "pytorch_half_pixel"]);

const PREFIX = "segcause_crop_";
const fullBox = (dims: number[]): Box => dims.map((d) => [0, d]);
const sameBox = (a: Box, b: Box) => a.length === b.length && a.every(([lo, hi], i) => lo === b[i][0] && hi === b[i][1]);
const inside = (a: Box, b: Box) => a.every(([lo, hi], i) => lo >= b[i][0] && hi <= b[i][1]);
const isPow2 = (x: number) => x > 0 && Number.isInteger(Math.log2(x));

/** Why no cropped graph: one sentence. */
export class CropRefused extends Error {}

/**
 * The RoI-cropped graph of `model` (static shapes, one image input) for the output cells inside `roi`
 * (rows and columns, half-open, on the output's last two axes). Throws CropRefused when an op that
 * would have to run on part of a tensor has no windowed rule here.
 */
export function cropGraph(model: ModelProto, roi: { rows: [number, number]; cols: [number, number] }): CroppedGraph {
  const g = regionGraph(model);
  const infos = inferStatic(model, 1);
  const outDims = g.dims.get(g.output)!;
  const r = outDims.length;
  const outBox: Box = fullBox(outDims);
  outBox[r - 2] = roi.rows;
  outBox[r - 1] = roi.cols;
  const inRank = g.dims.get(g.input)!.length;
  const need = roiNeeded(g, outBox);
  const dimsOf = (t: string) => g.dims.get(t) ?? infos.get(t)?.dims;
  /** The box a tensor is computed over: its needed box on the spatial axes (2.. of tensors of the input's rank), whole elsewhere. */
  const target = (t: string): Box => {
    const dims = g.dims.get(t)!;
    const n = need.get(t);
    if (!n || dims.length !== inRank) return fullBox(dims);
    return n.box.map((b, i) => (i < 2 ? [0, dims[i]] : b));
  };

  const computed = new Map<string, Box>([[g.input, target(g.input)]]);
  const regionNodes = new Map(g.nodes.map((n) => [n.node, n]));
  const nodes: NodeProto[] = [];
  const inits = [] as ReturnType<typeof int64Tensor>[];
  const whole: string[] = [];
  let macs = 0;
  let fresh = 0;
  const name = (what: string) => `${PREFIX}${what}_${fresh++}`;
  const constInt = (values: number[]) => {
    const n = name("c");
    inits.push(int64Tensor(n, [values.length], values));
    return n;
  };
  const emit = (opType: string, inputs: string[], outputs: string[], attrs: NodeProto["attribute"] = [], from?: NodeProto) =>
    nodes.push(
      create(NodeProtoSchema, {
        opType,
        input: inputs,
        output: outputs,
        attribute: attrs,
        name: name(from?.name || opType),
        domain: from?.domain ?? "",
      }),
    );

  /** `t` restricted to `box` (a Slice of its computed box; the tensor itself when equal). */
  const sliceTo = (t: string, box: Box, why: NodeProto): string => {
    const cur = computed.get(t) ?? fullBox(dimsOf(t)!); // static tensors are whole
    if (sameBox(cur, box)) return t;
    if (!inside(box, cur))
      throw new CropRefused(`${describeNode(why)} reads outside the computed part of '${t}' (${JSON.stringify(box)} of ${JSON.stringify(cur)})`);
    const axes = box.map((_, i) => i).filter((i) => box[i][0] !== cur[i][0] || box[i][1] !== cur[i][1]);
    const out = name("slice");
    emit("Slice", [t, constInt(axes.map((i) => box[i][0] - cur[i][0])), constInt(axes.map((i) => box[i][1] - cur[i][0])), constInt(axes)], [out]);
    return out;
  };
  /** Spatial range [lo, hi) of input axis `axis` that outputs [a, b) read through the node's region map. */
  const readRange = (rn: ReturnType<typeof regionNodes.get>, k: number, axis: number, a: number, b: number): [number, number] => {
    const m = rn!.maps[0][k]!.axes[axis];
    if (m.kind !== "reads") throw new CropRefused(`${describeNode(rn!.node)}: no window rule on axis ${axis}`);
    let lo = Infinity;
    let hi = -Infinity;
    for (let o = a; o < b; o++) for (const i of m.reads[o]) (lo = Math.min(lo, i)), (hi = Math.max(hi, i + 1));
    return [lo, hi];
  };
  const copyAttrs = (node: NodeProto, drop: string[]) => node.attribute.filter((a) => !drop.includes(a.name));

  for (const node of model.graph!.node) {
    const rn = regionNodes.get(node);
    if (!rn) {
      // Not computed from the input's values. Shape/Size of a cropped (or dropped) tensor: the full graph's value.
      const reads = node.input.filter((t) => g.dims.has(t));
      if (reads.every((t) => computed.has(t) && sameBox(computed.get(t)!, fullBox(g.dims.get(t)!)))) nodes.push(node);
      else if (node.opType === "Shape" || node.opType === "Size") {
        const v = infos.get(node.output[0])?.value;
        if (!v) throw new CropRefused(`${describeNode(node)}: its value is not known statically`);
        inits.push(int64Tensor(node.output[0], node.opType === "Size" ? [] : [v.length], v));
      } else throw new CropRefused(`${describeNode(node)} reads a cropped tensor`);
      continue;
    }
    if (!node.output.some((t) => t && need.has(t))) continue; // nothing the RoI reads
    const y = node.output[0];
    const T = target(y);
    const yDims = g.dims.get(y)!;
    const dynIn = node.input.filter((t) => t && g.dims.has(t));
    const allWhole = dynIn.every((t) => sameBox(computed.get(t) ?? [], fullBox(g.dims.get(t)!)));
    const op = node.opType;
    const spatial = yDims.length === inRank && node.output.length === 1;
    const ok = spatial && !rn.global;
    if (ok && WINDOW.has(op) && !(op === "Conv" && g.dims.has(node.input[1]))) {
      const x = node.input[0];
      const xd = g.dims.get(x)!;
      const p = windowParams(node, xd, dimsOf(node.input[1]));
      const n = xd.length - 2;
      const box: Box = fullBox(xd);
      const pads = new Array(2 * n).fill(0);
      for (let i = 0; i < n; i++) {
        const [a, b] = T[i + 2];
        const [k, s, d, pb] = [p.kernel[i], p.strides[i], p.dilations[i], p.pads[i]];
        const lo = a * s - pb;
        const hi = (b - 1) * s - pb + (k - 1) * d + 1;
        // ceil_mode's last window may pass the end padding: ONNX Runtime leaves those cells out of the average, which
        // padding in the windowed op would not do when the padding counts
        if (op === "AveragePool" && attrInt(node, "count_include_pad", 0) === 1 && p.ceil && hi > xd[i + 2] + p.pads[i + n])
          throw new CropRefused(`${describeNode(node)}: a ceil_mode window past the padding that counts`);
        // The window's cells from its first to its last tap inside the tensor (with dilation a cell between
        // taps may lie outside the computed box); the rest of its span becomes padding, which no tap reads
        // unless the full graph's tap read padding there too.
        const [rlo, rhi] = readRange(rn, 0, i + 2, a, b);
        if (!(rlo < rhi)) throw new CropRefused(`${describeNode(node)}: outputs that read only padding`);
        box[i + 2] = [rlo, rhi];
        pads[i] = rlo - lo;
        pads[i + n] = hi - rhi;
      }
      const inputs = [...node.input];
      inputs[0] = sliceTo(x, box, node);
      emit(op, inputs, [y], [...copyAttrs(node, ["pads", "auto_pad", "ceil_mode"]), attribute("pads", pads)], node);
    } else if (ok && (ELEMENTWISE.has(op) || op === "BatchNormalization" || op === "Concat")) {
      const axis = op === "Concat" ? (attrInt(node, "axis", 0) + yDims.length) % yDims.length : -1;
      if (axis >= 2) throw new CropRefused(`${describeNode(node)} concatenates along a spatial axis`);
      const inputs = node.input.map((t, k) => {
        if (!t || (op === "BatchNormalization" && k > 0)) return t;
        const d = dimsOf(t);
        if (!d) throw new CropRefused(`${describeNode(node)}: no static shape for '${t}'`);
        // Trailing-aligned broadcast: an axis of size 1 (or missing) reads index 0; others follow the output.
        const pad = yDims.length - d.length;
        const box: Box = d.map((size, i) => (size === 1 && yDims[i + pad] !== 1 ? [0, 1] : i + pad === axis ? [0, size] : T[i + pad]));
        if (!g.dims.has(t) && d.some((size, i) => i + pad >= 2 && size > 1) && pad > 0)
          throw new CropRefused(`${describeNode(node)}: ambiguous broadcast`);
        return sliceTo(t, box, node);
      });
      emit(op, inputs, [y], node.attribute, node);
    } else if (ok && (op === "Resize" || op === "Upsample") && !attrInts(node, "axes")) {
      const x = node.input[0];
      const xd = g.dims.get(x)!;
      const legacy = node.input.length <= 2; // opset 10: (X, scales)
      const mode = attrString(node, "coordinate_transformation_mode", legacy ? "asymmetric" : "half_pixel");
      const info = (t: string | undefined): StaticInfo | undefined => (t ? infos.get(t) : undefined);
      const { scales } = resizeGeometry(node, infos.get(x)!, info(node.input[legacy ? 1 : 2]), info(node.input[3]));
      if (!SHIFTABLE_RESIZE.has(mode) || scales.some((s, i) => (i < 2 ? s !== 1 : !isPow2(s))))
        throw new CropRefused(`${describeNode(node)}: a Resize (${mode}, scales ${scales.join("x")}) that does not commute with a shift`);
      const box: Box = fullBox(xd);
      const cut: Box = fullBox(yDims);
      for (let i = 2; i < xd.length; i++) {
        const [rlo, rhi] = readRange(rn, 0, i, T[i][0], T[i][1]);
        const [lo, hi] = [
          Math.max(0, Math.min(rlo, Math.floor(T[i][0] / scales[i]))),
          Math.min(xd[i], Math.max(rhi, Math.ceil(T[i][1] / scales[i]))),
        ];
        const off = lo * scales[i];
        const size = Math.floor((hi - lo) * scales[i]);
        if (!Number.isInteger(off) || T[i][1] - off > size || (mode === "pytorch_half_pixel" && size <= 1))
          throw new CropRefused(
            `${describeNode(node)}: its window ${lo}..${hi} (×${scales[i]}) does not cover outputs ${T[i][0]}..${T[i][1]} from a whole output cell`,
          );
        box[i] = [lo, hi];
        cut[i] = [T[i][0] - off, T[i][1] - off];
      }
      const tmp = name("resized");
      const sc = name("scales");
      inits.push(floatTensor(sc, [scales.length], scales));
      const xs = sliceTo(x, box, node);
      emit(op, [xs, ...(legacy ? [] : [node.input[1] ?? ""]), sc], [tmp], node.attribute, node);
      computed.set(
        tmp,
        box.map(([lo, hi], i) => [0, i < 2 ? yDims[i] : Math.floor((hi - lo) * scales[i])]),
      );
      const axes = cut.map((_, i) => i).filter((i) => i >= 2);
      emit("Slice", [tmp, constInt(axes.map((i) => cut[i][0])), constInt(axes.map((i) => cut[i][1])), constInt(axes)], [y]);
    } else if (
      ok &&
      op === "ConvTranspose" &&
      attrString(node, "auto_pad", "NOTSET") === "NOTSET" &&
      !attrInts(node, "output_shape") &&
      !g.dims.has(node.input[1])
    ) {
      const x = node.input[0];
      const xd = g.dims.get(x)!;
      const p = windowParams(node, xd, dimsOf(node.input[1]));
      const n = xd.length - 2;
      const box: Box = fullBox(xd);
      const cut: Box = [];
      const sizes: number[] = [];
      for (let i = 0; i < n; i++) {
        const [a, b] = T[i + 2];
        const [lo, hi] = readRange(rn, 0, i + 2, a, b);
        const [k, s, d, pb] = [p.kernel[i], p.strides[i], p.dilations[i], p.pads[i]];
        const off = lo * s - pb;
        sizes.push((hi - lo - 1) * s + (k - 1) * d + 1);
        if (a - off < 0 || b - off > sizes[i]) throw new CropRefused(`${describeNode(node)}: window outside its transposed output`);
        box[i + 2] = [lo, hi];
        cut.push([a - off, b - off]);
      }
      const tmp = name("transposed");
      const inputs = [...node.input];
      inputs[0] = sliceTo(x, box, node);
      emit(
        op,
        inputs,
        [tmp],
        [...copyAttrs(node, ["pads", "auto_pad", "output_padding", "output_shape"]), attribute("pads", new Array(2 * n).fill(0))],
        node,
      );
      computed.set(tmp, [[0, yDims[0]], [0, yDims[1]], ...sizes.map((s): [number, number] => [0, s])]);
      const axes = sizes.map((_, i) => i + 2);
      emit("Slice", [tmp, constInt(cut.map((c) => c[0])), constInt(cut.map((c) => c[1])), constInt(axes)], [y]);
    } else if (allWhole) {
      // No windowed rule (global pooling, attention, reshapes): the op runs as in the full graph.
      nodes.push(node);
      for (const t of node.output) if (t && g.dims.has(t)) computed.set(t, fullBox(g.dims.get(t)!));
      whole.push(`${op} '${node.name || y}'`);
      macs += nodeMacs(g, rn);
      continue;
    } else throw new CropRefused(`${describeNode(node)} has no rule to run on part of its input`);
    computed.set(y, T);
    macs += nodeMacs(g, rn, T);
  }

  // The output: exactly the RoI's box, all channels.
  const outTarget: Box = outBox.map((b, i) => (i < r - 2 ? [0, outDims[i]] : b));
  if (!computed.has(g.output)) throw new CropRefused(`the output '${g.output}' was not computed`);
  const finalName = sliceTo(g.output, outTarget, model.graph!.node.at(-1)!);
  const m = clone(ModelProtoSchema, model);
  const graph = m.graph!;
  const inVi = graph.input.find((i) => i.name === g.input)!;
  const inBox = computed.get(g.input)!;
  tensorType(inVi)!.shape!.dim.forEach((d, i) => {
    if (i >= 2) d.value = { case: "dimValue", value: BigInt(inBox[i][1] - inBox[i][0]) };
  });
  graph.input = graph.input.filter((i) => i.name === g.input);
  graph.node = live(nodes, finalName);
  graph.initializer = [...graph.initializer, ...inits].filter((t) => graph.node.some((n) => n.input.includes(t.name)));
  graph.valueInfo = [];
  const outVi = clone(ModelProtoSchema, model).graph!.output.find((o) => o.name === g.output)!;
  outVi.name = finalName;
  tensorType(outVi)?.shape?.dim.forEach((d, i) => {
    if (i >= r - 2) d.value = { case: "dimValue", value: BigInt(outTarget[i][1] - outTarget[i][0]) };
  });
  graph.output = [outVi];
  if (opsetOf(m) < 10) throw new CropRefused("opset below 10 has no Slice with inputs");
  const fullMacs = g.nodes.reduce((s, n) => s + nodeMacs(g, n), 0);
  return { bytes: toBinary(ModelProtoSchema, m), inputBox: inBox, outputBox: outTarget, macs, fullMacs, whole, nodes: graph.node.length };
}

/**
 * The needed region of every tensor for the output cells in `outBox`, as the RoI-cropped and the
 * changed-region graphs compute them: a windowed Resize outputs floor(window × scale) cells from the
 * window's first, so its input must reach ceil(b / scale) (nearest-floor reads less) and start at or
 * before a / scale.
 */
export function roiNeeded(g: RegionGraph, outBox: Box): Map<string, Region> {
  const inRank = g.dims.get(g.input)!.length;
  return neededRegions(g, outBox, (n, k, read, out) => {
    if ((n.node.opType !== "Resize" && n.node.opType !== "Upsample") || k !== 0 || read.length !== inRank) return read;
    const dims = g.dims.get(n.node.input[0])!;
    const outDims = g.dims.get(n.node.output[0])!;
    return read.map(([lo, hi], i) => {
      if (i < 2 || lo >= hi) return [lo, hi];
      const s = outDims[i] / dims[i];
      return [Math.max(0, Math.min(lo, Math.floor(out[i][0] / s))), Math.min(dims[i], Math.max(hi, Math.ceil(out[i][1] / s)))];
    });
  });
}

/** The nodes the output depends on (constants whose only reader was rewritten are dropped). */
export function live(nodes: NodeProto[], output: string): NodeProto[] {
  const wanted = new Set([output]);
  const keep: NodeProto[] = [];
  for (let i = nodes.length - 1; i >= 0; i--) {
    if (!nodes[i].output.some((t) => wanted.has(t))) continue;
    keep.push(nodes[i]);
    for (const t of nodes[i].input) wanted.add(t);
  }
  return keep.reverse();
}
