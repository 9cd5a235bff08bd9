/**
 * Where a stack of slices lies: slices ordered by Image Position projected on the slice normal (the
 * cross product of the Image Orientation's row and column directions), the spacing between them
 * from those positions, and the voxel → RAS+ affine. A stack that is not one regular grid (mixed
 * orientations or sizes, two slices at one position, a missing slice) is refused, naming where.
 */
import { fail } from "../../../errors.js";
import type { FramePlane } from "./attributes.js";

export interface PlacedSlice {
  plane: FramePlane;
  rows: number;
  columns: number;
  /** how the slice is named in messages (file, and frame for multi-frame files) */
  label: string;
}

export interface StackGeometry<S> {
  /** the slices in order along the normal (k = 0 first) */
  slices: S[];
  dims: [number, number, number];
  spacing: [number, number, number];
  affine: number[];
}

/** Direction cosines may be written with 6 digits or fewer. */
const ORIENTATION_TOLERANCE = 1e-3;
/** A step may differ from the median step by this fraction before it counts as a gap. */
const STEP_TOLERANCE = 0.1;

const dot = (a: number[], b: number[]) => a[0]! * b[0]! + a[1]! * b[1]! + a[2]! * b[2]!;
const cross = (a: number[], b: number[]) => [a[1]! * b[2]! - a[2]! * b[1]!, a[2]! * b[0]! - a[0]! * b[2]!, a[0]! * b[1]! - a[1]! * b[0]!];
const mm = (v: number) => Number(v.toFixed(3)).toString();
const point = (p: number[]) => `(${p.map(mm).join(", ")})`;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** The slice normal of an orientation (unit vector, LPS). */
export function sliceNormal(orientation: number[]): number[] {
  return cross(orientation.slice(0, 3), orientation.slice(3, 6));
}

/**
 * Order slices and derive the grid. `what` names the stack in messages ("series 1.2.3 in folder x").
 */
export function stackGeometry<S extends PlacedSlice>(input: S[], what: string): StackGeometry<S> {
  const first = input[0]!;
  const hint = "give one regular stack of slices (one series, one orientation, no missing slices)";
  for (const s of input) {
    const p = s.plane;
    if (!p.position || !p.orientation || !p.pixelSpacing)
      fail(
        `${s.label} has no ${!p.position ? "Image Position" : !p.orientation ? "Image Orientation" : "Pixel Spacing"}, so it cannot be placed in space`,
        "give an image with its geometry (CT, MR, PET ... not a secondary capture)",
      );
  }
  const ori = first.plane.orientation!;
  const row = ori.slice(0, 3);
  const col = ori.slice(3, 6);
  if (Math.abs(Math.hypot(...row) - 1) > 0.01 || Math.abs(Math.hypot(...col) - 1) > 0.01 || Math.abs(dot(row, col)) > 0.01)
    fail(`${first.label} has an Image Orientation that is not two perpendicular unit vectors`, "the file is damaged");
  const [dr, dc] = first.plane.pixelSpacing!;
  if (!(dr! > 0 && dc! > 0)) fail(`${first.label} has a Pixel Spacing that is not positive`, "the file is damaged");
  for (const s of input) {
    if (s.plane.orientation!.some((v, i) => Math.abs(v - ori[i]!) > ORIENTATION_TOLERANCE))
      fail(`${what} mixes slice orientations: ${first.label} and ${s.label} differ`, hint);
    if (s.rows !== first.rows || s.columns !== first.columns)
      fail(`${what} mixes slice sizes: ${first.label} is ${first.columns}x${first.rows}, ${s.label} is ${s.columns}x${s.rows}`, hint);
    if (s.plane.pixelSpacing!.some((v, i) => Math.abs(v - first.plane.pixelSpacing![i]!) > 1e-3 * Math.max(1, v)))
      fail(`${what} mixes pixel spacings: ${first.label} and ${s.label} differ`, hint);
  }
  const normal = sliceNormal(ori);
  const slices = [...input].sort((a, b) => dot(a.plane.position!, normal) - dot(b.plane.position!, normal));
  const along = slices.map((s) => dot(s.plane.position!, normal));
  let step: number;
  if (slices.length === 1) {
    step = first.plane.spacingBetweenSlices ?? first.plane.sliceThickness ?? 1;
    if (!(step > 0)) step = 1;
  } else {
    const steps = along.slice(1).map((a, k) => a - along[k]!);
    for (let k = 0; k < steps.length; k++)
      if (steps[k]! < 1e-4)
        fail(
          `${what} has two slices at one position ${point(slices[k + 1]!.plane.position!)}: ${slices[k]!.label} and ${slices[k + 1]!.label}`,
          "the series may hold several echoes, phases or time points; split it",
        );
    step = median(steps);
    for (let k = 0; k < steps.length; k++)
      if (Math.abs(steps[k]! - step) > STEP_TOLERANCE * step)
        fail(
          `${what} has a gap: the slices at ${point(slices[k]!.plane.position!)} and ${point(slices[k + 1]!.plane.position!)} are ${mm(steps[k]!)} mm apart, the usual step is ${mm(step)} mm (${steps[k]! > step ? "a slice is missing" : "uneven spacing"})`,
          "give the complete series, evenly spaced",
        );
    // positions must move along the normal: a tilted (sheared) stack is not a grid of this orientation
    const p0 = slices[0]!.plane.position!;
    for (const s of slices) {
      const d = s.plane.position!.map((v, i) => v - p0[i]!);
      const off = Math.hypot(dot(d, row), dot(d, col));
      if (off > STEP_TOLERANCE * step)
        fail(
          `${what} is sheared: ${s.label} is offset ${mm(off)} mm within the slice plane from the first slice (gantry tilt?)`,
          "resample the series to an orthogonal grid first",
        );
    }
  }
  const p0 = slices[0]!.plane.position!;
  // LPS columns: i along the row direction (column spacing), j along the column direction (row spacing)
  const ci = row.map((v) => v * dc!);
  const cj = col.map((v) => v * dr!);
  const ck = normal.map((v) => v * step);
  // LPS → RAS+: negate x and y
  const sign = [-1, -1, 1];
  // (+ 0 turns the -0 of a negated zero into 0)
  const affine = [0, 1, 2].flatMap((a) => [ci[a]!, cj[a]!, ck[a]!, p0[a]!].map((v) => sign[a]! * v + 0)).concat([0, 0, 0, 1]);
  return { slices, dims: [first.columns, first.rows, slices.length], spacing: [dc!, dr!, step], affine };
}
