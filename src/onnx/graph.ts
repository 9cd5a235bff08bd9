/** Reading ONNX graphs: what the model's inputs and outputs are and which ops produce them. */
import { fromBinary } from "@bufbuild/protobuf";
import { ModelProtoSchema, type ModelProto, type ValueInfoProto, TensorProto_DataType } from "onnx-buf";
import { readFileSync } from "node:fs";
import { fail } from "../errors.js";

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
  /** op type of the node producing each graph output */
  outputOps: Record<string, string>;
  opTypes: string[];
}

/** Reads and parses an ONNX file; an unreadable path or a non-ONNX file is a one-line error. */
export function readModelFile(path: string): { bytes: Buffer; proto: ModelProto } {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    fail(`cannot read model ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, "check the --model path");
  }
  return { bytes, proto: parseModel(bytes, path) };
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

function tensorInfo(v: ValueInfoProto): TensorInfo {
  const t = v.type?.value;
  if (v.type?.value.case !== "tensorType" || !t) return { name: v.name, elemType: "non-tensor", dims: [] };
  const tensor = v.type.value.value;
  const dims: Dim[] = (tensor.shape?.dim ?? []).map((d) =>
    d.value.case === "dimValue" ? Number(d.value.value) : d.value.case === "dimParam" ? d.value.value : undefined,
  );
  return { name: v.name, elemType: TensorProto_DataType[tensor.elemType] ?? String(tensor.elemType), dims };
}

export function summarize(model: ModelProto): GraphSummary {
  const graph = model.graph!;
  const initializers = new Set(graph.initializer.map((t) => t.name));
  const producers = new Map<string, string>();
  for (const n of graph.node) for (const o of n.output) producers.set(o, n.opType);
  const outputs = graph.output.map(tensorInfo);
  const opset = Number(model.opsetImport.find((o) => o.domain === "" || o.domain === "ai.onnx")?.version ?? 0n);
  return {
    opset,
    producer: `${model.producerName} ${model.producerVersion}`.trim(),
    // Older exporters list initializers among the inputs; they are not fed by the user.
    inputs: graph.input.filter((i) => !initializers.has(i.name)).map(tensorInfo),
    outputs,
    outputOps: Object.fromEntries(outputs.map((o) => [o.name, producers.get(o.name) ?? "?"])),
    opTypes: [...new Set(graph.node.map((n) => n.opType))].sort(),
  };
}
