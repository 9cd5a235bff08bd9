/**
 * Reading what an ONNX node or model states: node attributes (with the spec's defaults supplied by the
 * caller), the values of constant tensors, declared tensor types, the default-domain opset, and a
 * node's name for messages.
 */
import {
  type AttributeProto,
  TensorProto_DataType as DT,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  type TypeProto_Tensor,
  type ValueInfoProto,
} from "onnx-buf";
import { fail } from "../errors.js";

/** The tensor type (element type and shape) a value_info declares, if it declares a tensor. */
export function tensorType(v: ValueInfoProto | undefined): TypeProto_Tensor | undefined {
  return v?.type?.value.case === "tensorType" ? v.type.value.value : undefined;
}

/** The default-domain opset a model imports (0 when none). */
export function opsetOf(model: ModelProto): number {
  return Number(model.opsetImport.find((o) => o.domain === "" || o.domain === "ai.onnx")?.version ?? 0n);
}

export function describeNode(n: NodeProto): string {
  return `${n.opType} node '${n.name || n.output[0]}'`;
}

export function attr(node: NodeProto, name: string): AttributeProto | undefined {
  return node.attribute.find((a) => a.name === name);
}

export function attrInt(node: NodeProto, name: string, dflt: number): number {
  const a = attr(node, name);
  return a ? Number(a.i) : dflt;
}

export function attrFloat(node: NodeProto, name: string, dflt: number): number {
  const a = attr(node, name);
  return a ? a.f : dflt;
}

export function attrInts(node: NodeProto, name: string): number[] | undefined {
  const a = attr(node, name);
  return a ? a.ints.map(Number) : undefined;
}

export function attrString(node: NodeProto, name: string, dflt: string): string {
  const a = attr(node, name);
  return a ? new TextDecoder().decode(a.s) : dflt;
}

/** Flat values of a tensor proto as JS numbers (int64 converted; exact below 2^53). */
export function tensorValues(t: TensorProto): number[] {
  if (t.dataLocation === 1) fail(`tensor '${t.name}' stores its data externally`, "save the model with its weights inside the .onnx file");
  const raw = t.rawData;
  if (raw.length > 0) {
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const out: number[] = [];
    switch (t.dataType) {
      case DT.FLOAT:
        for (let i = 0; i < raw.length; i += 4) out.push(view.getFloat32(i, true));
        return out;
      case DT.DOUBLE:
        for (let i = 0; i < raw.length; i += 8) out.push(view.getFloat64(i, true));
        return out;
      case DT.INT64:
        for (let i = 0; i < raw.length; i += 8) out.push(Number(view.getBigInt64(i, true)));
        return out;
      case DT.INT32:
        for (let i = 0; i < raw.length; i += 4) out.push(view.getInt32(i, true));
        return out;
      case DT.BOOL:
      case DT.UINT8:
        return Array.from(raw);
      case DT.INT8:
        return Array.from(new Int8Array(raw.buffer, raw.byteOffset, raw.byteLength));
      default:
        fail(`tensor '${t.name}' has data type ${DT[t.dataType] ?? t.dataType}, which segcause cannot read`);
    }
  }
  if (t.floatData.length) return [...t.floatData];
  if (t.doubleData.length) return [...t.doubleData];
  if (t.int64Data.length) return t.int64Data.map(Number);
  if (t.int32Data.length) return [...t.int32Data];
  return [];
}
