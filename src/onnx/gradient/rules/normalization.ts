/** Backward rules of Softmax, LogSoftmax and the normalisation layers (their gradient at x under every rule). */
import { fail } from "../../../errors.js";
import { attrFloat, attrInt, describeNode } from "../../attributes.js";
import { normAxis } from "../../op-params.js";
import { numel } from "../../values.js";
import { type Ctx, g0, only, type Rule } from "../context.js";

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
  return [
    normalizationGradient(
      c,
      x,
      scale,
      [...Array(rank).keys()].filter((i) => i >= axis),
    ),
  ];
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
  if (attrInt(c.node, "training_mode", 0) === 1)
    fail(`${describeNode(c.node)}: BatchNormalization in training mode is not supported`, "export the model in eval mode");
  const [x, scale, , , variance] = c.node.input;
  const e = c.e;
  const xd = c.info(x).dims;
  const f = e.op1("Div", [scale, e.op1("Sqrt", [e.op1("Add", [variance, e.scalar(attrFloat(c.node, "epsilon", 1e-5))])])]);
  const perChannel = e.op1("Reshape", [f, e.ints([xd[1], ...new Array(xd.length - 2).fill(1)])]);
  return [e.mul(g0(c), perChannel)];
};

/** Softmax and normalisation layers. */
export const NORMALIZATION_RULES: Record<string, Rule> = {
  Softmax: softmaxRule,
  LogSoftmax: logSoftmaxRule,
  LayerNormalization: layerNormRule,
  InstanceNormalization: instanceNormRule,
  GroupNormalization: groupNormRule,
  BatchNormalization: batchNormRule,
};
