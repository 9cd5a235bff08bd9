/** `segcause dataset init`: a dataset manifest from a folder of images (or volumes) and one of masks. */
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, relative, resolve, sep } from "node:path";
import { Command, Option } from "commander";
import { decodeMask, imageInfo, readInput } from "../data/image.js";
import { datasetFromFolders, type FolderDatasetOptions, niftiDatasetFromFolders, readManifest } from "../data/manifest.js";
import { readCaseImage, readCaseMask } from "../data/volume/case-files.js";
import { type DicomCase, dicomDatasetFromFolders } from "../data/volume/dicom-cases.js";
import { folderKind } from "../data/volume/folder-kind.js";
import { parseLabels } from "../data/volume/label-mask.js";
import { orientationCodes } from "../data/volume/orientation.js";
import { fail, SegcauseError } from "../errors.js";
import { decimal } from "../util/decimal.js";
import { checkOutputFile } from "../util/files.js";
import { VERSION } from "../version.js";
import { seed } from "./options.js";

/** What init found: the cases, the manifest to write, and what its notes report. */
interface Made {
  cases: { id: string; mask?: string; split: string }[];
  maskSuffix?: string;
  unpairedMasks: string[];
  emptyMasks: string[];
  manifest: object;
}

/** The folder options as commander parses them, plus what only the command needs. */
type InitFlags = FolderDatasetOptions & { name?: string; out: string; label?: string };

/** "test" (every case in one split) or "train=70,val=15,test=15" (seeded shares). */
function parseSplits(v: string): { name: string; share: number }[] {
  const parts = v.split(",").map((s) => s.trim());
  const hint = "use --splits test, or shares such as --splits train=70,val=15,test=15";
  if (parts.length === 1 && /^[\w-]+$/.test(parts[0])) return [{ name: parts[0], share: 1 }];
  const splits = parts.map((p) => {
    const m = /^([\w-]+)=(.+)$/.exec(p);
    const share = m ? decimal(m[2]) : undefined;
    if (!m || share === undefined || share <= 0) fail(`--splits: '${p}' is not name=share with a share > 0`, hint);
    return { name: m[1], share };
  });
  const names = splits.map((s) => s.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) fail(`--splits names '${dup}' twice`, hint);
  return splits;
}

export function datasetCommand(): Command {
  const dataset = new Command("dataset").description("dataset manifests (what evaluate, bank build and components read)");
  const init = new Command("init")
    .description("write a manifest.json for a folder of images (or NIfTI volumes, or DICOM series) and their masks, with seeded splits")
    .requiredOption("--images <dir>", "folder of images, of NIfTI volumes, or of DICOM series (one case per series)")
    .option(
      "--masks <dir>",
      "folder of binary masks or NIfTI label maps, named <image name><suffix>; or of DICOM SEGs (paired by the series they reference)",
    )
    .option("--mask-suffix <s>", "mask name = image name + this (default: the ending that pairs the most images, e.g. _mask, _lesion, _segmentation)")
    .option("--image-suffix <s>", "an ending of the image names that the masks lack (e.g. DRIVE's _training)")
    // shown as "test" in --help, not as the parsed JSON
    .addOption(
      new Option("--splits <spec>", "one split for every case, or seeded shares (e.g. train=70,val=15,test=15)")
        .argParser(parseSplits)
        .default([{ name: "test", share: 1 }], "test"),
    )
    .option("--seed <n>", "seed of the split shuffle", seed(), 0)
    .option("--name <name>", "dataset name (default: the name of the manifest's folder)")
    .option("--allow-missing-masks", "list images without a mask too (explain works without one; evaluate's RoI rules need it)")
    .option(
      "--label <n[,n]>",
      "volumes: the labels of the label maps, or the segment numbers of the DICOM SEGs, that make the structure (default: every label > 0, or a SEG's one segment; a SEG of several segments needs it)",
    )
    .requiredOption("--out <file>", "manifest to write (e.g. mydata/manifest.json); paths in it are relative to its folder");
  init.action(async (f: InitFlags) => {
    checkOutputFile(f.out);
    if (existsSync(f.out)) fail(`${f.out} already exists`, "remove it or choose another --out");
    const kind = folderKind(f.images);
    if (f.label !== undefined && kind === "image")
      fail("--label applies to volume data sets (NIfTI label maps or DICOM SEGs)", "drop --label for 2D images (their masks are binary)");
    const labels = f.label !== undefined ? parseLabels(f.label) : undefined;
    const root = dirname(f.out);
    // Relative and with forward slashes, so the dataset folder can be moved or shared as a whole.
    const rel = (p: string) => relative(root, p).split(sep).join("/");
    const name = f.name ?? (basename(resolve(root)) || "dataset");
    // folders relative to the manifest, like the cases (as typed they would be relative to the shell's folder)
    const source = (maskSuffix: string | undefined) => ({
      createdBy: `segcause ${VERSION} dataset init`,
      createdAt: new Date().toISOString(),
      images: rel(resolve(f.images)),
      masks: f.masks ? rel(resolve(f.masks)) : null,
      maskSuffix: maskSuffix ?? null,
      imageSuffix: f.imageSuffix ?? null,
      splits: f.splits,
      seed: f.seed,
    });
    let made: Made;
    if (kind === "image") {
      const ds = datasetFromFolders(f);
      const emptyMasks = await checkMasks(ds.cases);
      made = {
        ...ds,
        emptyMasks,
        manifest: {
          name,
          source: source(ds.maskSuffix),
          cases: ds.cases.map((c) => ({ id: c.id, image: rel(c.image), ...(c.mask ? { mask: rel(c.mask) } : {}), split: c.split })),
        },
      };
    } else {
      const ds: { cases: DicomCase[]; maskSuffix?: string; unpairedMasks: string[] } =
        kind === "nifti" ? niftiDatasetFromFolders(f) : dicomDatasetFromFolders(f);
      const { grids, emptyMasks, kinds } = await checkVolumes(ds.cases, kind, labels);
      if (kinds.size > 1)
        process.stderr.write(
          `note: the volumes come in ${kinds.size} orientations/spacings (${[...kinds].map(([k, n]) => `${k}: ${n}`).join("; ")}); explain and bank build bring each into the model's axes and spacing (docs/volumes.md)\n`,
        );
      made = {
        ...ds,
        emptyMasks,
        manifest: {
          name,
          kind: "volume",
          source: { ...source(ds.maskSuffix), format: kind },
          cases: ds.cases.map((c, i) => ({
            id: c.id,
            image: rel(c.image),
            ...(c.series ? { series: c.series } : {}),
            ...(c.mask ? { mask: rel(c.mask), ...(labels ? { labels } : {}) } : {}),
            split: c.split,
            ...grids[i],
          })),
        },
      };
    }
    try {
      mkdirSync(root, { recursive: true });
      writeFileSync(f.out, `${JSON.stringify(made.manifest, null, 1)}\n`);
    } catch (e) {
      fail(`cannot write ${f.out} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, "give --out a path in a folder you can write to");
    }
    // What evaluate will read: fails here, not later, if it cannot (and leaves no file that blocks a rerun).
    try {
      readManifest(f.out);
    } catch (e) {
      rmSync(f.out, { force: true });
      throw e;
    }
    const sizes = f.splits.map((s) => ({ name: s.name, n: made.cases.filter((c) => c.split === s.name).length }));
    const counts = sizes.map((s) => `${s.n} ${s.name}`).join(", ");
    const withMask = made.cases.filter((c) => c.mask).length;
    const what = kind === "image" ? "cases" : `${kind === "nifti" ? "NIfTI" : "DICOM"} volume cases`;
    process.stdout.write(
      `wrote ${f.out}: ${made.cases.length} ${what} (${counts}), ${withMask} with a mask${made.maskSuffix !== undefined ? ` (suffix '${made.maskSuffix}')` : ""}\n`,
    );
    // The explained images are the test split's: name them (the first few), so the next command can use one.
    const test = made.cases.filter((c) => c.split === "test");
    if (test.length)
      process.stdout.write(
        `test cases (to explain): ${test
          .slice(0, 8)
          .map((c) => c.id)
          .join(", ")}${test.length > 8 ? `, ... (all in the manifest)` : ""}\n`,
      );
    // A share that rounds to no case leaves its split out of the manifest: `--splits val` would then be refused later.
    const empty = sizes.filter((s) => s.n === 0).map((s) => s.name);
    if (empty.length)
      process.stderr.write(
        `note: split${empty.length > 1 ? "s" : ""} ${empty.join(", ")} got no case (${made.cases.length} cases at these shares); give ${empty.length > 1 ? "them" : "it"} a larger share or use fewer splits\n`,
      );
    // Patch banks and donors come from other splits than the explained one: say so before bank build fails.
    if (!sizes.some((s) => s.n > 0 && s.name !== "test"))
      process.stderr.write(
        `note: every case is in split ${sizes.find((s) => s.n > 0)?.name ?? "test"}; \`bank build\` and \`evaluate\` without --bank take their patches from other splits (defaults: train,val for \`bank build\`, train for \`evaluate\`): pass shares such as --splits train=70,val=15,test=15, or a bank built from other images\n`,
      );
    if (made.emptyMasks.length)
      process.stderr.write(
        `note: ${made.emptyMasks.length} mask(s) hold no structure (${made.emptyMasks.slice(0, 3).join(", ")}${made.emptyMasks.length > 3 ? ", ..." : ""}): evaluate skips their RoIs, explain refuses them as ground truth\n`,
      );
    if (made.unpairedMasks.length)
      process.stderr.write(
        `note: ${made.unpairedMasks.length} file(s) in ${f.masks ?? f.images} match no image (${made.unpairedMasks
          .slice(0, 3)
          .map((p) => relative(f.masks ?? f.images, p))
          .join(", ")}${made.unpairedMasks.length > 3 ? ", ..." : ""})\n`,
      );
  });
  dataset.addCommand(init);
  return dataset;
}

/**
 * Looks inside every mask now, as explain and evaluate will: of its image's size and binary (a label
 * map, a soft mask or a photo is refused with its values). Returns the ids of empty masks.
 */
async function checkMasks(cases: readonly { id: string; image: string; mask?: string }[]): Promise<string[]> {
  const problems: string[] = [];
  const empty: string[] = [];
  for (const c of cases) {
    if (!c.mask) continue;
    try {
      const [ib, mb] = await Promise.all([readInput(c.image), readInput(c.mask)]);
      const [ii, mi] = await Promise.all([imageInfo(ib, c.image), imageInfo(mb, c.mask)]);
      if (ii.height !== mi.height || ii.width !== mi.width) {
        problems.push(`${basename(c.mask)} is ${mi.height}x${mi.width} pixels but ${basename(c.image)} is ${ii.height}x${ii.width}`);
        continue;
      }
      if (!(await decodeMask(mb, c.mask, mi.height, mi.width)).some((v) => v)) empty.push(c.id);
    } catch (e) {
      if (!(e instanceof SegcauseError)) throw e;
      problems.push(e.message);
    }
  }
  if (problems.length) {
    fail(
      `${problems.length} of ${cases.filter((c) => c.mask).length} masks cannot be used: ${problems.slice(0, 3).join("; ")}${problems.length > 3 ? "; ..." : ""}`,
      "fix or remove them: explain and evaluate need binary masks (any two values) of their image's size",
    );
  }
  return empty;
}

/** A grid as the manifest records it: [nx, ny, nz] and mm (6 significant digits: float32 headers round). */
const gridOf = (v: { dims: number[]; spacing: number[] }) => ({ shape: [...v.dims], spacing_mm: v.spacing.map((x) => Number(x.toPrecision(6))) });

/**
 * Reads every volume and its mask now, as explain and evaluate will: a label map off its image's grid,
 * a file that is no label map, or a SEG that does not reference its series is refused (one line per
 * case, naming both geometries). Returns each case's grid and the ids of empty masks.
 */
async function checkVolumes(
  cases: readonly { id: string; image: string; series?: string; mask?: string }[],
  kind: "nifti" | "dicom",
  labels: number[] | undefined,
): Promise<{ grids: ReturnType<typeof gridOf>[]; emptyMasks: string[]; kinds: Map<string, number> }> {
  const problems: string[] = [];
  const empty: string[] = [];
  const grids: ReturnType<typeof gridOf>[] = [];
  // "LPS, 0.8x0.8x3 mm" → cases: explain and bank build bring each kind into the model's axes and spacing
  const kinds = new Map<string, number>();
  for (const c of cases) {
    try {
      const vc = { ...c, format: kind, labels };
      const image = await readCaseImage(vc);
      const grid = gridOf(image);
      // the orientation every model-space transform starts from: a degenerate affine is refused here
      const geometry = `${orientationCodes(image.affine)}, ${grid.spacing_mm.map((x) => Number(x.toPrecision(4))).join("x")} mm`;
      kinds.set(geometry, (kinds.get(geometry) ?? 0) + 1);
      grids.push(grid);
      if (c.mask && !(await readCaseMask(vc, image)).mask.some((v) => v)) empty.push(c.id);
    } catch (e) {
      if (!(e instanceof SegcauseError)) throw e;
      problems.push(e.message);
    }
  }
  if (problems.length) {
    fail(
      `${problems.length} of ${cases.length} cases cannot be used: ${problems.slice(0, 3).join("; ")}${problems.length > 3 ? "; ..." : ""}`,
      "fix or remove them: a mask must be a label map on its image's voxel grid (NIfTI) or a SEG of its series (DICOM)",
    );
  }
  return { grids, emptyMasks: empty, kinds };
}
