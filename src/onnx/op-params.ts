/**
 * The parameters of ONNX ops as their spec defines them, resolved against static sizes: axes, conv and
 * pool windows (auto_pad included), Resize geometry, reduce axes, Slice bounds, Split sizes and Pad
 * amounts. Shape inference and the gradient rules read them from here, so both agree on every op.
 */
import type { NodeProto } from "onnx-buf";
import { fail } from "../errors.js";
import { attrInt, attrInts, attrString, describeNode } from "./attributes.js";
import type { StaticInfo } from "./shapes.js";

/** Axis normalisation (negative axes count from the end). */
export function normAxis(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}

/** Explicit [begin..., end...] pads of a conv/pool node, resolving auto_pad from the static sizes. */
export function convPads(node: NodeProto, inSpatial: number[], kernel: number[], stridesA: number[], dil: number[]): number[] {
  const r = inSpatial.length;
  const autoPad = attrString(node, "auto_pad", "NOTSET");
  if (autoPad === "VALID") return new Array(2 * r).fill(0);
  if (autoPad === "SAME_UPPER" || autoPad === "SAME_LOWER") {
    const begin: number[] = [];
    const end: number[] = [];
    for (let i = 0; i < r; i++) {
      const out = Math.ceil(inSpatial[i] / stridesA[i]);
      const total = Math.max((out - 1) * stridesA[i] + (kernel[i] - 1) * dil[i] + 1 - inSpatial[i], 0);
      const small = Math.floor(total / 2);
      begin.push(autoPad === "SAME_UPPER" ? small : total - small);
      end.push(autoPad === "SAME_UPPER" ? total - small : small);
    }
    return [...begin, ...end];
  }
  return attrInts(node, "pads") ?? new Array(2 * r).fill(0);
}

export interface WindowParams {
  kernel: number[];
  strides: number[];
  dilations: number[];
  pads: number[];
  ceil: boolean;
}

/** Kernel, strides, dilations and explicit pads of a Conv/ConvTranspose/pool node. */
export function windowParams(node: NodeProto, inDims: number[], weightDims?: number[]): WindowParams {
  const spatial = inDims.slice(2);
  const r = spatial.length;
  const kernel = attrInts(node, "kernel_shape") ?? weightDims?.slice(2) ?? fail(`${describeNode(node)} has no kernel_shape`);
  const st = attrInts(node, "strides") ?? new Array(r).fill(1);
  const dil = attrInts(node, "dilations") ?? new Array(r).fill(1);
  return { kernel, strides: st, dilations: dil, pads: convPads(node, spatial, kernel, st, dil), ceil: attrInt(node, "ceil_mode", 0) === 1 };
}

export function windowOutput(inSize: number, k: number, s: number, d: number, pb: number, pe: number, ceil: boolean): number {
  const span = inSize + pb + pe - ((k - 1) * d + 1);
  let out = (ceil ? Math.ceil(span / s) : Math.floor(span / s)) + 1;
  // With ceil_mode the last window must start inside the input or the begin padding.
  if (ceil && (out - 1) * s >= inSize + pb) out--;
  return out;
}

/** Coordinate-transform scale and output size of each axis of a Resize node. */
export function resizeGeometry(node: NodeProto, x: StaticInfo, scalesIn?: StaticInfo, sizesIn?: StaticInfo): { scales: number[]; out: number[] } {
  const r = x.dims.length;
  if (sizesIn && sizesIn.dims[0] > 0) {
    if (!sizesIn.value) fail(`${describeNode(node)}: its output sizes are not computable from static shapes`);
    const policy = attrString(node, "keep_aspect_ratio_policy", "stretch");
    if (policy !== "stretch")
      fail(
        `${describeNode(node)}: Resize with keep_aspect_ratio_policy '${policy}' is not supported`,
        "export the resize with explicit sizes (stretch)",
      );
    const axes = attrInts(node, "axes")?.map((a) => normAxis(a, r)) ?? [...Array(r).keys()];
    const out = [...x.dims];
    axes.forEach((a, i) => (out[a] = sizesIn.value![i]));
    return { scales: out.map((o, i) => o / x.dims[i]), out };
  }
  if (!scalesIn?.value) fail(`${describeNode(node)}: its scales are not computable from static shapes`);
  const axes = attrInts(node, "axes")?.map((a) => normAxis(a, r)) ?? [...Array(r).keys()];
  const scales = new Array(r).fill(1);
  axes.forEach((a, i) => (scales[a] = scalesIn.value![i]));
  return { scales, out: x.dims.map((d, i) => Math.floor(d * scales[i] + 1e-9)) };
}

/** Reduce-op axes (attribute before opset 18 for most reduces, input after), normalised. */
export function reduceAxes(node: NodeProto, infos: (StaticInfo | undefined)[], rank: number): number[] {
  const fromAttr = attrInts(node, "axes");
  let axes = fromAttr;
  if (!axes && node.input[1]) {
    const v = infos[1]?.value;
    if (!v) fail(`${describeNode(node)}: its axes are not computable from static shapes`);
    axes = v;
  }
  if (!axes || axes.length === 0) return attrInt(node, "noop_with_empty_axes", 0) ? [] : [...Array(rank).keys()];
  return axes.map((a) => normAxis(a, rank));
}

/** [starts, ends, axes, steps] of a Slice, normalised and clamped against the input dims. */
export function sliceParams(
  node: NodeProto,
  x: StaticInfo,
  infos: (StaticInfo | undefined)[],
): { starts: number[]; ends: number[]; axes: number[]; steps: number[] } {
  const get = (i: number, a: string): number[] | undefined =>
    attrInts(node, a) ??
    (node.input[i] ? (infos[i]?.value ?? fail(`${describeNode(node)}: its ${a} are not computable from static shapes`)) : undefined);
  const rawStarts = get(1, "starts")!;
  const rawEnds = get(2, "ends")!;
  const axes = (get(3, "axes") ?? rawStarts.map((_, i) => i)).map((a) => normAxis(a, x.dims.length));
  const steps = get(4, "steps") ?? rawStarts.map(() => 1);
  const starts: number[] = [];
  const ends: number[] = [];
  axes.forEach((a, i) => {
    const d = x.dims[a];
    const step = steps[i];
    let s = rawStarts[i] < 0 ? rawStarts[i] + d : rawStarts[i];
    let e = rawEnds[i] < 0 ? rawEnds[i] + d : rawEnds[i];
    if (step > 0) {
      s = Math.min(Math.max(s, 0), d);
      e = Math.min(Math.max(e, 0), d);
    } else {
      s = Math.min(Math.max(s, 0), d - 1);
      e = Math.min(Math.max(e, -1), d - 1);
    }
    starts.push(s);
    ends.push(e);
  });
  return { starts, ends, axes, steps };
}

export function splitEven(size: number, n: number): number[] {
  const chunk = Math.ceil(size / n);
  return Array.from({ length: n }, (_, i) => Math.max(Math.min(chunk, size - i * chunk), 0));
}

/** Pads of a Pad node as [begin..., end...] over every axis. */
export function padAmounts(node: NodeProto, x: StaticInfo, ins: (StaticInfo | undefined)[]): number[] {
  const r = x.dims.length;
  const raw = attrInts(node, "pads") ?? ins[1]?.value ?? fail(`${describeNode(node)}: its pads are not computable from static shapes`);
  const axesIn = node.input[3] ? (ins[3]?.value ?? fail(`${describeNode(node)}: its axes are not computable from static shapes`)) : undefined;
  if (!axesIn) return raw;
  const pads = new Array(2 * r).fill(0);
  axesIn.forEach((a0, i) => {
    const a = normAxis(a0, r);
    pads[a] = raw[i];
    pads[a + r] = raw[i + axesIn.length];
  });
  return pads;
}
