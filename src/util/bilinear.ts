/**
 * Bilinear resampling of one plane with half-pixel centres (ONNX Resize `half_pixel`, PyTorch
 * `align_corners=False`, no antialiasing), and its transpose, which back-propagates a gradient
 * through the resampling. Both are separable: each output row/column mixes two source rows/columns.
 */

interface Axis {
  i0: Int32Array;
  i1: Int32Array;
  /** weight of i1 (i0 gets 1 - w) */
  w: Float64Array;
}

function axis(inSize: number, outSize: number): Axis {
  const i0 = new Int32Array(outSize),
    i1 = new Int32Array(outSize),
    w = new Float64Array(outSize);
  const scale = inSize / outSize;
  for (let o = 0; o < outSize; o++) {
    const s = Math.min(Math.max((o + 0.5) * scale - 0.5, 0), inSize - 1);
    const a = Math.floor(s);
    i0[o] = a;
    i1[o] = Math.min(a + 1, inSize - 1);
    w[o] = s - a;
  }
  return { i0, i1, w };
}

/** src [h, w] → [H, W]. */
export function resizeBilinear(src: ArrayLike<number>, h: number, w: number, H: number, W: number): Float32Array {
  const ay = axis(h, H),
    ax = axis(w, W);
  const out = new Float32Array(H * W);
  for (let y = 0; y < H; y++) {
    const r0 = ay.i0[y] * w,
      r1 = ay.i1[y] * w,
      wy = ay.w[y];
    for (let x = 0; x < W; x++) {
      const c0 = ax.i0[x],
        c1 = ax.i1[x],
        wx = ax.w[x];
      const top = src[r0 + c0] * (1 - wx) + src[r0 + c1] * wx;
      const bot = src[r1 + c0] * (1 - wx) + src[r1 + c1] * wx;
      out[y * W + x] = top * (1 - wy) + bot * wy;
    }
  }
  return out;
}

/** Transpose of `resizeBilinear(·, h, w, H, W)`: grad [H, W] → [h, w] (the gradient w.r.t. src). */
export function resizeBilinearTranspose(grad: ArrayLike<number>, h: number, w: number, H: number, W: number): Float64Array {
  const ay = axis(h, H),
    ax = axis(w, W);
  const out = new Float64Array(h * w);
  for (let y = 0; y < H; y++) {
    const r0 = ay.i0[y] * w,
      r1 = ay.i1[y] * w,
      wy = ay.w[y];
    for (let x = 0; x < W; x++) {
      const g = grad[y * W + x];
      if (g === 0) continue;
      const c0 = ax.i0[x],
        c1 = ax.i1[x],
        wx = ax.w[x];
      out[r0 + c0] += g * (1 - wy) * (1 - wx);
      out[r0 + c1] += g * (1 - wy) * wx;
      out[r1 + c0] += g * wy * (1 - wx);
      out[r1 + c1] += g * wy * wx;
    }
  }
  return out;
}

/** Box (area) average of src [H, W] down to [h, w]; cells are the pixel ranges ⌊i·H/h⌋..⌊(i+1)·H/h⌋. */
export function areaDownsample(src: ArrayLike<number>, H: number, W: number, h: number, w: number): Float64Array {
  const out = new Float64Array(h * w);
  for (let i = 0; i < h; i++) {
    const y0 = Math.floor((i * H) / h),
      y1 = Math.max(y0 + 1, Math.floor(((i + 1) * H) / h));
    for (let j = 0; j < w; j++) {
      const x0 = Math.floor((j * W) / w),
        x1 = Math.max(x0 + 1, Math.floor(((j + 1) * W) / w));
      let s = 0;
      for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) s += src[y * W + x];
      out[i * w + j] = s / ((y1 - y0) * (x1 - x0));
    }
  }
  return out;
}

/** src [d, h, w] → [D, H, W]: trilinear, half-voxel centres (the 3D form of `resizeBilinear`). */
export function resizeTrilinear(src: ArrayLike<number>, [d, h, w]: number[], [D, H, W]: number[]): Float32Array {
  const az = axis(d, D);
  const out = new Float32Array(D * H * W);
  // Each source plane resized once, then neighbouring planes mixed along z.
  const planes = Array.from({ length: d }, (_, k) => resizeBilinear(Array.prototype.slice.call(src, k * h * w, (k + 1) * h * w), h, w, H, W));
  const n = H * W;
  for (let z = 0; z < D; z++) {
    const p0 = planes[az.i0[z]],
      p1 = planes[az.i1[z]],
      wz = az.w[z];
    for (let i = 0; i < n; i++) out[z * n + i] = p0[i] * (1 - wz) + p1[i] * wz;
  }
  return out;
}
