/**
 * A Gaussian blur of a volume with sigma in millimetres (voxels per axis by the spacing, so an
 * anisotropic grid is blurred evenly in space): separable, the kernel truncated at 3 sigma and
 * normalised, edges clamped (nearest), in float64 sums. An axis whose sigma is under 0.1 voxel is left as is.
 */
export function blurVolume(data: Float32Array, dims: readonly [number, number, number], spacing: readonly number[], sigmaMm: number): Float32Array {
  let cur = data;
  for (let axis = 0; axis < 3; axis++) {
    const s = sigmaMm / spacing[axis];
    if (s < 0.1) continue;
    cur = blurAxis(cur, dims, axis, kernel(s));
  }
  return cur === data ? Float32Array.from(data) : cur;
}

function kernel(sigma: number): Float64Array {
  const r = Math.max(1, Math.ceil(3 * sigma));
  const k = Float64Array.from({ length: 2 * r + 1 }, (_, i) => Math.exp(-((i - r) ** 2) / (2 * sigma * sigma)));
  const sum = k.reduce((a, b) => a + b, 0);
  return k.map((v) => v / sum);
}

/** One axis (0 = i, fastest; 2 = k) of a volume of dims [nx, ny, nz]. */
function blurAxis(src: Float32Array, dims: readonly [number, number, number], axis: number, k: Float64Array): Float32Array {
  const [nx, ny] = dims;
  const n = dims[axis];
  const stride = axis === 0 ? 1 : axis === 1 ? nx : nx * ny;
  const r = (k.length - 1) / 2;
  const out = new Float32Array(src.length);
  for (let start = 0; start < src.length; start++) {
    // every line along the axis starts where that axis' index is 0
    if (Math.floor(start / stride) % n !== 0) continue;
    for (let i = 0; i < n; i++) {
      let acc = 0;
      for (let t = -r; t <= r; t++) acc += k[t + r] * src[start + Math.min(n - 1, Math.max(0, i + t)) * stride];
      out[start + i * stride] = acc;
    }
  }
  return out;
}
