/**
 * `segcause components` on a volume: a 3D model (volume card), a NIfTI file or DICOM series, a
 * volume RoI (--roi z,y,x,d,h,w, or --roi-mask with --label) and donors from a volume data set (its
 * manifest with --splits, or a folder of NIfTI volumes), each loaded as explain loads the volume:
 * brought into model space and placed in the model's box by the card.
 */
import { statSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { listNifti, readManifest, volumeCasesInSplits } from "../data/manifest.js";
import { loadVolumeCase, looksLikeVolume, readStructure, type VolumeCase } from "../data/volume/volume-case.js";
import { fail } from "../errors.js";
import { checkComponentPlacement, explainVolumeComponents } from "../explain/volume/components.js";
import { VolumeModel } from "../model/volume-model.js";
import { writeComponentEffects } from "../report/components.js";
import { spatialNiftis } from "../report/volume-components.js";
import { parseVolumeRoi } from "../target/volume-roi.js";
import type { VolumeTargetSpec } from "../target/volume-target.js";
import { checkOutputFolder, takeOutputFolder } from "../util/files.js";
import { sha256File } from "../util/hash.js";
import { markResumable } from "../util/interrupt.js";
import type { FolderLock } from "../util/lock.js";
import { stderrProgress } from "../util/progress.js";
import { Rng } from "../util/rng.js";
import { STREAM } from "../util/streams.js";
import { isManifest } from "./bank.js";
import { type ComponentFlags, checkComponentFlags, componentRunOptions, emitComponents } from "./components.js";
import { checkNoImageFlags } from "./explain-volume.js";
import { fixedOrUndefined } from "./options.js";
import { noteReplaced, type OutputFlags, showProgress } from "./output.js";

/** A donor volume: a file or DICOM series folder, and the series to read from it. */
interface DonorSource {
  image: string;
  series?: string;
}

/** The donor volumes of --donors: a volume data set's cases in --splits, or every NIfTI file of a folder. */
function donorSources(spec: string, splits: string, splitsGiven: boolean): DonorSource[] {
  try {
    statSync(spec);
  } catch {
    fail(`donor source ${spec} does not exist`, "pass a volume data set's manifest.json, or a folder of NIfTI volumes");
  }
  if (isManifest(spec))
    return volumeCasesInSplits(
      readManifest(spec),
      splits.split(",").map((s) => s.trim()),
    ).map((c) => ({ image: c.image, ...(c.series ? { series: c.series } : {}) }));
  if (splitsGiven)
    fail(
      `--splits chooses donors from a data set's manifest, but ${spec} is a folder of volumes`,
      "drop --splits (every volume of the folder is a donor), or pass the manifest as --donors",
    );
  const files = listNifti(spec);
  if (files.length === 0)
    fail(`donor folder ${spec} holds no NIfTI volume (.nii, .nii.gz)`, "pass a volume data set's manifest.json, or a folder of NIfTI volumes");
  return files.map((image) => ({ image }));
}

/** The same file (by path, or a regular file's content) as the explained volume: no donor of itself. */
async function sameSource(a: string, b: string, bHash: string | undefined): Promise<boolean> {
  if (resolve(a) === resolve(b)) return true;
  if (!bHash || !statSync(a, { throwIfNoEntry: false })?.isFile()) return false;
  return (await sha256File(a)) === bHash;
}

/**
 * A donor must be seen whole in the model's box, as its activations stand for "another volume of
 * the domain": one the card's placement would crop is refused, naming both geometries.
 */
function checkDonorFits(d: VolumeCase, kase: VolumeCase): void {
  if (d.placement.offset.some((o) => o < 0))
    fail(
      `donor ${d.imagePath} is ${d.modelVolume.dims.join("x")} voxels (i x j x k) in the model's space, larger than the model's ${d.placement.box.join("x")} box that ${kase.id} (${kase.modelVolume.dims.join("x")}) is placed in: the model would see a cropped part of it`,
      "use donors of the explained volume's data set (volumes that fit the model's box), e.g. --donors <its manifest.json>",
    );
}

export async function runVolumeComponents(f: ComponentFlags & OutputFlags, given: (o: string) => boolean): Promise<void> {
  if (!f.image || !(f.roi || f.roiMask) || !f.out)
    fail("components on a 3D model needs --image, --roi (or --roi-mask) and --out", "or pass --list to see the components");
  if (f.roi && f.roiMask) fail("both --roi and --roi-mask are given", "pass only one of them");
  if (f.label !== undefined && !f.mask && !f.roiMask)
    fail("--label is given without a label map", "pass --mask and/or --roi-mask labels.nii.gz with --label");
  if (!(await looksLikeVolume(f.image)))
    fail(
      `${f.model} is a 3D model (its card declares a volume input), but ${f.image} is not a volume`,
      "give a NIfTI volume (.nii/.nii.gz) or a DICOM series folder as --image",
    );
  checkNoImageFlags({ ...f });
  const donorSampling = checkComponentFlags(f, given);
  const roiBox = f.roi ? parseVolumeRoi(f.roi) : undefined;
  // the engine says the same, but only once the folder is claimed: refused before anything is written
  if (f.ablation !== "zero" && !f.donors)
    fail(`${f.ablation} ablation needs donor volumes`, "pass --donors <folder or manifest> with volumes of the same domain, or use --ablation zero");
  checkOutputFolder(f.out, "components");
  noteReplaced(f.out, f.quiet === true);
  markResumable("checkpoints");
  const model = await VolumeModel.load(f.model, { card: f.card, threads: fixedOrUndefined(f.threads), device: f.device });
  let lock: FolderLock | undefined;
  try {
    const kase = await loadVolumeCase(model, f.image, { mask: f.mask, label: f.mask ? f.label : undefined, seriesUid: f.series });
    checkComponentPlacement(kase);
    const roi: VolumeTargetSpec["roi"] = roiBox ?? {
      mask: (await readStructure(f.roiMask!, kase.volume, f.image, f.label)).mask,
      name: f.label === undefined ? f.roiMask! : `${f.roiMask!} (label ${f.label})`,
    };
    const donors: VolumeCase[] = [];
    if (f.donors) {
      // The explained volume is no donor of itself: left out before the seeded draw.
      const imageHash = statSync(f.image).isFile() ? await sha256File(f.image) : undefined;
      const sources: DonorSource[] = [];
      for (const s of donorSources(f.donors, f.splits, given("splits"))) if (!(await sameSource(s.image, f.image, imageHash))) sources.push(s);
      if (sources.length === 0)
        fail(`every donor volume in ${f.donors} is the explained volume itself`, "pass other volumes of the same data set as --donors");
      const picked = new Rng(f.seed, STREAM.donorPick).sampleWithoutReplacement(sources.length, f.maxDonors).sort((a, b) => a - b);
      for (const i of picked) {
        const d = await loadVolumeCase(model, sources[i].image, { seriesUid: sources[i].series });
        checkDonorFits(d, kase);
        if (d.imageSha256 === kase.imageSha256)
          fail(`donor ${d.imagePath} holds the explained volume's voxels`, "leave the explained volume out of the donors' data set or folder");
        donors.push(d);
      }
    }
    const checkpointPath = join(f.out, ".checkpoint.json");
    lock = takeOutputFolder(f.out, "components");
    const progress = showProgress(f) ? stderrProgress() : undefined;
    const e = await explainVolumeComponents(
      model,
      kase,
      { roi, outcome: f.outcome },
      componentRunOptions(f, donors, donorSampling, progress, checkpointPath),
    ).finally(() => progress?.end());
    if (lock.note) e.notes.push(lock.note);
    const files = await writeComponentEffects(
      e,
      f.out,
      `${f.ablation} ablation of ${e.level === "tensors" ? "tensors" : `${e.level}s`} · ${kase.id}`,
      e.level === "spatial" ? spatialNiftis(e, kase) : {},
    );
    await rm(checkpointPath, { force: true });
    emitComponents(f, e, { roi: e.roi, id: kase.id, donors: donors.length, files });
  } finally {
    lock?.release();
    await model.release();
  }
}
