/**
 * Frame f of a file → its stored values (one number per pixel, rows then columns), decoded by the
 * transfer syntax's codec, then cut to Bits Stored and sign-extended when Pixel Representation says
 * signed. Rescale is applied by the caller (it may differ per frame).
 */
import { inflateRawSync } from "node:zlib";
import { fail } from "../../../errors.js";
import { encapsulatedFrame, nativePixelBytes } from "./frames.js";
import { jpegLossless, wasmCodec } from "./libraries.js";
import { type DicomFile, readDicomFile } from "./parse.js";
import { type PixelFormat, pixelFormat } from "./pixel-format.js";
import { decodeRleFrame } from "./rle.js";
import { streamSize } from "./stream-size.js";
import { nameOf } from "./transfer-syntax.js";

/** Refuse a file whose encoding has no decoder, by the encoding's name. */
export function checkDecodable(file: DicomFile, fmt: PixelFormat): void {
  const ts = file.transferSyntax;
  if (!ts.codec)
    fail(
      `DICOM file ${file.path}: ${nameOf(ts)} is not supported`,
      "convert it to an uncompressed or lossless transfer syntax (e.g. gdcmconv --raw)",
    );
  if (ts.codec === "jpeg-baseline" && fmt.bitsAllocated !== 8)
    fail(`DICOM file ${file.path}: ${nameOf(ts)} with ${fmt.bitsAllocated}-bit samples is not supported`, "convert it with gdcmconv --raw");
}

/** Stored values of frame f (0-based). */
export async function decodeFrame(file: DicomFile, fmt: PixelFormat, f: number): Promise<Float64Array> {
  checkDecodable(file, fmt);
  const pixels = fmt.rows * fmt.columns;
  const where = `DICOM file ${file.path}, frame ${f + 1}`;
  const codec = file.transferSyntax.codec!;
  if (!fmt.element.encapsulatedPixelData) return fromNative(nativePixelBytes(file, fmt), fmt, f, !!file.transferSyntax.bigEndian);
  const bytes = encapsulatedFrame(file, fmt, f);
  const bytesPerSample = Math.max(1, fmt.bitsAllocated / 8);
  // 1-bit frames (SEG) are packed 8 pixels a byte within each encapsulated frame
  const frameBytes = fmt.bitsAllocated === 1 ? Math.ceil(pixels / 8) : pixels * bytesPerSample;
  switch (codec) {
    case "rle":
      return fromNative(decodeRleFrame(bytes, fmt.bitsAllocated === 1 ? frameBytes : pixels, bytesPerSample, where), fmt, 0, false);
    case "deflate-frame": {
      let raw: Buffer;
      try {
        raw = inflateRawSync(bytes, { maxOutputLength: frameBytes });
      } catch {
        fail(`${where} does not inflate to the ${frameBytes} bytes it should hold`, "the file is truncated or damaged");
      }
      if (raw.length !== frameBytes) fail(`${where} inflates to ${raw.length} bytes, not ${frameBytes}`, "the file is damaged");
      return fromNative(raw, fmt, 0, false);
    }
    case "jpeg-lossless":
    case "jpeg2000":
    case "jpegls":
    case "jpeg-baseline":
      return fromDecoded(await decodeCompressed(codec, bytes, fmt, where, nameOf(file.transferSyntax)), fmt, where);
    case "native":
      fail(`${where}: ${nameOf(file.transferSyntax)} pixel data should not be encapsulated`, "the file is damaged");
  }
}

/** A JPEG-family frame, after its declared size is checked against the DICOM header. */
async function decodeCompressed(codec: "jpeg-lossless" | keyof typeof WASM, bytes: Uint8Array, fmt: PixelFormat, where: string, syntax: string) {
  const size = streamSize(bytes);
  if (!size) fail(`${where} is not a ${syntax} stream (no frame header)`, "the file is damaged");
  if (size.width !== fmt.columns || size.height !== fmt.rows)
    fail(`${where} holds a ${size.width}x${size.height} image, not the ${fmt.columns}x${fmt.rows} its DICOM header states`, "the file is damaged");
  if (codec !== "jpeg-lossless") return decodeWasm(codec, bytes, fmt, where);
  try {
    return new (jpegLossless().Decoder)().decode(bytes.buffer, bytes.byteOffset, bytes.length, fmt.bitsAllocated <= 8 ? 1 : 2);
  } catch (e) {
    fail(`${where} does not decode as ${syntax} (${e instanceof Error ? e.message : String(e)})`, "the file is damaged");
  }
}

const WASM = {
  jpeg2000: ["openjpeg", "J2KDecoder"],
  jpegls: ["charls", "JpegLSDecoder"],
  "jpeg-baseline": ["libjpeg-turbo-8bit", "JPEGDecoder"],
} as const;

async function decodeWasm(
  codec: keyof typeof WASM,
  bytes: Uint8Array,
  fmt: PixelFormat,
  where: string,
): Promise<Uint8Array | Uint16Array | Int16Array> {
  const [lib, cls] = WASM[codec];
  const decoder = new (await wasmCodec(lib))[cls]!();
  try {
    decoder.getEncodedBuffer(bytes.length).set(bytes);
    try {
      decoder.decode();
    } catch (e) {
      fail(
        `${where} does not decode (${lib}: ${e instanceof Error ? e.message : typeof e === "number" ? "decoder error" : String(e)})`,
        "the file is damaged",
      );
    }
    const info = decoder.getFrameInfo();
    if (info.width !== fmt.columns || info.height !== fmt.rows || info.componentCount !== 1)
      fail(
        `${where} decodes to ${info.width}x${info.height}x${info.componentCount} samples, not the ${fmt.columns}x${fmt.rows}x1 its header states`,
        "the file is damaged",
      );
    const decoded = decoder.getDecodedBuffer();
    // copy out of WASM memory before delete() frees it
    const copy = new Uint8Array(decoded);
    if (info.bitsPerSample <= 8) return copy;
    return info.isSigned ? new Int16Array(copy.buffer) : new Uint16Array(copy.buffer);
  } finally {
    decoder.delete();
  }
}

/** Stored value from an unsigned container word: Bits Stored bits ending at High Bit, sign-extended. */
function storedValue(fmt: PixelFormat, shift: number): (u: number) => number {
  const bits = fmt.bitsStored;
  const range = 2 ** bits;
  const half = range / 2;
  return (u) => {
    const v = Math.floor(u / 2 ** shift) % range;
    return fmt.signed && v >= half ? v - range : v;
  };
}

/** A codec's output: one sample per pixel, value in the low Bits Stored bits. */
function fromDecoded(out: Uint8Array | Uint16Array | Int16Array, fmt: PixelFormat, where: string): Float64Array {
  const pixels = fmt.rows * fmt.columns;
  if (out.length !== pixels) fail(`${where} decodes to ${out.length} samples, not ${pixels}`, "the file is damaged");
  const container = out instanceof Uint8Array ? 256 : 65536;
  const value = storedValue(fmt, 0);
  const res = new Float64Array(pixels);
  for (let i = 0; i < pixels; i++) res[i] = value(((out[i]! % container) + container) % container);
  return res;
}

/** Uncompressed samples of frame f in `bytes` (the whole pixel data for native, one frame otherwise). */
function fromNative(bytes: Uint8Array, fmt: PixelFormat, f: number, bigEndian: boolean): Float64Array {
  const pixels = fmt.rows * fmt.columns;
  const res = new Float64Array(pixels);
  if (fmt.bitsAllocated === 1) {
    const first = f * pixels;
    for (let i = 0; i < pixels; i++) {
      const bit = first + i;
      res[i] = (bytes[bit >> 3]! >> (bit & 7)) & 1;
    }
    return res;
  }
  const size = fmt.bitsAllocated / 8;
  const view = new DataView(bytes.buffer, bytes.byteOffset + f * pixels * size, pixels * size);
  const le = !bigEndian;
  if (fmt.float) {
    for (let i = 0; i < pixels; i++) res[i] = size === 4 ? view.getFloat32(i * 4, le) : view.getFloat64(i * 8, le);
    return res;
  }
  const value = storedValue(fmt, fmt.highBit + 1 - fmt.bitsStored);
  for (let i = 0; i < pixels; i++) {
    const u = size === 1 ? view.getUint8(i) : size === 2 ? view.getUint16(i * 2, le) : view.getUint32(i * 4, le);
    res[i] = value(u);
  }
  return res;
}

/** Every frame's stored values and the pixel format, without geometry (any image or SEG file). */
export async function readDicomPixels(path: string): Promise<{ file: DicomFile; format: PixelFormat; frames: Float64Array[] }> {
  const file = readDicomFile(path);
  const format = pixelFormat(file);
  checkDecodable(file, format);
  const frames: Float64Array[] = [];
  for (let f = 0; f < format.frames; f++) frames.push(await decodeFrame(file, format, f));
  return { file, format, frames };
}
