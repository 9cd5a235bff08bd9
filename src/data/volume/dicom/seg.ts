/**
 * A DICOM SEG as a mask over its source series' Volume. Each SEG frame names the slice it segments by
 * Referenced SOP Instance UID (Derivation Image → Source Image); frames are placed by that UID, never
 * by their order, so a SEG whose frames run in another order than the slices still lands on the right
 * slices.
 */
import type { DataSet } from "dicom-parser";
import { fail } from "../../../errors.js";
import type { Volume } from "../volume.js";
import { firstItem, frameGroup, framePlane, items, TAG, text } from "./attributes.js";
import { checkDecodable, decodeFrame } from "./decode.js";
import { readDicomFile } from "./parse.js";
import { pixelFormat } from "./pixel-format.js";
import { readDicomGeometry } from "./read-volume.js";

export const SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4";

export interface SegSegment {
  number: number;
  label: string;
}

export interface SegMask {
  /** 1 inside the chosen segment, 0 elsewhere; the source Volume's layout (i fastest) */
  mask: Uint8Array;
  segment: SegSegment;
  /** every segment the SEG holds */
  segments: SegSegment[];
  /** SEG frames of the chosen segment placed on source slices */
  frames: number;
}

export interface SegOptions {
  /** segment number, or its label (case-insensitive); needed when the SEG holds several */
  segment?: number | string;
}

const listSegments = (segs: SegSegment[]) => segs.map((s) => `${s.number} "${s.label}"`).join(", ");

/** The segments of a parsed SEG data set. */
export function segmentsOf(ds: DataSet): SegSegment[] {
  return items(ds, TAG.segmentSeq).map((it) => ({ number: it.uint16(TAG.segmentNumber) ?? 0, label: text(it, TAG.segmentLabel) ?? "" }));
}

function chooseSegment(segs: SegSegment[], want: number | string | undefined, path: string): SegSegment {
  const hint = "pass --label N with the segment number, or --label 1,2 for one structure made of several segments";
  if (!segs.length) fail(`DICOM SEG ${path} lists no segments`, "the file is damaged");
  if (want === undefined) {
    if (segs.length > 1) fail(`DICOM SEG ${path} holds ${segs.length} segments: ${listSegments(segs)}`, hint);
    return segs[0]!;
  }
  const found = typeof want === "number" ? segs.find((s) => s.number === want) : segs.filter((s) => s.label.toLowerCase() === want.toLowerCase());
  if (Array.isArray(found)) {
    if (found.length === 1) return found[0]!;
    if (found.length > 1)
      fail(
        `DICOM SEG ${path} has ${found.length} segments labelled "${want}": ${listSegments(found)}`,
        "choose the segment by its number (--label N)",
      );
  } else if (found) return found;
  fail(`DICOM SEG ${path} has no segment ${typeof want === "number" ? want : `"${want}"`}; it holds ${listSegments(segs)}`, hint);
}

/** Where each source slice k is found: its SOP Instance UID, and its frame number for multi-frame sources. */
function sliceIndex(source: Volume & { source: { kind: "dicom" } }): Map<string, number> {
  const src = source.source;
  const index = new Map<string, number>();
  const nz = source.dims[2];
  // one file per slice: the UID alone names the slice
  if (src.sopInstanceUids.length === nz && new Set(src.sopInstanceUids).size === nz)
    src.sopInstanceUids.forEach((uid, k) => index.set(`${uid}#1`, k));
  else {
    // multi-frame files: frames are ordered by position in the Volume, so read which frame is slice k
    const g = readDicomGeometry(src.path, { seriesUid: src.seriesInstanceUid });
    g.slices.forEach((s, k) => index.set(`${s.sopInstanceUid}#${s.frame + 1}`, k));
  }
  return index;
}

/** Read segment `opts.segment` of the SEG at `path` as a mask over `source` (the series it references). */
export async function readDicomSegMask(path: string, source: Volume, opts: SegOptions = {}): Promise<SegMask> {
  const file = readDicomFile(path, "DICOM SEG");
  const ds = file.dataSet;
  if (text(ds, TAG.sopClassUid) !== SEG_SOP_CLASS)
    fail(
      `DICOM file ${path} is not a DICOM SEG (its modality is ${text(ds, TAG.modality) ?? "not stated"})`,
      "give a Segmentation Storage object as the mask",
    );
  const segments = segmentsOf(ds);
  const segment = chooseSegment(segments, opts.segment, path);
  const src = source.source;
  if (src.kind !== "dicom")
    fail(`DICOM SEG ${path} needs its DICOM source series as the image, not a ${src.kind} file`, "give the DICOM series the SEG was drawn on");
  const referenced = items(ds, TAG.referencedSeriesSeq)
    .map((it) => text(it, TAG.seriesInstanceUid))
    .filter((u): u is string => !!u);
  if (referenced.length && !referenced.includes(src.seriesInstanceUid))
    fail(
      `DICOM SEG ${path} references series ${referenced.join(", ")}, not the image series ${src.seriesInstanceUid}`,
      "give the series the SEG was drawn on as the image",
    );
  const fmt = pixelFormat(file);
  checkDecodable(file, fmt);
  const [nx, ny, nz] = source.dims;
  if (fmt.columns !== nx || fmt.rows !== ny)
    fail(
      `DICOM SEG ${path} has ${fmt.columns}x${fmt.rows} frames but the image series has ${nx}x${ny} slices`,
      "give the series the SEG was drawn on as the image",
    );
  const index = sliceIndex(source as Volume & { source: typeof src });
  const fractional = text(ds, TAG.segmentationType) === "FRACTIONAL";
  const maxFraction = ds.uint16("x0062000e") ?? 255;
  const mask = new Uint8Array(nx * ny * nz);
  let placed = 0;
  for (let f = 0; f < fmt.frames; f++) {
    const segNumber = frameGroup(ds, f, TAG.segmentIdentificationSeq)?.uint16(TAG.referencedSegmentNumber);
    if (segNumber === undefined) fail(`DICOM SEG ${path} frame ${f + 1} does not say which segment it holds`, "the file is damaged");
    if (segNumber !== segment.number) continue;
    const sourceImage = firstItem(frameGroup(ds, f, TAG.derivationImageSeq), TAG.sourceImageSeq);
    const uid = text(sourceImage, TAG.referencedSopInstanceUid);
    if (!uid)
      fail(
        `DICOM SEG ${path} frame ${f + 1} does not name its source slice (no Referenced SOP Instance UID in its Derivation Image Sequence)`,
        "segcause places SEG frames by the UID of the slice they segment; re-export the SEG with source image references",
      );
    const frameNumber = sourceImage!.intString(TAG.referencedFrameNumber) ?? 1;
    const k = index.get(`${uid}#${frameNumber}`);
    if (k === undefined)
      fail(
        `DICOM SEG ${path} frame ${f + 1} references slice ${uid}${frameNumber > 1 ? ` frame ${frameNumber}` : ""}, which is not in the image series ${src.seriesInstanceUid}`,
        "give the series the SEG was drawn on as the image (all of its slices)",
      );
    checkPosition(framePlane(ds, f).position, source, k, path, f);
    const values = await decodeFrame(file, fmt, f);
    const threshold = fractional ? maxFraction / 2 : 0;
    const base = k * nx * ny;
    for (let i = 0; i < values.length; i++) if (values[i]! > threshold) mask[base + i] = 1;
    placed++;
  }
  return { mask, segment, segments, frames: placed };
}

/** A frame whose stated position differs from its referenced slice's means the references are wrong. */
function checkPosition(position: number[] | undefined, source: Volume, k: number, path: string, f: number): void {
  if (!position) return;
  const a = source.affine;
  // the slice's first voxel in LPS (the affine is RAS+: negate x and y back)
  const expected = [-(a[2]! * k + a[3]!), -(a[6]! * k + a[7]!), a[10]! * k + a[11]!];
  const off = Math.hypot(...expected.map((v, i) => v - position[i]!));
  if (off > Math.max(0.01, 0.1 * Math.min(...source.spacing)))
    fail(
      `DICOM SEG ${path} frame ${f + 1} lies at (${position.map((v) => v.toFixed(2)).join(", ")}) mm, ${off.toFixed(2)} mm from the slice it references (k = ${k})`,
      "the SEG and the image series disagree; re-export the SEG from this series",
    );
}
