/**
 * 2D models on volumes, slice by slice: known-answer maps of a tiny 2D model on a 16³ volume, the
 * slice reuse against re-running every slice of every sample, and the refusals.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { readNifti } from "../src/data/volume/nifti.js";
import { writeNifti } from "../src/data/volume/nifti-write.js";
import { buildVolumeBank } from "../src/data/volume/volume-bank.js";
import { loadVolumeCase } from "../src/data/volume/volume-case.js";
import { FAST_SCHEDULE } from "../src/explain/adaptive.js";
import { explainVolumeBlocks, type VolumeAttribution, type VolumeBlockSpec, volumeTarget } from "../src/explain/volume/engine.js";
import { RunBound, RunStopped } from "../src/explain/volume/run-bound.js";
import { SliceModel } from "../src/model/slice-model.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import type { VolumeTargetSpec } from "../src/target/volume-target.js";
import { segcause } from "./helpers/cli.js";
import { regionMeanModel, tmp, writeModel } from "./helpers/tiny.js";

// Known structure: a 2D model on 16x16 slices whose probability everywhere is
// sigmoid(10·mean(rows 0..7, cols 8..15) − 7). The 16³ volume is raw 3 in the box k 0..7, j 0..7, i 8..15
// and raw 1 elsewhere: its 0.5–99.5 percentile window maps them to 1 and 0. Cut across k, slices k < 8
// hold the bright rectangle (probability sigmoid(3): foreground), slices k >= 8 do not (background).
// Only the bright box moves a RoI inside slices k < 8: zeroing it (or pasting noise boxes, whose window
// mean is about 0.5: logit −2) makes those slices background, −100 Dice points; every other box 0.
// Cut across j, the slices' planes are (k, i): the same box is the rectangle of slices j < 8.
const N = 16;
const inBright = (i: number, j: number, k: number) => k < 8 && j < 8 && i >= 8;
const BRIGHT = { z: 0, y: 0, x: 8 };
const CARD2D = {
  schema: "segcause.modelcard/1",
  name: "bright-rectangle-2d",
  input: { name: "image", height: N, width: N, channels: "gray", scale: 255, mean: [0], std: [1], slices: { axis: "k" } },
  output: { name: "mask", kind: "probabilities", channel: 0, threshold: 0.5 },
};
const AFFINE = [1, 0, 0, -8, 0, 1, 0, 3, 0, 0, 1, 2.5, 0, 0, 0, 1];

let dir: string, model: string, image: string, manifest: string;

beforeAll(async () => {
  dir = tmp();
  model = writeModel(
    dir,
    "bright2d.onnx",
    regionMeanModel([{ row: 0, col: 8, height: 8, width: 8, weight: 10 }], -7, { channels: 1, size: N }),
    CARD2D,
  );
  const data = new Float32Array(N ** 3);
  for (let k = 0; k < N; k++) for (let j = 0; j < N; j++) for (let i = 0; i < N; i++) data[(k * N + j) * N + i] = inBright(i, j, k) ? 3 : 1;
  image = join(dir, "case.nii.gz");
  await writeNifti(image, { dims: [N, N, N], affine: AFFINE, data });
  const cases = [];
  for (let v = 0; v < 2; v++) {
    const noise = Float32Array.from({ length: N ** 3 }, (_, i) => {
      const s = Math.sin(i * 12.9898 + v) * 43758.5453;
      return s - Math.floor(s);
    });
    await writeNifti(join(dir, `other${v}.nii.gz`), { dims: [N, N, N], affine: AFFINE, data: noise });
    cases.push({ id: `other${v}`, image: `other${v}.nii.gz`, split: "train" });
  }
  manifest = join(dir, "manifest.json");
  writeFileSync(manifest, JSON.stringify({ name: "tiny-slices", cases }));
});

async function explain(axis: "i" | "j" | "k", roi: VolumeTargetSpec["roi"], spec: VolumeBlockSpec, path = model): Promise<VolumeAttribution> {
  const m = await SliceModel.load(path, { axis });
  try {
    const kase = await loadVolumeCase(m, image);
    // loading the case gives the 2D model's card the volume's spacing (boxes in mm)
    expect(m.card.input.spacing).toEqual(kase.space.spacing);
    return await explainVolumeBlocks(m, kase, { roi }, spec);
  } finally {
    await m.release();
  }
}

const ZERO: VolumeBlockSpec = {
  method: "zero",
  block: [8, 8, 8],
  estimator: { screen: 1, samples: 0, tau: 0.02 },
  intervention: { kind: "constant", value: 0, describe: {} },
  settings: {},
};

/** −100 over the bright box's voxels, 0 elsewhere, on the input volume's grid. */
function expectBrightBox(a: VolumeAttribution): void {
  expect(a.baseOutcome).toBeCloseTo(100, 6);
  expect(a.units).toHaveLength(7);
  for (let k = 0; k < N; k++)
    for (let j = 0; j < N; j++) for (let i = 0; i < N; i++) expect(a.map[(k * N + j) * N + i]).toBeCloseTo(inBright(i, j, k) ? -100 : 0, 6);
  expect(a.affine).toEqual(AFFINE);
}

describe("a 2D model explains a volume slice by slice, finding exactly the causal box", () => {
  // across k: the RoI lies in slices 0..7 (z), away from the bright box
  const roiK = { z: 0, y: 8, x: 0, depth: 8, height: 8, width: 8 };

  it("zero ablation across k: only the RoI's slices run, only the boxes touching them re-run", async () => {
    const a = await explain("k", roiK, ZERO);
    expectBrightBox(a);
    const bright = a.units.find((u) => u.z === BRIGHT.z && u.y === BRIGHT.y && u.x === BRIGHT.x)!;
    expect(bright.effect).toBeCloseTo(-100, 6);
    // one 2D pass per RoI slice unperturbed, then per box the RoI slices it holds (boxes of slices 8..15: none)
    const roiSlices = roiK.depth;
    const touching = a.units.filter((u) => u.z < roiK.z + roiK.depth && u.z + u.depth > roiK.z).length;
    expect(a.windows).toMatchObject({ sliceAxis: "k", total: N, overRoi: roiSlices });
    expect(a.forwardPasses).toBe(roiSlices + touching * roiSlices);
    expect(a.forwardPasses).toBeLessThan(N + a.samples * N);
    expect(a.notes.join("\n")).toMatch(/slice by slice along k: 8 of the volume's 16 slices hold the RoI/);
    const prov = a.provenance as { model: { card: { slicedFrom: { slices: unknown } } }; passes: { model: number } };
    expect(prov.model.card.slicedFrom.slices).toEqual({ axis: "k", window: { low: 0.5, high: 99.5 } });
    expect(prov.passes.model).toBe(a.forwardPasses);
  });

  it("zero ablation across j (--slice-axis over the card's k): the same box", async () => {
    const a = await explain("j", { z: 8, y: 0, x: 0, depth: 8, height: 8, width: 8 }, ZERO);
    expectBrightBox(a);
    expect(a.windows?.sliceAxis).toBe("j");
  });

  it("PdCR with a slice bank, paper and fast schedule", async () => {
    const m = await SliceModel.load(model);
    const bank = await (async () => {
      try {
        m.bind([1, 1, 1]);
        return await buildVolumeBank(manifest, m.card, { box: [8, 8, 8], perVolume: 6, seed: 1, splits: ["train"], slicing: m.slicing });
      } finally {
        await m.release();
      }
    })();
    expect(bank.header.sliceAxis).toBe("k");
    const pdcr = (adaptive: boolean): VolumeBlockSpec => ({
      method: "pdcr",
      block: [8, 8, 8],
      estimator: { screen: 3, samples: 12, tau: 0.02 },
      intervention: { kind: "bank", bank },
      adaptive: adaptive ? { ...FAST_SCHEDULE, tau: 0.02, maxSamples: 12 } : undefined,
      settings: {},
    });
    for (const fast of [false, true]) {
      const a = await explain("k", roiK, pdcr(fast));
      expectBrightBox(a);
    }
  });
});

describe("--max-passes on the slice path counts 2D passes", () => {
  const roiK = { z: 0, y: 8, x: 0, depth: 8, height: 8, width: 8 };
  const bankFor = async () => {
    const m = await SliceModel.load(model);
    try {
      m.bind([1, 1, 1]);
      return await buildVolumeBank(manifest, m.card, { box: [4, 4, 4], perVolume: 8, seed: 2, splits: ["train"], slicing: m.slicing });
    } finally {
      await m.release();
    }
  };
  const spec = (bank: Awaited<ReturnType<typeof bankFor>>, o: Partial<VolumeBlockSpec>): VolumeBlockSpec => ({
    method: "pdcr",
    block: [4, 4, 4],
    estimator: { screen: 3, samples: 8, tau: 0.02 },
    intervention: { kind: "bank", bank },
    settings: {},
    ...o,
  });

  it("the paper schedule stops within its bound, counted in 2D passes", async () => {
    const bank = await bankFor();
    const checkpointPath = join(tmp(), "ck.json");
    const maxPasses = 50;
    const err = await explain("k", roiK, spec(bank, { checkpointPath, bound: new RunBound({ maxPasses, maxSeconds: 0 }) })).catch((e) => e);
    expect(err).toBeInstanceOf(RunStopped);
    const stopped = err as RunStopped;
    expect(stopped.ranPasses).toBeLessThanOrEqual(maxPasses);
    // a box over the RoI's slices costs up to its 4 slices: more than one pass per sample, so fewer samples than the bound
    expect(stopped.keptSamples).toBeLessThan(stopped.ranPasses);
    // the map's passes done: the RoI's slices unperturbed and every kept sample's own passes (all ran in this run)
    expect(stopped.donePasses).toBe(roiK.depth + stopped.ranPasses);
    expect(stopped.describe()).toContain(`${stopped.donePasses} of`);
  });

  it("the fast schedule's budget counts 2D passes: the screen it always completes is said in the run's passes", async () => {
    const bank = await bankFor();
    const a = await explain("k", roiK, spec(bank, { adaptive: { ...FAST_SCHEDULE, tau: 0.02, maxSamples: 16, maxPasses: 1 } }));
    const screen = a.notes.map((n) => /the screen alone needed (\d+) passes/.exec(n)).find(Boolean);
    expect(screen, a.notes.join("\n")).toBeTruthy();
    // only the screen ran (the budget allows no round): its passes are the run's model passes, not its samples
    expect(Number(screen![1])).toBe(a.forwardPasses);
    expect(a.forwardPasses).not.toBe(a.samples + 1);
  });
});

// A 3x3 convolution with uneven weights: every voxel of a slice near the RoI moves the outcome a little.
// With C = 3 each channel has its own kernel, so the grey slice's copy into every channel, each with its
// own mean/std, is what the map depends on.
function convModel(C: number): Uint8Array {
  const g = new GraphBuilder("conv3x3");
  const x = g.input("image", ["N", C, N, N]);
  const w = Array.from(
    { length: C * 9 },
    (_, i) => [0.9, -1.3, 0.4, 1.7, -2.1, 0.6, -0.5, 1.1, 0.8][i % 9] * (1 + 0.7 * Math.floor(i / 9)) * (i >= 9 && i < 18 ? -1 : 1),
  );
  const y = g.node("Conv", [x, g.constant([1, C, 3, 3], w), g.constant([1], [-0.3])], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }, ["mask"]);
  g.output(y, ["N", 1, N, N]);
  return g.toBytes();
}

const GREY = { channels: "gray", mean: [0.2], std: [0.5] };
const RGB = { channels: "rgb", mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

describe("the slice reuse gives the map of re-running every slice of every sample", () => {
  it.each([
    ["grey", GREY],
    ["RGB", RGB],
  ])(
    "occlusion with overlapping windows on a 12x10x9 volume, mean-prob, a %s model: each box's effect equals the brute-force one",
    async (_, input) => {
      const d = tmp();
      const C = input.channels === "rgb" ? 3 : 1;
      const path = writeModel(d, "conv.onnx", convModel(C), {
        input: { name: "image", height: N, width: N, scale: 255, ...input },
        output: { name: "mask", kind: "logits", channel: 0 },
      });
      const dims: [number, number, number] = [12, 10, 9];
      const data = Float32Array.from({ length: 12 * 10 * 9 }, (_, i) => {
        const s = Math.sin(i * 78.233) * 12345.6789;
        return 100 * (s - Math.floor(s));
      });
      const vol = join(d, "noise.nii.gz");
      await writeNifti(vol, { dims, affine: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1], data });
      const roi = { z: 2, y: 3, x: 4, depth: 4, height: 5, width: 6 };
      const m = await SliceModel.load(path);
      try {
        const kase = await loadVolumeCase(m, vol);
        const fill = 0.25;
        const spec: VolumeBlockSpec = {
          method: "occlusion",
          block: [3, 3, 3],
          stride: [2, 2, 2],
          estimator: { screen: 1, samples: 0, tau: 0 },
          intervention: { kind: "constant", value: fill, describe: {} },
          settings: {},
        };
        const a = await explainVolumeBlocks(m, kase, { roi, outcome: "mean-prob" }, spec);
        // brute force: every slice of the padded volume through the 2D model for every sample, outputs stacked
        const p = kase.placement;
        const [bx, by, bz] = p.box;
        const plane = bx * by;
        expect([bx, by]).toEqual([N, N]);
        const m2 = m.model2d;
        const affine = Array.from({ length: C }, (_, c) => m2.affine(c));
        const roiCells: number[] = [];
        for (let k = roi.z; k < roi.z + roi.depth; k++)
          for (let j = roi.y; j < roi.y + roi.height; j++)
            for (let i = roi.x; i < roi.x + roi.width; i++) roiCells.push(((k + p.offset[2]) * by + j + p.offset[1]) * bx + i + p.offset[0]);
        const outcome = async (boxInput: Float32Array) => {
          const logits = new Float32Array(boxInput.length);
          for (let k = 0; k < bz; k++) {
            const batch = new Float32Array(C * plane);
            for (let c = 0; c < C; c++)
              for (let i = 0; i < plane; i++) batch[c * plane + i] = boxInput[k * plane + i] * 255 * affine[c][0] + affine[c][1];
            logits.set(await m2.infer(batch, 1), k * plane);
          }
          let s = 0;
          for (const c of roiCells) s += 1 / (1 + Math.exp(-logits[c]));
          return (100 * s) / roiCells.length;
        };
        const base = await outcome(kase.input);
        expect(a.baseOutcome).toBeCloseTo(base, 4);
        let moved = 0;
        for (const u of a.units) {
          const x = Float32Array.from(kase.input);
          for (let k = u.z; k < u.z + u.depth; k++)
            for (let j = u.y; j < u.y + u.height; j++) for (let i = u.x; i < u.x + u.width; i++) x[(k * by + j) * bx + i] = fill;
          const brute = (await outcome(x)) - base;
          expect(u.effect, `box ${u.z},${u.y},${u.x}`).toBeCloseTo(brute, 4);
          if (Math.abs(brute) > 1e-3) moved++;
        }
        expect(moved).toBeGreaterThan(10);
        // and fewer passes than the brute force's (every slice, every sample)
        expect(a.forwardPasses).toBeLessThan((a.samples + 1) * bz);
      } finally {
        await m.release();
      }
    },
  );
});

/** 0.5·mean(rows 0..7, cols 8..15) + 0.2 with no Sigmoid: raw values in 0.2..0.7, which a logits card misreads. */
function unitRangeModel(): Uint8Array {
  const g = new GraphBuilder("unit-range-2d");
  const x = g.input("image", ["N", 1, N, N]);
  const w = new Float32Array(N * N);
  for (let y = 0; y < 8; y++) for (let c = 8; c < N; c++) w[y * N + c] = 0.5 / 64;
  const conv = g.node("Conv", [x, g.constant([1, 1, N, N], w), g.constant([1], [0.2])], { kernel_shape: [N, N] });
  g.output(g.node("Add", [conv, g.constant([1, 1, N, N], new Float32Array(N * N))], {}, ["mask"]), ["N", 1, N, N]);
  return g.toBytes();
}

describe("refusals on the slice path, one line each", () => {
  const oneLine = (r: { code: number | null; stderr: string }, re: RegExp) => {
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split("\n");
    expect(lines.at(-1)).toMatch(re);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  };
  const base = () => ["explain", "--model", model, "--image", image, "--roi", "0,8,0,8,8,8", "--block", "8", "--box-unit", "vox"];

  it("`segcause methods` says which methods run slice by slice", () => {
    const r = segcause("methods");
    const line = (m: string) => r.stdout.split("\n").find((l) => l.startsWith(`${m} `)) ?? "";
    for (const m of ["zero", "occlusion", "pdcr"]) expect(line(m)).toMatch(/2D model slice by slice: yes/);
    for (const m of ["saliency", "gradxinput", "ig", "smoothgrad", "gradcam", "rise"]) expect(line(m)).toMatch(/2D model slice by slice: no/);
  });

  it("an invalid --slice-axis", () => {
    const out = join(tmp(), "o");
    oneLine(segcause(...base(), "--method", "zero", "--slice-axis", "z", "--out", out), /slice-axis.*(i, j, k|i, j or k|one of)/);
    expect(existsSync(join(out, "manifest.json"))).toBe(false);
  });

  it("an invalid axis in the card", () => {
    const d = tmp();
    const bad = writeModel(d, "bad.onnx", readFileSync(model), { ...CARD2D, input: { ...CARD2D.input, slices: { axis: "z" } } });
    oneLine(segcause(...base().map((a) => (a === model ? bad : a)), "--method", "zero", "--out", join(d, "o")), /input\.slices\.axis/);
  });

  it("gradient methods and RISE", () => {
    for (const method of ["saliency", "rise"]) {
      const out = join(tmp(), "o");
      oneLine(
        segcause(...base().slice(0, -4), "--method", method, "--out", out),
        new RegExp(`${method} does not run slice by slice.*use --method zero, occlusion or pdcr`),
      );
      expect(existsSync(out)).toBe(false);
    }
  });

  it("a logits card whose unperturbed slices' output lies in [0, 1], as on an image", () => {
    const d = tmp();
    const unit = writeModel(d, "unit.onnx", unitRangeModel(), { ...CARD2D, output: { ...CARD2D.output, kind: "logits", activation: "sigmoid" } });
    const inUnitRange =
      /reads output 'mask' as logits, but on the unperturbed volume's slices \(on the RoI\) every value lies within \[0, 1\] \(0\.\d+ to 0\.\d+\)/;
    const out = join(d, "o");
    oneLine(segcause(...base().map((a) => (a === model ? unit : a)), "--method", "zero", "--out", out), inUnitRange);
    expect(existsSync(out)).toBe(false);
  });

  it("the 2D card flags override the 2D card, as for images; --resize is refused (slices are never resized)", () => {
    const d = tmp();
    const unit = writeModel(d, "unit.onnx", unitRangeModel(), { ...CARD2D, output: { ...CARD2D.output, kind: "logits", activation: "sigmoid" } });
    // the graph the card reads as logits, read as probabilities by --output-kind (a card override) runs
    const ok = segcause(
      ...base().map((a) => (a === model ? unit : a)),
      "--method",
      "zero",
      "--output-kind",
      "probabilities",
      "--reference",
      "prediction",
      "--outcome",
      "mean-prob",
      "--out",
      join(d, "p"),
      "--json",
    );
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(d, "p", "map.json"), "utf8")).provenance.model.card.slicedFrom.card.output.kind).toBe("probabilities");
    // --resize does not apply to slices (never resized)
    oneLine(
      segcause(...base(), "--method", "zero", "--resize", "bilinear", "--out", join(d, "r")),
      /--resize does not apply to a 2D model run slice by slice/,
    );
  });

  it("a bank cut across another slice axis", async () => {
    const d = tmp();
    const r0 = segcause(
      "bank",
      "build",
      "--images",
      manifest,
      "--model",
      model,
      "--splits",
      "train",
      "--patch-size",
      "8",
      "--box-unit",
      "vox",
      "--slice-axis",
      "j",
      "--out",
      join(d, "j.scvbank"),
    );
    expect(r0.code, r0.stderr).toBe(0);
    expect(r0.stdout).toMatch(/in the slice space of axis j/);
    oneLine(
      segcause(...base(), "--method", "pdcr", "--bank", join(d, "j.scvbank"), "--out", join(d, "o")),
      /cut for a 2D model slicing across axis j, this run is a 2D model slicing across axis k/,
    );
  });

  it("the CLI's summary and map on a good run", () => {
    const out = join(tmp(), "o");
    const r = segcause(...base(), "--method", "zero", "--out", out, "--no-progress");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/forward passes \(2D passes, slice by slice along k\)/);
    // the cost line's passes are the run's: 2D passes, exact for zero ablation
    const planned = /planned: 7 boxes, (\d+) passes .*8 slices over the RoI unperturbed/.exec(r.stderr);
    expect(planned, r.stderr).not.toBeNull();
    expect(r.stdout).toContain(`${planned![1]} forward passes`);
    expect(existsSync(join(out, "map.nii.gz"))).toBe(true);
    const j = JSON.parse(readFileSync(join(out, "map.json"), "utf8"));
    expect(JSON.stringify(j)).toMatch(/"sliceAxis":"k"/);
  });
});

const HIPPO = join("..", "shared", "data", "hippocampus");
const haveHippo = existsSync(join(HIPPO, "manifest.json"));
if (!haveHippo)
  console.warn("volume-slices.test.ts: ../shared/data/hippocampus is absent, so the real-data slice runs are skipped (CI has the data)");
const MODEL2D = join("models", "volumes", "unet2d-hippocampus-slices.onnx");

describe.skipIf(!haveHippo)("the shipped 2D slice model explains a real hippocampus volume slice by slice", () => {
  const cases = () =>
    (JSON.parse(readFileSync(join(HIPPO, "manifest.json"), "utf8")) as { cases: { id: string; image: string; mask: string; split: string }[] }).cases;

  it("its card is a 2D card with a slice axis; zero ablation reads the Dice of the stacked prediction on the structure", async () => {
    const card = JSON.parse(readFileSync(`${MODEL2D}.json`, "utf8"));
    expect(card.input.layout).toBe("nchw");
    expect(card.input.slices.axis).toBe("k");
    expect(card.metrics.split).toBe("test");
    const c = cases().find((x) => x.split === "test")!;
    const out = join(tmp(), "zero");
    const r = segcause(
      "explain",
      "--model",
      MODEL2D,
      "--image",
      join(HIPPO, c.image),
      "--mask",
      join(HIPPO, c.mask),
      "--roi-mask",
      join(HIPPO, c.mask),
      "--method",
      "zero",
      "--block",
      "8",
      "--out",
      out,
      "--json",
    );
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    // the RoI is the whole structure: the stacked slices' prediction overlaps the ground truth there
    expect(j.baseOutcome).toBeGreaterThan(70);
    expect(j.reference).toBe("ground-truth");
    expect(j.windows.sliceAxis).toBe("k");
    expect(j.forwardPasses).toBeLessThan((j.samples + 1) * j.windows.total);
  });

  it("the stacked slices' Dice over a whole test volume is the one the training script measured in PyTorch (the card's)", async () => {
    const card = JSON.parse(readFileSync(`${MODEL2D}.json`, "utf8"));
    const m = await SliceModel.load(MODEL2D);
    try {
      for (const c of cases()
        .filter((x) => x.split === "test")
        .slice(0, 3)) {
        const kase = await loadVolumeCase(m, join(HIPPO, c.image), { mask: join(HIPPO, c.mask) });
        const [nx, ny, nz] = kase.volume.dims;
        const t = await volumeTarget(m, kase, { roi: { z: 0, y: 0, x: 0, depth: nz, height: ny, width: nx }, reference: "ground-truth" });
        // the card keeps 6 decimals of the fraction
        expect(Math.abs(t.base - 100 * card.metrics.per_volume[c.id]), c.id).toBeLessThan(1e-3);
      }
    } finally {
      await m.release();
    }
  });

  it("PdCR (fast schedule) with a slice bank of the training volumes writes a map on the input's grid", async () => {
    const d = tmp();
    const bank = join(d, "slices.scvbank");
    const b = segcause(
      "bank",
      "build",
      "--images",
      join(HIPPO, "manifest.json"),
      "--model",
      MODEL2D,
      "--splits",
      "train",
      "--per-image",
      "4",
      "--patch-size",
      "4",
      "--out",
      bank,
    );
    expect(b.code, b.stderr).toBe(0);
    const c = cases().find((x) => x.id === "hippocampus_243")!;
    const out = join(d, "pdcr");
    const r = segcause(
      "explain",
      "--model",
      MODEL2D,
      "--image",
      join(HIPPO, c.image),
      "--mask",
      join(HIPPO, c.mask),
      "--roi",
      "8,10,14,6,8,6",
      "--method",
      "pdcr",
      "--block",
      "4",
      "--bank",
      bank,
      "--out",
      out,
      "--no-progress",
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/slice by slice along k: 6 of the volume's \d+ slices hold the RoI/);
    const input = await readNifti(join(HIPPO, c.image));
    const map = await readNifti(join(out, "map.nii.gz"));
    expect(map.dims).toEqual(input.dims);
    for (let i = 0; i < 16; i++) expect(map.affine[i]).toBeCloseTo(input.affine[i], 5);
    const j = JSON.parse(readFileSync(join(out, "map.json"), "utf8"));
    expect(j.provenance.model.card.slicedFrom.slices.axis).toBe("k");
    expect(j.provenance.passes.model).toBeGreaterThan(0);
    expect(j.units.some((u: { effect: number }) => u.effect < 0)).toBe(true);
  });
});

const DICOM_SERIES = join("..", "shared", "data", "dicom", "mr-hippocrop", "study1");
if (!existsSync(DICOM_SERIES))
  console.warn("volume-slices.test.ts: ../shared/data/dicom is absent, so the DICOM slice run is skipped (CI has the data)");

describe.skipIf(!existsSync(DICOM_SERIES))("a 2D model on a DICOM series, slice by slice", () => {
  it("writes the map on the series' grid and a DICOM Parametric Map", () => {
    const out = join(tmp(), "dcm");
    const r = segcause(
      "explain",
      "--model",
      MODEL2D,
      "--image",
      DICOM_SERIES,
      "--roi",
      "10,10,10,6,6,6",
      "--method",
      "zero",
      "--block",
      "4",
      "--outcome",
      "mean-prob",
      "--out",
      out,
      "--json",
    );
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.windows.sliceAxis).toBe("k");
    expect(Object.keys(j.files)).toEqual(expect.arrayContaining(["map.nii.gz", "map-parametric.dcm"]));
    expect(j.forwardPasses).toBeLessThan((j.samples + 1) * j.windows.total);
    // the series is stored LPS and not reoriented for a 2D model: the run says so
    const notes = JSON.parse(readFileSync(join(out, "map.json"), "utf8")).notes as string[];
    expect(notes.some((n) => n.includes("axes LPS, not reoriented"))).toBe(true);
  });
});
