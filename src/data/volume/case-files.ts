/**
 * Reading a volume data set's case (see manifest.ts, VolumeEntry): its image as a Volume and its mask
 * on the image's voxel grid. A NIfTI label map must lie on the image's grid (dims and affine); a DICOM
 * SEG must reference the image series. The mask is the whole structure: every label > 0, or every
 * segment of the SEG; `labels` says which were present, so a reader can pick one.
 */
import { fail } from "../../errors.js";
import type { VolumeEntry } from "../manifest.js";
import { readDicomSegMask, readDicomVolume, segmentsOf } from "./dicom/index.js";
import { readDicomFile } from "./dicom/parse.js";
import { checkSameGeometry } from "./geometry.js";
import { labelsPresent } from "./label-mask.js";
import { readNifti } from "./nifti.js";
import type { Volume } from "./volume.js";

export interface VolumeCaseMask {
  /** 1 where any label (or segment) is, else 0; the image's layout */
  mask: Uint8Array;
  /** label values (NIfTI) or segment numbers (SEG) the mask holds */
  labels: number[];
  /** the label map itself (NIfTI masks), for readers that pick one label (labelMask) */
  labelMap?: Volume;
}

/** The case's image: a NIfTI file, or the DICOM series (a file, or the folder's series `c.series`). */
export async function readCaseImage(c: Pick<VolumeEntry, "image" | "format" | "series">): Promise<Volume> {
  return c.format === "nifti" ? readNifti(c.image) : readDicomVolume(c.image, c.series ? { seriesUid: c.series } : {});
}

/** The case's mask over `image` (read with readCaseImage); refused in one line when it does not fit the image. */
export async function readCaseMask(c: Pick<VolumeEntry, "image" | "mask" | "maskFormat">, image: Volume): Promise<VolumeCaseMask> {
  if (!c.mask) fail(`case image ${c.image} has no mask in the manifest`, "add its mask, or use a case that has one");
  if (c.maskFormat === "nifti") {
    const map = await readNifti(c.mask);
    checkSameGeometry(image, map, [`image ${c.image}`, `mask ${c.mask}`]);
    const labels = labelsPresent(map);
    if (labels === undefined)
      fail(
        `mask ${c.mask} is not a label map: it holds values that are not whole numbers, or more than 32 distinct values`,
        "give a label map (0 background, 1, 2 ... structures) or a binary mask",
      );
    const mask = new Uint8Array(map.data.length);
    for (let i = 0; i < mask.length; i++) if (map.data[i] !== 0) mask[i] = 1;
    return { mask, labels, labelMap: map };
  }
  const segments = segmentsOf(readDicomFile(c.mask, "DICOM SEG").dataSet);
  const mask = new Uint8Array(image.data.length);
  const labels: number[] = [];
  // every segment, so a SEG of several structures is the union of them
  for (const s of segments.length ? segments : [undefined]) {
    const m = await readDicomSegMask(c.mask, image, s ? { segment: s.number } : {});
    if (m.mask.some((v) => v)) labels.push(m.segment.number);
    for (let i = 0; i < mask.length; i++) mask[i] |= m.mask[i]!;
  }
  return { mask, labels };
}
