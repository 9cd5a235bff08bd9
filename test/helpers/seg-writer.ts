/**
 * Writes small binary DICOM SEGs for tests (dcmjs, independent of the reader under test): each frame
 * marks the first `rows` rows of one source image (a slice, or a frame of a multi-frame source)
 * with one segment.
 */
import { writeFileSync } from "node:fs";
import { createRequire } from "node:module";

const dcmjs = createRequire(import.meta.url)("dcmjs") as {
  data: {
    DicomDict: new (meta: object) => { dict: object; write(): ArrayBuffer };
    DicomMetaDictionary: { denaturalizeDataset(d: object): object; uid(): string };
  };
};

const SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4";

export interface SegFrame {
  /** the source image the frame lies on */
  sopClassUid: string;
  sopInstanceUid: string;
  /** the frame of a multi-frame source (1-based); absent for one file per slice */
  frameNumber?: number;
  /** Image Position (Patient) of the frame, when the source has several frames */
  position?: number[];
  segment: number;
  /** rows 0..rows-1 are marked */
  rows: number;
}

export function writeBinarySeg(
  path: string,
  o: { seriesUid: string; rows: number; columns: number; segments: { number: number; label: string }[]; frames: SegFrame[] },
): void {
  const plane = o.rows * o.columns;
  const bits = new Uint8Array(Math.ceil((o.frames.length * plane) / 8));
  o.frames.forEach((f, n) => {
    for (let i = 0; i < f.rows * o.columns; i++) bits[(n * plane + i) >> 3]! |= 1 << ((n * plane + i) & 7);
  });
  const D = dcmjs.data.DicomMetaDictionary;
  const uid = D.uid();
  const meta = {
    FileMetaInformationVersion: [new Uint8Array([0, 1]).buffer],
    MediaStorageSOPClassUID: SEG_SOP_CLASS,
    MediaStorageSOPInstanceUID: uid,
    TransferSyntaxUID: "1.2.840.10008.1.2.1",
    ImplementationClassUID: "2.25.1",
  };
  const body = {
    SOPClassUID: SEG_SOP_CLASS,
    SOPInstanceUID: uid,
    Modality: "SEG",
    SegmentationType: "BINARY",
    SamplesPerPixel: 1,
    PhotometricInterpretation: "MONOCHROME2",
    Rows: o.rows,
    Columns: o.columns,
    NumberOfFrames: String(o.frames.length),
    BitsAllocated: 1,
    BitsStored: 1,
    HighBit: 0,
    PixelRepresentation: 0,
    ReferencedSeriesSequence: [{ SeriesInstanceUID: o.seriesUid }],
    SegmentSequence: o.segments.map((s) => ({ SegmentNumber: s.number, SegmentLabel: s.label })),
    PerFrameFunctionalGroupsSequence: o.frames.map((f) => ({
      DerivationImageSequence: [
        {
          SourceImageSequence: [
            {
              ReferencedSOPClassUID: f.sopClassUid,
              ReferencedSOPInstanceUID: f.sopInstanceUid,
              ...(f.frameNumber !== undefined ? { ReferencedFrameNumber: String(f.frameNumber) } : {}),
            },
          ],
        },
      ],
      ...(f.position ? { PlanePositionSequence: [{ ImagePositionPatient: f.position.map(String) }] } : {}),
      SegmentIdentificationSequence: [{ ReferencedSegmentNumber: f.segment }],
    })),
    PixelData: [bits.buffer],
    _vrMap: { PixelData: "OB" },
  };
  const dict = new dcmjs.data.DicomDict(D.denaturalizeDataset(meta));
  dict.dict = D.denaturalizeDataset(body);
  writeFileSync(path, Buffer.from(dict.write()));
}
