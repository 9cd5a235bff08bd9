/** DICOM input: series → Volume, SEG → mask, and what the decoders support. */

export { readDicomPixels } from "./decode.js";
export {
  PARAMETRIC_MAP_SOP_CLASS,
  type ParametricMapOptions,
  parametricMapBytes,
  parametricMapDataset,
  writeDicomParametricMap,
} from "./parametric-map.js";
export { type DicomFile, looksLikeDicom, readDicomFile } from "./parse.js";
export { type DicomSlice, readDicomGeometry, readDicomVolume } from "./read-volume.js";
export { readDicomSegMask, SEG_SOP_CLASS, type SegMask, type SegOptions, type SegSegment, segmentsOf } from "./seg.js";
export { describeSeries, readSeriesFiles, type SeriesOptions, type SeriesSummary, selectSeries, startsLikeDicom } from "./series.js";
export { type Codec, nameOf, supportedTransferSyntaxes, type TransferSyntax, transferSyntax } from "./transfer-syntax.js";
