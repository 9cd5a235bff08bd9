/**
 * The DICOM files of one series: a single file, or a folder whose files are grouped by Series
 * Instance UID. A folder with several series is refused listing each (or one is picked by UID);
 * files that are not DICOM (a README, a DICOMDIR) are passed over.
 */
import { closeSync, openSync, readdirSync, readSync, type Stats, statSync } from "node:fs";
import { join } from "node:path";
import { fail } from "../../../errors.js";
import { readFileBounded } from "../../../util/read.js";
import { frameCount, TAG, text } from "./attributes.js";
import { DICOM_HINT, type DicomFile, looksLikeDicom, parseDicomBytes } from "./parse.js";

/** Most files segcause reads from one folder. */
export const MAX_FOLDER_FILES = 100_000;

const DICOMDIR_CLASS = "1.2.840.10008.1.3.10";

export interface SeriesSummary {
  uid: string;
  description?: string;
  modality?: string;
  /** slices: frames summed over the series' files */
  slices: number;
  files: DicomFile[];
}

export interface SeriesOptions {
  /** pick this series from a folder holding several */
  seriesUid?: string;
  /** how the input is named in messages ("DICOM input", "DICOM SEG") */
  what?: string;
}

/** Whether a file opens with the Part 10 preamble and "DICM" (read only those 132 bytes). */
export function startsLikeDicom(path: string): boolean {
  let fd: number;
  try {
    // A FIFO or device is never DICOM here, and opening a FIFO would block until a writer comes.
    if (!statSync(path).isFile()) return false;
    fd = openSync(path, "r");
  } catch {
    return false;
  }
  try {
    const head = new Uint8Array(132);
    return readSync(fd, head, 0, 132, 0) === 132 && looksLikeDicom(head);
  } finally {
    closeSync(fd);
  }
}

/** The files given by `path` (one file or a folder), parsed, grouped by series. */
export function readSeriesFiles(path: string, what = "DICOM input"): SeriesSummary[] {
  let isDir: boolean;
  try {
    isDir = statSync(path).isDirectory();
  } catch (e) {
    fail(`cannot read ${what} ${path} (${(e as NodeJS.ErrnoException).code ?? "stat failed"})`, DICOM_HINT);
  }
  const files: DicomFile[] = [];
  if (!isDir) files.push(parseDicomBytes(readFileBounded(path, { what: "DICOM file", kind: "image", hint: DICOM_HINT }), path));
  else {
    for (const p of dicomFolderFiles(path, what)) {
      const bytes = readFileBounded(p, { what: "DICOM file", kind: "image", hint: DICOM_HINT });
      const file = parseDicomBytes(bytes, p);
      if (text(file.dataSet, "x00020002") === DICOMDIR_CLASS) continue;
      files.push(file);
    }
    if (!files.length) fail(`${what} folder ${path} holds no DICOM files`, DICOM_HINT);
  }
  const bySeries = new Map<string, SeriesSummary>();
  for (const f of files) {
    const uid = text(f.dataSet, TAG.seriesInstanceUid) ?? "(no Series Instance UID)";
    let s = bySeries.get(uid);
    if (!s) {
      s = { uid, description: text(f.dataSet, TAG.seriesDescription), modality: text(f.dataSet, TAG.modality), slices: 0, files: [] };
      bySeries.set(uid, s);
    }
    s.slices += frameCount(f.dataSet);
    s.files.push(f);
  }
  return [...bySeries.values()];
}

/**
 * The files of a folder the series reader reads, in its order: the top-level entries that are files
 * (an entry that cannot be stat'ed, e.g. a dangling link, is skipped) and start like DICOM. Shared with
 * `--queue`, which packs exactly these for the workers.
 */
export function dicomFolderFiles(path: string, what: string): string[] {
  const names = readdirSync(path).sort();
  if (names.length > MAX_FOLDER_FILES)
    fail(`${what} folder ${path} holds ${names.length} entries, more than segcause reads (${MAX_FOLDER_FILES})`, "give a folder holding one series");
  return names
    .map((name) => join(path, name))
    .filter((p) => {
      let st: Stats;
      try {
        st = statSync(p);
      } catch {
        return false;
      }
      return st.isFile() && startsLikeDicom(p);
    });
}

/** "1.2.3 ("T1 axial", MR, 32 slices)" */
export function describeSeries(s: SeriesSummary): string {
  const parts = [
    s.description ? `"${s.description}"` : "no description",
    s.modality ?? "no modality",
    `${s.slices} slice${s.slices === 1 ? "" : "s"}`,
  ];
  return `${s.uid} (${parts.join(", ")})`;
}

/** The one series at `path`, or the one with `seriesUid`; otherwise refused listing them all. */
export function selectSeries(path: string, opts: SeriesOptions = {}): SeriesSummary {
  const what = opts.what ?? "DICOM input";
  const all = readSeriesFiles(path, what);
  if (opts.seriesUid !== undefined) {
    const s = all.find((x) => x.uid === opts.seriesUid);
    if (!s)
      fail(`${what} ${path} has no series ${opts.seriesUid}; it holds ${all.map(describeSeries).join("; ")}`, "pick one of these with --series UID");
    return s;
  }
  if (all.length > 1) fail(`${what} ${path} holds ${all.length} series: ${all.map(describeSeries).join("; ")}`, "pick one with --series UID");
  return all[0]!;
}
