/**
 * Methods on volumes with known answers: the gradient methods (saliency, gradient × input, IG,
 * SmoothGrad, Grad-CAM) and RISE on tiny 3D models built here, each run through its volume form in
 * the registry as `segcause explain` runs it.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import ort from "onnxruntime-node";
import { beforeAll, describe, expect, it } from "vitest";
import { readNifti } from "../src/data/volume/nifti.js";
import { writeNifti } from "../src/data/volume/nifti-write.js";
import { loadVolumeCase, readStructure, type VolumeCase } from "../src/data/volume/volume-case.js";
import { SegcauseError } from "../src/errors.js";
import { getMethod, volumeMethodNames } from "../src/explain/catalog.js";
import { GradientSession } from "../src/explain/gradients.js";
import { resolveOptions } from "../src/explain/methods.js";
import { type VolumeAttribution, volumeTarget } from "../src/explain/volume/engine.js";
import { volumeForwardScores, volumeRoiScore } from "../src/explain/volume/gradients.js";
import { VolumeModel } from "../src/model/volume-model.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import type { VolumeRoiBox } from "../src/target/volume-roi.js";
import { N as CAUSAL_N, causalBoxModel, causalBoxVolume } from "./helpers/causal3d.js";
import { segcause } from "./helpers/cli.js";
import { tmp, writeModel } from "./helpers/tiny.js";

const N = 8;
const CELLS = N ** 3;
const ROI: VolumeRoiBox = { z: 4, y: 4, x: 4, depth: 4, height: 4, width: 4 };
const AREA = 64;
const inRoi = (c: number) => {
  const x = c % N,
    y = Math.floor(c / N) % N,
    z = Math.floor(c / N / N);
  return x >= 4 && y >= 4 && z >= 4;
};

function card(n: number, kind: "probabilities" | "logits") {
  return {
    schema: "segcause.modelcard/1",
    input: {
      name: "image",
      layout: "ncdhw",
      depth: n,
      height: n,
      width: n,
      channels: "gray",
      normalisation: { kind: "zscore" },
      placement: { kind: "centre", fill: 0 },
      spacing: [1, 1, 1],
    },
    output: { name: "mask", layout: "ncdhw", kind, activation: "sigmoid", channel: 0, threshold: 0.5 },
  };
}

/** out[v] = w·x + b at every voxel v (a full-box Conv broadcast over the box). */
const W = Float32Array.from({ length: CELLS }, (_, i) => 0.002 * Math.sin(1.7 * i + 0.3));
function linearModel(): Uint8Array {
  const g = new GraphBuilder("linear-3d");
  const x = g.input("image", ["N", 1, N, N, N]);
  const conv = g.node("Conv", [x, g.constant([1, 1, N, N, N], W), g.constant([1], [0.5])], { kernel_shape: [N, N, N] });
  g.node("Add", [conv, g.constant([1, 1, N, N, N], new Float32Array(CELLS))], {}, ["mask"]);
  g.output("mask", ["N", 1, N, N, N]);
  return g.toBytes();
}

/** logits = Conv1x1(Tanh(Conv3x3x3(x))): smooth, so IG's midpoint rule converges fast. */
function smoothModel(): Uint8Array {
  const g = new GraphBuilder("smooth-3d");
  const x = g.input("image", ["N", 1, N, N, N]);
  const w1 = Float32Array.from({ length: 2 * 27 }, (_, i) => 0.3 * Math.cos(0.9 * i + 1));
  const h = g.node("Tanh", [
    g.node("Conv", [x, g.constant([2, 1, 3, 3, 3], w1), g.constant([2], [0.1, -0.2])], { kernel_shape: [3, 3, 3], pads: [1, 1, 1, 1, 1, 1] }),
  ]);
  g.node("Conv", [h, g.constant([1, 2, 1, 1, 1], [1.5, -1.1]), g.constant([1], [0.2])], { kernel_shape: [1, 1, 1] }, ["mask"]);
  g.output("mask", ["N", 1, N, N, N]);
  return g.toBytes();
}

/** A = a_k·avgpool2(x) + c_k ("features", 2 channels at 4³; "pooled" has one channel, no Grad-CAM layer), upsampled trilinearly ×2, out = Σ_k v_k·up(A)_k + 0.1. */
const A_W = [1.5, 0.7],
  A_B = [0.2, 0.1],
  V = [0.3, 0.5];
function camModel(): Uint8Array {
  const g = new GraphBuilder("cam-3d");
  const x = g.input("image", ["N", 1, N, N, N]);
  const p = g.node("AveragePool", [x], { kernel_shape: [2, 2, 2], strides: [2, 2, 2] }, ["pooled"]);
  g.node("Conv", [p, g.constant([2, 1, 1, 1, 1], A_W), g.constant([2], A_B)], { kernel_shape: [1, 1, 1] }, ["features"]);
  const up = g.node("Resize", ["features", "", g.constant([5], [1, 1, 2, 2, 2])], { mode: "linear", coordinate_transformation_mode: "half_pixel" });
  g.node("Conv", [up, g.constant([1, 2, 1, 1, 1], V), g.constant([1], [0.1])], { kernel_shape: [1, 1, 1] }, ["mask"]);
  g.output("mask", ["N", 1, N, N, N]);
  return g.toBytes();
}

// RISE: the known structure of test/helpers/causal3d.ts (16³; every logit = 10·mean(causal box) − 10).
const R = CAUSAL_N;

let dir: string, image: string, image16: string;
const models: Record<string, string> = {};

beforeAll(async () => {
  dir = tmp();
  models.linear = writeModel(dir, "linear.onnx", linearModel(), card(N, "probabilities"));
  models.smooth = writeModel(dir, "smooth.onnx", smoothModel(), card(N, "logits"));
  models.cam = writeModel(dir, "cam.onnx", camModel(), card(N, "probabilities"));
  models.causal = writeModel(dir, "causal.onnx", causalBoxModel(), card(R, "logits"));
  image = join(dir, "v8.nii.gz");
  await writeNifti(image, {
    dims: [N, N, N],
    affine: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1],
    data: Float32Array.from({ length: CELLS }, (_, i) => 100 + 40 * Math.sin(0.37 * i) + (i % 7)),
  });
  image16 = join(dir, "v16.nii.gz");
  await writeNifti(image16, { dims: [R, R, R], affine: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1], data: causalBoxVolume() });
});

/** Runs `method` on a volume through its registry volume form, as `segcause explain` does. */
async function runVolume(
  model: string,
  volume: string,
  method: string,
  given: Record<string, unknown> = {},
  roi: VolumeRoiBox = ROI,
): Promise<{ a: VolumeAttribution; kase: VolumeCase; m: VolumeModel }> {
  const def = getMethod(method);
  const o = resolveOptions(def, given);
  def.volume!.check?.(o, { bank: false });
  const m = await VolumeModel.load(model);
  try {
    const kase = await loadVolumeCase(m, volume);
    const target = await volumeTarget(m, kase, { roi, outcome: "mean-prob", reference: "prediction" });
    const run = await def.volume!.plan({ model: m, kase, target }, o);
    return { a: await run({ seed: 3, batchSize: 4 }), kase, m };
  } finally {
    await m.release();
  }
}

/** Σ_RoI sigmoid(logit) of one box, by a plain forward pass. */
async function score(m: VolumeModel, input: Float32Array): Promise<number> {
  const out = (await m.runOne(input)).data as Float32Array;
  let s = 0;
  for (let c = 0; c < CELLS; c++) if (inRoi(c)) s += 1 / (1 + Math.exp(-out[c]));
  return s;
}

describe("the registry says which methods run on volumes", () => {
  it("the baselines of issue 21 have a volume form; the others do not", () => {
    expect(volumeMethodNames()).toEqual(["pdcr", "zero", "occlusion", "rise", "saliency", "gradxinput", "ig", "smoothgrad", "gradcam"]);
    for (const m of ["lime", "kernelshap", "guided", "deeplift", "misure", "pdcr-superpixel"]) expect(getMethod(m).volume).toBeUndefined();
  });
});

describe("gradient methods on a volume give the known answers of tiny 3D models", () => {
  it("saliency of a linear model is |RoI| · |w| at every voxel; unsigned, on the input grid", async () => {
    const { a } = await runVolume(models.linear, image, "saliency");
    expect(a.unitKind).toBe("voxel");
    expect(a.signed).toBe(false);
    expect(a.dims).toEqual([N, N, N]);
    for (let i = 0; i < CELLS; i++) expect(a.map[i]).toBeCloseTo(AREA * Math.abs(W[i]), 5);
    expect(a.backwardPasses).toBe(1);
  });

  it("gradient × input of a linear model is −|RoI| · w · x (x = the normalised volume)", async () => {
    const { a, kase } = await runVolume(models.linear, image, "gradxinput");
    expect(a.signed).toBe(true);
    for (let i = 0; i < CELLS; i++) expect(a.map[i]).toBeCloseTo(-AREA * W[i] * kase.input[i], 5);
    expect(a.provenance.settings).toMatchObject({ baseline: "zero model input", score: "sum of class probability over the RoI" });
  });

  it("integrated gradients of a smooth nonlinear model are complete: −Σ map = S(x) − S(baseline) to 1e-4", async () => {
    const { a, kase } = await runVolume(models.smooth, image, "ig", { steps: 256, fill: 20 });
    const m = await VolumeModel.load(models.smooth);
    try {
      const sx = await score(m, kase.input);
      const sb = await score(m, new Float32Array(CELLS).fill(kase.normalise(20)));
      let total = 0;
      for (const v of a.map) total -= v;
      expect(Math.abs(sx - sb)).toBeGreaterThan(0.5);
      expect(Math.abs(total - (sx - sb))).toBeLessThan(1e-4);
    } finally {
      await m.release();
    }
    expect(a.provenance.settings).toMatchObject({ steps: 256, fillKind: "constant", fill: 20, baseline: { kind: "constant", raw: 20 } });
  });

  it("SmoothGrad without noise is saliency; with noise its map is unsigned with a standard error", async () => {
    const plain = await runVolume(models.smooth, image, "saliency");
    const still = await runVolume(models.smooth, image, "smoothgrad", { samples: 2, noise: 0 });
    for (let i = 0; i < CELLS; i++) expect(still.a.map[i]).toBeCloseTo(plain.a.map[i], 6);
    const noisy = await runVolume(models.smooth, image, "smoothgrad", { samples: 4, noise: 0.1 });
    expect(noisy.a.signed).toBe(false);
    expect(noisy.a.backwardPasses).toBe(4);
    expect(noisy.a.stderrMap.every((v) => Number.isFinite(v) && v >= 0)).toBe(true);
    expect(noisy.a.provenance.settings).toMatchObject({ samples: 4, noise: 0.1 });
  });

  it("Grad-CAM at a 4³ feature map weighs channel k by v_k·|RoI|/4³ and upsamples trilinearly", async () => {
    const { a, kase } = await runVolume(models.cam, image, "gradcam");
    expect(a.provenance.settings).toMatchObject({ layerUsed: "features", layerShape: [2, 4, 4, 4], layer: "auto" });
    // A_k from the input, the known weights, the CAM at 4³, then ONNX Runtime's own trilinear Resize of it.
    const cam = new Float32Array(64);
    for (let z = 0; z < 4; z++)
      for (let y = 0; y < 4; y++)
        for (let x = 0; x < 4; x++) {
          let p = 0;
          for (let dz = 0; dz < 2; dz++)
            for (let dy = 0; dy < 2; dy++) for (let dx = 0; dx < 2; dx++) p += kase.input[((2 * z + dz) * N + 2 * y + dy) * N + 2 * x + dx] / 8;
          let v = 0;
          for (let k = 0; k < 2; k++) v += ((V[k] * AREA) / 64) * (A_W[k] * p + A_B[k]);
          cam[(z * 4 + y) * 4 + x] = Math.max(0, v);
        }
    expect(cam.some((v) => v > 0) && cam.some((v) => v === 0)).toBe(true);
    const g = new GraphBuilder("up");
    g.input("c", [1, 1, 4, 4, 4]);
    g.node("Resize", ["c", "", g.constant([5], [1, 1, 2, 2, 2])], { mode: "linear", coordinate_transformation_mode: "half_pixel" }, ["u"]);
    g.output("u", [1, 1, N, N, N]);
    const s = await ort.InferenceSession.create(g.toBytes(), { logSeverityLevel: 3 });
    const up = (await s.run({ c: new ort.Tensor("float32", cam, [1, 1, 4, 4, 4]) })).u.data as Float32Array;
    for (let i = 0; i < CELLS; i++) expect(a.map[i]).toBeCloseTo(up[i], 5);
  });

  it("Grad-CAM with a --layer that is not a 3D feature map is refused, listing the candidates", async () => {
    const e = (await runVolume(models.cam, image, "gradcam", { layer: "pooled" }).catch((x) => x)) as SegcauseError;
    expect(e).toBeInstanceOf(SegcauseError);
    expect(e.message).toMatch(/--layer 'pooled' is not a spatial feature map \[1, K>=2, d, h, w\]/);
    expect(e.hint).toMatch(/4x4x4 \(1\):\n\s+features\s+\[2 channels, Conv\]/);
  });

  it("IG with the blur baseline has no volume form and says so", () => {
    const def = getMethod("ig");
    expect(() => def.volume!.check!(resolveOptions(def, { fillKind: "blur" }), { bank: false })).toThrow(
      /ig with --fill-kind blur does not run on volumes yet/,
    );
  });
});

describe("RISE on a volume", () => {
  it("finds the causal box of a known 3D model: its voxels carry the strongest support, the RoI is never masked", async () => {
    const { a } = await runVolume(models.causal, image16, "rise", { masks: 400, cells: 4 }, { z: 8, y: 8, x: 0, depth: 8, height: 8, width: 8 });
    expect(a.unitKind).toBe("voxel");
    expect(a.forwardPasses).toBe(401);
    // mean effect of each 8³ octant of the box
    const octant = (oz: number, oy: number, ox: number) => {
      let s = 0;
      for (let k = 0; k < 8; k++) for (let j = 0; j < 8; j++) for (let i = 0; i < 8; i++) s += a.map[((oz + k) * R + oy + j) * R + ox + i];
      return s / 512;
    };
    const causal = octant(0, 0, 8);
    const others = [0, 8].flatMap((z) => [0, 8].flatMap((y) => [0, 8].map((x) => [z, y, x]))).filter(([z, y, x]) => !(z === 0 && y === 0 && x === 8));
    expect(causal).toBeLessThan(-10);
    for (const [z, y, x] of others) expect(Math.abs(octant(z, y, x)), `octant ${z},${y},${x}`).toBeLessThan(Math.abs(causal) / 3);
    // the RoI octant is never masked: 0 with no standard error
    expect(octant(8, 8, 0)).toBe(0);
    expect(Number.isNaN(a.stderrMap[(8 * R + 8) * R])).toBe(true);
    expect(a.provenance.settings).toMatchObject({ masks: 400, cells: 4, keepProbability: 0.5 });
  });
});

const HIPPO = join("..", "shared", "data", "hippocampus");
const MODEL3D = join("models", "volumes", "unet3d-hippocampus.onnx");
const haveHippo = existsSync(join(HIPPO, "manifest.json"));
const CASE = "hippocampus_008";

describe.skipIf(!haveHippo)(
  `the shipped 3D U-Net on a hippocampus test volume${haveHippo ? "" : " (skipped: ../shared/data/hippocampus is absent)"}`,
  () => {
    const img = join(HIPPO, "images", `${CASE}.nii.gz`);
    const lab = join(HIPPO, "labels", `${CASE}.nii.gz`);

    it("the gradient ONNX Runtime computes matches central finite differences of S at the voxels that matter most", async () => {
      const m = await VolumeModel.load(MODEL3D);
      try {
        const kase = await loadVolumeCase(m, img);
        const roi = (await readStructure(lab, kase.volume, img, "1,2")).mask;
        const target = await volumeTarget(m, kase, { roi: { mask: roi, name: lab }, outcome: "soft-dice", reference: "prediction" });
        const { roiSeed, scoreOfRaw } = volumeRoiScore(m, target);
        const s = await GradientSession.create(m, { batchSize: 1 });
        const grad = new Float32Array(m.inputSize);
        try {
          await s.run(
            [0],
            (_, f) => (f.input.set(kase.input), f.seed.set(roiSeed)),
            (slot) => grad.set(slot.inputGrad),
          );
        } finally {
          await s.release();
        }
        // the three voxels of largest |dS/dx| and the one at the 99th percentile
        const order = Array.from(grad.keys()).sort((a, b) => Math.abs(grad[b]) - Math.abs(grad[a]));
        const voxels = [order[0], order[1], order[2], order[Math.floor(order.length / 100)]];
        // h small enough that few ReLU/MaxPool switches fall within ±h, large enough for float32 outputs
        const h = 0.005;
        const inputs = voxels.flatMap((v) =>
          [h, -h].map((d) => {
            const x = Float32Array.from(kase.input);
            x[v] += d;
            return x;
          }),
        );
        const S = await volumeForwardScores(m, inputs, 2, scoreOfRaw);
        const rel = voxels.map((v, i) => {
          const fd = (S[2 * i] - S[2 * i + 1]) / (2 * h);
          expect(Math.abs(grad[v]), `voxel ${v}`).toBeGreaterThan(0.1);
          return Math.abs(fd - grad[v]) / Math.abs(grad[v]);
        });
        // A switch within ±h (measured: one voxel, 3%) parts the one-sided derivatives; the others agree to 0.1%.
        for (const r of rel) expect(r).toBeLessThan(0.05);
        expect(rel.filter((r) => r < 0.01).length).toBeGreaterThanOrEqual(3);
      } finally {
        await m.release();
      }
    });

    const runs: [string, string[]][] = [
      ["saliency", []],
      ["gradxinput", []],
      ["ig", ["--steps", "4"]],
      ["smoothgrad", ["--samples", "2"]],
      ["gradcam", []],
      ["rise", ["--masks", "8", "--cells", "4"]],
    ];
    it.each(runs)("%s writes a voxel map on the input's grid, a mosaic and its options in the provenance", async (method, flags) => {
      const out = join(dir, `real-${method}`);
      const r = segcause(
        "explain",
        "--model",
        MODEL3D,
        "--image",
        img,
        "--roi-mask",
        lab,
        "--label",
        "1,2",
        "--method",
        method,
        ...flags,
        "--out",
        out,
      );
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain("a value per voxel");
      const input = await readNifti(img);
      const map = await readNifti(join(out, "map.nii.gz"));
      expect(map.dims).toEqual(input.dims);
      for (let i = 0; i < 16; i++) expect(map.affine[i]).toBeCloseTo(input.affine[i], 5);
      expect(map.data.some((v) => Number.isFinite(v) && v !== 0)).toBe(true);
      const json = JSON.parse(readFileSync(join(out, "map.json"), "utf8"));
      expect(json).toMatchObject({ method, unitKind: "voxel", units: [], signed: !["saliency", "smoothgrad", "gradcam"].includes(method) });
      for (let i = 0; i < flags.length; i += 2) expect(json.provenance.settings[flags[i].slice(2)]).toBe(Number(flags[i + 1]));
      expect(JSON.parse(readFileSync(join(out, "manifest.json"), "utf8")).files).toEqual(
        expect.arrayContaining(["map.nii.gz", "stderr.nii.gz", "mosaic.png", "map.json"]),
      );
    });
  },
);
