import { copyFileSync, mkdirSync, readFileSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { datasetFromFolders, readManifest } from "../src/data/manifest.js";
import { segcause } from "./helpers/cli.js";
import { tmp, writeImage, writeMask } from "./helpers/tiny.js";

let root: string;
const ids = ["a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "a10"];

beforeAll(async () => {
  root = tmp("segcause-dataset-");
  for (const d of ["img", "msk", "drive/images", "drive/manual", "mixed"]) mkdirSync(join(root, d), { recursive: true });
  for (const id of ids) {
    await writeImage(join(root, "img"), `${id}.png`, () => 100, 8);
    await writeMask(join(root, "msk"), `${id}_lesion.png`, (r) => r < 4, 8);
  }
  // a mask named after a longer id's prefix must not steal the suffix vote (a1 is a prefix of a10)
  await writeMask(join(root, "msk"), "stray.png", () => true, 8);
  for (const id of ["21", "22"]) {
    await writeImage(join(root, "drive/images"), `${id}_training.png`, () => 90, 8);
    await writeMask(join(root, "drive/manual"), `${id}_manual1.png`, (r) => r > 2, 8);
    await writeImage(join(root, "mixed"), `${id}.png`, () => 80, 8);
    await writeMask(join(root, "mixed"), `${id}_mask.png`, (r) => r > 2, 8);
  }
});

describe("dataset manifests from folders", () => {
  const split = [{ name: "test", share: 1 }];

  it("pairs each image with the mask named after it, detecting the suffix, and splits by seeded shares", () => {
    const shares = [
      { name: "train", share: 70 },
      { name: "val", share: 15 },
      { name: "test", share: 15 },
    ];
    const ds = datasetFromFolders({ images: join(root, "img"), masks: join(root, "msk"), splits: shares, seed: 0 });
    expect(ds.maskSuffix).toBe("_lesion");
    expect(ds.cases.map((c) => c.id)).toEqual([...ids].sort());
    for (const c of ds.cases) expect(c.mask).toBe(join(root, "msk", `${c.id}_lesion.png`));
    expect(ds.unpairedMasks).toEqual([join(root, "msk", "stray.png")]);
    const count = (s: string) => ds.cases.filter((c) => c.split === s).length;
    expect([count("train"), count("val"), count("test")]).toEqual([7, 2, 1]); // cumulative rounding: 7, 8.5 -> 9, 10
    // the same seed gives the same splits; another seed another assignment of the same sizes
    const again = datasetFromFolders({ images: join(root, "img"), masks: join(root, "msk"), splits: shares, seed: 0 });
    expect(again.cases.map((c) => c.split)).toEqual(ds.cases.map((c) => c.split));
    const other = datasetFromFolders({ images: join(root, "img"), masks: join(root, "msk"), splits: shares, seed: 1 });
    expect(other.cases.filter((c) => c.split === "train")).toHaveLength(7);
    expect(other.cases.map((c) => c.split)).not.toEqual(ds.cases.map((c) => c.split));
  });

  it("strips an image ending the masks lack (DRIVE), and tells masks from images in one folder by their suffix", () => {
    const drive = datasetFromFolders({
      images: join(root, "drive/images"),
      masks: join(root, "drive/manual"),
      imageSuffix: "_training",
      splits: split,
      seed: 0,
    });
    expect(drive.cases.map((c) => [c.id, c.mask])).toEqual([
      ["21", join(root, "drive/manual/21_manual1.png")],
      ["22", join(root, "drive/manual/22_manual1.png")],
    ]);
    expect(drive.maskSuffix).toBe("_manual1");
    const mixed = datasetFromFolders({ images: join(root, "mixed"), masks: join(root, "mixed"), maskSuffix: "_mask", splits: split, seed: 0 });
    expect(mixed.cases.map((c) => c.id)).toEqual(["21", "22"]);
    expect(mixed.unpairedMasks).toEqual([]);
    expect(() => datasetFromFolders({ images: join(root, "mixed"), masks: join(root, "mixed"), splits: split, seed: 0 })).toThrow(
      /can only be told apart by --mask-suffix/,
    );
  });

  it("refuses images without a mask unless allowed, and masks named after no image", () => {
    expect(() => datasetFromFolders({ images: join(root, "img"), masks: join(root, "msk"), maskSuffix: "_seg", splits: split, seed: 0 })).toThrow(
      /10 of 10 images have no mask named <id>_seg/,
    );
    const loose = datasetFromFolders({
      images: join(root, "img"),
      masks: join(root, "msk"),
      maskSuffix: "_seg",
      allowMissingMasks: true,
      splits: split,
      seed: 0,
    });
    expect(loose.cases.every((c) => c.mask === undefined)).toBe(true);
    expect(() => datasetFromFolders({ images: join(root, "drive/images"), masks: join(root, "drive/manual"), splits: split, seed: 0 })).toThrow(
      /no mask in .* is named after an image/,
    );
  });

  it("sees the images folder behind a symlink as the same folder, and refuses ambiguous or dropped mask options", () => {
    // the masks folder is the images folder through a symlink: read as two folders, suffix '' would win and every image would be its own mask
    symlinkSync(join(root, "mixed"), join(root, "mixed-link"));
    expect(() => datasetFromFolders({ images: join(root, "mixed"), masks: join(root, "mixed-link"), splits: split, seed: 0 })).toThrow(
      /can only be told apart by --mask-suffix/,
    );
    const linked = datasetFromFolders({ images: join(root, "mixed"), masks: join(root, "mixed-link"), maskSuffix: "_mask", splits: split, seed: 0 });
    expect(linked.cases.map((c) => c.id)).toEqual(["21", "22"]);
    expect(linked.unpairedMasks).toEqual([]);
    expect(() => datasetFromFolders({ images: join(root, "img"), maskSuffix: "_mask", splits: split, seed: 0 })).toThrow(
      /--mask-suffix only applies with --masks/,
    );
    expect(() => datasetFromFolders({ images: join(root, "nope"), splits: split, seed: 0 })).toThrow(/--images .*nope does not exist/);
    // two files with one mask name: which one is the mask is not guessed
    mkdirSync(join(root, "dup"));
    copyFileSync(join(root, "msk", "a1_lesion.png"), join(root, "dup", "a1_lesion.png"));
    copyFileSync(join(root, "msk", "a1_lesion.png"), join(root, "dup", "a1_lesion.gif"));
    expect(() =>
      datasetFromFolders({ images: join(root, "img"), masks: join(root, "dup"), allowMissingMasks: true, splits: split, seed: 0 }),
    ).toThrow(/a1_lesion.gif and a1_lesion.png .* both named as the mask of 'a1'/);
  });

  it("refuses a tied suffix vote instead of guessing, and skips hidden files", async () => {
    // copies of the images beside their masks: '' ties with '_lesion' and would pair each image with itself
    mkdirSync(join(root, "both"));
    for (const id of ["a1", "a2"]) {
      copyFileSync(join(root, "img", `${id}.png`), join(root, "both", `${id}.png`));
      copyFileSync(join(root, "msk", `${id}_lesion.png`), join(root, "both", `${id}_lesion.png`));
    }
    mkdirSync(join(root, "two"));
    for (const id of ["a1", "a2"]) copyFileSync(join(root, "img", `${id}.png`), join(root, "two", `${id}.png`));
    expect(() => datasetFromFolders({ images: join(root, "two"), masks: join(root, "both"), splits: split, seed: 0 })).toThrow(
      /pair as many images with suffix '' as with '_lesion' \(2 each\)/,
    );
    expect(
      datasetFromFolders({ images: join(root, "two"), masks: join(root, "both"), maskSuffix: "_lesion", splits: split, seed: 0 }).cases,
    ).toHaveLength(2);
    // macOS's AppleDouble files end in .png but are no images
    await writeImage(join(root, "two"), "._a1.png", () => 0, 8);
    await writeMask(join(root, "both"), "._a1_lesion.png", () => true, 8);
    const ds = datasetFromFolders({ images: join(root, "two"), masks: join(root, "both"), maskSuffix: "_lesion", splits: split, seed: 0 });
    expect(ds.cases.map((c) => c.id)).toEqual(["a1", "a2"]);
  });

  it("`segcause dataset init` notes a split its share left empty, and cannot-write is one line", () => {
    const out = join(root, "small", "manifest.json");
    const r = segcause("dataset", "init", "--images", join(root, "drive/images"), "--splits", "train=70,val=15,test=15", "--out", out);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("2 cases (1 train, 1 val, 0 test)");
    expect(r.stderr).toContain("note: split test got no case");
    const w = segcause("dataset", "init", "--images", join(root, "img"), "--out", "/proc/segcause-manifest.json");
    expect(w.code).toBe(1);
    expect(w.stderr).toMatch(
      /^segcause: error: cannot write \/proc\/segcause-manifest.json \(\w+\) \(give --out a path in a folder you can write to\)\n$/,
    );
  });

  it("`segcause dataset init` writes a manifest that evaluate reads, with relative paths and its provenance", () => {
    const out = join(root, "m", "manifest.json");
    const r = segcause(
      "dataset",
      "init",
      "--images",
      join(root, "img"),
      "--masks",
      join(root, "msk"),
      "--splits",
      "train=8,test=2",
      "--seed",
      "3",
      "--out",
      out,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("10 cases (8 train, 2 test), 10 with a mask (suffix '_lesion')");
    expect(r.stderr).toContain("note: 1 file(s)");
    const m = JSON.parse(readFileSync(out, "utf8"));
    expect(m.name).toBe("m");
    expect(m.cases[0]).toEqual({ id: "a1", image: "../img/a1.png", mask: "../msk/a1_lesion.png", split: m.cases[0].split });
    // the source folders are relative to the manifest too, not to the shell's folder at the time
    const testIds = m.cases.filter((c: { split: string }) => c.split === "test").map((c: { id: string }) => c.id);
    expect(r.stdout).toContain(`test cases (to explain): ${testIds.join(", ")}\n`);
    expect(m.source).toMatchObject({
      images: "../img",
      masks: "../msk",
      maskSuffix: "_lesion",
      seed: 3,
      splits: [
        { name: "train", share: 8 },
        { name: "test", share: 2 },
      ],
    });
    expect(readManifest(out).cases[0].image).toBe(join(root, "img", "a1.png"));
    const again = segcause("dataset", "init", "--images", join(root, "img"), "--out", out);
    expect(again.stderr).toMatch(/already exists/);
    expect(r.stderr).not.toContain("every case is in split");
    const one = segcause("dataset", "init", "--images", join(root, "img"), "--out", join(root, "one", "manifest.json"));
    expect(one.code, one.stderr).toBe(0);
    expect(one.stderr).toContain(
      "note: every case is in split test; `bank build` and `evaluate` without --bank take their patches from other splits",
    );
    expect(segcause("dataset", "init", "--images", join(root, "img"), "--splits", "train=70,train=30", "--out", join(root, "x.json")).stderr).toMatch(
      /--splits names 'train' twice/,
    );
  });

  it("`segcause dataset init` looks inside the masks: wrong size and label maps refused, empty ones noted", async () => {
    const d = join(root, "badmasks");
    for (const sub of ["img", "msk"]) mkdirSync(join(d, sub), { recursive: true });
    for (const id of ["b1", "b2", "b3"]) await writeImage(join(d, "img"), `${id}.png`, () => 100, 8);
    await writeMask(join(d, "msk"), "b1_mask.png", (r) => r < 4, 8);
    await writeMask(join(d, "msk"), "b2_mask.png", () => false, 8); // empty: allowed, noted
    await writeMask(join(d, "msk"), "b3_mask.png", (r) => r < 4, 4); // another size
    const out = join(d, "manifest.json");
    const bad = segcause("dataset", "init", "--images", join(d, "img"), "--masks", join(d, "msk"), "--out", out);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/1 of 3 masks cannot be used: b3_mask\.png is 4x4 pixels but b3\.png is 8x8/);
    await writeMask(join(d, "msk"), "b3_mask.png", (r) => r < 4, 8);
    const ok = segcause("dataset", "init", "--images", join(d, "img"), "--masks", join(d, "msk"), "--out", out);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr).toContain("note: 1 mask(s) hold no structure (b2)");
  });
});
