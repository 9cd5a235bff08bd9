/**
 * Layout adapters: a model exported channels-last (Keras/TensorFlow: input [N, H, W, C], output
 * [N, H, W, K]) or with an output below the input resolution (Hugging Face SegFormer logits at 1/4
 * size, DeepLab heads without their final upsampling) is rewritten once at load time into the form
 * every method works with: NCHW input, NCHW output at the input's size. The rewrite happens in the
 * graph, not in JavaScript, so the forward passes, the gradient graphs and the component cuts all see
 * the same model. Names of the input and output are kept (the original tensors are renamed).
 */
import { clone, create } from "@bufbuild/protobuf";
import { ModelProtoSchema, NodeProtoSchema, type ModelProto, type ValueInfoProto } from "onnx-buf";
import { fail } from "../errors.js";
import { attribute, floatTensor, valueInfo } from "./builder.js";
import { withInputSize } from "./graph.js";
import { inferStatic } from "./shapes.js";

export type Layout = "nchw" | "nhwc";

/** Names of the nodes the adapter adds: not part of the network, so never listed as components. */
export const ADAPTER_NODE_PREFIX = "segcause_adapt_";

export interface AdaptRequest {
  input: { name: string; layout: Layout; channels: number; height: number; width: number };
  output: { name: string; layout: Layout };
}

export interface Adapted {
  proto: ModelProto;
  /** what was changed, in words (recorded with the card's assumptions) */
  notes: string[];
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
    const x0 = Math.floor(x), t = x - x0;
    R[o * inSize + x0] += 1 - t;
    R[o * inSize + Math.min(x0 + 1, inSize - 1)] += t;
  }
  return R;
}

/** The stride s in 2..64 with out = floor or ceil of in / s, if any. */
export function downscaleFactor(inSize: number, outSize: number): number | undefined {
  for (let s = 2; s <= 64; s++) if (outSize === Math.floor(inSize / s) || outSize === Math.ceil(inSize / s)) return s;
  return undefined;
}

/** Dims of a value info, symbolic ones as undefined. */
function declaredDims(v: ValueInfoProto | undefined): (number | undefined)[] | undefined {
  if (v?.type?.value.case !== "tensorType") return undefined;
  return (v.type.value.value.shape?.dim ?? []).map((d) => (d.value.case === "dimValue" ? Number(d.value.value) : undefined));
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
function addNode(model: ModelProto, at: "first" | "last", opType: string, inputs: string[], output: string, attrs: Record<string, number[]> = {}): void {
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

/**
 * Returns the model rewritten to NCHW input and full-resolution NCHW output, or undefined when it
 * already is. The output's size is read from the graph or computed from its shapes at the card's
 * input size; an output whose size cannot be known is left as it is (Model then names the mismatch).
 */
export function adaptLayout(model: ModelProto, req: AdaptRequest): Adapted | undefined {
  const { input, output } = req;
  const m = clone(ModelProtoSchema, model);
  const g = m.graph!;
  const notes: string[] = [];
  const { channels: C, height: H, width: W } = input;
  const fileDims = input.layout === "nhwc" ? [H, W, C] : [C, H, W];
  const outInfo = g.output.find((o) => o.name === output.name);
  if (!outInfo) fail(`model output '${output.name}' is not an output of the graph`, "check output.name in the model card");
  let outDims = declaredDims(outInfo);
  if (!outDims || outDims.slice(1).some((d) => d === undefined)) {
    try {
      const info = inferStatic(withInputSize(model, input.name, fileDims), 1).get(output.name);
      if (info && !info.unknown) outDims = info.dims;
    } catch {
      // shapes the inference cannot follow: the size stays unknown
    }
  }
  let out = output.name;
  const fresh = (what: string) => `${output.name}::segcause_${what}`;
  let changed = false;

  if (input.layout === "nhwc") {
    const inner = `${input.name}::segcause_nhwc`;
    renameTensor(m, input.name, inner);
    addNode(m, "first", "Transpose", [input.name], inner, { perm: [0, 2, 3, 1] });
    // The file's own dims, reordered: a fixed size that differs from the card's is still caught by Model.
    const vi = g.input.find((i) => i.name === input.name)!;
    const dims = (vi.type?.value.case === "tensorType" ? vi.type.value.value.shape?.dim ?? [] : []).map((d, i) =>
      d.value.case === "dimValue" ? Number(d.value.value) : d.value.case === "dimParam" && d.value.value ? d.value.value : ["N", "H", "W", "C"][i],
    );
    g.input[g.input.indexOf(vi)] = valueInfo(input.name, [dims[0], dims[3], dims[1], dims[2]]);
    notes.push(`input '${input.name}' is channels-last [N, H, W, C]: segcause feeds [N, C, H, W] and transposes it inside the graph`);
    changed = true;
  }

  const rank = outDims?.length;
  let k: number | undefined, h: number | undefined, w: number | undefined;
  if (outDims && rank === 4) [k, h, w] = output.layout === "nhwc" ? [outDims[3], outDims[1], outDims[2]] : [outDims[1], outDims[2], outDims[3]];
  if (output.layout === "nhwc" && rank === 4) {
    renameTensor(m, out, fresh("nhwc"));
    addNode(m, "last", "Transpose", [fresh("nhwc")], fresh("nchw"), { perm: [0, 3, 1, 2] });
    out = fresh("nchw");
    notes.push(`output '${output.name}' is channels-last [N, H, W, K]: transposed to [N, K, H, W] inside the graph`);
    changed = true;
  }
  if (rank === 4 && h !== undefined && w !== undefined && (h !== H || w !== W) && h <= H && w <= W) {
    // A strided head gives floor or ceil of size/stride; any other smaller size (a valid-convolution
    // U-Net's 388 from 572) covers only part of the input, and stretching it would misplace every pixel.
    if (downscaleFactor(H, h) === undefined || downscaleFactor(W, w) === undefined) {
      fail(
        `model output '${output.name}' is ${w}x${h} but the input is ${W}x${H}, which is not the input size divided by a stride: segcause cannot tell which input pixel each output pixel belongs to`,
        "export the model with an output at the input's size (add the final upsampling, or pad the input of a valid-convolution network)",
      );
    }
    // out[n, k] = Rh · x[n, k] · Rwᵀ: two MatMuls with constant matrices, valid at every opset and
    // differentiable by the gradient builder (a Resize would need a batch-dependent `sizes` input).
    const source = out === output.name ? fresh("lowres") : out;
    if (out === output.name) renameTensor(m, out, source);
    const rw = fresh("resize_w"), rh = fresh("resize_h");
    const Rw = bilinearMatrix(w, W), RwT = new Float32Array(w * W);
    for (let o = 0; o < W; o++) for (let i = 0; i < w; i++) RwT[i * W + o] = Rw[o * w + i];
    g.initializer.push(floatTensor(rw, [w, W], RwT), floatTensor(rh, [H, h], bilinearMatrix(h, H)));
    addNode(m, "last", "MatMul", [source, rw], fresh("wide"));
    addNode(m, "last", "MatMul", [rh, fresh("wide")], fresh("full"));
    out = fresh("full");
    notes.push(`output '${output.name}' is ${w}x${h} but the input is ${W}x${H}: upsampled bilinearly inside the graph (half-pixel centres, as PyTorch's interpolate with align_corners=False)`);
    changed = true;
  }
  if (!changed) return undefined;
  if (out !== output.name) {
    // The last new tensor takes the output's name, so the card and every caller keep using it.
    renameTensor(m, out, output.name);
    const batch = outDims?.[0];
    g.output[g.output.indexOf(outInfo)] = valueInfo(output.name, [batch ?? "N", k ?? "K", H, W]);
  }
  return { proto: m, notes };
}
