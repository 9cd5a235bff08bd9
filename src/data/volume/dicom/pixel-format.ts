/**
 * What a file's pixel data should hold (rows, columns, frames, sample layout), checked before any
 * buffer is allocated: a header claiming more voxels than segcause decodes, or more bytes than the
 * file holds, is refused here.
 */
import type { Element } from "dicom-parser";
import { fail } from "../../../errors.js";
import { formatBytes } from "../../../util/read.js";
import { MAX_VOLUME_VOXELS } from "../volume.js";
import { frameCount, TAG, text } from "./attributes.js";
import type { DicomFile } from "./parse.js";
import { nameOf } from "./transfer-syntax.js";

export interface PixelFormat {
  rows: number;
  columns: number;
  frames: number;
  bitsAllocated: number;
  bitsStored: number;
  highBit: number;
  signed: boolean;
  /** MONOCHROME1: low values are bright; kept as stored (rescaled) values, not inverted */
  photometric: string;
  /** samples are IEEE floats (Float/Double Float Pixel Data) */
  float: boolean;
  element: Element;
}

export function pixelFormat(file: DicomFile): PixelFormat {
  const ds = file.dataSet;
  const where = `DICOM file ${file.path}`;
  const element = ds.elements[TAG.pixelData] ?? ds.elements[TAG.floatPixelData] ?? ds.elements[TAG.doubleFloatPixelData];
  if (!element) fail(`${where} has no pixel data`, "give an image, a multi-frame image or a SEG, not a report or presentation state");
  const float = element.tag !== TAG.pixelData;
  const rows = ds.uint16(TAG.rows) ?? 0;
  const columns = ds.uint16(TAG.columns) ?? 0;
  const frames = frameCount(ds);
  const samples = ds.uint16(TAG.samplesPerPixel) ?? 1;
  const bitsAllocated = float ? (element.tag === TAG.floatPixelData ? 32 : 64) : (ds.uint16(TAG.bitsAllocated) ?? 0);
  const bitsStored = float ? bitsAllocated : (ds.uint16(TAG.bitsStored) ?? bitsAllocated);
  const highBit = float ? bitsAllocated - 1 : (ds.uint16(TAG.highBit) ?? bitsStored - 1);
  const signed = (ds.uint16(TAG.pixelRepresentation) ?? 0) === 1;
  const photometric = text(ds, TAG.photometric) ?? "MONOCHROME2";
  if (!(rows > 0 && columns > 0 && Number.isInteger(frames) && frames > 0))
    fail(`${where} has an invalid image size (${columns} columns, ${rows} rows, ${frames} frames)`, "the file is damaged");
  if (samples !== 1 || !photometric.startsWith("MONOCHROME"))
    fail(
      `${where} is a ${photometric} image with ${samples} samples per pixel; segcause reads greyscale volumes only`,
      "convert it to greyscale (MONOCHROME2)",
    );
  if (
    ![1, 8, 16, 32, 64].includes(bitsAllocated) ||
    (bitsAllocated === 64 && !float) ||
    !(bitsStored >= 1 && bitsStored <= bitsAllocated) ||
    highBit < bitsStored - 1 ||
    highBit >= bitsAllocated
  )
    fail(
      `${where} has unsupported bit depths (allocated ${bitsAllocated}, stored ${bitsStored}, high bit ${highBit})`,
      "the file is damaged or uses a layout segcause does not read",
    );
  const voxels = rows * columns * frames;
  if (voxels > MAX_VOLUME_VOXELS)
    fail(`${where} claims ${columns}x${rows}x${frames} voxels, more than segcause reads (${MAX_VOLUME_VOXELS})`, "crop or split the series");
  if (!element.encapsulatedPixelData) {
    if (file.transferSyntax.codec !== "native" && !float)
      fail(`${where} declares ${nameOf(file.transferSyntax)} but its pixel data is not encapsulated`, "the file is damaged");
    const need = Math.ceil((voxels * bitsAllocated) / 8);
    const have = Math.min(element.length, ds.byteArray.length - element.dataOffset);
    if (have < need)
      fail(
        `${where} has ${formatBytes(Math.max(have, 0))} of pixel data, less than its ${columns}x${rows}x${frames} voxels need (${formatBytes(need)})`,
        "the file is truncated or damaged",
      );
  } else if (!element.fragments?.length) fail(`${where} has encapsulated pixel data without fragments`, "the file is truncated or damaged");
  return { rows, columns, frames, bitsAllocated, bitsStored, highBit, signed, photometric, float, element };
}
