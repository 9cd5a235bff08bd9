/**
 * Volume cases from a folder tree of DICOM files: every image series is one case (a folder holding
 * several series gives one case per series), and each DICOM SEG is paired with the series it
 * references by Series Instance UID (or, when it names no series, by the slices its frames
 * reference), never by file name.
 */
import { readdirSync, realpathSync, statSync } from "node:fs";
import { basename, join, relative, sep } from "node:path";
import { fail } from "../../errors.js";
import { assignSplits, type FolderDatasetOptions, type ManifestCase } from "../manifest.js";
import { firstItem, frameCount, frameGroup, items, TAG, text } from "./dicom/attributes.js";
import { type DicomFile, readSeriesFiles, SEG_SOP_CLASS, startsLikeDicom } from "./dicom/index.js";
import { MAX_FOLDER_FILES } from "./dicom/series.js";

export interface DicomCase extends ManifestCase {
  /** Series Instance UID of the image series (absent when the image is one file) */
  series?: string;
}

export interface DicomDataset {
  cases: DicomCase[];
  /** SEG files that reference no series found */
  unpairedMasks: string[];
}

interface ImageSeries {
  folder: string;
  uid: string;
  number?: number;
  files: string[];
  sopInstances: string[];
}

interface SegFile {
  path: string;
  /** series it names (Referenced Series Sequence), or [] */
  series: string[];
  /** slices its frames reference (for a SEG that names no series) */
  instances: string[];
}

/** Folders under `root` (itself included) holding DICOM files, by path; hidden entries skipped, links followed once. */
export function foldersWithDicom(root: string): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  let visited = 0;
  const walk = (dir: string): void => {
    const real = realpathSync(dir);
    if (seen.has(real)) return;
    seen.add(real);
    let holds = false;
    for (const name of readdirSync(dir).sort()) {
      if (name.startsWith(".")) continue;
      if (++visited > MAX_FOLDER_FILES)
        fail(`${root} holds more than ${MAX_FOLDER_FILES} files and folders`, "give a smaller folder tree of DICOM series");
      const p = join(dir, name);
      const st = statSync(p, { throwIfNoEntry: false });
      if (st?.isDirectory()) walk(p);
      else if (st?.isFile() && !holds && startsLikeDicom(p)) holds = true;
    }
    if (holds) out.push(dir);
  };
  walk(root);
  return out.sort();
}

/** The SEGs and image series of these folders. */
function scan(folders: string[]): { series: ImageSeries[]; segs: SegFile[] } {
  const series: ImageSeries[] = [];
  const segs: SegFile[] = [];
  for (const folder of folders) {
    for (const s of readSeriesFiles(folder)) {
      const isSeg = (f: DicomFile) => text(f.dataSet, TAG.sopClassUid) === SEG_SOP_CLASS;
      for (const f of s.files.filter(isSeg)) segs.push(segReferences(f));
      const files = s.files.filter((f) => !isSeg(f));
      if (!files.length) continue;
      const other = series.find((x) => x.uid === s.uid);
      if (other) fail(`DICOM series ${s.uid} is split between folders ${other.folder} and ${folder}`, "keep the files of each series in one folder");
      const number = files[0]!.dataSet.intString("x00200011");
      series.push({
        folder,
        uid: s.uid,
        number: Number.isFinite(number) ? number : undefined,
        files: files.map((f) => f.path),
        sopInstances: files.map((f) => text(f.dataSet, TAG.sopInstanceUid) ?? ""),
      });
    }
  }
  return { series, segs };
}

function segReferences(f: DicomFile): SegFile {
  const ds = f.dataSet;
  const series = items(ds, TAG.referencedSeriesSeq)
    .map((it) => text(it, TAG.seriesInstanceUid))
    .filter((u): u is string => !!u);
  const frames = frameCount(ds);
  const instances = new Set<string>();
  for (let k = 0; k < frames; k++) {
    const uid = text(firstItem(frameGroup(ds, k, TAG.derivationImageSeq), TAG.sourceImageSeq), TAG.referencedSopInstanceUid);
    if (uid) instances.add(uid);
  }
  return { path: f.path, series, instances: [...instances] };
}

/** "study1", "patients_p7" (the folder relative to the root, "/" as "_"), or the root's own name. */
function folderId(root: string, folder: string): string {
  const rel = relative(root, folder);
  return rel ? rel.split(sep).join("_") : basename(folder);
}

/** Case ids: the folder's, plus _s<Series Number> (or _<n> in UID order) when the folder holds several series. */
function caseIds(root: string, series: ImageSeries[]): string[] {
  return series.map((s) => {
    const base = folderId(root, s.folder);
    const siblings = series.filter((x) => x.folder === s.folder);
    if (siblings.length === 1) return base;
    const numbers = siblings.map((x) => x.number);
    const distinct = numbers.every((n) => n !== undefined) && new Set(numbers).size === numbers.length;
    return distinct
      ? `${base}_s${s.number}`
      : `${base}_${
          siblings
            .map((x) => x.uid)
            .sort()
            .indexOf(s.uid) + 1
        }`;
  });
}

/**
 * Cases from `o.images` (a folder tree of DICOM series; SEGs may lie among them) and optionally
 * `o.masks` (more SEGs), split like every data set (assignSplits). Paths are absolute.
 */
export function dicomDatasetFromFolders(o: FolderDatasetOptions): DicomDataset {
  if (o.maskSuffix !== undefined || o.imageSuffix !== undefined)
    fail(
      `${o.maskSuffix !== undefined ? "--mask-suffix" : "--image-suffix"} does not apply to DICOM`,
      "DICOM SEGs are paired with their series by Series Instance UID, not by name: drop it",
    );
  const folders = foldersWithDicom(o.images);
  if (!folders.length)
    fail(`${o.images} holds no DICOM files`, "pass the folder that holds the DICOM series (one subfolder per series, or the files themselves)");
  const found = scan(folders);
  const maskFolders = o.masks ? foldersWithDicom(o.masks).filter((f) => !folders.includes(f)) : [];
  if (o.masks && !maskFolders.length && !found.segs.length) fail(`${o.masks} holds no DICOM SEG`, "give --masks the folder of the DICOM SEG files");
  const segs = [...found.segs, ...scan(maskFolders).segs];
  const series = found.series.sort((a, b) =>
    a.folder < b.folder ? -1 : a.folder > b.folder ? 1 : (a.number ?? 0) - (b.number ?? 0) || (a.uid < b.uid ? -1 : 1),
  );
  if (!series.length) fail(`${o.images} holds DICOM SEGs but no image series`, "pass the folder that holds the image series the SEGs were drawn on");
  const ids = caseIds(o.images, series);
  const dup = ids.find((id, i) => ids.indexOf(id) !== i);
  if (dup) fail(`two series in ${o.images} both give the case id '${dup}'`, "rename one of their folders");
  // Each SEG to the series it references: by the series it names, else by the slices it names.
  const maskOf = new Map<string, string>();
  const unpaired: string[] = [];
  for (const seg of segs) {
    const target = seg.series.length
      ? series.find((s) => seg.series.includes(s.uid))
      : series.find((s) => seg.instances.some((u) => s.sopInstances.includes(u)));
    if (!target) {
      unpaired.push(seg.path);
      continue;
    }
    const other = maskOf.get(target.uid);
    if (other)
      fail(
        `DICOM SEGs ${other} and ${seg.path} both reference series ${target.uid}`,
        "keep one SEG per series (segcause reads a series' mask from one SEG)",
      );
    maskOf.set(target.uid, seg.path);
  }
  const expectMasks = o.masks !== undefined || segs.length > 0;
  const missing = series.map((s, i) => (expectMasks && !maskOf.has(s.uid) ? ids[i]! : undefined)).filter((id): id is string => id !== undefined);
  if (missing.length && !o.allowMissingMasks) {
    fail(
      `${missing.length} of ${series.length} series have no DICOM SEG referencing them (${missing.slice(0, 3).join(", ")}${missing.length > 3 ? ", ..." : ""})`,
      "add their SEGs, or pass --allow-missing-masks to list them without a mask",
    );
  }
  const splitOf = assignSplits(series.length, o.splits, o.seed);
  return {
    cases: series.map((s, i) => {
      const mask = maskOf.get(s.uid);
      // one file (a multi-frame object, or one slice) is the image itself; a folder needs its series named
      const image = s.files.length === 1 ? { image: s.files[0]! } : { image: s.folder, series: s.uid };
      return { id: ids[i]!, ...image, ...(mask ? { mask } : {}), split: splitOf[i]! };
    }),
    unpairedMasks: unpaired,
  };
}
