/**
 * `segcause components` on volumes, as a user runs it: a tiny 3D model with a known answer (files,
 * NIfTI spatial maps on the input's grid), bad inputs refused in one line before anything is written,
 * and the shipped 3D model on a real hippocampus case with donors from the data set's manifest.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { readDicomVolume } from "../src/data/volume/dicom/index.js";
import { readNifti } from "../src/data/volume/nifti.js";
import { segcause } from "./helpers/cli.js";
import { AFFINE, at, CARD3D, copyChannelModel, N, writeFlatVolume } from "./helpers/components3d.js";
import { regionMeanModel, tmp, writeImage, writeModel } from "./helpers/tiny.js";

const HIPPO = join("..", "shared", "data", "hippocampus");
const MODEL3D = join("models", "volumes", "unet3d-hippocampus.onnx");

let dir: string, model: string, image: string, donorDir: string, png: string, model2d: string;
beforeAll(async () => {
  dir = tmp();
  model = writeModel(dir, "copy3d.onnx", copyChannelModel(), CARD3D);
  image = await writeFlatVolume(dir, "bright", 200);
  donorDir = join(dir, "donors");
  mkdirSync(donorDir);
  for (const v of [0, 20, 40]) await writeFlatVolume(donorDir, `d${v}`, v);
  png = await writeImage(dir, "flat.png", () => 200);
  model2d = writeModel(dir, "causal2d.onnx", regionMeanModel([{ row: 0, col: 16, height: 16, width: 16, weight: 50 }], -40));
});

const out = () => join(dir, `out-${Math.random().toString(36).slice(2)}`);

describe("components on a tiny 3D model (CLI)", () => {
  it("--list names a 3D model's components and the tensors --tensor takes", () => {
    const r = segcause("components", "--list", "--model", model, "--level", "layer", "--json");
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).components.map((c: { name: string; outputs: string[] }) => [c.name, c.outputs])).toEqual([
      ["enc/conv", ["feat"]],
      ["head/conv", ["s"]],
      ["head", ["mask"]],
    ]);
  });

  it("the spatial level writes each tensor's box effects as NIfTI on the input's grid, with its affine", async () => {
    const o = out();
    const ok = segcause(
      "components",
      "--model",
      model,
      "--image",
      image,
      "--roi",
      "4,0,4,4,4,4",
      "--level",
      "spatial",
      "--tensor",
      "feat",
      "--cell",
      "4",
      "--ablation",
      "zero",
      "--out",
      o,
    );
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/feat@4,0,4: ATE -100\.000/);
    const manifest = JSON.parse(readFileSync(join(o, "manifest.json"), "utf8"));
    expect(manifest.files).toEqual(["components.json", "components.csv", "spatial-0-feat.nii.gz"]);
    const map = await readNifti(join(o, "spatial-0-feat.nii.gz"));
    expect(map.dims).toEqual([N, N, N]);
    expect(map.affine).toEqual(AFFINE);
    for (let z = 0; z < N; z++)
      for (let y = 0; y < N; y++) for (let x = 0; x < N; x++) expect(map.data[at(z, y, x)]).toBeCloseTo(z >= 4 && y < 4 && x >= 4 ? -100 : 0, 4);
    expect(manifest.provenance.volume).toMatchObject({ dims: [N, N, N], affine: AFFINE, spacing: [1, 1, 1] });
  });

  it("the channel level with a folder of donor volumes: JSON summary and the bar chart", () => {
    const o = out();
    const ok = segcause(
      "components",
      "--model",
      model,
      "--image",
      image,
      "--roi",
      "4,0,4,4,4,4",
      "--level",
      "channel",
      "--tensor",
      "feat",
      "--donors",
      donorDir,
      "--out",
      o,
      "--json",
    );
    expect(ok.code, ok.stderr).toBe(0);
    const s = JSON.parse(ok.stdout);
    expect(s.format).toBe("segcause.components-summary/1");
    expect(s.donors).toBe(3);
    const byName = Object.fromEntries(s.units.map((u: { name: string; effect: number }) => [u.name, u.effect]));
    expect(byName["feat[2]"]).toBeCloseTo(-100, 6);
    for (const c of [0, 1, 3]) expect(byName[`feat[${c}]`]).toBe(0);
    for (const f of ["components.json", "components.csv", "components.png", "manifest.json"]) expect(existsSync(join(o, f)), f).toBe(true);
    const json = JSON.parse(readFileSync(join(o, "components.json"), "utf8"));
    expect(json.tensorDims.feat).toEqual([4, N, N, N]);
    expect(json.roi).toBe("box z 4..7, y 0..3, x 4..7 (4x4x4)");
  });
});

describe("components on volumes: bad inputs, one line each, nothing written", () => {
  let big: string, bigDir: string, pngOnly: string, manifest2d: string, sliding: string;
  beforeAll(async () => {
    bigDir = join(dir, "big");
    mkdirSync(bigDir);
    big = await writeFlatVolume(bigDir, "big", 30, 12);
    pngOnly = join(dir, "pngs");
    mkdirSync(pngOnly);
    await writeImage(pngOnly, "a.png", () => 10);
    const set2d = join(dir, "set2d");
    mkdirSync(set2d);
    await writeImage(set2d, "a.png", () => 10);
    manifest2d = join(set2d, "manifest.json");
    writeFileSync(manifest2d, JSON.stringify({ name: "flat2d", cases: [{ id: "a", image: "a.png", split: "train" }] }));
    const slidingCard = { ...CARD3D, input: { ...CARD3D.input, placement: { kind: "sliding", overlap: 0.5 } } };
    sliding = writeModel(dir, "sliding3d.onnx", copyChannelModel(), slidingCard);
  });

  const base = (...more: string[]) => ["components", "--model", model, "--image", image, "--roi", "4,0,4,4,4,4", ...more];
  const cases: [string, () => string[], RegExp][] = [
    [
      "a 2D image with a 3D model",
      () => ["components", "--model", model, "--image", png, "--roi", "0,0,4,4"],
      /is a 3D model .* but .*flat\.png is not a volume/,
    ],
    ["a volume with a 2D model", () => ["components", "--model", model2d, "--image", image, "--roi", "0,0,4,4"], /is a volume, but .* is a 2D model/],
    [
      "--roi-mask with a 2D model",
      () => ["components", "--model", model2d, "--image", png, "--roi", "0,0,4,4", "--roi-mask", image],
      /--roi-mask applies to volumes/,
    ],
    ["a 2D RoI on a volume", () => base().slice(0, -2).concat(["--roi", "0,0,4,4"]), /cannot parse volume RoI '0,0,4,4'/],
    ["both --roi and --roi-mask", () => base("--roi-mask", image), /both --roi and --roi-mask/],
    ["resample without donors", () => base(), /resample ablation needs donor volumes/],
    ["no RoI", () => ["components", "--model", model, "--image", image], /components on a 3D model needs --image, --roi \(or --roi-mask\) and --out/],
    ["a 2D card flag", () => base("--input-size", "8,8", "--ablation", "zero"), /--input-size applies to 2D images/],
    ["donors of another geometry", () => base("--donors", bigDir), /donor .*big\.nii\.gz is 12x12x12 voxels .* larger than the model's 8x8x8 box/],
    ["a folder of 2D images as donors", () => base("--donors", pngOnly), /donor folder .* holds no NIfTI volume/],
    ["a 2D data set's manifest as donors", () => base("--donors", manifest2d), /dataset flat2d holds 2D images, and this reads volumes/],
    [
      "--splits with a folder of volumes",
      () => base("--donors", donorDir, "--splits", "train"),
      /--splits chooses donors from a data set's manifest/,
    ],
    [
      "a sliding card whose volume needs several windows",
      () => ["components", "--model", sliding, "--image", big, "--roi", "0,0,0,2,2,2", "--ablation", "zero"],
      /components do not run over sliding windows, and big \(12x12x12 voxels DxHxW in the model's space, padded to at least one window\) needs more than one 8x8x8 window/,
    ],
  ];
  for (const [what, args, pattern] of cases)
    it(what, () => {
      const o = out();
      const r = segcause(...args(), "--out", o);
      expect(r.code, r.stderr).toBe(1);
      const lines = r.stderr.trim().split("\n");
      expect(lines, r.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(pattern);
      expect(existsSync(o)).toBe(false);
    });
});

const haveHippo = existsSync(join(HIPPO, "manifest.json"));
if (!haveHippo)
  console.warn("components-volume-cli.test.ts: ../shared/data/hippocampus is absent, so the real-data runs are skipped (CI has the data)");

describe.skipIf(!haveHippo)("components of the shipped 3D model on a real hippocampus volume", () => {
  const img = join(HIPPO, "images", "hippocampus_243.nii.gz");
  const lab = join(HIPPO, "labels", "hippocampus_243.nii.gz");

  it("stages with donors from the data set's train split: every component all paths pass through gets the same estimate", async () => {
    const o = out();
    const r = segcause(
      "components",
      "--model",
      MODEL3D,
      "--image",
      img,
      "--mask",
      lab,
      "--roi-mask",
      lab,
      "--label",
      "1",
      "--donors",
      join(HIPPO, "manifest.json"),
      "--splits",
      "train",
      "--max-donors",
      "2",
      "--out",
      o,
      "--json",
    );
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.donors).toBe(2);
    expect(s.reference).toBe("ground-truth");
    const effect = Object.fromEntries(s.units.map((u: { name: string; effect: number }) => [u.name, u.effect]));
    // the input block, the last decoder concatenation, the last decoder block and the head: every path from input to output
    const all = ["inc", "/Concat_2", "decs.2", "head"].map((n) => effect[n]);
    expect(new Set(all).size, JSON.stringify(all)).toBe(1);
    expect(all[0]).toBeLessThan(0);
    const json = JSON.parse(readFileSync(join(o, "components.json"), "utf8"));
    expect(json.units).toHaveLength(17);
    const prov = JSON.parse(readFileSync(join(o, "manifest.json"), "utf8")).provenance;
    expect(prov.model.sha256).toBe(createHash("sha256").update(readFileSync(MODEL3D)).digest("hex"));
    const nifti = await readNifti(img);
    expect(prov.volume).toMatchObject({ dims: nifti.dims, spacing: nifti.spacing, affine: nifti.affine });
    expect(prov.intervention.donors).toHaveLength(2);
    expect(prov.target.roi).toMatch(/label 1/);
    for (const f of ["components.png", "depth-profile.png", "components.csv"]) expect(existsSync(join(o, f)), f).toBe(true);
  });

  it("boxes of the bottleneck's feature map, zero ablation: a NIfTI map on the case's grid", async () => {
    const o = out();
    const bottleneck = "/downs.2/downs.2.1/downs.2.1.2/Relu_output_0";
    const r = segcause(
      "components",
      "--model",
      MODEL3D,
      "--image",
      img,
      "--roi-mask",
      lab,
      "--level",
      "spatial",
      "--tensor",
      bottleneck,
      "--cell",
      "3",
      "--ablation",
      "zero",
      "--out",
      o,
      "--json",
    );
    expect(r.code, r.stderr).toBe(0);
    const json = JSON.parse(readFileSync(join(o, "components.json"), "utf8"));
    const [, D, H, W] = json.tensorDims[bottleneck];
    expect(json.units).toHaveLength(Math.ceil(D / 3) * Math.ceil(H / 3) * Math.ceil(W / 3));
    const file = readdirNifti(o);
    const map = await readNifti(join(o, file));
    const input = await readNifti(img);
    expect(map.dims).toEqual(input.dims);
    expect(map.affine).toEqual(input.affine);
    // every value of the map is one of the units' effects (the volume fits the box: no voxel is unseen)
    const effects = new Set(json.units.map((u: { effect: number }) => Math.fround(u.effect)));
    for (const v of map.data) expect(effects.has(v)).toBe(true);
    expect(json.units.some((u: { effect: number }) => u.effect < 0)).toBe(true);
  });
});

const DICOM_SERIES = join("..", "shared", "data", "dicom", "mr-hippocrop", "study1");

if (!existsSync(DICOM_SERIES))
  console.warn("components-volume-cli.test.ts: ../shared/data/dicom is absent, so the DICOM series run is skipped (CI has the data)");

describe.skipIf(!existsSync(DICOM_SERIES))("components of the shipped 3D model on a DICOM series", () => {
  it("an LPS series (reoriented to the card's RAS): boxes of the bottleneck, the map back on the series' grid", async () => {
    const o = out();
    const bottleneck = "/downs.2/downs.2.1/downs.2.1.2/Relu_output_0";
    const args = ["--roi", "12,16,14,6,8,6", "--level", "spatial", "--tensor", bottleneck, "--cell", "4", "--ablation", "zero"];
    const r = segcause("components", "--model", MODEL3D, "--image", DICOM_SERIES, ...args, "--out", o);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/note: reoriented LPS → RAS/);
    const input = await readDicomVolume(DICOM_SERIES);
    const map = await readNifti(join(o, readdirNifti(o)));
    expect(map.dims).toEqual(input.dims);
    for (let i = 0; i < 16; i++) expect(map.affine[i]).toBeCloseTo(input.affine[i], 4);
    const prov = JSON.parse(readFileSync(join(o, "manifest.json"), "utf8")).provenance;
    expect(prov.case.source).toBe("dicom");
    expect(prov.volume.modelSpace).toMatchObject({ inputAxes: "LPS", flips: [true, true, false], resampled: null });
    const json = JSON.parse(readFileSync(join(o, "components.json"), "utf8"));
    const effects = new Set(json.units.map((u: { effect: number }) => Math.fround(u.effect)));
    for (const v of map.data) expect(Number.isNaN(v) || effects.has(v)).toBe(true);
  });
});

function readdirNifti(d: string): string {
  const files = JSON.parse(readFileSync(join(d, "manifest.json"), "utf8")).files as string[];
  const nii = files.filter((f) => f.endsWith(".nii.gz"));
  expect(nii).toHaveLength(1);
  return nii[0];
}
