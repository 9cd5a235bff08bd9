/**
 * Static shape, type and value inference for ONNX graphs with a concrete batch size. Gradient graphs
 * need the sizes of intermediate tensors (interpolation matrices of Resize, ConvTranspose output
 * padding, broadcast axes) and the values of the small integer tensors that exported graphs compute
 * from `Shape` (Resize sizes, Reshape targets). The exporters here write no value_info, and ONNX
 * Runtime's session API is asynchronous, so the graph is evaluated here: shapes for every tensor,
 * values for constants and for the small tensors computed from them (values.ts). Op parameters
 * (windows, axes, Slice bounds) come from op-params.ts, which the gradient rules read too.
 */
import { TensorProto_DataType as DT, type ModelProto, type NodeProto } from "onnx-buf";
import { fail } from "../errors.js";
import { attr, attrInt, attrInts, attrString, describeNode, opsetOf, tensorType, tensorValues } from "./attributes.js";
import { einsumSizes, einsumSubscripts } from "./einsum.js";
import { normAxis, padAmounts, reduceAxes, resizeGeometry, sliceParams, splitEven, windowOutput, windowParams } from "./op-params.js";
import { BINARY, broadcastValues, COMPARISONS, gatherValues, INT_TYPES, numel, UNARY_VALUES, VALUE_LIMIT } from "./values.js";

export interface StaticInfo {
  dtype: number;
  dims: number[];
  /** flat values (row-major), known for constants and small tensors computed from them */
  value?: number[];
  /** why nothing is known about this tensor (an op segcause cannot infer, upstream of it) */
  unknown?: string;
}

/** numpy-style broadcast of two shapes. */
export function broadcastDims(a: number[], b: number[]): number[] {
  const r = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < r; i++) {
    const x = a[a.length - r + i] ?? 1;
    const y = b[b.length - r + i] ?? 1;
    out.push(x === 1 ? y : x);
  }
  return out;
}

/** Per-position ops of one tensor (PRelu broadcasts its slope): the output cell reads its own input cell. */
export const POSITIONWISE_OPS = [
  ...Object.keys(UNARY_VALUES),
  "Dropout",
  "LeakyRelu",
  "Sigmoid",
  "Tanh",
  "Gelu",
  "Erf",
  "Clip",
  "Elu",
  "Selu",
  "HardSigmoid",
  "HardSwish",
  "Softplus",
  "Softsign",
  "Sign",
  "Sin",
  "Cos",
  "PRelu",
  "Celu",
  "Mish",
  "ThresholdedRelu",
  "IsNaN",
  "IsInf",
];

/** Ops whose (first) output has the shape and type of their first input. */
const SAME_SHAPE = new Set([
  ...POSITIONWISE_OPS,
  "Softmax",
  "LogSoftmax",
  "LayerNormalization",
  "BatchNormalization",
  "InstanceNormalization",
  "GroupNormalization",
  "LpNormalization",
]);

/**
 * Infers every tensor's type and shape (and small values) with the given batch size. A node that cannot
 * be inferred does not stop the inference: its outputs (and everything computed from them) are marked
 * `unknown` with the reason, which is reported only if a gradient needs them.
 */
export function inferStatic(model: ModelProto, batch: number): Map<string, StaticInfo> {
  const g = model.graph!;
  const infos = new Map<string, StaticInfo>();
  for (const t of g.initializer) {
    const dims = t.dims.map(Number);
    infos.set(t.name, { dtype: t.dataType, dims, value: numel(dims) <= VALUE_LIMIT ? tensorValues(t) : undefined });
  }
  for (const inp of g.input) {
    if (infos.has(inp.name)) continue;
    const tt = tensorType(inp);
    if (!tt) fail(`graph input '${inp.name}' is not a tensor`);
    const dims = (tt.shape?.dim ?? []).map((d, i) => {
      if (d.value.case === "dimValue") return Number(d.value.value);
      if (i === 0) return batch;
      fail(
        `graph input '${inp.name}' has a symbolic dimension ${i} ('${d.value.value ?? "?"}')`,
        "gradient graphs need fixed sizes except the batch dimension; re-export with a fixed input size",
      );
    });
    infos.set(inp.name, { dtype: tt.elemType, dims });
  }
  const opset = opsetOf(model) || 13;
  for (const node of g.node) {
    const ins = node.input.map((t) => (t === "" ? undefined : infos.get(t)));
    ins.forEach((v, i) => {
      if (!v && node.input[i] !== "") fail(`internal: no static info for tensor '${node.input[i]}' read by ${describeNode(node)}`);
    });
    const outs = inferOrMark(node, ins, opset);
    outs.forEach((o, i) => {
      if (node.output[i]) {
        if (o.value && numel(o.dims) > VALUE_LIMIT) delete o.value;
        infos.set(node.output[i], o);
      }
    });
  }
  return infos;
}

function inferOrMark(node: NodeProto, ins: (StaticInfo | undefined)[], opset: number): StaticInfo[] {
  const mark = (unknown: string): StaticInfo[] => node.output.map(() => ({ dtype: -1, dims: [], unknown }));
  const upstream = ins.find((i) => i?.unknown);
  if (upstream) return mark(upstream.unknown!);
  try {
    return inferNode(node, ins, opset);
  } catch (e) {
    if ((e as Error).name !== "SegcauseError") throw e;
    return mark((e as Error).message);
  }
}

function known(...xs: (StaticInfo | undefined)[]): boolean {
  return xs.every((x) => x?.value !== undefined);
}

function inferNode(node: NodeProto, ins: (StaticInfo | undefined)[], opset: number): StaticInfo[] {
  const op = node.opType;
  const x = ins[0]!;
  const same = (): StaticInfo[] => {
    const f = op in UNARY_VALUES ? UNARY_VALUES[op] : undefined;
    return [{ dtype: x.dtype, dims: [...x.dims], value: f && x.value ? x.value.map(f) : undefined }];
  };
  if (op === "LayerNormalization") {
    const axis = normAxis(attrInt(node, "axis", -1), x.dims.length);
    const stat = { dtype: DT.FLOAT, dims: x.dims.map((d, i) => (i < axis ? d : 1)) };
    return [{ dtype: x.dtype, dims: [...x.dims] }, stat, stat];
  }
  if (op === "Dropout")
    return [
      { ...x, dims: [...x.dims] },
      { dtype: DT.BOOL, dims: [...x.dims] },
    ];
  if (op === "Cast") {
    const to = attrInt(node, "to", DT.FLOAT);
    const v = x.value?.map((a) => (INT_TYPES.has(to) ? Math.trunc(a) : to === DT.BOOL ? Number(a !== 0) : a));
    return [{ dtype: to, dims: [...x.dims], value: v }];
  }
  if (op === "Clip" && x.value) {
    const lo = ins[1]?.value?.[0] ?? -Infinity;
    const hi = ins[2]?.value?.[0] ?? Infinity;
    return [{ dtype: x.dtype, dims: [...x.dims], value: x.value.map((v) => Math.min(Math.max(v, lo), hi)) }];
  }
  if (SAME_SHAPE.has(op)) return same();
  if (op in BINARY || op === "Xor" || op === "Where" || op === "Sum" || op === "Mean") return inferBroadcast(node, ins);
  switch (op) {
    case "Constant":
      return [constantInfo(node)];
    case "Shape": {
      const r = x.dims.length;
      const s = normAxis(attrInt(node, "start", 0), r);
      const e = attr(node, "end") ? normAxis(attrInt(node, "end", r), r) : r;
      const v = x.dims.slice(Math.max(s, 0), Math.min(e, r));
      return [{ dtype: DT.INT64, dims: [v.length], value: v }];
    }
    case "Size":
      return [{ dtype: DT.INT64, dims: [], value: [numel(x.dims)] }];
    case "ConstantOfShape": {
      if (!x.value) fail(`${describeNode(node)}: its shape is not computable from static shapes`);
      const a = attr(node, "value");
      const dtype = a?.t ? a.t.dataType : DT.FLOAT;
      const fill = a?.t ? tensorValues(a.t)[0] : 0;
      const n = numel(x.value);
      return [{ dtype, dims: [...x.value], value: n <= VALUE_LIMIT ? new Array(n).fill(fill) : undefined }];
    }
    case "Gather":
      return [inferGather(node, x, ins[1]!)];
    case "Unsqueeze": {
      const axesIn = attrInts(node, "axes") ?? ins[1]?.value ?? fail(`${describeNode(node)}: axes unknown`);
      const r = x.dims.length + axesIn.length;
      const axes = axesIn.map((a) => normAxis(a, r));
      const dims: number[] = [];
      let j = 0;
      for (let i = 0; i < r; i++) dims.push(axes.includes(i) ? 1 : x.dims[j++]);
      return [{ dtype: x.dtype, dims, value: x.value }];
    }
    case "Squeeze": {
      const axesIn = attrInts(node, "axes") ?? ins[1]?.value;
      const axes = axesIn ? axesIn.map((a) => normAxis(a, x.dims.length)) : x.dims.flatMap((d, i) => (d === 1 ? [i] : []));
      return [{ dtype: x.dtype, dims: x.dims.filter((_, i) => !axes.includes(i)), value: x.value }];
    }
    case "Concat":
      return [
        inferConcat(
          node,
          ins.filter((i): i is StaticInfo => !!i),
        ),
      ];
    case "Slice":
      return [inferSlice(node, x, ins)];
    case "Reshape":
      return [inferReshape(node, x, ins[1]!)];
    case "Flatten": {
      const axis = normAxis(attrInt(node, "axis", 1), x.dims.length);
      return [{ dtype: x.dtype, dims: [numel(x.dims.slice(0, axis)), numel(x.dims.slice(axis))], value: x.value }];
    }
    case "Transpose": {
      const perm = attrInts(node, "perm") ?? [...x.dims.keys()].reverse();
      const dims = perm.map((p) => x.dims[p]);
      // Values too: torch's F.pad computes its pads as Reshape → Slice(step -1) → Transpose → Reshape.
      const from = x.dims.map((_, a) => perm.indexOf(a));
      return [{ dtype: x.dtype, dims, value: x.value && gatherValues(x.value, x.dims, dims, (out, a) => out[from[a]]) }];
    }
    case "Expand": {
      if (!ins[1]!.value) fail(`${describeNode(node)}: its shape is not computable from static shapes`);
      const dims = broadcastDims(x.dims, ins[1]!.value);
      return [{ dtype: x.dtype, dims, value: x.value && numel(dims) <= VALUE_LIMIT ? broadcastValues([x], dims, (v) => v) : undefined }];
    }
    case "Range": {
      if (!known(ins[0], ins[1], ins[2])) fail(`${describeNode(node)}: its bounds are not computable from static shapes`);
      const [s, l, d] = [ins[0]!.value![0], ins[1]!.value![0], ins[2]!.value![0]];
      const n = Math.max(Math.ceil((l - s) / d), 0);
      return [{ dtype: x.dtype, dims: [n], value: Array.from({ length: n }, (_, i) => s + i * d) }];
    }
    case "Tile": {
      if (!ins[1]!.value) fail(`${describeNode(node)}: its repeats are not computable from static shapes`);
      return [{ dtype: x.dtype, dims: x.dims.map((d, i) => d * ins[1]!.value![i]) }];
    }
    case "Split":
      return inferSplit(node, x, ins, opset);
    case "Pad":
      return [inferPad(node, x, ins)];
    case "Resize":
    case "Upsample": {
      const scales = op === "Upsample" ? ins[1] : ins[2];
      const { out } = resizeGeometry(node, x, scales, op === "Resize" ? ins[3] : undefined);
      return [{ dtype: x.dtype, dims: out }];
    }
    case "Conv":
    case "MaxPool":
    case "AveragePool":
    case "LpPool": {
      const w = ins[1];
      const p = windowParams(node, x.dims, op === "Conv" ? w!.dims : undefined);
      const spatial = x.dims
        .slice(2)
        .map((d, i) => windowOutput(d, p.kernel[i], p.strides[i], p.dilations[i], p.pads[i], p.pads[i + p.kernel.length], p.ceil));
      const dims = [x.dims[0], op === "Conv" ? w!.dims[0] : x.dims[1], ...spatial];
      return op === "MaxPool"
        ? [
            { dtype: x.dtype, dims },
            { dtype: DT.INT64, dims },
          ]
        : [{ dtype: x.dtype, dims }];
    }
    case "ConvTranspose":
      return [inferConvTranspose(node, x, ins[1]!)];
    case "DepthToSpace":
    case "SpaceToDepth": {
      const b = attrInt(node, "blocksize", 1);
      const [n, c, h, w] = x.dims;
      return [{ dtype: x.dtype, dims: op === "DepthToSpace" ? [n, c / (b * b), h * b, w * b] : [n, c * b * b, h / b, w / b] }];
    }
    case "MaxUnpool": {
      if (ins[2]) {
        if (!ins[2].value) fail(`${describeNode(node)}: its output_shape is not computable from static shapes`);
        return [{ dtype: x.dtype, dims: [...ins[2].value] }];
      }
      const { kernel, strides: s, pads: p } = windowParams(node, x.dims);
      const r = kernel.length;
      return [{ dtype: x.dtype, dims: [x.dims[0], x.dims[1], ...kernel.map((k, i) => (x.dims[i + 2] - 1) * s[i] + k - p[i] - p[i + r])] }];
    }
    case "GlobalAveragePool":
    case "GlobalMaxPool":
      return [{ dtype: x.dtype, dims: x.dims.map((d, i) => (i < 2 ? d : 1)) }];
    case "MatMul":
      return [inferMatMul(node, x, ins[1]!)];
    case "Einsum": {
      const operands = ins.map((i) => i!);
      const { inputs, output } = einsumSubscripts(
        node,
        operands.map((i) => i.dims.length),
      );
      const sizes = einsumSizes(
        node,
        inputs,
        operands.map((i) => i.dims),
      );
      return [{ dtype: x.dtype, dims: [...output].map((l) => sizes.get(l)!) }];
    }
    case "Gemm": {
      const a = attrInt(node, "transA", 0) ? [x.dims[1], x.dims[0]] : x.dims;
      const b = attrInt(node, "transB", 0) ? [ins[1]!.dims[1], ins[1]!.dims[0]] : ins[1]!.dims;
      return [{ dtype: x.dtype, dims: [a[0], b[1]] }];
    }
    case "ReduceMean":
    case "ReduceSum":
    case "ReduceMax":
    case "ReduceMin":
    case "ReduceProd":
    case "ReduceL2":
    case "ReduceSumSquare":
    case "ReduceLogSumExp":
    case "ArgMax":
    case "ArgMin": {
      const isArg = op.startsWith("Arg");
      const axes = isArg ? [normAxis(attrInt(node, "axis", 0), x.dims.length)] : reduceAxes(node, ins, x.dims.length);
      const keep = attrInt(node, "keepdims", 1) === 1;
      const dims = keep ? x.dims.map((d, i) => (axes.includes(i) ? 1 : d)) : x.dims.filter((_, i) => !axes.includes(i));
      return [{ dtype: isArg ? DT.INT64 : x.dtype, dims }];
    }
    default:
      fail(
        `${describeNode(node)}: segcause cannot infer the shapes of op type ${op}`,
        "gradient graphs support the ops of the shipped model zoo and common CNN/transformer ops",
      );
  }
}

function constantInfo(node: NodeProto): StaticInfo {
  const a = node.attribute[0];
  if (!a) fail(`${describeNode(node)} has no value`);
  if (a.name === "value" && a.t)
    return { dtype: a.t.dataType, dims: a.t.dims.map(Number), value: numel(a.t.dims.map(Number)) <= VALUE_LIMIT ? tensorValues(a.t) : undefined };
  if (a.name === "value_float") return { dtype: DT.FLOAT, dims: [], value: [a.f] };
  if (a.name === "value_floats") return { dtype: DT.FLOAT, dims: [a.floats.length], value: [...a.floats] };
  if (a.name === "value_int") return { dtype: DT.INT64, dims: [], value: [Number(a.i)] };
  if (a.name === "value_ints") return { dtype: DT.INT64, dims: [a.ints.length], value: a.ints.map(Number) };
  fail(`${describeNode(node)}: unsupported constant attribute ${a.name}`);
}

function inferBroadcast(node: NodeProto, insMaybe: (StaticInfo | undefined)[]): StaticInfo[] {
  const ins = insMaybe.filter((i): i is StaticInfo => !!i);
  const op = node.opType;
  const dims = ins.map((i) => i.dims).reduce(broadcastDims);
  const dtype = COMPARISONS.has(op) ? DT.BOOL : op === "Where" ? ins[1].dtype : ins[0].dtype;
  let value: number[] | undefined;
  if (known(...ins) && numel(dims) <= VALUE_LIMIT) {
    const int = INT_TYPES.has(ins[0].dtype);
    if (op === "Where") value = broadcastValues(ins, dims, (c, a, b) => (c ? a : b));
    else if (op === "Sum") value = broadcastValues(ins, dims, (...v) => v.reduce((a, b) => a + b, 0));
    else if (op === "Mean") value = broadcastValues(ins, dims, (...v) => v.reduce((a, b) => a + b, 0) / v.length);
    else if (op === "Xor") value = broadcastValues(ins, dims, (a, b) => Number(!!a !== !!b));
    else value = broadcastValues(ins, dims, (a, b) => BINARY[op](a, b, int));
  }
  return [{ dtype, dims, value }];
}

function inferGather(node: NodeProto, x: StaticInfo, idx: StaticInfo): StaticInfo {
  const axis = normAxis(attrInt(node, "axis", 0), x.dims.length);
  const dims = [...x.dims.slice(0, axis), ...idx.dims, ...x.dims.slice(axis + 1)];
  let value: number[] | undefined;
  if (x.value && idx.value && numel(dims) <= VALUE_LIMIT) {
    const outer = numel(x.dims.slice(0, axis));
    const inner = numel(x.dims.slice(axis + 1));
    value = [];
    for (let o = 0; o < outer; o++) {
      for (const i0 of idx.value) {
        const i = i0 < 0 ? i0 + x.dims[axis] : i0;
        for (let k = 0; k < inner; k++) value.push(x.value[(o * x.dims[axis] + i) * inner + k]);
      }
    }
  }
  return { dtype: x.dtype, dims, value };
}

function inferConcat(node: NodeProto, ins: StaticInfo[]): StaticInfo {
  const r = ins[0].dims.length;
  const axis = normAxis(attrInt(node, "axis", 0), r);
  const dims = [...ins[0].dims];
  dims[axis] = ins.reduce((s, i) => s + i.dims[axis], 0);
  const value = r === 1 && known(...ins) ? ins.flatMap((i) => i.value!) : undefined;
  return { dtype: ins[0].dtype, dims, value };
}

function inferSlice(node: NodeProto, x: StaticInfo, ins: (StaticInfo | undefined)[]): StaticInfo {
  const { starts, ends, axes, steps } = sliceParams(node, x, ins);
  const dims = [...x.dims];
  axes.forEach((a, i) => (dims[a] = Math.max(Math.ceil((ends[i] - starts[i]) / steps[i]), 0)));
  const slot = x.dims.map((_, a) => axes.indexOf(a));
  const value = x.value && gatherValues(x.value, x.dims, dims, (out, a) => (slot[a] < 0 ? out[a] : starts[slot[a]] + out[a] * steps[slot[a]]));
  return { dtype: x.dtype, dims, value };
}

function inferReshape(node: NodeProto, x: StaticInfo, shape: StaticInfo): StaticInfo {
  if (!shape.value) fail(`${describeNode(node)}: its target shape is not computable from static shapes`);
  const allowZero = attrInt(node, "allowzero", 0) === 1;
  const dims = shape.value.map((d, i) => (d === 0 && !allowZero ? x.dims[i] : d));
  const minus = dims.indexOf(-1);
  if (minus >= 0) dims[minus] = numel(x.dims) / numel(dims.filter((_, i) => i !== minus));
  return { dtype: x.dtype, dims, value: x.value };
}

function inferSplit(node: NodeProto, x: StaticInfo, ins: (StaticInfo | undefined)[], opset: number): StaticInfo[] {
  const axis = normAxis(attrInt(node, "axis", 0), x.dims.length);
  const n = node.output.length;
  const split = attrInts(node, "split") ?? (opset >= 13 ? ins[1]?.value : undefined) ?? splitEven(x.dims[axis], n);
  return split.map((s) => ({ dtype: x.dtype, dims: x.dims.map((d, i) => (i === axis ? s : d)) }));
}

function inferPad(node: NodeProto, x: StaticInfo, ins: (StaticInfo | undefined)[]): StaticInfo {
  const pads = padAmounts(node, x, ins);
  const r = x.dims.length;
  return { dtype: x.dtype, dims: x.dims.map((d, i) => d + pads[i] + pads[i + r]) };
}

function inferConvTranspose(node: NodeProto, x: StaticInfo, w: StaticInfo): StaticInfo {
  const r = x.dims.length - 2;
  const group = attrInt(node, "group", 1);
  const outShape = attrInts(node, "output_shape");
  const cout = w.dims[1] * group;
  if (outShape) return { dtype: x.dtype, dims: [x.dims[0], cout, ...outShape.slice(-r)] };
  // Not its pads: windowParams resolves auto_pad as Conv does, and ConvTranspose's reading follows below.
  const { kernel, strides: st, dilations: dil } = windowParams(node, x.dims, w.dims);
  const op = attrInts(node, "output_padding") ?? new Array(r).fill(0);
  const autoPad = attrString(node, "auto_pad", "NOTSET");
  const pads = autoPad === "NOTSET" ? (attrInts(node, "pads") ?? new Array(2 * r).fill(0)) : undefined;
  const spatial = x.dims
    .slice(2)
    .map((d, i) =>
      pads
        ? st[i] * (d - 1) + op[i] + (kernel[i] - 1) * dil[i] + 1 - pads[i] - pads[i + r]
        : autoPad === "VALID"
          ? st[i] * (d - 1) + op[i] + (kernel[i] - 1) * dil[i] + 1
          : d * st[i],
    );
  return { dtype: x.dtype, dims: [x.dims[0], cout, ...spatial] };
}

function inferMatMul(node: NodeProto, a: StaticInfo, b: StaticInfo): StaticInfo {
  if (a.dims.length < 2 || b.dims.length < 2) fail(`${describeNode(node)}: MatMul with a 1-D operand is not supported in gradient graphs`);
  const batch = broadcastDims(a.dims.slice(0, -2), b.dims.slice(0, -2));
  return { dtype: a.dtype, dims: [...batch, a.dims[a.dims.length - 2], b.dims[b.dims.length - 1]] };
}
