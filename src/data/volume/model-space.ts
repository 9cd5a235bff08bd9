/**
 * ModelSpace: how a volume is brought into the space the model was trained in — its voxel axes
 * permuted/flipped to the card's `axes` (exact), then resampled to the card's `spacing` (trilinear for
 * the image, nearest for masks) — and how a map comes back onto the input's own grid. One function
 * for explain, bank build and every mask, so they all see the same voxels.
 */
import type { VolumeCard } from "../../model/volume-card.js";
import {
  applyOrnt,
  describeOrnt,
  IDENTITY_ORNT,
  inverseOrnt,
  isIdentityOrnt,
  type Ornt,
  obliqueDegrees,
  orientationCodes,
  orntAffine,
  orntDims,
  orntTo,
} from "./orientation.js";
import { resampledAffine, resampledDims, resampleNearest, resampleTrilinear } from "./resample.js";
import type { Volume } from "./volume.js";

type V3 = [number, number, number];

/** Spacing may differ by this fraction per axis and still be the card's (headers round). */
export const SPACING_TOLERANCE = 0.01;

export interface ModelSpace {
  /** the input volume's grid */
  input: { dims: V3; spacing: V3; affine: number[]; axes: string };
  /** the permutation/flip of the input's voxel axes (identity when the card states no axes, or they agree) */
  ornt: Ornt;
  /** after the permutation/flip: the grid that is resampled */
  reoriented: { dims: V3; spacing: V3; affine: number[] };
  /** set when the spacing differs from the card's beyond SPACING_TOLERANCE */
  resample?: { from: V3; to: V3; image: "trilinear"; masks: "nearest" };
  /** the model-space grid */
  dims: V3;
  spacing: V3;
  affine: number[];
  /** degrees of rotation beyond the axis permutation that the model does not see (oblique affines) */
  obliqueDegrees: number;
  /** true when the model's grid is the input's (no permutation, flip or resample) */
  identity: boolean;
}

const fmt = (v: readonly number[]) => v.map((s) => Number(s.toPrecision(4))).join("x");

/**
 * The slice space of a 2D model run slice by slice: the voxel axes permuted so the slice axis comes
 * last (the engine's depth); the other two keep their order (rows = the slower one). No flip, no resampling.
 */
export function sliceOrnt(axis: "i" | "j" | "k"): Ornt {
  const last = "ijk".indexOf(axis);
  const rest = [0, 1, 2].filter((a) => a !== last);
  return { axis: [rest[0], rest[1], last], flip: [false, false, false] };
}

/**
 * The transform of a grid into the card's space (nothing is computed on voxels here); with `slices`
 * (a 2D model slice by slice) into its slice space instead, at the volume's own spacing.
 */
export function modelSpaceOf(v: Pick<Volume, "dims" | "spacing" | "affine">, card: VolumeCard, name: string, slices?: "i" | "j" | "k"): ModelSpace {
  const axes = orientationCodes(v.affine);
  const ornt = slices ? sliceOrnt(slices) : card.input.axes ? orntTo(v.affine, card.input.axes) : IDENTITY_ORNT;
  const reoriented = {
    dims: orntDims(v.dims, ornt),
    spacing: ornt.axis.map((a) => v.spacing[a]) as V3,
    affine: orntAffine(v.affine, v.dims, ornt),
  };
  const want = slices ? reoriented.spacing : card.input.spacing;
  const differs = reoriented.spacing.some((s, a) => Math.abs(s - want[a]) > SPACING_TOLERANCE * want[a]);
  const resample = differs ? { from: reoriented.spacing, to: [...want] as V3, image: "trilinear" as const, masks: "nearest" as const } : undefined;
  const dims = resample ? resampledDims(reoriented.dims, resample.from, resample.to, name) : reoriented.dims;
  return {
    input: { dims: [...v.dims], spacing: [...v.spacing], affine: [...v.affine], axes },
    ornt,
    reoriented,
    resample,
    dims,
    spacing: resample ? resample.to : reoriented.spacing,
    affine: resample ? resampledAffine(reoriented.affine, resample.from, resample.to) : reoriented.affine,
    obliqueDegrees: card.input.axes ? obliqueDegrees(v.affine) : 0,
    identity: isIdentityOrnt(ornt) && !resample,
  };
}

/** The image in model space: exact permutation/flip, then trilinear resampling. */
export function imageToModel(space: ModelSpace, data: Float32Array): Float32Array {
  const r = applyOrnt(data, space.input.dims, space.ornt, (n) => new Float32Array(n));
  const s = space.resample;
  return s ? resampleTrilinear(r, space.reoriented.dims, s.from, s.to, space.dims) : r;
}

/** A mask, label map or RoI on the input grid in model space (nearest: labels stay labels). */
export function maskToModel<T extends Float32Array | Uint8Array>(space: ModelSpace, data: T, make: (n: number) => T): T {
  const r = applyOrnt(data, space.input.dims, space.ornt, make);
  const s = space.resample;
  return s ? resampleNearest(r, space.reoriented.dims, s.from, s.to, space.dims, make) : r;
}

/**
 * A map on the model grid back onto the input's grid. Nearest, not trilinear: the maps are piecewise
 * constant per box (one effect per box), so each input voxel takes the effect of the box it lies in
 * instead of a blend of two boxes' effects that neither box has; NaN (unseen) stays NaN.
 */
export function mapToInput(space: ModelSpace, values: Float32Array): Float32Array {
  const s = space.resample;
  const r = s ? resampleNearest(values, space.dims, s.to, s.from, space.reoriented.dims, (n) => new Float32Array(n)) : values;
  return applyOrnt(r, space.reoriented.dims, inverseOrnt(space.ornt), (n) => new Float32Array(n));
}

/** The volume in model space (same source; data copied only when the grid changes). */
export function volumeToModel(v: Volume, space: ModelSpace): Volume {
  if (space.identity) return v;
  return { ...v, dims: space.dims, spacing: space.spacing, affine: space.affine, data: imageToModel(space, v.data) };
}

/** What was done, in words: "reoriented LPS → RAS; resampled 0.9x0.9x3 mm → 1x1x1 mm, trilinear". */
export function describeModelSpace(space: ModelSpace): string[] {
  const notes: string[] = [];
  if (!isIdentityOrnt(space.ornt))
    notes.push(
      `reoriented ${describeOrnt(space.input.axes, space.ornt)} (voxel axes permuted/flipped exactly; the map is written on the input's grid)`,
    );
  if (space.obliqueDegrees > 0.01)
    notes.push(
      `the volume is oblique: its voxel axes are rotated ${space.obliqueDegrees.toFixed(2)}° from the closest ${orientationCodes(space.reoriented.affine)} axes; the model sees the voxels unrotated (no interpolation), as as_closest_canonical does`,
    );
  if (space.resample)
    notes.push(
      `resampled ${fmt(space.resample.from)} mm → ${fmt(space.resample.to)} mm, trilinear (masks and RoI nearest; ${space.reoriented.dims.join("x")} → ${space.dims.join("x")} voxels); the map is sampled back onto the input's grid by nearest neighbour`,
    );
  return notes;
}

/** The transform as provenance and checkpoint key record it. */
export function modelSpaceRecord(space: ModelSpace): Record<string, unknown> {
  return {
    inputAxes: space.input.axes,
    permutation: space.ornt.axis,
    flips: space.ornt.flip,
    sourceSpacing: space.reoriented.spacing,
    targetSpacing: space.spacing,
    resampled: space.resample ? { image: space.resample.image, masks: space.resample.masks, dims: space.dims } : null,
    obliqueDegrees: Number(space.obliqueDegrees.toFixed(4)),
  };
}
