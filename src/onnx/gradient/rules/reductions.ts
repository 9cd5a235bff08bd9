/** Backward rules of the reduce ops and GlobalMaxPool. */
import { attrInt } from "../../attributes.js";
import { reduceAxes } from "../../op-params.js";
import { numel } from "../../values.js";
import { type Ctx, g0, only, type Rule } from "../context.js";
import { factor, maxLike, perDelta, perPass } from "../deeplift.js";

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
  const axes =
    fixedAxes ??
    reduceAxes(
      c.node,
      c.node.input.map((t) => (t ? c.info(t) : undefined)),
      c.info(x).dims.length,
    );
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

/** Reductions. */
export const REDUCTION_RULES: Record<string, Rule> = {
  GlobalMaxPool: extremum("Max", spatialAxes),
  ReduceMean: spread(true),
  ReduceSum: spread(false),
  ReduceMax: extremum("Max"),
  ReduceMin: extremum("Min"),
  ReduceSumSquare: reduceSumSquareRule,
  ReduceL2: reduceL2Rule,
  ReduceLogSumExp: reduceLogSumExpRule,
};
