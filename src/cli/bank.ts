/** `segcause bank build`: a patch bank of natural patches from images not being explained. */

import { closeSync, existsSync, openSync, readSync, statSync } from "node:fs";
import { basename } from "node:path";
import { Command } from "commander";
import { imageInfo, listImages, readInput } from "../data/image.js";
import { casesInSplits, readManifest, volumeCasesInSplits } from "../data/manifest.js";
import { buildPatchBank, PATCHBANK_MAGIC } from "../data/patchbank.js";
import { readCaseImage } from "../data/volume/case-files.js";
import { modelSpaceOf } from "../data/volume/model-space.js";
import { buildVolumeBank, VOLUMEBANK_MAGIC } from "../data/volume/volume-bank.js";
import { fail } from "../errors.js";
import { BOX_UNITS, type BoxUnitName, boxVoxels, describeSize } from "../explain/volume/box-size.js";
import type { ResizeFilter } from "../model/card.js";
import { Model } from "../model/model.js";
import { SLICE_AXES, SliceModel } from "../model/slice-model.js";
import { isVolumeModel, readVolumeCard, type VolumeCard } from "../model/volume-card.js";
import type { SliceSetting } from "../model/volume-model.js";
import { checkOutputFile } from "../util/files.js";
import { ProgressTracker, stderrProgress } from "../util/progress.js";
import { addCardFlags, type CardFlags, cardOverrides, intAtLeast, oneOf, seed, sizeHW } from "./options.js";

interface BankFlags extends CardFlags {
  images: string;
  out: string;
  model?: string;
  size?: number[];
  splits: string;
  patchSize: number;
  boxUnit?: BoxUnitName;
  /** a 2D model on volumes: the voxel axis its slices are cut across */
  sliceAxis?: "i" | "j" | "k";
  perImage: number;
  seed: number;
  progress: boolean;
  quiet?: boolean;
}

export function isManifest(path: string): boolean {
  try {
    return path.endsWith(".json") || statSync(`${path}/manifest.json`).isFile();
  } catch {
    return false;
  }
}

/** A manifest of a volume data set (NIfTI or DICOM cases), as readManifest tells. */
function isVolumeManifest(path: string): boolean {
  return isManifest(path) && readManifest(path).kind === "volume";
}

/** The size all the images share (read from their headers); several sizes: which flag to add. */
async function sharedSize(images: string[]): Promise<[number, number]> {
  const sizes = new Map<string, string>();
  for (const path of images) {
    const info = await imageInfo(await readInput(path), path);
    const key = `${info.height}x${info.width}`;
    if (!sizes.has(key)) sizes.set(key, basename(path));
  }
  if (sizes.size > 1) {
    const shown = [...sizes]
      .slice(0, 3)
      .map(([size, name]) => `${size} in ${name}`)
      .join(", ");
    fail(
      `the images have ${sizes.size} sizes (${shown}${sizes.size > 3 ? ", ..." : ""}), so the bank's size cannot be read from them`,
      "add --size H,W (the model's input size) or --model m.onnx",
    );
  }
  const [h, w] = [...sizes.keys()][0].split("x").map(Number);
  return [h, w];
}

/**
 * An existing --out file: a bank (segcause's own output, as a rerun leaves it) is replaced with a
 * note, anything else is refused, as output folders are: segcause does not overwrite files it did not write.
 */
function checkReplacedBank(f: BankFlags): void {
  if (!existsSync(f.out)) return;
  // only a regular file is opened (a FIFO would block the open)
  const kind = statSync(f.out).isFile() ? bankKind(f.out) : undefined;
  if (!kind)
    fail(`--out ${f.out} exists and is not a segcause bank`, "give --out a new file name: segcause does not overwrite files it did not write");
  if (!f.quiet) process.stderr.write(`note: --out ${f.out} is an existing ${kind}: this build replaces it\n`);
}

function bankKind(path: string): string | undefined {
  const head = Buffer.alloc(VOLUMEBANK_MAGIC.length);
  const fd = openSync(path, "r");
  try {
    readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  const text = head.toString("latin1");
  return text.startsWith(PATCHBANK_MAGIC) ? "patch bank" : text.startsWith(VOLUMEBANK_MAGIC) ? "volume bank" : undefined;
}

/**
 * The card and slicing a volume bank is cut for: a 3D model's card, or a 2D model's slice space (its
 * window; the spacing of the data set's first volume, which every volume must share).
 */
async function bankCard(f: BankFlags & { model: string }, splits: string[]): Promise<{ card: VolumeCard; slicing?: SliceSetting }> {
  if (isVolumeModel(f.model, f.card)) {
    if (f.sliceAxis) fail("--slice-axis applies to a 2D model run slice by slice; a 3D model takes the whole volume", "drop --slice-axis");
    return { card: readVolumeCard(f.model, f.card).card };
  }
  const m = await SliceModel.load(f.model, { card: f.card, axis: f.sliceAxis });
  try {
    const first = volumeCasesInSplits(readManifest(f.images), splits)[0];
    if (first) m.bind(modelSpaceOf(await readCaseImage(first), m.card, first.image, m.slicing.axis).spacing);
    return { card: m.card, slicing: m.slicing };
  } finally {
    await m.release();
  }
}

/** A bank of boxes from a volume data set, normalised per volume as the model's card says (a 3D model, or a 2D one slice by slice). */
async function buildVolumes(f: BankFlags): Promise<void> {
  if (!f.model)
    fail(
      "a volume data set's bank needs the model it is for",
      "pass --model with the 3D model (its card gives the normalisation and spacing), or the 2D model that explains it slice by slice",
    );
  if (!isVolumeManifest(f.images))
    fail(
      `${f.images} is not the manifest of a volume data set`,
      "pass the volume data set's manifest.json (made by `segcause dataset init` on NIfTI or DICOM) as --images",
    );
  const splits = f.splits.split(",").map((s) => s.trim());
  const { card, slicing } = await bankCard({ ...f, model: f.model }, splits);
  if (f.size) fail("--size applies to 2D images; a volume bank takes its geometry from the 3D model's card", "drop --size");
  // as explain's --block: millimetres by default, voxels per model-space axis by the card's spacing
  const box = boxVoxels(f.patchSize, f.boxUnit ?? "mm", card.input.spacing, "--patch-size");
  if (box.some((n) => n > 256))
    fail(
      `--patch-size ${f.patchSize} makes boxes of ${describeSize(box)} voxels, larger than a volume bank's can be (256)`,
      "use the explain --block size (e.g. 16)",
    );
  const bank = await buildVolumeBank(f.images, card, { box, perVolume: f.perImage, seed: f.seed, splits, slicing });
  await bank.save(f.out);
  if (!f.quiet)
    process.stdout.write(
      `wrote ${bank.count} boxes of ${describeSize(box)} voxels${(f.boxUnit ?? "mm") === "mm" ? ` (${f.patchSize} mm)` : ""} from ${bank.header.sources.length} volumes (${f.splits}), each normalised as ${card.input.normalisation.kind} per volume at ${bank.header.spacing.join("x")} mm${slicing ? ` in the slice space of axis ${slicing.axis}` : ""}, to ${f.out}\n`,
    );
}

export function bankCommand(): Command {
  const bank = new Command("bank").description("patch banks of natural image patches (PdCR's interventions)");
  const build = new Command("build")
    .description("crop patches from images resized to the model input size")
    .requiredOption("--images <dir|manifest>", "a folder of images, or a dataset manifest.json (or its folder)")
    .requiredOption("--out <file>", "bank file to write (e.g. bank.scbank)")
    .option("--model <file>", "take the input size and resize filter from this model's card")
    .option("--size <h,w>", "resize images to this size first (when no --model; default: the size all the images share)", sizeHW("size"))
    .option("--splits <list>", "manifest splits to use (never the ones you explain)", "train,val")
    .option(
      "--patch-size <px>",
      "patch size (must equal the explain block size); volume banks: millimetres, converted to voxels by the card's spacing (see --box-unit)",
      intAtLeast("patch-size"),
      8,
    )
    .option("--box-unit <mm|vox>", "volume banks: --patch-size in mm (default) or in voxels", oneOf("box-unit", BOX_UNITS))
    .option(
      "--slice-axis <i|j|k>",
      "volume banks for a 2D model: the axis its slices are cut across (default the card's, else k)",
      oneOf("slice-axis", SLICE_AXES),
    )
    .option("--per-image <n>", "random patches per image (per volume for a volume data set)", intAtLeast("per-image"), 100)
    .option("--seed <n>", "random seed", seed(), 0)
    .option("--no-progress", "no progress on stderr")
    .option("--quiet", "no progress, notes or summary (errors still go to stderr)");
  addCardFlags(build);
  build.action(async (f: BankFlags) => {
    // the size is set below: from --model's card, --size, or the images themselves
    let height = 0,
      width = 0,
      filter: ResizeFilter = f.resize ?? "bilinear";
    checkOutputFile(f.out);
    checkReplacedBank(f);
    if (isVolumeManifest(f.images) || (f.model && isVolumeModel(f.model, f.card))) return buildVolumes(f);
    if (f.boxUnit) fail("--box-unit applies to volume banks (boxes in mm or voxels); 2D patches are in pixels", "drop --box-unit");
    if (f.model && f.size) fail("--size and --model both give the input size", "pass only --model (its card gives the size) or only --size H,W");
    if (f.model) {
      const resolved = Model.readCard(f.model, { card: f.card, overrides: cardOverrides(f) });
      ({ height, width, resize: filter } = resolved.card.input);
      // The bank is cut at the card's size with its filter: what was assumed about those shapes every patch.
      for (const a of [resolved.assumed.size, resolved.assumed.resize]) if (a !== undefined) process.stderr.write(`note: assumed: ${a}\n`);
    }
    let images: string[];
    let from: string;
    if (isManifest(f.images)) {
      const ds = readManifest(f.images);
      images = casesInSplits(
        ds,
        f.splits.split(",").map((s) => s.trim()),
      ).map((c) => c.image);
      from = `${ds.name} (${f.splits})`;
    } else {
      images = listImages(f.images);
      from = f.images;
    }
    if (f.size) [height, width] = f.size;
    else if (!f.model && images.length > 0) {
      [height, width] = await sharedSize(images);
      if (!f.quiet)
        process.stderr.write(
          `note: no --size or --model: the bank is cut at ${height}x${width}, the size every image has (pass --size H,W or --model to cut it at a model's input size)\n`,
        );
    }
    const progress = f.progress && !f.quiet ? stderrProgress({ unit: "images" }) : undefined;
    const tracker = new ProgressTracker("cutting patches", images.length, progress);
    const bank = await buildPatchBank(images, {
      height,
      width,
      filter,
      patchSize: f.patchSize,
      perImage: f.perImage,
      seed: f.seed,
      onImage: () => tracker.add(1),
    }).finally(() => progress?.end());
    await bank.save(f.out);
    // Every image gives min(--per-image, its aligned cells) patches, as the bank records per source.
    const cells = bank.header.sources[0]?.patches ?? f.perImage;
    if (f.quiet) return;
    if (f.perImage > cells)
      process.stderr.write(
        `note: a ${height}x${width} image has ${cells} aligned cells of ${f.patchSize}x${f.patchSize}, so each image gives ${cells} patches, not --per-image ${f.perImage}\n`,
      );
    process.stdout.write(
      `wrote ${bank.count} patches of ${f.patchSize}x${f.patchSize} from ${images.length} images of ${from} (resized to ${height}x${width}) to ${f.out}\n`,
    );
  });
  bank.addCommand(build);
  return bank;
}
