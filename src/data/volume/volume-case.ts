/**
 * A volume Case: a volume read from NIfTI or DICOM, normalised as the model's card says and placed
 * into the model's box, with the placement kept so maps go back onto the volume's own grid; plus,
 * optionally, the mask of one structure (a label map with --label, or a DICOM SEG).
 */
import { statSync } from "node:fs";
import { basename } from "node:path";
import { fail } from "../../errors.js";
import type { VolumeCard, VolumeNormalisation } from "../../model/volume-card.js";
import type { SliceSetting } from "../../model/volume-model.js";
import { sha256 } from "../../util/hash.js";
import { readDicomSegMask, readDicomVolume, startsLikeDicom } from "./dicom/index.js";
import { checkSameGeometry } from "./geometry.js";
import { labelMask, labelsPresent, parseLabels } from "./label-mask.js";
import { describeModelSpace, type ModelSpace, mapToInput, maskToModel, modelSpaceOf, volumeToModel } from "./model-space.js";
import { readNifti } from "./nifti.js";
import { isNiftiPath, sniffVolume } from "./sniff.js";
import type { Volume } from "./volume.js";

/**
 * Where the model-space volume lies in the model's box: voxel (i, j, k) of it is box voxel
 * (i + offset[0], j + offset[1], k + offset[2]), the box's (W, H, D) axes being the volume's (i, j, k).
 * A negative offset crops the volume on that axis. With sliding windows the "box" is the whole
 * volume, padded to at least the patch on each axis, and the model sees it one patch at a time.
 */
export type Placement =
  | {
      kind: "centre";
      /** box size along (i, j, k) = the model's (W, H, D) */
      box: [number, number, number];
      offset: [number, number, number];
      /** box value outside the volume, in normalised units */
      fill: number;
    }
  | {
      kind: "sliding";
      /** the padded volume's size along (i, j, k): max(volume, patch) per axis */
      box: [number, number, number];
      offset: [number, number, number];
      fill: number;
      /** the model's box (one window) along (i, j, k) */
      patch: [number, number, number];
      overlap: number;
      weighting: "gaussian" | "constant";
    };

export interface VolumeCase {
  id: string;
  imagePath: string;
  imageSha256: string;
  /** the volume as read, on its own grid: maps, views and RoIs given in voxels are on this grid */
  volume: Volume;
  /** how the volume was brought into the model's axes and spacing (identity when it already was) */
  space: ModelSpace;
  /** the volume in model space (the same object as `volume` when `space.identity`) */
  modelVolume: Volume;
  /** the normalised model-space volume in the model's box, (D, H, W) with W fastest: the unperturbed input */
  input: Float32Array;
  placement: Placement;
  /** raw intensity → normalised input value, for fills stated in the volume's own units */
  normalise: (raw: number) => number;
  /** the structure's mask on the model-space grid (1 inside), when given */
  mask?: Uint8Array;
  maskPath?: string;
  maskSha256?: string;
  labels?: number[];
  notes: string[];
}

export interface VolumeCaseOptions {
  mask?: string;
  /** "1" or "1,2": the labels that make the structure (default: every non-zero label) */
  label?: string;
  seriesUid?: string;
}

/** Reads a volume: NIfTI (by content), or a DICOM file or folder holding one series. */
export async function readVolume(path: string, opts: { seriesUid?: string } = {}): Promise<Volume> {
  let dir = false;
  try {
    dir = statSync(path).isDirectory();
  } catch {
    fail(`volume ${path} does not exist`, "check the --image path (a .nii/.nii.gz file, a DICOM file or a DICOM series folder)");
  }
  if (!dir && (isNiftiPath(path) || (await sniffVolume(path)) === "nifti")) return readNifti(path);
  return readDicomVolume(path, { seriesUid: opts.seriesUid });
}

/** true when the path is a volume (NIfTI by name or content, a DICOM folder or file) rather than a 2D image. */
export async function looksLikeVolume(path: string): Promise<boolean> {
  try {
    const st = statSync(path);
    if (st.isDirectory()) return true;
    // Only a regular file is opened to look inside: a FIFO or device would block the open or never end.
    if (!st.isFile()) return false;
  } catch {
    return false;
  }
  if (isNiftiPath(path) || /\.dcm$/i.test(path) || startsLikeDicom(path)) return true;
  return (await sniffVolume(path).catch(() => "other")) === "nifti";
}

/** The normalisation of the card as a function of raw intensity, from the volume's own statistics. */
export function volumeNormaliser(data: Float32Array, n: VolumeNormalisation): (raw: number) => number {
  switch (n.kind) {
    case "zscore": {
      let s = 0;
      for (const v of data) s += v;
      const mean = s / data.length;
      let ss = 0;
      for (const v of data) ss += (v - mean) ** 2;
      const sd = Math.sqrt(ss / data.length);
      // A constant volume has no spread: it becomes 0 everywhere instead of NaN.
      const inv = sd > 0 ? 1 / sd : 0;
      return (v) => (v - mean) * inv;
    }
    case "percentile": {
      const sorted = Float32Array.from(data).sort();
      const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.round((p / 100) * (sorted.length - 1))))];
      return clipTo(at(n.low), at(n.high));
    }
    case "ct-window":
      return clipTo(n.centre - n.width / 2, n.centre + n.width / 2);
  }
}

function clipTo(lo: number, hi: number): (raw: number) => number {
  const span = hi > lo ? hi - lo : 1;
  return (v) => (Math.min(hi, Math.max(lo, v)) - lo) / span;
}

/** The card's centre placement of a volume of dims [nx, ny, nz] into its box. */
export function centrePlacement(dims: [number, number, number], card: VolumeCard): Placement {
  const box: [number, number, number] = [card.input.width, card.input.height, card.input.depth];
  return {
    kind: "centre",
    box,
    offset: [0, 1, 2].map((a) => Math.floor((box[a] - dims[a]) / 2)) as [number, number, number],
    fill: card.input.placement.fill,
  };
}

/**
 * The card's sliding placement: the volume padded to at least the patch on each axis, below by
 * floor(diff / 2) and above by the rest (nnU-Net's pad_nd_image; the centre rule), never cropped.
 */
export function slidingPlacement(dims: [number, number, number], card: VolumeCard): Placement {
  const p = card.input.placement;
  if (p.kind !== "sliding") throw new Error("slidingPlacement needs a sliding card");
  const patch: [number, number, number] = [card.input.width, card.input.height, card.input.depth];
  const box = [0, 1, 2].map((a) => Math.max(dims[a], patch[a])) as [number, number, number];
  return {
    kind: "sliding",
    box,
    offset: [0, 1, 2].map((a) => Math.floor((box[a] - dims[a]) / 2)) as [number, number, number],
    fill: p.fill,
    patch,
    overlap: p.overlap,
    weighting: p.weighting,
  };
}

/** The card's placement of a volume of dims [nx, ny, nz]. */
export function placeVolume(dims: [number, number, number], card: VolumeCard): Placement {
  return card.input.placement.kind === "sliding" ? slidingPlacement(dims, card) : centrePlacement(dims, card);
}

/** Values on the volume grid (i fastest) → the box (W fastest), `fill` outside the volume. */
export function toBox<T extends Float32Array | Uint8Array>(
  values: T,
  dims: [number, number, number],
  p: Placement,
  fill: number,
  make: (n: number) => T,
): T {
  const [bx, by, bz] = p.box;
  const [nx, ny, nz] = dims;
  const out = make(bx * by * bz);
  out.fill(fill);
  for (let bk = 0; bk < bz; bk++) {
    const k = bk - p.offset[2];
    if (k < 0 || k >= nz) continue;
    for (let bj = 0; bj < by; bj++) {
      const j = bj - p.offset[1];
      if (j < 0 || j >= ny) continue;
      const i0 = Math.max(0, -p.offset[0]),
        i1 = Math.min(nx, bx - p.offset[0]);
      const src = (k * ny + j) * nx;
      out.set(values.subarray(src + i0, src + i1) as never, (bk * by + bj) * bx + i0 + p.offset[0]);
    }
  }
  return out;
}

/** A map on the box → the volume grid; voxels the box does not see (cropped) get `outside`. */
export function fromBox(values: Float32Array, dims: [number, number, number], p: Placement, outside: number): Float32Array {
  const [bx, by] = p.box;
  const [nx, ny, nz] = dims;
  const out = new Float32Array(nx * ny * nz);
  for (let k = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++) {
        const b = [i + p.offset[0], j + p.offset[1], k + p.offset[2]];
        out[(k * ny + j) * nx + i] = b.every((x, a) => x >= 0 && x < p.box[a]) ? values[(b[2] * by + b[1]) * bx + b[0]] : outside;
      }
    }
  }
  return out;
}

/**
 * Refuses voxels that are not finite (they would turn the per-volume normalisation into NaN). Axes and
 * spacing other than the card's are not refused: the volume is brought into model space (model-space.ts).
 */
export function checkVolumeForCard(volume: Volume, name: string): void {
  let bad = 0;
  for (const v of volume.data) if (!Number.isFinite(v)) bad++;
  if (bad > 0) fail(`${name} has ${bad} voxels that are NaN or infinite`, "replace them (e.g. by 0 or the background value) before explaining");
}

/** The volume checked and brought into the card's axes and spacing: the one path for explain and bank build. */
export function intoModelSpace(volume: Volume, card: VolumeCard, name: string, slicing?: SliceSetting): { space: ModelSpace; modelVolume: Volume } {
  checkVolumeForCard(volume, name);
  const space = modelSpaceOf(volume, card, name, slicing?.axis);
  return { space, modelVolume: volumeToModel(volume, space) };
}

/** Values on the model's box → the input volume's grid (NaN where the box does not see the volume). */
export function boxToInput(kase: Pick<VolumeCase, "space" | "placement">, values: Float32Array): Float32Array {
  return mapToInput(kase.space, fromBox(values, kase.space.dims, kase.placement, Number.NaN));
}

/** A box corner in the model's box, (D, H, W), as voxel (k, j, i) of the input volume: the corner nearest its origin. */
export function boxCornerOnInput(
  kase: Pick<VolumeCase, "space" | "placement">,
  z: number,
  y: number,
  x: number,
  size: number[],
): [number, number, number] {
  const s = kase.space;
  const lo = [x, y, z].map((v, a) => v - kase.placement.offset[a]);
  const hi = lo.map((v, a) => v + size[a] - 1);
  const toInput = (p: number[]): number[] => {
    const r = p.map((v, a) => (s.resample ? ((v + 0.5) * s.resample.to[a]) / s.resample.from[a] - 0.5 : v));
    const q = [0, 0, 0];
    s.ornt.axis.forEach((ax, a) => (q[ax] = s.ornt.flip[a] ? s.input.dims[ax] - 1 - r[a] : r[a]));
    return q;
  };
  const a = toInput(lo),
    b = toInput(hi);
  const c = a.map((v, i) => Math.max(0, Math.round(Math.min(v, b[i]))));
  return [c[2], c[1], c[0]];
}

export async function loadVolumeCase(
  model: { card: VolumeCard; slicing?: SliceSetting; bind?: (spacing: [number, number, number]) => void },
  imagePath: string,
  opts: VolumeCaseOptions = {},
): Promise<VolumeCase> {
  const volume = await readVolume(imagePath, { seriesUid: opts.seriesUid });
  const { card } = model;
  const { space, modelVolume } = intoModelSpace(volume, card, imagePath, model.slicing);
  // a 2D model slice by slice takes the volume's own spacing as its card's (boxes in mm, banks)
  model.bind?.(space.spacing);
  const normalise = volumeNormaliser(modelVolume.data, card.input.normalisation);
  const norm = modelVolume.data.map(normalise);
  const placement = placeVolume(modelVolume.dims, card);
  // slice by slice, the axes' permutation is the slicing itself (its note is the caller's)
  const notes: string[] = model.slicing ? [] : describeModelSpace(space);
  const cropped = placement.offset.some((o) => o < 0);
  if (cropped)
    notes.push(
      `the volume (${modelVolume.dims.join("x")}${space.identity ? "" : " in model space"}) is larger than the model's box (${placement.box.join("x")}) on some axis: it was cropped about its centre, and the map is NaN where the model did not see it; a card with input.placement {"kind": "sliding"} runs the model over the whole volume in overlapping windows instead`,
    );
  const input = toBox(norm, modelVolume.dims, placement, placement.fill, (n) => new Float32Array(n));
  const kase: VolumeCase = {
    id: volumeId(imagePath),
    imagePath,
    imageSha256: volumeSha(volume),
    volume,
    space,
    modelVolume,
    input,
    placement,
    normalise,
    notes,
  };
  if (opts.label !== undefined && opts.mask === undefined)
    fail("--label is given without --mask", "pass --mask labels.nii.gz (the label map) with --label");
  if (opts.mask !== undefined) {
    const { labelMap: _map, ...m } = await readStructure(opts.mask, volume, imagePath, opts.label);
    Object.assign(kase, m, { mask: maskToModel(space, m.mask, (n) => new Uint8Array(n)) });
  }
  return kase;
}

/**
 * A structure's mask from a NIfTI label map or a DICOM SEG, on the image's grid: the one reader of a
 * mask file for explain and for data sets. `label` (--label, or a manifest case's `labels`) names the
 * labels of the map, or the segment numbers of the SEG, that make the structure (several: their
 * union). Without it a label map gives every label > 0, and a SEG its one segment: a SEG holding
 * several segments is refused, listing them, since its segments are usually different structures.
 * `allowEmpty`: a label map holding only 0 gives an empty mask (a data set notes it) instead of an error.
 */
export async function readStructure(
  path: string,
  image: Volume,
  imagePath: string,
  label?: string | readonly number[],
  o: { allowEmpty?: boolean } = {},
): Promise<{ mask: Uint8Array; maskPath: string; maskSha256: string; labels: number[]; labelMap?: Volume }> {
  let dir = false;
  try {
    dir = statSync(path).isDirectory();
  } catch {
    fail(`mask ${path} does not exist`, "check the --mask path (a NIfTI label map, or a DICOM SEG file)");
  }
  const wanted = typeof label === "string" ? parseLabels(label) : label && [...label];
  if (!dir && (isNiftiPath(path) || (await sniffVolume(path)) === "nifti")) {
    const map = await readNifti(path);
    checkSameGeometry(image, map, [`image ${basename(imagePath)}`, `mask ${basename(path)}`]);
    const labels = wanted ?? labelsPresent(map);
    if (labels === undefined)
      fail(`mask ${path} is not a label map (its values are not a few whole numbers)`, "give a label map (0 background, 1, 2, ... structures)");
    if (labels.length === 0 && !o.allowEmpty) fail(`mask ${path} holds only 0: no labelled voxel`, "give the label map of this volume");
    const mask = labelMask(map, labels, `mask ${basename(path)}`);
    return {
      mask,
      maskPath: path,
      maskSha256: sha256(new Uint8Array(map.data.buffer, map.data.byteOffset, map.data.byteLength)),
      labels,
      labelMap: map,
    };
  }
  const segs = await Promise.all((wanted ?? [undefined]).map((segment) => readDicomSegMask(path, image, segment === undefined ? {} : { segment })));
  const mask = new Uint8Array(image.data.length);
  for (const seg of segs) for (let i = 0; i < mask.length; i++) mask[i] |= seg.mask[i]!;
  return { mask, maskPath: path, maskSha256: sha256(mask), labels: segs.map((s) => s.segment.number) };
}

function volumeId(path: string): string {
  return basename(path)
    .replace(/\.nii(\.gz)?$/i, "")
    .replace(/\.dcm$/i, "");
}

/** The identity of the voxels and their grid (a DICOM series has no single file to hash). */
export function volumeSha(v: Volume): string {
  return sha256(
    Buffer.concat([
      Buffer.from(JSON.stringify({ dims: v.dims, affine: v.affine })),
      Buffer.from(v.data.buffer, v.data.byteOffset, v.data.byteLength),
    ]),
  );
}
