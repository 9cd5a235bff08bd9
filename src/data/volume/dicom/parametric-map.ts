/**
 * A float map over a DICOM series → a DICOM Parametric Map (Float Pixel Data, one frame per slice of
 * the source Volume) that references the source series, so a DICOM viewer overlays it on the images
 * it was computed from. dcmjs 0.51 (the last release that runs on Node 20) serialises the data set;
 * its ParametricMap derivation is a stub, so the IOD's attributes are assembled here, following the
 * layout of highdicom's Parametric Maps.
 */
import { createRequire } from "node:module";
import { fail } from "../../../errors.js";
import { writeFileAtomic } from "../../../util/atomic.js";
import { VERSION } from "../../../version.js";
import { type Volume, voxelCount } from "../volume.js";
import { TAG, text } from "./attributes.js";
import { readDicomFile } from "./parse.js";
import { readDicomGeometry } from "./read-volume.js";

interface Dcmjs {
  data: {
    DicomDict: new (meta: object) => { dict: object; write(): ArrayBuffer };
    DicomMetaDictionary: { denaturalizeDataset(ds: object): object; uid(): string; date(): string; time(): string };
  };
}
let loaded: Dcmjs | undefined;
/** dcmjs, loaded on first use (only a Parametric Map is written with it). */
function dcmjs(): Dcmjs {
  loaded ??= createRequire(import.meta.url)("dcmjs") as Dcmjs;
  return loaded;
}

export const PARAMETRIC_MAP_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.30";
/** segcause's implementation class UID (a UUID-derived 2.25 UID, fixed for the project). */
const IMPLEMENTATION_CLASS_UID = "2.25.114229213946816179600759333155131455138";
const EXPLICIT_LE = "1.2.840.10008.1.2.1";

export interface ParametricMapOptions {
  /** Series Description of the new series, e.g. "PdCR effect map" */
  seriesDescription?: string;
  /** Content Label (a code string: upper case, digits, space and _, at most 16) */
  contentLabel?: string;
  /** what the values are, e.g. "causal effect on Dice"; the real-world value mapping's explanation */
  quantity?: string;
  /** UCUM units of the values; "1" (no units) by default */
  units?: { code: string; meaning: string };
  seriesNumber?: number;
  /** UIDs for the new objects (random 2.25 UIDs when absent) */
  seriesInstanceUid?: string;
  sopInstanceUid?: string;
}

/** A DS value in at most 16 characters. */
function ds(v: number): string {
  for (let p = 12; p > 1; p--) {
    const s = String(Number(v.toPrecision(p)));
    if (s.length <= 16) return s;
  }
  return v.toExponential(6);
}

/** The source's patient/study attributes and the instances each slice comes from. */
function sourceReferences(source: Volume) {
  const src = source.source;
  if (src.kind !== "dicom")
    fail(`a DICOM Parametric Map needs a DICOM source series, not the ${src.kind} file ${src.path}`, "write the map as NIfTI for NIfTI inputs");
  const g = readDicomGeometry(src.path, { seriesUid: src.seriesInstanceUid });
  if (g.dims.some((d, a) => d !== source.dims[a]))
    fail(
      `the DICOM series at ${src.path} is now ${g.dims.join("x")} voxels, not the ${source.dims.join("x")} the map was computed on`,
      "write the map from the series it was computed on",
    );
  const first = g.files[0]!.dataSet;
  const instances = g.slices.map((s) => ({
    classUid: text(s.file.dataSet, TAG.sopClassUid) ?? "",
    uid: s.sopInstanceUid,
    frame: s.fmt.frames > 1 ? s.frame + 1 : undefined,
  }));
  return { first, instances, seriesUid: g.seriesUid };
}

/** The naturalised (dcmjs) data set of a Parametric Map holding `map` over `source`'s grid. */
export function parametricMapDataset(map: Float32Array, source: Volume, opts: ParametricMapOptions = {}): Record<string, unknown> {
  if (map.length !== voxelCount(source))
    fail(`the map has ${map.length} values but the series has ${voxelCount(source)} voxels`, "write a map computed on this series");
  const { first, instances, seriesUid } = sourceReferences(source);
  const [nx, ny, nz] = source.dims;
  const a = source.affine;
  // RAS+ affine columns back to LPS (negate x and y), normalised to direction cosines
  const lps = (c: number) => [-a[c]!, -a[4 + c]!, a[8 + c]!];
  const unit = (v: number[]) => v.map((x) => x / Math.hypot(...v));
  const orientation = [...unit(lps(0)), ...unit(lps(1))].map((v) => ds(v + 0));
  const origin = lps(3);
  const kStep = lps(2);
  const D = dcmjs().data.DicomMetaDictionary;
  const date = D.date();
  const time = D.time();
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of map) {
    if (!Number.isFinite(v)) fail("the map holds a value that is not a finite number", "replace NaN/Infinity before writing a DICOM Parametric Map");
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const frameType = ["DERIVED", "PRIMARY", "VOLUME", "QUANTITY"];
  const dimensionOrg = D.uid();
  const units = opts.units ?? { code: "1", meaning: "no units" };
  const seriesUidNew = opts.seriesInstanceUid ?? D.uid();
  const sopUid = opts.sopInstanceUid ?? D.uid();
  const from = (tag: string) => text(first, tag) ?? "";
  const referenced = instances.filter((r, i) => instances.findIndex((x) => x.uid === r.uid) === i);
  return {
    _meta: {
      FileMetaInformationVersion: [new Uint8Array([0, 1]).buffer],
      MediaStorageSOPClassUID: PARAMETRIC_MAP_SOP_CLASS,
      MediaStorageSOPInstanceUID: sopUid,
      TransferSyntaxUID: EXPLICIT_LE,
      ImplementationClassUID: IMPLEMENTATION_CLASS_UID,
      ImplementationVersionName: `segcause${VERSION}`.slice(0, 16),
    },
    SOPClassUID: PARAMETRIC_MAP_SOP_CLASS,
    SOPInstanceUID: sopUid,
    ImageType: frameType,
    Modality: "OT",
    PatientName: from("x00100010"),
    PatientID: from("x00100020"),
    PatientBirthDate: from("x00100030"),
    PatientSex: from("x00100040"),
    StudyInstanceUID: from(TAG.studyInstanceUid),
    StudyDate: from("x00080020"),
    StudyTime: from("x00080030"),
    ReferringPhysicianName: from("x00080090"),
    StudyID: from("x00200010"),
    AccessionNumber: from("x00080050"),
    SeriesInstanceUID: seriesUidNew,
    SeriesNumber: String(opts.seriesNumber ?? 999),
    SeriesDescription: opts.seriesDescription ?? "segcause map",
    // type 2C (paired body parts): the source's value, or empty when the source states none
    Laterality: from("x00200060"),
    SeriesDate: date,
    SeriesTime: time,
    FrameOfReferenceUID: from(TAG.frameOfReferenceUid),
    PositionReferenceIndicator: "",
    Manufacturer: "segcause",
    ManufacturerModelName: "segcause",
    DeviceSerialNumber: "1",
    SoftwareVersions: VERSION,
    InstanceNumber: "1",
    ContentDate: date,
    ContentTime: time,
    ContentLabel: (opts.contentLabel ?? "MAP")
      .toUpperCase()
      .replace(/[^A-Z0-9_ ]/g, "_")
      .slice(0, 16),
    ContentDescription: (opts.quantity ?? "").slice(0, 64),
    ContentCreatorName: "",
    ContentQualification: "RESEARCH",
    SamplesPerPixel: 1,
    PhotometricInterpretation: "MONOCHROME2",
    Rows: ny,
    Columns: nx,
    BitsAllocated: 32,
    NumberOfFrames: String(nz),
    PresentationLUTShape: "IDENTITY",
    LossyImageCompression: "00",
    BurnedInAnnotation: "NO",
    RecognizableVisualFeatures: "NO",
    PixelPresentation: "MONOCHROME",
    ReferencedSeriesSequence: [
      {
        SeriesInstanceUID: seriesUid,
        ReferencedInstanceSequence: referenced.map((r) => ({ ReferencedSOPClassUID: r.classUid, ReferencedSOPInstanceUID: r.uid })),
      },
    ],
    SourceImageSequence: instances.map((r) => ({
      ReferencedSOPClassUID: r.classUid,
      ReferencedSOPInstanceUID: r.uid,
      ...(r.frame ? { ReferencedFrameNumber: String(r.frame) } : {}),
    })),
    DimensionOrganizationSequence: [{ DimensionOrganizationUID: dimensionOrg }],
    DimensionIndexSequence: [
      {
        DimensionOrganizationUID: dimensionOrg,
        DimensionIndexPointer: 0x00200032,
        FunctionalGroupPointer: 0x00209113,
        DimensionDescriptionLabel: "Image Position Patient",
      },
    ],
    AcquisitionContextSequence: [],
    SharedFunctionalGroupsSequence: [
      {
        PlaneOrientationSequence: [{ ImageOrientationPatient: orientation }],
        PixelMeasuresSequence: [
          {
            PixelSpacing: [ds(source.spacing[1]), ds(source.spacing[0])],
            SliceThickness: ds(source.spacing[2]),
            SpacingBetweenSlices: ds(source.spacing[2]),
          },
        ],
        PixelValueTransformationSequence: [{ RescaleIntercept: "0", RescaleSlope: "1", RescaleType: "US" }],
        ParametricMapFrameTypeSequence: [{ FrameType: frameType }],
        RealWorldValueMappingSequence: [
          {
            LUTExplanation: (opts.quantity ?? "map value").slice(0, 64),
            LUTLabel: "MAP",
            MeasurementUnitsCodeSequence: [{ CodeValue: units.code, CodingSchemeDesignator: "UCUM", CodeMeaning: units.meaning }],
            DoubleFloatRealWorldValueFirstValueMapped: lo,
            DoubleFloatRealWorldValueLastValueMapped: hi,
            RealWorldValueIntercept: 0,
            RealWorldValueSlope: 1,
          },
        ],
      },
    ],
    PerFrameFunctionalGroupsSequence: Array.from({ length: nz }, (_, k) => ({
      FrameContentSequence: [{ DimensionIndexValues: k + 1 }],
      PlanePositionSequence: [{ ImagePositionPatient: origin.map((o, i) => ds(o + k * kStep[i]! + 0)) }],
      DerivationImageSequence: [],
    })),
    FloatPixelData: [map.slice().buffer],
  };
}

/** Serialise a Parametric Map to bytes (Explicit VR Little Endian). */
export function parametricMapBytes(dataset: Record<string, unknown>): Uint8Array {
  const { DicomMetaDictionary: D, DicomDict } = dcmjs().data;
  const { _meta, ...body } = dataset;
  const dict = new DicomDict(D.denaturalizeDataset(_meta as object));
  dict.dict = D.denaturalizeDataset(body);
  return new Uint8Array(dict.write());
}

/** Write `map` (the source Volume's layout) as a DICOM Parametric Map file at `path`, atomically. */
export async function writeDicomParametricMap(path: string, map: Float32Array, source: Volume, opts: ParametricMapOptions = {}): Promise<void> {
  await writeFileAtomic(path, parametricMapBytes(parametricMapDataset(map, source, opts)));
  // read back: a file segcause cannot read is not left looking complete
  readDicomFile(path, "DICOM Parametric Map");
}
