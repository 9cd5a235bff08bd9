/** Reading ONNX graphs: what the model's inputs and outputs are and which ops produce them. */
import { clone } from "@bufbuild/protobuf";
import { type ModelProto, ModelProtoSchema, type NodeProto, TensorProto_DataType, type ValueInfoProto } from "onnx-buf";
import { opsetOf, tensorType } from "./attributes.js";
import { inferStatic, type StaticInfo } from "./shapes.js";

// src/model loads models through this module; the file reading itself is model-file.ts.
export { parseModel, readModelFile } from "./model-file.js";

/** A tensor dimension: a fixed size, or a symbolic/unknown one (string or undefined). */
export type Dim = number | string | undefined;

export interface TensorInfo {
  name: string;
  elemType: string;
  dims: Dim[];
}

export interface GraphSummary {
  opset: number;
  producer: string;
  inputs: TensorInfo[];
  outputs: TensorInfo[];
  /**
   * op type of the node that computes each graph output's values: the producing node, or, when that
   * only reshapes, selects, broadcasts or pools (Squeeze, Transpose, Expand, AveragePool, ...), the
   * node before it
   */
  outputOps: Record<string, string>;
  /** the ops between that node and each graph output that only move, broadcast or average its values (LAYOUT_OPS), in graph order (usually none) */
  outputLayoutOps: Record<string, string[]>;
  /** each output's static dims at batch 1 where the graph does not state them, computed from its shapes */
  outputStaticDims: Record<string, number[] | undefined>;
  opTypes: string[];
}

/** The inputs a caller feeds: older exporters list the initializers among the graph inputs too. */
export function graphInputs(model: ModelProto): ValueInfoProto[] {
  const initializers = new Set(model.graph!.initializer.map((t) => t.name));
  return model.graph!.input.filter((i) => !initializers.has(i.name));
}

const CONTROL_FLOW = new Set(["If", "Loop", "Scan"]);

/** The first control-flow node (If, Loop, Scan) of the graph: its subgraphs are neither cut nor differentiated. */
export function controlFlowNode(model: ModelProto): NodeProto | undefined {
  return model.graph!.node.find((n) => CONTROL_FLOW.has(n.opType));
}

/** A tensor's declared dims (symbolic ones by name), or undefined when the graph gives no shape. */
export function declaredShape(v: ValueInfoProto | undefined): Dim[] | undefined {
  const shape = tensorType(v)?.shape;
  if (!shape) return undefined;
  return shape.dim.map((d) =>
    d.value.case === "dimValue" ? Number(d.value.value) : d.value.case === "dimParam" && d.value.value ? d.value.value : undefined,
  );
}

function tensorInfo(v: ValueInfoProto): TensorInfo {
  const tt = tensorType(v);
  if (!tt) return { name: v.name, elemType: "non-tensor", dims: [] };
  const elemType = tt.elemType;
  return { name: v.name, elemType: TensorProto_DataType[elemType] ?? String(elemType), dims: declaredShape(v) ?? [] };
}

/**
 * Ops whose output values are copies, broadcasts or averages of their first input's values: after a
 * Sigmoid or Softmax, they still hold probabilities (a Sigmoid on a [N,1,1,1] score broadcast by
 * Expand or Tile, pooled, padded or resized to the image is still a probability per pixel).
 */
const LAYOUT_OPS = new Set([
  // move, reshape, select, retype
  "Identity",
  "Squeeze",
  "Unsqueeze",
  "Reshape",
  "Flatten",
  "Transpose",
  "Slice",
  "Gather",
  "GatherElements",
  "GatherND",
  "Cast",
  "Dropout",
  "DepthToSpace",
  "SpaceToDepth",
  "Compress",
  "ReverseSequence",
  "CenterCropPad",
  // broadcast, pad (a pad value outside [0, 1] is caught on the unperturbed pass), resample
  "Expand",
  "Tile",
  "Pad",
  "Resize",
  "Upsample",
  // pool or reduce to a mean, maximum or minimum
  "AveragePool",
  "MaxPool",
  "GlobalAveragePool",
  "GlobalMaxPool",
  "ReduceMean",
  "ReduceMax",
  "ReduceMin",
]);

/** The op that computes `t`'s values, looking through layout ops, and the layout ops passed. */
function valueOp(t: string, producers: Map<string, NodeProto>): { op: string; layout: string[] } {
  const layout: string[] = [];
  let n = producers.get(t);
  while (n && LAYOUT_OPS.has(n.opType) && layout.length < 16) {
    layout.unshift(n.opType);
    n = producers.get(n.input[0]);
  }
  return { op: n?.opType ?? "?", layout };
}

/** Output dims computed from the graph's shapes at batch 1 (undefined when the graph cannot be inferred). */
function staticOutputDims(model: ModelProto, outputs: TensorInfo[]): Record<string, number[] | undefined> {
  const result: Record<string, number[] | undefined> = {};
  const missing = outputs.filter((o) => o.dims.slice(1).some((d) => typeof d !== "number"));
  if (missing.length === 0) return result;
  let infos: Map<string, StaticInfo> | undefined;
  try {
    infos = inferStatic(model, 1);
  } catch {
    infos = undefined; // e.g. a symbolic input height/width: nothing more is known
  }
  for (const o of missing) {
    const i = infos?.get(o.name);
    result[o.name] = i && !i.unknown ? i.dims : undefined;
  }
  return result;
}

export function summarize(model: ModelProto): GraphSummary {
  const graph = model.graph!;
  const producers = new Map<string, NodeProto>();
  for (const n of graph.node) for (const o of n.output) producers.set(o, n);
  const outputs = graph.output.map(tensorInfo);
  const computed = Object.fromEntries(outputs.map((o) => [o.name, valueOp(o.name, producers)]));
  return {
    opset: opsetOf(model),
    producer: `${model.producerName} ${model.producerVersion}`.trim(),
    inputs: graphInputs(model).map(tensorInfo),
    outputs,
    outputOps: Object.fromEntries(outputs.map((o) => [o.name, computed[o.name].op])),
    outputLayoutOps: Object.fromEntries(outputs.map((o) => [o.name, computed[o.name].layout])),
    outputStaticDims: staticOutputDims(model, outputs),
    opTypes: [...new Set(graph.node.map((n) => n.opType))].sort(),
  };
}

/**
 * A copy of the model whose image input has the given sizes on its symbolic non-batch axes (the model
 * card's channels, height and width), so graphs exported with dynamic height/width can be analysed
 * statically (gradient graphs, feature maps) at the size the model is run at.
 */
export function withInputSize(model: ModelProto, input: string, chw: number[]): ModelProto {
  const vi = model.graph!.input.find((i) => i.name === input);
  const shape = tensorType(vi)?.shape;
  if (!shape || shape.dim.slice(1).every((d) => d.value.case === "dimValue")) return model;
  const m = clone(ModelProtoSchema, model);
  tensorType(m.graph!.input.find((i) => i.name === input))!.shape!.dim.forEach((d, i) => {
    if (i > 0 && d.value.case !== "dimValue" && chw[i - 1] !== undefined) d.value = { case: "dimValue", value: BigInt(chw[i - 1]) };
  });
  return m;
}
