import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { toBinary } from "@bufbuild/protobuf";
import { ModelProtoSchema } from "onnx-buf";
import { beforeAll, describe, expect, it } from "vitest";
import { writeNifti } from "../src/data/volume/nifti-write.js";
import { buildVolumeBank } from "../src/data/volume/volume-bank.js";
import { loadVolumeCase, type VolumeCase } from "../src/data/volume/volume-case.js";
import { FAST_SCHEDULE } from "../src/explain/adaptive.js";
import { explainVolumeBlocks, type VolumeAttribution, type VolumeBlockSpec, volumeTarget } from "../src/explain/volume/engine.js";
import { importanceMap, slidingWindows, windowStarts } from "../src/explain/volume/windows.js";
import { readVolumeCard } from "../src/model/volume-card.js";
import { VolumeModel } from "../src/model/volume-model.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import { readModelFile } from "../src/onnx/model-file.js";
import { segcause } from "./helpers/cli.js";
import { tmp, writeModel } from "./helpers/tiny.js";

const AFFINE = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
const PATCH = 8;

function card(placement: unknown, box: [number, number, number], output: Record<string, unknown>) {
  return {
    input: {
      name: "image",
      layout: "ncdhw",
      depth: box[0],
      height: box[1],
      width: box[2],
      channels: "gray",
      normalisation: { kind: "zscore" },
      placement,
      spacing: [1, 1, 1],
    },
    output: { name: "mask", layout: "ncdhw", channel: 0, threshold: 0.5, ...output },
  };
}
const sliding = (weighting: string) => ({ kind: "sliding", overlap: 0.5, weighting, fill: 0 });

/** sigmoid(2·x − 0.3) voxel by voxel (a 1x1x1 conv): any box size. */
function pointwiseModel(): Uint8Array {
  const g = new GraphBuilder("pointwise-3d");
  const x = g.input("image", ["N", 1, "D", "H", "W"]);
  const conv = g.node("Conv", [x, g.constant([1, 1, 1, 1, 1], [2]), g.constant([1], [-0.3])], { kernel_shape: [1, 1, 1] });
  g.output(g.node("Sigmoid", [conv], {}, ["mask"]), ["N", 1, "D", "H", "W"]);
  return g.toBytes();
}

/** logit(v) = 10·x(v + one voxel along W): a 3x3x3 conv (zero padding), so a window's last column reads 0. */
function shiftModel(): Uint8Array {
  const g = new GraphBuilder("shift-3d");
  const x = g.input("image", ["N", 1, "D", "H", "W"]);
  const w = new Float32Array(27);
  w[(1 * 3 + 1) * 3 + 2] = 10;
  const conv = g.node("Conv", [x, g.constant([1, 1, 3, 3, 3], w), g.constant([1], [0])], { kernel_shape: [3, 3, 3], pads: [1, 1, 1, 1, 1, 1] });
  g.output(g.node("Identity", [conv], {}, ["mask"]), ["N", 1, "D", "H", "W"]);
  return g.toBytes();
}

// The shift model's volume: 24 (x) by 16 (y) by 16 (z), raw 1 with raw 3 over the RoI and the column
// next to it along x; the RoI is z,y,x 4..7, 4..7, 8..11. Its prediction reads x 9..12, and only
// the column x = 12 lies outside the RoI's blocks: the causal box is the block of 4 at z 4, y 4, x 12.
const SX = 24,
  SY = 16,
  SZ = 16;
const ROI = { z: 4, y: 4, x: 8, depth: 4, height: 4, width: 4 };
const bright = (i: number, j: number, k: number) => i >= 8 && i <= 12 && j >= 4 && j <= 7 && k >= 4 && k <= 7;

let dir: string;
let pointwise: Record<string, string>;
let shift: string, shiftImage: string, pointImage: string, manifest: string;

beforeAll(async () => {
  dir = tmp();
  const pw = pointwiseModel();
  pointwise = {
    gaussian: writeModel(
      dir,
      "pw-gauss.onnx",
      pw,
      card(sliding("gaussian"), [PATCH, PATCH, PATCH], { kind: "probabilities", activation: "sigmoid" }),
    ),
    constant: writeModel(
      dir,
      "pw-const.onnx",
      pw,
      card(sliding("constant"), [PATCH, PATCH, PATCH], { kind: "probabilities", activation: "sigmoid" }),
    ),
    // the whole volume (19 x 13 x 6) in one box
    whole: writeModel(dir, "pw-whole.onnx", pw, card({ kind: "centre", fill: 0 }, [6, 13, 19], { kind: "probabilities", activation: "sigmoid" })),
  };
  pointImage = join(dir, "pw.nii.gz");
  await writeNifti(pointImage, {
    dims: [19, 13, 6],
    affine: AFFINE,
    data: Float32Array.from({ length: 19 * 13 * 6 }, (_, i) => Math.sin(i * 0.37) * 5),
  });
  shift = writeModel(dir, "shift.onnx", shiftModel(), card(sliding("gaussian"), [PATCH, PATCH, PATCH], { kind: "logits", activation: "sigmoid" }));
  shiftImage = join(dir, "shift.nii.gz");
  const data = new Float32Array(SX * SY * SZ);
  for (let k = 0; k < SZ; k++) for (let j = 0; j < SY; j++) for (let i = 0; i < SX; i++) data[(k * SY + j) * SX + i] = bright(i, j, k) ? 3 : 1;
  await writeNifti(shiftImage, { dims: [SX, SY, SZ], affine: AFFINE, data });
  // a "data set" of constant volumes: every bank box is 0 after z-scoring, so a drawn box makes the column background
  const cases = [];
  for (let v = 0; v < 2; v++) {
    await writeNifti(join(dir, `flat${v}.nii.gz`), { dims: [SX, SY, SZ], affine: AFFINE, data: new Float32Array(SX * SY * SZ).fill(5 + v) });
    cases.push({ id: `flat${v}`, image: `flat${v}.nii.gz`, split: "train" });
  }
  manifest = join(dir, "manifest.json");
  writeFileSync(manifest, JSON.stringify({ name: "flat3d", cases }));
});

describe("windows and weights follow nnU-Net", () => {
  it("windows are evenly spaced, first at 0, last flush with the end, overlapping by at least the overlap", () => {
    // nnU-Net's own example (compute_steps_for_sliding_window): image 110, patch 64, step 0.5
    expect(windowStarts(110, 64, 0.5)).toEqual([0, 23, 46]);
    // 2.5 rounds to 2 as numpy's round does (half to even)
    expect(windowStarts(13, 8, 0.5)).toEqual([0, 2, 5]);
    expect(windowStarts(8, 8, 0.5)).toEqual([0]);
    expect(windowStarts(24, 8, 0)).toEqual([0, 8, 16]);
    for (const [size, patch, overlap] of [
      [51, 48, 0.5],
      [100, 32, 0.25],
      [77, 16, 0.75],
    ]) {
      const s = windowStarts(size, patch, overlap);
      expect(s[0]).toBe(0);
      expect(s.at(-1)).toBe(size - patch);
      for (let i = 1; i < s.length; i++) expect(s[i] - s[i - 1]).toBeLessThanOrEqual(patch * (1 - overlap));
    }
  });

  it("the Gaussian importance map peaks at patch // 2 with sigma = patch / 8, and is never 0", () => {
    const g = importanceMap([8, 8, 16], "gaussian");
    const at = (z: number, y: number, x: number) => g[(z * 8 + y) * 16 + x];
    expect(at(4, 4, 8)).toBe(1);
    expect(at(3, 4, 8)).toBeCloseTo(Math.exp(-0.5), 6); // one sigma (1 voxel) off along D
    expect(at(4, 4, 6)).toBeCloseTo(Math.exp(-0.5), 6); // one sigma (2 voxels) off along W
    expect(Math.min(...g)).toBeGreaterThan(0);
    expect(Array.from(importanceMap([2, 3, 4], "constant"))).toEqual(new Array(24).fill(1));
  });

  it("a card's sliding placement is checked: an overlap of 1 is refused in one line", () => {
    const path = join(dir, "bad.json");
    writeFileSync(path, JSON.stringify(card({ kind: "sliding", overlap: 1 }, [8, 8, 8], { kind: "probabilities", activation: "sigmoid" })));
    expect(() => readVolumeCard("x.onnx", path)).toThrow(/input\.placement\.overlap: overlap is a fraction of the patch in \[0, 1\)/);
  });
});

async function withCase<T>(modelPath: string, image: string, fn: (m: VolumeModel, k: VolumeCase) => Promise<T>): Promise<T> {
  const m = await VolumeModel.load(modelPath);
  try {
    return await fn(m, await loadVolumeCase(m, image));
  } finally {
    await m.release();
  }
}

describe("the stitched output", () => {
  it("of a pointwise model equals the model run on the whole volume at once, bit for bit, with either weighting", async () => {
    const whole = await withCase(pointwise.whole, pointImage, async (m, k) => (await m.runOne(k.input)).data as Float32Array);
    for (const w of ["gaussian", "constant"]) {
      await withCase(pointwise[w], pointImage, async (m, k) => {
        // padded along D (6 -> 8); windows at 0, 2, 5 along H (13) and 0, 4, 7, 11 along W (19)
        expect(k.placement.box).toEqual([19, 13, 8]);
        expect(k.placement.offset).toEqual([0, 0, 1]);
        const t = await volumeTarget(m, k, { roi: { z: 0, y: 0, x: 0, depth: 6, height: 13, width: 19 }, outcome: "mean-prob" });
        const f = t.forward!;
        expect(f.windows).toHaveLength(1 * 3 * 4);
        const { data } = f.stitch();
        let differ = 0;
        t.roiCells.forEach((c, i) => {
          const x = c % 19,
            y = Math.floor(c / 19) % 13,
            z = Math.floor(c / (19 * 13)) - 1;
          if (data[i] !== whole[(z * 13 + y) * 19 + x]) differ++;
        });
        expect(differ, w).toBe(0);
      });
    }
  });

  it("of a perturbed sample is the same, bit for bit, whether only its windows or every window re-runs", async () => {
    await withCase(shift, shiftImage, async (m, k) => {
      const t = await volumeTarget(m, k, { roi: ROI, outcome: "soft-dice", reference: "prediction" });
      const f = t.forward!;
      // samples: boxes filled with a value each, some far from the RoI, some across it
      const samples = [
        { z: 0, y: 0, x: 0, depth: 4, height: 4, width: 4, value: -2 },
        { z: 4, y: 4, x: 12, depth: 4, height: 4, width: 4, value: 0.3 },
        { z: 2, y: 6, x: 10, depth: 5, height: 3, width: 4, value: -0.7 },
        { z: 12, y: 12, x: 20, depth: 4, height: 4, width: 4, value: 1.5 },
        { z: 6, y: 0, x: 4, depth: 2, height: 16, width: 9, value: 0.1 },
      ];
      const [bx, by] = k.placement.box;
      const cellsOf = (s: (typeof samples)[number], put: (c: number, v: number) => void) => {
        for (let z = s.z; z < s.z + s.depth; z++)
          for (let y = s.y; y < s.y + s.height; y++) for (let x = s.x; x < s.x + s.width; x++) put((z * by + y) * bx + x, s.value * (1 + x / 10));
      };
      const incremental = await f.evaluate(
        m.runner(3),
        samples,
        { boxes: (s) => [s], perturb: cellsOf },
        (st) => t.score(st.data, 0),
        () => undefined,
      );
      // Brute force: the whole perturbed volume, every window of it run, stitched over the whole volume.
      const weights = importanceMap([PATCH, PATCH, PATCH], "gaussian");
      const windows = slidingWindows(k.placement as never);
      for (const [n, s] of samples.entries()) {
        const vol = Float32Array.from(k.input);
        cellsOf(s, (c, v) => (vol[c] = v));
        const acc = new Float64Array(vol.length);
        const wsum = new Float64Array(vol.length);
        for (const w of windows) {
          const patch = new Float32Array(PATCH ** 3);
          for (let z = 0; z < PATCH; z++)
            for (let y = 0; y < PATCH; y++)
              for (let x = 0; x < PATCH; x++) patch[(z * PATCH + y) * PATCH + x] = vol[((w.z + z) * by + w.y + y) * bx + w.x + x];
          const out = (await m.runOne(patch)).data as Float32Array;
          for (let z = 0; z < PATCH; z++)
            for (let y = 0; y < PATCH; y++)
              for (let x = 0; x < PATCH; x++) {
                const c = ((w.z + z) * by + w.y + y) * bx + w.x + x;
                const l = (z * PATCH + y) * PATCH + x;
                acc[c] += weights[l] * out[l];
                wsum[c] += weights[l];
              }
        }
        const stitched = Float32Array.from(t.roiCells, (c) => acc[c] / wsum[c]);
        expect(Object.is(incremental[n], t.score(stitched, 0)), `sample ${n}`).toBe(true);
      }
      // the far corner box touches no window over the RoI: it scores as the unperturbed volume
      expect(incremental[0]).toBe(t.base);
      expect(incremental[1]).toBeLessThan(t.base);
    });
  });
});

/** Number of windows over the RoI that intersect a box: counted from the geometry alone. */
function windowsTouching(
  b: { z: number; y: number; x: number; depth: number; height: number; width: number },
  used: { z: number; y: number; x: number }[],
) {
  const hit = (lo: number, n: number, w: number) => lo < w + PATCH && lo + n > w;
  return used.filter((w) => hit(b.z, b.depth, w.z) && hit(b.y, b.height, w.y) && hit(b.x, b.width, w.x)).length;
}

async function explainShift(
  spec: VolumeBlockSpec,
  batchSize = 4,
): Promise<{ a: VolumeAttribution; calls: number; used: { z: number; y: number; x: number }[] }> {
  return withCase(shift, shiftImage, async (m, k) => {
    // batch size 1 for the count: every session call is one model pass of one window
    let calls = 0;
    const run = m.sessions.run.bind(m.sessions);
    m.sessions.run = ((...args: Parameters<typeof run>) => {
      calls++;
      return run(...args);
    }) as typeof run;
    const t = await volumeTarget(m, k, { roi: ROI, reference: "prediction" }, batchSize);
    const a = await explainVolumeBlocks(m, k, t, { ...spec, batchSize });
    return { a, calls, used: t.forward!.used };
  });
}

const DICE_AFTER = (flipped: number) => (100 * 2 * (64 - flipped)) / (64 - flipped + 64);

describe("methods on sliding windows find the known causal box of a local 3D model", () => {
  it("zero ablation: −(100 − Dice with one RoI column lost) on the causal box, 0 elsewhere; windows far from the RoI never run", async () => {
    const { a, calls, used } = await explainShift(
      {
        method: "zero",
        block: [4, 4, 4],
        estimator: { screen: 1, samples: 0, tau: 0.02 },
        intervention: { kind: "constant", value: -1, describe: {} },
        settings: {},
      },
      1,
    );
    expect(a.baseOutcome).toBeCloseTo(100, 9);
    expect(a.units).toHaveLength(6 * 4 * 4 - 1);
    for (const u of a.units) {
      const causal = u.z === 4 && u.y === 4 && u.x === 12;
      expect(u.effect, `box ${u.z},${u.y},${u.x}`).toBeCloseTo(causal ? DICE_AFTER(16) - 100 : 0, 9);
    }
    // 5 x 3 x 3 windows; the RoI lies in 2 x 2 x 2 of them
    expect(a.windows).toEqual({ patch: [8, 8, 8], overlap: 0.5, weighting: "gaussian", total: 45, overRoi: 8 });
    const expected = 8 + a.units.reduce((s, u) => s + windowsTouching(u, used), 0);
    expect(a.samples).toBe(a.units.length);
    expect(a.forwardPasses).toBe(expected);
    expect(calls).toBe(expected);
    expect(expected).toBeLessThan(a.units.length * 8);
    expect(a.provenance.passes).toEqual({ samples: a.units.length, model: expected, windows: a.windows });
    expect((a.provenance.volume as { placement: { kind: string } }).placement.kind).toBe("sliding");
  });

  it("occlusion with overlapping boxes: each box's effect is that of the RoI voxels whose read column it covers", async () => {
    const { a } = await explainShift({
      method: "occlusion",
      block: [4, 4, 4],
      stride: [2, 2, 2],
      estimator: { screen: 1, samples: 0, tau: 0 },
      intervention: { kind: "constant", value: -1, describe: {} },
      settings: {},
    });
    const overlap = (lo: number, n: number, a0: number, a1: number) => Math.max(0, Math.min(lo + n, a1 + 1) - Math.max(lo, a0));
    let causal = 0;
    for (const u of a.units) {
      const flipped = (u.x <= 12 && 12 < u.x + u.width ? 1 : 0) * overlap(u.y, u.height, 4, 7) * overlap(u.z, u.depth, 4, 7);
      if (flipped) causal++;
      expect(u.effect, `box ${u.z},${u.y},${u.x}`).toBeCloseTo(DICE_AFTER(flipped) - 100, 9);
    }
    expect(causal).toBe(9);
  });

  it("PdCR (paper schedule, natural boxes of other volumes) finds the same box; a resumed run is identical", async () => {
    const m = await VolumeModel.load(shift);
    const bank = await buildVolumeBank(manifest, m.card, { box: [4, 4, 4], perVolume: 3, seed: 0, splits: ["train"] });
    await m.release();
    const spec: VolumeBlockSpec = {
      method: "pdcr",
      block: [4, 4, 4],
      estimator: { screen: 3, samples: 5, tau: 0.02 },
      intervention: { kind: "bank", bank },
      settings: {},
      seed: 4,
      checkpointPath: join(dir, "pdcr.checkpoint.json"),
    };
    const first = (await explainShift(spec)).a;
    for (const u of first.units) {
      const causal = u.z === 4 && u.y === 4 && u.x === 12;
      expect(u.effect, `box ${u.z},${u.y},${u.x}`).toBeCloseTo(causal ? DICE_AFTER(16) - 100 : 0, 9);
      expect(u.samples).toBe(causal ? 8 : 3);
    }
    const again = (await explainShift(spec, 2)).a;
    expect(again.notes).toContain(`resumed from checkpoint: ${first.samples} samples reused`);
    expect(Array.from(again.map)).toEqual(Array.from(first.map));
    expect(Array.from(again.stderrMap)).toEqual(Array.from(first.stderrMap));
    expect([again.samples, again.forwardPasses]).toEqual([first.samples, first.forwardPasses]);
  });

  it("PdCR's fast schedule (octree screening) on windows finds the same box, its group passes counted as windows", async () => {
    const m = await VolumeModel.load(shift);
    const bank = await buildVolumeBank(manifest, m.card, { box: [4, 4, 4], perVolume: 3, seed: 0, splits: ["train"] });
    await m.release();
    const { a, calls, used } = await explainShift(
      {
        method: "pdcr",
        block: [4, 4, 4],
        estimator: { screen: 3, samples: 6, tau: 0.02 },
        adaptive: { ...FAST_SCHEDULE, tau: 0.02, maxSamples: 6 },
        intervention: { kind: "bank", bank },
        settings: {},
        seed: 5,
      },
      1,
    );
    for (const u of a.units)
      expect(u.effect, `box ${u.z},${u.y},${u.x}`).toBeCloseTo(u.z === 4 && u.y === 4 && u.x === 12 ? DICE_AFTER(16) - 100 : 0, 9);
    // every session call ran one window; no window outside the 8 over the RoI ever ran
    expect(calls).toBe(a.forwardPasses);
    expect(used).toHaveLength(8);
    expect(a.samples).toBeGreaterThan(0);
  });

  it("the checkpoint key records the placement: a run with other windows does not reuse the samples", async () => {
    const spec: VolumeBlockSpec = {
      method: "zero",
      block: [4, 4, 4],
      estimator: { screen: 1, samples: 0, tau: 0.02 },
      intervention: { kind: "constant", value: -1, describe: {} },
      settings: {},
      checkpointPath: join(dir, "zero.checkpoint.json"),
    };
    await explainShift(spec);
    const other = writeModel(
      dir,
      "shift-const.onnx",
      shiftModel(),
      card(sliding("constant"), [PATCH, PATCH, PATCH], { kind: "logits", activation: "sigmoid" }),
    );
    const a = await withCase(other, shiftImage, (m, k) => explainVolumeBlocks(m, k, { roi: ROI, reference: "prediction" }, spec));
    expect(a.notes.some((n) => n.includes("samples of a run with other settings"))).toBe(true);
  });
});

describe("the centre placement", () => {
  it("counts its samples too: one model pass each, plus the unperturbed pass", async () => {
    const a = await withCase(pointwise.whole, pointImage, (m, k) =>
      explainVolumeBlocks(
        m,
        k,
        { roi: { z: 0, y: 0, x: 0, depth: 2, height: 4, width: 4 }, outcome: "mean-prob" },
        {
          method: "zero",
          block: [2, 2, 2],
          estimator: { screen: 1, samples: 0, tau: 0 },
          intervention: { kind: "constant", value: 0, describe: {} },
          settings: {},
        },
      ),
    );
    expect(a.windows).toBeUndefined();
    expect(a.samples).toBe(a.units.length);
    expect(a.forwardPasses).toBe(1 + a.samples);
  });

  it("crops a volume larger than its box as before, and its note points to the sliding placement", async () => {
    const small = writeModel(
      dir,
      "pw-small.onnx",
      pointwiseModel(),
      card({ kind: "centre", fill: 0 }, [8, 8, 8], { kind: "probabilities", activation: "sigmoid" }),
    );
    const m = await VolumeModel.load(small);
    try {
      const k = await loadVolumeCase(m, pointImage);
      expect(k.placement).toEqual({ kind: "centre", box: [8, 8, 8], offset: [-6, -3, 1], fill: 0 });
      expect(k.notes.join(" ")).toMatch(/cropped about its centre.*input\.placement \{"kind": "sliding"\}/);
    } finally {
      await m.release();
    }
  });
});

describe("segcause explain with a sliding card", () => {
  it("prints the samples and the model passes, and records the windows in map.json", () => {
    const out = join(dir, "cli-out");
    const r = segcause("explain", "--model", shift, "--image", shiftImage, "--roi", "4,4,8,4,4,4", "--method", "zero", "--block", "4", "--out", out);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/95 samples, \d+ forward passes \(windows of 8x8x8\)/);
    expect(r.stdout).toContain(
      "sliding windows of 8x8x8 (overlap 0.5, gaussian weights) over the 16x16x24 padded volume: 8 of its 45 windows overlap the RoI",
    );
    const json = JSON.parse(readFileSync(join(out, "map.json"), "utf8"));
    expect(json.samples).toBe(95);
    expect(json.windows).toEqual({ patch: [8, 8, 8], overlap: 0.5, weighting: "gaussian", total: 45, overRoi: 8 });
    expect(json.provenance.passes.model).toBe(json.forwardPasses);
    expect(json.provenance.volume.placement).toMatchObject({ kind: "sliding", patch: [8, 8, 8], box: [24, 16, 16], overlap: 0.5 });
    // the causal box (z 4, y 4, x 12 in the volume) is the one box with an effect
    const moved = json.units.filter((u: { effect: number }) => u.effect !== 0);
    expect(moved.map((u: { z: number; y: number; x: number }) => [u.z, u.y, u.x])).toEqual([[4, 4, 12]]);
  });
});

const HIPPO = resolve("../shared/data/hippocampus");
const MODEL3D = join("models", "volumes", "unet3d-hippocampus.onnx");
const haveData = existsSync(join(HIPPO, "manifest.json"));

describe.skipIf(!haveData)("the shipped 3D model in 32x48x32 sliding windows on a hippocampus test volume", () => {
  /** The shipped network with its input and output declared at a smaller patch (it is fully convolutional). */
  function smallerPatch(patch: [number, number, number]): string {
    const file = readModelFile(MODEL3D);
    for (const v of [file.proto.graph!.input[0], file.proto.graph!.output[0]]) {
      const dims = (v.type!.value.value as { shape: { dim: { value: { case: string; value: unknown } }[] } }).shape.dim;
      patch.forEach((n, a) => (dims[2 + a].value = { case: "dimValue", value: BigInt(n) }));
    }
    const shipped = JSON.parse(readFileSync(`${MODEL3D}.json`, "utf8"));
    const c = { ...shipped, input: { ...shipped.input, depth: patch[0], height: patch[1], width: patch[2], placement: sliding("gaussian") } };
    return writeModel(tmp(), "unet3d-sliding.onnx", toBinary(ModelProtoSchema, file.proto), c);
  }

  const testCase = () => {
    const m = JSON.parse(readFileSync(join(HIPPO, "manifest.json"), "utf8")) as { cases: { image: string; mask: string; split: string }[] };
    return m.cases.find((x) => x.split === "test")!;
  };

  it("the stitched prediction's Dice against the labels is close to the single box's; a zero-ablation map runs, its passes counted", async () => {
    const c = testCase();
    const dice = async (modelPath: string) => {
      const m = await VolumeModel.load(modelPath);
      try {
        const k = await loadVolumeCase(m, join(HIPPO, c.image), { mask: join(HIPPO, c.mask), label: "1,2" });
        const [nx, ny, nz] = k.volume.dims;
        // RoI = the whole volume against the labels: the outcome is the prediction's Dice
        const t = await volumeTarget(m, k, { roi: { z: 0, y: 0, x: 0, depth: nz, height: ny, width: nx }, reference: "ground-truth" });
        return { base: t.base, windows: t.forward?.used.length, dims: k.volume.dims };
      } finally {
        await m.release();
      }
    };
    const single = await dice(MODEL3D);
    const small = smallerPatch([32, 48, 32]);
    const stitched = await dice(small);
    console.log(
      `hippocampus ${c.image} ${single.dims.join("x")}: whole-volume Dice ${single.base.toFixed(2)} in one 48x64x48 box, ${stitched.base.toFixed(2)} stitched from ${stitched.windows} windows of 32x48x32`,
    );
    expect(single.base).toBeGreaterThan(80);
    expect(stitched.windows).toBeGreaterThan(1);
    expect(Math.abs(stitched.base - single.base)).toBeLessThan(3);
    // a zero-ablation map on the windows, RoI = the labelled structure
    const m = await VolumeModel.load(small);
    const a = await (async () => {
      const kase = await loadVolumeCase(m, join(HIPPO, c.image), { mask: join(HIPPO, c.mask), label: "1,2" });
      return explainVolumeBlocks(
        m,
        kase,
        { roi: { mask: kase.mask!, name: c.mask } },
        {
          method: "zero",
          block: [16, 16, 16],
          estimator: { screen: 1, samples: 0, tau: 0.02 },
          intervention: { kind: "constant", value: kase.normalise(0), describe: {} },
          settings: {},
        },
      );
    })().finally(() => m.release());
    console.log(
      `zero ablation on windows: ${a.samples} samples, ${a.forwardPasses} model passes (${a.windows!.overRoi} of ${a.windows!.total} windows over the RoI), ${(a.wallMs / 1000).toFixed(1)} s`,
    );
    expect(a.samples).toBe(a.units.length);
    expect(a.forwardPasses).toBeGreaterThan(a.windows!.overRoi);
    expect(a.forwardPasses).toBeLessThanOrEqual(a.windows!.overRoi * (1 + a.samples));
    expect(a.units.some((u) => u.effect < 0)).toBe(true);
  });
});
