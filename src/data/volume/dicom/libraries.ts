/**
 * The CommonJS libraries the DICOM reader uses, loaded once through `require` (their UMD/Emscripten
 * bundles have no ES-module named exports), with the small part of their API that segcause calls.
 * Each is loaded on first use, so a command that reads no DICOM does not pay for loading them.
 */
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

let parser: typeof import("dicom-parser") | undefined;
export function dicomParser(): typeof import("dicom-parser") {
  parser ??= require("dicom-parser") as typeof import("dicom-parser");
  return parser;
}

/** The Cornerstone WASM decoders (OpenJPEG, CharLS, libjpeg-turbo) share this interface. */
export interface WasmDecoder {
  getEncodedBuffer(length: number): Uint8Array;
  decode(): void;
  getFrameInfo(): { width: number; height: number; bitsPerSample: number; componentCount: number; isSigned?: boolean };
  getDecodedBuffer(): Uint8Array;
  delete(): void;
}
type WasmModule = Record<string, new () => WasmDecoder>;

const modules = new Map<string, Promise<WasmModule>>();

/** The Emscripten module (its .wasm is read from node_modules beside it; no network). */
export function wasmCodec(name: "openjpeg" | "charls" | "libjpeg-turbo-8bit"): Promise<WasmModule> {
  let m = modules.get(name);
  if (!m) {
    const factory = require(`@cornerstonejs/codec-${name}/decodewasmjs`) as (o: object) => Promise<WasmModule>;
    // OpenJPEG logs progress lines to stdout; decode failures surface as exceptions instead
    const quiet = () => {};
    m = factory({ print: quiet, printErr: quiet });
    modules.set(name, m);
  }
  return m;
}

/** jpeg-lossless-decoder-js: returns the samples as 8- or 16-bit words (numBytes per sample). */
export interface LosslessDecoder {
  decode(buffer: ArrayBufferLike, offset: number, length: number, numBytes: number): Uint8Array | Uint16Array;
}
let lossless: { Decoder: new () => LosslessDecoder } | undefined;
export function jpegLossless(): { Decoder: new () => LosslessDecoder } {
  lossless ??= require("jpeg-lossless-decoder-js") as { Decoder: new () => LosslessDecoder };
  return lossless;
}
