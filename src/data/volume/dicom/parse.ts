/**
 * One DICOM Part 10 file's bytes → a parsed data set (dicom-parser). Deflated data sets are inflated
 * here with a bound on the inflated size, so a small file cannot expand without limit.
 */
import { inflateRawSync } from "node:zlib";
import type { DataSet } from "dicom-parser";
import { fail } from "../../../errors.js";
import { formatBytes, READ_LIMITS, readFileBounded } from "../../../util/read.js";
import { dicomParser } from "./libraries.js";
import { type TransferSyntax, transferSyntax } from "./transfer-syntax.js";

export const DICOM_HINT = "give a DICOM Part 10 file (.dcm) or a folder holding one series";

/** The largest file, and the largest inflated data set, segcause reads as DICOM. */
export const DICOM_FILE_LIMIT = READ_LIMITS.image;

export interface DicomFile {
  path: string;
  dataSet: DataSet;
  transferSyntax: TransferSyntax;
}

/** Read and parse one file; every problem is one line naming the file. */
export function readDicomFile(path: string, what = "DICOM file"): DicomFile {
  const bytes = readFileBounded(path, { what, kind: "image", hint: DICOM_HINT });
  return parseDicomBytes(bytes, path, what);
}

/** True when the bytes start like a DICOM Part 10 file (preamble then "DICM"). */
export function looksLikeDicom(bytes: Uint8Array): boolean {
  return bytes.length >= 132 && bytes[128] === 0x44 && bytes[129] === 0x49 && bytes[130] === 0x43 && bytes[131] === 0x4d;
}

export function parseDicomBytes(bytes: Uint8Array, path: string, what = "DICOM file"): DicomFile {
  if (!looksLikeDicom(bytes)) fail(`${what} ${path} is not a DICOM Part 10 file (no "DICM" marker at byte 128)`, DICOM_HINT);
  let dataSet: DataSet;
  try {
    dataSet = dicomParser().parseDicom(bytes, { inflater: (arr, pos) => inflate(arr, pos, path, what) });
  } catch (e) {
    if (e instanceof Error && e.name === "SegcauseError") throw e;
    fail(`${what} ${path} is not a readable DICOM file (${parserProblem(e)})`, "the file may be truncated or damaged");
  }
  const uid = dataSet.string("x00020010");
  if (!uid) fail(`${what} ${path} has no transfer syntax in its file meta information`, "the file is damaged");
  return { path, dataSet, transferSyntax: transferSyntax(uid) };
}

/** dicom-parser's inflater hook: the meta group as is, then the inflated data set. */
function inflate(arr: Uint8Array, pos: number, path: string, what: string): Uint8Array {
  let body: Buffer;
  try {
    body = inflateRawSync(arr.subarray(pos), { maxOutputLength: DICOM_FILE_LIMIT });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ERR_BUFFER_TOO_LARGE") fail(`${what} ${path} inflates to more than ${formatBytes(DICOM_FILE_LIMIT)}`, DICOM_HINT);
    fail(`${what} ${path} has a deflated data set that does not inflate (${code ?? "zlib error"})`, "the file may be truncated or damaged");
  }
  const out = new Uint8Array(pos + body.length);
  out.set(arr.subarray(0, pos));
  out.set(body, pos);
  return out;
}

/** dicom-parser throws strings or objects; keep its reason, drop its prefixes and any data. */
function parserProblem(e: unknown): string {
  const raw =
    typeof e === "string"
      ? e
      : e instanceof Error
        ? e.message
        : typeof e === "object" && e && "exception" in e
          ? String((e as { exception: unknown }).exception)
          : "parse error";
  const text = raw.replace(/^[A-Za-z0-9_.:]+:\s*/, "").split("\n")[0]!;
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}
