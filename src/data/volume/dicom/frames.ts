/**
 * The stored bytes of frame f: a slice of native pixel data, or the fragments of encapsulated pixel
 * data that hold it (found by the basic offset table, by one fragment per frame, or, with neither,
 * by the end-of-image markers of a JPEG-family stream).
 */
import type { Fragment } from "dicom-parser";
import { fail } from "../../../errors.js";
import { dicomParser } from "./libraries.js";
import type { DicomFile } from "./parse.js";
import type { PixelFormat } from "./pixel-format.js";
import { nameOf } from "./transfer-syntax.js";

/** Native pixel data: the whole element (1-bit frames are not byte aligned, callers index bits). */
export function nativePixelBytes(file: DicomFile, fmt: PixelFormat): Uint8Array {
  const { dataOffset, length } = fmt.element;
  const b = file.dataSet.byteArray;
  return new Uint8Array(b.buffer, b.byteOffset + dataOffset, Math.min(length, b.length - dataOffset));
}

const offsetTables = new WeakMap<Fragment[], number[]>();

export function encapsulatedFrame(file: DicomFile, fmt: PixelFormat, f: number): Uint8Array {
  const { dataSet } = file;
  const el = fmt.element;
  const fragments = el.fragments!;
  const where = `DICOM file ${file.path}`;
  try {
    if (el.basicOffsetTable?.length) {
      if (el.basicOffsetTable.length !== fmt.frames)
        fail(`${where} has a basic offset table of ${el.basicOffsetTable.length} entries for ${fmt.frames} frames`, "the file is damaged");
      return dicomParser().readEncapsulatedImageFrame(dataSet, el, f);
    }
    if (fragments.length === fmt.frames) return dicomParser().readEncapsulatedPixelDataFromFragments(dataSet, el, f, 1);
    if (fmt.frames === 1) return dicomParser().readEncapsulatedPixelDataFromFragments(dataSet, el, 0, fragments.length);
    const codec = file.transferSyntax.codec;
    if (codec !== "jpeg2000" && codec !== "jpegls" && codec !== "jpeg-lossless" && codec !== "jpeg-baseline")
      fail(
        `${where} has ${fragments.length} fragments for ${fmt.frames} frames and no basic offset table; ${nameOf(file.transferSyntax)} has no end marker to split them by`,
        "re-encode the file with one fragment per frame",
      );
    let table = offsetTables.get(fragments);
    if (!table) {
      table = dicomParser().createJPEGBasicOffsetTable(dataSet, el);
      offsetTables.set(fragments, table);
    }
    if (table.length !== fmt.frames)
      fail(`${where} has ${table.length} encoded images in its pixel data for ${fmt.frames} frames`, "the file is damaged");
    return dicomParser().readEncapsulatedImageFrame(dataSet, el, f, table);
  } catch (e) {
    if (e instanceof Error && e.name === "SegcauseError") throw e;
    fail(
      `${where}: frame ${f + 1} cannot be read from its fragments (${String(e instanceof Error ? e.message : e)
        .replace(/^dicomParser\.[A-Za-z0-9_.]+:\s*/, "")
        .slice(0, 100)})`,
      "the file is truncated or damaged",
    );
  }
}
