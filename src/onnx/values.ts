/**
 * The values of small tensors during static inference (shape arithmetic, scales, pads): elementwise ops
 * over broadcast inputs, and ops that pick elements of their input (Slice, Transpose).
 */
import { TensorProto_DataType as DT } from "onnx-buf";
import type { StaticInfo } from "./shapes.js";

/** Tensors up to this size carry their values (shape computations, scales, pads). */
export const VALUE_LIMIT = 4096;

export function numel(dims: number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

function strides(dims: readonly number[]): number[] {
  const s = new Array(dims.length).fill(1);
  for (let i = dims.length - 2; i >= 0; i--) s[i] = s[i + 1] * dims[i + 1];
  return s;
}

/** Elementwise op over broadcast inputs with known values. */
export function broadcastValues(ins: StaticInfo[], outDims: number[], f: (...v: number[]) => number): number[] {
  const n = numel(outDims);
  const os = strides(outDims);
  const out = new Array<number>(n);
  const insStrides = ins.map((x) => {
    const st = strides(x.dims);
    const pad = outDims.length - x.dims.length;
    return outDims.map((_, i) => (i < pad || x.dims[i - pad] === 1 ? 0 : st[i - pad]));
  });
  for (let k = 0; k < n; k++) {
    const args = ins.map((x, j) => {
      let off = 0;
      let rem = k;
      for (let i = 0; i < outDims.length; i++) {
        const c = Math.floor(rem / os[i]);
        rem -= c * os[i];
        off += c * insStrides[j][i];
      }
      return x.value![off];
    });
    out[k] = f(...args);
  }
  return out;
}

/**
 * Values of an output whose element at index `out` is x's element at coordinates `coord(out, axis)`
 * (Slice, Transpose), or undefined when the output is too large to carry values.
 */
export function gatherValues(
  x: readonly number[],
  xDims: readonly number[],
  outDims: readonly number[],
  coord: (out: number[], axis: number) => number,
): number[] | undefined {
  const n = numel([...outDims]);
  if (n > VALUE_LIMIT) return undefined;
  const xStrides = strides(xDims);
  const idx = new Array<number>(outDims.length).fill(0);
  const out: number[] = [];
  for (let f = 0; f < n; f++) {
    let src = 0;
    for (let a = 0; a < xDims.length; a++) src += coord(idx, a) * xStrides[a];
    out.push(x[src]);
    for (let d = outDims.length - 1; d >= 0 && ++idx[d] === outDims[d]; d--) idx[d] = 0;
  }
  return out;
}

export const INT_TYPES = new Set<number>([DT.INT64, DT.INT32, DT.INT8, DT.INT16, DT.UINT8, DT.UINT16, DT.UINT32, DT.UINT64]);

export const BINARY: Record<string, (a: number, b: number, int: boolean) => number> = {
  Add: (a, b) => a + b,
  Sub: (a, b) => a - b,
  Mul: (a, b) => a * b,
  Div: (a, b, int) => (int ? Math.trunc(a / b) : a / b),
  Pow: (a, b) => a ** b,
  Max: (a, b) => Math.max(a, b),
  Min: (a, b) => Math.min(a, b),
  Mod: (a, b) => a % b,
  Equal: (a, b) => Number(a === b),
  Less: (a, b) => Number(a < b),
  Greater: (a, b) => Number(a > b),
  LessOrEqual: (a, b) => Number(a <= b),
  GreaterOrEqual: (a, b) => Number(a >= b),
  And: (a, b) => Number(a && b),
  Or: (a, b) => Number(a || b),
};
export const COMPARISONS = new Set(["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor", "Not"]);

export const UNARY_VALUES: Record<string, (x: number) => number> = {
  Identity: (x) => x,
  Neg: (x) => -x,
  Abs: Math.abs,
  Floor: Math.floor,
  Ceil: Math.ceil,
  Sqrt: Math.sqrt,
  Relu: (x) => Math.max(x, 0),
  Not: (x) => Number(!x),
  Reciprocal: (x) => 1 / x,
  Exp: Math.exp,
  Log: Math.log,
  Round: (x) => {
    const r = Math.round(x);
    return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r; // ties to even
  },
};
