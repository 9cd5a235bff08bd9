/**
 * Gradient graphs of ONNX models in standard ONNX ops. `buildGradientModel` appends to a forward
 * model the backward pass of one output (a vector-Jacobian product with a seed the caller feeds), so
 * gradient attributions run in ONNX Runtime like any other model: no autodiff engine, no Python.
 *
 * Three backward rules share the machinery: the true gradient, guided backpropagation, and the
 * DeepLIFT rescale rule (which also runs the forward pass on a reference input inside the same graph).
 * An op on the path from a differentiated tensor to the output without a rule is refused by name.
 */
import { clone, create, toBinary } from "@bufbuild/protobuf";
import {
  AttributeProtoSchema,
  AttributeProto_AttributeType as AT,
  ModelProtoSchema,
  NodeProtoSchema,
  TensorProto_DataType as DT,
  ValueInfoProtoSchema,
  type AttributeProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from "onnx-buf";
import { fail } from "../errors.js";
import { floatTensor, int64Tensor, valueInfo } from "./builder.js";
import { opsetOf, upgradeOpset } from "./opset.js";
import { attrFloat, attrInt, attrInts, attrString, describeNode, tensorValues } from "./attributes.js";
import { einsumSizes, einsumSubscripts } from "./einsum.js";
import { normAxis, padAmounts, reduceAxes, resizeGeometry, sliceParams, windowParams, type WindowParams } from "./op-params.js";
import { inferStatic, type StaticInfo } from "./shapes.js";
import { numel } from "./values.js";

export type BackwardRule = "gradient" | "guided" | "deeplift";

export interface GradientGraphOptions {
  /** model output to differentiate (default: the first graph output) */
  output?: string;
  /** tensors to return gradients for: the graph input (default) and/or intermediate tensor names */
  wrt?: string[];
  /**
   * "gradient" = true gradient. "guided" = guided backprop: Relu passes only positive gradient where
   * its input was positive; LeakyRelu, PRelu and ThresholdedRelu pass max(g, 0)·f'(x); every other op
   * (max ops included) uses its gradient. "deeplift" = DeepLIFT rescale rule: every elementwise
   * nonlinearity (Relu, LeakyRelu, PRelu, ThresholdedRelu, Elu, Selu, Celu, Sigmoid, Tanh, Gelu, Mish,
   * Erf, Exp, Log, Sqrt, Pow with a constant exponent, Abs, Clip, Softplus, Softsign, HardSigmoid,
   * HardSwish, Reciprocal, Sin, Cos, and the steps Floor, Ceil, Round, Sign) uses the multiplier
   * (f(x)-f(x_ref))/(x-x_ref), falling back to f'(x) where |x-x_ref| <= 1e-5; products of two
   * input-dependent tensors (Mul, MatMul, Gemm, Div, Einsum) use the exact product rule with the mean of
   * the actual and reference factors (an Einsum of three or more input-dependent operands takes the same
   * means, which is no longer exact); max ops (MaxPool, GlobalMaxPool, ReduceMax/Min, Max/Min) use the
   * DeepLIFT/Captum max rule; ReduceSumSquare, ReduceL2 and ReduceLogSumExp chain the secants of their
   * elementwise parts, so they are exact too; linear ops use their gradient. Softmax, LogSoftmax,
   * LayerNormalization, InstanceNormalization and GroupNormalization are not elementwise and use their gradient at x, and
   * switches (comparisons, e.g. SegNet's Equal masks, and MaxUnpool, which scatters by the actual
   * input's indices) carry no multiplier, so summation-to-delta holds exactly only for networks
   * without them.
   */
  rule?: BackwardRule;
}

export interface GradientModel {
  /** the ONNX model to load in onnxruntime-node */
  bytes: Uint8Array;
  /** name of the image input (same as the forward model) */
  input: string;
  /** deeplift only: the baseline image input, same shape as input */
  referenceInput?: string;
  /** dL/d(output): same shape as the chosen output */
  seedInput: string;
  /** forward output, still returned */
  output: string;
  /** wrt tensor name -> graph output name of its gradient (DeepLIFT: its multiplier) */
  gradients: Record<string, string>;
  /** intermediate wrt tensor name -> graph output holding its forward value */
  activations: Record<string, string>;
  /** deeplift only: intermediate wrt tensor name -> graph output holding its value on the reference */
  referenceActivations?: Record<string, string>;
}

/** Where |x - x_ref| is at most this, DeepLIFT's secant falls back to the derivative. */
export const DEEPLIFT_EPS = 1e-5;
/** Types a gradient flows along. Models reach here as float32 (Model.load widens (b)float16, src/onnx/widen.ts); others are refused by checkSupported. */
const FLOAT_TYPES = new Set<number>([DT.FLOAT, DT.DOUBLE, DT.FLOAT16, DT.BFLOAT16]);
const SEED = "segcause_seed";
const REFERENCE = "segcause_reference";
/** Batch sizes of the two static inferences: a dimension that differs between them follows the batch. */
const BATCH_A = 7;
const BATCH_B = 11;
/** Models older than this are converted to it first (see opset.ts). */
export const GRADIENT_OPSET = 16;

// ---------------------------------------------------------------------------------------------
// Emitting nodes

type Attr = { i: number } | { f: number } | { ints: number[] } | { s: string } | { t: TensorProto };

function makeAttr(name: string, v: Attr): AttributeProto {
  if ("i" in v) return create(AttributeProtoSchema, { name, type: AT.INT, i: BigInt(v.i) });
  if ("f" in v) return create(AttributeProtoSchema, { name, type: AT.FLOAT, f: v.f });
  if ("ints" in v) return create(AttributeProtoSchema, { name, type: AT.INTS, ints: v.ints.map((x) => BigInt(x)) });
  if ("s" in v) return create(AttributeProtoSchema, { name, type: AT.STRING, s: new TextEncoder().encode(v.s) });
  return create(AttributeProtoSchema, { name, type: AT.TENSOR, t: v.t });
}

/** Appends backward nodes and their constants, with fresh names that cannot clash with the model's. */
class Emitter {
  readonly nodes: NodeProto[] = [];
  readonly inits: TensorProto[] = [];
  private n = 0;
  private readonly shapes = new Map<string, string>();
  private readonly scalars = new Map<number, string>();

  constructor(readonly opset: number) {}

  fresh(hint: string): string {
    return `segcause/${hint}_${this.n++}`;
  }

  op(opType: string, inputs: string[], attrs: Record<string, Attr> = {}, nOut = 1): string[] {
    const outs = Array.from({ length: nOut }, () => this.fresh(opType));
    this.nodes.push(
      create(NodeProtoSchema, {
        name: `/segcause/backward/${opType}_${this.n}`,
        opType,
        input: inputs,
        output: outs,
        attribute: Object.entries(attrs).map(([k, v]) => makeAttr(k, v)),
      }),
    );
    return outs;
  }

  op1(opType: string, inputs: string[], attrs: Record<string, Attr> = {}): string {
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
    let name = this.scalars.get(v);
    if (!name) this.scalars.set(v, (name = this.floats([], [v])));
    return name;
  }

  /** The run-time shape of a tensor, so the backward pass keeps a dynamic batch dimension. */
  shape(t: string): string {
    let s = this.shapes.get(t);
    if (!s) this.shapes.set(t, (s = this.op1("Shape", [t])));
    return s;
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
    return this.op1("ReduceSum", [x, this.ints(axes)], { keepdims: { i: keep ? 1 : 0 }, noop_with_empty_axes: { i: 1 } });
  }

  sum(xs: string[]): string {
    return xs.length === 1 ? xs[0] : this.op1("Sum", xs);
  }

  /** Cast of a boolean condition to float32 (0/1). */
  mask(cond: string): string {
    return this.op1("Cast", [cond], { to: { i: DT.FLOAT } });
  }
}

// ---------------------------------------------------------------------------------------------
// Rules

interface Ctx {
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
type Rule = (c: Ctx) => (string | undefined)[];

function only(c: Ctx, ...inputs: number[]): void {
  c.need.forEach((n, i) => {
    if (n && !inputs.includes(i)) {
      fail(`${describeNode(c.node)}: gradients through its input ${i} ('${c.node.input[i]}') are not supported`, "weights, scales and similar operands must be constants (initializers)");
    }
  });
}

function g0(c: Ctx): string {
  return c.gy[0]!;
}

/** Sums a gradient over the axes along which `target` was broadcast to the shape `gDims`. */
function unbroadcast(c: Ctx, g: string, gDims: number[], target: string): string {
  const t = c.info(target).dims;
  const k = gDims.length - t.length;
  const axes: number[] = [];
  for (let i = 0; i < gDims.length; i++) if (i < k || (t[i - k] === 1 && gDims[i] !== 1)) axes.push(i);
  if (axes.length === 0) return g;
  return c.e.reshapeLike(c.e.reduceSum(g, axes), target);
}

/** For products in DeepLIFT: the mean of a factor's actual and reference values (exact product rule). */
function factor(c: Ctx, t: string): string {
  const r = c.ref(t);
  if (c.rule !== "deeplift" || r === t) return t;
  return c.e.mul(c.e.op1("Add", [t, r]), c.e.scalar(0.5));
}

/** DeepLIFT: `num` / (x - x_ref) where x moved, `fallback` (the derivative's term) elsewhere. */
function perDelta(c: Ctx, x: string, num: string, fallback: string): string {
  const e = c.e;
  const dx = e.op1("Sub", [x, c.ref(x)]);
  const moved = e.op1("Greater", [e.op1("Abs", [dx]), e.scalar(DEEPLIFT_EPS)]);
  const safe = e.op1("Where", [moved, dx, e.scalar(1)]);
  return e.op1("Where", [moved, e.op1("Div", [num, safe]), fallback]);
}

/** DeepLIFT multiplier of y = f(x): secant where x moved, derivative `d` elsewhere. */
function rescale(c: Ctx, x: string, y: string, d: string): string {
  return perDelta(c, x, c.e.op1("Sub", [y, c.ref(y)]), d);
}

/** The rectifiers guided backprop gates (Springenberg et al. define it at ReLUs). */
const GUIDED = new Set(["Relu", "LeakyRelu", "PRelu", "ThresholdedRelu"]);

/** y = f(x) elementwise (other inputs constant); `deriv` emits f'(x) from x and y. */
function unary(deriv: (c: Ctx, x: string, y: string) => string): Rule {
  return (c) => {
    only(c, 0);
    const x = c.node.input[0];
    const y = c.node.output[0];
    const d = deriv(c, x, y);
    if (c.rule === "guided" && GUIDED.has(c.node.opType)) return [c.e.mul(c.e.op1("Relu", [g0(c)]), d)];
    if (c.rule === "deeplift") return [c.e.mul(g0(c), rescale(c, x, y, d))];
    return [c.e.mul(g0(c), d)];
  };
}

/**
 * Piecewise-constant ops (Floor, Ceil, Round, Sign): zero gradient, so no contribution at all (a tensor
 * no gradient reaches gets zeros). DeepLIFT's secant still carries the jump between x_ref and x.
 */
const stepRule: Rule = (c) => {
  only(c, 0);
  if (c.rule !== "deeplift") return [undefined];
  return [c.e.mul(g0(c), rescale(c, c.node.input[0], c.node.output[0], c.e.scalar(0)))];
};

/** f'(x) of a function defined piecewise at 0: `pos` where x > 0, `neg` elsewhere. */
function bySign(c: Ctx, x: string, pos: string, neg: string): string {
  return c.e.op1("Where", [c.e.op1("Greater", [x, c.e.scalar(0)]), pos, neg]);
}

const passThrough: Rule = (c) => {
  only(c, 0);
  return [g0(c)];
};

const reshapeBack: Rule = (c) => {
  only(c, 0);
  return [c.e.reshapeLike(g0(c), c.node.input[0])];
};

function gelu(c: Ctx, x: string): string {
  const e = c.e;
  if (attrString(c.node, "approximate", "none") === "tanh") {
    // f = 0.5x(1+tanh u), u = k(x + 0.044715x^3): f' = 0.5(1+tanh u) + 0.5x(1-tanh^2 u)·k(1 + 3·0.044715x^2)
    const k = Math.sqrt(2 / Math.PI);
    const x2 = e.mul(x, x);
    const u = e.mul(e.op1("Add", [x, e.mul(e.mul(x2, x), e.scalar(0.044715))]), e.scalar(k));
    const t = e.op1("Tanh", [u]);
    const du = e.mul(e.op1("Add", [e.scalar(1), e.mul(x2, e.scalar(3 * 0.044715))]), e.scalar(k));
    const sech2 = e.op1("Sub", [e.scalar(1), e.mul(t, t)]);
    const left = e.mul(e.op1("Add", [e.scalar(1), t]), e.scalar(0.5));
    return e.op1("Add", [left, e.mul(e.mul(e.mul(x, e.scalar(0.5)), sech2), du)]);
  }
  // f = x·Φ(x): f' = Φ(x) + x·φ(x)
  const cdf = e.mul(e.op1("Add", [e.scalar(1), e.op1("Erf", [e.mul(x, e.scalar(Math.SQRT1_2))])]), e.scalar(0.5));
  const pdf = e.mul(e.op1("Exp", [e.mul(e.mul(x, x), e.scalar(-0.5))]), e.scalar(1 / Math.sqrt(2 * Math.PI)));
  return e.op1("Add", [cdf, e.mul(x, pdf)]);
}

function clipDeriv(c: Ctx, x: string): string {
  const e = c.e;
  let d = e.mask(e.op1("Equal", [x, x])); // ones (NaN aside)
  const lo = c.node.input[1] || undefined;
  const hi = c.node.input[2] || undefined;
  const loA = c.node.attribute.find((a) => a.name === "min");
  const hiA = c.node.attribute.find((a) => a.name === "max");
  const loT = lo ?? (loA ? e.scalar(loA.f) : undefined);
  const hiT = hi ?? (hiA ? e.scalar(hiA.f) : undefined);
  if (loT) d = e.mul(d, e.mask(e.op1("Greater", [x, loT])));
  if (hiT) d = e.mul(d, e.mask(e.op1("Less", [x, hiT])));
  return d;
}

const UNARY: Record<string, Rule> = {
  Relu: unary((c, x) => c.e.mask(c.e.op1("Greater", [x, c.e.scalar(0)]))),
  LeakyRelu: unary((c, x) => bySign(c, x, c.e.scalar(1), c.e.scalar(attrFloat(c.node, "alpha", 0.01)))),
  ThresholdedRelu: unary((c, x) => c.e.mask(c.e.op1("Greater", [x, c.e.scalar(attrFloat(c.node, "alpha", 1))]))),
  Sigmoid: unary((c, _x, y) => c.e.mul(y, c.e.op1("Sub", [c.e.scalar(1), y]))),
  Tanh: unary((c, _x, y) => c.e.op1("Sub", [c.e.scalar(1), c.e.mul(y, y)])),
  Gelu: unary((c, x) => gelu(c, x)),
  Erf: unary((c, x) => c.e.mul(c.e.op1("Exp", [c.e.op1("Neg", [c.e.mul(x, x)])]), c.e.scalar(2 / Math.sqrt(Math.PI)))),
  Sqrt: unary((c, _x, y) => c.e.op1("Div", [c.e.scalar(0.5), y])),
  Exp: unary((_c, _x, y) => y),
  Log: unary((c, x) => c.e.op1("Reciprocal", [x])),
  Reciprocal: unary((c, _x, y) => c.e.op1("Neg", [c.e.mul(y, y)])),
  Abs: unary((c, x) => c.e.op1("Sign", [x])),
  Softplus: unary((c, x) => c.e.op1("Sigmoid", [x])),
  Clip: unary(clipDeriv),
  // Below 0, Elu = a·(exp(x) - 1), Selu = g·a·(exp(x) - 1), Celu = a·(exp(x/a) - 1): f' = y + a, y + g·a, y/a + 1.
  Elu: unary((c, x, y) => bySign(c, x, c.e.scalar(1), c.e.op1("Add", [y, c.e.scalar(attrFloat(c.node, "alpha", 1))]))),
  Selu: unary((c, x, y) => {
    const gamma = attrFloat(c.node, "gamma", 1.05070102214813232421875);
    return bySign(c, x, c.e.scalar(gamma), c.e.op1("Add", [y, c.e.scalar(attrFloat(c.node, "alpha", 1.67326319217681884765625) * gamma)]));
  }),
  Celu: unary((c, x, y) => bySign(c, x, c.e.scalar(1), c.e.op1("Add", [c.e.mul(y, c.e.scalar(1 / attrFloat(c.node, "alpha", 1))), c.e.scalar(1)]))),
  // f = x·tanh(softplus(x)): f' = t + x·(1 - t^2)·sigmoid(x), t = tanh(softplus(x))
  Mish: unary((c, x) => {
    const e = c.e;
    const t = e.op1("Tanh", [e.op1("Softplus", [x])]);
    return e.op1("Add", [t, e.mul(e.mul(x, e.op1("Sub", [e.scalar(1), e.mul(t, t)])), e.op1("Sigmoid", [x]))]);
  }),
  // f = x/(1 + |x|): f' = 1/(1 + |x|)^2
  Softsign: unary((c, x) => {
    const d = c.e.op1("Add", [c.e.scalar(1), c.e.op1("Abs", [x])]);
    return c.e.op1("Reciprocal", [c.e.mul(d, d)]);
  }),
  Sin: unary((c, x) => c.e.op1("Cos", [x])),
  Cos: unary((c, x) => c.e.op1("Neg", [c.e.op1("Sin", [x])])),
  HardSigmoid: unary((c, x) => {
    // f = clip(alpha·x + beta, 0, 1): f' = alpha inside (0, 1), 0 outside
    const alpha = attrFloat(c.node, "alpha", 0.2);
    const z = c.e.op1("Add", [c.e.mul(x, c.e.scalar(alpha)), c.e.scalar(attrFloat(c.node, "beta", 0.5))]);
    const inside = c.e.op1("And", [c.e.op1("Greater", [z, c.e.scalar(0)]), c.e.op1("Less", [z, c.e.scalar(1)])]);
    return c.e.op1("Where", [inside, c.e.scalar(alpha), c.e.scalar(0)]);
  }),
  HardSwish: unary((c, x) => {
    // f = x·clip(x/6 + 1/2, 0, 1): f' = 0 below -3, 1 above 3, x/3 + 1/2 between
    const e = c.e;
    const mid = e.op1("Add", [e.mul(x, e.scalar(1 / 3)), e.scalar(0.5)]);
    return e.op1("Where", [e.op1("Less", [x, e.scalar(-3)]), e.scalar(0), e.op1("Where", [e.op1("Greater", [x, e.scalar(3)]), e.scalar(1), mid])]);
  }),
  PRelu: unary((c, x) => bySign(c, x, c.e.scalar(1), c.e.op1("Expand", [c.node.input[1], c.e.shape(x)]))),
  Pow: unary((c, x) => {
    const p0 = c.node.input[1];
    const p = c.info(p0).dtype === DT.FLOAT ? p0 : c.e.op1("Cast", [p0], { to: { i: DT.FLOAT } }); // Pow allows an integer exponent
    return c.e.mul(c.e.op1("Pow", [x, c.e.op1("Sub", [p, c.e.scalar(1)])]), p);
  }),
};

function addSub(sign: 1 | -1): Rule {
  return (c) => {
    const yDims = c.info(c.node.output[0]).dims;
    return c.node.input.map((t, i) => {
      if (!c.need[i]) return undefined;
      const g = unbroadcast(c, g0(c), yDims, t);
      return sign === -1 && i === 1 ? c.e.op1("Neg", [g]) : g;
    });
  };
}

const mulRule: Rule = (c) => {
  const [a, b] = c.node.input;
  const yDims = c.info(c.node.output[0]).dims;
  return [
    c.need[0] ? unbroadcast(c, c.e.mul(g0(c), factor(c, b)), yDims, a) : undefined,
    c.need[1] ? unbroadcast(c, c.e.mul(g0(c), factor(c, a)), yDims, b) : undefined,
  ];
};

const divRule: Rule = (c) => {
  const [a, b] = c.node.input;
  const e = c.e;
  const yDims = c.info(c.node.output[0]).dims;
  // DeepLIFT: a/b = a·(1/b); 1/b's secant is -1/(b·b_ref), then the product rule with mean factors.
  const moving = c.rule === "deeplift" && c.ref(b) !== b;
  const recip = (t: string): string => e.op1("Reciprocal", [t]);
  const invB = (): string => (moving ? e.mul(e.op1("Add", [recip(b), recip(c.ref(b))]), e.scalar(0.5)) : recip(b));
  const dInvB = (): string => e.op1("Neg", [recip(e.mul(b, moving ? c.ref(b) : b))]);
  return [
    c.need[0] ? unbroadcast(c, e.mul(g0(c), invB()), yDims, a) : undefined,
    c.need[1] ? unbroadcast(c, e.mul(e.mul(g0(c), factor(c, a)), dInvB()), yDims, b) : undefined,
  ];
};

const whereRule: Rule = (c) => {
  only(c, 1, 2);
  const [cond, a, b] = c.node.input;
  const yDims = c.info(c.node.output[0]).dims;
  const zero = c.e.scalar(0);
  return [
    undefined,
    c.need[1] ? unbroadcast(c, c.e.op1("Where", [cond, g0(c), zero]), yDims, a) : undefined,
    c.need[2] ? unbroadcast(c, c.e.op1("Where", [cond, zero, g0(c)]), yDims, b) : undefined,
  ];
};

const sumRule: Rule = (c) => {
  const yDims = c.info(c.node.output[0]).dims;
  return c.node.input.map((t, i) => (c.need[i] ? unbroadcast(c, g0(c), yDims, t) : undefined));
};

const expandRule: Rule = (c) => {
  only(c, 0);
  return [unbroadcast(c, g0(c), c.info(c.node.output[0]).dims, c.node.input[0])];
};

/** output_padding/pads that make a transposed window op produce exactly `inDims` (spatial). */
function transposedPads(p: WindowParams, inSpatial: number[], outSpatial: number[]): { pads: number[]; outputPadding: number[] } {
  const r = inSpatial.length;
  const pads = [...p.pads];
  const outputPadding = inSpatial.map((inSize, i) => {
    const produced = p.strides[i] * (outSpatial[i] - 1) + (p.kernel[i] - 1) * p.dilations[i] + 1 - p.pads[i] - p.pads[i + r];
    const extra = inSize - produced;
    // A last window that reaches past the input (ceil_mode) is cropped away by a larger end pad.
    if (extra < 0) pads[i + r] -= extra;
    return Math.max(extra, 0);
  });
  return { pads, outputPadding };
}

/**
 * For a stride-1 Conv with constant weights, the input gradient as a Conv (ONNX Runtime's Conv kernels
 * are several times faster than ConvTranspose): per group, weights transposed (in <-> out channels)
 * and flipped spatially, with pads (k_eff - 1 - pad). Undefined where that does not apply.
 */
function strideOneConvGradient(c: Ctx, p: WindowParams, w: TensorProto): string | undefined {
  const r = p.kernel.length;
  if (p.strides.some((s) => s !== 1) || w.dataType !== DT.FLOAT) return undefined;
  const effective = p.kernel.map((k, i) => (k - 1) * p.dilations[i] + 1);
  const pads = [...effective, ...effective].map((k, i) => k - 1 - p.pads[i]);
  if (pads.some((v) => v < 0)) return undefined;
  const [m, cg] = w.dims.map(Number);
  const group = attrInt(c.node, "group", 1);
  const mg = m / group;
  const area = numel(p.kernel);
  const src = tensorValues(w);
  const dst = new Float32Array(src.length);
  // W [M, C/G, k...] -> W' [C, M/G, k...]: W'[j*Cg + ci, mo] = flip(W[j*Mg + mo, ci]).
  for (let j = 0; j < group; j++) {
    for (let mo = 0; mo < mg; mo++) {
      for (let ci = 0; ci < cg; ci++) {
        const from = ((j * mg + mo) * cg + ci) * area;
        const to = ((j * cg + ci) * mg + mo) * area;
        for (let k = 0; k < area; k++) dst[to + k] = src[from + area - 1 - k];
      }
    }
  }
  const flipped = c.e.floats([group * cg, mg, ...p.kernel], dst);
  return c.e.op1("Conv", [g0(c), flipped], {
    kernel_shape: { ints: p.kernel },
    dilations: { ints: p.dilations },
    pads: { ints: pads.slice(0, 2 * r) },
    group: { i: group },
  });
}

const convRule: Rule = (c) => {
  only(c, 0);
  const [x, w] = c.node.input;
  const xd = c.info(x).dims;
  const p = windowParams(c.node, xd, c.info(w).dims);
  const init = c.initializer(w);
  const asConv = init ? strideOneConvGradient(c, p, init) : undefined;
  if (asConv) return [asConv];
  const { pads, outputPadding } = transposedPads(p, xd.slice(2), c.info(c.node.output[0]).dims.slice(2));
  return [
    c.e.op1("ConvTranspose", [g0(c), w], {
      kernel_shape: { ints: p.kernel },
      strides: { ints: p.strides },
      dilations: { ints: p.dilations },
      pads: { ints: pads },
      output_padding: { ints: outputPadding },
      group: { i: attrInt(c.node, "group", 1) },
    }),
  ];
};

const convTransposeRule: Rule = (c) => {
  only(c, 0);
  const [x, w] = c.node.input;
  if (attrString(c.node, "auto_pad", "NOTSET") !== "NOTSET" || attrInts(c.node, "output_shape")) {
    fail(`${describeNode(c.node)}: gradients of ConvTranspose with auto_pad or output_shape are not supported`, "export with explicit pads and output_padding");
  }
  const r = c.info(x).dims.length - 2;
  const wd = c.info(w).dims;
  return [
    c.e.op1("Conv", [g0(c), w], {
      kernel_shape: { ints: attrInts(c.node, "kernel_shape") ?? wd.slice(2) },
      strides: { ints: attrInts(c.node, "strides") ?? new Array(r).fill(1) },
      dilations: { ints: attrInts(c.node, "dilations") ?? new Array(r).fill(1) },
      pads: { ints: attrInts(c.node, "pads") ?? new Array(2 * r).fill(0) },
      group: { i: attrInt(c.node, "group", 1) },
    }),
  ];
};

/** Scatters values at MaxPool's flat indices into a zero tensor shaped like the pool's input. */
function unpool(c: Ctx, values: string, indices: string, x: string): string {
  const e = c.e;
  const flat = e.ints([-1]);
  const zeros = e.op1("Reshape", [e.zerosLike(x), flat]);
  const p = windowParams(c.node, c.info(x).dims);
  const overlap = p.kernel.some((k, i) => (k - 1) * p.dilations[i] + 1 > p.strides[i]);
  const scattered = e.op1("ScatterElements", [zeros, e.op1("Reshape", [indices, flat]), e.op1("Reshape", [values, flat])], {
    axis: { i: 0 },
    ...(overlap ? { reduction: { s: "add" } } : {}),
  });
  return e.reshapeLike(scattered, x);
}

/** Sends per-output values to the arg-max (arg-min) positions of the actual (ref = false) or reference pass. */
type Route = (values: string, ref: boolean) => string;

/**
 * The backward pass of a max-like op (MaxPool, GlobalMaxPool, ReduceMax/Min, Max/Min), for input x:
 * the gradient routes g to the actual argmax. DeepLIFT's max rule (as Captum's) splits
 * y - y_ref = (top - y_ref) + (y - top), top = max(y, y_ref) (min for Min ops): the first part goes to the
 * actual argmax, the second to the reference argmax, each divided by x - x_ref there. Either part is
 * nonzero only where its argmax moved, so the contributions sum to the output's delta exactly.
 */
function maxLike(c: Ctx, top: "Max" | "Min"): (x: string, route: Route) => string {
  const e = c.e;
  const g = g0(c);
  if (c.rule !== "deeplift") return (_x, route) => route(g, false);
  const y = c.node.output[0];
  const t = e.op1(top, [y, c.ref(y)]);
  const toActual = e.mul(g, e.op1("Sub", [t, c.ref(y)]));
  const toRef = e.mul(g, e.op1("Sub", [y, t]));
  return (x, route) => perDelta(c, x, e.op1("Add", [route(toActual, false), route(toRef, true)]), route(g, false));
}

/** Values for the actual (ref = false) and reference passes, each built on first use only. */
function perPass<T>(build: (ref: boolean) => T): (ref: boolean) => T {
  const memo = new Map<boolean, T>();
  return (ref) => (memo.has(ref) ? memo.get(ref)! : memo.set(ref, build(ref)).get(ref)!);
}

const maxPoolRule: Rule = (c) => {
  only(c, 0);
  if (attrInt(c.node, "storage_order", 0) !== 0) fail(`${describeNode(c.node)}: MaxPool with storage_order=1 is not supported in gradient graphs`);
  const x = c.node.input[0];
  // The pool's Indices output (its own, or the one buildGradientModel adds): one argmax per window.
  const idx = c.node.output[1];
  return [maxLike(c, "Max")(x, (v, ref) => unpool(c, v, ref ? c.ref(idx) : idx, x))];
};

/** MaxUnpool scatters X to flat indices over the whole output: each X element's gradient is gY there. */
const maxUnpoolRule: Rule = (c) => {
  only(c, 0);
  const [, indices] = c.node.input;
  return [c.e.op1("Gather", [c.e.op1("Reshape", [g0(c), c.e.ints([-1])]), indices], { axis: { i: 0 } })];
};

/** Number of input positions each output position of a pooling window averages (per axis). */
function windowCounts(inSize: number, outSize: number, k: number, s: number, d: number, pb: number, pe: number, includePad: boolean): number[] {
  const lo = includePad ? -pb : 0;
  const hi = includePad ? inSize + pe : inSize;
  return Array.from({ length: outSize }, (_, o) => {
    let n = 0;
    for (let j = 0; j < k; j++) {
      const pos = o * s - pb + j * d;
      if (pos >= lo && pos < hi) n++;
    }
    return n;
  });
}

const averagePoolRule: Rule = (c) => {
  only(c, 0);
  const x = c.node.input[0];
  const xd = c.info(x).dims;
  const yd = c.info(c.node.output[0]).dims;
  const p = windowParams(c.node, xd);
  const r = p.kernel.length;
  const includePad = attrInt(c.node, "count_include_pad", 0) === 1;
  const perAxis = p.kernel.map((k, i) => windowCounts(xd[i + 2], yd[i + 2], k, p.strides[i], p.dilations[i], p.pads[i], p.pads[i + r], includePad));
  // counts are separable: the divisor of an output position is the product over axes.
  let inv = [1];
  for (const counts of perAxis) inv = inv.flatMap((v) => counts.map((n) => v / n));
  const scaled = c.e.mul(g0(c), c.e.floats(yd.slice(2), inv));
  const channels = xd[1];
  const ones = c.e.floats([channels, 1, ...p.kernel], new Array(channels * numel(p.kernel)).fill(1));
  const { pads, outputPadding } = transposedPads(p, xd.slice(2), yd.slice(2));
  return [
    c.e.op1("ConvTranspose", [scaled, ones], {
      kernel_shape: { ints: p.kernel },
      strides: { ints: p.strides },
      dilations: { ints: p.dilations },
      pads: { ints: pads },
      output_padding: { ints: outputPadding },
      group: { i: channels },
    }),
  ];
};

const globalAveragePoolRule: Rule = (c) => {
  only(c, 0);
  const x = c.node.input[0];
  const area = numel(c.info(x).dims.slice(2));
  return [c.e.op1("Expand", [c.e.mul(g0(c), c.e.scalar(1 / area)), c.e.shape(x)])];
};

interface Reduction {
  x: string;
  /** reduced axes of x (none: noop_with_empty_axes, where y is f(x) elementwise) */
  axes: number[];
  /** a tensor shaped like y, with the reduced axes back as size 1 (so it broadcasts against x) */
  lift: (t: string) => string;
}

/** Axes of a reduce op (attribute before opset 18, input from it; GlobalMaxPool passes its own), keepdims. */
function reduction(c: Ctx, fixedAxes?: number[]): Reduction {
  const x = c.node.input[0];
  const axes = fixedAxes ?? reduceAxes(c.node, c.node.input.map((t) => (t ? c.info(t) : undefined)), c.info(x).dims.length);
  const dropped = attrInt(c.node, "keepdims", 1) === 0 && axes.length > 0;
  return { x, axes, lift: (t) => (dropped ? c.e.op1("Unsqueeze", [t, c.e.ints(axes)]) : t) };
}

/** A reduce op whose x-gradient `grad` emits from the reduction (for DeepLIFT: its multiplier). */
function reduceRule(grad: (c: Ctx, r: Reduction) => string, fixedAxes?: (c: Ctx) => number[]): Rule {
  return (c) => {
    only(c, 0);
    return [grad(c, reduction(c, fixedAxes?.(c)))];
  };
}

/** ReduceSum, ReduceMean: each output's gradient spreads back over the elements it reduced. */
function spread(scaled: boolean): Rule {
  return reduceRule((c, { x, axes, lift }) => {
    const g = lift(g0(c));
    const n = numel(axes.map((a) => c.info(x).dims[a]));
    return c.e.op1("Expand", [scaled ? c.e.mul(g, c.e.scalar(1 / n)) : g, c.e.shape(x)]);
  });
}

/**
 * ReduceMax/Min and GlobalMaxPool. Tied maxima split the gradient evenly (as torch.amax and torch.maximum
 * do): ONNX returns no index to pick one by, an even split is a true subgradient that keeps the total
 * passed back equal to g (routing all of g to every tie would multiply it by the tie count), and it keeps
 * DeepLIFT's max rule exact where the reference ties (a constant baseline makes whole feature maps
 * constant). MaxPool instead follows ONNX Runtime's one index per window, as torch's max_pool2d does.
 */
function extremum(top: "Max" | "Min", fixedAxes?: (c: Ctx) => number[]): Rule {
  return reduceRule((c, { x, axes, lift }) => {
    const e = c.e;
    const y = c.node.output[0];
    // 1/count at the elements attaining y, 0 elsewhere
    const weights = perPass((ref) => {
      const at = e.mask(e.op1("Equal", [ref ? c.ref(x) : x, lift(ref ? c.ref(y) : y)]));
      return e.op1("Div", [at, e.reduceSum(at, axes)]);
    });
    return maxLike(c, top)(x, (v, ref) => e.mul(weights(ref), lift(v)));
  }, fixedAxes);
}

/** Elementwise Max/Min of n broadcast inputs: each output's gradient goes to the inputs attaining it, ties split evenly. */
function elementwiseExtremum(top: "Max" | "Min"): Rule {
  return (c) => {
    const e = c.e;
    const y = c.node.output[0];
    const yDims = c.info(y).dims;
    const weights = perPass((ref) => {
      const at = c.node.input.map((t) => e.mask(e.op1("Equal", [ref ? c.ref(t) : t, ref ? c.ref(y) : y])));
      const inv = e.op1("Reciprocal", [e.sum(at)]);
      return at.map((m) => e.mul(m, inv));
    });
    const pass = maxLike(c, top);
    return c.node.input.map((t, k) => (c.need[k] ? unbroadcast(c, pass(t, (v, ref) => e.mul(v, weights(ref)[k])), yDims, t) : undefined));
  };
}

/**
 * ReduceSumSquare y = Σ x², ReduceL2 y = sqrt(Σ x²), ReduceLogSumExp y = log Σ exp(x). For DeepLIFT,
 * the secants of x² (x + x_ref), sqrt and log chain to exact multipliers.
 */
const reduceSumSquareRule = reduceRule((c, { x, lift }) => c.e.mul(lift(g0(c)), c.e.mul(factor(c, x), c.e.scalar(2))));

// dy/dx = x/y; DeepLIFT: (x + x_ref)/(y + y_ref), i.e. the same with mean factors. That denominator is 0
// only where every x (and x_ref) is 0: the floor keeps 0·(g/0) at 0 there (PyTorch's subgradient), not NaN.
const reduceL2Rule = reduceRule((c, { x, lift }) => {
  const y = factor(c, c.node.output[0]);
  return c.e.mul(lift(c.e.op1("Div", [g0(c), c.e.op1("Max", [y, c.e.scalar(1e-30)])])), factor(c, x));
});

// dy/dx = exp(x - y) (softmax). DeepLIFT: the exp secant at x over the exp secant at y (the log secant's
// inverse), both scaled by exp(-M), M = max(y, y_ref) >= every x, x_ref, so no exponential overflows.
const reduceLogSumExpRule = reduceRule((c, { x, lift }) => {
  const e = c.e;
  const y = c.node.output[0];
  if (c.rule !== "deeplift") return e.mul(lift(g0(c)), e.op1("Exp", [e.op1("Sub", [x, lift(y)])]));
  const expSecant = (t: string, m: string): string => {
    const scaled = (v: string): string => e.op1("Exp", [e.op1("Sub", [v, m])]);
    return perDelta(c, t, e.op1("Sub", [scaled(t), scaled(c.ref(t))]), scaled(t));
  };
  const m = e.op1("Max", [y, c.ref(y)]);
  return e.mul(lift(e.op1("Div", [g0(c), expSecant(y, m)])), expSecant(x, lift(m)));
});

const spatialAxes = (c: Ctx): number[] => [...Array(c.info(c.node.input[0]).dims.length).keys()].slice(2);

function inversePerm(perm: number[]): number[] {
  const inverse = new Array<number>(perm.length);
  perm.forEach((p, i) => (inverse[p] = i));
  return inverse;
}

/**
 * Gradient of a rearrangement y = Reshape(Transpose(Reshape(x, dims), perm)), the form the ONNX spec
 * defines DepthToSpace and SpaceToDepth in: the inverse rearrangement of g. dims[0] is the batch.
 */
function rearrangeBack(c: Ctx, dims: number[], perm: number[]): string {
  const e = c.e;
  const permuted = perm.map((p) => dims[p]);
  permuted[0] = 0; // Reshape's 0 keeps the (dynamic) batch
  const back = e.op1("Transpose", [e.op1("Reshape", [g0(c), e.ints(permuted)])], { perm: { ints: inversePerm(perm) } });
  return e.reshapeLike(back, c.node.input[0]);
}

const depthToSpaceRule: Rule = (c) => {
  only(c, 0);
  const [n, ch, h, w] = c.info(c.node.input[0]).dims;
  const b = attrInt(c.node, "blocksize", 1);
  const crd = attrString(c.node, "mode", "DCR") === "CRD";
  return [crd ? rearrangeBack(c, [n, ch / (b * b), b, b, h, w], [0, 1, 4, 2, 5, 3]) : rearrangeBack(c, [n, b, b, ch / (b * b), h, w], [0, 3, 4, 1, 5, 2])];
};

const spaceToDepthRule: Rule = (c) => {
  only(c, 0);
  const [n, ch, h, w] = c.info(c.node.input[0]).dims;
  const b = attrInt(c.node, "blocksize", 1);
  return [rearrangeBack(c, [n, ch, h / b, b, w / b, b], [0, 3, 5, 1, 2, 4])];
};

/** Tile: y holds r_i whole copies of x along axis i, so g viewed as [r_0, d_0, r_1, d_1, ...] sums over the r_i. */
const tileRule: Rule = (c) => {
  only(c, 0);
  const [x, repeats] = c.node.input;
  const reps = c.info(repeats).value ?? fail(`${describeNode(c.node)}: its repeats are not computable from static shapes`);
  const view: number[] = [];
  const copies: number[] = [];
  let batch = false;
  c.info(x).dims.forEach((d, i) => {
    if (reps[i] !== 1) {
      copies.push(view.length);
      view.push(reps[i]);
    }
    if (c.dynamic(x, i) && !batch) {
      batch = true;
      view.push(-1); // Reshape infers it: the batch's own size
    } else {
      requireStaticAxis(c, x, i, "Tile");
      view.push(d);
    }
  });
  if (copies.length === 0) return [g0(c)];
  return [c.e.reduceSum(c.e.op1("Reshape", [g0(c), c.e.ints(view)]), copies, false)];
};

const softmaxRule: Rule = (c) => {
  only(c, 0);
  const y = c.node.output[0];
  const rank = c.info(y).dims.length;
  const axis = normAxis(attrInt(c.node, "axis", -1), rank); // opset >= 13 (older models are upgraded)
  const e = c.e;
  const dot = e.reduceSum(e.mul(g0(c), y), [axis]);
  return [e.mul(y, e.op1("Sub", [g0(c), dot]))];
};

/** y = x − logsumexp(x) over the axis (log_softmax outputs): dx = g − exp(y)·Σ g. */
const logSoftmaxRule: Rule = (c) => {
  only(c, 0);
  const y = c.node.output[0];
  const axis = normAxis(attrInt(c.node, "axis", -1), c.info(y).dims.length); // opset >= 13 (older models are upgraded)
  const e = c.e;
  return [e.op1("Sub", [g0(c), e.mul(e.op1("Exp", [y]), e.reduceSum(g0(c), [axis]))])];
};

/**
 * Input gradient of a normalisation over `axes` followed by a per-element scale: recomputes
 * xhat = (x - mu)·r, r = 1/sqrt(var + eps), then dx = r·(gy - mean(gy) - xhat·mean(gy·xhat)), gy = g·scale.
 */
function normalizationGradient(c: Ctx, x: string, scale: string, axes: number[], g = g0(c), xd = c.info(x).dims): string {
  const e = c.e;
  const inv = e.scalar(1 / numel(axes.map((a) => xd[a])));
  const mean = (t: string): string => e.mul(e.reduceSum(t, axes), inv);
  const centred = e.op1("Sub", [x, mean(x)]);
  const variance = mean(e.mul(centred, centred));
  const rstd = e.op1("Reciprocal", [e.op1("Sqrt", [e.op1("Add", [variance, e.scalar(attrFloat(c.node, "epsilon", 1e-5))])])]);
  const xhat = e.mul(centred, rstd);
  const gy = e.mul(g, scale);
  const inner = e.op1("Sub", [e.op1("Sub", [gy, mean(gy)]), e.mul(xhat, mean(e.mul(gy, xhat)))]);
  return e.mul(rstd, inner);
}

const layerNormRule: Rule = (c) => {
  only(c, 0);
  const [x, scale] = c.node.input;
  const rank = c.info(x).dims.length;
  const axis = normAxis(attrInt(c.node, "axis", -1), rank);
  return [normalizationGradient(c, x, scale, [...Array(rank).keys()].filter((i) => i >= axis))];
};

/**
 * GroupNormalization (opset 18: scale per group; 21: per channel): x viewed as [N, G, C/G, rest],
 * normalised over the last two axes.
 */
const groupNormRule: Rule = (c) => {
  only(c, 0);
  const [x, scale] = c.node.input;
  const xd = c.info(x).dims;
  const groups = attrInt(c.node, "num_groups", 0);
  const C = xd[1];
  if (!(groups > 0 && C % groups === 0)) fail(`${describeNode(c.node)}: ${C} channels do not split into ${groups} groups`);
  const rest = numel(xd.slice(2));
  const view = [xd[0], groups, C / groups, rest];
  const e = c.e;
  const reshape = (t: string) => e.op1("Reshape", [t, e.ints([0, groups, C / groups, rest])]);
  const perChannel = c.info(scale).dims[0] === C;
  const s = e.op1("Reshape", [scale, e.ints(perChannel ? [groups, C / groups, 1] : [groups, 1, 1])]);
  return [e.reshapeLike(normalizationGradient(c, reshape(x), s, [2, 3], reshape(g0(c)), view), x)];
};

/** InstanceNormalization: per sample and channel over the spatial axes, scale per channel. */
const instanceNormRule: Rule = (c) => {
  only(c, 0);
  const [x, scale] = c.node.input;
  const xd = c.info(x).dims;
  const perChannel = c.e.op1("Reshape", [scale, c.e.ints([xd[1], ...new Array(xd.length - 2).fill(1)])]);
  return [normalizationGradient(c, x, perChannel, [...Array(xd.length).keys()].slice(2))];
};

const batchNormRule: Rule = (c) => {
  only(c, 0);
  if (attrInt(c.node, "training_mode", 0) === 1) fail(`${describeNode(c.node)}: BatchNormalization in training mode is not supported`, "export the model in eval mode");
  const [x, scale, , , variance] = c.node.input;
  const e = c.e;
  const xd = c.info(x).dims;
  const f = e.op1("Div", [scale, e.op1("Sqrt", [e.op1("Add", [variance, e.scalar(attrFloat(c.node, "epsilon", 1e-5))])])]);
  const perChannel = e.op1("Reshape", [f, e.ints([xd[1], ...new Array(xd.length - 2).fill(1)])]);
  return [e.mul(g0(c), perChannel)];
};

/** Transposes the last two axes of `t`, of rank `r`. */
function swapLast(c: Ctx, t: string, r: number): string {
  const perm = [...Array(r).keys()];
  [perm[r - 2], perm[r - 1]] = [perm[r - 1], perm[r - 2]];
  return c.e.op1("Transpose", [t], { perm: { ints: perm } });
}

const matMulRule: Rule = (c) => {
  const [a, b] = c.node.input;
  const e = c.e;
  const yDims = c.info(c.node.output[0]).dims;
  const withBatch = (last2: number[]): number[] => [...yDims.slice(0, -2), ...last2];
  const ad = c.info(a).dims;
  const bd = c.info(b).dims;
  return [
    c.need[0] ? unbroadcast(c, e.op1("MatMul", [g0(c), swapLast(c, factor(c, b), bd.length)]), withBatch(ad.slice(-2)), a) : undefined,
    c.need[1] ? unbroadcast(c, e.op1("MatMul", [swapLast(c, factor(c, a), ad.length), g0(c)]), withBatch(bd.slice(-2)), b) : undefined,
  ];
};

/**
 * Einsum: operand i's gradient is the Einsum of g (output subscripts) with the other operands onto i's
 * subscripts. A label summed within operand i alone is in none of those, so it comes back by Unsqueeze and
 * Expand (every element it summed had the same gradient); labels where operand i broadcast (size 1) sum
 * back. DeepLIFT: the other operands at their mean of actual and reference values (the product rule).
 */
const einsumRule: Rule = (c) => {
  const e = c.e;
  const ops = c.node.input;
  const { inputs, output } = einsumSubscripts(c.node, ops.map((t) => c.info(t).dims.length));
  const yDims = c.info(c.node.output[0]).dims;
  const means = new Map<number, string>();
  const mean = (j: number): string => means.get(j) ?? means.set(j, factor(c, ops[j])).get(j)!;
  return ops.map((x, i) => {
    if (!c.need[i]) return undefined;
    const own = [...inputs[i]];
    if (new Set(own).size !== own.length) {
      fail(`${describeNode(c.node)}: gradients of an Einsum with a label repeated within one operand (a diagonal, equation '${attrString(c.node, "equation", "")}') are not supported`);
    }
    const others = ops.flatMap((_, j) => (j === i ? [] : [j]));
    const terms = [output, ...others.map((j) => inputs[j])];
    const sizes = einsumSizes(c.node, terms, [yDims, ...others.map((j) => c.info(ops[j]).dims)]);
    const equation = `${terms.join(",")}->${own.filter((l) => sizes.has(l)).join("")}`;
    let g = e.op1("Einsum", [g0(c), ...others.map(mean)], { equation: { s: equation } });
    const alone = own.flatMap((l, a) => (sizes.has(l) ? [] : [a]));
    if (alone.length > 0) g = e.op1("Unsqueeze", [g, e.ints(alone)]);
    const xd = c.info(x).dims;
    const gDims = own.map((l) => sizes.get(l) ?? 1);
    if (gDims.some((d, a) => d < xd[a])) g = e.op1("Expand", [g, e.shape(x)]);
    return unbroadcast(c, g, gDims.map((d, a) => Math.max(d, xd[a])), x);
  });
};

const gemmRule: Rule = (c) => {
  const [a, b, cc] = c.node.input;
  const e = c.e;
  const alpha = attrFloat(c.node, "alpha", 1);
  const beta = attrFloat(c.node, "beta", 1);
  const transA = attrInt(c.node, "transA", 0) === 1;
  const transB = attrInt(c.node, "transB", 0) === 1;
  const g = alpha === 1 ? g0(c) : e.mul(g0(c), e.scalar(alpha));
  const t = (x: string): string => e.op1("Transpose", [x], { perm: { ints: [1, 0] } });
  // Y = A'B' (A' = A^T when transA): dA' = g·B'^T, dB' = A'^T·g, transposed back where needed.
  const aPrime = transA ? t(factor(c, a)) : factor(c, a);
  const bPrime = transB ? t(factor(c, b)) : factor(c, b);
  const dA = c.need[0] ? e.op1("MatMul", [g, t(bPrime)]) : undefined;
  const dB = c.need[1] ? e.op1("MatMul", [t(aPrime), g]) : undefined;
  const gC = c.need[2] ? unbroadcast(c, beta === 1 ? g0(c) : e.mul(g0(c), e.scalar(beta)), c.info(c.node.output[0]).dims, cc) : undefined;
  return [dA && transA ? t(dA) : dA, dB && transB ? t(dB) : dB, gC];
};

const transposeRule: Rule = (c) => {
  only(c, 0);
  const r = c.info(c.node.input[0]).dims.length;
  const perm = attrInts(c.node, "perm") ?? [...Array(r).keys()].reverse();
  return [c.e.op1("Transpose", [g0(c)], { perm: { ints: inversePerm(perm) } })];
};

function requireStaticAxis(c: Ctx, t: string, axis: number, what: string): void {
  if (c.dynamic(t, axis)) fail(`${describeNode(c.node)}: gradients of a ${what} along the batch axis are not supported`);
}

const concatRule: Rule = (c) => {
  const y = c.node.output[0];
  const axis = normAxis(attrInt(c.node, "axis", 0), c.info(y).dims.length);
  requireStaticAxis(c, y, axis, "Concat");
  let offset = 0;
  return c.node.input.map((t, i) => {
    const size = c.info(t).dims[axis];
    const start = offset;
    offset += size;
    if (!c.need[i]) return undefined;
    return c.e.op1("Slice", [g0(c), c.e.ints([start]), c.e.ints([start + size]), c.e.ints([axis])]);
  });
};

const splitRule: Rule = (c) => {
  only(c, 0);
  const x = c.node.input[0];
  const axis = normAxis(attrInt(c.node, "axis", 0), c.info(x).dims.length);
  requireStaticAxis(c, x, axis, "Split");
  const parts = c.node.output.map((y, i) => c.gy[i] ?? c.e.zerosLike(y));
  return [c.e.op1("Concat", parts, { axis: { i: axis } })];
};

const sliceRule: Rule = (c) => {
  only(c, 0);
  const x = c.node.input[0];
  const xi = c.info(x);
  const { starts, ends, axes, steps } = sliceParams(c.node, xi, c.node.input.map((t) => (t ? c.info(t) : undefined)));
  const r = xi.dims.length;
  const pads = new Array(2 * r).fill(0);
  axes.forEach((a, i) => {
    if (steps[i] !== 1) fail(`${describeNode(c.node)}: gradients of a Slice with step ${steps[i]} are not supported`);
    pads[a] = starts[i];
    pads[a + r] = xi.dims[a] - Math.max(ends[i], starts[i]);
    if ((pads[a] !== 0 || pads[a + r] !== 0) && c.dynamic(x, a)) requireStaticAxis(c, x, a, "Slice");
  });
  return [c.e.op1("Pad", [g0(c), c.e.ints(pads)])];
};

const padRule: Rule = (c) => {
  only(c, 0);
  const mode = attrString(c.node, "mode", "constant");
  const x = c.node.input[0];
  const xi = c.info(x);
  const pads = padAmounts(c.node, xi, c.node.input.map((t) => (t ? c.info(t) : undefined)));
  const r = xi.dims.length;
  if (mode !== "constant") {
    // Reflect/edge/wrap copy input values into the border, one axis at a time (the copies of
    // different axes compose), so each axis's border gradient is folded back onto what it copied.
    let g = g0(c);
    for (let a = 0; a < r; a++) {
      const [b, e] = [pads[a], pads[a + r]];
      if (b === 0 && e === 0) continue;
      const d = xi.dims[a];
      const limit = mode === "reflect" ? d - 1 : mode === "wrap" ? d : Infinity;
      if (!["reflect", "edge", "wrap"].includes(mode)) fail(`${describeNode(c.node)}: unknown Pad mode '${mode}'`);
      if (b < 0 || e < 0 || b > limit || e > limit) fail(`${describeNode(c.node)}: gradients of ${mode} padding by [${b}, ${e}] on an axis of ${d} are not supported`, "pads of reflect/edge/wrap padding must be non-negative (and smaller than the axis for reflect)");
      requireStaticAxis(c, x, a, "Pad");
      g = foldBorders(c.e, g, a, r, d, b, e, mode);
    }
    return [g];
  }
  let g = g0(c);
  // Negative pads cropped the input: pad the gradient back first, then cut off the added border.
  const crop = pads.map((p) => Math.max(-p, 0));
  if (crop.some((p) => p > 0)) g = c.e.op1("Pad", [g, c.e.ints(crop)]);
  const axes = [...Array(r).keys()].filter((a) => pads[a] > 0 || pads[a + r] > 0);
  if (axes.length === 0) return [g];
  axes.forEach((a) => requireStaticAxis(c, x, a, "Pad"));
  const starts = axes.map((a) => Math.max(pads[a], 0));
  return [c.e.op1("Slice", [g, c.e.ints(starts), c.e.ints(axes.map((a, i) => starts[i] + xi.dims[a])), c.e.ints(axes)])];
};

/**
 * The gradient of one axis of a reflect/edge/wrap Pad (`b` before, `e` after an axis of `d`): the
 * middle passes through, and each border's gradient is added where its values were copied from.
 */
function foldBorders(E: Emitter, g: string, a: number, r: number, d: number, b: number, e: number, mode: string): string {
  const slice = (start: number, end: number, step = 1) => E.op1("Slice", [g, E.ints([start]), E.ints([end]), E.ints([a]), E.ints([step])]);
  const place = (t: string, at: number, len: number) => {
    const p = new Array<number>(2 * r).fill(0);
    [p[a], p[a + r]] = [at, d - at - len];
    return E.op1("Pad", [t, E.ints(p)]);
  };
  const BEFORE_START = -(2 ** 62); // the end of a reversed slice that runs to index 0
  const parts = [slice(b, b + d)];
  if (b > 0) {
    // before: output j copied input b - j (reflect), 0 (edge), d - b + j (wrap)
    if (mode === "reflect") parts.push(place(slice(b - 1, BEFORE_START, -1), 1, b));
    else if (mode === "edge") parts.push(place(E.reduceSum(slice(0, b), [a]), 0, 1));
    else parts.push(place(slice(0, b), d - b, b));
  }
  if (e > 0) {
    // after: output b + d + t copied input d - 2 - t (reflect), d - 1 (edge), t (wrap)
    if (mode === "reflect") parts.push(place(slice(b + d + e - 1, b + d - 1, -1), d - 1 - e, e));
    else if (mode === "edge") parts.push(place(E.reduceSum(slice(b + d, b + d + e), [a]), d - 1, 1));
    else parts.push(place(slice(b + d, b + d + e), 0, e));
  }
  return E.sum(parts);
}

const gatherRule: Rule = (c) => {
  only(c, 0);
  const [x, indices] = c.node.input;
  const xd = c.info(x).dims;
  const idx = c.info(indices);
  if (!idx.value || idx.dims.length > 1) fail(`${describeNode(c.node)}: gradients of a Gather need constant scalar or 1-D indices`);
  const axis = normAxis(attrInt(c.node, "axis", 0), xd.length);
  requireStaticAxis(c, x, axis, "Gather");
  const e = c.e;
  const size = xd[axis];
  const picks = idx.value.map((i) => (i < 0 ? i + size : i));
  // y = x gathered along `axis` = (x moved to the last axis)·OneHot^T; the gradient multiplies by OneHot.
  const oneHot = new Array(picks.length * size).fill(0);
  picks.forEach((p, j) => (oneHot[j * size + p] += 1));
  let g = g0(c);
  if (idx.dims.length === 0) g = e.op1("Unsqueeze", [g, e.ints([axis])]);
  const r = xd.length;
  const toLast = [...Array(r).keys()].filter((a) => a !== axis).concat([axis]);
  const back = new Array<number>(r);
  toLast.forEach((p, i) => (back[p] = i));
  const moved = e.op1("Transpose", [g], { perm: { ints: toLast } });
  const scattered = e.op1("MatMul", [moved, e.floats([picks.length, size], oneHot)]);
  return [e.op1("Transpose", [scattered], { perm: { ints: back } })];
};

const castRule: Rule = (c) => {
  only(c, 0);
  const from = c.info(c.node.input[0]).dtype;
  const to = c.info(c.node.output[0]).dtype;
  return [from === to ? g0(c) : c.e.op1("Cast", [g0(c)], { to: { i: from } })];
};

// ---- Resize: the transposed interpolation matrix of every resized axis

/** Source coordinate of output position `o` under a Resize coordinate transformation. */
function sourceCoordinate(mode: string, o: number, scale: number, inSize: number, outSize: number): number {
  switch (mode) {
    case "half_pixel":
      return (o + 0.5) / scale - 0.5;
    case "half_pixel_symmetric": {
      const adjustment = outSize / (scale * inSize);
      const offset = (inSize / 2) * (1 - adjustment);
      return offset + (o + 0.5) / scale - 0.5;
    }
    case "pytorch_half_pixel":
      return outSize > 1 ? (o + 0.5) / scale - 0.5 : 0;
    case "align_corners":
      return outSize === 1 ? 0 : (o * (inSize - 1)) / (outSize - 1);
    case "asymmetric":
      return o / scale;
    case "tf_half_pixel_for_nn":
      return (o + 0.5) / scale;
    default:
      fail(`Resize coordinate_transformation_mode '${mode}' is not supported in gradient graphs`);
  }
}

function nearestIndex(x: number, mode: string): number {
  switch (mode) {
    case "round_prefer_ceil":
      return Math.round(x);
    case "floor":
      return Math.floor(x);
    case "ceil":
      return Math.ceil(x);
    default: // round_prefer_floor
      return x === Math.floor(x) + 0.5 ? Math.floor(x) : Math.round(x);
  }
}

function cubicWeights(t: number, a: number): number[] {
  const w = (s: number): number => {
    const x = Math.abs(s);
    if (x <= 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
    if (x < 2) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
    return 0;
  };
  return [w(t + 1), w(t), w(1 - t), w(2 - t)];
}

/**
 * The [outSize, inSize] matrix R with y = R·x along one axis, following the ONNX Resize spec
 * (sources clamped to the edge as ONNX Runtime does).
 */
export function resizeMatrix(node: NodeProto, inSize: number, outSize: number, scale: number): Float64Array {
  const mode = attrString(node, "mode", "nearest");
  const coord = attrString(node, "coordinate_transformation_mode", "half_pixel");
  const R = new Float64Array(outSize * inSize);
  const clamp = (i: number): number => Math.min(Math.max(i, 0), inSize - 1);
  for (let o = 0; o < outSize; o++) {
    const x = sourceCoordinate(coord, o, scale, inSize, outSize);
    const row = o * inSize;
    if (mode === "nearest") {
      R[row + clamp(nearestIndex(x, attrString(node, "nearest_mode", "round_prefer_floor")))] = 1;
    } else if (mode === "linear") {
      const xc = Math.min(Math.max(x, 0), inSize - 1);
      const x0 = Math.floor(xc);
      const t = xc - x0;
      R[row + x0] += 1 - t;
      R[row + clamp(x0 + 1)] += t;
    } else if (mode === "cubic") {
      const x0 = Math.floor(x);
      const w = cubicWeights(x - x0, attrFloat(node, "cubic_coeff_a", -0.75));
      const exclude = attrInt(node, "exclude_outside", 0) === 1;
      const inside = [-1, 0, 1, 2].map((k) => x0 + k >= 0 && x0 + k < inSize);
      const total = exclude ? w.reduce((s, v, k) => s + (inside[k] ? v : 0), 0) : 1;
      w.forEach((v, k) => {
        if (!exclude || inside[k]) R[row + clamp(x0 - 1 + k)] += v / total;
      });
    } else {
      fail(`${describeNode(node)}: Resize mode '${mode}' is not supported in gradient graphs`);
    }
  }
  return R;
}

function isIdentity(R: Float64Array, n: number, m: number): boolean {
  if (n !== m) return false;
  for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) if (R[i * m + j] !== (i === j ? 1 : 0)) return false;
  return true;
}

const resizeRule: Rule = (c) => {
  only(c, 0);
  if (attrInt(c.node, "antialias", 0) !== 0) fail(`${describeNode(c.node)}: antialiased Resize is not supported in gradient graphs`);
  if (attrString(c.node, "coordinate_transformation_mode", "half_pixel") === "tf_crop_and_resize") {
    fail(`${describeNode(c.node)}: Resize in tf_crop_and_resize mode is not supported in gradient graphs`);
  }
  const [x] = c.node.input;
  const xd = c.info(x).dims;
  const ins = c.node.input.map((t) => (t ? c.info(t) : undefined));
  const { scales, out } = resizeGeometry(c.node, c.info(x), ins[2], ins[3]);
  const e = c.e;
  const r = xd.length;
  let g = g0(c);
  for (let a = r - 1; a >= 0; a--) {
    const R = resizeMatrix(c.node, xd[a], out[a], scales[a]);
    if (isIdentity(R, out[a], xd[a])) continue;
    requireStaticAxis(c, x, a, "Resize");
    // x_grad = R^T·g along axis a: with g's axis a moved last, g·R has shape [..., in].
    const m = e.floats([out[a], xd[a]], R);
    if (a === r - 1) g = e.op1("MatMul", [g, m]);
    else {
      const perm = [...Array(r).keys()];
      [perm[a], perm[r - 1]] = [perm[r - 1], perm[a]];
      const moved = e.op1("Transpose", [g], { perm: { ints: perm } });
      g = e.op1("Transpose", [e.op1("MatMul", [moved, m])], { perm: { ints: perm } });
    }
  }
  return [g];
};

const RULES: Record<string, Rule> = {
  ...UNARY,
  Identity: passThrough,
  Dropout: passThrough,
  Neg: (c) => {
    only(c, 0);
    return [c.e.op1("Neg", [g0(c)])];
  },
  Cast: castRule,
  Add: addSub(1),
  Sub: addSub(-1),
  Mul: mulRule,
  Div: divRule,
  Sum: sumRule,
  Where: whereRule,
  Expand: expandRule,
  Conv: convRule,
  ConvTranspose: convTransposeRule,
  Floor: stepRule,
  Ceil: stepRule,
  Round: stepRule,
  Sign: stepRule,
  Max: elementwiseExtremum("Max"),
  Min: elementwiseExtremum("Min"),
  MaxPool: maxPoolRule,
  MaxUnpool: maxUnpoolRule,
  AveragePool: averagePoolRule,
  GlobalAveragePool: globalAveragePoolRule,
  GlobalMaxPool: extremum("Max", spatialAxes),
  ReduceMean: spread(true),
  ReduceSum: spread(false),
  ReduceMax: extremum("Max"),
  ReduceMin: extremum("Min"),
  ReduceSumSquare: reduceSumSquareRule,
  ReduceL2: reduceL2Rule,
  ReduceLogSumExp: reduceLogSumExpRule,
  Softmax: softmaxRule,
  LogSoftmax: logSoftmaxRule,
  LayerNormalization: layerNormRule,
  InstanceNormalization: instanceNormRule,
  GroupNormalization: groupNormRule,
  BatchNormalization: batchNormRule,
  MatMul: matMulRule,
  Gemm: gemmRule,
  Einsum: einsumRule,
  Reshape: reshapeBack,
  Flatten: reshapeBack,
  Squeeze: reshapeBack,
  Unsqueeze: reshapeBack,
  Transpose: transposeRule,
  DepthToSpace: depthToSpaceRule,
  SpaceToDepth: spaceToDepthRule,
  Tile: tileRule,
  Concat: concatRule,
  Split: splitRule,
  Slice: sliceRule,
  Pad: padRule,
  Gather: gatherRule,
  Resize: resizeRule,
};

/** Op types with a backward rule. */
export const SUPPORTED_OPS: readonly string[] = Object.keys(RULES).sort();

// ---------------------------------------------------------------------------------------------
// Building the model

/**
 * Tensors that depend on `sources` through floating-point tensors (the only ones a gradient flows along).
 * A dependent tensor of unknown type counts as one: if it reaches the output, the build is refused.
 */
function taintedFrom(nodes: NodeProto[], sources: Iterable<string>, infos: Map<string, StaticInfo>): Set<string> {
  const tainted = new Set(sources);
  for (const n of nodes) {
    if (!n.input.some((t) => tainted.has(t))) continue;
    for (const o of n.output) {
      const i = infos.get(o);
      if (o && (i?.unknown || FLOAT_TYPES.has(i?.dtype ?? -1))) tainted.add(o);
    }
  }
  return tainted;
}

/** Tainted tensors from which the output is reachable through tainted tensors. */
function relevantTensors(nodes: NodeProto[], output: string, tainted: Set<string>): Set<string> {
  const relevant = new Set<string>(tainted.has(output) ? [output] : []);
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i];
    if (!n.output.some((o) => relevant.has(o))) continue;
    for (const t of n.input) if (tainted.has(t)) relevant.add(t);
  }
  return relevant;
}

/** Refuses, by name, any node on the differentiated path that has no rule or is not float32. */
function checkSupported(active: NodeProto[], relevant: Set<string>, info: (t: string) => StaticInfo, output: string): void {
  for (const n of active) {
    const standard = n.domain === "" || n.domain === "ai.onnx" || (n.domain === "com.microsoft" && n.opType === "Gelu");
    if (!RULES[n.opType] || !standard) {
      fail(
        `no gradient rule for ${describeNode(n)} (op type ${n.domain ? `${n.domain}.` : ""}${n.opType}) on the path to '${output}'`,
        `gradient graphs support ${SUPPORTED_OPS.join(", ")}`,
      );
    }
    for (const t of [...n.input, ...n.output]) {
      if (relevant.has(t) && info(t).dtype !== DT.FLOAT) {
        fail(`${describeNode(n)}: tensor '${t}' is ${DT[info(t).dtype]}; gradient graphs are built for float32 models`, "export the model in float32");
      }
    }
  }
}

function imageInput(model: ModelProto): string {
  const inits = new Set(model.graph!.initializer.map((t) => t.name));
  const inputs = model.graph!.input.filter((i) => !inits.has(i.name));
  if (inputs.length !== 1) fail(`gradient graphs need a model with one input; this one has ${inputs.length}`);
  return inputs[0].name;
}

/**
 * Dims for a value_info: static sizes as numbers; a batch-following first axis takes the input's batch
 * name, other batch-following axes (e.g. batch folded into tokens) a name of their own.
 */
function declaredDims(a: StaticInfo, b: StaticInfo, batchName: string): (number | string)[] {
  return a.dims.map((d, i) => (d === b.dims[i] ? d : i === 0 ? batchName : `${batchName}_dim${i}`));
}

/** Duplicates the nodes that depend on the image input, renamed, to run the forward pass on the reference. */
function referencePass(nodes: NodeProto[], input: string): { nodes: NodeProto[]; names: Map<string, string> } {
  const names = new Map<string, string>([[input, REFERENCE]]);
  const out: NodeProto[] = [];
  for (const n of nodes) {
    if (!n.input.some((t) => names.has(t))) continue;
    const copy = clone(NodeProtoSchema, n);
    copy.name = `${n.name || n.opType}/segcause_reference`;
    copy.input = n.input.map((t) => names.get(t) ?? t);
    copy.output = n.output.map((o) => {
      if (!o) return o;
      const r = `${o}/segcause_reference`;
      names.set(o, r);
      return r;
    });
    out.push(copy);
  }
  return { nodes: out, names };
}

/**
 * Walks the active nodes in reverse, summing the gradient of each tensor over its consumers before its
 * producer's rule runs. Returns the (summed) gradient of a tensor, if any reached it.
 */
function backward(active: NodeProto[], relevant: Set<string>, output: string, e: Emitter, context: (n: NodeProto, gy: (string | undefined)[]) => Ctx): (t: string) => string | undefined {
  const grads = new Map<string, string[]>();
  const contribute = (t: string, g: string): void => {
    const list = grads.get(t);
    if (list) list.push(g);
    else grads.set(t, [g]);
  };
  const total = (t: string): string | undefined => {
    const list = grads.get(t);
    if (!list) return undefined;
    const g = e.sum(list);
    grads.set(t, [g]);
    return g;
  };
  if (relevant.has(output)) contribute(output, SEED);
  for (let i = active.length - 1; i >= 0; i--) {
    const node = active[i];
    const gy = node.output.map((o) => (o && relevant.has(o) ? total(o) : undefined));
    if (gy.every((g) => g === undefined)) continue;
    const ctx = context(node, gy);
    const contributions = RULES[node.opType](ctx);
    node.input.forEach((t, k) => {
      const g = contributions[k];
      if (ctx.need[k] && g) contribute(t, g);
    });
  }
  return total;
}

function batchDimName(v: ValueInfoProto): string {
  const tt = v.type?.value.case === "tensorType" ? v.type.value.value : undefined;
  const d0 = tt?.shape?.dim[0]?.value;
  return d0?.case === "dimParam" && d0.value ? d0.value : "N";
}

/**
 * Builds a model that returns the forward output plus the vector-Jacobian product of the chosen
 * output with the fed seed, for the graph input and/or intermediate tensors.
 */
export function buildGradientModel(model: ModelProto, opts: GradientGraphOptions = {}): GradientModel {
  const rule = opts.rule ?? "gradient";
  // The backward nodes use opset 13's input-valued axes and opset 16's ScatterElements reduction.
  const upgraded = upgradeOpset(model, GRADIENT_OPSET);
  const m = upgraded === model ? clone(ModelProtoSchema, model) : upgraded;
  const graph = m.graph!;
  const opset = opsetOf(m);
  const control = graph.node.find((n) => ["If", "Loop", "Scan"].includes(n.opType));
  if (control) fail(`${describeNode(control)}: models with control flow have no gradient graph`, "export the model without data-dependent control flow (trace it)");
  const input = imageInput(m);
  const output = opts.output ?? graph.output[0].name;
  const infos = inferStatic(m, BATCH_A);
  const infos2 = inferStatic(m, BATCH_B);
  const info = (t: string): StaticInfo => {
    const i = infos.get(t) ?? fail(`unknown tensor '${t}'`, "name a graph output or an intermediate tensor of the model");
    return i.unknown ? fail(`cannot build the gradient graph: ${i.unknown}`) : i;
  };
  info(output);
  const wrt = opts.wrt && opts.wrt.length > 0 ? [...new Set(opts.wrt)] : [input];
  for (const t of wrt) {
    if (!FLOAT_TYPES.has(info(t).dtype)) fail(`tensor '${t}' is not a floating-point tensor, so it has no gradient`);
    if (graph.initializer.some((i) => i.name === t)) fail(`'${t}' is a weight (initializer); gradients are computed for the input and activations only`);
  }

  const relevant = relevantTensors(graph.node, output, taintedFrom(graph.node, wrt, infos));
  const active = graph.node.filter((n) => n.output.some((o) => relevant.has(o)) && n.input.some((t) => relevant.has(t)));
  checkSupported(active, relevant, info, output);
  // MaxPool's gradient routes through the argmax: expose its Indices output.
  for (const n of active) {
    if (n.opType === "MaxPool" && !n.output[1]) {
      n.output[1] = `${n.output[0]}/segcause_indices`;
      infos.set(n.output[1], { dtype: DT.INT64, dims: info(n.output[0]).dims });
    }
  }

  const e = new Emitter(opset);
  const refInfo = graph.input.find((i) => i.name === input)!;
  let refNames = new Map<string, string>();
  if (rule === "deeplift") {
    const pass = referencePass(graph.node, input);
    graph.node.push(...pass.nodes);
    refNames = pass.names;
    graph.input.push(create(ValueInfoProtoSchema, { name: REFERENCE, type: clone(ValueInfoProtoSchema, refInfo).type }));
  }
  const initializers = new Map(graph.initializer.map((t) => [t.name, t]));
  const context = (node: NodeProto, gy: (string | undefined)[]): Ctx => ({
    node,
    e,
    gy,
    need: node.input.map((t) => relevant.has(t)),
    rule,
    info,
    dynamic: (t, axis) => info(t).dims[axis] !== infos2.get(t)?.dims[axis],
    ref: (t) => refNames.get(t) ?? t,
    initializer: (t) => initializers.get(t),
  });
  const grads = backward(active, relevant, output, e, context);

  const batchName = batchDimName(refInfo);
  const declared = (t: string): ValueInfoProto => valueInfo(t, declaredDims(info(t), infos2.get(t)!, batchName));
  const outputs = new Map<string, ValueInfoProto>([[output, declared(output)]]);
  const gradients: Record<string, string> = {};
  const activations: Record<string, string> = {};
  const referenceActivations: Record<string, string> = {};
  for (const t of wrt) {
    const name = `segcause_grad/${t}`;
    e.nodes.push(create(NodeProtoSchema, { name: `/segcause/backward/out_${t}`, opType: "Identity", input: [grads(t) ?? e.zerosLike(t)], output: [name] }));
    gradients[t] = name;
    outputs.set(name, valueInfo(name, declaredDims(info(t), infos2.get(t)!, batchName)));
    if (t === input) continue;
    activations[t] = t;
    outputs.set(t, declared(t));
    if (rule === "deeplift") {
      const r = refNames.get(t) ?? t;
      referenceActivations[t] = r;
      outputs.set(r, valueInfo(r, declaredDims(info(t), infos2.get(t)!, batchName)));
    }
  }

  graph.node.push(...e.nodes);
  graph.initializer.push(...e.inits);
  graph.input.push(valueInfo(SEED, declaredDims(info(output), infos2.get(output)!, batchName)));
  graph.output = [...outputs.values()];
  graph.valueInfo = [];
  return {
    bytes: toBinary(ModelProtoSchema, m),
    input,
    ...(rule === "deeplift" ? { referenceInput: REFERENCE } : {}),
    seedInput: SEED,
    output,
    gradients,
    activations,
    ...(rule === "deeplift" ? { referenceActivations } : {}),
  };
}
