/** Region of interest: a rectangle or a mask, as the list of its pixels plus a bounding box. */
import { fail } from "../errors.js";
import { decimalInteger } from "../util/decimal.js";

export interface RoiRect {
  row: number;
  col: number;
  height: number;
  width: number;
}

export class Region {
  /** 1 inside the region, per pixel of the image */
  readonly inside: Uint8Array;
  /** flat pixel indices (row * width + col) of the region, row-major */
  readonly pixels: Int32Array;

  private constructor(
    readonly imageHeight: number,
    readonly imageWidth: number,
    inside: Uint8Array,
    readonly bbox: RoiRect,
    readonly kind: "rect" | "mask",
  ) {
    this.inside = inside;
    const px: number[] = [];
    for (let i = 0; i < inside.length; i++) if (inside[i]) px.push(i);
    this.pixels = Int32Array.from(px);
  }

  static rect(r: RoiRect, imageHeight: number, imageWidth: number): Region {
    for (const k of ["row", "col", "height", "width"] as const) {
      if (!Number.isInteger(r[k])) fail(`RoI ${k} must be an integer, got ${r[k]}`, "give --roi row,col,height,width in pixels");
    }
    if (r.height <= 0 || r.width <= 0) fail(`RoI is empty (${r.height}x${r.width})`, "give a positive height and width");
    if (r.row < 0 || r.col < 0 || r.row + r.height > imageHeight || r.col + r.width > imageWidth) {
      fail(
        `RoI rows ${r.row}..${r.row + r.height - 1}, cols ${r.col}..${r.col + r.width - 1} is outside the ${imageHeight}x${imageWidth} model input`,
        "RoI coordinates are in pixels of the image resized to the model input size",
      );
    }
    const inside = new Uint8Array(imageHeight * imageWidth);
    for (let y = r.row; y < r.row + r.height; y++) inside.fill(1, y * imageWidth + r.col, y * imageWidth + r.col + r.width);
    return new Region(imageHeight, imageWidth, inside, { ...r }, "rect");
  }

  static mask(mask: Uint8Array, imageHeight: number, imageWidth: number): Region {
    if (mask.length !== imageHeight * imageWidth) fail("RoI mask size does not match the model input", "resize the mask to the image");
    let r0 = Infinity,
      c0 = Infinity,
      r1 = -1,
      c1 = -1;
    for (let y = 0; y < imageHeight; y++) {
      for (let x = 0; x < imageWidth; x++) {
        if (mask[y * imageWidth + x]) {
          r0 = Math.min(r0, y);
          r1 = Math.max(r1, y);
          c0 = Math.min(c0, x);
          c1 = Math.max(c1, x);
        }
      }
    }
    if (r1 < 0) fail("RoI mask is empty (no non-zero pixel)", "draw the region of interest in the mask as 255 (or 1)");
    const inside = Uint8Array.from(mask, (v) => (v ? 1 : 0));
    return new Region(imageHeight, imageWidth, inside, { row: r0, col: c0, height: r1 - r0 + 1, width: c1 - c0 + 1 }, "mask");
  }

  get area(): number {
    return this.pixels.length;
  }

  /** true when any pixel of the rectangle lies in the region */
  overlaps(row: number, col: number, height: number, width: number): boolean {
    const b = this.bbox;
    if (row >= b.row + b.height || row + height <= b.row || col >= b.col + b.width || col + width <= b.col) return false;
    if (this.kind === "rect") return true;
    for (let y = row; y < row + height; y++) {
      for (let x = col; x < col + width; x++) if (this.inside[y * this.imageWidth + x]) return true;
    }
    return false;
  }

  describe(): string {
    const b = this.bbox;
    return this.kind === "rect"
      ? `rows ${b.row}..${b.row + b.height - 1}, cols ${b.col}..${b.col + b.width - 1} (${b.height}x${b.width})`
      : `mask of ${this.area} px in rows ${b.row}..${b.row + b.height - 1}, cols ${b.col}..${b.col + b.width - 1}`;
  }
}

/** Parses "row,col,height,width" or "row,col,size" (square). */
export function parseRoi(spec: string): RoiRect {
  const parts = spec.split(",").map((s) => s.trim());
  // Whole pixels written in digits, as in RoI CSV files.
  const nums = parts.map(decimalInteger);
  if ((parts.length !== 3 && parts.length !== 4) || nums.some((n) => n === undefined)) {
    fail(`cannot parse RoI '${spec}'`, "use --roi row,col,height,width (or row,col,size for a square), in model-input pixels");
  }
  const [row, col, height, width = height] = nums as number[];
  return { row, col, height, width };
}
