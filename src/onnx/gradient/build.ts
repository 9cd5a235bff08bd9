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
  TensorProto_DataType as DT,
  type ModelProto,
  ModelProtoSchema,
  type NodeProto,
  NodeProtoSchema,
  type ValueInfoProto,
  ValueInfoProtoSchema,
} from "onnx-buf";
import { fail } from "../../errors.js";
import { describeNode } from "../attributes.js";
import { valueInfo } from "../builder.js";
import { controlFlowNode, declaredShape, graphInputs } from "../graph.js";
import { upgradeOpset } from "../opset.js";
import { inferStatic, type StaticInfo } from "../shapes.js";
import type { BackwardRule, Ctx } from "./context.js";
import { Emitter } from "./emitter.js";
import { checkSupported, FLOAT_TYPES, relevantTensors, taintedFrom } from "./path.js";
import { RULES } from "./registry.js";

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

const SEED = "segcause_seed";
const REFERENCE = "segcause_reference";

/** Batch sizes of the two static inferences: a dimension that differs between them follows the batch. */
const BATCH_A = 7;
const BATCH_B = 11;

/** Models older than this are converted to it first (see ../opset.ts). */
export const GRADIENT_OPSET = 16;

function imageInput(model: ModelProto): string {
  const inputs = graphInputs(model);
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
function backward(
  active: NodeProto[],
  relevant: Set<string>,
  output: string,
  e: Emitter,
  context: (n: NodeProto, gy: (string | undefined)[]) => Ctx,
): (t: string) => string | undefined {
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
  const d0 = declaredShape(v)?.[0];
  return typeof d0 === "string" ? d0 : "N";
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
  const control = controlFlowNode(m);
  if (control)
    fail(
      `${describeNode(control)}: models with control flow have no gradient graph`,
      "export the model without data-dependent control flow (trace it)",
    );
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
    if (graph.initializer.some((i) => i.name === t))
      fail(`'${t}' is a weight (initializer); gradients are computed for the input and activations only`);
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

  const e = new Emitter();
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
    e.nodes.push(
      create(NodeProtoSchema, { name: `/segcause/backward/out_${t}`, opType: "Identity", input: [grads(t) ?? e.zerosLike(t)], output: [name] }),
    );
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
