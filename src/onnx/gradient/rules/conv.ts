/** Backward rules of Conv and ConvTranspose: each one's input gradient is the other op. */
import { TensorProto_DataType as DT, type TensorProto } from "onnx-buf";
import { fail } from "../../../errors.js";
import { attrInt, attrInts, attrString, describeNode, tensorValues } from "../../attributes.js";
import { type WindowParams, windowParams } from "../../op-params.js";
import { numel } from "../../values.js";
import { type Ctx, g0, only, type Rule } from "../context.js";

/** output_padding/pads that make a transposed window op produce exactly `inDims` (spatial). */
export function transposedPads(p: WindowParams, inSpatial: number[], outSpatial: number[]): { pads: number[]; outputPadding: number[] } {
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
    group: group,
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
      group: attrInt(c.node, "group", 1),
    }),
  ];
};

const convTransposeRule: Rule = (c) => {
  only(c, 0);
  const [x, w] = c.node.input;
  if (attrString(c.node, "auto_pad", "NOTSET") !== "NOTSET" || attrInts(c.node, "output_shape")) {
    fail(
      `${describeNode(c.node)}: gradients of ConvTranspose with auto_pad or output_shape are not supported`,
      "export with explicit pads and output_padding",
    );
  }
  // Without auto_pad, the window's pads are ConvTranspose's own: the Conv undoes it exactly.
  const p = windowParams(c.node, c.info(x).dims, c.info(w).dims);
  return [
    c.e.op1("Conv", [g0(c), w], {
      kernel_shape: { ints: p.kernel },
      strides: { ints: p.strides },
      dilations: { ints: p.dilations },
      pads: { ints: p.pads },
      group: attrInt(c.node, "group", 1),
    }),
  ];
};

/** Convolutions. */
export const CONV_RULES: Record<string, Rule> = {
  Conv: convRule,
  ConvTranspose: convTransposeRule,
};
