/**
 * Metrics of an attribution map that need no model: off-target leakage, sparsity (Gini) and rank
 * agreement (Spearman). All work on the support map (`supportMap`: larger = the pixel's content held
 * the RoI prediction up more) restricted to the explained domain D = pixels outside the RoI.
 */
import type { Region } from "../target/roi.js";
import { averageRanks } from "./wilcoxon.js";

/** Pixels outside the RoI, in row-major order: the domain every method explains and every curve intervenes on. */
export function explainedDomain(region: Region): Uint32Array {
  const out: number[] = [];
  for (let i = 0; i < region.inside.length; i++) if (!region.inside[i]) out.push(i);
  return Uint32Array.from(out);
}

/** Euclidean distance (pixels) from each pixel centre to the nearest RoI pixel centre (0 inside); rectangle RoIs use the box. */
export function distanceToRoi(region: Region): Float32Array {
  const H = region.imageHeight,
    W = region.imageWidth;
  const out = new Float32Array(H * W);
  if (region.kind === "rect") {
    const b = region.bbox;
    for (let y = 0; y < H; y++) {
      const dy = y < b.row ? b.row - y : y >= b.row + b.height ? y - (b.row + b.height - 1) : 0;
      for (let x = 0; x < W; x++) {
        const dx = x < b.col ? b.col - x : x >= b.col + b.width ? x - (b.col + b.width - 1) : 0;
        out[y * W + x] = Math.hypot(dy, dx);
      }
    }
    return out;
  }
  // Mask RoIs: brute force over the region's border pixels (masks are small in practice).
  const border: number[] = [];
  for (const p of region.pixels) {
    const y = Math.floor(p / W),
      x = p % W;
    if (
      y === 0 ||
      x === 0 ||
      y === H - 1 ||
      x === W - 1 ||
      !region.inside[p - 1] ||
      !region.inside[p + 1] ||
      !region.inside[p - W] ||
      !region.inside[p + W]
    )
      border.push(p);
  }
  for (let p = 0; p < H * W; p++) {
    if (region.inside[p]) continue;
    const y = Math.floor(p / W),
      x = p % W;
    let best = Infinity;
    for (const q of border) best = Math.min(best, (Math.floor(q / W) - y) ** 2 + ((q % W) - x) ** 2);
    out[p] = Math.sqrt(best);
  }
  return out;
}

export interface Leakage {
  /** Σ max(s,0) over D */
  positiveMass: number;
  /** share of the positive support mass at distance > r px from the RoI; NaN when there is no positive mass */
  farShare: number;
  /** share of the positive support mass outside a known causal region (tiny-model tests); undefined when none is given */
  outsideCausal?: number;
}

export function leakage(support: Float32Array, domain: Uint32Array, dist: Float32Array, radius: number, causal?: Uint8Array): Leakage {
  let mass = 0,
    far = 0,
    outside = 0;
  for (const p of domain) {
    const s = support[p];
    if (!(s > 0)) continue;
    mass += s;
    if (dist[p] > radius) far += s;
    if (causal && !causal[p]) outside += s;
  }
  const out: Leakage = { positiveMass: mass, farShare: mass > 0 ? far / mass : Number.NaN };
  if (causal) out.outsideCausal = mass > 0 ? outside / mass : Number.NaN;
  return out;
}

/** Gini coefficient of |v| over the domain: 0 = uniform, → 1 = all mass on one pixel; NaN for an all-zero map. */
export function gini(values: Float32Array, domain: Uint32Array): number {
  const xs = Float64Array.from(domain, (p) => Math.abs(values[p])).sort();
  const n = xs.length;
  let sum = 0,
    weighted = 0;
  for (let i = 0; i < n; i++) {
    sum += xs[i];
    weighted += (2 * (i + 1) - n - 1) * xs[i];
  }
  return sum > 0 ? weighted / (n * sum) : Number.NaN;
}

/** Spearman rank correlation (average ranks for ties, then Pearson) of two maps over the domain; NaN if either is constant. */
export function spearman(a: Float32Array, b: Float32Array, domain: Uint32Array): number {
  const ra = averageRanks(Float64Array.from(domain, (p) => a[p])).ranks;
  const rb = averageRanks(Float64Array.from(domain, (p) => b[p])).ranks;
  return pearson(ra, rb);
}

export function pearson(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  let ma = 0,
    mb = 0;
  for (let i = 0; i < n; i++) {
    ma += a[i];
    mb += b[i];
  }
  ma /= n;
  mb /= n;
  let sab = 0,
    saa = 0,
    sbb = 0;
  for (let i = 0; i < n; i++) {
    const da = a[i] - ma,
      db = b[i] - mb;
    sab += da * db;
    saa += da * da;
    sbb += db * db;
  }
  return saa > 0 && sbb > 0 ? sab / Math.sqrt(saa * sbb) : Number.NaN;
}

/** Trapezoid area under y over x = k/K, k = 0..K (the mean height of the curve). */
export function trapezoidAuc(y: ArrayLike<number>): number {
  const K = y.length - 1;
  let s = 0;
  for (let k = 0; k < K; k++) s += (y[k] + y[k + 1]) / 2;
  return s / K;
}

/** Mean and sample sd of the finite values (NaN entries are skipped and counted out). */
export function meanSd(xs: readonly number[]): { mean: number; sd: number; n: number } {
  const v = xs.filter((x) => Number.isFinite(x));
  const n = v.length;
  if (n === 0) return { mean: Number.NaN, sd: Number.NaN, n };
  const mean = v.reduce((s, x) => s + x, 0) / n;
  const sd = n > 1 ? Math.sqrt(v.reduce((s, x) => s + (x - mean) ** 2, 0) / (n - 1)) : Number.NaN;
  return { mean, sd, n };
}

/** Median and quartiles (linear interpolation) of the finite values. */
export function quartiles(xs: readonly number[]): [number, number, number, number, number] {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return [NaN, NaN, NaN, NaN, NaN];
  const q = (f: number) => {
    const pos = f * (v.length - 1),
      lo = Math.floor(pos),
      hi = Math.ceil(pos);
    return v[lo] + (v[hi] - v[lo]) * (pos - lo);
  };
  return [v[0], q(0.25), q(0.5), q(0.75), v[v.length - 1]];
}
