/**
 * Reorientation: the exact permutation/flip of a volume's voxel axes that makes them point along given
 * axis codes (e.g. an LPS DICOM series brought to a model's RAS), as nibabel's io_orientation /
 * as_closest_canonical do. No voxel value is interpolated; the affine is updated so every voxel keeps
 * its world coordinate. An oblique affine gets the closest axis-aligned orientation: the rotation
 * beyond it is kept in the affine but the model sees the voxels as if it were not there.
 */
import { fail } from "../../errors.js";

/** Output axis a of the reoriented grid is input axis `axis[a]`, reversed when `flip[a]`. */
export interface Ornt {
  axis: [number, number, number];
  flip: [boolean, boolean, boolean];
}

export const IDENTITY_ORNT: Ornt = { axis: [0, 1, 2], flip: [false, false, false] };

export function isIdentityOrnt(o: Ornt): boolean {
  return o.axis.every((x, a) => x === a) && o.flip.every((f) => !f);
}

/** The world axis (0 = x: L→R, 1 = y: P→A, 2 = z: I→S) and sign of each axis code letter. */
const CODE: Record<string, [number, 1 | -1]> = { R: [0, 1], L: [0, -1], A: [1, 1], P: [1, -1], S: [2, 1], I: [2, -1] };

type M3 = number[][];

const col = (affine: readonly number[], c: number): number[] => [affine[c], affine[4 + c], affine[8 + c]];

function det3(m: M3): number {
  return (
    m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) -
    m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
    m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
  );
}

function inverseTranspose3(m: M3): M3 {
  const d = det3(m);
  const c = (r: number, k: number) => {
    const rows = [0, 1, 2].filter((x) => x !== r);
    const cols = [0, 1, 2].filter((x) => x !== k);
    const minor = m[rows[0]][cols[0]] * m[rows[1]][cols[1]] - m[rows[0]][cols[1]] * m[rows[1]][cols[0]];
    return ((r + k) % 2 ? -minor : minor) / d;
  };
  return [0, 1, 2].map((r) => [0, 1, 2].map((k) => c(r, k)));
}

/**
 * The rotation (orthogonal matrix) closest to the affine's direction cosines: the polar factor, by
 * Newton's iteration R ← (R + R⁻ᵀ)/2 (the same matrix as nibabel's SVD P·Qᵀ). Rows are world axes,
 * columns voxel axes.
 */
export function directionMatrix(affine: readonly number[]): M3 {
  const cols = [0, 1, 2].map((c) => col(affine, c));
  const norms = cols.map((v) => Math.hypot(...v));
  if (norms.some((n) => !(n > 0)) || Math.abs(det3([0, 1, 2].map((r) => cols.map((v) => v[r])))) < 1e-12)
    fail("the volume's affine is degenerate (a voxel axis has no direction)", "fix the file's affine (NIfTI sform/qform, DICOM orientation)");
  let r: M3 = [0, 1, 2].map((row) => cols.map((v, c) => v[row] / norms[c]));
  for (let it = 0; it < 50; it++) {
    const t = inverseTranspose3(r);
    const next = r.map((row, i) => row.map((x, j) => (x + t[i][j]) / 2));
    const change = Math.max(...next.flatMap((row, i) => row.map((x, j) => Math.abs(x - r[i][j]))));
    r = next;
    if (change < 1e-15) break;
  }
  return r;
}

/** For each voxel axis, the world axis it points along most and the sign (nibabel's io_orientation, greedy). */
export function closestWorldAxes(affine: readonly number[]): { world: [number, number, number]; sign: [1 | -1, 1 | -1, 1 | -1] } {
  const r = directionMatrix(affine).map((row) => [...row]);
  const world: number[] = [-1, -1, -1];
  const sign: (1 | -1)[] = [1, 1, 1];
  for (let n = 0; n < 3; n++) {
    let best = [-1, -1],
      big = -1;
    for (let w = 0; w < 3; w++)
      for (let v = 0; v < 3; v++)
        if (Math.abs(r[w][v]) > big) {
          big = Math.abs(r[w][v]);
          best = [w, v];
        }
    const [w, v] = best;
    world[v] = w;
    sign[v] = r[w][v] >= 0 ? 1 : -1;
    for (let k = 0; k < 3; k++) r[w][k] = r[k][v] = 0;
  }
  return { world: world as [number, number, number], sign: sign as [1 | -1, 1 | -1, 1 | -1] };
}

/** The axis codes of an affine's closest orientation, e.g. "LPS". */
export function orientationCodes(affine: readonly number[]): string {
  const { world, sign } = closestWorldAxes(affine);
  return world.map((w, v) => ["LR", "PA", "IS"][w][sign[v] > 0 ? 1 : 0]).join("");
}

/** The permutation/flip that takes a grid with this affine to voxel axes along `codes` (e.g. "RAS"). */
export function orntTo(affine: readonly number[], codes: string): Ornt {
  const { world, sign } = closestWorldAxes(affine);
  const axis: number[] = [];
  const flip: boolean[] = [];
  for (const letter of codes) {
    const [w, s] = CODE[letter];
    const v = world.indexOf(w);
    axis.push(v);
    flip.push(sign[v] !== s);
  }
  return { axis: axis as Ornt["axis"], flip: flip as Ornt["flip"] };
}

/**
 * Degrees by which the voxel axes are rotated away from the closest axis-aligned orientation (0 for a
 * plain permutation/flip): the angle of the rotation between the direction matrix and its rounding.
 */
export function obliqueDegrees(affine: readonly number[]): number {
  const r = directionMatrix(affine);
  const { world, sign } = closestWorldAxes(affine);
  // trace(Aᵀ R) where A is the signed permutation of the closest orientation
  let trace = 0;
  for (let v = 0; v < 3; v++) trace += sign[v] * r[world[v]][v];
  return (Math.acos(Math.min(1, Math.max(-1, (trace - 1) / 2))) * 180) / Math.PI;
}

/** Dims of the grid after `o`. */
export function orntDims(dims: readonly number[], o: Ornt): [number, number, number] {
  return o.axis.map((a) => dims[a]) as [number, number, number];
}

/** The affine after `o`: output voxel p is input voxel q with q[axis[a]] = flip[a] ? n − 1 − p[a] : p[a]. */
export function orntAffine(affine: readonly number[], dims: readonly number[], o: Ornt): number[] {
  const out = [...affine];
  for (let r = 0; r < 3; r++) {
    let t = affine[r * 4 + 3];
    for (let a = 0; a < 3; a++) {
      const c = affine[r * 4 + o.axis[a]];
      out[r * 4 + a] = o.flip[a] ? 0 - c : c; // 0 - c: no -0 in the affine
      if (o.flip[a]) t += c * (dims[o.axis[a]] - 1);
    }
    out[r * 4 + 3] = t;
  }
  return out;
}

/** Voxel values (i fastest) on a grid of `dims` → the same values on the grid after `o`. Exact. */
export function applyOrnt<T extends Float32Array | Uint8Array>(values: T, dims: readonly number[], o: Ornt, make: (n: number) => T): T {
  if (isIdentityOrnt(o)) return values;
  const od = orntDims(dims, o);
  const strideIn = [1, dims[0], dims[0] * dims[1]];
  // Per output axis: the input stride it walks and where it starts.
  const step = o.axis.map((a, k) => (o.flip[k] ? -strideIn[a] : strideIn[a]));
  const start = o.axis.reduce((s, a, k) => s + (o.flip[k] ? (dims[a] - 1) * strideIn[a] : 0), 0);
  const out = make(values.length);
  let n = 0;
  for (let z = 0; z < od[2]; z++)
    for (let y = 0; y < od[1]; y++) {
      let src = start + z * step[2] + y * step[1];
      for (let x = 0; x < od[0]; x++, src += step[0]) out[n++] = values[src];
    }
  return out;
}

/** The inverse permutation/flip: applyOrnt(applyOrnt(v, dims, o), orntDims(dims, o), inverseOrnt(o)) = v. */
export function inverseOrnt(o: Ornt): Ornt {
  const axis = [0, 0, 0] as Ornt["axis"];
  const flip = [false, false, false] as Ornt["flip"];
  o.axis.forEach((a, k) => {
    axis[a] = k;
    flip[a] = o.flip[k];
  });
  return { axis, flip };
}

/** "LPS → RAS" style name of a permutation/flip, from the input's codes. */
export function describeOrnt(fromCodes: string, o: Ornt): string {
  const opposite: Record<string, string> = { R: "L", L: "R", A: "P", P: "A", S: "I", I: "S" };
  const to = o.axis.map((a, k) => (o.flip[k] ? opposite[fromCodes[a]] : fromCodes[a])).join("");
  return `${fromCodes} → ${to}`;
}
