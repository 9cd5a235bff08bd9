/**
 * The size of a volume's boxes (blocks, strides, bank boxes) per axis. On volumes `--block` is in
 * millimetres by default and becomes voxels per model-space axis by the card's spacing, so an
 * anisotropic model space gets physically even boxes; `--box-unit vox` takes it as voxels.
 */
import { fail } from "../../errors.js";

/** voxels along the model's (D, H, W) = the model-space volume's (k, j, i) */
export type Size3 = [number, number, number];

export const BOX_UNITS = ["mm", "vox"] as const;
export type BoxUnitName = (typeof BOX_UNITS)[number];

/** `value` (mm or voxels) as voxels per (D, H, W) axis of a grid with `spacing` (mm along i, j, k); at least 1. */
export function boxVoxels(value: number, unit: BoxUnitName, spacing: readonly number[], flag: string): Size3 {
  if (!(value > 0)) fail(`${flag} must be positive, got ${value}`, `e.g. ${flag} 8`);
  if (unit === "vox") {
    if (!Number.isInteger(value)) fail(`${flag} ${value} is not a whole number of voxels`, "give whole voxels with --box-unit vox, or millimetres");
    return [value, value, value];
  }
  return [2, 1, 0].map((a) => Math.max(1, Math.round(value / spacing[a]))) as Size3;
}

/** The side of a cube, or undefined for boxes that differ per axis. */
export function cubeSide(s: readonly number[]): number | undefined {
  return s[0] === s[1] && s[1] === s[2] ? s[0] : undefined;
}

/** As provenance and keys record a size: one number for a cube (as before boxes could differ per axis), else [D, H, W]. */
export function sizeRecord(s: Size3): number | Size3 {
  return cubeSide(s) ?? s;
}

/** "8³" or "3x8x8" (D x H x W). */
export function describeSize(s: readonly number[]): string {
  const c = cubeSide(s);
  return c !== undefined ? `${c}³` : s.join("x");
}

/** Voxels in a box. */
export function boxCells(s: readonly number[]): number {
  return s[0] * s[1] * s[2];
}
