/**
 * The units every method's map is ranked on by the benchmark (`--rank-units`): the explained domain D
 * partitioned into grid blocks (clipped to D: a block the RoI cuts keeps its pixels outside the RoI),
 * SLIC superpixels of the image (likewise cut by the RoI), or single pixels (the published run's
 * protocol). The partition depends on the image and the RoI only, never on the method, so every
 * method and every control is ranked on the same units.
 */

import type { RasterImage } from "../data/image.js";
import { fail } from "../errors.js";
import { SLIC_DEFAULTS, slic } from "../explain/partition.js";

export type RankUnits = { kind: "pixel" } | { kind: "block"; size: number } | { kind: "superpixel"; segments: number };

export const RANK_UNITS_DEFAULT: RankUnits = { kind: "block", size: 16 };

/** `pixel`, `block:N` or `superpixel:N`. */
export function parseRankUnits(spec: string): RankUnits {
  const s = spec.trim();
  if (s === "pixel") return { kind: "pixel" };
  const m = /^(block|superpixel):(\d+)$/.exec(s);
  const n = m ? Number(m[2]) : NaN;
  if (!m || !(n >= 1))
    fail(
      `--rank-units '${spec}' is not pixel, block:N or superpixel:N`,
      "use --rank-units block:16 (the default), superpixel:100 or pixel (the published run's protocol)",
    );
  if (m[1] === "superpixel" && n < 2) fail(`--rank-units superpixel:${n} needs at least 2 superpixels`, "use --rank-units superpixel:100");
  return m[1] === "block" ? { kind: "block", size: n } : { kind: "superpixel", segments: n };
}

export function rankUnitsName(r: RankUnits): string {
  return r.kind === "pixel" ? "pixel" : r.kind === "block" ? `block:${r.size}` : `superpixel:${r.segments}`;
}

/** Why the units cannot be made on a height × width input, if they cannot (checked before the first cell). */
export function rankUnitsProblem(r: RankUnits, height: number, width: number): string | undefined {
  if (r.kind === "block" && r.size > Math.min(height, width)) return `--rank-units block:${r.size} is larger than the ${height}x${width} input`;
  if (r.kind === "superpixel" && r.segments > Math.floor((height * width) / 4))
    return `--rank-units superpixel:${r.segments} asks for more than ${Math.floor((height * width) / 4)} superpixels of the ${height}x${width} input`;
  return undefined;
}

/**
 * D partitioned into units, compressed rows: unit u holds pixels[start[u] .. start[u+1]) (ascending
 * flat indices) and has the id label[u] (its grid cell, superpixel or pixel index: what the seeded
 * tie-break and random order key on). Units are listed by increasing label.
 */
export interface DomainUnits {
  label: Uint32Array;
  start: Uint32Array;
  pixels: Uint32Array;
}

export const unitCount = (u: DomainUnits) => u.label.length;

/** Every domain pixel its own unit (label = pixel index). */
export function pixelUnits(domain: Uint32Array): DomainUnits {
  return { label: domain, start: Uint32Array.from({ length: domain.length + 1 }, (_, i) => i), pixels: domain };
}

/** Groups the domain's pixels by a label per image pixel. */
export function unitsFromLabelMap(labels: ArrayLike<number>, domain: Uint32Array): DomainUnits {
  const count = new Map<number, number>();
  for (const p of domain) count.set(labels[p], (count.get(labels[p]) ?? 0) + 1);
  const label = Uint32Array.from([...count.keys()].sort((a, b) => a - b));
  const start = new Uint32Array(label.length + 1);
  const slot = new Map<number, number>();
  label.forEach((l, u) => {
    start[u + 1] = start[u] + count.get(l)!;
    slot.set(l, start[u]);
  });
  const pixels = new Uint32Array(domain.length);
  // the domain is ascending, so each unit's pixels are too
  for (const p of domain) {
    const s = slot.get(labels[p])!;
    pixels[s] = p;
    slot.set(labels[p], s + 1);
  }
  return { label, start, pixels };
}

/** The grid cell of every pixel (size × size cells from the top-left corner, edge cells clipped). */
export function blockLabels(height: number, width: number, size: number): Uint32Array {
  return gridLabels([height, width], [size, size]);
}

/**
 * The grid cell of every cell of an array of `dims` (slowest axis first, row-major): cells of `size`
 * per axis from `origin` (edge cells clipped), numbered row-major. Images: 2D blocks from the top-left
 * corner; volumes: boxes of the model's box from the corner of the volume's part of it (cells before
 * the origin, in the padding, join the first cell of their axis: they are never in the domain).
 */
export function gridLabels(dims: readonly number[], size: readonly number[], origin: readonly number[] = dims.map(() => 0)): Uint32Array {
  const per = dims.map((d, a) => Math.max(1, Math.ceil((d - origin[a]) / size[a])));
  const at = dims.map(() => 0);
  const out = new Uint32Array(dims.reduce((a, b) => a * b, 1));
  for (let p = 0; p < out.length; p++) {
    let label = 0;
    for (let a = 0; a < dims.length; a++) label = label * per[a] + Math.min(per[a] - 1, Math.max(0, Math.floor((at[a] - origin[a]) / size[a])));
    out[p] = label;
    for (let a = dims.length - 1; a >= 0 && ++at[a] === dims[a]; a--) at[a] = 0;
  }
  return out;
}

/** The units of `r` over the domain of one (image, RoI); `image` is the model-input image (superpixels). */
export function domainUnits(r: RankUnits, domain: Uint32Array, height: number, width: number, image?: RasterImage): DomainUnits {
  if (r.kind === "pixel") return pixelUnits(domain);
  const problem = rankUnitsProblem(r, height, width);
  if (problem) fail(problem, "use --rank-units block:16 or a smaller size");
  if (r.kind === "block") return unitsFromLabelMap(blockLabels(height, width, r.size), domain);
  if (!image) throw new Error("superpixel rank units need the image");
  return unitsFromLabelMap(slic(image, { segments: r.segments, compactness: SLIC_DEFAULTS.compactness }).labels, domain);
}
