/**
 * Where the slices of a volume mosaic come from and how they lie on the page: which voxel axis each
 * display plane cuts, which way it is drawn, which slices through the RoI are shown, and the size of
 * each panel at the voxels' physical aspect ratio.
 *
 * Display convention: radiological, as most viewers (ITK-SNAP, OsiriX, PACS): the patient's right is on
 * the image's left in axial and coronal views, anterior is up in axial views, superior is up in coronal
 * and sagittal views, and anterior is on the left in sagittal views. The patient directions come from the
 * affine's axis codes (voxel/volume.ts axisCodes); without an affine the voxel axes are taken as RAS+
 * (i to the right, j anterior, k superior), NIfTI's world convention.
 */
import { axisCodes } from "../data/volume/volume.js";

export type Orientation = "axial" | "coronal" | "sagittal";
export type Axis = 0 | 1 | 2;

/** A voxel axis drawn along the page: `flip` when the voxel index decreases to the right (columns) or downward (rows). */
export interface PlaneAxis {
  axis: Axis;
  flip: boolean;
}

export interface Plane {
  orientation: Orientation;
  /** the voxel axis held fixed by a slice (k for an axial slice of a RAS volume) */
  normal: Axis;
  col: PlaneAxis;
  row: PlaneAxis;
  /** patient direction at the panel's left, right, top and bottom edges */
  edges: { left: string; right: string; top: string; bottom: string };
}

/** How the voxel axes point in the patient: `world[a]` is 0 (R–L), 1 (A–P) or 2 (S–I); `toward[a]` true when the index grows toward R, A or S. */
export interface PatientAxes {
  world: [Axis, Axis, Axis];
  toward: [boolean, boolean, boolean];
  /** false when the affine is too oblique to name one direction per axis (then the voxel axes are taken as RAS+) */
  fromAffine: boolean;
}

const LETTERS: Record<string, [Axis, boolean]> = { R: [0, true], L: [0, false], A: [1, true], P: [1, false], S: [2, true], I: [2, false] };

export function patientAxes(affine?: number[]): PatientAxes {
  const ras: PatientAxes = { world: [0, 1, 2], toward: [true, true, true], fromAffine: false };
  if (!affine) return ras;
  const codes = [...axisCodes(affine)].map((c) => LETTERS[c]);
  const world = codes.map((c) => c[0]) as [Axis, Axis, Axis];
  // An oblique affine can point two voxel axes at the same patient axis: no plane is then a voxel slice.
  if (new Set(world).size !== 3) return ras;
  return { world, toward: codes.map((c) => c[1]) as [boolean, boolean, boolean], fromAffine: true };
}

/** [normal, column, row] patient axes of each plane, and the edge letters of the column and row axes. */
const PLANES: Record<Orientation, [Axis, Axis, Axis]> = { axial: [2, 0, 1], coronal: [1, 0, 2], sagittal: [0, 1, 2] };
const EDGES: Record<Axis, [string, string]> = { 0: ["R", "L"], 1: ["A", "P"], 2: ["S", "I"] };

export const ORIENTATIONS: Orientation[] = ["axial", "coronal", "sagittal"];

export function plane(orientation: Orientation, p: PatientAxes): Plane {
  const voxelAxis = (w: Axis) => p.world.indexOf(w) as Axis;
  // Every page axis runs toward the patient's left, posterior or inferior (radiological: the patient's
  // right on the left, anterior and superior up), so an axis whose index grows toward R, A or S is flipped.
  const along = (w: Axis): PlaneAxis => ({ axis: voxelAxis(w), flip: p.toward[voxelAxis(w)] });
  const [n, c, r] = PLANES[orientation];
  return {
    orientation,
    normal: voxelAxis(n),
    col: along(c),
    row: along(r),
    edges: { left: EDGES[c][0], right: EDGES[c][1], top: EDGES[r][0], bottom: EDGES[r][1] },
  };
}

/** Inclusive voxel bounds per axis, [i, j, k]. */
export type Box = [[number, number], [number, number], [number, number]];

/** The RoI's bounding box, or undefined when the mask is empty. */
export function roiBox(roi: Uint8Array, dims: [number, number, number]): Box | undefined {
  const [nx, ny, nz] = dims;
  const lo = [nx, ny, nz],
    hi = [-1, -1, -1];
  for (let k = 0, v = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++, v++) {
        if (!roi[v]) continue;
        if (i < lo[0]) lo[0] = i;
        if (i > hi[0]) hi[0] = i;
        if (j < lo[1]) lo[1] = j;
        if (j > hi[1]) hi[1] = j;
        if (k < lo[2]) lo[2] = k;
        if (k > hi[2]) hi[2] = k;
      }
    }
  }
  if (hi[0] < 0) return undefined;
  return [
    [lo[0], hi[0]],
    [lo[1], hi[1]],
    [lo[2], hi[2]],
  ];
}

/** The slice through the middle of [lo, hi] (the upper one of two middles). */
export function centreSlice(lo: number, hi: number): number {
  return Math.round((lo + hi) / 2);
}

/**
 * `n` slices evenly spaced through [lo, hi]: the middles of n equal parts of the extent, so the ends
 * (where the RoI is thinnest) are not shown, and always the centre slice; ascending, without repeats.
 */
export function slicesThrough(lo: number, hi: number, n: number): number[] {
  const c = centreSlice(lo, hi);
  const picks = Array.from({ length: n }, (_, t) => Math.round(lo - 0.5 + ((hi - lo + 1) * (t + 0.5)) / n));
  // For an even n the middle falls between two picks: the nearest one moves to the centre.
  let nearest = 0;
  for (let t = 1; t < n; t++) if (Math.abs(picks[t] - c) < Math.abs(picks[nearest] - c)) nearest = t;
  picks[nearest] = c;
  return [...new Set(picks)].sort((a, b) => a - b);
}

export interface Panel {
  plane: Plane;
  /** voxel index along the plane's normal */
  slice: number;
  centre: boolean;
  /** page position and size in pixels */
  x: number;
  y: number;
  width: number;
  height: number;
}

/** Panel width and height in pixels for a field of view `fov` at `pxPerMm`: the physical extent, so anisotropic voxels keep their shape. */
export function panelSize(pl: Plane, fov: Box, spacing: [number, number, number], pxPerMm: number): { width: number; height: number } {
  const mm = (a: Axis) => (fov[a][1] - fov[a][0] + 1) * spacing[a];
  return { width: Math.max(1, Math.round(mm(pl.col.axis) * pxPerMm)), height: Math.max(1, Math.round(mm(pl.row.axis) * pxPerMm)) };
}

/** One scale for every panel: the longest panel side of the three planes is `longest` pixels. */
export function pixelsPerMm(fov: Box, spacing: [number, number, number], longest: number): number {
  const mm = [0, 1, 2].map((a) => (fov[a][1] - fov[a][0] + 1) * spacing[a]);
  return longest / Math.max(...mm);
}

/**
 * For each page column (or row) of a panel of `pixels`, the voxel index along `ax` it shows: nearest
 * voxel to the pixel's centre over the field of view [lo, hi], reversed when the axis is flipped.
 */
export function pixelToVoxel(ax: PlaneAxis, fov: Box, pixels: number): Int32Array {
  const [lo, hi] = fov[ax.axis];
  const n = hi - lo + 1;
  const out = new Int32Array(pixels);
  for (let p = 0; p < pixels; p++) {
    const t = Math.min(n - 1, Math.floor(((p + 0.5) * n) / pixels));
    out[p] = ax.flip ? hi - t : lo + t;
  }
  return out;
}
