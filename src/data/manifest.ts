/** Dataset manifests (../shared/data/<name>/manifest.json): cases with image, mask and split. */
import { existsSync, readdirSync, realpathSync, statSync } from "node:fs";
import { basename, dirname, extname, join, resolve } from "node:path";
import { z } from "zod";
import { fail } from "../errors.js";
import { readJsonBounded } from "../util/read.js";
import { Rng } from "../util/rng.js";
import { STREAM } from "../util/streams.js";
import { IMAGE_EXTENSIONS, IMAGE_FORMATS, listImages } from "./image.js";
import { isNiftiPath } from "./volume/sniff.js";

const CaseEntry = z.object({ id: z.string(), image: z.string(), mask: z.string().optional(), split: z.string() }).passthrough();
/** `kind` absent: 2D images, or volumes when every image is named .nii/.nii.gz (manifests written before kinds). */
const Manifest = z.object({ name: z.string(), kind: z.enum(["image", "volume"]).optional(), cases: z.array(CaseEntry) }).passthrough();
const triple = (item: z.ZodNumber) => z.tuple([item, item, item]);
/** What a volume case may add: the series to pick from a folder holding several, and its grid as recorded. */
const VolumeFields = z
  .object({
    series: z.string().min(1).optional(),
    shape: triple(z.number().int().positive()).optional(),
    spacing_mm: triple(z.number().positive()).optional(),
    /** the labels of the mask (label values, or a SEG's segment numbers) that make the structure */
    labels: z.array(z.number().int().positive()).min(1).optional(),
  })
  .passthrough();

export interface ManifestCase {
  id: string;
  image: string;
  mask?: string;
  split: string;
}

export interface Dataset {
  name: string;
  root: string;
  cases: ManifestCase[];
  /** "volume": the cases are VolumeCases (read them with volumeCasesInSplits); absent: 2D images */
  kind?: "volume";
}

/** A case of a volume data set: paths resolved, formats told by name. */
export interface VolumeEntry extends ManifestCase {
  /** "nifti": a .nii/.nii.gz file; "dicom": a DICOM file or a folder of one series' files */
  format: "nifti" | "dicom";
  /** Series Instance UID to read from the image folder (it may hold several series) */
  series?: string;
  /** "nifti": a label map on the image's grid (label > 0 the structure); "dicom-seg": a DICOM SEG referencing the image series */
  maskFormat?: "nifti" | "dicom-seg";
  /** [nx, ny, nz] voxels as the manifest records them (the files' own geometry is what readers use) */
  shape?: [number, number, number];
  /** voxel size in mm along i, j, k, as recorded */
  spacing?: [number, number, number];
  /** the mask's labels (label values, or SEG segment numbers) that make the structure; absent: every label > 0, or the SEG's one segment */
  labels?: number[];
}

const MIXED_HINT = "keep 2D images and volumes in separate data sets, one manifest each";

/** Accepts a manifest file or a folder containing manifest.json. */
export function readManifest(path: string): Dataset {
  let file = path;
  try {
    if (statSync(path).isDirectory()) file = join(path, "manifest.json");
  } catch {
    fail(`dataset manifest ${path} does not exist`, "pass a manifest.json or the dataset folder holding it");
  }
  // A folder of images without a manifest: say how to make one.
  if (file !== path && !existsSync(file))
    fail(
      `${path} holds no manifest.json`,
      `write one with \`segcause dataset init --images ${path} --masks <mask folder> --out ${file}\` (see docs/commands.md, 'Your own dataset')`,
    );
  const raw = readJsonBounded(file, { what: "dataset manifest", kind: "manifest", hint: "pass a manifest.json" });
  const parsed = Manifest.safeParse(raw);
  if (!parsed.success)
    fail(
      `${file} is not a dataset manifest: ${parsed.error.issues[0].path.join(".")}: ${parsed.error.issues[0].message}`,
      "see docs/commands.md, 'Your own dataset', for the format (or write one with `segcause dataset init`)",
    );
  const root = resolve(dirname(file));
  // Case ids name the cells of a benchmark: two cases with one id would share (and skip) cells.
  const ids = new Set<string>();
  for (const c of parsed.data.cases) {
    if (ids.has(c.id)) fail(`${file} lists case id '${c.id}' twice`, "give every case its own id");
    ids.add(c.id);
  }
  if (parsed.data.cases.length === 0) fail(`${file} lists no cases`, "add the dataset's cases (id, image, mask, split) to the manifest");
  if (manifestKind(parsed.data, file) === "volume")
    return { name: parsed.data.name, root, kind: "volume", cases: parsed.data.cases.map((c) => volumeEntry(c, root, file)) };
  return {
    name: parsed.data.name,
    root,
    // Relative paths are from the manifest's folder; absolute ones stay as they are.
    cases: parsed.data.cases.map((c) => ({
      id: c.id,
      split: c.split,
      image: resolve(root, c.image),
      mask: c.mask ? resolve(root, c.mask) : undefined,
    })),
  };
}

/** A 2D image by its name (a volume is NIfTI, DICOM, or a folder of DICOM files). */
const is2dImagePath = (p: string): boolean => IMAGE_EXTENSIONS.has(extname(p).toLowerCase());

/**
 * The manifest's kind: as stated, or, without `kind`, volumes when the images are NIfTI files. A
 * manifest holding both 2D images and volumes is refused, naming one of each.
 */
function manifestKind(m: z.infer<typeof Manifest>, file: string): "image" | "volume" {
  const images = m.cases.map((c) => c.image);
  const volumes = m.kind === "volume" ? images.filter((p) => !is2dImagePath(p)) : images.filter(isNiftiPath);
  const flat = m.kind === "volume" ? images.filter(is2dImagePath) : images.filter((p) => !isNiftiPath(p));
  if (volumes.length && flat.length)
    fail(`${file} mixes 2D images (${flat.length}, e.g. ${flat[0]}) and volumes (${volumes.length}, e.g. ${volumes[0]})`, MIXED_HINT);
  if (m.kind === "image" && volumes.length)
    fail(`${file} says kind "image" but lists volumes (e.g. ${volumes[0]})`, `write "kind": "volume", or ${MIXED_HINT}`);
  return volumes.length ? "volume" : "image";
}

function volumeEntry(c: z.infer<typeof CaseEntry>, root: string, file: string): VolumeEntry {
  const v = VolumeFields.safeParse(c);
  if (!v.success)
    fail(
      `${file}: case '${c.id}': ${v.error.issues[0].path.join(".")}: ${v.error.issues[0].message}`,
      "shape is [nx, ny, nz] voxels, spacing_mm three positive numbers, series a Series Instance UID, labels positive whole numbers",
    );
  const image = resolve(root, c.image);
  const mask = c.mask ? resolve(root, c.mask) : undefined;
  return {
    id: c.id,
    split: c.split,
    image,
    format: isNiftiPath(image) ? "nifti" : "dicom",
    ...(v.data.series ? { series: v.data.series } : {}),
    ...(mask ? { mask, maskFormat: isNiftiPath(mask) ? "nifti" : "dicom-seg" } : {}),
    ...(v.data.shape ? { shape: v.data.shape } : {}),
    ...(v.data.spacing_mm ? { spacing: v.data.spacing_mm } : {}),
    ...(v.data.labels ? { labels: v.data.labels } : {}),
  };
}

function checkSplits(ds: Dataset, splits: string[]): void {
  const known = new Set(ds.cases.map((c) => c.split));
  for (const s of splits) if (!known.has(s)) fail(`split '${s}' is not in dataset ${ds.name}`, `choose from ${[...known].join(", ")}`);
}

/** The 2D cases of these splits; a volume data set is refused (its readers take volumeCasesInSplits). */
export function casesInSplits(ds: Dataset, splits: string[]): ManifestCase[] {
  if (ds.kind === "volume")
    fail(`dataset ${ds.name} holds volumes (NIfTI or DICOM), and this command reads 2D images`, "give a data set of 2D images here");
  checkSplits(ds, splits);
  return ds.cases.filter((c) => splits.includes(c.split));
}

/** The volume cases of these splits, paths resolved; a 2D data set is refused. */
export function volumeCasesInSplits(ds: Dataset, splits: string[]): VolumeEntry[] {
  if (ds.kind !== "volume")
    fail(`dataset ${ds.name} holds 2D images, and this reads volumes`, "give a data set of volumes (NIfTI files or DICOM series)");
  checkSplits(ds, splits);
  return (ds.cases as VolumeEntry[]).filter((c) => splits.includes(c.split));
}

/** How `segcause dataset init` pairs and splits a folder of images (and one of masks). */
export interface FolderDatasetOptions {
  images: string;
  masks?: string;
  /** mask file stem = image key + this; undefined: the suffix that pairs the most images */
  maskSuffix?: string;
  /** image key = image stem without this ending (e.g. DRIVE's "_training") */
  imageSuffix?: string;
  /** split names with their shares (one split: every case in it) */
  splits: { name: string; share: number }[];
  seed: number;
  allowMissingMasks?: boolean;
}

export interface FolderDataset {
  cases: ManifestCase[];
  /** the mask suffix used (auto-detected or given) */
  maskSuffix?: string;
  /** mask files no image claimed */
  unpairedMasks: string[];
}

/** The files a folder pairs: how they are listed, what their stem (id and pairing key) is, how they are named. */
interface PairedFiles {
  list: (dir: string) => string[];
  stem: (path: string) => string;
  /** "image (PNG, ...)" in "holds no image (...)" */
  what: string;
}

const IMAGE_FILES: PairedFiles = { list: listImages, stem: (p) => basename(p, extname(p)), what: `image (${IMAGE_FORMATS})` };

/** NIfTI files directly in a folder (hidden files and dangling links skipped, as for images), by name. */
export function listNifti(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    fail(`cannot list volumes in ${dir}`, "pass a folder of NIfTI volumes (.nii, .nii.gz)");
  }
  return names
    .filter((n) => !n.startsWith(".") && isNiftiPath(n) && statSync(join(dir, n), { throwIfNoEntry: false })?.isFile())
    .sort()
    .map((n) => join(dir, n));
}

const NIFTI_FILES: PairedFiles = { list: listNifti, stem: (p) => basename(p).replace(/\.nii(\.gz)?$/i, ""), what: "NIfTI volume (.nii, .nii.gz)" };

function checkFolder(dir: string, flag: string): void {
  let isDir: boolean;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    fail(`${flag} ${dir} does not exist`, `give ${flag} a folder of images (${IMAGE_FORMATS})`);
  }
  if (!isDir) fail(`${flag} ${dir} is a file, not a folder`, `give ${flag} the folder that holds the files`);
}

/**
 * Cases from folders: every image (sorted by name) with the mask whose stem is its key plus the mask
 * suffix, split by a seeded shuffle in the given shares. Paths are absolute; the writer makes them
 * relative to the manifest.
 */
export function datasetFromFolders(o: FolderDatasetOptions): FolderDataset {
  return pairFolders(o, IMAGE_FILES);
}

/**
 * Volume cases from a folder of NIfTI images and one of NIfTI label maps, paired, named and split by
 * the rule of datasetFromFolders (ids are the names without .nii/.nii.gz).
 */
export function niftiDatasetFromFolders(o: FolderDatasetOptions): FolderDataset {
  return pairFolders(o, NIFTI_FILES);
}

function pairFolders(o: FolderDatasetOptions, files: PairedFiles): FolderDataset {
  const stemOf = files.stem;
  // Mask options without masks would be dropped silently: most likely --masks was forgotten.
  if (!o.masks && (o.maskSuffix !== undefined || o.allowMissingMasks))
    fail(
      `${o.maskSuffix !== undefined ? "--mask-suffix" : "--allow-missing-masks"} only applies with --masks`,
      "add --masks <folder of masks>, or drop it",
    );
  checkFolder(o.images, "--images");
  if (o.masks) checkFolder(o.masks, "--masks");
  const masks = o.masks ? files.list(o.masks) : [];
  const maskStems = new Set(masks.map(stemOf));
  // Real paths: a symlink or another spelling of the images folder is the same folder (else every
  // image would pair with itself as its mask, suffix '').
  const sameFolder = o.masks !== undefined && realpathSync(o.masks) === realpathSync(o.images);
  if (sameFolder && !o.maskSuffix)
    fail(
      "--masks is the images folder, so masks and images can only be told apart by --mask-suffix",
      "pass --mask-suffix (e.g. _mask), or keep the masks in their own folder",
    );
  // In a shared folder, the masks are not images of the dataset.
  let images = files.list(o.images);
  if (sameFolder) images = images.filter((p) => !stemOf(p).endsWith(o.maskSuffix!));
  const imageNames = new Set(images.map((p) => basename(p)));
  if (images.length === 0) fail(`${o.images} holds no ${files.what}`, "pass the folder that holds the images");
  const keyOf = (p: string): string => {
    const s = stemOf(p);
    return o.imageSuffix && s.endsWith(o.imageSuffix) ? s.slice(0, s.length - o.imageSuffix.length) : s;
  };
  const keys = images.map(keyOf);
  const seen = new Map<string, string>();
  images.forEach((p, i) => {
    const other = seen.get(keys[i]);
    if (other)
      fail(
        `${basename(other)} and ${basename(p)} both give the case id '${keys[i]}'`,
        "keep one file per image (ids are file names without extension)",
      );
    seen.set(keys[i], p);
  });
  let suffix = o.maskSuffix;
  if (o.masks && suffix === undefined) {
    // The ending that pairs the most images with a mask.
    const counts = new Map<string, number>();
    for (const k of keys) for (const m of maskStems) if (m.startsWith(k)) counts.set(m.slice(k.length), (counts.get(m.slice(k.length)) ?? 0) + 1);
    const ranked = [...counts].sort((a, b) => b[1] - a[1] || a[0].length - b[0].length || (a[0] < b[0] ? -1 : 1));
    suffix = ranked[0]?.[0];
    // A tie is a guess (a1.png and a1_mask.png both in the masks folder: '' would pair every image with a copy of itself).
    if (ranked.length > 1 && ranked[1][1] === ranked[0][1])
      fail(
        `masks in ${o.masks} pair as many images with suffix '${ranked[0][0]}' as with '${ranked[1][0]}' (${ranked[0][1]} each)`,
        `pass --mask-suffix '${ranked[1][0]}' (or the one that names the masks)`,
      );
    if (suffix === undefined)
      fail(
        `no mask in ${o.masks} is named after an image of ${o.images}`,
        "masks must be named <image name><suffix>: pass --mask-suffix, or --image-suffix when the image names carry an ending the masks lack",
      );
  }
  const masksByStem = new Map<string, string[]>();
  for (const m of masks) masksByStem.set(stemOf(m), [...(masksByStem.get(stemOf(m)) ?? []), m]);
  const paired = keys.map((k) => {
    const found = o.masks ? (masksByStem.get(k + suffix) ?? []) : [];
    // a1_mask.png and a1_mask.gif: which one is a1's mask is not for us to guess
    if (found.length > 1)
      fail(`${found.map((m) => basename(m)).join(" and ")} in ${o.masks} are both named as the mask of '${k}'`, "keep one mask file per image");
    return found[0];
  });
  const missing = keys.filter((_, i) => o.masks && !paired[i]);
  if (missing.length && !o.allowMissingMasks) {
    fail(
      `${missing.length} of ${keys.length} images have no mask named <id>${suffix} in ${o.masks} (${missing.slice(0, 3).join(", ")}${missing.length > 3 ? ", ..." : ""})`,
      "check --mask-suffix / --image-suffix, or pass --allow-missing-masks to list them without a mask",
    );
  }
  const used = new Set(paired.filter((m): m is string => m !== undefined));
  const splitOf = assignSplits(keys.length, o.splits, o.seed);
  return {
    cases: keys.map((id, i) => ({ id, image: images[i], ...(paired[i] ? { mask: paired[i] } : {}), split: splitOf[i] })),
    maskSuffix: o.masks ? suffix : undefined,
    // by name: in a shared folder reached through a symlink the two listings spell paths differently
    unpairedMasks: masks.filter((m) => !used.has(m) && !(sameFolder && imageNames.has(basename(m)))),
  };
}

/**
 * The split of each of `n` cases (in their listed order): a seeded shuffle, then consecutive runs of
 * it per split (cumulative rounding: the sizes add up). Every kind of data set is split by this rule.
 */
export function assignSplits(n: number, splits: { name: string; share: number }[], seed: number): string[] {
  const order = new Rng(seed, STREAM.splitShuffle).sampleWithoutReplacement(n, n);
  const total = splits.reduce((s, x) => s + x.share, 0);
  const splitOf = new Array<string>(n);
  let start = 0,
    cum = 0;
  for (const s of splits) {
    cum += s.share;
    const end = Math.round((cum / total) * n);
    for (let i = start; i < end; i++) splitOf[order[i]] = s.name;
    start = end;
  }
  return splitOf;
}
