/**
 * The Target on a volume: a RoI (a box in the input volume's voxels, or a structure's mask on its
 * grid) carried into model space (nearest, as every mask) and the model's box, the reference (ground
 * truth or the unperturbed prediction) and the outcome, computed on the RoI's voxels exactly as for 2D
 * images (makeCellOutcome). With sliding windows the outcome reads the stitched output on the RoI's
 * cells (VolumeOutput).
 */

import { maskToModel } from "../data/volume/model-space.js";
import type { VolumeCase } from "../data/volume/volume-case.js";
import { toBox } from "../data/volume/volume-case.js";
import { fail } from "../errors.js";
import type { VolumeNet } from "../model/volume-model.js";
import { binarize, makeCellOutcome, type OutcomeFn, type OutcomeName, type ProbabilitySpec } from "./outcome.js";
import { describeVolumeRoi, type VolumeRoiBox, volumeRoiMask } from "./volume-roi.js";

export interface VolumeTargetSpec {
  /** a box in the input volume's voxels, or a 0/1 mask on its grid */
  roi: VolumeRoiBox | { mask: Uint8Array; name: string };
  outcome?: OutcomeName;
  reference?: "auto" | "ground-truth" | "prediction";
}

export interface VolumeTarget {
  /** the RoI on the volume grid (1 inside) */
  roiMask: Uint8Array;
  /** the RoI's cells in the model's box (flat (D, H, W) indices, W fastest) */
  roiCells: Uint32Array;
  /** the RoI's bounding box in box coordinates, [z0, y0, x0, z1, y1, x1] inclusive */
  roiBounds: [number, number, number, number, number, number];
  describe: string;
  outcome: OutcomeName;
  referenceKind: "ground-truth" | "prediction";
  /** the reference mask in the box */
  reference: Uint8Array;
  score: OutcomeFn;
  base: number;
}

/** The RoI of a spec, on the volume grid and as cells of the model's box (no pass needed). */
export function resolveVolumeRoi(kase: VolumeCase, spec: VolumeTargetSpec): Pick<VolumeTarget, "roiMask" | "roiCells" | "roiBounds" | "describe"> {
  const { dims } = kase.volume;
  const isBox = !("mask" in spec.roi);
  const roiMask = isBox ? volumeRoiMask(spec.roi as VolumeRoiBox, dims) : (spec.roi as { mask: Uint8Array }).mask;
  const describe = isBox ? `box ${describeVolumeRoi(spec.roi as VolumeRoiBox)}` : `the structure of ${(spec.roi as { name: string }).name}`;
  let inside = 0;
  for (const v of roiMask) inside += v;
  if (inside === 0) fail(`the RoI (${describe}) holds no voxel`, "give a RoI mask with the structure in it, or --roi z,y,x,d,h,w");
  const modelRoi = maskToModel(kase.space, roiMask, (n) => new Uint8Array(n));
  let inModel = 0;
  for (const v of modelRoi) inModel += v;
  if (inModel === 0)
    fail(
      `the RoI (${describe}) holds no voxel once resampled to the model's ${kase.space.spacing.join("x")} mm voxels`,
      "give a RoI at least one model voxel wide on every axis",
    );
  const boxRoi = toBox(modelRoi, kase.space.dims, kase.placement, 0, (n) => new Uint8Array(n));
  const cells: number[] = [];
  for (let c = 0; c < boxRoi.length; c++) if (boxRoi[c]) cells.push(c);
  if (cells.length < inModel)
    fail(
      `the RoI (${describe}) reaches outside the model's ${kase.placement.box.join("x")} box: ${inModel - cells.length} of its voxels were cropped away`,
      'give a RoI inside the centre part of the volume that the model sees, or a card with input.placement {"kind": "sliding"}',
    );
  const roiCells = Uint32Array.from(cells);
  const [bx, by] = kase.placement.box;
  const b = [Infinity, Infinity, Infinity, -1, -1, -1];
  for (const c of roiCells) {
    const x = c % bx,
      y = Math.floor(c / bx) % by,
      z = Math.floor(c / (bx * by));
    [z, y, x].forEach((v, a) => {
      b[a] = Math.min(b[a], v);
      b[a + 3] = Math.max(b[a + 3], v);
    });
  }
  return { roiMask, roiCells, roiBounds: b as VolumeTarget["roiBounds"], describe };
}

/**
 * The output the outcome reads: one pass over the model's whole box (centre placement), or the
 * windows' output stitched on the RoI's cells only, `channels` planes of roiCells.length cells
 * (sliding placement, src/explain/volume/windows.ts).
 */
export type VolumeOutput = Float32Array | { data: Float32Array; channels: number; spec: ProbabilitySpec };

export function resolveVolumeTarget(model: VolumeNet, kase: VolumeCase, spec: VolumeTargetSpec, baseOutput: VolumeOutput): VolumeTarget {
  const { roiMask, roiCells, roiBounds, describe } = resolveVolumeRoi(kase, spec);
  const outcome = spec.outcome ?? "dice";
  const wanted = spec.reference ?? "auto";
  if (wanted === "ground-truth" && !kase.mask)
    fail("reference 'ground-truth' needs a mask", "pass --mask (with --label), or use --reference prediction");
  const referenceKind = wanted === "auto" ? (kase.mask ? "ground-truth" : "prediction") : wanted;
  const whole = baseOutput instanceof Float32Array;
  // What the outcome reads: the whole box's output at the RoI's cells, or the stitched planes cell by cell.
  const view = whole
    ? { data: baseOutput, spec: model.card.output as ProbabilitySpec, layout: flatLayout(model), cells: roiCells as ArrayLike<number> }
    : {
        data: baseOutput.data,
        spec: baseOutput.spec,
        layout: { channels: baseOutput.channels, height: 1, width: roiCells.length },
        cells: Uint32Array.from(roiCells, (_, i) => i),
      };
  for (const v of view.data)
    if (!Number.isFinite(v)) fail("the model produced NaN or Inf on the unperturbed volume", "check the model export and the card's normalisation");
  let reference: Uint8Array;
  if (referenceKind === "ground-truth") reference = toBox(kase.mask!, kase.space.dims, kase.placement, 0, (n) => new Uint8Array(n));
  else if (whole) reference = binarize(model.card.output, view.layout, baseOutput);
  else {
    // The stitched prediction is known on the RoI's cells only, which is all the outcome reads.
    const own = binarize(view.spec, view.layout, view.data);
    reference = new Uint8Array(kase.input.length);
    roiCells.forEach((c, i) => (reference[c] = own[i]));
  }
  if (outcome !== "mean-prob") {
    let g = 0;
    for (const c of roiCells) g += reference[c];
    if (g === 0)
      fail(
        `the ${referenceKind === "ground-truth" ? "ground-truth mask" : "model's prediction"} is empty inside the RoI (${describe}), so Dice is 0 whatever the input`,
        "move the RoI onto the structure, or use --outcome mean-prob",
      );
  }
  const score = makeCellOutcome(outcome, view.spec, view.layout, view.cells, whole ? reference : Uint8Array.from(roiCells, (c) => reference[c]));
  return { roiMask, roiCells, roiBounds, describe, outcome, referenceKind, reference, score, base: score(view.data, 0) };
}

/** The output read as planes of D*H by W cells, so the 2D outcome code indexes a volume's voxels. */
export function flatLayout(model: VolumeNet): { channels: number; height: number; width: number } {
  const { channels, depth, height, width } = model.outputLayout;
  return { channels, height: depth * height, width };
}
