/** What a backward rule sees of its node (the rule context), and the helpers every family of rules shares. */
import type { NodeProto, TensorProto } from "onnx-buf";
import { fail } from "../../errors.js";
import { describeNode } from "../attributes.js";
import type { StaticInfo } from "../shapes.js";
import type { Emitter } from "./emitter.js";

export type BackwardRule = "gradient" | "guided" | "deeplift";

/** The rule context: the node whose backward pass is emitted, and what its rule may ask about tensors. */
export interface Ctx {
  node: NodeProto;
  e: Emitter;
  /** gradient arriving at each output (undefined: none reaches it) */
  gy: (string | undefined)[];
  /** whether each input needs a gradient */
  need: boolean[];
  rule: BackwardRule;
  info(t: string): StaticInfo;
  /** true where dimension `axis` of tensor t follows the batch size */
  dynamic(t: string, axis: number): boolean;
  /** the tensor's value on the reference input (deeplift), or the tensor itself */
  ref(t: string): string;
  /** the float32 initializer named t, if it is one */
  initializer(t: string): TensorProto | undefined;
}

/** Returns the gradient contribution for each input (undefined where none is needed). */
export type Rule = (c: Ctx) => (string | undefined)[];

/** Refuses a gradient through any input other than `inputs` (weights and similar operands must be constants). */
export function only(c: Ctx, ...inputs: number[]): void {
  c.need.forEach((n, i) => {
    if (n && !inputs.includes(i)) {
      fail(
        `${describeNode(c.node)}: gradients through its input ${i} ('${c.node.input[i]}') are not supported`,
        "weights, scales and similar operands must be constants (initializers)",
      );
    }
  });
}

/** The gradient arriving at the node's first output. */
export function g0(c: Ctx): string {
  return c.gy[0]!;
}

/** Sums a gradient over the axes along which `target` was broadcast to the shape `gDims`. */
export function unbroadcast(c: Ctx, g: string, gDims: number[], target: string): string {
  const t = c.info(target).dims;
  const k = gDims.length - t.length;
  const axes: number[] = [];
  for (let i = 0; i < gDims.length; i++) if (i < k || (t[i - k] === 1 && gDims[i] !== 1)) axes.push(i);
  if (axes.length === 0) return g;
  return c.e.reshapeLike(c.e.reduceSum(g, axes), target);
}

/** Refuses an op whose gradient would have to split or pad along the (dynamic) batch axis. */
export function requireStaticAxis(c: Ctx, t: string, axis: number, what: string): void {
  if (c.dynamic(t, axis)) fail(`${describeNode(c.node)}: gradients of a ${what} along the batch axis are not supported`);
}
