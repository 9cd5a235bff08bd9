/**
 * Fills on volumes, shared by occlusion, zero ablation, RISE and the IG baseline: a constant raw
 * intensity (--fill, in the volume's own units) or the volume's mean, normalised as the volume is.
 * The Gaussian blur of 2D fills has no volume form yet and is refused.
 */
import { toBox, type VolumeCase } from "../../data/volume/volume-case.js";
import { fail } from "../../errors.js";
import type { FillKind } from "../interventions.js";
import { mean } from "./engine.js";

export interface VolumeFill {
  /** in normalised (model-input) units */
  value: number;
  /** kind, raw intensity and its normalised value, for the provenance */
  describe: { kind: FillKind; raw: number; normalised: number };
}

/** Refuses the blur fill, naming the method (`flag` = how the user gave it). */
export function refuseBlur(method: string, kind: FillKind, flag = "--fill-kind"): void {
  if (kind === "blur") fail(`${method} with ${flag} blur does not run on volumes yet`, `use ${flag} constant or mean on volumes`);
}

export function volumeFill(kase: VolumeCase, kind: FillKind, fill: number): VolumeFill {
  const raw = kind === "mean" ? mean(kase.modelVolume.data) : fill;
  const normalised = kase.normalise(raw);
  return { value: normalised, describe: { kind, raw, normalised } };
}

/** 1 for the cells of the model's box that hold a voxel of the volume (the padding around it is 0). */
export function volumeCells(kase: VolumeCase): Uint8Array {
  return toBox(new Uint8Array(kase.space.dims.reduce((a, b) => a * b, 1)).fill(1), kase.space.dims, kase.placement, 0, (n) => new Uint8Array(n));
}

/** The box with every voxel of the volume replaced by `value` (the padding as placed). */
export function filledBox(kase: VolumeCase, value: number): Float32Array {
  const inside = volumeCells(kase);
  return kase.input.map((v, c) => (inside[c] ? value : v));
}
