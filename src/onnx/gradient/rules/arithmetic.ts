/** Backward rules of elementwise arithmetic over broadcast inputs, copies and casts. */

import { g0, only, type Rule, unbroadcast } from "../context.js";
import { factor, maxLike, perPass } from "../deeplift.js";

const passThrough: Rule = (c) => {
  only(c, 0);
  return [g0(c)];
};

const castRule: Rule = (c) => {
  only(c, 0);
  const from = c.info(c.node.input[0]).dtype;
  const to = c.info(c.node.output[0]).dtype;
  return [from === to ? g0(c) : c.e.op1("Cast", [g0(c)], { to: from })];
};

const negRule: Rule = (c) => {
  only(c, 0);
  return [c.e.op1("Neg", [g0(c)])];
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
    return c.node.input.map((t, k) =>
      c.need[k]
        ? unbroadcast(
            c,
            pass(t, (v, ref) => e.mul(v, weights(ref)[k])),
            yDims,
            t,
          )
        : undefined,
    );
  };
}

/** Elementwise arithmetic, copies and casts. */
export const ARITHMETIC_RULES: Record<string, Rule> = {
  Identity: passThrough,
  Dropout: passThrough,
  Neg: negRule,
  Cast: castRule,
  Add: addSub(1),
  Sub: addSub(-1),
  Mul: mulRule,
  Div: divRule,
  Sum: sumRule,
  Where: whereRule,
  Expand: expandRule,
  Max: elementwiseExtremum("Max"),
  Min: elementwiseExtremum("Min"),
};
