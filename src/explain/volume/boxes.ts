/**
 * Units of a volume: boxes of a regular 3D grid over the part of the model's box that holds the
 * volume (the padding around it is not intervened on), without the boxes that overlap the RoI.
 */

import type { Placement } from "../../data/volume/volume-case.js";
import { fail } from "../../errors.js";
import { describeSize, type Size3 } from "./box-size.js";

export interface BoxUnit {
  index: number;
  /** corner in the model's box, (D, H, W) order */
  z: number;
  y: number;
  x: number;
  /** size in voxels (edge boxes are clipped) */
  depth: number;
  height: number;
  width: number;
}

export interface BoxGrid {
  units: BoxUnit[];
  /** grid boxes skipped because they overlap the RoI */
  roiCells: number;
  cells: number;
  /** the first box's corner, (D, H, W): box u is grid cell ((u.z, u.y, u.x) − origin) / stride */
  origin: [number, number, number];
}

/** Starts lo, lo+stride, ... up to the first window reaching hi (clipped there). */
function starts(lo: number, hi: number, size: number, stride: number): number[] {
  const out: number[] = [];
  for (let s = lo; ; s += stride) {
    out.push(s);
    if (s + size >= hi) return out;
  }
}

/** Per axis (D, H, W) = the volume's (k, j, i): the range [lo, hi) of box indices holding volume voxels. */
export function volumeRange(p: Placement, volumeDims: [number, number, number]): [number, number][] {
  return [2, 1, 0].map((a) => [Math.max(0, p.offset[a]), Math.min(p.box[a], p.offset[a] + volumeDims[a])]);
}

/** The grid of boxes of `size` voxels (D, H, W), every `stride` voxels, over the volume's part of the box. */
export function boxGrid(p: Placement, volumeDims: [number, number, number], size: Size3, roiInBox: Uint8Array, stride: Size3 = size): BoxGrid {
  const range = volumeRange(p, volumeDims);
  if (size.some((n, a) => !Number.isInteger(n) || n < 1 || n > range[a][1] - range[a][0]))
    fail(
      `block size ${describeSize(size)} voxels does not fit the volume's ${range.map(([lo, hi]) => hi - lo).join("x")} voxels (DxHxW) in the model's box`,
      "use a smaller --block (millimetres, or voxels with --box-unit vox)",
    );
  if (stride.some((n, a) => !Number.isInteger(n) || n < 1 || n > size[a]))
    fail(
      `stride ${describeSize(stride)} must be whole voxels in 1..the block size (${describeSize(size)})`,
      "use --stride equal to or smaller than --block",
    );
  const [bx, by] = p.box;
  const units: BoxUnit[] = [];
  let roiCells = 0,
    cells = 0;
  for (const z of starts(range[0][0], range[0][1], size[0], stride[0])) {
    for (const y of starts(range[1][0], range[1][1], size[1], stride[1])) {
      for (const x of starts(range[2][0], range[2][1], size[2], stride[2])) {
        cells++;
        const u = {
          index: units.length,
          z,
          y,
          x,
          depth: Math.min(size[0], range[0][1] - z),
          height: Math.min(size[1], range[1][1] - y),
          width: Math.min(size[2], range[2][1] - x),
        };
        if (overlaps(u, roiInBox, bx, by)) {
          roiCells++;
          continue;
        }
        units.push(u);
      }
    }
  }
  if (units.length === 0) fail("the RoI covers every block: nothing is left to intervene on", "use a smaller RoI or block size");
  return { units, roiCells, cells, origin: [range[0][0], range[1][0], range[2][0]] };
}

function overlaps(u: Omit<BoxUnit, "index">, mask: Uint8Array, bx: number, by: number): boolean {
  for (let z = u.z; z < u.z + u.depth; z++)
    for (let y = u.y; y < u.y + u.height; y++) {
      const row = (z * by + y) * bx;
      for (let x = u.x; x < u.x + u.width; x++) if (mask[row + x]) return true;
    }
  return false;
}

/** Calls fn(cell, offsetInUnit) for every cell of a unit; offsetInUnit indexes a box of `size` (D, H, W; W fastest). */
export function forEachCell(u: BoxUnit, box: [number, number, number], size: Size3, fn: (cell: number, local: number) => void): void {
  const [bx, by] = box;
  for (let dz = 0; dz < u.depth; dz++)
    for (let dy = 0; dy < u.height; dy++) {
      const row = ((u.z + dz) * by + u.y + dy) * bx + u.x;
      const local = (dz * size[1] + dy) * size[2];
      for (let dx = 0; dx < u.width; dx++) fn(row + dx, local + dx);
    }
}

/** Paints unit values over the box (overlaps averaged); cells no unit covers get `fillValue`. */
export function paintBoxes(
  box: [number, number, number],
  size: Size3,
  units: readonly BoxUnit[],
  values: (i: number) => number,
  fillValue = 0,
): Float32Array {
  const n = box[0] * box[1] * box[2];
  const sum = new Float64Array(n);
  const count = new Uint32Array(n);
  for (const u of units) {
    const v = values(u.index);
    forEachCell(u, box, size, (c) => {
      sum[c] += v;
      count[c]++;
    });
  }
  return Float32Array.from(sum, (s, i) => (count[i] ? s / count[i] : fillValue));
}
