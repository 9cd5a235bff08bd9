/** Backward rules of the pooling ops (MaxPool routes by its argmax indices, average pools spread evenly). */
import { fail } from "../../../errors.js";
import { attrInt, describeNode } from "../../attributes.js";
import { windowParams } from "../../op-params.js";
import { numel } from "../../values.js";
import { type Ctx, g0, only, type Rule } from "../context.js";
import { maxLike } from "../deeplift.js";
import { transposedPads } from "./conv.js";

/** Scatters values at MaxPool's flat indices into a zero tensor shaped like the pool's input. */
function unpool(c: Ctx, values: string, indices: string, x: string): string {
  const e = c.e;
  const flat = e.ints([-1]);
  const zeros = e.op1("Reshape", [e.zerosLike(x), flat]);
  const p = windowParams(c.node, c.info(x).dims);
  const overlap = p.kernel.some((k, i) => (k - 1) * p.dilations[i] + 1 > p.strides[i]);
  const scattered = e.op1("ScatterElements", [zeros, e.op1("Reshape", [indices, flat]), e.op1("Reshape", [values, flat])], {
    axis: 0,
    ...(overlap ? { reduction: "add" } : {}),
  });
  return e.reshapeLike(scattered, x);
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
  return [c.e.op1("Gather", [c.e.op1("Reshape", [g0(c), c.e.ints([-1])]), indices], { axis: 0 })];
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
      group: channels,
    }),
  ];
};

const globalAveragePoolRule: Rule = (c) => {
  only(c, 0);
  const x = c.node.input[0];
  const area = numel(c.info(x).dims.slice(2));
  return [c.e.op1("Expand", [c.e.mul(g0(c), c.e.scalar(1 / area)), c.e.shape(x)])];
};

/** Pooling (GlobalMaxPool is a reduction, see reductions.ts). */
export const POOLING_RULES: Record<string, Rule> = {
  MaxPool: maxPoolRule,
  MaxUnpool: maxUnpoolRule,
  AveragePool: averagePoolRule,
  GlobalAveragePool: globalAveragePoolRule,
};
