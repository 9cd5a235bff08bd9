import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { writeNifti } from "../src/data/volume/nifti-write.js";
import { buildVolumeBank, VolumeBank } from "../src/data/volume/volume-bank.js";
import { centrePlacement, fromBox, loadVolumeCase, toBox } from "../src/data/volume/volume-case.js";
import { FAST_SCHEDULE } from "../src/explain/adaptive.js";
import type { Size3 } from "../src/explain/volume/box-size.js";
import { explainVolumeBlocks, type VolumeAttribution } from "../src/explain/volume/engine.js";
import { Model } from "../src/model/model.js";
import type { VolumeCard } from "../src/model/volume-card.js";
import { readVolumeCard } from "../src/model/volume-card.js";
import { VolumeModel } from "../src/model/volume-model.js";
import { makeProbability } from "../src/target/outcome.js";
import { AFFINE, CAUSAL, inCausal, N, ROI, writeCausalFixture } from "./helpers/causal3d.js";
import { tmp } from "./helpers/tiny.js";

let dir: string, model: string, image: string, manifest: string;

beforeAll(async () => {
  dir = tmp();
  ({ model, image, manifest } = await writeCausalFixture(dir));
});

async function explain(spec: Parameters<typeof explainVolumeBlocks>[3]): Promise<VolumeAttribution> {
  const m = await VolumeModel.load(model);
  try {
    const kase = await loadVolumeCase(m, image);
    return await explainVolumeBlocks(m, kase, { roi: ROI }, spec);
  } finally {
    await m.release();
  }
}

function expectCausalBox(a: VolumeAttribution): void {
  expect(a.baseOutcome).toBeCloseTo(100, 6);
  expect(a.units).toHaveLength(7);
  expect(a.roiCells).toBe(1);
  for (const u of a.units) {
    const causal = u.z === CAUSAL.z && u.y === CAUSAL.y && u.x === CAUSAL.x;
    expect(u.effect, `box ${u.z},${u.y},${u.x}`).toBeCloseTo(causal ? -100 : 0, 6);
  }
  // the map on the volume grid: −100 over the causal box's voxels, 0 elsewhere (the RoI included)
  for (let k = 0; k < N; k++)
    for (let j = 0; j < N; j++) for (let i = 0; i < N; i++) expect(a.map[(k * N + j) * N + i]).toBeCloseTo(inCausal(i, j, k) ? -100 : 0, 6);
  expect(a.affine).toEqual(AFFINE);
}

describe("the block engine on volumes finds exactly the causal box of a known 3D model", () => {
  it("zero ablation", async () => {
    const a = await explain({
      method: "zero",
      block: [8, 8, 8],
      estimator: { screen: 1, samples: 0, tau: 0.02 },
      intervention: { kind: "constant", value: -0.378, describe: {} },
      settings: {},
    });
    expectCausalBox(a);
    expect(a.forwardPasses).toBe(8);
  });

  it("occlusion with overlapping windows keeps the causal box's voxels at −100 and its far side at 0", async () => {
    const a = await explain({
      method: "occlusion",
      block: [8, 8, 8],
      stride: [4, 4, 4],
      estimator: { screen: 1, samples: 0, tau: 0 },
      intervention: { kind: "constant", value: -1, describe: {} },
      settings: {},
    });
    // windows overlapping the causal box by half lower its mean to 0.63·(2.65) − 0.5 < 1: background too
    const at = (i: number, j: number, k: number) => a.map[(k * N + j) * N + i];
    expect(at(12, 2, 2)).toBeCloseTo(-100, 6);
    expect(at(0, 15, 0)).toBeCloseTo(0, 6);
  });

  it("PdCR's paper schedule with a 3D bank of boxes from other volumes", async () => {
    const m = await VolumeModel.load(model);
    const bank = await buildVolumeBank(manifest, m.card, { box: [8, 8, 8], perVolume: 6, seed: 0, splits: ["train"] });
    await m.release();
    expect(bank.count).toBe(12);
    expect(bank.header.spacing).toEqual([1, 1, 1]);
    const a = await explain({
      method: "pdcr",
      block: [8, 8, 8],
      estimator: { screen: 3, samples: 50, tau: 0.02 },
      intervention: { kind: "bank", bank },
      settings: {},
      seed: 3,
    });
    expectCausalBox(a);
    const causal = a.units.find((u) => u.z === CAUSAL.z && u.y === CAUSAL.y && u.x === CAUSAL.x)!;
    // its 3 screening draws and 50 fresh ones
    expect(causal.samples).toBe(53);
    expect(causal.stderr).toBeCloseTo(0, 9);
    // every other box is screened out after its 3 draws
    expect(a.forwardPasses).toBe(1 + 7 * 3 + 50);
  });

  it("PdCR's fast schedule (octree screening, stratified draws) finds the same causal box", async () => {
    const m = await VolumeModel.load(model);
    const bank = await buildVolumeBank(manifest, m.card, { box: [8, 8, 8], perVolume: 6, seed: 0, splits: ["train"] });
    await m.release();
    const a = await explain({
      method: "pdcr",
      block: [8, 8, 8],
      estimator: { screen: 3, samples: 48, tau: 0.02 },
      adaptive: { ...FAST_SCHEDULE, maxSamples: 48 },
      intervention: { kind: "bank", bank },
      settings: {},
      seed: 3,
    });
    expectCausalBox(a);
    // the grid is 2x2x2 boxes inside a top cube of 8: the nested groups of sides 8, 4 and 2 hold the same
    // 7 boxes and each moves the RoI (2 draws each); then the 7 boxes are screened alone
    expect(a.notes.find((n) => n.startsWith("fast schedule"))).toBe(
      "fast schedule: 3 octree groups tested with 6 passes; 7 of 7 boxes screened individually",
    );
  });

  it("the same seed gives the same map whatever the batch size", async () => {
    const m = await VolumeModel.load(model);
    const bank = await buildVolumeBank(manifest, m.card, { box: [8, 8, 8], perVolume: 6, seed: 0, splits: ["train"] });
    await m.release();
    const spec = {
      method: "pdcr",
      block: [8, 8, 8] as Size3,
      estimator: { screen: 3, samples: 5, tau: 0 },
      intervention: { kind: "bank" as const, bank },
      settings: {},
      seed: 1,
    };
    const [a, b] = [await explain({ ...spec, batchSize: 1 }), await explain({ ...spec, batchSize: 3 })];
    expect(Array.from(b.map)).toEqual(Array.from(a.map));
  });
});

describe("checkpoints", () => {
  it("a rerun with the same settings reuses every finished sample and gives the identical map", async () => {
    const m = await VolumeModel.load(model);
    const bank = await buildVolumeBank(manifest, m.card, { box: [8, 8, 8], perVolume: 6, seed: 0, splits: ["train"] });
    await m.release();
    const checkpointPath = join(dir, "vol.checkpoint.json");
    const spec = {
      method: "pdcr",
      block: [8, 8, 8] as Size3,
      estimator: { screen: 3, samples: 5, tau: 0 },
      intervention: { kind: "bank" as const, bank },
      settings: {},
      seed: 2,
      checkpointPath,
    };
    const first = await explain(spec);
    const again = await explain(spec);
    expect(Array.from(again.map)).toEqual(Array.from(first.map));
    // 7 boxes x (3 screening + 5) draws
    expect(again.notes).toContain("resumed from checkpoint: 56 samples reused");
  });
});

describe("placement into the model's box", () => {
  const card = { input: { depth: 6, height: 4, width: 5, placement: { kind: "centre", fill: 0 } } } as unknown as VolumeCard;

  it("centres a smaller axis and crops a longer one by the same rule, and maps back", () => {
    // volume 3 (i) x 4 (j) x 8 (k) into a box of W 5, H 4, D 6
    const dims: [number, number, number] = [3, 4, 8];
    const p = centrePlacement(dims, card);
    expect(p.offset).toEqual([1, 0, -1]);
    const values = Float32Array.from({ length: 3 * 4 * 8 }, (_, n) => n + 1);
    const box = toBox(values, dims, p, -7, (n) => new Float32Array(n));
    // box voxel (W 1, H 0, D 0) holds volume (i 0, j 0, k 1)
    expect(box[1]).toBe(values[(1 * 4 + 0) * 3 + 0]);
    expect(box[0]).toBe(-7);
    const back = fromBox(box, dims, p, Number.NaN);
    for (let k = 0; k < 8; k++)
      for (let n = 0; n < 12; n++) {
        const v = back[k * 12 + n];
        if (k === 0 || k === 7) expect(v).toBeNaN();
        else expect(v).toBe(values[k * 12 + n]);
      }
  });
});

describe("output activation", () => {
  it("independent sigmoid channels read each channel on its own; unstated keeps softmax for several channels", () => {
    const layout = { channels: 2, height: 1, width: 1 };
    const data = Float32Array.from([2, 3]);
    const sig = makeProbability({ kind: "logits", channel: 0, threshold: 0.5, activation: "sigmoid" }, layout);
    const soft = makeProbability({ kind: "logits", channel: 0, threshold: 0.5 }, layout);
    expect(sig(data, 0, 0)).toBeCloseTo(1 / (1 + Math.exp(-2)), 12);
    expect(soft(data, 0, 0)).toBeCloseTo(Math.exp(2) / (Math.exp(2) + Math.exp(3)), 12);
  });
});

describe("volume cards and banks", () => {
  it("the shipped 3D model's card is a complete volume card, and VolumeModel.load knows its output layout", async () => {
    const path = "models/volumes/unet3d-hippocampus.onnx";
    const { card } = readVolumeCard(path);
    expect(card.input).toMatchObject({
      layout: "ncdhw",
      depth: 48,
      height: 64,
      width: 48,
      normalisation: { kind: "zscore" },
      placement: { kind: "centre", fill: 0 },
      spacing: [1, 1, 1],
    });
    expect(card.output).toMatchObject({ kind: "logits", activation: "sigmoid", channel: 0, threshold: 0.5 });
    expect(card.training).toMatchObject({ seed: 0, epochs: 6 });
    const m = await VolumeModel.load(path);
    expect(m.outputLayout).toEqual({ channels: 3, depth: 48, height: 64, width: 48 });
    await m.release();
  });

  it("the 2D Model refuses a 3D model's card in one line", async () => {
    await expect(Model.load("models/volumes/unet3d-hippocampus.onnx")).rejects.toThrow(/card of a 3D model/);
  });

  it("a bank round-trips through its file and leaves out the boxes of the volume explained", async () => {
    const m = await VolumeModel.load(model);
    const bank = await buildVolumeBank(manifest, m.card, { box: [4, 4, 4], perVolume: 3, seed: 5, splits: ["train"] });
    await m.release();
    // into a folder that does not exist yet, as `bank build --out new/b.scvbank` does
    const path = join(dir, "banks", "b.scvbank");
    await bank.save(path);
    const back = await VolumeBank.load(path);
    expect(back.header).toEqual(bank.header);
    expect(Array.from(back.data)).toEqual(Array.from(bank.data));
    const { bank: rest, removed } = back.without(back.header.sources[0].sha256);
    expect(removed).toBe(3);
    expect(rest.count).toBe(3);
    expect(Array.from(rest.patch(0))).toEqual(Array.from(back.patch(3)));
  });

  it("a bank file whose header is not JSON, or whose sources do not add up to its count, is refused in one line", async () => {
    const m = await VolumeModel.load(model);
    const bank = await buildVolumeBank(manifest, m.card, { box: [4, 4, 4], perVolume: 3, seed: 5, splits: ["train"] });
    await m.release();
    const good = join(dir, "g.scvbank");
    await bank.save(good);
    const bytes = readFileSync(good);
    const nl = bytes.indexOf(10, bytes.indexOf(10) + 1);
    const [magic, header] = bytes.subarray(0, nl).toString().split("\n");
    const broken = join(dir, "broken.scvbank");
    writeFileSync(broken, Buffer.concat([Buffer.from(`${magic}\n{not json\n`), bytes.subarray(nl + 1)]));
    await expect(VolumeBank.load(broken)).rejects.toThrow(/bank header is not JSON/);
    const h = JSON.parse(header);
    h.sources[0].patches = 0;
    const short = join(dir, "short.scvbank");
    writeFileSync(short, Buffer.concat([Buffer.from(`${magic}\n${JSON.stringify(h)}\n`), bytes.subarray(nl + 1)]));
    await expect(VolumeBank.load(short)).rejects.toThrow(/its sources hold 3 patches, its header says 6/);
  });

  it("a volume with NaN voxels is refused before any pass", async () => {
    const m = await VolumeModel.load(model);
    try {
      const nan = join(dir, "nan.nii.gz");
      const data = new Float32Array(N ** 3).fill(1);
      data[5] = Number.NaN;
      data[6] = Number.POSITIVE_INFINITY;
      await writeNifti(nan, { dims: [N, N, N], affine: AFFINE, data });
      await expect(loadVolumeCase(m, nan)).rejects.toThrow(/has 2 voxels that are NaN or infinite/);
    } finally {
      await m.release();
    }
  });
});
