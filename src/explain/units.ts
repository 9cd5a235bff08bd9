/** Units of the input that are intervened on. PdCR's unit is a block of a regular grid. */
import { fail } from "../errors.js";
import type { Region } from "../target/roi.js";

export interface Block {
  /** position in the list of units that are explained */
  index: number;
  row: number;
  col: number;
  height: number;
  width: number;
}

export interface BlockGrid {
  blockSize: number;
  /** blocks that are intervened on (every cell not overlapping the RoI) */
  units: Block[];
  /** cells skipped because they overlap the RoI */
  roiCells: number;
  /** all grid cells, explained or not */
  cells: number;
}

/**
 * The grid of size x size blocks over the image, in row-major order, without the blocks that
 * overlap the RoI. Edge cells of images whose size is not a multiple of the block size are
 * kept, clipped, so every pixel belongs to a unit.
 */
export function blockGrid(height: number, width: number, size: number, region: Region): BlockGrid {
  if (!Number.isInteger(size) || size < 1 || size > Math.min(height, width)) {
    fail(`block size ${size} does not fit a ${height}x${width} input`, "use --block 8 (or another size dividing the input)");
  }
  const units: Block[] = [];
  let roiCells = 0, cells = 0;
  for (let r = 0; r < height; r += size) {
    for (let c = 0; c < width; c += size) {
      cells++;
      const h = Math.min(size, height - r), w = Math.min(size, width - c);
      if (region.overlaps(r, c, h, w)) { roiCells++; continue; }
      units.push({ index: units.length, row: r, col: c, height: h, width: w });
    }
  }
  if (units.length === 0) fail("the RoI covers every block: nothing is left to intervene on", "use a smaller RoI or block size");
  return { blockSize: size, units, roiCells, cells };
}
