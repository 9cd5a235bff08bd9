import { readFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { type Case, loadCase } from "../src/data/case.js";
import { SegcauseError } from "../src/errors.js";
import type { Attribution } from "../src/explain/attribution.js";
import { getMethod } from "../src/explain/catalog.js";
import { explainDeepLift } from "../src/explain/deeplift.js";
import { autoLayerMovedByOutputPath, explainGradCam } from "../src/explain/gradcam.js";
import { explainGradXInput } from "../src/explain/gradxinput.js";
import { explainGuided } from "../src/explain/guided.js";
import { explainIg } from "../src/explain/ig.js";
import { resolveOptions } from "../src/explain/methods.js";
import { diceLoss, dilate, explainMisure } from "../src/explain/misure.js";
import type { RunOptions } from "../src/explain/run.js";
import { explainSaliency } from "../src/explain/saliency.js";
import { explainSmoothGrad } from "../src/explain/smoothgrad.js";
import { Model } from "../src/model/model.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import type { TargetSpec } from "../src/target/target.js";
import { resizeBilinear, resizeBilinearTranspose } from "../src/util/bilinear.js";
import { decodeNpy } from "../src/util/npy.js";
import { RunProgress, type RunStatus } from "../src/util/progress.js";
import { segcause } from "./helpers/cli.js";
import { regionMeanModel, SIZE, tmp, writeImage, writeModel } from "./helpers/tiny.js";

const sig = (z: number) => 1 / (1 + Math.exp(-z));

/** Deterministic pseudo-random weights in [-a, a]. */
function weights(n: number, seed: number, a = 0.5): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32 - 0.5) * 2 * a;
  });
}

/**
 * Smooth model with a bottleneck: Conv 3x3 stride 2 (3→4) → Sigmoid [4,16,16] → Resize x2
 * (bilinear) → Conv 1x1 (4→1) → Sigmoid. Everything is differentiable, so IG converges fast.
 */
function smoothModel(hw: number | string = SIZE): Uint8Array {
  const g = new GraphBuilder("smooth");
  const x = g.input("image", ["N", 3, hw, hw]);
  const c1 = g.node(
    "Conv",
    [x, g.constant([4, 3, 3, 3], weights(108, 7, 0.6)), g.constant([4], [0.1, -0.2, 0.3, 0])],
    { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] },
    ["c1"],
  );
  const a = g.node("Sigmoid", [c1], {}, ["feat"]);
  const up = g.node("Resize", [a, "", g.constant([4], [1, 1, 2, 2])], { mode: "linear", coordinate_transformation_mode: "half_pixel" }, ["up"]);
  const c2 = g.node("Conv", [up, g.constant([1, 4, 1, 1], [1.5, -1, 1, 0.8]), g.constant([1], [-0.3])], { kernel_shape: [1, 1] }, ["logit"]);
  g.output(g.node("Sigmoid", [c2], {}, ["mask"]), ["N", 1, hw, hw]);
  return g.toBytes();
}

/** One-ReLU per-pixel model, gray 4x4: h = Relu(w1·x + b1) (2 channels), out = σ(w2·h + b2). */
const W1 = [2, -1],
  B1 = [-0.5, 0.3],
  W2 = [1, -2],
  B2 = 0.1;
function oneReluModel(): Uint8Array {
  const g = new GraphBuilder("one-relu");
  const x = g.input("image", ["N", 1, 4, 4]);
  const h = g.node("Conv", [x, g.constant([2, 1, 1, 1], W1), g.constant([2], B1)], { kernel_shape: [1, 1] });
  const r = g.node("Relu", [h]);
  const z = g.node("Conv", [r, g.constant([1, 2, 1, 1], W2), g.constant([1], [B2])], { kernel_shape: [1, 1] });
  g.output(g.node("Sigmoid", [z], {}, ["mask"]), ["N", 1, 4, 4]);
  return g.toBytes();
}

/** Grad-CAM model, gray 8x8: MaxPool 2 → Conv 1x1 (1→2) → Relu = A [2,4,4] → Resize x2 → Conv 1x1 (2→1) → σ. */
const CW = [1.5, -1],
  CB = [-0.2, 0.5],
  CW2 = [2, 1],
  CB2 = -1;
function camModel(auxHead = false): Uint8Array {
  const g = new GraphBuilder("cam");
  const x = g.input("image", ["N", 1, 8, 8]);
  const p = g.node("MaxPool", [x], { kernel_shape: [2, 2], strides: [2, 2] });
  const h = g.node("Conv", [p, g.constant([2, 1, 1, 1], CW), g.constant([2], CB)], { kernel_shape: [1, 1] });
  const a = g.node("Relu", [h], {}, ["A"]);
  const up = g.node("Resize", [a, "", g.constant([4], [1, 1, 2, 2])], { mode: "linear", coordinate_transformation_mode: "half_pixel" });
  const z = g.node("Conv", [up, g.constant([1, 2, 1, 1], CW2), g.constant([1], [CB2])], { kernel_shape: [1, 1] });
  g.output(g.node("Sigmoid", [z], {}, ["mask"]), ["N", 1, 8, 8]);
  if (auxHead) {
    // A second, auxiliary output with a smaller feature map ("Aaux" [3,2,2]) that "mask" does not depend on.
    const pa = g.node("MaxPool", [x], { kernel_shape: [4, 4], strides: [4, 4] });
    const aa = g.node(
      "Relu",
      [g.node("Conv", [pa, g.constant([3, 1, 1, 1], [1, -1, 2]), g.constant([3], [0, 1, -0.5])], { kernel_shape: [1, 1] })],
      {},
      ["Aaux"],
    );
    g.output(g.node("Sigmoid", [g.node("Conv", [aa, g.constant([1, 3, 1, 1], [1, 1, 1])], { kernel_shape: [1, 1] })], {}, ["aux"]), ["N", 1, 2, 2]);
  }
  return g.toBytes();
}

/**
 * Grad-CAM model whose bottleneck's map is 0 everywhere: A = Relu(maxpool(x) + 0.1) > 0 [2,4,4], but the
 * output grows as A shrinks (B = Relu(5 − up(A)_0 − up(A)_1) [2,8,8], z = B_0 + B_1 − 5), so w_k < 0 at A,
 * while the decoder-side B has w_k > 0 and B > 0.
 */
function zeroCamModel(): Uint8Array {
  const g = new GraphBuilder("zero-cam");
  const x = g.input("image", ["N", 1, 8, 8]);
  const p = g.node("MaxPool", [x], { kernel_shape: [2, 2], strides: [2, 2] });
  const a = g.node("Relu", [g.node("Conv", [p, g.constant([2, 1, 1, 1], [1, 1]), g.constant([2], [0.1, 0.1])], { kernel_shape: [1, 1] })], {}, ["A"]);
  const up = g.node("Resize", [a, "", g.constant([4], [1, 1, 2, 2])], { mode: "linear", coordinate_transformation_mode: "half_pixel" });
  const b = g.node(
    "Relu",
    [g.node("Conv", [up, g.constant([2, 2, 1, 1], [-1, -1, -1, -1]), g.constant([2], [5, 5])], { kernel_shape: [1, 1] })],
    {},
    ["B"],
  );
  const z = g.node("Conv", [b, g.constant([1, 2, 1, 1], [1, 1]), g.constant([1], [-5])], { kernel_shape: [1, 1] });
  g.output(g.node("Sigmoid", [z], {}, ["mask"]), ["N", 1, 8, 8]);
  return g.toBytes();
}

/** regionMeanModel without its Sigmoid: a logit output (the card then says kind: logits). */
function logitRegionModel(): Uint8Array {
  const g = new GraphBuilder("logit");
  const x = g.input("image", ["N", 3, SIZE, SIZE]);
  const w = new Float32Array(3 * SIZE * SIZE);
  for (let y = 0; y < 16; y++) for (let c = 16; c < 32; c++) w[y * SIZE + c] = 3 / 256;
  const conv = g.node("Conv", [x, g.constant([1, 3, SIZE, SIZE], w), g.constant([1], [-1])], { kernel_shape: [SIZE, SIZE] });
  g.output(g.node("Add", [conv, g.constant([1, 1, SIZE, SIZE], new Float32Array(SIZE * SIZE))], {}, ["mask"]), ["N", 1, SIZE, SIZE]);
  return g.toBytes();
}

/** Two-class logit model, per pixel: z = W·x (1x1 conv, 3→2 channels); the card's softmax is appended. */
const SW = [0.5, -1, 2, -1.5, 1, 0.3];
function twoClassModel(opset?: number): Uint8Array {
  const g = new GraphBuilder("two-class");
  const x = g.input("image", ["N", 3, SIZE, SIZE]);
  const z = g.node("Conv", [x, g.constant([2, 3, 1, 1], SW), g.constant([2], [0.2, -0.1])], { kernel_shape: [1, 1] });
  g.output(g.node("Identity", [z], {}, ["mask"]), ["N", 2, SIZE, SIZE]);
  return g.toBytes(opset);
}

let dir: string;
const paths: Record<string, string> = {};
const images: Record<string, string> = {};

beforeAll(async () => {
  dir = tmp("segcause-grad-");
  paths.linear = writeModel(dir, "linear.onnx", regionMeanModel([{ row: 0, col: 16, height: 16, width: 16, weight: 3 }], -1));
  // Its logits stay within [0, 1] on the ramp image (0.99 everywhere): the card says that is meant.
  paths.logit = writeModel(dir, "logit.onnx", logitRegionModel(), {
    input: { height: SIZE, width: SIZE, channels: "rgb" },
    output: { kind: "logits", logitsInUnitRange: true },
  });
  paths.smooth = writeModel(dir, "smooth.onnx", smoothModel());
  paths.smoothDynamic = writeModel(dir, "smooth-dynamic.onnx", smoothModel("H"));
  paths.twoClass = writeModel(dir, "two-class.onnx", twoClassModel());
  paths.twoClass11 = writeModel(dir, "two-class-11.onnx", twoClassModel(11));
  paths.relu = writeModel(dir, "relu.onnx", oneReluModel());
  paths.cam = writeModel(dir, "cam.onnx", camModel());
  paths.camAux = writeModel(dir, "cam-aux.onnx", camModel(true));
  paths.zeroCam = writeModel(dir, "zero-cam.onnx", zeroCamModel());
  // MiSuRe: foreground iff the mean of rows 8..23, cols 24..31 is above half the image's value.
  paths.region = writeModel(dir, "region.onnx", regionMeanModel([{ row: 8, col: 24, height: 16, width: 8, weight: 10 }], -10 * 0.5 * (200 / 255)));
  images.ramp = await writeImage(dir, "ramp.png", (r, c) => (r * 7 + c * 5) % 256);
  images.flat = await writeImage(dir, "flat.png", () => 200);
  images.small = await writeImage(dir, "small.png", (r, c) => 16 * (r * 4 + c) + 8, 4);
  images.cam = await writeImage(dir, "cam.png", (r, c) => (r * 37 + c * 11) % 256, 8);
});

async function withModel<T>(path: string, image: string, fn: (m: Model, k: Case) => Promise<T>): Promise<T> {
  const m = await Model.load(path, { threads: 1 });
  try {
    return await fn(m, await loadCase(m, image));
  } finally {
    await m.release();
  }
}

const ROI = { row: 16, col: 0, height: 8, width: 8 };
const MEANPROB: TargetSpec = { roi: ROI, outcome: "mean-prob" };

function expectClose(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what = "") {
  expect(a.length).toBe(b.length);
  let worst = 0,
    at = -1;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (d > worst) (worst = d), (at = i);
  }
  expect(worst, `${what}: largest difference at ${at}: ${a[at]} vs ${b[at]}`).toBeLessThanOrEqual(tol);
}

describe("saliency and gradient x input", () => {
  it("equal the analytic gradient of a linear + sigmoid model", async () => {
    await withModel(paths.linear, images.ramp, async (m, k) => {
      const x = m.preprocess(k.image);
      const plane = SIZE * SIZE;
      let mean = 0;
      for (let y = 0; y < 16; y++) for (let c = 16; c < 32; c++) mean += x[y * SIZE + c] / 256;
      const p = sig(3 * mean - 1);
      const dS = (q: number) => (Math.floor(q / SIZE) < 16 && q % SIZE >= 16 ? (64 * p * (1 - p) * 3) / 256 : 0);
      const sal = await explainSaliency(m, k, MEANPROB);
      expect(sal.signed).toBe(false);
      expect(sal.unitKind).toBe("pixel");
      expect(sal.units).toEqual([]);
      expect(sal.forwardPasses).toBe(2);
      expect(sal.backwardPasses).toBe(1);
      expectClose(
        sal.map,
        Float32Array.from({ length: plane }, (_, q) => dS(q)),
        1e-6,
        "saliency",
      );
      const gxi = await explainGradXInput(m, k, MEANPROB);
      expect(gxi.signed).toBe(true);
      expectClose(
        gxi.map,
        Float32Array.from({ length: plane }, (_, q) => -dS(q) * x[q]),
        1e-6,
        "gradxinput",
      );
      expect(sal.notes.join("\n")).toMatch(/sum of the class-0 probability over the 64 RoI pixels/);
    });
  });

  it("a logit-output model is differentiated through the sigmoid the card implies", async () => {
    const prob = await withModel(paths.linear, images.ramp, (m, k) => explainSaliency(m, k, MEANPROB));
    const logit = await withModel(paths.logit, images.ramp, async (m, k) => {
      expect(m.card.output.kind).toBe("logits");
      return explainSaliency(m, k, MEANPROB);
    });
    expectClose(logit.map, prob.map, 1e-6, "logit vs probability model");
  });
});

describe("a model exported with dynamic height and width", () => {
  it("is differentiated at the card's size: the same maps as the fixed-size export", async () => {
    const m = await Model.load(paths.smoothDynamic, { threads: 1, overrides: { height: SIZE, width: SIZE } });
    try {
      const k = await loadCase(m, images.ramp);
      const dyn = [await explainSaliency(m, k, MEANPROB), await explainGradCam(m, k, MEANPROB), await explainDeepLift(m, k, MEANPROB)];
      const fixed = await withModel(paths.smooth, images.ramp, async (f, kf) => [
        await explainSaliency(f, kf, MEANPROB),
        await explainGradCam(f, kf, MEANPROB),
        await explainDeepLift(f, kf, MEANPROB),
      ]);
      dyn.forEach((a, i) => expectClose(a.map, fixed[i].map, 0, a.method));
      expect(dyn[0].map.some((v) => v > 0)).toBe(true);
    } finally {
      await m.release();
    }
  });
});

describe("multi-class logits", () => {
  // Opset 11: the appended Softmax must still run over the channels (opset 11's Softmax flattens
  // C x H x W into one distribution; the model is raised before the node is added).
  it.each([
    ["17", "twoClass"],
    ["11", "twoClass11"],
  ])("a softmax is appended and the card's channel is differentiated (opset %s)", async (_, which) => {
    const m = await Model.load(paths[which], { threads: 1, overrides: { outputKind: "logits", channel: 1 } });
    try {
      const k = await loadCase(m, images.ramp);
      const x = m.preprocess(k.image);
      const plane = SIZE * SIZE;
      const a = await explainSaliency(m, k, MEANPROB);
      const want = new Float32Array(plane);
      for (let y = ROI.row; y < ROI.row + ROI.height; y++)
        for (let c = ROI.col; c < ROI.col + ROI.width; c++) {
          const q = y * SIZE + c;
          const z0 = 0.2 + SW[0] * x[q] + SW[1] * x[plane + q] + SW[2] * x[2 * plane + q];
          const z1 = -0.1 + SW[3] * x[q] + SW[4] * x[plane + q] + SW[5] * x[2 * plane + q];
          const p1 = sig(z1 - z0);
          want[q] = Math.max(...[0, 1, 2].map((ch) => Math.abs(p1 * (1 - p1) * (SW[3 + ch] - SW[ch]))));
        }
      expectClose(a.map, want, 1e-6, "softmax channel 1");
    } finally {
      await m.release();
    }
  });
});

describe("integrated gradients and DeepLIFT", () => {
  it("IG is complete within 1% on a smooth model with the default 32 steps", async () => {
    await withModel(paths.smooth, images.ramp, async (m, k) => {
      const a = await explainIg(m, k, MEANPROB);
      const gap = a.provenance.settings.completenessGap as number;
      expect(gap).toBeLessThan(0.01);
      expect(a.notes.join("\n")).toMatch(/completeness: sum of attributions = .* vs S\(x\) - S\(baseline\)/);
      // map = −IG summed over channels: its total is S(baseline) − S(x)
      const sx = Number(/S\(x\) = ([0-9.e-]+)/.exec(a.notes.join(" "))![1]);
      const sb = a.provenance.settings.baselineScore as number;
      const total = a.map.reduce((s, v) => s + v, 0);
      expect(Math.abs(total - (sb - sx))).toBeLessThan(0.01 * Math.abs(sx - sb));
      expect(a.forwardPasses).toBe(2 + 32); // unperturbed + baseline, and the forward half of each gradient pass
      expect(a.backwardPasses).toBe(32);
      // mean and blur baselines run too
      for (const kind of ["mean", "blur"] as const) {
        const b = await explainIg(m, k, MEANPROB, { steps: 8, baseline: { kind, sigma: 2 } });
        expect(b.notes.join("\n")).toMatch(kind === "mean" ? /mean colour/ : /blurred/);
      }
    });
  });

  it("DeepLIFT is complete on a smooth model (rescale rule through both sigmoids)", async () => {
    await withModel(paths.smooth, images.ramp, async (m, k) => {
      const a = await explainDeepLift(m, k, MEANPROB);
      // linear ops and elementwise rescale multipliers: summation-to-delta up to float rounding
      expect(a.provenance.settings.completenessGap as number).toBeLessThan(1e-3);
      expect(a.backwardPasses).toBe(1);
      expect(a.forwardPasses).toBe(1 + 1 + 2); // unperturbed, baseline score, image + reference in the DeepLIFT graph
    });
  });

  it("DeepLIFT through InstanceNormalization (PyTorch's InstanceNorm/GroupNorm) names it as the cause of the gap", async () => {
    const g = new GraphBuilder("instnorm");
    const x = g.input("image", ["N", 3, SIZE, SIZE]);
    const c = g.node("Conv", [x, g.constant([2, 3, 3, 3], weights(54, 11, 0.6))], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
    const n = g.node("InstanceNormalization", [c, g.constant([2], [1.5, 0.7]), g.constant([2], [0.2, -0.1])]);
    const z = g.node("Conv", [g.node("Relu", [n]), g.constant([1, 2, 1, 1], [1, -1])], { kernel_shape: [1, 1] });
    g.output(g.node("Sigmoid", [z], {}, ["mask"]), ["N", 1, SIZE, SIZE]);
    const p = writeModel(dir, "instnorm.onnx", g.toBytes());
    await withModel(p, images.ramp, async (m, k) => {
      const a = await explainDeepLift(m, k, MEANPROB);
      expect(a.provenance.settings.completenessGap as number).toBeGreaterThan(0.05);
      expect(a.notes.join("\n")).toMatch(/summation-to-delta does not hold for this network: InstanceNormalization use/);
    });
  });

  it("guided backprop and DeepLIFT match hand values on a one-ReLU model", async () => {
    await withModel(paths.relu, images.small, async (m, k) => {
      const x = m.preprocess(k.image);
      const roi: TargetSpec = { roi: { row: 0, col: 0, height: 4, width: 4 }, outcome: "mean-prob" };
      const grad: number[] = [],
        guided: number[] = [],
        dl: number[] = [];
      for (const v of x) {
        const h = W1.map((w, i) => w * v + B1[i]);
        const r = h.map((t) => Math.max(t, 0));
        const z = W2[0] * r[0] + W2[1] * r[1] + B2;
        const p = sig(z),
          dp = p * (1 - p);
        grad.push(dp * (W2[0] * (h[0] > 0 ? 1 : 0) * W1[0] + W2[1] * (h[1] > 0 ? 1 : 0) * W1[1]));
        guided.push(W2.reduce((s, w2, i) => s + Math.max(dp * w2, 0) * (h[i] > 0 ? 1 : 0) * W1[i], 0));
        // DeepLIFT rescale against the black reference (x = 0)
        const hr = B1,
          rr = hr.map((t) => Math.max(t, 0));
        const zr = W2[0] * rr[0] + W2[1] * rr[1] + B2;
        const mr = h.map((t, i) => (Math.abs(t - hr[i]) > 1e-5 ? (r[i] - rr[i]) / (t - hr[i]) : t > 0 ? 1 : 0));
        const ms = Math.abs(z - zr) > 1e-5 ? (p - sig(zr)) / (z - zr) : dp;
        dl.push(-ms * (W2[0] * mr[0] * W1[0] + W2[1] * mr[1] * W1[1]) * v);
      }
      // the hand values differ between the rules, so the test tells them apart
      expect(guided.some((g, i) => Math.abs(g - grad[i]) > 1e-3)).toBe(true);
      const sal = await explainSaliency(m, k, roi);
      expectClose(sal.map, grad.map(Math.abs), 1e-6, "gradient");
      const gb = await explainGuided(m, k, roi);
      expectClose(gb.map, guided.map(Math.abs), 1e-6, "guided");
      const d = await explainDeepLift(m, k, roi);
      expectClose(d.map, dl, 1e-6, "deeplift");
      expect(d.provenance.settings.completenessGap as number).toBeLessThan(1e-4);
    });
  });
});

describe("SmoothGrad", () => {
  it("an all-zero map says so (a model whose RoI score ignores its input)", async () => {
    const flat = writeModel(dir, "flat.onnx", regionMeanModel([], -3));
    await withModel(flat, images.ramp, async (m, k) => {
      const sg = await explainSmoothGrad(m, k, MEANPROB, { samples: 2 });
      expect(sg.map.every((v) => v === 0)).toBe(true);
      expect(sg.notes.join("\n")).toMatch(/the map is 0 everywhere: the RoI score does not respond to the input/);
      const sal = await explainSaliency(m, await loadCase(m, images.ramp), MEANPROB);
      expect(sal.notes.filter((n) => n.includes("0 everywhere"))).toHaveLength(1);
    });
  });

  it("with zero noise equals saliency", async () => {
    await withModel(paths.smooth, images.ramp, async (m, k) => {
      const sal = await explainSaliency(m, k, MEANPROB);
      const sg = await explainSmoothGrad(m, k, MEANPROB, { noise: 0, samples: 3 });
      expectClose(sg.map, sal.map, 1e-6, "smoothgrad(0) vs saliency");
      expect(sg.backwardPasses).toBe(3);
    });
  });

  it("noise changes the map and depends on the seed only", async () => {
    await withModel(paths.smooth, images.ramp, async (m, k) => {
      const a = await explainSmoothGrad(m, k, MEANPROB, { samples: 5, seed: 1 });
      const b = await explainSmoothGrad(m, k, MEANPROB, { samples: 5, seed: 2 });
      expect(a.map.some((v, i) => Math.abs(v - b.map[i]) > 1e-6)).toBe(true);
      // a Monte-Carlo mean: its standard error is finite and positive where the map is
      expect(a.stderrMap.every((v) => Number.isFinite(v) && v >= 0)).toBe(true);
      expect(a.stderrMap.some((v) => v > 0)).toBe(true);
      const c = await explainSmoothGrad(m, k, MEANPROB, { samples: 5, seed: 1 });
      expectClose(c.map, a.map, 0, "same seed");
    });
  });
});

describe("Seg-Grad-CAM", () => {
  it("picks the smallest, deepest feature map and equals a hand computation", async () => {
    await withModel(paths.cam, images.cam, async (m, k) => {
      const roi: TargetSpec = { roi: { row: 2, col: 2, height: 4, width: 4 }, outcome: "mean-prob" };
      const a = await explainGradCam(m, k, roi);
      expect(a.provenance.settings.layerUsed).toBe("A");
      expect(a.notes.join("\n")).toMatch(/Grad-CAM layer: A \[2x4x4, Relu\] \(auto/);
      const x = m.preprocess(k.image);
      // hand forward: A = Relu(CW·maxpool(x) + CB) [2,4,4]
      const A = new Float64Array(32);
      for (let u = 0; u < 4; u++)
        for (let v = 0; v < 4; v++) {
          const mp = Math.max(x[2 * u * 8 + 2 * v], x[2 * u * 8 + 2 * v + 1], x[(2 * u + 1) * 8 + 2 * v], x[(2 * u + 1) * 8 + 2 * v + 1]);
          for (let c = 0; c < 2; c++) A[c * 16 + u * 4 + v] = Math.max(CW[c] * mp + CB[c], 0);
        }
      // z = CW2 · upsample(A) + CB2; dS/dA_c = upsample^T(CW2_c · p(1−p) on the RoI)
      const upA = [0, 1].map((c) => resizeBilinear(A.subarray(c * 16, c * 16 + 16), 4, 4, 8, 8));
      const r = new Float64Array(64);
      for (let y = 2; y < 6; y++)
        for (let xx = 2; xx < 6; xx++) {
          const q = y * 8 + xx;
          const p = sig(CW2[0] * upA[0][q] + CW2[1] * upA[1][q] + CB2);
          r[q] = p * (1 - p);
        }
      const w = [0, 1].map(
        (c) =>
          resizeBilinearTranspose(
            r.map((v) => v * CW2[c]),
            4,
            4,
            8,
            8,
          ).reduce((s, v) => s + v, 0) / 16,
      );
      const cam = Float32Array.from({ length: 16 }, (_, i) => Math.max(w[0] * A[i] + w[1] * A[16 + i], 0));
      expect(cam.some((v) => v > 0)).toBe(true);
      expectClose(a.map, handBilinear(cam, 4, 8), 1e-6, "grad-cam");
      expect(a.signed).toBe(false);
      expect(a.backwardPasses).toBe(1);
    });
  });

  it("an unknown --layer is refused with the list of candidate layers", async () => {
    await withModel(paths.cam, images.cam, async (m, k) => {
      const roi: TargetSpec = { roi: { row: 2, col: 2, height: 4, width: 4 }, outcome: "mean-prob" };
      const err = await explainGradCam(m, k, roi, { layer: "nope" }).catch((e: SegcauseError) => e);
      expect(err).toBeInstanceOf(SegcauseError);
      // candidates one per line, grouped by spatial size, smallest first
      expect((err as SegcauseError).oneLine()).toMatch(
        /--layer 'nope' is not a tensor .*feature maps \(smallest first\), or --layer auto:\n {2}4x4 \(\d+\):\n {4}A {2}\[2 channels, Relu\]\n[\s\S]*\n {2}8x8 \(\d+\):\n {4}\S+ {2}\[2 channels, Resize\]/,
      );
      // a tensor that exists but is not a feature map (1 channel) is refused too
      await expect(explainGradCam(m, k, roi, { layer: "mask" })).rejects.toThrow(/not a spatial feature map/);
    });
  });

  it("an all-zero map's note names a deeper layer that gives a map here", async () => {
    await withModel(paths.zeroCam, images.cam, async (m, k) => {
      const roi: TargetSpec = { roi: { row: 2, col: 2, height: 4, width: 4 }, outcome: "mean-prob" };
      // the progress display: ≈2 (≤3) until the first pass, then exactly 3 (the extra pass tries deeper layers)
      const statuses: RunStatus[] = [];
      const a = await explainGradCam(m, k, roi, { onProgress: new RunProgress((st) => statuses.push(st)).listener });
      expect(a.forwardPasses).toBe(3);
      expect(statuses.filter((st) => !st.exact).every((st) => st.total === 2 && st.bound === 3)).toBe(true);
      expect(statuses.at(-1)).toMatchObject({ done: 3, total: 3, exact: true });
      expect(a.provenance.settings.layerUsed).toBe("A");
      expect(a.map.every((v) => v === 0)).toBe(true);
      const note = a.notes.find((n) => /0 everywhere/.test(n))!;
      const named = /--layer (\S+) gives a nonzero map for this image and RoI/.exec(note)?.[1];
      expect(named).toBeDefined();
      expect(named).not.toBe("A");
      const b = await explainGradCam(m, k, roi, { layer: named });
      expect(b.map.some((v) => v > 0)).toBe(true);
    });
  });

  it("considers only feature maps the explained output depends on (not an auxiliary head's)", async () => {
    await withModel(paths.camAux, images.cam, async (m, k) => {
      expect(m.outputName).toBe("mask");
      const roi: TargetSpec = { roi: { row: 2, col: 2, height: 4, width: 4 }, outcome: "mean-prob" };
      const a = await explainGradCam(m, k, roi);
      expect(a.provenance.settings.layerUsed).toBe("A");
      await expect(explainGradCam(m, k, roi, { layer: "Aaux" })).rejects.toThrow(/--layer 'Aaux' does not feed the explained output 'mask'/);
      // restricting the automatic layer to the output's ancestors moves it on this model, so evaluate keys its Grad-CAM cells apart
      expect(autoLayerMovedByOutputPath(m)).toBe(true);
    });
    await withModel(paths.cam, images.cam, async (m) => expect(autoLayerMovedByOutputPath(m)).toBe(false));
  });
});

/** Independent half-pixel bilinear upsampling of a square map (for the Grad-CAM check). */
function handBilinear(src: ArrayLike<number>, n: number, N: number): Float32Array {
  const out = new Float32Array(N * N);
  const coord = (o: number) => Math.min(Math.max((o + 0.5) * (n / N) - 0.5, 0), n - 1);
  for (let y = 0; y < N; y++)
    for (let x = 0; x < N; x++) {
      const sy = coord(y),
        sx = coord(x);
      const y0 = Math.floor(sy),
        x0 = Math.floor(sx),
        y1 = Math.min(y0 + 1, n - 1),
        x1 = Math.min(x0 + 1, n - 1);
      const fy = sy - y0,
        fx = sx - x0;
      out[y * N + x] = (1 - fy) * ((1 - fx) * src[y0 * n + x0] + fx * src[y0 * n + x1]) + fy * ((1 - fx) * src[y1 * n + x0] + fx * src[y1 * n + x1]);
    }
  return out;
}

describe("MiSuRe", () => {
  it("dice loss gradient matches finite differences", () => {
    const p = [0.2, 0.7, 0.9, 0.4],
      y = [0, 1, 1, 0];
    const { loss, grad } = diceLoss(p, y);
    for (let i = 0; i < p.length; i++) {
      const q = [...p];
      q[i] += 1e-6;
      expect((diceLoss(q, y).loss - loss) / 1e-6).toBeCloseTo(grad[i], 4);
    }
  });

  it("dilates with the 7x7 ellipse", () => {
    const m = new Uint8Array(81);
    m[40] = 1;
    const d = dilate(m, 9, 9);
    expect(d.reduce((s, v) => s + v, 0)).toBe(33); // rows of 1, 5, 7, 7, 7, 5, 1
    expect(d[4]).toBe(0); // (0, 4): 4 rows up is outside the 7x7 kernel
    expect(d[13]).toBe(1); // (1, 4)
    expect(d[10]).toBe(0); // (1, 1): a corner of the kernel
  });

  it("reduces its loss and keeps the causal region of a region-mean model", async () => {
    await withModel(paths.region, images.flat, async (m, k) => {
      const roi: TargetSpec = { roi: { row: 12, col: 12, height: 8, width: 8 } };
      const a = await explainMisure(m, k, roi); // 32x32 mask = full resolution here
      const losses = a.provenance.settings.lossHistory as number[];
      expect(losses).toHaveLength(101);
      expect(losses[100]).toBeLessThan(losses[0]);
      expect(a.provenance.settings.finalDice as number).toBeGreaterThanOrEqual(0.9);
      expect(a.provenance.settings.dilations as number).toBeGreaterThan(0);
      let inR = 0,
        nR = 0,
        out = 0,
        nOut = 0;
      for (let y = 0; y < SIZE; y++)
        for (let x = 0; x < SIZE; x++) {
          const v = a.map[y * SIZE + x];
          if (y >= 8 && y < 24 && x >= 24) {
            if (v > 0) (inR += v), nR++;
          } else (out += v), nOut++;
        }
      expect(nR).toBeGreaterThan(0);
      if (process.env.DEBUG_MISURE)
        for (let y = 0; y < SIZE; y++)
          console.log(
            Array.from(a.map.subarray(y * SIZE, (y + 1) * SIZE), (v) => (v < 0.05 ? "." : Math.min(9, Math.floor(v * 10)).toString())).join(""),
          );
      // the kept mass sits on the causal region; elsewhere (the RoI included) the mask is ~0
      expect(inR / nR).toBeGreaterThan(0.3);
      expect(out / nOut).toBeLessThan(0.02);
      expect(a.backwardPasses).toBe(100);
      expect(a.signed).toBe(false);
    });
  });
});

describe("batching", () => {
  it("batch size 1 and 4 give the same map for every method", async () => {
    const runs: [string, (m: Model, k: Case, run: RunOptions) => Promise<Attribution>][] = [
      ["saliency", (m, k, r) => explainSaliency(m, k, MEANPROB, r)],
      ["gradxinput", (m, k, r) => explainGradXInput(m, k, MEANPROB, r)],
      ["ig", (m, k, r) => explainIg(m, k, MEANPROB, { ...r, steps: 6 })],
      ["smoothgrad", (m, k, r) => explainSmoothGrad(m, k, MEANPROB, { ...r, samples: 6 })],
      ["guided", (m, k, r) => explainGuided(m, k, MEANPROB, r)],
      ["deeplift", (m, k, r) => explainDeepLift(m, k, MEANPROB, r)],
      ["gradcam", (m, k, r) => explainGradCam(m, k, MEANPROB, r)],
      ["misure", (m, k, r) => explainMisure(m, k, { roi: { row: 8, col: 8, height: 8, width: 8 } }, { ...r, iterations: 5 })],
    ];
    await withModel(paths.smooth, images.ramp, async (m, k) => {
      for (const [name, fn] of runs) {
        const one = await fn(m, k, { batchSize: 1, seed: 3 });
        const four = await fn(m, k, { batchSize: 4, seed: 3 });
        const scale = Math.max(...one.map.map(Math.abs), 1e-12);
        expectClose(four.map, one.map, 1e-5 * scale, name);
        expect(four.backwardPasses, name).toBe(one.backwardPasses);
      }
    });
  });
});

describe("registry", () => {
  it("every gradient method is registered with its options, defaults and cost", () => {
    const names = ["saliency", "gradxinput", "ig", "smoothgrad", "guided", "deeplift", "gradcam", "misure"];
    for (const n of names) {
      const def = getMethod(n);
      expect(def.family, n).toBe("gradient");
      expect(def.cost, n).toMatch(/forward/);
    }
    expect(resolveOptions(getMethod("ig"), {})).toEqual({ steps: 32, fillKind: "constant", fill: 0, sigma: 5 });
    expect(resolveOptions(getMethod("smoothgrad"), { noise: 0.2 })).toEqual({ samples: 25, noise: 0.2 });
    expect(resolveOptions(getMethod("gradcam"), {})).toEqual({ layer: "auto" });
    expect(resolveOptions(getMethod("misure"), {})).toMatchObject({ iterations: 100, lr: 0.01, l1: 0.1, maskSize: 32, sufficiency: 0.9 });
    expect(() => resolveOptions(getMethod("saliency"), { steps: 4 })).toThrow(/--steps is not an option of method saliency/);
  });
});

describe("segcause explain --method <gradient method> (CLI, needs the build)", () => {
  const cli = (...args: string[]) => segcause("explain", "--threads", "1", "--workers", "1", "--no-progress", ...args);

  it("ig with shared occlusion flags writes a signed pixel map with its passes", () => {
    const out = join(dir, "cli-ig");
    const r = cli(
      "--method",
      "ig",
      "--steps",
      "4",
      "--fill-kind",
      "mean",
      "--batch-size",
      "2",
      "--model",
      paths.smooth,
      "--image",
      images.ramp,
      "--roi",
      "16,0,8,8",
      "--outcome",
      "mean-prob",
      "--out",
      out,
    );
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const man = JSON.parse(readFileSync(join(out, "manifest.json"), "utf8"));
    expect(man.method).toBe("ig");
    expect(man.backwardPasses).toBe(4);
    expect(man.forwardPasses).toBe(2 + 4);
    expect(man.provenance.settings).toMatchObject({ steps: 4, fillKind: "mean" });
    expect(man.notes.join("\n")).toMatch(/completeness/);
    expect(decodeNpy(readFileSync(join(out, "map.npy"))).shape).toEqual([SIZE, SIZE]);
  });

  it("gradcam with an unknown --layer exits 1 listing the candidates", () => {
    const r = cli(
      "--method",
      "gradcam",
      "--layer",
      "nope",
      "--model",
      paths.smooth,
      "--image",
      images.ramp,
      "--roi",
      "16,0,8,8",
      "--outcome",
      "mean-prob",
      "--out",
      join(dir, "cli-cam"),
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--layer 'nope' is not a tensor [\s\S]*\n {4}feat {2}\[4 channels, Sigmoid\]/);
  });
});

describe("overlay colours", () => {
  it("are normalised over the pixels outside the RoI, which is painted green", async () => {
    const { heatRgb } = await import("../src/report/colormap.js");
    const { Region } = await import("../src/target/roi.js");
    const roi = Region.rect({ row: 0, col: 0, height: 1, width: 1 }, 2, 2);
    const heat = heatRgb(Float32Array.from([-100, -1, -0.5, 0]), 2, 2, roi);
    expect([...heat.subarray(0, 3)]).toEqual([0, 255, 0]); // RoI
    expect([...heat.subarray(3, 6)]).toEqual([255, 0, 0]); // the largest value outside the RoI is full red
    expect([...heat.subarray(6, 9)]).toEqual([255, 128, 128]);
  });
});
