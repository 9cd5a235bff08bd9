/** The backward rule of Resize: the transposed interpolation matrix of every resized axis. */
import type { NodeProto } from "onnx-buf";
import { fail } from "../../../errors.js";
import { attrFloat, attrInt, attrString, describeNode } from "../../attributes.js";
import { resizeGeometry } from "../../op-params.js";
import { g0, only, type Rule, requireStaticAxis } from "../context.js";

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

/** Resize. */
export const RESIZE_RULES: Record<string, Rule> = {
  Resize: resizeRule,
};
