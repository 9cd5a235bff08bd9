/**
 * A box RoI in a volume, `--roi z,y,x,d,h,w`: voxels in a 3D model's (k, j, i) = (D, H, W) order, the
 * corner first and then the size. The 2D form (row,col,height,width) stays in roi.ts.
 */
import { fail } from "../errors.js";
import { decimalInteger } from "../util/decimal.js";

export interface VolumeRoiBox {
  /** first slice (k), row (j), column (i) */
  z: number;
  y: number;
  x: number;
  /** size in slices, rows, columns */
  depth: number;
  height: number;
  width: number;
}

const HINT = "use --roi z,y,x,d,h,w for a volume: corner and size in voxels, in (k, j, i) = slice, row, column order";

/** Parses "z,y,x,d,h,w" (six whole numbers). */
export function parseVolumeRoi(spec: string): VolumeRoiBox {
  const parts = spec.split(",").map((s) => s.trim());
  const nums = parts.map(decimalInteger);
  if (parts.length !== 6 || nums.some((n) => n === undefined)) fail(`cannot parse volume RoI '${spec}'`, HINT);
  const [z, y, x, depth, height, width] = nums as number[];
  return { z, y, x, depth, height, width };
}

/** `box`, if it is a non-empty box inside a volume of dims [nx, ny, nz] (the Volume's i, j, k order). */
export function checkVolumeRoi(box: VolumeRoiBox, dims: [number, number, number]): VolumeRoiBox {
  const [nx, ny, nz] = dims;
  if (box.depth <= 0 || box.height <= 0 || box.width <= 0)
    fail(`volume RoI is empty (${box.depth}x${box.height}x${box.width} voxels)`, "give a positive depth, height and width");
  if (box.z < 0 || box.y < 0 || box.x < 0 || box.z + box.depth > nz || box.y + box.height > ny || box.x + box.width > nx) {
    fail(`volume RoI ${describeVolumeRoi(box)} is outside the volume of ${nz}x${ny}x${nx} voxels (DxHxW)`, HINT);
  }
  return box;
}

/** "z 10..19, y 20..29, x 5..14 (10x10x10)" */
export function describeVolumeRoi(b: VolumeRoiBox): string {
  return `z ${b.z}..${b.z + b.depth - 1}, y ${b.y}..${b.y + b.height - 1}, x ${b.x}..${b.x + b.width - 1} (${b.depth}x${b.height}x${b.width})`;
}

/** 1 inside the box, in the Volume layout (voxel (i, j, k) at (k * ny + j) * nx + i); the box is checked first. */
export function volumeRoiMask(box: VolumeRoiBox, dims: [number, number, number]): Uint8Array {
  checkVolumeRoi(box, dims);
  const [nx, ny, nz] = dims;
  const out = new Uint8Array(nx * ny * nz);
  for (let k = box.z; k < box.z + box.depth; k++) {
    for (let j = box.y; j < box.y + box.height; j++) {
      const row = (k * ny + j) * nx;
      out.fill(1, row + box.x, row + box.x + box.width);
    }
  }
  return out;
}
