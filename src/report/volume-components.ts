/**
 * The spatial level's maps on volumes: each tensor's cell (box) effects painted on its feature grid,
 * brought up to the model's box by nearest neighbour (a feature voxel covers box/grid voxels per axis),
 * then back through the placement and the model-space transform onto the input volume's grid, as
 * NIfTI with the input's affine (NaN where the model's box does not see the volume).
 */
import { gzipSync } from "node:zlib";
import { niftiBytes } from "../data/volume/nifti-write.js";
import { boxToInput, type VolumeCase } from "../data/volume/volume-case.js";
import type { VolumeComponentEffects } from "../explain/volume/components.js";
import { spatialName } from "./components.js";

/** Tensor t's cell effects on the model's box (W fastest). */
export function spatialOnBox(e: VolumeComponentEffects, t: string, box: readonly [number, number, number]): Float32Array {
  const [, d, h, w] = e.tensorDims[t];
  const grid = new Float32Array(d * h * w);
  for (const u of e.units) {
    const s = u.selection;
    if (!s || s.tensor !== t || !s.slices) continue;
    for (let z = s.slices[0]; z < s.slices[1]; z++)
      for (let r = s.rows[0]; r < s.rows[1]; r++) grid.fill(u.effect, (z * h + r) * w + s.cols[0], (z * h + r) * w + s.cols[1]);
  }
  const [bx, by, bz] = box;
  const out = new Float32Array(bx * by * bz);
  for (let z = 0; z < bz; z++)
    for (let y = 0; y < by; y++) {
      const row = (Math.floor((z * d) / bz) * h + Math.floor((y * h) / by)) * w;
      for (let x = 0; x < bx; x++) out[(z * by + y) * bx + x] = grid[row + Math.floor((x * w) / bx)];
    }
  return out;
}

/** spatial-<i>-<tensor>.nii.gz per tensor, on the input volume's grid. */
export function spatialNiftis(e: VolumeComponentEffects, kase: VolumeCase): Record<string, Buffer> {
  const files: Record<string, Buffer> = {};
  const { dims, affine } = kase.volume;
  for (const [i, t] of Object.keys(e.tensorDims).entries()) {
    const data = boxToInput(kase, spatialOnBox(e, t, kase.placement.box));
    files[spatialName(i, t, "nii.gz")] = gzipSync(
      niftiBytes({ dims, affine, data }, { description: `segcause components: ${e.ablation} ablation of cells of ${t}` }),
    );
  }
  return files;
}
