/** Reading ONNX graphs: what the model's inputs and outputs are and which ops produce them. */
import { clone, fromBinary, toBinary } from "@bufbuild/protobuf";
import { ModelProtoSchema, type ModelProto, type NodeProto, type ValueInfoProto, TensorProto_DataType, TensorProto_DataLocation } from "onnx-buf";
import { realpathSync, statSync } from "node:fs";
import { basename, dirname, isAbsolute, relative, resolve, sep } from "node:path";
import { fail } from "../errors.js";
import { readFileBounded } from "../util/read.js";
import { opsetOf, tensorType } from "./attributes.js";
import { inferStatic, type StaticInfo } from "./shapes.js";
import { sha256 } from "../util/hash.js";

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

/**
 * Reads and parses an ONNX file; an unreadable path or a non-ONNX file is a one-line error. Weights
 * saved as external data (files next to the model) are read into the model, so `bytes` is always the
 * complete model: what every session is built from, and what the model's hash covers.
 */
export function readModelFile(path: string): { bytes: Uint8Array; proto: ModelProto; sha256: string } {
  const bytes = readFileBounded(path, { what: "model", kind: "model", hint: "give the .onnx file of the model" });
  const proto = parseModel(bytes, path);
  const data = inlineExternalData(proto, path);
  if (data.length === 0) return { bytes, proto, sha256: sha256(bytes) };
  // The identity of the model is its file and its data files as stored, not a re-serialisation.
  return { bytes: toBinary(ModelProtoSchema, proto), proto, sha256: sha256(Buffer.concat([bytes, ...data])) };
}

/** Protobuf's limit on one message: a model whose weights exceed it cannot be inlined. */
const PROTOBUF_LIMIT = 2 ** 31 - 1;

/** Moves external tensor data into the tensors (in place); returns the data files read, in order. */
function inlineExternalData(model: ModelProto, path: string): Buffer[] {
  const tensors = [...model.graph!.initializer, ...model.graph!.node.flatMap((n) => n.attribute.flatMap((a) => (a.t ? [a.t] : [])))];
  const external = tensors.filter((t) => t.dataLocation === TensorProto_DataLocation.EXTERNAL);
  if (external.length === 0) {
    if (hasExternal(model)) fail(`${path} keeps tensor data outside the file in a place segcause does not read (a sparse initializer, a tensor list or a subgraph)`, "save the model with its weights inside the .onnx file");
    return [];
  }
  const files = new Map<string, Buffer>();
  for (const t of external) {
    const entry = Object.fromEntries(t.externalData.map((e) => [e.key, e.value]));
    const location = entry.location ?? "";
    const file = resolve(dirname(path), location);
    if (!location || isAbsolute(location) || !inside(dirname(path), file)) {
      fail(`${path}: tensor '${t.name}' names its external data file as '${location}'`, "external data must be a file in the model's folder (onnx.save(..., save_as_external_data=True) writes it so)");
    }
    let data = files.get(file);
    if (!data) {
      const hint = `keep ${location} next to ${basename(path)}`;
      let real: string;
      try {
        real = realpathSync(file);
      } catch (e) {
        fail(`${path} keeps the weights of tensor '${t.name}' in ${location}, which cannot be read (${(e as NodeJS.ErrnoException).code ?? "read error"})`, hint);
      }
      // A symbolic link in the folder may point anywhere: what is read must lie in the model's (real) folder.
      if (!inside(realpathSync(dirname(path)), real)) {
        fail(`${path} keeps the weights of tensor '${t.name}' in ${location}, a link to a file outside the model's folder`, "external data must be a file in the model's folder: copy the file there instead of linking it");
      }
      // Several data files could add up to more than one model can hold: stop before reading the next.
      const read = [...files.values()].reduce((n, b) => n + b.length, 0);
      const size = statSync(real).size;
      if (read + size > PROTOBUF_LIMIT) tooLarge(path, read + size);
      data = readFileBounded(real, { what: `external data file of ${basename(path)}`, kind: "externalData", hint });
      files.set(file, data);
    }
    const offset = Number(entry.offset ?? 0);
    const length = entry.length !== undefined ? Number(entry.length) : data.length - offset;
    if (!(offset >= 0 && length >= 0 && offset + length <= data.length)) {
      fail(`${path}: tensor '${t.name}' reads bytes ${offset}..${offset + length} of ${location}, which holds ${data.length}`, `the external data file does not belong to this model: export it again`);
    }
    t.rawData = Uint8Array.from(data.subarray(offset, offset + length));
    t.externalData = [];
    t.dataLocation = TensorProto_DataLocation.DEFAULT;
  }
  const total = tensors.reduce((n, t) => n + t.rawData.length, 0);
  if (total > PROTOBUF_LIMIT) tooLarge(path, total);
  if (hasExternal(model)) fail(`${path} keeps tensor data outside the file in a place segcause does not read (a sparse initializer, a tensor list or a subgraph)`, "save the model with its weights inside the .onnx file");
  return [...files.values()];
}

function tooLarge(path: string, bytes: number): never {
  fail(`${path} has ${(bytes / 2 ** 30).toFixed(1)} GiB of weights, more than one ONNX file can hold in memory (2 GiB)`, "segcause builds its sessions from one in-memory model; use a smaller model (or fp32 weights under 2 GiB)");
}

/** Whether `file` lies in `folder` or below it (both resolved paths). */
function inside(folder: string, file: string): boolean {
  const rel = relative(folder, file);
  return rel !== "" && rel !== ".." && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
}

/** Whether any tensor anywhere in the model (subgraphs, tensor lists, sparse initializers) is still external. */
function hasExternal(model: ModelProto): boolean {
  const ext = (t: { dataLocation: number } | undefined) => t?.dataLocation === TensorProto_DataLocation.EXTERNAL;
  const graph = (g: NonNullable<ModelProto["graph"]>): boolean =>
    g.initializer.some(ext) ||
    g.sparseInitializer.some((s) => ext(s.values) || ext(s.indices)) ||
    g.node.some((n) => n.attribute.some((a) => ext(a.t) || a.tensors.some(ext) || (a.g !== undefined && graph(a.g)) || a.graphs.some(graph)));
  return graph(model.graph!);
}

export function parseModel(bytes: Uint8Array, path = "model"): ModelProto {
  let model: ModelProto;
  try {
    model = fromBinary(ModelProtoSchema, bytes);
  } catch (e) {
    fail(`${path} is not a readable ONNX file (${(e as Error).message})`, "the file is truncated or not an ONNX model: copy or export it again (torch.onnx.export)");
  }
  if (!model.graph || model.graph.node.length === 0) {
    fail(`${path} is not an ONNX model: it has no graph nodes`, "pass the .onnx file written by torch.onnx.export");
  }
  return model;
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
  return shape.dim.map((d) => (d.value.case === "dimValue" ? Number(d.value.value) : d.value.case === "dimParam" && d.value.value ? d.value.value : undefined));
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
  "Identity", "Squeeze", "Unsqueeze", "Reshape", "Flatten", "Transpose", "Slice", "Gather", "GatherElements", "GatherND", "Cast", "Dropout",
  "DepthToSpace", "SpaceToDepth", "Compress", "ReverseSequence", "CenterCropPad",
  // broadcast, pad (a pad value outside [0, 1] is caught on the unperturbed pass), resample
  "Expand", "Tile", "Pad", "Resize", "Upsample",
  // pool or reduce to a mean, maximum or minimum
  "AveragePool", "MaxPool", "GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceMax", "ReduceMin",
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
