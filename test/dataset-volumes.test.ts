import { copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { casesInSplits, niftiDatasetFromFolders, readManifest, volumeCasesInSplits } from "../src/data/manifest.js";
import { readCaseImage, readCaseMask } from "../src/data/volume/case-files.js";
import { readDicomSegMask, readDicomVolume } from "../src/data/volume/dicom/index.js";
import { dicomDatasetFromFolders } from "../src/data/volume/dicom-cases.js";
import { readNifti } from "../src/data/volume/nifti.js";
import { writeNifti } from "../src/data/volume/nifti-write.js";
import { segcause } from "./helpers/cli.js";
import { tmp, writeImage } from "./helpers/tiny.js";

const DATA = resolve("../shared/data");
const HIPPO = join(DATA, "hippocampus");
const DICOM = join(DATA, "dicom");
const haveData = existsSync(join(HIPPO, "manifest.json")) && existsSync(join(DICOM, "mr-hippocrop"));
const LIVER_SERIES = "1.2.392.200103.20080913.113635.1.2009.6.22.21.43.10.23430.1";
const split = [{ name: "test", share: 1 }];

let root: string;

/** `dir/images` and `dir/labels` linking these hippocampus cases. */
function hippoFolder(dir: string, ids: string[]): void {
  for (const sub of ["images", "labels"]) mkdirSync(join(dir, sub), { recursive: true });
  for (const id of ids) {
    symlinkSync(join(HIPPO, "images", `hippocampus_${id}.nii.gz`), join(dir, "images", `hippocampus_${id}.nii.gz`));
    symlinkSync(join(HIPPO, "labels", `hippocampus_${id}.nii.gz`), join(dir, "labels", `hippocampus_${id}.nii.gz`));
  }
}

beforeAll(() => {
  root = tmp("segcause-dsvol-");
});

describe("volume manifests", () => {
  it("refuses a manifest mixing 2D images and volumes, in one line", () => {
    const write = (name: string, m: object) => {
      writeFileSync(join(root, name), JSON.stringify(m));
      return join(root, name);
    };
    const mixed = write("mixed.json", {
      name: "m",
      cases: [
        { id: "a", image: "a.png", split: "test" },
        { id: "b", image: "b.nii.gz", split: "test" },
      ],
    });
    expect(() => readManifest(mixed)).toThrow(/mixed\.json mixes 2D images \(1, e\.g\. a\.png\) and volumes \(1, e\.g\. b\.nii\.gz\)/);
    const stated = write("stated.json", {
      name: "m",
      kind: "volume",
      cases: [
        { id: "a", image: "study1", split: "test" },
        { id: "b", image: "b.tif", split: "test" },
      ],
    });
    expect(() => readManifest(stated)).toThrow(/mixes 2D images \(1, e\.g\. b\.tif\) and volumes \(1, e\.g\. study1\)/);
    const wrongKind = write("kind.json", { name: "m", kind: "image", cases: [{ id: "b", image: "b.nii", split: "test" }] });
    expect(() => readManifest(wrongKind)).toThrow(/says kind "image" but lists volumes/);
    const badShape = write("shape.json", { name: "m", cases: [{ id: "b", image: "b.nii", split: "test", shape: [3, 4] }] });
    expect(() => readManifest(badShape)).toThrow(/case 'b': shape/);
  });

  it("reads a DICOM manifest's series and SEG, and keeps 2D and volume readers apart", () => {
    const file = join(root, "dicom.json");
    writeFileSync(
      file,
      JSON.stringify({ name: "d", kind: "volume", cases: [{ id: "liver", image: "ct", series: LIVER_SERIES, mask: "seg.dcm", split: "test" }] }),
    );
    const ds = readManifest(file);
    expect(ds.kind).toBe("volume");
    expect(volumeCasesInSplits(ds, ["test"])).toEqual([
      {
        id: "liver",
        split: "test",
        image: join(root, "ct"),
        format: "dicom",
        series: LIVER_SERIES,
        mask: join(root, "seg.dcm"),
        maskFormat: "dicom-seg",
      },
    ]);
    expect(() => casesInSplits(ds, ["test"])).toThrow(/dataset d holds volumes \(NIfTI or DICOM\), and this command reads 2D images/);
    expect(() => volumeCasesInSplits(ds, ["train"])).toThrow(/split 'train' is not in dataset d/);
    const flat = join(root, "flat.json");
    writeFileSync(flat, JSON.stringify({ name: "f", cases: [{ id: "a", image: "a.png", split: "test" }] }));
    expect(readManifest(flat).kind).toBeUndefined();
    expect(() => volumeCasesInSplits(readManifest(flat), ["test"])).toThrow(/dataset f holds 2D images, and this reads volumes/);
  });
});

describe.skipIf(!haveData)("volume data sets on the shared data", () => {
  it("loads ../shared/data/hippocampus/manifest.json as it is: 195/26/39 cases, shapes as recorded", async () => {
    const ds = readManifest(HIPPO);
    expect(ds.kind).toBe("volume");
    const counts = ["train", "val", "test"].map((s) => volumeCasesInSplits(ds, [s]).length);
    expect(counts).toEqual([195, 26, 39]);
    const c = volumeCasesInSplits(ds, ["train"]).find((x) => x.id === "hippocampus_001")!;
    expect(c).toMatchObject({
      image: join(HIPPO, "images/hippocampus_001.nii.gz"),
      mask: join(HIPPO, "labels/hippocampus_001.nii.gz"),
      format: "nifti",
      maskFormat: "nifti",
      shape: [35, 51, 35],
      spacing: [1, 1, 1],
    });
    const image = await readCaseImage(c);
    expect(image.dims).toEqual(c.shape);
    const m = await readCaseMask(c, image);
    expect(m.labels).toEqual([1, 2]);
    // the whole structure: every voxel labelled 1 or 2
    expect(m.mask.reduce((a, v) => a + v, 0)).toBe(m.labelMap!.data.reduce((a, v) => a + (v > 0 ? 1 : 0), 0));
  });

  it("pairs NIfTI images with their label maps by the 2D naming rule, and splits them as 2D", () => {
    const dir = join(root, "hippo-api");
    hippoFolder(dir, ["001", "003", "004", "006"]);
    const ds = niftiDatasetFromFolders({
      images: join(dir, "images"),
      masks: join(dir, "labels"),
      splits: [
        { name: "train", share: 1 },
        { name: "test", share: 1 },
      ],
      seed: 0,
    });
    expect(ds.maskSuffix).toBe("");
    expect(ds.cases.map((c) => [c.id, c.mask])).toEqual(
      ["001", "003", "004", "006"].map((id) => [`hippocampus_${id}`, join(dir, "labels", `hippocampus_${id}.nii.gz`)]),
    );
    expect(ds.cases.filter((c) => c.split === "test")).toHaveLength(2);
  });

  it("`segcause dataset init` on NIfTI volumes records shape and spacing; a label of another geometry is refused naming both", () => {
    const dir = join(root, "hippo-cli");
    hippoFolder(dir, ["001", "003", "004", "006"]);
    const out = join(dir, "manifest.json");
    const r = segcause(
      "dataset",
      "init",
      "--images",
      join(dir, "images"),
      "--masks",
      join(dir, "labels"),
      "--splits",
      "train=1,test=1",
      "--out",
      out,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("4 NIfTI volume cases (2 train, 2 test), 4 with a mask (suffix '')");
    const m = JSON.parse(readFileSync(out, "utf8"));
    expect(m.kind).toBe("volume");
    expect(m.source.format).toBe("nifti");
    expect(m.cases[0]).toEqual({
      id: "hippocampus_001",
      image: "images/hippocampus_001.nii.gz",
      mask: "labels/hippocampus_001.nii.gz",
      split: m.cases[0].split,
      shape: [35, 51, 35],
      spacing_mm: [1, 1, 1],
    });
    const hippo = JSON.parse(readFileSync(join(HIPPO, "manifest.json"), "utf8")).cases as { id: string; shape: number[] }[];
    for (const c of m.cases) expect(c.shape).toEqual(hippo.find((h) => h.id === c.id)!.shape);
    expect(volumeCasesInSplits(readManifest(out), ["train", "test"])).toHaveLength(4);

    // hippocampus_003's label (34x52x35) under hippocampus_001's name
    const bad = join(root, "hippo-bad");
    hippoFolder(bad, ["003"]);
    mkdirSync(join(bad, "images2"));
    symlinkSync(join(HIPPO, "images", "hippocampus_001.nii.gz"), join(bad, "images2", "hippocampus_003.nii.gz"));
    const refused = segcause(
      "dataset",
      "init",
      "--images",
      join(bad, "images2"),
      "--masks",
      join(bad, "labels"),
      "--out",
      join(bad, "manifest.json"),
    );
    expect(refused.code).toBe(1);
    const shape003 = hippo.find((h) => h.id === "hippocampus_003")!.shape.join("x");
    expect(refused.stderr).toMatch(
      new RegExp(
        `^segcause: error: 1 of 1 cases cannot be used: mask .*hippocampus_003\\.nii\\.gz is not on the voxel grid of image .*hippocampus_003\\.nii\\.gz \\(different dims\\): image .* is 35x51x35 voxels, 1x1x1 mm, origin .*; mask .* is ${shape003} voxels, 1x1x1 mm, origin .*\\n$`,
      ),
    );
    expect(existsSync(join(bad, "manifest.json"))).toBe(false);
  });

  it("`segcause dataset init` notes volumes of several orientations and spacings; bank build cuts their boxes in the model's space", async () => {
    const dir = join(root, "mixed");
    for (const sub of ["images", "labels"]) mkdirSync(join(dir, sub), { recursive: true });
    const n = 12;
    const data = Float32Array.from({ length: n ** 3 }, (_, i) => (i * 7919) % 13);
    const labels = Float32Array.from({ length: n ** 3 }, (_, i) => (i % n < 3 ? 1 : 0));
    const grids = {
      ras: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1],
      lps: [-0.8, 0, 0, 10, 0, -0.8, 0, 10, 0, 0, 0.8, 0, 0, 0, 0, 1],
    };
    for (const [name, affine] of Object.entries(grids)) {
      await writeNifti(join(dir, "images", `${name}.nii.gz`), { dims: [n, n, n], affine, data });
      await writeNifti(join(dir, "labels", `${name}.nii.gz`), { dims: [n, n, n], affine, data: labels });
    }
    const manifest = join(dir, "manifest.json");
    const r = segcause("dataset", "init", "--images", join(dir, "images"), "--masks", join(dir, "labels"), "--splits", "train=1", "--out", manifest);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain("note: the volumes come in 2 orientations/spacings (LPS, 0.8x0.8x0.8 mm: 1; RAS, 1x1x1 mm: 1)");
    // the shipped model's card: RAS, 1 mm; an 8 mm box is 8 voxels there
    const bank = join(dir, "bank.scvbank");
    const b = segcause(
      "bank",
      "build",
      "--images",
      manifest,
      "--model",
      join("models", "volumes", "unet3d-hippocampus.onnx"),
      "--splits",
      "train",
      "--per-image",
      "3",
      "--out",
      bank,
    );
    expect(b.code, b.stderr).toBe(0);
    expect(b.stdout).toContain("wrote 6 boxes of 8³ voxels (8 mm) from 2 volumes");
    const header = JSON.parse(readFileSync(bank).toString("latin1").split("\n")[1]);
    expect(header).toMatchObject({ size: 8, count: 6, spacing: [1, 1, 1] });
  });

  it("`segcause dataset init` notes an empty label map and refuses an image given as the label map", async () => {
    const dir = join(root, "hippo-labels");
    hippoFolder(dir, ["001"]);
    const image = await readNifti(join(HIPPO, "images", "hippocampus_001.nii.gz"));
    mkdirSync(join(dir, "images2"));
    symlinkSync(join(HIPPO, "images", "hippocampus_001.nii.gz"), join(dir, "images2", "h2.nii.gz"));
    mkdirSync(join(dir, "labels2"));
    await writeNifti(join(dir, "labels2", "h2.nii.gz"), { ...image, data: new Float32Array(image.data.length) });
    const ok = segcause("dataset", "init", "--images", join(dir, "images2"), "--masks", join(dir, "labels2"), "--out", join(dir, "m2.json"));
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr).toContain("note: 1 mask(s) hold no structure (h2)");
    // the image itself as its label map: intensities, not labels
    const photo = join(dir, "labels3");
    mkdirSync(photo);
    symlinkSync(join(HIPPO, "images", "hippocampus_001.nii.gz"), join(photo, "h2.nii.gz"));
    const bad = segcause("dataset", "init", "--images", join(dir, "images2"), "--masks", photo, "--out", join(dir, "m3.json"));
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/1 of 1 cases cannot be used: mask .*labels3\/h2\.nii\.gz is not a label map/);
  });

  it("`segcause dataset init` on DICOM: one case per series folder, a SEG paired with its series by UID whatever its name", async () => {
    const dir = join(root, "dicom");
    for (const s of ["study1", "study2"]) cpSync(join(DICOM, "mr-hippocrop", s), join(dir, "images", s), { recursive: true });
    cpSync(join(DICOM, "ct-liver-seg"), join(dir, "images", "ct"), { recursive: true });
    mkdirSync(join(dir, "segs"));
    // named after another case: pairing is by the series it references, not by name
    copyFileSync(join(DICOM, "codecs", "liver.dcm"), join(dir, "segs", "study1.dcm"));
    const out = join(dir, "manifest.json");
    const missing = segcause("dataset", "init", "--images", join(dir, "images"), "--masks", join(dir, "segs"), "--out", out);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/2 of 3 series have no DICOM SEG referencing them \(study1, study2\)/);
    const r = segcause("dataset", "init", "--images", join(dir, "images"), "--masks", join(dir, "segs"), "--allow-missing-masks", "--out", out);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("3 DICOM volume cases (3 test), 1 with a mask");
    const m = JSON.parse(readFileSync(out, "utf8"));
    expect(m.cases.map((c: { id: string }) => c.id)).toEqual(["ct", "study1", "study2"]);
    expect(m.cases[0]).toEqual({
      id: "ct",
      image: "images/ct",
      series: LIVER_SERIES,
      mask: "segs/study1.dcm",
      split: "test",
      shape: [512, 512, 3],
      spacing_mm: [0.810547, 0.810547, 1],
    });
    expect(m.cases[1]).toMatchObject({ id: "study1", image: "images/study1", shape: [35, 51, 32] });
    expect(m.cases[1].mask).toBeUndefined();
    // the mask read through the manifest is the SEG's segment on the series
    const [ct] = volumeCasesInSplits(readManifest(out), ["test"]);
    const image = await readCaseImage(ct!);
    const seg = await readDicomSegMask(join(dir, "segs", "study1.dcm"), await readDicomVolume(join(dir, "images", "ct")));
    const mask = await readCaseMask(ct!, image);
    expect(mask.labels).toEqual([1]);
    expect(mask.mask).toEqual(seg.mask);
    expect(mask.mask.some((v) => v)).toBe(true);
  });

  it("a folder holding two series gives one case per series; SEG conflicts and name options refused", async () => {
    const two = join(root, "two", "mixed-series");
    mkdirSync(two, { recursive: true });
    for (const [s, p] of [
      ["study1", "a"],
      ["study2", "b"],
    ])
      for (const f of readdirSync(join(DICOM, "mr-hippocrop", s))) copyFileSync(join(DICOM, "mr-hippocrop", s, f), join(two, `${p}_${f}`));
    const ds = dicomDatasetFromFolders({ images: join(root, "two"), splits: split, seed: 0 });
    // no Series Number in these files: numbered in Series Instance UID order
    expect(ds.cases.map((c) => c.id)).toEqual(["mixed-series_1", "mixed-series_2"]);
    expect(ds.cases.every((c) => c.image === two)).toBe(true);
    const dims = await Promise.all(ds.cases.map(async (c) => (await readCaseImage({ ...c, format: "dicom" })).dims));
    expect(dims).toEqual([
      [35, 51, 32],
      [36, 48, 35],
    ]);
    const r = segcause("dataset", "init", "--images", join(root, "two"), "--splits", "train=1,test=1", "--out", join(root, "two.json"));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("2 DICOM volume cases (1 train, 1 test), 0 with a mask");

    // a series in one multi-frame file: the file is the image, no series to name
    const mf = join(root, "multiframe");
    mkdirSync(mf);
    copyFileSync(join(DICOM, "multiframe", "CT0012.explicit_little_endian.dcm"), join(mf, "ct.dcm"));
    const one = dicomDatasetFromFolders({ images: mf, splits: split, seed: 0 });
    expect(one.cases).toEqual([{ id: "multiframe", image: join(mf, "ct.dcm"), split: "test" }]);
    expect((await readCaseImage({ ...one.cases[0]!, format: "dicom" })).dims).toEqual([512, 512, 2]);

    const segs = join(root, "twosegs");
    mkdirSync(segs);
    copyFileSync(join(DICOM, "codecs", "liver.dcm"), join(segs, "a.dcm"));
    copyFileSync(join(DICOM, "codecs", "liver_rle.dcm"), join(segs, "b.dcm"));
    expect(() => dicomDatasetFromFolders({ images: join(DICOM, "ct-liver-seg"), masks: segs, splits: split, seed: 0 })).toThrow(
      /DICOM SEGs .*a\.dcm and .*b\.dcm both reference series 1\.2\.392/,
    );
    // a SEG of no series here is listed, not paired
    const loose = dicomDatasetFromFolders({
      images: join(DICOM, "mr-hippocrop", "study1"),
      masks: segs,
      allowMissingMasks: true,
      splits: split,
      seed: 0,
    });
    expect(loose.cases.map((c) => [c.id, c.mask])).toEqual([["study1", undefined]]);
    expect(loose.unpairedMasks).toEqual([join(segs, "a.dcm"), join(segs, "b.dcm")]);
    expect(() => dicomDatasetFromFolders({ images: join(root, "two"), maskSuffix: "_seg", splits: split, seed: 0 })).toThrow(
      /--mask-suffix does not apply to DICOM/,
    );
  });

  it("`segcause dataset init` refuses a folder mixing 2D images and volumes, in one line", async () => {
    const dir = join(root, "mixedkinds");
    mkdirSync(dir);
    await writeImage(dir, "a.png", () => 100, 8);
    symlinkSync(join(HIPPO, "images", "hippocampus_001.nii.gz"), join(dir, "b.nii.gz"));
    const r = segcause("dataset", "init", "--images", dir, "--out", join(dir, "manifest.json"));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^segcause: error: --images .*mixedkinds mixes 2D images \(a\.png\) and NIfTI volumes \(b\.nii\.gz\) \(keep 2D images, NIfTI volumes and DICOM series in separate data sets, one manifest each\)\n$/,
    );
    expect(existsSync(join(dir, "manifest.json"))).toBe(false);
  });
});
