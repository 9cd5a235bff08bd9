/**
 * Widening half-precision models to float32. ONNX Runtime's CPU provider has float16 kernels for few
 * ops, so a `model.half()` export would not run (or would run slowly through inserted casts). Every
 * half value is exactly a float32, so the model is rewritten once at load time, in the graph: the
 * weights, constants, declared types and type attributes become float32, and every method (forward
 * passes, gradient graphs, component cuts) sees the same float32 model. Only the rounding of
 * intermediate results to half precision is lost, so outputs differ from a float16 run in the last bits.
 *
 * BFLOAT16 is widened the same way: it is the upper half of a float32 (exact by a shift, same exponent
 * range, so not even overflow changes), and ONNX Runtime's CPU provider runs it even less than float16.
 */
import { clone } from "@bufbuild/protobuf";
import {
  AttributeProto_AttributeType as AT,
  type AttributeProto,
  TensorProto_DataType as DT,
  type GraphProto,
  type ModelProto,
  ModelProtoSchema,
  type NodeProto,
  type SparseTensorProto,
  type TensorProto,
  TensorProto_DataLocation,
  type TypeProto,
} from "onnx-buf";
import { fail } from "../errors.js";

const HALF_TYPES = new Set<number>([DT.FLOAT16, DT.BFLOAT16]);

/**
 * Int attributes that hold an element type (Cast `to`; EyeLike, RandomNormal/Uniform(Like), Bernoulli
 * `dtype`; the window functions' and MelWeightMatrix's `output_datatype`; DequantizeLinear-23's
 * `output_dtype`). Matched in every domain: such an attribute equal to FLOAT16 is an element type in practice.
 */
const TYPE_ATTRIBUTES = new Set(["to", "dtype", "output_datatype", "output_dtype"]);

/** The value of an IEEE binary16 bit pattern (subnormals, ±0, ±inf, NaN). */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 31) return m ? NaN : sign * Infinity;
  return e === 0 ? sign * m * 2 ** -24 : sign * (1024 + m) * 2 ** (e - 25);
}

/** Counts (dry run) or applies the widening, graph by graph. */
class Widener {
  tensors = 0;
  attributes = 0;
  types = 0;
  readonly kinds = new Set<string>();

  constructor(private readonly apply: boolean) {}

  graph(g: GraphProto): void {
    g.initializer.forEach((t) => this.tensor(t));
    g.sparseInitializer.forEach((s) => this.sparse(s));
    for (const v of [...g.input, ...g.output, ...g.valueInfo]) this.type(v.type);
    g.node.forEach((n) => this.node(n));
  }

  node(n: NodeProto): void {
    n.attribute.forEach((a) => this.attribute(a));
  }

  attribute(a: AttributeProto): void {
    this.tensor(a.t);
    a.tensors.forEach((t) => this.tensor(t));
    this.sparse(a.sparseTensor);
    a.sparseTensors.forEach((s) => this.sparse(s));
    this.type(a.tp);
    a.typeProtos.forEach((t) => this.type(t));
    if (a.g) this.graph(a.g);
    a.graphs.forEach((g) => this.graph(g));
    if (a.type === AT.INT && TYPE_ATTRIBUTES.has(a.name) && HALF_TYPES.has(Number(a.i))) {
      this.found(Number(a.i));
      this.attributes++;
      if (this.apply) a.i = BigInt(DT.FLOAT);
    }
  }

  private found(type: number): void {
    this.kinds.add(DT[type].toLowerCase());
  }

  private sparse(s: SparseTensorProto | undefined): void {
    // Only the values carry the element type; the indices are int64.
    this.tensor(s?.values);
  }

  private tensor(t: TensorProto | undefined): void {
    if (!t || !HALF_TYPES.has(t.dataType)) return;
    this.found(t.dataType);
    this.tensors++;
    if (!this.apply) return;
    const what = `${DT[t.dataType]} tensor '${t.name}'`;
    if (t.dataLocation === TensorProto_DataLocation.EXTERNAL)
      fail(
        `${what} keeps its data outside the model, where segcause cannot widen it to float32`,
        "save the model with its weights inside the .onnx file",
      );
    if (t.segment)
      fail(
        `${what} is stored in segments, which segcause cannot widen to float32`,
        "export the model in float32 (model.float() before torch.onnx.export)",
      );
    if (t.rawData.length % 2 !== 0)
      fail(`${what} has ${t.rawData.length} bytes of data, not a whole number of 16-bit values`, "the model file is damaged: export it again");
    // The 16-bit patterns: little-endian in raw_data, or one per int32_data entry.
    const raw = t.rawData;
    const n = raw.length > 0 ? raw.length / 2 : t.int32Data.length;
    const pattern = raw.length > 0 ? (i: number) => raw[2 * i] | (raw[2 * i + 1] << 8) : (i: number) => t.int32Data[i] & 0xffff;
    const out = new Float32Array(n);
    const bits = new Uint32Array(out.buffer);
    if (t.dataType === DT.BFLOAT16) for (let i = 0; i < n; i++) bits[i] = pattern(i) << 16;
    else {
      for (let i = 0; i < n; i++) {
        const h = pattern(i);
        // inf and NaN bit by bit, so a NaN keeps its sign and payload
        if ((h & 0x7c00) === 0x7c00) bits[i] = ((h & 0x8000) << 16) | 0x7f800000 | ((h & 0x3ff) << 13);
        else out[i] = halfToFloat(h);
      }
    }
    t.dataType = DT.FLOAT;
    t.rawData = new Uint8Array(out.buffer);
    t.int32Data = [];
  }

  type(tp: TypeProto | undefined): void {
    const v = tp?.value;
    if (!v?.case) return;
    if (v.case === "tensorType" || v.case === "sparseTensorType") {
      if (!HALF_TYPES.has(v.value.elemType)) return;
      this.found(v.value.elemType);
      this.types++;
      if (this.apply) v.value.elemType = DT.FLOAT;
    } else if (v.case === "mapType") this.type(v.value.valueType);
    else this.type(v.value.elemType);
  }
}

function walk(model: ModelProto, w: Widener): void {
  w.graph(model.graph!);
  // Local functions are expanded into the graph by ONNX Runtime: their bodies run too.
  for (const f of model.functions) {
    f.node.forEach((n) => w.node(n));
    f.attributeProto.forEach((a) => w.attribute(a));
    f.valueInfo.forEach((v) => w.type(v.type));
  }
}

/**
 * A float32 copy of a model with float16 or bfloat16 tensors, types or type attributes anywhere (the
 * graph, its subgraphs, its local functions), and what was changed in words; undefined when the model
 * has none. The model given is not changed.
 */
export function widenFloat16(model: ModelProto): { proto: ModelProto; notes: string[] } | undefined {
  const count = new Widener(false);
  walk(model, count);
  if (count.tensors + count.attributes + count.types === 0) return undefined;
  const proto = clone(ModelProtoSchema, model);
  const w = new Widener(true);
  walk(proto, w);
  const kinds = [...w.kinds].sort().join("/");
  const what = [`${w.tensors} tensor(s)`, `${w.attributes} Cast/dtype attribute(s)`, `${w.types} declared type(s)`].join(", ");
  return {
    proto,
    notes: [
      `${kinds} model widened to float32 at load (${what}): ONNX Runtime's CPU provider lacks most ${kinds} kernels; outputs may differ from a ${kinds} run in the last bits`,
    ],
  };
}
