/** DICOM input: series → Volume, SEG → mask, and what the decoders support. */
export { readDicomVolume, readDicomGeometry, type DicomSlice } from "./read-volume.js";
export { readDicomSegMask, segmentsOf, SEG_SOP_CLASS, type SegMask, type SegOptions, type SegSegment } from "./seg.js";
export { readDicomPixels } from "./decode.js";
export { readSeriesFiles, selectSeries, describeSeries, startsLikeDicom, type SeriesOptions, type SeriesSummary } from "./series.js";
export { readDicomFile, looksLikeDicom, type DicomFile } from "./parse.js";
export { supportedTransferSyntaxes, transferSyntax, nameOf, type TransferSyntax, type Codec } from "./transfer-syntax.js";
export { MAX_VOXELS } from "./pixel-format.js";
export { writeDicomParametricMap, parametricMapDataset, parametricMapBytes, PARAMETRIC_MAP_SOP_CLASS, type ParametricMapOptions } from "./parametric-map.js";
