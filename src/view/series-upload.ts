/**
 * A DICOM series dropped on the page: its files in one request body, each as a 4-byte big-endian length
 * then its bytes. Kept as a folder `<uploads>/series-<hash>/` (named by the body's content), and only when
 * every file starts as DICOM and the folder reads as one volume with the CLI's DICOM reader.
 */
import { mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { looksLikeDicom } from "../data/volume/dicom/index.js";
import { readVolume } from "../data/volume/volume-case.js";
import { SegcauseError } from "../errors.js";
import { sha256 } from "../util/hash.js";

/** a series' files in all (a 512² CT of 400 slices is about 200 MiB) */
export const SERIES_LIMIT = 256 * 1024 * 1024;
export const SERIES_PREFIX = "series-";

/** The files of a framed body, or a line saying what is wrong with it. */
export function unpackSeries(body: Uint8Array): Uint8Array[] | string {
  const files: Uint8Array[] = [];
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  for (let at = 0; at < body.length; ) {
    if (at + 4 > body.length) return "a DICOM series upload ends inside a file's length (send each file as 4 bytes of length, then its bytes)";
    const n = view.getUint32(at);
    if (n === 0 || at + 4 + n > body.length) return `file ${files.length + 1} of the DICOM series upload is empty or runs past the body's end`;
    files.push(body.subarray(at + 4, at + 4 + n));
    at += 4 + n;
  }
  if (!files.length) return "empty DICOM series upload (drop the series' files)";
  const notDicom = files.findIndex((f) => !looksLikeDicom(f.subarray(0, 132)));
  if (notDicom >= 0) return `file ${notDicom + 1} of the dropped series is not DICOM (drop only the series' .dcm files, or a NIfTI file alone)`;
  return files;
}

/** Writes the files as `<uploads>/series-<hash>/` (whole or not at all) once they read as one volume; returns the folder. */
export async function keepSeries(uploads: string, body: Uint8Array, files: Uint8Array[]): Promise<string> {
  const dir = join(uploads, `${SERIES_PREFIX}${sha256(body).slice(0, 16)}`);
  const partial = `${dir}.partial`;
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial);
  try {
    for (const [i, f] of files.entries()) writeFileSync(join(partial, `${String(i + 1).padStart(5, "0")}.dcm`), f);
    await readVolume(partial);
  } catch (e) {
    rmSync(partial, { recursive: true, force: true });
    if (e instanceof SegcauseError) throw new SegcauseError(`the dropped series: ${e.message}`, e.hint);
    throw e;
  }
  rmSync(dir, { recursive: true, force: true });
  renameSync(partial, dir);
  return dir;
}
