/**
 * The voxel → world affine of a NIfTI header, and the qform parameters of an affine (for writing).
 *
 * Rule (as nibabel and ITK read files): the sform when sform_code > 0, else the qform when
 * qform_code > 0, else the NIfTI "method 1" scaling diag(pixdim[1..3]) with the origin at voxel 0.
 * (nifti-reader-js prefers the qform when its code is the larger; segcause follows the rule above, so
 * a map written with the sform overlays the input in every viewer.) nibabel's fallback for files with
 * neither transform is Analyze's flipped, centred affine; such files carry no world placement at all.
 * World units are millimetres: a header stating metres or micrometres (xyzt_units) is converted, as
 * ITK does, so block sizes in mm mean the same on every volume.
 */
import { fail } from "../../errors.js";
import type { NiftiHeader } from "./nifti-header.js";

export type AffineSource = "sform" | "qform" | "pixdim";

/** Row-major 4x4 affine of `h` and which of its transforms it came from. */
export function niftiAffine(h: NiftiHeader, bytes: Uint8Array, path: string): { affine: number[]; from: AffineSource } {
  const f = h.fields;
  let affine: number[];
  let from: AffineSource;
  if (f.sform_code > 0) {
    affine = [...srows(h, bytes), 0, 0, 0, 1];
    from = "sform";
  } else if (f.qform_code > 0) {
    affine = f.getQformMat().flat();
    from = "qform";
  } else {
    const [sx, sy, sz] = [1, 2, 3].map((i) => usablePixdim(f.pixDims[i]));
    affine = [sx, 0, 0, 0, 0, sy, 0, 0, 0, 0, sz, 0, 0, 0, 0, 1];
    from = "pixdim";
  }
  if (affine.some((x) => !Number.isFinite(x)) || Math.abs(det3(affine)) < 1e-12) {
    fail(
      `${path} has an unusable ${from} (${from === "pixdim" ? "voxel sizes" : `${from}_code ${from === "sform" ? f.sform_code : f.qform_code}`}): its affine is singular or not finite`,
      "fix the header's transform (e.g. nibabel: img.set_sform(affine, code=1)) and save the file again",
    );
  }
  const mm = MM_PER_UNIT[f.xyzt_units & 7] ?? 1;
  // -0 (from a flipped axis times 0) is 0: the same affine whatever transform it came from.
  return { affine: affine.map((x, n) => (x === 0 ? 0 : n < 12 ? x * mm : x)), from };
}

/** Millimetres per spatial unit code of xyzt_units (0 unknown and 2 mm are taken as mm). */
const MM_PER_UNIT: Record<number, number> = { 1: 1000, 3: 0.001 };

/** srow_x, srow_y, srow_z (12 numbers) from the raw header: float32 at 280 (NIfTI-1), float64 at 400 (NIfTI-2). */
function srows(h: NiftiHeader, bytes: Uint8Array): number[] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  return Array.from({ length: 12 }, (_, n) =>
    h.version === 1 ? dv.getFloat32(280 + 4 * n, h.littleEndian) : dv.getFloat64(400 + 8 * n, h.littleEndian),
  );
}

/** A voxel size of 0, negative or not finite counts as 1 mm (as nifti1_io does). */
function usablePixdim(p: number): number {
  return Number.isFinite(p) && p > 0 ? p : 1;
}

function det3(a: number[]): number {
  return a[0] * (a[5] * a[10] - a[6] * a[9]) - a[1] * (a[4] * a[10] - a[6] * a[8]) + a[2] * (a[4] * a[9] - a[5] * a[8]);
}

/** Voxel sizes in mm: the lengths of the affine's first three columns. */
export function spacingOfAffine(affine: number[]): [number, number, number] {
  const col = (c: number): number => Math.hypot(affine[c], affine[4 + c], affine[8 + c]);
  return [col(0), col(1), col(2)];
}

export interface Qform {
  b: number;
  c: number;
  d: number;
  /** +1 or -1: -1 when the axes are left-handed (the third column is negated) */
  qfac: number;
  pixdim: [number, number, number];
  offset: [number, number, number];
}

/**
 * The qform parameters that reproduce `affine` (nifti1_io's nifti_mat44_to_quatern), or undefined when
 * its columns are not orthogonal: a qform holds only rotations and voxel sizes, so a sheared affine
 * lives in the sform alone.
 */
export function qformOfAffine(affine: number[]): Qform | undefined {
  const pixdim = spacingOfAffine(affine);
  const cols = [0, 1, 2].map((c) => [affine[c] / pixdim[c], affine[4 + c] / pixdim[c], affine[8 + c] / pixdim[c]]);
  const dot = (u: number[], v: number[]): number => u[0] * v[0] + u[1] * v[1] + u[2] * v[2];
  if (Math.abs(dot(cols[0], cols[1])) > 1e-4 || Math.abs(dot(cols[0], cols[2])) > 1e-4 || Math.abs(dot(cols[1], cols[2])) > 1e-4) return undefined;
  // r[row][col], proper rotation: a left-handed frame negates the third column and records qfac = -1.
  const r = [0, 1, 2].map((row) => [cols[0][row], cols[1][row], cols[2][row]]);
  const handed = det3([...r[0], 0, ...r[1], 0, ...r[2], 0]);
  const qfac = handed < 0 ? -1 : 1;
  if (qfac < 0) for (const row of r) row[2] = -row[2];
  let a = r[0][0] + r[1][1] + r[2][2] + 1;
  let b: number, c: number, d: number;
  if (a > 0.5) {
    a = 0.5 * Math.sqrt(a);
    b = (0.25 * (r[2][1] - r[1][2])) / a;
    c = (0.25 * (r[0][2] - r[2][0])) / a;
    d = (0.25 * (r[1][0] - r[0][1])) / a;
  } else {
    const xd = 1 + r[0][0] - (r[1][1] + r[2][2]);
    const yd = 1 + r[1][1] - (r[0][0] + r[2][2]);
    const zd = 1 + r[2][2] - (r[0][0] + r[1][1]);
    if (xd > 1) {
      b = 0.5 * Math.sqrt(xd);
      c = (0.25 * (r[0][1] + r[1][0])) / b;
      d = (0.25 * (r[0][2] + r[2][0])) / b;
      a = (0.25 * (r[2][1] - r[1][2])) / b;
    } else if (yd > 1) {
      c = 0.5 * Math.sqrt(yd);
      b = (0.25 * (r[0][1] + r[1][0])) / c;
      d = (0.25 * (r[1][2] + r[2][1])) / c;
      a = (0.25 * (r[0][2] - r[2][0])) / c;
    } else {
      d = 0.5 * Math.sqrt(zd);
      b = (0.25 * (r[0][2] + r[2][0])) / d;
      c = (0.25 * (r[1][2] + r[2][1])) / d;
      a = (0.25 * (r[1][0] - r[0][1])) / d;
    }
    if (a < 0) [b, c, d] = [-b, -c, -d];
  }
  return { b, c, d, qfac, pixdim, offset: [affine[3], affine[7], affine[11]] };
}
