/**
 * Unit partitions of the model-input image for the perturbation family: SLIC superpixels and the
 * block grid. Both are deterministic functions of the image and their settings.
 *
 * The RoI is never intervened on and is not explained (PdCR's rule). The grid drops every cell
 * overlapping the RoI, exactly as `blockGrid` does for PdCR. Superpixels are large and irregular,
 * so dropping a whole superpixel that touches the RoI would leave a wide unexplained ring around
 * it: instead the RoI's pixels are cut out of every superpixel (for an RoI aligned to PdCR's
 * grid the two rules coincide). Superpixels lying entirely inside the RoI are dropped and counted
 * in `roiCells`.
 */

import type { RasterImage } from "../data/image.js";
import { fail } from "../errors.js";
import type { Region } from "../target/roi.js";
import { blockGrid, type Unit, type UnitKind } from "./units.js";

export type ColorSpace = "lab" | "rgb";

export interface SlicOptions {
  /** approximate number of superpixels (default 100) */
  segments: number;
  /** weight of spatial proximity against colour distance (default 10, as skimage for CIELAB) */
  compactness: number;
  /** colour space of the distance (default "lab"; gray images always use their intensity) */
  colorSpace?: ColorSpace;
  /** k-means iterations (default 10) */
  iterations?: number;
}

export const SLIC_DEFAULTS = { segments: 100, compactness: 10, colorSpace: "lab" as ColorSpace, iterations: 10 };

/** sRGB 0..255 → CIELAB (D65), L in 0..100. */
function rgbToLab(r: number, g: number, b: number): [number, number, number] {
  const lin = (v: number) => {
    v /= 255;
    return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  };
  const R = lin(r),
    G = lin(g),
    B = lin(b);
  const f = (t: number) => (t > 216 / 24389 ? Math.cbrt(t) : ((24389 / 27) * t + 16) / 116);
  const fx = f((0.4124564 * R + 0.3575761 * G + 0.1804375 * B) / 0.95047);
  const fy = f(0.2126729 * R + 0.7151522 * G + 0.072175 * B);
  const fz = f((0.0193339 * R + 0.119192 * G + 0.9503041 * B) / 1.08883);
  return [116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)];
}

/** Colour features per pixel, scaled so that RGB and gray also span about 0..100 like CIELAB's L. */
function features(img: RasterImage, space: ColorSpace): { f: Float64Array; k: number } {
  const n = img.width * img.height;
  if (img.channels === 1) return { f: Float64Array.from(img.data, (v) => v / 2.55), k: 1 };
  const f = new Float64Array(3 * n);
  for (let i = 0; i < n; i++) {
    const r = img.data[3 * i],
      g = img.data[3 * i + 1],
      b = img.data[3 * i + 2];
    const v = space === "lab" ? rgbToLab(r, g, b) : [r / 2.55, g / 2.55, b / 2.55];
    f[3 * i] = v[0];
    f[3 * i + 1] = v[1];
    f[3 * i + 2] = v[2];
  }
  return { f, k: 3 };
}

/**
 * SLIC superpixels (Achanta et al. 2012): k-means in (colour, position) with distance
 * d_c² + (d_s / S)² · m², each centre searching a 2S×2S window, then a connectivity pass that
 * merges fragments smaller than a quarter of the expected size into their neighbour. Returns one
 * label per pixel, 0..count-1 numbered in raster order of first appearance.
 */
export function slic(img: RasterImage, opts: SlicOptions): { labels: Int32Array; count: number } {
  const { segments, compactness } = opts;
  const space = opts.colorSpace ?? SLIC_DEFAULTS.colorSpace;
  const iterations = opts.iterations ?? SLIC_DEFAULTS.iterations;
  const H = img.height,
    W = img.width,
    n = H * W;
  if (!Number.isInteger(segments) || segments < 2 || segments > n / 4)
    fail(`segments must be an integer in 2..${Math.floor(n / 4)}, got ${segments}`, "use --segments 100");
  if (!(compactness > 0) || !Number.isFinite(compactness))
    fail(`compactness must be a positive number, got ${compactness}`, "use --compactness 10 (larger = squarer superpixels)");
  if (space !== "lab" && space !== "rgb") fail(`color space must be lab or rgb, got '${space}'`);
  const { f, k } = features(img, space);
  const S = Math.sqrt(n / segments);
  const ny = Math.max(1, Math.round(H / S)),
    nx = Math.max(1, Math.round(W / S));
  const K = ny * nx;
  // centre = [y, x, features...]
  const D = 2 + k;
  const centres = new Float64Array(K * D);
  for (let a = 0; a < ny; a++) {
    for (let b = 0; b < nx; b++) {
      const c = (a * nx + b) * D;
      // centre of the grid cell (fractional: a flat image gives exactly the cells)
      const cy = ((a + 0.5) * H) / ny - 0.5,
        cx = ((b + 0.5) * W) / nx - 0.5;
      centres[c] = cy;
      centres[c + 1] = cx;
      const p = Math.round(cy) * W + Math.round(cx);
      for (let j = 0; j < k; j++) centres[c + 2 + j] = f[p * k + j];
    }
  }
  const labels = new Int32Array(n).fill(-1);
  const dist = new Float64Array(n);
  const spatial = (compactness / S) ** 2;
  const R = Math.ceil(S);
  const sums = new Float64Array(K * D),
    counts = new Float64Array(K);
  for (let it = 0; it < iterations; it++) {
    dist.fill(Infinity);
    for (let c = 0; c < K; c++) {
      const o = c * D,
        cy = centres[o],
        cx = centres[o + 1];
      const y0 = Math.max(0, Math.floor(cy - R)),
        y1 = Math.min(H - 1, Math.ceil(cy + R));
      const x0 = Math.max(0, Math.floor(cx - R)),
        x1 = Math.min(W - 1, Math.ceil(cx + R));
      for (let y = y0; y <= y1; y++) {
        for (let x = x0; x <= x1; x++) {
          const p = y * W + x;
          let dc = 0;
          for (let j = 0; j < k; j++) dc += (f[p * k + j] - centres[o + 2 + j]) ** 2;
          const d = dc + ((y - cy) ** 2 + (x - cx) ** 2) * spatial;
          if (d < dist[p]) {
            dist[p] = d;
            labels[p] = c;
          }
        }
      }
    }
    sums.fill(0);
    counts.fill(0);
    for (let p = 0; p < n; p++) {
      const c = labels[p];
      if (c < 0) continue;
      const o = c * D;
      sums[o] += Math.floor(p / W);
      sums[o + 1] += p % W;
      for (let j = 0; j < k; j++) sums[o + 2 + j] += f[p * k + j];
      counts[c]++;
    }
    for (let c = 0; c < K; c++) if (counts[c] > 0) for (let j = 0; j < D; j++) centres[c * D + j] = sums[c * D + j] / counts[c];
  }
  return enforceConnectivity(labels, H, W, Math.max(1, Math.floor(n / K / 4)));
}

/**
 * Relabels 4-connected components in raster order; a component smaller than minSize joins the
 * label of the component it touches first (above or left of its first pixel).
 */
function enforceConnectivity(labels: Int32Array, H: number, W: number, minSize: number): { labels: Int32Array; count: number } {
  const n = H * W;
  const out = new Int32Array(n).fill(-1);
  const queue = new Int32Array(n);
  let next = 0;
  for (let start = 0; start < n; start++) {
    if (out[start] >= 0) continue;
    const y0 = Math.floor(start / W),
      x0 = start % W;
    const adjacent = x0 > 0 ? out[start - 1] : y0 > 0 ? out[start - W] : -1;
    const own = labels[start];
    let head = 0,
      tail = 0;
    queue[tail++] = start;
    out[start] = next;
    while (head < tail) {
      const p = queue[head++];
      const y = Math.floor(p / W),
        x = p % W;
      const nb = [x > 0 ? p - 1 : -1, x < W - 1 ? p + 1 : -1, y > 0 ? p - W : -1, y < H - 1 ? p + W : -1];
      for (const q of nb)
        if (q >= 0 && out[q] < 0 && labels[q] === own) {
          out[q] = next;
          queue[tail++] = q;
        }
    }
    if (tail < minSize && adjacent >= 0) for (let i = 0; i < tail; i++) out[queue[i]] = adjacent;
    else next++;
  }
  return { labels: out, count: next };
}

export interface Partition {
  /** explained units (RoI pixels excluded), indexed 0..units.length-1 */
  units: Unit[];
  unitKind: UnitKind;
  /** units of the partition left out because of the RoI (see the module comment) */
  roiCells: number;
  /** settings that decide the partition, for provenance and checkpoint keys */
  describe: Record<string, unknown>;
}

/** Units from a label map: every label's pixels outside the region, as a pixel list with its bounding box. */
export function unitsFromLabels(labels: Int32Array, count: number, W: number, region: Region): { units: Unit[]; roiCells: number } {
  const px: number[][] = Array.from({ length: count }, () => []);
  let roiCells = 0;
  for (let p = 0; p < labels.length; p++) if (!region.inside[p]) px[labels[p]].push(p);
  const seen = new Uint8Array(count);
  for (let p = 0; p < labels.length; p++) seen[labels[p]] = 1;
  const units: Unit[] = [];
  for (let l = 0; l < count; l++) {
    if (px[l].length === 0) {
      if (seen[l]) roiCells++;
      continue;
    }
    let r0 = Infinity,
      r1 = -1,
      c0 = Infinity,
      c1 = -1;
    for (const p of px[l]) {
      const y = Math.floor(p / W),
        x = p % W;
      r0 = Math.min(r0, y);
      r1 = Math.max(r1, y);
      c0 = Math.min(c0, x);
      c1 = Math.max(c1, x);
    }
    units.push({ index: units.length, row: r0, col: c0, height: r1 - r0 + 1, width: c1 - c0 + 1, pixels: Uint32Array.from(px[l]) });
  }
  if (units.length === 0) fail("the RoI covers the whole image: nothing is left to intervene on", "use a smaller RoI");
  return { units, roiCells };
}

export function superpixelPartition(img: RasterImage, region: Region, opts: SlicOptions): Partition {
  const { labels, count } = slic(img, opts);
  const { units, roiCells } = unitsFromLabels(labels, count, img.width, region);
  const o = { ...SLIC_DEFAULTS, ...opts };
  return {
    units,
    unitKind: "superpixel",
    roiCells,
    describe: {
      partition: "superpixels",
      segments: o.segments,
      compactness: o.compactness,
      colorSpace: o.colorSpace,
      iterations: o.iterations,
      superpixels: count,
    },
  };
}

export function gridPartition(height: number, width: number, block: number, region: Region): Partition {
  const g = blockGrid(height, width, block, region);
  return { units: g.units, unitKind: "block", roiCells: g.roiCells, describe: { partition: "grid", block } };
}

export type PartitionKind = "superpixels" | "grid";

export interface PartitionOptions {
  partition: PartitionKind;
  segments: number;
  compactness: number;
  colorSpace: ColorSpace;
  block: number;
}

export function makePartition(img: RasterImage, region: Region, o: PartitionOptions): Partition {
  if (o.partition === "grid") return gridPartition(img.height, img.width, o.block, region);
  if (o.partition !== "superpixels") fail(`partition must be superpixels or grid, got '${o.partition}'`);
  return superpixelPartition(img, region, { segments: o.segments, compactness: o.compactness, colorSpace: o.colorSpace });
}
