import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import sharp from "sharp";
import { beforeAll, describe, expect, it } from "vitest";
import { PARAMETRIC_MAP_SOP_CLASS, readDicomFile, readDicomVolume } from "../src/data/volume/dicom/index.js";
import { labelMask } from "../src/data/volume/label-mask.js";
import { readNifti } from "../src/data/volume/nifti.js";
import { niftiBytes, writeNifti } from "../src/data/volume/nifti-write.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import { mosaicLayout } from "../src/report/mosaic.js";
import { segcause } from "./helpers/cli.js";
import { regionMeanModel, tmp, writeImage, writeModel } from "./helpers/tiny.js";

const HIPPO = join("..", "shared", "data", "hippocampus");
const MODEL3D = join("models", "volumes", "unet3d-hippocampus.onnx");
const N = 16;

/** A 16³ model whose output is 10·(mean of the input over the whole box) − 1 (enough for refusals). */
function meanModel(): Uint8Array {
  const g = new GraphBuilder("mean-3d");
  const x = g.input("image", ["N", 1, N, N, N]);
  const conv = g.node("Conv", [x, g.constant([1, 1, N, N, N], new Float32Array(N ** 3).fill(10 / N ** 3)), g.constant([1], [1])], {
    kernel_shape: [N, N, N],
  });
  const out = g.node("Add", [conv, g.constant([1, 1, N, N, N], new Float32Array(N ** 3))], {}, ["mask"]);
  g.output(out, ["N", 1, N, N, N]);
  return g.toBytes();
}

const CARD = {
  input: {
    name: "image",
    layout: "ncdhw",
    depth: N,
    height: N,
    width: N,
    channels: "gray",
    normalisation: { kind: "zscore" },
    placement: { kind: "centre", fill: 0 },
    spacing: [1, 1, 1],
  },
  output: { name: "mask", layout: "ncdhw", kind: "logits", activation: "sigmoid", channel: 0 },
};

let dir: string, model: string, volume: string, labels: string, png: string, model2d: string;
const AFFINE = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];

beforeAll(async () => {
  dir = tmp();
  model = writeModel(dir, "mean3d.onnx", meanModel(), CARD);
  volume = join(dir, "v.nii.gz");
  await writeNifti(volume, { dims: [N, N, N], affine: AFFINE, data: Float32Array.from({ length: N ** 3 }, (_, i) => i % 7) });
  labels = join(dir, "labels.nii.gz");
  await writeNifti(labels, { dims: [N, N, N], affine: AFFINE, data: Float32Array.from({ length: N ** 3 }, (_, i) => (i % N < 4 ? 1 : 0)) });
  png = await writeImage(dir, "flat.png", () => 200);
  model2d = writeModel(dir, "causal2d.onnx", regionMeanModel([{ row: 0, col: 16, height: 16, width: 16, weight: 50 }], -40));
});

function refused(args: string[], pattern: RegExp): void {
  const out = join(dir, `out-${Math.random().toString(36).slice(2)}`);
  const r = segcause("explain", ...args, "--out", out);
  expect(r.code, r.stderr).toBe(1);
  const lines = r.stderr.trim().split("\n");
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
  // refused before the output folder is made
  expect(existsSync(out)).toBe(false);
}

/** A NaN-aware voxel-for-voxel comparison of two maps, `at` giving b's voxel for a's voxel (i, j, k). */
function expectSameMap(a: Float32Array, dims: number[], b: Float32Array, at: (i: number, j: number, k: number) => number): void {
  const [nx, ny, nz] = dims;
  let differ = 0;
  for (let k = 0; k < nz; k++)
    for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++) if (!Object.is(a[(k * ny + j) * nx + i], b[at(i, j, k)])) differ++;
  expect(differ).toBe(0);
}

const haveHippo = existsSync(join(HIPPO, "manifest.json"));
const DICOM_SERIES = join("..", "shared", "data", "dicom", "mr-hippocrop", "study1");
const haveDicom = existsSync(DICOM_SERIES);
if (!haveHippo || !haveDicom)
  console.warn("volume-cli.test.ts: ../shared/data (hippocampus, dicom) is absent, so the real-data runs are skipped (CI has the data)");

describe.skipIf(!haveHippo)("explain on a real hippocampus volume with the shipped 3D model", () => {
  it("zero ablation writes map.nii.gz and stderr.nii.gz on the input's grid, with spacing, affine and placement in map.json", async () => {
    const manifest = JSON.parse(readFileSync(join(HIPPO, "manifest.json"), "utf8")) as {
      cases: { id: string; image: string; mask: string; split: string }[];
    };
    const c = manifest.cases.find((x) => x.split === "test")!;
    const out = join(dir, "real");
    const r = segcause(
      "explain",
      "--model",
      MODEL3D,
      "--image",
      join(HIPPO, c.image),
      "--mask",
      join(HIPPO, c.mask),
      "--label",
      "1,2",
      "--roi-mask",
      join(HIPPO, c.mask),
      "--method",
      "zero",
      "--block",
      "16",
      "--out",
      out,
    );
    expect(r.code, r.stderr).toBe(0);
    const input = await readNifti(join(HIPPO, c.image));
    const map = await readNifti(join(out, "map.nii.gz"));
    const se = await readNifti(join(out, "stderr.nii.gz"));
    for (const v of [map, se]) {
      expect(v.dims).toEqual(input.dims);
      for (let i = 0; i < 16; i++) expect(v.affine[i]).toBeCloseTo(input.affine[i], 5);
    }
    const json = JSON.parse(readFileSync(join(out, "map.json"), "utf8"));
    expect(json.provenance.volume.dims).toEqual(input.dims);
    expect(json.provenance.volume.spacing).toEqual(input.spacing);
    expect(json.provenance.volume.placement.box).toEqual([48, 64, 48]);
    // every box's effect is painted over its voxels on the input grid (the RoI's voxels hold 0)
    const [nx, ny] = input.dims;
    const p = json.provenance.volume.placement.offset as number[];
    for (const u of json.units as { z: number; y: number; x: number; effect: number }[]) {
      const at = ((u.z - p[2]) * ny + (u.y - p[1])) * nx + (u.x - p[0]);
      expect(map.data[at]).toBeCloseTo(u.effect, 4);
    }
    expect(json.baseOutcome).toBeGreaterThan(80);
    expect(JSON.parse(readFileSync(join(out, "manifest.json"), "utf8")).files).toEqual(expect.arrayContaining(["map.nii.gz", "mosaic.png"]));
    // the mosaic is the picture mosaicLayout plans for this volume, map and RoI
    const png = await sharp(join(out, "mosaic.png")).metadata();
    const roi = labelMask(await readNifti(join(HIPPO, c.mask)), [1, 2]);
    const seen = map.data.map((v) => (Number.isFinite(v) ? v : 0));
    const layout = mosaicLayout({ dims: input.dims, spacing: input.spacing, affine: input.affine, image: input.data, map: seen, roi, signed: true });
    expect([png.width, png.height]).toEqual([layout.width, layout.height]);
  });
});

describe.skipIf(!haveDicom || !haveHippo)("explain on a DICOM series", () => {
  const series = DICOM_SERIES;

  it("runs the LPS series with the shipped RAS card (reoriented), maps on the series' grid, a Parametric Map that references it", async () => {
    const out = join(dir, "dicom");
    const args = ["--roi", "12,16,14,6,8,6", "--method", "zero", "--block", "16"];
    const r = segcause("explain", "--model", MODEL3D, "--image", series, ...args, "--out", out);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/note: reoriented LPS → RAS/);
    const input = await readDicomVolume(series);
    const map = await readNifti(join(out, "map.nii.gz"));
    expect(map.dims).toEqual(input.dims);
    for (let i = 0; i < 16; i++) expect(map.affine[i]).toBeCloseTo(input.affine[i], 4);
    const json = JSON.parse(readFileSync(join(out, "map.json"), "utf8"));
    expect(json.provenance.volume.modelSpace).toMatchObject({
      inputAxes: "LPS",
      permutation: [0, 1, 2],
      flips: [true, true, false],
      resampled: null,
    });
    const pm = readDicomFile(join(out, "map-parametric.dcm"), "DICOM Parametric Map");
    expect(pm.dataSet.string("x00080016")).toBe(PARAMETRIC_MAP_SOP_CLASS);
    expect(
      readFileSync(join(out, "map-parametric.dcm")).includes(Buffer.from(input.source.kind === "dicom" ? input.source.seriesInstanceUid : "?")),
    ).toBe(true);

    // The same voxels written as a RAS NIfTI (i and j reversed by hand, the affine moved to match) give
    // the same map, voxel for voxel at the same world position: segcause reorients as a user's pipeline would.
    const [nx, ny, nz] = input.dims;
    const flipped = new Float32Array(input.data.length);
    for (let k = 0; k < nz; k++)
      for (let j = 0; j < ny; j++)
        for (let i = 0; i < nx; i++) flipped[(k * ny + (ny - 1 - j)) * nx + (nx - 1 - i)] = input.data[(k * ny + j) * nx + i];
    const A = input.affine;
    const affine = [...A];
    for (const row of [0, 1, 2]) {
      affine[row * 4] = -A[row * 4];
      affine[row * 4 + 1] = -A[row * 4 + 1];
      affine[row * 4 + 3] = A[row * 4 + 3] + A[row * 4] * (nx - 1) + A[row * 4 + 1] * (ny - 1);
    }
    const ras = join(dir, "series-ras.nii.gz");
    await writeNifti(ras, { dims: input.dims, affine, data: flipped });
    const outRas = join(dir, "dicom-as-ras");
    // the RoI z,y,x,d,h,w = 12,16,14,6,8,6 on the series is y 16..23 → 27..34 and x 14..19 → 15..20 on the copy
    const flippedRoi = `12,${ny - 16 - 8},${nx - 14 - 6},6,8,6`;
    const r2 = segcause("explain", "--model", MODEL3D, "--image", ras, "--roi", flippedRoi, "--method", "zero", "--block", "16", "--out", outRas);
    expect(r2.code, r2.stderr).toBe(0);
    expect(r2.stdout).not.toMatch(/reoriented/);
    const mapRas = await readNifti(join(outRas, "map.nii.gz"));
    expectSameMap(map.data, input.dims, mapRas.data, (i, j, k) => (k * ny + (ny - 1 - j)) * nx + (nx - 1 - i));

    // Under a card declaring LPS axes the network sees the series as it is stored, i.e. mirrored left-right
    // and front-back relative to the RAS volumes it was trained on: a different input, so a different map.
    const lpsModel = join(dir, "lps-model.onnx");
    writeFileSync(lpsModel, readFileSync(MODEL3D));
    const card = JSON.parse(readFileSync(`${MODEL3D}.json`, "utf8"));
    card.input.axes = "LPS";
    writeFileSync(`${lpsModel}.json`, JSON.stringify(card));
    const outLps = join(dir, "dicom-lps-card");
    const r3 = segcause("explain", "--model", lpsModel, "--image", series, ...args, "--out", outLps);
    expect(r3.code, r3.stderr).toBe(0);
    expect(r3.stdout).not.toMatch(/reoriented/);
    const mapLps = await readNifti(join(outLps, "map.nii.gz"));
    expect(Array.from(mapLps.data)).not.toEqual(Array.from(map.data));
  });
});

describe.skipIf(!existsSync(join(HIPPO, "manifest.json")))("a hippocampus volume at another spacing", () => {
  it("is resampled to the card's 1 mm (trilinear) with a note, and its map comes back onto its own grid", async () => {
    const manifest = JSON.parse(readFileSync(join(HIPPO, "manifest.json"), "utf8")) as { cases: { image: string; mask: string; split: string }[] };
    const c = manifest.cases.find((x) => x.split === "test")!;
    const v = await readNifti(join(HIPPO, c.image));
    const labels = await readNifti(join(HIPPO, c.mask));
    // the same volume at 0.5 mm along k: every slice twice, the outer faces kept (1 mm → 2 x 0.5 mm)
    const [nx, ny, nz] = v.dims;
    const split = (data: Float32Array) => {
      const out = new Float32Array(nx * ny * nz * 2);
      for (let k = 0; k < 2 * nz; k++) out.set(data.subarray((k >> 1) * nx * ny, ((k >> 1) + 1) * nx * ny), k * nx * ny);
      return out;
    };
    const affine = [...v.affine];
    for (const row of [0, 1, 2]) {
      affine[row * 4 + 2] = v.affine[row * 4 + 2] / 2;
      affine[row * 4 + 3] = v.affine[row * 4 + 3] - v.affine[row * 4 + 2] / 4;
    }
    const fine = join(dir, "fine.nii.gz");
    const fineLabels = join(dir, "fine-labels.nii.gz");
    await writeNifti(fine, { dims: [nx, ny, 2 * nz], affine, data: split(v.data) });
    await writeNifti(fineLabels, { dims: [nx, ny, 2 * nz], affine, data: split(labels.data) });
    const run = (image: string, mask: string, out: string) =>
      segcause(
        "explain",
        "--model",
        MODEL3D,
        "--image",
        image,
        "--mask",
        mask,
        "--label",
        "1,2",
        "--roi-mask",
        mask,
        "--method",
        "zero",
        "--block",
        "16",
        "--out",
        out,
      );
    const r = run(fine, fineLabels, join(dir, "fine-out"));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/note: resampled 1x1x0.5 mm → 1x1x1 mm, trilinear/);
    const r0 = run(join(HIPPO, c.image), join(HIPPO, c.mask), join(dir, "orig-out"));
    expect(r0.code, r0.stderr).toBe(0);
    const [m, m0] = [await readNifti(join(dir, "fine-out", "map.nii.gz")), await readNifti(join(dir, "orig-out", "map.nii.gz"))];
    expect(m.dims).toEqual([nx, ny, 2 * nz]);
    for (let i = 0; i < 16; i++) expect(m.affine[i]).toBeCloseTo(affine[i], 5);
    // trilinear of two equal slices is the slice: the model sees the original volume, so the map is the
    // original's, each of its slices twice
    expectSameMap(m.data, m.dims, m0.data, (i, j, k) => ((k >> 1) * ny + j) * nx + i);
    const json = JSON.parse(readFileSync(join(dir, "fine-out", "map.json"), "utf8"));
    expect(json.provenance.volume.modelSpace).toMatchObject({
      sourceSpacing: [1, 1, 0.5],
      targetSpacing: [1, 1, 1],
      resampled: { image: "trilinear", masks: "nearest", dims: v.dims },
    });
  });
});

describe("blocks in millimetres", () => {
  it("on a 1 mm card --block 8 (mm) gives the same boxes and map as --block 8 --box-unit vox", async () => {
    const run = (out: string, ...extra: string[]) =>
      segcause(
        "explain",
        "--model",
        model,
        "--image",
        volume,
        "--roi",
        "0,0,0,4,4,4",
        "--method",
        "zero",
        "--reference",
        "prediction",
        "--block",
        "8",
        ...extra,
        "--out",
        out,
      );
    const [mm, vox] = [join(dir, "block-mm"), join(dir, "block-vox")];
    expect(run(mm).code).toBe(0);
    const r = run(vox, "--box-unit", "vox");
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(vox, "map.nii.gz")).equals(readFileSync(join(mm, "map.nii.gz")))).toBe(true);
    const settings = JSON.parse(readFileSync(join(mm, "map.json"), "utf8")).provenance.settings;
    expect(settings).toMatchObject({ block: 8, blockMm: 8 });
  });
});

describe("volume inputs that cannot work are refused in one line, exit 1, nothing complete written", () => {
  it("a 4D NIfTI", () => {
    const bytes = niftiBytes({ dims: [N, N, N], affine: AFFINE, data: new Float32Array(N ** 3) });
    const four = Buffer.concat([Buffer.from(bytes), Buffer.alloc(N ** 3 * 4)]);
    four.writeInt16LE(4, 40);
    four.writeInt16LE(2, 48);
    const path = join(dir, "four.nii");
    writeFileSync(path, four);
    refused(["--model", model, "--image", path, "--roi", "0,0,0,4,4,4", "--method", "zero"], /4D NIfTI/);
  });

  it("a mask on another grid", async () => {
    const other = join(dir, "other.nii.gz");
    await writeNifti(other, { dims: [N, N, N - 1], affine: AFFINE, data: new Float32Array(N * N * (N - 1)).fill(1) });
    refused(
      ["--model", model, "--image", volume, "--mask", other, "--label", "1", "--roi", "0,0,0,4,4,4", "--method", "zero"],
      /not on the voxel grid/,
    );
  });

  it("a volume whose resampling to the card's spacing would exceed the voxel cap", async () => {
    const coarse = join(dir, "coarse.nii.gz");
    await writeNifti(coarse, {
      dims: [N, N, N],
      affine: [100, 0, 0, 0, 0, 100, 0, 0, 0, 0, 100, 0, 0, 0, 0, 1],
      data: Float32Array.from({ length: N ** 3 }, (_, i) => i % 5),
    });
    refused(
      ["--model", model, "--image", coarse, "--roi", "0,0,0,4,4,4", "--method", "zero"],
      /resampled from 100x100x100 mm to the model's 1x1x1 mm would hold 1600x1600x1600 voxels/,
    );
  });

  it("--box-unit on a 2D image", () => {
    refused(["--model", model2d, "--image", png, "--roi", "0,0,8,8", "--method", "zero", "--box-unit", "vox"], /--box-unit applies to volumes/);
  });

  it("a label the map does not hold", () => {
    refused(
      ["--model", model, "--image", volume, "--mask", labels, "--label", "7", "--roi", "0,0,0,4,4,4", "--method", "zero"],
      /label 7 is not in .*labels present: 1/,
    );
  });

  it("a RoI outside the volume", () => {
    refused(["--model", model, "--image", volume, "--roi", "0,0,0,40,4,4", "--method", "zero", "--reference", "prediction"], /outside the volume/);
  });

  it("--slice-axis with a 3D model (a 2D model given a volume runs slice by slice), and a 3D model given a 2D image", () => {
    refused(
      ["--model", model, "--image", volume, "--roi", "0,0,0,4,4,4", "--method", "zero", "--slice-axis", "k"],
      /--slice-axis applies to a 2D model run slice by slice/,
    );
    refused(["--model", model, "--image", png, "--roi", "0,0,8,8", "--method", "zero"], /is a 3D model .* not a volume/);
  });

  it("a 3D model without a volume card is said to be one (not run as a 2D model slice by slice), naming where the card belongs", () => {
    const cardless = writeModel(dir, "cardless3d.onnx", meanModel());
    for (const method of ["zero", "rise"])
      refused(
        ["--model", cardless, "--image", volume, "--roi", "0,0,0,4,4,4", "--method", method],
        new RegExp(
          `is a 3D model \\(input 'image' of rank 5\\) without a volume card \\(expected at ${cardless.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\.json\\)`,
        ),
      );
  });

  it("a method without a volume form, naming those that run on volumes", () => {
    refused(
      ["--model", model, "--image", volume, "--roi", "0,0,0,4,4,4", "--method", "lime"],
      /method lime does not run on volumes yet \(use --method pdcr, zero, occlusion, rise, saliency, gradxinput, ig, smoothgrad, gradcam on a volume/,
    );
  });

  it("segcause methods says which methods run on volumes", () => {
    const r = segcause("methods");
    expect(r.code).toBe(0);
    const line = (m: string) => r.stdout.split("\n").find((l) => l.startsWith(`${m} `)) ?? "";
    for (const m of ["zero", "occlusion", "pdcr", "rise", "saliency", "gradxinput", "ig", "smoothgrad", "gradcam"])
      expect(line(m)).toMatch(/volumes: yes \(/);
    for (const m of ["lime", "kernelshap", "pdcr-superpixel", "guided", "deeplift", "misure"]) expect(line(m)).toMatch(/volumes: no/);
  });
});
