/**
 * A DICOM series (one file, a multi-frame file, or a folder) → Volume: every frame of the series is
 * a slice, placed by its position; the voxels are the stored values times Rescale Slope plus
 * Rescale Intercept (per frame when the functional groups say so). MONOCHROME1 values are kept as
 * stored: the inversion is a display convention, the model sees the values the scanner wrote.
 */
import { fail } from "../../../errors.js";
import type { Volume } from "../volume.js";
import { MAX_VOLUME_VOXELS } from "../volume.js";
import { framePlane, TAG, text } from "./attributes.js";
import { checkDecodable, decodeFrame } from "./decode.js";
import { type StackGeometry, stackGeometry } from "./geometry.js";
import type { DicomFile } from "./parse.js";
import { type PixelFormat, pixelFormat } from "./pixel-format.js";
import { type SeriesOptions, selectSeries } from "./series.js";
import { nameOf } from "./transfer-syntax.js";

const SEG_CLASS = "1.2.840.10008.5.1.4.1.1.66.4";

export interface DicomSlice {
  file: DicomFile;
  fmt: PixelFormat;
  /** 0-based frame within its file */
  frame: number;
  plane: ReturnType<typeof framePlane>;
  rows: number;
  columns: number;
  label: string;
  sopInstanceUid: string;
}

/** The slices of the series at `path`, ordered along the normal, with the grid they form. */
export function readDicomGeometry(path: string, opts: SeriesOptions = {}): StackGeometry<DicomSlice> & { seriesUid: string; files: DicomFile[] } {
  const series = selectSeries(path, opts);
  const slices: DicomSlice[] = [];
  for (const file of series.files) {
    if (text(file.dataSet, TAG.sopClassUid) === SEG_CLASS)
      fail(`DICOM file ${file.path} is a DICOM SEG (a mask), not an image`, "give the image series as the input and the SEG as the mask");
    const fmt = pixelFormat(file);
    checkDecodable(file, fmt);
    const uid = text(file.dataSet, TAG.sopInstanceUid) ?? "";
    for (let f = 0; f < fmt.frames; f++) {
      const label = fmt.frames > 1 ? `DICOM file ${file.path} frame ${f + 1}` : `DICOM file ${file.path}`;
      slices.push({ file, fmt, frame: f, plane: framePlane(file.dataSet, f), rows: fmt.rows, columns: fmt.columns, label, sopInstanceUid: uid });
    }
  }
  if (slices.length * slices[0]!.rows * slices[0]!.columns > MAX_VOLUME_VOXELS)
    fail(
      `DICOM series ${series.uid} at ${path} holds ${slices.length} slices of ${slices[0]!.columns}x${slices[0]!.rows}, more voxels than segcause reads (${MAX_VOLUME_VOXELS})`,
      "crop or split the series",
    );
  const what = `DICOM series ${series.uid} at ${path}`;
  return { ...stackGeometry(slices, what), seriesUid: series.uid, files: series.files };
}

/** Read a DICOM image series as a Volume. */
export async function readDicomVolume(path: string, opts: SeriesOptions = {}): Promise<Volume> {
  const g = readDicomGeometry(path, opts);
  const [nx, ny, nz] = g.dims;
  const data = new Float32Array(nx * ny * nz);
  for (let k = 0; k < nz; k++) {
    const s = g.slices[k]!;
    const values = await decodeFrame(s.file, s.fmt, s.frame);
    const { slope, intercept } = s.plane;
    const base = k * nx * ny;
    for (let i = 0; i < values.length; i++) data[base + i] = values[i]! * slope + intercept;
  }
  const ds = g.files[0]!.dataSet;
  const syntaxes = [...new Set(g.files.map((f) => nameOf(f.transferSyntax)))];
  const oneMultiFrame = g.files.length === 1 && nz > 1;
  return {
    dims: g.dims,
    spacing: g.spacing,
    affine: g.affine,
    data,
    source: {
      kind: "dicom",
      path,
      transferSyntax: syntaxes.join(", "),
      seriesInstanceUid: g.seriesUid,
      studyInstanceUid: text(ds, TAG.studyInstanceUid),
      frameOfReferenceUid: text(ds, TAG.frameOfReferenceUid),
      modality: text(ds, TAG.modality),
      seriesDescription: text(ds, TAG.seriesDescription),
      sopInstanceUids: oneMultiFrame ? [g.slices[0]!.sopInstanceUid] : g.slices.map((s) => s.sopInstanceUid),
      sopClassUid: text(ds, TAG.sopClassUid),
    },
  };
}
