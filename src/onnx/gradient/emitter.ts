/** Emitting backward nodes and their constants into a gradient graph. */
import { create } from "@bufbuild/protobuf";
import { TensorProto_DataType as DT, type NodeProto, NodeProtoSchema, type TensorProto } from "onnx-buf";
import { getOrInsert } from "../../util/maps.js";
import { type AttrValue, attribute, floatTensor, int64Tensor } from "../builder.js";

/** Appends backward nodes and their constants, with fresh names that cannot clash with the model's. */
export class Emitter {
  readonly nodes: NodeProto[] = [];
  readonly inits: TensorProto[] = [];
  private n = 0;
  private readonly shapes = new Map<string, string>();
  private readonly scalars = new Map<number, string>();

  fresh(hint: string): string {
    return `segcause/${hint}_${this.n++}`;
  }

  op(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, nOut = 1): string[] {
    const outs = Array.from({ length: nOut }, () => this.fresh(opType));
    this.nodes.push(
      create(NodeProtoSchema, {
        name: `/segcause/backward/${opType}_${this.n}`,
        opType,
        input: inputs,
        output: outs,
        attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
      }),
    );
    return outs;
  }

  op1(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}): string {
    return this.op(opType, inputs, attrs)[0];
  }

  floats(dims: number[], values: ArrayLike<number>): string {
    const name = this.fresh("const");
    this.inits.push(floatTensor(name, dims, values));
    return name;
  }

  ints(values: number[]): string {
    const name = this.fresh("ints");
    this.inits.push(int64Tensor(name, [values.length], values));
    return name;
  }

  /** A float32 scalar constant (shared between uses). */
  scalar(v: number): string {
    return getOrInsert(this.scalars, v, () => this.floats([], [v]));
  }

  /** The run-time shape of a tensor, so the backward pass keeps a dynamic batch dimension. */
  shape(t: string): string {
    return getOrInsert(this.shapes, t, () => this.op1("Shape", [t]));
  }

  zerosLike(t: string): string {
    return this.op1("ConstantOfShape", [this.shape(t)]);
  }

  reshapeLike(g: string, t: string): string {
    return this.op1("Reshape", [g, this.shape(t)]);
  }

  mul(a: string, b: string): string {
    return this.op1("Mul", [a, b]);
  }

  /** ReduceSum over `axes`; no axes is the identity (ONNX's default would reduce every axis). */
  reduceSum(x: string, axes: number[], keep = true): string {
    return this.op1("ReduceSum", [x, this.ints(axes)], { keepdims: keep ? 1 : 0, noop_with_empty_axes: 1 });
  }

  sum(xs: string[]): string {
    return xs.length === 1 ? xs[0] : this.op1("Sum", xs);
  }

  /** Cast of a boolean condition to float32 (0/1). */
  mask(cond: string): string {
    return this.op1("Cast", [cond], { to: DT.FLOAT });
  }
}
