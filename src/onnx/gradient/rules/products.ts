/** Backward rules of the tensor products MatMul, Gemm and Einsum (DeepLIFT: the product rule with mean factors). */
import { fail } from "../../../errors.js";
import { attrFloat, attrInt, attrString, describeNode } from "../../attributes.js";
import { einsumSizes, einsumSubscripts } from "../../einsum.js";
import { type Ctx, g0, type Rule, unbroadcast } from "../context.js";
import { factor } from "../deeplift.js";

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
  const { inputs, output } = einsumSubscripts(
    c.node,
    ops.map((t) => c.info(t).dims.length),
  );
  const yDims = c.info(c.node.output[0]).dims;
  const means = new Map<number, string>();
  const mean = (j: number): string => means.get(j) ?? means.set(j, factor(c, ops[j])).get(j)!;
  return ops.map((x, i) => {
    if (!c.need[i]) return undefined;
    const own = [...inputs[i]];
    if (new Set(own).size !== own.length) {
      fail(
        `${describeNode(c.node)}: gradients of an Einsum with a label repeated within one operand (a diagonal, equation '${attrString(c.node, "equation", "")}') are not supported`,
      );
    }
    const others = ops.flatMap((_, j) => (j === i ? [] : [j]));
    const terms = [output, ...others.map((j) => inputs[j])];
    const sizes = einsumSizes(c.node, terms, [yDims, ...others.map((j) => c.info(ops[j]).dims)]);
    const equation = `${terms.join(",")}->${own.filter((l) => sizes.has(l)).join("")}`;
    let g = e.op1("Einsum", [g0(c), ...others.map(mean)], { equation: equation });
    const alone = own.flatMap((l, a) => (sizes.has(l) ? [] : [a]));
    if (alone.length > 0) g = e.op1("Unsqueeze", [g, e.ints(alone)]);
    const xd = c.info(x).dims;
    const gDims = own.map((l) => sizes.get(l) ?? 1);
    if (gDims.some((d, a) => d < xd[a])) g = e.op1("Expand", [g, e.shape(x)]);
    return unbroadcast(
      c,
      g,
      gDims.map((d, a) => Math.max(d, xd[a])),
      x,
    );
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

/** Tensor products. */
export const PRODUCT_RULES: Record<string, Rule> = {
  MatMul: matMulRule,
  Gemm: gemmRule,
  Einsum: einsumRule,
};
