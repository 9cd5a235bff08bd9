/** Whether two volumes lie on the same voxel grid (a mask must, to be read voxel for voxel against its image). */
import { fail } from "../../errors.js";
import { describeGeometry, describePlacement, type Volume } from "./volume.js";

/** Affine entries may differ by this much (mm, or mm per voxel) and still be the same grid: float32 headers round. */
export const AFFINE_TOLERANCE_MM = 1e-3;

type Grid = Pick<Volume, "dims" | "spacing" | "affine">;

export function sameGeometry(a: Grid, b: Grid, tolerance = AFFINE_TOLERANCE_MM): boolean {
  return a.dims.every((n, i) => n === b.dims[i]) && a.affine.every((x, i) => Math.abs(x - b.affine[i]) <= tolerance);
}

/**
 * Refuses, in one line naming both grids, a mask whose dims or affine differ from its image's.
 * `names` are how the two are called in the message, e.g. ["image a.nii.gz", "mask b.nii.gz"].
 */
export function checkSameGeometry(image: Grid, mask: Grid, names: [string, string]): void {
  if (sameGeometry(image, mask)) return;
  const what = image.dims.every((n, i) => n === mask.dims[i]) ? "affine" : "dims";
  const grid = (v: Grid): string => `${describeGeometry(v)}, ${describePlacement(v)}`;
  fail(
    `${names[1]} is not on the voxel grid of ${names[0]} (different ${what}): ${names[0]} is ${grid(image)}; ${names[1]} is ${grid(mask)}`,
    "the mask must have the image's dims and affine: resample it onto the image (e.g. 3D Slicer's Resample Image (BRAINS), or nibabel.processing.resample_from_to with order=0)",
  );
}
