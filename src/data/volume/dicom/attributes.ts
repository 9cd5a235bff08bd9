/**
 * Reading attributes, including those of one frame of an enhanced (multi-frame) object: a frame's
 * plane position, orientation, pixel measures and rescale live in its Per-Frame Functional Groups
 * item, else in the Shared Functional Groups, else (classic objects) at the top level.
 */
import type { DataSet } from "dicom-parser";

export const TAG = {
  sopClassUid: "x00080016",
  sopInstanceUid: "x00080018",
  modality: "x00080060",
  seriesDescription: "x0008103e",
  studyInstanceUid: "x0020000d",
  seriesInstanceUid: "x0020000e",
  frameOfReferenceUid: "x00200052",
  imagePosition: "x00200032",
  imageOrientation: "x00200037",
  sliceThickness: "x00180050",
  spacingBetweenSlices: "x00180088",
  samplesPerPixel: "x00280002",
  photometric: "x00280004",
  numberOfFrames: "x00280008",
  rows: "x00280010",
  columns: "x00280011",
  pixelSpacing: "x00280030",
  bitsAllocated: "x00280100",
  bitsStored: "x00280101",
  highBit: "x00280102",
  pixelRepresentation: "x00280103",
  planarConfiguration: "x00280006",
  rescaleIntercept: "x00281052",
  rescaleSlope: "x00281053",
  pixelData: "x7fe00010",
  floatPixelData: "x7fe00008",
  doubleFloatPixelData: "x7fe00009",
  sharedGroups: "x52009229",
  perFrameGroups: "x52009230",
  planePositionSeq: "x00209113",
  planeOrientationSeq: "x00209116",
  pixelMeasuresSeq: "x00289110",
  pixelValueTransformSeq: "x00289145",
  derivationImageSeq: "x00089124",
  sourceImageSeq: "x00082112",
  referencedSopInstanceUid: "x00081155",
  referencedFrameNumber: "x00081160",
  referencedSeriesSeq: "x00081115",
  segmentSeq: "x00620002",
  segmentNumber: "x00620004",
  segmentLabel: "x00620005",
  segmentationType: "x00620001",
  segmentIdentificationSeq: "x0062000a",
  referencedSegmentNumber: "x0062000b",
} as const;

/** The first item of a sequence, if there is one. */
export function firstItem(ds: DataSet | undefined, seqTag: string): DataSet | undefined {
  return ds?.elements[seqTag]?.items?.[0]?.dataSet;
}

export function items(ds: DataSet, seqTag: string): DataSet[] {
  return (ds.elements[seqTag]?.items ?? []).flatMap((it) => (it.dataSet ? [it.dataSet] : []));
}

/** The functional group `seqTag` for frame `f` (0-based): per-frame, else shared. */
export function frameGroup(ds: DataSet, f: number, seqTag: string): DataSet | undefined {
  const perFrame = ds.elements[TAG.perFrameGroups]?.items?.[f]?.dataSet;
  return firstItem(perFrame, seqTag) ?? firstItem(firstItem(ds, TAG.sharedGroups), seqTag);
}

/** A multi-valued decimal string (DS) as numbers, or undefined when absent or not all numbers. */
export function numbers(ds: DataSet | undefined, tag: string, count: number): number[] | undefined {
  if (!ds?.elements[tag]) return undefined;
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const v = ds.floatString(tag, i);
    if (v === undefined || !Number.isFinite(v)) return undefined;
    out.push(v);
  }
  return out;
}

export function text(ds: DataSet | undefined, tag: string): string | undefined {
  const s = ds?.string(tag)?.trim();
  return s ? s : undefined;
}

export function frameCount(ds: DataSet): number {
  const n = ds.intString(TAG.numberOfFrames);
  return n === undefined || !Number.isFinite(n) ? 1 : n;
}

/** Where frame f lies: the attribute of its functional group, else the top-level attribute. */
export interface FramePlane {
  /** LPS mm of the first voxel's centre */
  position?: number[];
  /** row direction then column direction (LPS) */
  orientation?: number[];
  /** [row spacing, column spacing] mm: between rows (along a column), between columns */
  pixelSpacing?: number[];
  sliceThickness?: number;
  spacingBetweenSlices?: number;
  slope: number;
  intercept: number;
}

export function framePlane(ds: DataSet, f: number): FramePlane {
  const pos = frameGroup(ds, f, TAG.planePositionSeq);
  const ori = frameGroup(ds, f, TAG.planeOrientationSeq);
  const meas = frameGroup(ds, f, TAG.pixelMeasuresSeq);
  const rescale = frameGroup(ds, f, TAG.pixelValueTransformSeq);
  const one = (g: DataSet | undefined, tag: string) => numbers(g, tag, 1)?.[0] ?? numbers(ds, tag, 1)?.[0];
  return {
    position: numbers(pos, TAG.imagePosition, 3) ?? numbers(ds, TAG.imagePosition, 3),
    orientation: numbers(ori, TAG.imageOrientation, 6) ?? numbers(ds, TAG.imageOrientation, 6),
    pixelSpacing: numbers(meas, TAG.pixelSpacing, 2) ?? numbers(ds, TAG.pixelSpacing, 2),
    sliceThickness: one(meas, TAG.sliceThickness),
    spacingBetweenSlices: one(meas, TAG.spacingBetweenSlices),
    slope: one(rescale, TAG.rescaleSlope) ?? 1,
    intercept: one(rescale, TAG.rescaleIntercept) ?? 0,
  };
}
