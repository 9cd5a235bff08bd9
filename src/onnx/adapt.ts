/**
 * Layout adapters: a model exported channels-last (Keras/TensorFlow: input [N, H, W, C], output
 * [N, H, W, K]) or with an output below the input resolution (Hugging Face SegFormer logits at 1/4
 * size, DeepLab heads without their final upsampling) is rewritten once at load time into the form
 * every method works with: NCHW input, NCHW output at the input's size. The rewrite happens in the
 * graph, not in JavaScript, so the forward passes, the gradient graphs and the component cuts all see
 * the same model. Names of the input and output are kept (the original tensors are renamed).
 */
import { clone, create } from "@bufbuild/protobuf";
import { type ModelProto, ModelProtoSchema, NodeProtoSchema } from "onnx-buf";
import { fail } from "../errors.js";
import { tensorType } from "./attributes.js";
import { attribute, floatTensor, valueInfo } from "./builder.js";
import { declaredShape, withInputSize } from "./graph.js";
import { inferStatic } from "./shapes.js";

export type Layout = "nchw" | "nhwc";

/** The channel, height and width dims of a rank-4 tensor [N, ...] in the given layout. */
export function chwOf<T>(dims: readonly T[], layout: Layout): [T, T, T] {
  return layout === "nhwc" ? [dims[3], dims[1], dims[2]] : [dims[1], dims[2], dims[3]];
}

/** Names of the nodes the adapter adds: not part of the network, so never listed as components. */
export const ADAPTER_NODE_PREFIX = "segcause_adapt_";
/** Marks the tensors the adapter renamed or added (the network's own output becomes `<name>::segcause_...`). */
const ADAPTER_TENSOR_MARK = "::segcause_";

/** True for a tensor the adapter renamed or added: not a feature map of the network. */
export function isAdapterTensor(name: string): boolean {
  return name.includes(ADAPTER_TENSOR_MARK);
}

export interface AdaptRequest {
  input: { name: string; layout: Layout; channels: number; height: number; width: number };
  /** layout undefined: read from the output's shape (the input's layout when the shape cannot tell) */
  output: { name: string; layout?: Layout };
}

export interface Adapted {
  /** the rewritten model, or undefined when it needs no change */
  proto: ModelProto | undefined;
  /** what was changed, in words (recorded with the card's assumptions) */
  notes: string[];
  /** the output's layout as read */
  outputLayout: Layout;
  /** the output's class count at the card's input size (1 for [N, H, W]), when known */
  classes: number | undefined;
}

/**
 * Bilinear interpolation matrix [outSize, inSize] with half-pixel centres and edge clamping: the
 * arithmetic of PyTorch's interpolate(mode="bilinear", align_corners=False), ONNX Resize
 * (linear, half_pixel) and Hugging Face's semantic-segmentation post-processing.
 */
export function bilinearMatrix(inSize: number, outSize: number): Float32Array {
  const R = new Float32Array(outSize * inSize);
  for (let o = 0; o < outSize; o++) {
    const x = Math.min(Math.max(((o + 0.5) * inSize) / outSize - 0.5, 0), inSize - 1);
    const x0 = Math.floor(x),
      t = x - x0;
    R[o * inSize + x0] += 1 - t;
    R[o * inSize + Math.min(x0 + 1, inSize - 1)] += t;
  }
  return R;
}

/** The strides s in 2..32 with out = floor or ceil of in / s (a strided head's output size). */
function strides(inSize: number, outSize: number): number[] {
  const out: number[] = [];
  for (let s = 2; s <= 32; s++) if (outSize === Math.floor(inSize / s) || outSize === Math.ceil(inSize / s)) out.push(s);
  return out;
}

/**
 * The stride of an h x w output of an H x W input: one stride for both axes, and at least 2 output
 * pixels a side (a 1x1 output is a classifier's, not a segmentation head's). Undefined when none fits.
 */
export function downscaleFactor(H: number, W: number, h: number, w: number): number | undefined {
  if (h < 2 || w < 2) return undefined;
  const sw = new Set(strides(W, w));
  return strides(H, h).find((s) => sw.has(s));
}

type Dim = number | string | undefined;

/**
 * How plausible it is that spatial axes (a, b) of an output belong to an H x W input: 2 the same size
 * (or the input's own symbolic names), 1 a stride of it (or both symbolic), 0 neither.
 */
function fit(H: number, W: number, a: Dim, b: Dim, inputNames: readonly Dim[] = []): number {
  if (typeof a === "number" && typeof b === "number") return a === H && b === W ? 2 : downscaleFactor(H, W, a, b) !== undefined ? 1 : 0;
  if (typeof a === "string" && typeof b === "string") return a === inputNames[0] && b === inputNames[1] ? 2 : 1;
  return 0;
}

/**
 * The output's layout: the stated one, else the reading under which its spatial axes fit the input
 * (same size, a stride of it, or the input's symbolic names) and its class axis is a fixed count, else
 * the input's (Keras models are channels-last throughout, PyTorch ones channels-first).
 * `inputNames`: the input's height and width dims as the graph gives them (symbolic names count).
 */
export function outputLayoutOf(
  dims: readonly Dim[] | undefined,
  H: number,
  W: number,
  inputLayout: Layout,
  stated?: Layout,
  inputNames: readonly Dim[] = [],
): Layout {
  if (stated) return stated;
  if (dims?.length !== 4) return inputLayout;
  const score = (c: Dim, a: Dim, b: Dim) => 2 * fit(H, W, a, b, inputNames) + (typeof c === "number" ? 1 : 0);
  const [first, last] = [score(dims[1], dims[2], dims[3]), score(dims[3], dims[1], dims[2])];
  return first === last ? inputLayout : first > last ? "nchw" : "nhwc";
}

/** Renames tensor `from` to `to` everywhere it is produced, consumed or described. */
function renameTensor(model: ModelProto, from: string, to: string): void {
  const g = model.graph!;
  for (const n of g.node) {
    n.input = n.input.map((t) => (t === from ? to : t));
    n.output = n.output.map((t) => (t === from ? to : t));
  }
  for (const v of g.valueInfo) if (v.name === from) v.name = to;
}

/** Adds a node first (reading the graph input) or last (reading its output): the graph stays in topological order. */
function addNode(
  model: ModelProto,
  at: "first" | "last",
  opType: string,
  inputs: string[],
  output: string,
  attrs: Record<string, number[]> = {},
): void {
  const node = create(NodeProtoSchema, {
    name: `${ADAPTER_NODE_PREFIX}${output}`,
    opType,
    input: inputs,
    output: [output],
    attribute: Object.entries(attrs).map(([k, v]) => attribute(k, { ints: v })),
  });
  if (at === "first") model.graph!.node.unshift(node);
  else model.graph!.node.push(node);
}

/** The output's dims: declared in the graph, else computed from its shapes at the card's input size. */
function outputDims(model: ModelProto, req: AdaptRequest, declared: Dim[] | undefined): (number | undefined)[] | undefined {
  const numeric = declared?.map((d) => (typeof d === "number" ? d : undefined));
  if (numeric?.slice(1).every((d) => d !== undefined)) return numeric;
  const { name, layout, channels: C, height: H, width: W } = req.input;
  try {
    const info = inferStatic(withInputSize(model, name, layout === "nhwc" ? [H, W, C] : [C, H, W]), 1).get(req.output.name);
    if (info && !info.unknown) return info.dims;
  } catch {
    // shapes the inference cannot follow: only the declared rank (if any) is known
  }
  return numeric;
}

/**
 * Rewrites the model to NCHW input and a full-resolution NCHW (or [N, H, W]) output; `proto` is
 * undefined when it already is. Also returns the output's class count at the card's size when known.
 * Refuses an output smaller than the input that no stride explains.
 */
export function adaptLayout(model: ModelProto, req: AdaptRequest): Adapted {
  const { input, output } = req;
  const m = clone(ModelProtoSchema, model);
  const g = m.graph!;
  const notes: string[] = [];
  const { height: H, width: W } = input;
  const outInfo = g.output.find((o) => o.name === output.name)!;
  const declared = declaredShape(outInfo);
  const dims = outputDims(model, req, declared);
  const rank = dims?.length;
  let changed = false;

  if (input.layout === "nhwc") {
    // A control-flow body reading the input by its outer name would see the transposed tensor.
    const body = g.node.find((n) => n.attribute.some((a) => a.g || a.graphs.length > 0));
    if (body)
      fail(
        `the model is channels-last and contains control flow (${body.opType} node '${body.name}'), which segcause cannot adapt`,
        "export the model with an NCHW input, or without data-dependent control flow (trace it)",
      );
    const inner = `${input.name}${ADAPTER_TENSOR_MARK}nhwc`;
    renameTensor(m, input.name, inner);
    addNode(m, "first", "Transpose", [input.name], inner, { perm: [0, 2, 3, 1] });
    // The file's own dims and element type, reordered (Model checks them against the card).
    const vi = g.input.find((i) => i.name === input.name)!;
    const d = declaredShape(vi) ?? [];
    const elemType = tensorType(vi)?.elemType;
    g.input[g.input.indexOf(vi)] = valueInfo(input.name, [d[0] ?? "N", d[3] ?? "C", d[1] ?? "H", d[2] ?? "W"], elemType);
    notes.push(`input '${input.name}' is channels-last [N, H, W, C]: segcause feeds [N, C, H, W] and transposes it inside the graph`);
    changed = true;
  }

  // Symbolic names help where the shapes cannot be computed: [N, 2, "H", "W"] behind an input [N, "H", "W", 3].
  const inDims = declaredShape(model.graph!.input.find((i) => i.name === input.name)) ?? [];
  const layout = outputLayoutOf(
    dims?.every((d) => d !== undefined) ? dims : declared,
    H,
    W,
    input.layout,
    output.layout,
    input.layout === "nhwc" ? inDims.slice(1, 3) : inDims.slice(2, 4),
  );
  let h: number | undefined, w: number | undefined, k: number | undefined;
  if (dims && rank === 4) [k, h, w] = chwOf(dims, layout);
  else if (dims && rank === 3) [h, w, k] = [dims[1], dims[2], 1];

  let out = output.name;
  const fresh = (what: string) => `${output.name}${ADAPTER_TENSOR_MARK}${what}`;
  if (layout === "nhwc" && rank !== 4) {
    fail(
      `model output '${output.name}' is read as channels-last [N, H, W, K], but the graph ${rank === undefined ? "does not give its shape" : `gives it rank ${rank}`}`,
      rank === undefined
        ? "pass --output-layout nchw if it is channels-first (or set output.layout in the card), or export the output with its shape"
        : "pass --output-layout nchw (or set output.layout in the card)",
    );
  }
  if (layout === "nhwc") {
    renameTensor(m, out, fresh("nhwc"));
    addNode(m, "last", "Transpose", [fresh("nhwc")], fresh("nchw"), { perm: [0, 3, 1, 2] });
    out = fresh("nchw");
    notes.push(`output '${output.name}' is channels-last [N, H, W, K]: transposed to [N, K, H, W] inside the graph`);
    changed = true;
  }
  let upsampled = false;
  if (h !== undefined && w !== undefined && (h !== H || w !== W) && h <= H && w <= W) {
    // A strided head gives floor or ceil of size/stride; any other smaller size (a valid-convolution
    // U-Net's 388 from 572) covers only part of the input, and stretching it would misplace every pixel.
    if (downscaleFactor(H, W, h, w) === undefined) {
      const other = rank === 4 && dims ? (layout === "nhwc" ? fit(H, W, dims[2], dims[3]) : fit(H, W, dims[1], dims[2])) : 0;
      const flip = layout === "nhwc" ? "nchw" : "nhwc";
      fail(
        `model output '${output.name}' [${dims!.map((x) => x ?? "?").join(", ")}] read as ${layout === "nhwc" ? "channels-last" : "channels-first"} is ${w}x${h}, but the input is ${W}x${H} and that is not the input size divided by one stride: segcause cannot tell which input pixel each output pixel belongs to`,
        other > 0
          ? `the output reads correctly as ${flip === "nhwc" ? "channels-last" : "channels-first"}: pass --output-layout ${flip} (or set output.layout "${flip}" in the model card)`
          : "export the model with an output at the input's size (add the final upsampling, or pad the input of a valid-convolution network)",
      );
    }
    // out[n, k] = Rh · x[n, k] · Rwᵀ: two MatMuls with constant matrices (broadcast over N and K), valid
    // at every opset and differentiable by the gradient builder (a Resize would need a batch-dependent `sizes`).
    const source = out === output.name ? fresh("lowres") : out;
    if (out === output.name) renameTensor(m, out, source);
    const rw = fresh("resize_w"),
      rh = fresh("resize_h");
    const Rw = bilinearMatrix(w, W),
      RwT = new Float32Array(w * W);
    for (let o = 0; o < W; o++) for (let i = 0; i < w; i++) RwT[i * W + o] = Rw[o * w + i];
    g.initializer.push(floatTensor(rw, [w, W], RwT), floatTensor(rh, [H, h], bilinearMatrix(h, H)));
    addNode(m, "last", "MatMul", [source, rw], fresh("wide"));
    addNode(m, "last", "MatMul", [rh, fresh("wide")], fresh("full"));
    out = fresh("full");
    notes.push(
      `output '${output.name}' is ${w}x${h} but the input is ${W}x${H}: upsampled bilinearly inside the graph (half-pixel centres, as PyTorch's interpolate with align_corners=False)`,
    );
    changed = upsampled = true;
  }
  if (changed && out !== output.name) {
    // The last new tensor takes the output's name, so the card and every caller keep using it.
    renameTensor(m, out, output.name);
    // Declared as known: the batch as the file declares it (shapes were computed at batch 1), the
    // spatial size only where known or upsampled, and the file's element type.
    const batch = declared?.[0] ?? "N";
    const [oh, ow] = upsampled ? [H, W] : [h ?? "H", w ?? "W"];
    const elemType = tensorType(outInfo)?.elemType;
    g.output[g.output.indexOf(outInfo)] = valueInfo(output.name, rank === 3 ? [batch, oh, ow] : [batch, k ?? "K", oh, ow], elemType);
  }
  return { proto: changed ? m : undefined, notes, outputLayout: layout, classes: k };
}
