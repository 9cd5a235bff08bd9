/**
 * Transfer syntaxes: how a file's pixel data is stored, and which decoder (if any) reads it. The table
 * is the one place that says what segcause supports, so refusals name the encoding the same way
 * everywhere.
 */

/** How the frames of a transfer syntax are decoded. */
export type Codec =
  | "native" // uncompressed samples, little or big endian
  | "deflate-frame" // each frame deflated on its own (Deflated Image Frame Compression)
  | "rle"
  | "jpeg2000"
  | "jpegls"
  | "jpeg-lossless"
  | "jpeg-baseline";

export interface TransferSyntax {
  uid: string;
  name: string;
  /** undefined: no decoder; the file is refused with the syntax's name */
  codec?: Codec;
  bigEndian?: boolean;
  /** the whole data set after the file meta group is deflated (inflated before parsing) */
  deflatedDataSet?: boolean;
  /** may differ from the original pixels (the encoder was allowed to lose information) */
  lossy?: boolean;
}

const TABLE: TransferSyntax[] = [
  { uid: "1.2.840.10008.1.2", name: "Implicit VR Little Endian", codec: "native" },
  { uid: "1.2.840.10008.1.2.1", name: "Explicit VR Little Endian", codec: "native" },
  { uid: "1.2.840.10008.1.2.1.98", name: "Encapsulated Uncompressed Explicit VR Little Endian" },
  { uid: "1.2.840.10008.1.2.1.99", name: "Deflated Explicit VR Little Endian", codec: "native", deflatedDataSet: true },
  { uid: "1.2.840.10008.1.2.2", name: "Explicit VR Big Endian", codec: "native", bigEndian: true },
  { uid: "1.2.840.10008.1.2.5", name: "RLE Lossless", codec: "rle" },
  { uid: "1.2.840.10008.1.2.8.1", name: "Deflated Image Frame Compression", codec: "deflate-frame" },
  { uid: "1.2.840.10008.1.2.4.50", name: "JPEG Baseline (Process 1)", codec: "jpeg-baseline", lossy: true },
  { uid: "1.2.840.10008.1.2.4.51", name: "JPEG Extended (Process 2 & 4)" },
  { uid: "1.2.840.10008.1.2.4.57", name: "JPEG Lossless, Non-Hierarchical (Process 14)", codec: "jpeg-lossless" },
  {
    uid: "1.2.840.10008.1.2.4.70",
    name: "JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 [Selection Value 1])",
    codec: "jpeg-lossless",
  },
  { uid: "1.2.840.10008.1.2.4.80", name: "JPEG-LS Lossless", codec: "jpegls" },
  { uid: "1.2.840.10008.1.2.4.81", name: "JPEG-LS Near-Lossless", codec: "jpegls", lossy: true },
  { uid: "1.2.840.10008.1.2.4.90", name: "JPEG 2000 (Lossless Only)", codec: "jpeg2000" },
  { uid: "1.2.840.10008.1.2.4.91", name: "JPEG 2000", codec: "jpeg2000", lossy: true },
  { uid: "1.2.840.10008.1.2.4.92", name: "JPEG 2000 Part 2 Multi-component (Lossless Only)" },
  { uid: "1.2.840.10008.1.2.4.93", name: "JPEG 2000 Part 2 Multi-component" },
  { uid: "1.2.840.10008.1.2.4.100", name: "MPEG2 Main Profile / Main Level" },
  { uid: "1.2.840.10008.1.2.4.102", name: "MPEG-4 AVC/H.264 High Profile / Level 4.1" },
  { uid: "1.2.840.10008.1.2.4.201", name: "High-Throughput JPEG 2000 (Lossless Only)" },
  { uid: "1.2.840.10008.1.2.4.202", name: "High-Throughput JPEG 2000 with RPCL Options (Lossless Only)" },
  { uid: "1.2.840.10008.1.2.4.203", name: "High-Throughput JPEG 2000" },
];

const BY_UID = new Map(TABLE.map((t) => [t.uid, t]));

/** The syntax with this UID; an unknown UID gets no codec, so it is refused by its UID. */
export function transferSyntax(uid: string): TransferSyntax {
  return BY_UID.get(uid) ?? { uid, name: "an unknown transfer syntax" };
}

/** "JPEG Extended (Process 2 & 4) 1.2.840.10008.1.2.4.51": how messages name an encoding. */
export function nameOf(ts: TransferSyntax): string {
  return `${ts.name} ${ts.uid}`;
}

/** The syntaxes segcause decodes, for `segcause formats`-style listings and the README. */
export function supportedTransferSyntaxes(): readonly TransferSyntax[] {
  return TABLE.filter((t) => t.codec !== undefined);
}
