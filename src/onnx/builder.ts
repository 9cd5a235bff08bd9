/**
 * Writing small ONNX graphs from TypeScript. The tests use it to build models whose causal
 * structure is known; graph surgery (cutting, exposing tensors) builds on the same protobufs.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import {
  type AttributeProto,
  AttributeProto_AttributeType,
  AttributeProtoSchema,
  GraphProtoSchema,
  ModelProtoSchema,
  type NodeProto,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  type TensorProto,
  TensorProto_DataType,
  TensorProtoSchema,
  TensorShapeProto_DimensionSchema,
  TensorShapeProtoSchema,
  TypeProto_TensorSchema,
  TypeProtoSchema,
  type ValueInfoProto,
  ValueInfoProtoSchema,
} from "onnx-buf";

export type AttrValue = number | number[] | string | { ints: number[] } | { floats: number[] } | TensorProto;

export function attribute(name: string, v: AttrValue): AttributeProto {
  const T = AttributeProto_AttributeType;
  if (typeof v === "string") return create(AttributeProtoSchema, { name, type: T.STRING, s: new TextEncoder().encode(v) });
  if (typeof v === "number") {
    return Number.isInteger(v) && !Object.is(v, -0)
      ? create(AttributeProtoSchema, { name, type: T.INT, i: BigInt(v) })
      : create(AttributeProtoSchema, { name, type: T.FLOAT, f: v });
  }
  if (Array.isArray(v)) return create(AttributeProtoSchema, { name, type: T.INTS, ints: v.map((x) => BigInt(x)) });
  if ("ints" in v) return create(AttributeProtoSchema, { name, type: T.INTS, ints: v.ints.map((x) => BigInt(x)) });
  if ("floats" in v) return create(AttributeProtoSchema, { name, type: T.FLOATS, floats: v.floats });
  return create(AttributeProtoSchema, { name, type: T.TENSOR, t: v });
}

export function floatTensor(name: string, dims: number[], values: ArrayLike<number>): TensorProto {
  const data = Float32Array.from(values);
  return create(TensorProtoSchema, {
    name,
    dims: dims.map((d) => BigInt(d)),
    dataType: TensorProto_DataType.FLOAT,
    rawData: new Uint8Array(data.buffer),
  });
}

export function int64Tensor(name: string, dims: number[], values: number[]): TensorProto {
  return create(TensorProtoSchema, {
    name,
    dims: dims.map((d) => BigInt(d)),
    dataType: TensorProto_DataType.INT64,
    int64Data: values.map((v) => BigInt(v)),
  });
}

export function valueInfo(name: string, dims: (number | string)[], elemType = TensorProto_DataType.FLOAT): ValueInfoProto {
  return create(ValueInfoProtoSchema, {
    name,
    type: create(TypeProtoSchema, {
      value: {
        case: "tensorType",
        value: create(TypeProto_TensorSchema, {
          elemType,
          shape: create(TensorShapeProtoSchema, {
            dim: dims.map((d) =>
              create(TensorShapeProto_DimensionSchema, {
                value: typeof d === "number" ? { case: "dimValue", value: BigInt(d) } : { case: "dimParam", value: d },
              }),
            ),
          }),
        }),
      },
    }),
  });
}

export class GraphBuilder {
  private readonly nodes: NodeProto[] = [];
  private readonly initializers: TensorProto[] = [];
  private readonly inputs: ValueInfoProto[] = [];
  private readonly outputs: ValueInfoProto[] = [];
  private counter = 0;

  constructor(readonly name = "graph") {}

  input(name: string, dims: (number | string)[], elemType = TensorProto_DataType.FLOAT): string {
    this.inputs.push(valueInfo(name, dims, elemType));
    return name;
  }

  output(tensor: string, dims: (number | string)[]): void {
    this.outputs.push(valueInfo(tensor, dims));
  }

  constant(dims: number[], values: ArrayLike<number>, name = this.fresh("const")): string {
    this.initializers.push(floatTensor(name, dims, values));
    return name;
  }

  constantInt64(values: number[], name = this.fresh("const")): string {
    this.initializers.push(int64Tensor(name, [values.length], values));
    return name;
  }

  /**
   * Adds a node; returns its (first) output name. `outputs` may name them explicitly; `name` is
   * the node name (PyTorch style module paths such as "/encoder/conv/Conv" group components).
   */
  node(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, outputs?: string[], name?: string): string {
    const outs = outputs ?? [this.fresh(opType.toLowerCase())];
    this.nodes.push(
      create(NodeProtoSchema, {
        name: name ?? `/${opType}_${this.counter}`,
        opType,
        input: inputs,
        output: outs,
        attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
      }),
    );
    return outs[0];
  }

  private fresh(prefix: string): string {
    return `${prefix}_${this.counter++}`;
  }

  toBytes(opset = 17): Uint8Array {
    const model = create(ModelProtoSchema, {
      irVersion: 8n,
      producerName: "segcause-test-builder",
      opsetImport: [create(OperatorSetIdProtoSchema, { domain: "", version: BigInt(opset) })],
      graph: create(GraphProtoSchema, {
        name: this.name,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
      }),
    });
    return toBinary(ModelProtoSchema, model);
  }
}
