/**
 * The explained domain of a volume's RoI and its rank units, in the model's box (where the model's
 * input is intervened on): the cells holding a voxel of the volume (not the padding around it) minus
 * the RoI's cells, partitioned into boxes of a grid from the corner of the volume's part of the box
 * (a box the RoI cuts keeps its cells outside the RoI, as a 2D block does), and each cell's distance
 * to the RoI in millimetres. The partition depends on the volume and the RoI only, never on the method.
 */
import type { VolumeCase } from "../data/volume/volume-case.js";
import { fail } from "../errors.js";
import { type BoxUnitName, boxVoxels, describeSize, type Size3 } from "../explain/volume/box-size.js";
import { volumeRange } from "../explain/volume/boxes.js";
import { volumeCells } from "../explain/volume/fills.js";
import { type DomainUnits, gridLabels, type RankUnits, rankUnitsName, unitsFromLabelMap } from "./rank-units.js";

/** The box of the rank units in voxels (D, H, W) of the model's space: `block:N` in mm (default) or voxels. */
export function rankBox(r: RankUnits, unit: BoxUnitName, kase: Pick<VolumeCase, "space" | "placement">): Size3 {
  if (r.kind !== "block")
    fail(
      `--rank-units ${rankUnitsName(r)} does not run on volumes`,
      "use --rank-units block:N on a volume data set (boxes of N mm, or voxels with --box-unit vox)",
    );
  const box = boxVoxels(r.size, unit, kase.space.spacing, "--rank-units block");
  const range = volumeRange(kase.placement, kase.space.dims);
  if (box.some((n, a) => n > range[a][1] - range[a][0]))
    fail(
      `--rank-units block:${r.size}${unit === "vox" ? " (voxels)" : " mm"} makes boxes of ${describeSize(box)} voxels (DxHxW), larger than the volume's ${range.map(([lo, hi]) => hi - lo).join("x")} voxels in the model's box`,
      "use smaller --rank-units (e.g. block:8)",
    );
  return box;
}

/** The volume's cells of the box outside the RoI, ascending. */
export function volumeDomain(kase: VolumeCase, roiCells: Uint32Array): Uint32Array {
  const inside = volumeCells(kase);
  for (const c of roiCells) inside[c] = 0;
  const out: number[] = [];
  for (let c = 0; c < inside.length; c++) if (inside[c]) out.push(c);
  return Uint32Array.from(out);
}

/** The domain's cells grouped by box of the rank-unit grid. */
export function volumeUnits(kase: Pick<VolumeCase, "space" | "placement">, box: Size3, domain: Uint32Array): DomainUnits {
  const p = kase.placement;
  const origin = volumeRange(p, kase.space.dims).map(([lo]) => lo);
  return unitsFromLabelMap(gridLabels([p.box[2], p.box[1], p.box[0]], box, origin), domain);
}

/**
 * Euclidean distance in millimetres (the model space's spacing) from each domain cell's centre to the
 * nearest RoI cell's centre; 0 elsewhere. Only the RoI's border cells can be nearest, so those are searched.
 */
export function volumeDistance(kase: Pick<VolumeCase, "space" | "placement">, roiCells: Uint32Array, domain: Uint32Array): Float32Array {
  const [bx, by, bz] = kase.placement.box;
  const [sx, sy, sz] = kase.space.spacing;
  const inRoi = new Uint8Array(bx * by * bz);
  for (const c of roiCells) inRoi[c] = 1;
  const border: number[] = [];
  for (const c of roiCells) {
    const x = c % bx,
      y = Math.floor(c / bx) % by,
      z = Math.floor(c / (bx * by));
    const edge =
      x === 0 ||
      y === 0 ||
      z === 0 ||
      x === bx - 1 ||
      y === by - 1 ||
      z === bz - 1 ||
      !inRoi[c - 1] ||
      !inRoi[c + 1] ||
      !inRoi[c - bx] ||
      !inRoi[c + bx] ||
      !inRoi[c - bx * by] ||
      !inRoi[c + bx * by];
    if (edge) border.push(x * sx, y * sy, z * sz);
  }
  const out = new Float32Array(inRoi.length);
  for (const c of domain) {
    const x = (c % bx) * sx,
      y = (Math.floor(c / bx) % by) * sy,
      z = Math.floor(c / (bx * by)) * sz;
    let best = Infinity;
    for (let b = 0; b < border.length; b += 3) {
      const d = (border[b] - x) ** 2 + (border[b + 1] - y) ** 2 + (border[b + 2] - z) ** 2;
      if (d < best) best = d;
    }
    out[c] = Math.sqrt(best);
  }
  return out;
}
