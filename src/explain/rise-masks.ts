/** RISE's random smooth masks, in 2D (images) and 3D (volumes): a pure function of (seed, mask index). */
import { hash3, uniform } from "../util/rng.js";
import { STREAM } from "../util/streams.js";

const RISE_STREAM = STREAM.rise;

/**
 * Writes RISE mask i (a pure function of seed and i) into `out` (H·W): cells of an s×s Bernoulli(p)
 * grid, bilinear upsampling (half-pixel centres, edge-clamped) to (s+1)·⌈H/s⌉ × (s+1)·⌈W/s⌉,
 * cropped at a random shift in [0, ⌈H/s⌉) × [0, ⌈W/s⌉).
 */
export function riseMask(seed: number, i: number, H: number, W: number, s: number, p: number, out: Float32Array): void {
  const h = hash3(seed, RISE_STREAM, i);
  const grid = new Float64Array(s * s);
  for (let k = 0; k < s * s; k++) grid[k] = uniform(h, 0, k) < p ? 1 : 0;
  const ch = Math.ceil(H / s),
    cw = Math.ceil(W / s);
  const dy = Math.floor(uniform(h, 1, 0) * ch),
    dx = Math.floor(uniform(h, 1, 1) * cw);
  const ry = maskAxis(H, dy, ch, s),
    rx = maskAxis(W, dx, cw, s);
  for (let y = 0; y < H; y++) {
    const a0 = ry.i0[y] * s,
      a1 = ry.i1[y] * s,
      fy = ry.f[y];
    for (let x = 0; x < W; x++) {
      const b0 = rx.i0[x],
        b1 = rx.i1[x],
        fx = rx.f[x];
      const top = grid[a0 + b0] + fx * (grid[a0 + b1] - grid[a0 + b0]);
      const bot = grid[a1 + b0] + fx * (grid[a1 + b1] - grid[a1 + b0]);
      out[y * W + x] = top + fy * (bot - top);
    }
  }
}

/**
 * One axis of a RISE mask: for each of `n` positions, the two grid cells it mixes and the weight of
 * the second, after upsampling s cells to (s+1)·cell positions (half-pixel centres, edge-clamped)
 * and a shift of `shift` positions.
 */
export function maskAxis(n: number, shift: number, cell: number, s: number): { i0: Int32Array; i1: Int32Array; f: Float64Array } {
  const up = (s + 1) * cell;
  const i0 = new Int32Array(n),
    i1 = new Int32Array(n),
    f = new Float64Array(n);
  for (let t = 0; t < n; t++) {
    const g = Math.min(s - 1, Math.max(0, ((t + shift + 0.5) * s) / up - 0.5));
    i0[t] = Math.floor(g);
    i1[t] = Math.min(s - 1, i0[t] + 1);
    f[t] = g - i0[t];
  }
  return { i0, i1, f };
}

/**
 * The 3D form of `riseMask`: mask i over a [D, H, W] box (W fastest) from an s×s×s Bernoulli(p) grid,
 * upsampled trilinearly to (s+1)·⌈n/s⌉ per axis and cropped at a random shift in [0, ⌈n/s⌉) per axis.
 */
export function riseMask3d(seed: number, i: number, [D, H, W]: number[], s: number, p: number, out: Float32Array): void {
  const h = hash3(seed, RISE_STREAM, i);
  const grid = new Float64Array(s * s * s);
  for (let k = 0; k < grid.length; k++) grid[k] = uniform(h, 0, k) < p ? 1 : 0;
  const [rz, ry, rx] = [D, H, W].map((n, a) => {
    const cell = Math.ceil(n / s);
    return maskAxis(n, Math.floor(uniform(h, 1, a) * cell), cell, s);
  });
  const at = (z: number, y: number, x: number) => grid[(z * s + y) * s + x];
  for (let z = 0; z < D; z++) {
    const z0 = rz.i0[z],
      z1 = rz.i1[z],
      fz = rz.f[z];
    for (let y = 0; y < H; y++) {
      const y0 = ry.i0[y],
        y1 = ry.i1[y],
        fy = ry.f[y];
      for (let x = 0; x < W; x++) {
        const x0 = rx.i0[x],
          x1 = rx.i1[x],
          fx = rx.f[x];
        const lerp = (zz: number, yy: number) => at(zz, yy, x0) + fx * (at(zz, yy, x1) - at(zz, yy, x0));
        const plane = (zz: number) => lerp(zz, y0) + fy * (lerp(zz, y1) - lerp(zz, y0));
        out[(z * H + y) * W + x] = plane(z0) + fz * (plane(z1) - plane(z0));
      }
    }
  }
}
