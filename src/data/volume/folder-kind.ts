/**
 * What a folder given to `dataset init --images` holds: 2D images, NIfTI volumes or DICOM series
 * (files here, or series in subfolders). A folder holding two of these is refused: one data set is
 * one kind.
 */
import { readdirSync, statSync } from "node:fs";
import { extname, join } from "node:path";
import { fail } from "../../errors.js";
import { IMAGE_EXTENSIONS } from "../image.js";
import { startsLikeDicom } from "./dicom/index.js";
import { foldersWithDicom } from "./dicom-cases.js";
import { isNiftiPath } from "./sniff.js";

export type FolderKind = "image" | "nifti" | "dicom";

const NAMES: Record<FolderKind, string> = { image: "2D images", nifti: "NIfTI volumes", dicom: "DICOM files" };

/** "image" also for a folder that does not exist or holds nothing: the 2D reader names that problem. */
export function folderKind(dir: string, flag = "--images"): FolderKind {
  if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory()) return "image";
  const found = new Map<FolderKind, string>();
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (name.startsWith(".") || !statSync(p, { throwIfNoEntry: false })?.isFile()) continue;
    const kind: FolderKind | undefined = IMAGE_EXTENSIONS.has(extname(name).toLowerCase())
      ? "image"
      : isNiftiPath(name)
        ? "nifti"
        : startsLikeDicom(p)
          ? "dicom"
          : undefined;
    if (kind && !found.has(kind)) found.set(kind, name);
  }
  if (found.size > 1) {
    const [a, b] = [...found];
    fail(
      `${flag} ${dir} mixes ${NAMES[a![0]]} (${a![1]}) and ${NAMES[b![0]]} (${b![1]})`,
      "keep 2D images, NIfTI volumes and DICOM series in separate data sets, one manifest each",
    );
  }
  if (found.size === 1) return [...found.keys()][0]!;
  return foldersWithDicom(dir).length ? "dicom" : "image";
}
