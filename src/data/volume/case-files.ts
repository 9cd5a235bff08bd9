/**
 * Reading a volume data set's case (see manifest.ts, VolumeEntry): its image as a Volume and its mask
 * on the image's voxel grid. A NIfTI label map must lie on the image's grid (dims and affine); a DICOM
 * SEG must reference the image series. The mask is the case's `labels`, else every label > 0 of a
 * label map or the one segment of a SEG (volume-case.ts, readStructure: the reader explain uses).
 */
import { fail } from "../../errors.js";
import type { VolumeEntry } from "../manifest.js";
import { readDicomVolume } from "./dicom/index.js";
import { readNifti } from "./nifti.js";
import type { Volume } from "./volume.js";
import { readStructure } from "./volume-case.js";

export interface VolumeCaseMask {
  /** 1 where any label (or segment) is, else 0; the image's layout */
  mask: Uint8Array;
  /** label values (NIfTI) or segment numbers (SEG) that make the mask */
  labels: number[];
  /** the label map itself (NIfTI masks), for readers that pick one label (labelMask) */
  labelMap?: Volume;
}

/** The case's image: a NIfTI file, or the DICOM series (a file, or the folder's series `c.series`). */
export async function readCaseImage(c: Pick<VolumeEntry, "image" | "format" | "series">): Promise<Volume> {
  return c.format === "nifti" ? readNifti(c.image) : readDicomVolume(c.image, c.series ? { seriesUid: c.series } : {});
}

/**
 * The case's mask over `image` (read with readCaseImage), by the reader explain uses (readStructure):
 * the case's `labels` (label values or SEG segment numbers), else every label > 0 of a label map or
 * the one segment of a SEG (a SEG of several segments needs `labels`). Refused in one line when it
 * does not fit the image.
 */
export async function readCaseMask(c: Pick<VolumeEntry, "image" | "mask" | "labels">, image: Volume): Promise<VolumeCaseMask> {
  if (!c.mask) fail(`case image ${c.image} has no mask in the manifest`, "add its mask, or use a case that has one");
  const { mask, labels, labelMap } = await readStructure(c.mask, image, c.image, c.labels, { allowEmpty: true });
  return { mask, labels, ...(labelMap ? { labelMap } : {}) };
}
