/**
 * Resampling to another voxel spacing over the same physical extent (as nibabel/SimpleITK
 * resample-to-spacing do): n voxels of s mm become round(n·s/t) voxels of t mm whose outer faces
 * coincide with the input's, so output voxel o samples input index x = (o + ½)·t/s − ½ (clamped to
 * the grid: the border voxels repeat). Images are trilinear, masks and label maps nearest.
 */
import { fail } from "../../errors.js";
import { MAX_VOLUME_VOXELS } from "./volume.js";

type V3 = [number, number, number];

/** Output dims of a resample from spacing `from` to `to`; refused when it would exceed the voxel cap. */
export function resampledDims(dims: readonly number[], from: readonly number[], to: readonly number[], name: string): V3 {
  const out = dims.map((n, a) => Math.max(1, Math.round((n * from[a]) / to[a]))) as V3;
  if (out[0] * out[1] * out[2] > MAX_VOLUME_VOXELS)
    fail(
      `${name} resampled from ${from.map(fmt).join("x")} mm to the model's ${to.map(fmt).join("x")} mm would hold ${out.join("x")} voxels, more than segcause holds in one volume (${MAX_VOLUME_VOXELS})`,
      "crop the volume around the structure first (or resample it coarser yourself)",
    );
  return out;
}

const fmt = (s: number) => String(Number(s.toPrecision(4)));

/** Input index sampled by output voxel o along one axis. */
const sourceIndex = (o: number, from: number, to: number) => ((o + 0.5) * to) / from - 0.5;

/** The affine of the resampled grid: output voxel o is input index (o + ½)·t/s − ½ per axis. */
export function resampledAffine(affine: readonly number[], from: readonly number[], to: readonly number[]): number[] {
  const out = [...affine];
  for (let r = 0; r < 3; r++) {
    let t = affine[r * 4 + 3];
    for (let a = 0; a < 3; a++) {
      const k = to[a] / from[a];
      out[r * 4 + a] = affine[r * 4 + a] * k;
      t += affine[r * 4 + a] * sourceIndex(0, from[a], to[a]);
    }
    out[r * 4 + 3] = t;
  }
  return out;
}

/** Per output index along an axis: the two input neighbours and the weight of the upper one. */
function linearTaps(n: number, m: number, from: number, to: number): { lo: Int32Array; hi: Int32Array; w: Float64Array } {
  const lo = new Int32Array(m),
    hi = new Int32Array(m),
    w = new Float64Array(m);
  for (let o = 0; o < m; o++) {
    const x = Math.min(n - 1, Math.max(0, sourceIndex(o, from, to)));
    lo[o] = Math.floor(x);
    hi[o] = Math.min(n - 1, lo[o] + 1);
    w[o] = x - lo[o];
  }
  return { lo, hi, w };
}

/** Trilinear resample of an image (i fastest) from `dims` at spacing `from` to `out` dims at spacing `to`. */
export function resampleTrilinear(
  data: Float32Array,
  dims: readonly number[],
  from: readonly number[],
  to: readonly number[],
  out: V3,
): Float32Array {
  const [nx, ny] = dims;
  const [tx, ty, tz] = [0, 1, 2].map((a) => linearTaps(dims[a], out[a], from[a], to[a]));
  const res = new Float32Array(out[0] * out[1] * out[2]);
  let n = 0;
  for (let z = 0; z < out[2]; z++) {
    const wz = tz.w[z];
    const z0 = tz.lo[z] * ny,
      z1 = tz.hi[z] * ny;
    for (let y = 0; y < out[1]; y++) {
      const wy = ty.w[y];
      const r00 = (z0 + ty.lo[y]) * nx,
        r01 = (z0 + ty.hi[y]) * nx,
        r10 = (z1 + ty.lo[y]) * nx,
        r11 = (z1 + ty.hi[y]) * nx;
      for (let x = 0; x < out[0]; x++) {
        const wx = tx.w[x],
          a = tx.lo[x],
          b = tx.hi[x];
        const c00 = data[r00 + a] + wx * (data[r00 + b] - data[r00 + a]);
        const c01 = data[r01 + a] + wx * (data[r01 + b] - data[r01 + a]);
        const c10 = data[r10 + a] + wx * (data[r10 + b] - data[r10 + a]);
        const c11 = data[r11 + a] + wx * (data[r11 + b] - data[r11 + a]);
        const c0 = c00 + wy * (c01 - c00);
        const c1 = c10 + wy * (c11 - c10);
        res[n++] = c0 + wz * (c1 - c0);
      }
    }
  }
  return res;
}

/** Nearest input index of each output index along one axis (ties round up, as Math.round). */
function nearestTaps(n: number, m: number, from: number, to: number): Int32Array {
  const idx = new Int32Array(m);
  for (let o = 0; o < m; o++) idx[o] = Math.min(n - 1, Math.max(0, Math.round(sourceIndex(o, from, to))));
  return idx;
}

/**
 * Nearest-neighbour resample (masks, label maps, and piecewise-constant maps): every output voxel takes
 * one input voxel's value, so labels stay labels and NaN stays NaN.
 */
export function resampleNearest<T extends Float32Array | Uint8Array>(
  data: T,
  dims: readonly number[],
  from: readonly number[],
  to: readonly number[],
  out: V3,
  make: (n: number) => T,
): T {
  const [nx, ny] = dims;
  const [ix, iy, iz] = [0, 1, 2].map((a) => nearestTaps(dims[a], out[a], from[a], to[a]));
  const res = make(out[0] * out[1] * out[2]);
  let n = 0;
  for (let z = 0; z < out[2]; z++)
    for (let y = 0; y < out[1]; y++) {
      const row = (iz[z] * ny + iy[y]) * nx;
      for (let x = 0; x < out[0]; x++) res[n++] = data[row + ix[x]];
    }
  return res;
}
