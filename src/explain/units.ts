/**
 * Units of the input that are intervened on. PdCR's unit is a block of a regular grid; superpixel
 * methods use irregular units, given as a bounding box plus the list of pixels inside it.
 */
import { fail } from "../errors.js";
import type { Region } from "../target/roi.js";

export interface Unit {
  /** position in the list of units that are explained */
  index: number;
  /** bounding box in model-input pixels */
  row: number;
  col: number;
  height: number;
  width: number;
  /** flat pixel indices (y * width + x) when the unit is not its whole bounding box (superpixels) */
  pixels?: Uint32Array;
}

/** A rectangular unit (grid block or sliding window). */
export type Block = Unit;

export type UnitKind = "block" | "window" | "superpixel" | "pixel";

/** Calls fn for every pixel of a unit (flat index into an H x W plane). */
export function forEachPixel(u: Unit, width: number, fn: (i: number) => void): void {
  if (u.pixels) {
    for (const i of u.pixels) fn(i);
    return;
  }
  for (let y = u.row; y < u.row + u.height; y++) for (let i = y * width + u.col; i < y * width + u.col + u.width; i++) fn(i);
}

export interface BlockGrid {
  blockSize: number;
  stride: number;
  /** blocks that are intervened on (every cell not overlapping the RoI) */
  units: Block[];
  /** cells skipped because they overlap the RoI */
  roiCells: number;
  /** all grid cells, explained or not */
  cells: number;
}

/** Window starts 0, stride, ... up to the first window reaching the edge (clipped there). */
function starts(extent: number, size: number, stride: number): number[] {
  const out: number[] = [];
  for (let s = 0; ; s += stride) {
    out.push(s);
    if (s + size >= extent) return out;
  }
}

/**
 * Which of block size and stride cannot tile a height x width input, if one cannot: shared by
 * blockGrid and the up-front method checks so both refuse the same settings.
 */
export function blockFitProblem(height: number, width: number, size: number, stride = size): "block" | "stride" | undefined {
  if (!Number.isInteger(size) || size < 1 || size > Math.min(height, width)) return "block";
  if (!Number.isInteger(stride) || stride < 1 || stride > size) return "stride";
  return undefined;
}

/**
 * The grid of size x size blocks over the image (windows every `stride` pixels, default
 * non-overlapping), in row-major order, without the blocks that overlap the RoI. Edge cells of
 * images whose size is not a multiple of the block size are kept, clipped, so every pixel is
 * covered.
 */
export function blockGrid(height: number, width: number, size: number, region: Region, stride = size): BlockGrid {
  const problem = blockFitProblem(height, width, size, stride);
  if (problem === "block") fail(`block size ${size} does not fit a ${height}x${width} input`, "use --block 8 (or another size dividing the input)");
  if (problem === "stride")
    fail(`stride ${stride} must be an integer in 1..${size} (the block size)`, "use --stride equal to or smaller than --block");
  const units: Block[] = [];
  let roiCells = 0,
    cells = 0;
  for (const r of starts(height, size, stride)) {
    for (const c of starts(width, size, stride)) {
      cells++;
      const h = Math.min(size, height - r),
        w = Math.min(size, width - c);
      if (region.overlaps(r, c, h, w)) {
        roiCells++;
        continue;
      }
      units.push({ index: units.length, row: r, col: c, height: h, width: w });
    }
  }
  if (units.length === 0) fail("the RoI covers every block: nothing is left to intervene on", "use a smaller RoI or block size");
  return { blockSize: size, stride, units, roiCells, cells };
}
