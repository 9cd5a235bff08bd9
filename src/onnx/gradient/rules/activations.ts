/** Backward rules of elementwise activations and other functions of one input (f'(x), guided, DeepLIFT's secant). */
import { TensorProto_DataType as DT } from "onnx-buf";
import { attr, attrFloat, attrString } from "../../attributes.js";
import { type Ctx, g0, only, type Rule } from "../context.js";
import { rescale } from "../deeplift.js";

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
  const loA = attr(c.node, "min");
  const hiA = attr(c.node, "max");
  const loT = lo ?? (loA ? e.scalar(loA.f) : undefined);
  const hiT = hi ?? (hiA ? e.scalar(hiA.f) : undefined);
  if (loT) d = e.mul(d, e.mask(e.op1("Greater", [x, loT])));
  if (hiT) d = e.mul(d, e.mask(e.op1("Less", [x, hiT])));
  return d;
}

/** Elementwise activations and other functions of one input, and the piecewise-constant steps. */
export const ACTIVATION_RULES: Record<string, Rule> = {
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
    const gamma = attrFloat(c.node, "gamma", 1.0507010221481323);
    return bySign(c, x, c.e.scalar(gamma), c.e.op1("Add", [y, c.e.scalar(attrFloat(c.node, "alpha", 1.6732631921768188) * gamma)]));
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
    const p = c.info(p0).dtype === DT.FLOAT ? p0 : c.e.op1("Cast", [p0], { to: DT.FLOAT }); // Pow allows an integer exponent
    return c.e.mul(c.e.op1("Pow", [x, c.e.op1("Sub", [p, c.e.scalar(1)])]), p);
  }),
  Floor: stepRule,
  Ceil: stepRule,
  Round: stepRule,
  Sign: stepRule,
};
