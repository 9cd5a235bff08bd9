/** Backward rules of the ops that move, select or copy elements: reshapes, transposes, concatenation, slicing, padding, gathering. */
import { fail } from "../../../errors.js";
import { attrInt, attrInts, attrString, describeNode } from "../../attributes.js";
import { normAxis, padAmounts, sliceParams } from "../../op-params.js";
import { type Ctx, g0, only, type Rule, requireStaticAxis } from "../context.js";
import type { Emitter } from "../emitter.js";

const reshapeBack: Rule = (c) => {
  only(c, 0);
  return [c.e.reshapeLike(g0(c), c.node.input[0])];
};

function inversePerm(perm: number[]): number[] {
  const inverse = new Array<number>(perm.length);
  perm.forEach((p, i) => (inverse[p] = i));
  return inverse;
}

const transposeRule: Rule = (c) => {
  only(c, 0);
  const r = c.info(c.node.input[0]).dims.length;
  const perm = attrInts(c.node, "perm") ?? [...Array(r).keys()].reverse();
  return [c.e.op1("Transpose", [g0(c)], { perm: { ints: inversePerm(perm) } })];
};

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
  return [
    crd ? rearrangeBack(c, [n, ch / (b * b), b, b, h, w], [0, 1, 4, 2, 5, 3]) : rearrangeBack(c, [n, b, b, ch / (b * b), h, w], [0, 3, 4, 1, 5, 2]),
  ];
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
  return [c.e.op1("Concat", parts, { axis: axis })];
};

const sliceRule: Rule = (c) => {
  only(c, 0);
  const x = c.node.input[0];
  const xi = c.info(x);
  const { starts, ends, axes, steps } = sliceParams(
    c.node,
    xi,
    c.node.input.map((t) => (t ? c.info(t) : undefined)),
  );
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
  const pads = padAmounts(
    c.node,
    xi,
    c.node.input.map((t) => (t ? c.info(t) : undefined)),
  );
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
      if (b < 0 || e < 0 || b > limit || e > limit)
        fail(
          `${describeNode(c.node)}: gradients of ${mode} padding by [${b}, ${e}] on an axis of ${d} are not supported`,
          "pads of reflect/edge/wrap padding must be non-negative (and smaller than the axis for reflect)",
        );
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
  const moved = e.op1("Transpose", [g], { perm: { ints: toLast } });
  const scattered = e.op1("MatMul", [moved, e.floats([picks.length, size], oneHot)]);
  return [e.op1("Transpose", [scattered], { perm: { ints: inversePerm(toLast) } })];
};

/** Reshapes, rearrangements, concatenation, slicing, padding and gathering. */
export const LAYOUT_RULES: Record<string, Rule> = {
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
};
