/**
 * Components on 3D models: the 2D known-answer structures (two branches, a graded chain every path
 * passes through, redundant paths, a copied channel, one causal cell) built as tiny [N, 1, D, H, W]
 * models; the component engine on their volumes must find the same exact answers.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { loadVolumeCase, type VolumeCase } from "../src/data/volume/volume-case.js";
import { explainVolumeComponents } from "../src/explain/volume/components.js";
import { VolumeModel } from "../src/model/volume-model.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import { spatialOnBox } from "../src/report/volume-components.js";
import { AFFINE, at, CARD3D, copyChannelModel, head, N, writeFlatVolume } from "./helpers/components3d.js";
import { tmp, writeModel } from "./helpers/tiny.js";

async function load(dir: string, name: string, g: GraphBuilder): Promise<VolumeModel> {
  return VolumeModel.load(writeModel(dir, name, g.toBytes(), CARD3D), { threads: 1 });
}

/** A flat volume of raw value v (or of v(z, y, x)), loaded as the model's case. */
async function flat(model: VolumeModel, dir: string, name: string, v: number | ((z: number, y: number, x: number) => number)): Promise<VolumeCase> {
  return loadVolumeCase(model, await writeFlatVolume(dir, name, v));
}

describe("components on a 3D model with a known answer", () => {
  // Two parallel branches of the input; branch B is masked to the top half (z < 4), the RoI is in the
  // bottom half, so only branch A can change the RoI's prediction: branch B is a dead branch there.
  let model: VolumeModel, kase: VolumeCase, donors: VolumeCase[];
  const roi = { z: 5, y: 2, x: 2, depth: 2, height: 3, width: 3 };
  beforeAll(async () => {
    const g = new GraphBuilder("branches-3d");
    const x = g.input("image", ["N", 1, N, N, N]);
    const one = () => g.constant([1, 1, 1, 1, 1], [1]);
    const a = g.node("Conv", [x, one()], { kernel_shape: [1, 1, 1] }, ["a"], "/branchA/conv/Conv");
    const b = g.node("Conv", [x, one()], { kernel_shape: [1, 1, 1] }, ["b"], "/branchB/conv/Conv");
    const top = g.constant(
      [1, 1, N, N, N],
      Array.from({ length: N ** 3 }, (_, i) => (i < N ** 3 / 2 ? 1 : 0)),
    );
    const s = g.node("Add", [a, g.node("Mul", [b, top], {}, ["bm"], "/head/Mask")], {}, ["s"], "/head/Add");
    head(g, s);
    const dir = tmp();
    model = await load(dir, "branches3d.onnx", g);
    kase = await flat(model, dir, "bright", 220);
    donors = [];
    for (const v of [10, 30, 20]) donors.push(await flat(model, dir, `dark${v}`, v));
  });

  const ablations = [
    { ablation: "resample", donorSampling: "exact", idle: "below-tau" },
    { ablation: "resample", donorSampling: "random", idle: "screened-out" },
    { ablation: "mean", idle: "screened-out" },
    { ablation: "zero", idle: "screened-out" },
  ] as const;
  for (const { ablation, idle, ...rest } of ablations) {
    const donorSampling = "donorSampling" in rest ? rest.donorSampling : undefined;
    it(`${ablation}${donorSampling ? ` (${donorSampling} donors)` : ""}: the branch that feeds the RoI has the whole effect, the dead branch exactly 0`, async () => {
      const e = await explainVolumeComponents(model, kase, { roi }, { ablation, donorSampling, donors, batchSize: 4 });
      const byName = Object.fromEntries(e.units.map((u) => [u.name, u]));
      expect(Object.keys(byName)).toEqual(["branchA", "branchB", "head"]);
      expect(byName.branchA.effect).toBeCloseTo(-100, 6);
      expect(byName.branchB.effect).toBe(0);
      expect(byName.branchB.status).toBe(idle);
      expect(byName.head.effect).toBeCloseTo(-100, 6);
      expect(e.baseOutcome).toBeCloseTo(100, 6);
      expect(e.reference).toBe("prediction");
    });
  }

  it("records a volume's provenance (grid, affine, model space, donors) and does not depend on the batch size", async () => {
    const runs = [];
    for (const batchSize of [1, 3])
      runs.push(await explainVolumeComponents(model, kase, { roi }, { donors, donorSampling: "random", samples: 5, batchSize }));
    expect(runs[0].units.map((u) => [u.effect, u.stderr])).toEqual(runs[1].units.map((u) => [u.effect, u.stderr]));
    expect(runs[0].provenance).toMatchObject({
      model: { sha256: model.sha256 },
      volume: { dims: [N, N, N], spacing: [1, 1, 1], affine: AFFINE, modelSpace: { targetSpacing: [1, 1, 1] } },
      intervention: { donors: donors.map((d) => ({ id: d.id, sha256: d.imageSha256 })) },
      settings: { level: "stage", ablation: "resample", donorSampling: "random", samples: 5 },
    });
    expect(runs[0].roi).toBe("box z 5..6, y 2..4, x 2..4 (2x3x3)");
  });

  it("a sliding card on a volume that fits one window: that window is the box, and the effects are the centre card's", async () => {
    const dir = tmp();
    const card = { ...CARD3D, input: { ...CARD3D.input, placement: { kind: "sliding", overlap: 0.5 } } };
    const bytes = readFileSync(model.path);
    const sliding = await VolumeModel.load(writeModel(dir, "sliding.onnx", bytes, card), { threads: 1 });
    const k = await loadVolumeCase(sliding, kase.imagePath);
    expect(k.placement.kind).toBe("sliding");
    const ds = await Promise.all(donors.map((d) => loadVolumeCase(sliding, d.imagePath)));
    const e = await explainVolumeComponents(sliding, k, { roi }, { donors: ds, batchSize: 4 });
    const centre = await explainVolumeComponents(model, kase, { roi }, { donors, batchSize: 4 });
    expect(e.units.map((u) => [u.name, u.effect, u.stderr])).toEqual(centre.units.map((u) => [u.name, u.effect, u.stderr]));
    await sliding.release();
  });

  it("resumes from its checkpoint with identical effects; another RoI reuses nothing", async () => {
    const ck = join(tmp(), ".checkpoint.json");
    const o = { donors, donorSampling: "random" as const, samples: 6, checkpointPath: ck, checkpointEveryMs: 0 };
    const first = await explainVolumeComponents(model, kase, { roi }, o);
    expect(existsSync(ck)).toBe(true);
    const again = await explainVolumeComponents(model, kase, { roi }, o);
    expect(again.units.map((u) => [u.effect, u.stderr])).toEqual(first.units.map((u) => [u.effect, u.stderr]));
    expect(again.notes).toContain(`resumed from checkpoint: ${first.units.reduce((s, u) => s + u.samples, 0)} samples reused`);
    const other = await explainVolumeComponents(model, kase, { roi: { ...roi, z: 6 } }, o);
    expect(other.notes.some((n) => n.startsWith("resumed"))).toBe(false);
  });

  it("another --label of the same label map reuses nothing: the chosen labels are in the checkpoint key", async () => {
    const dir = tmp();
    const image = await writeFlatVolume(dir, "labelled", 220);
    // label 1 on the RoI's first slice (z 5), label 2 on its second (z 6): each is a different reference mask
    const mask = await writeFlatVolume(dir, "labels", (z) => (z === 5 ? 1 : z === 6 ? 2 : 0));
    const ck = join(dir, ".checkpoint.json");
    const o = { donors, donorSampling: "random" as const, samples: 6, checkpointPath: ck, checkpointEveryMs: 0 };
    const one = await loadVolumeCase(model, image, { mask, label: "1" });
    const two = await loadVolumeCase(model, image, { mask, label: "2" });
    expect(two.maskSha256).toBe(one.maskSha256);
    const first = await explainVolumeComponents(model, one, { roi }, o);
    expect(first.reference).toBe("ground-truth");
    const second = await explainVolumeComponents(model, two, { roi }, o);
    expect(second.notes.some((n) => n.startsWith("resumed"))).toBe(false);
    const again = await explainVolumeComponents(model, two, { roi }, o);
    expect(again.notes).toContain(`resumed from checkpoint: ${second.units.reduce((n, u) => n + u.samples, 0)} samples reused`);
  });
});

describe("donor enumeration on a 3D model with known answers", () => {
  // A chain every path passes through: enc = x·W (W grades the RoI's x columns 1, 2, 3, 4), mid =
  // Relu, head. Donors of value v predict the RoI columns whose weight exceeds 0.5·255/v: v = 10 none
  // (Dice 0 against the base prediction), v = 40 one column (Dice 40), v = 80 three (Dice 85.71).
  const roi = { z: 3, y: 2, x: 4, depth: 2, height: 2, width: 4 };
  const dice = [0, 40, ((2 * 3) / 7) * 100];
  let model: VolumeModel, kase: VolumeCase, donors: VolumeCase[], dir: string;
  beforeAll(async () => {
    const g = new GraphBuilder("graded-chain-3d");
    const x = g.input("image", ["N", 1, N, N, N]);
    const w = new Float32Array(N ** 3).fill(1);
    for (let z = roi.z; z < roi.z + roi.depth; z++)
      for (let y = roi.y; y < roi.y + roi.height; y++) for (let c = 0; c < 4; c++) w[at(z, y, roi.x + c)] = c + 1;
    const a = g.node("Mul", [x, g.constant([1, 1, N, N, N], w)], {}, ["a"], "/enc/Mul");
    head(g, g.node("Relu", [a], {}, ["b"], "/mid/Relu"));
    dir = tmp();
    model = await load(dir, "chain3d.onnx", g);
    kase = await flat(model, dir, "bright", 220);
    donors = [];
    for (const v of [10, 40, 80]) donors.push(await flat(model, dir, `d${v}`, v));
  });

  it("every component on every path gets the same exact effect: the mean over donors, with the donor sample's standard error", async () => {
    const e = await explainVolumeComponents(model, kase, { roi }, { donors, donorSampling: "exact", batchSize: 2 });
    expect(e.units.map((u) => u.name)).toEqual(["enc", "mid", "head"]);
    const deltas = dice.map((d) => d - 100);
    const mean = deltas.reduce((s, d) => s + d, 0) / 3;
    const sd = Math.sqrt(deltas.reduce((s, d) => s + (d - mean) ** 2, 0) / 2);
    for (const u of e.units) {
      expect(u.effect, u.name).toBeCloseTo(mean, 4);
      expect(u.stderr, u.name).toBeCloseTo(sd / Math.sqrt(3), 4);
      expect(u.samples).toBe(3);
    }
    expect(new Set(e.units.map((u) => u.effect)).size).toBe(1);
    expect(e.forwardPasses).toBe(1 + 3 + 3 * 3);
  });

  it("redundant paths: replacing one of two copies changes nothing, replacing their join has the whole effect", async () => {
    const g = new GraphBuilder("redundant-3d");
    const x = g.input("image", ["N", 1, N, N, N]);
    const a = g.node("Relu", [x], {}, ["a"], "/pathA/Relu");
    const b = g.node("Relu", [x], {}, ["b"], "/pathB/Relu");
    head(g, g.node("Max", [a, b], {}, ["m"], "/join/Max"));
    const red = await load(dir, "redundant3d.onnx", g);
    const k = await loadVolumeCase(red, kase.imagePath);
    const ds = [await loadVolumeCase(red, donors[0].imagePath), await loadVolumeCase(red, donors[1].imagePath)];
    const e = await explainVolumeComponents(red, k, { roi }, { donors: ds, batchSize: 2 });
    const byName = Object.fromEntries(e.units.map((u) => [u.name, u.effect]));
    expect(Object.keys(byName)).toEqual(["pathA", "pathB", "join", "head"]);
    expect([byName.pathA, byName.pathB]).toEqual([0, 0]);
    for (const n of ["join", "head"]) expect(byName[n], n).toBeCloseTo(-100, 6);
    await red.release();
  });
});

describe("channel and spatial units of [N, C, D, H, W] feature maps with a known answer", () => {
  // copyChannelModel: only channel 2 of feat, and only at the RoI's voxels, decides.
  let model: VolumeModel, kase: VolumeCase, donors: VolumeCase[];
  const roi = { z: 4, y: 0, x: 4, depth: 4, height: 4, width: 4 };
  beforeAll(async () => {
    const dir = tmp();
    model = await VolumeModel.load(writeModel(dir, "copy3d.onnx", copyChannelModel(), CARD3D), { threads: 1 });
    kase = await flat(model, dir, "bright", 200);
    donors = [];
    for (const v of [0, 20, 40]) donors.push(await flat(model, dir, `d${v}`, v));
  });

  it("channel level: the copied channel ranks first with the whole effect", async () => {
    const e = await explainVolumeComponents(model, kase, { roi }, { level: "channel", tensors: ["feat"], donors, batchSize: 4 });
    expect(e.units.map((u) => u.name)).toEqual(["feat[0]", "feat[1]", "feat[2]", "feat[3]"]);
    const ranked = [...e.units].sort((a, b) => Math.abs(b.effect) - Math.abs(a.effect));
    expect(ranked[0].name).toBe("feat[2]");
    expect(ranked[0].effect).toBeCloseTo(-100, 6);
    for (const u of ranked.slice(1)) expect(u.effect).toBe(0);
    expect(e.tensorDims.feat).toEqual([4, N, N, N]);
    expect(e.units[2].selection).toEqual({ tensor: "feat", channels: [2, 3], slices: [0, N], rows: [0, N], cols: [0, N] });
  });

  it("spatial level: cells are boxes of the feature map, and only the box under the RoI has an effect (painted back on the model's box)", async () => {
    const e = await explainVolumeComponents(model, kase, { roi }, { level: "spatial", tensors: ["feat"], cell: 4, ablation: "zero" });
    expect(e.units).toHaveLength(8);
    for (const u of e.units) expect(u.effect, u.name).toBeCloseTo(u.name === "feat@4,0,4" ? -100 : 0, 6);
    const onBox = spatialOnBox(e, "feat", kase.placement.box);
    for (let z = 0; z < N; z++)
      for (let y = 0; y < N; y++)
        for (let x = 0; x < N; x++) {
          const inRoi = z >= 4 && y < 4 && x >= 4;
          expect(onBox[at(z, y, x)]).toBeCloseTo(inRoi ? -100 : 0, 6);
        }
    expect(e.provenance.settings).toMatchObject({ level: "spatial", cell: 4 });
  });

  it("a tensor that is not an [N, C, D, H, W] feature map is refused at the spatial level (its cells would not be boxes)", async () => {
    const g = new GraphBuilder("flat-inside-3d");
    const x = g.input("image", ["N", 1, N, N, N]);
    const f = g.node("Reshape", [x, g.constantInt64([0, N, N * N])], {}, ["rows"], "/enc/Reshape");
    head(g, g.node("Reshape", [g.node("Relu", [f], {}, ["act"], "/mid/Relu"), g.constantInt64([0, 1, N, N, N])], {}, ["back"], "/mid/Reshape"));
    const m = await load(tmp(), "flat3d.onnx", g);
    const k = await loadVolumeCase(m, kase.imagePath);
    await expect(explainVolumeComponents(m, k, { roi }, { level: "spatial", tensors: ["act"], ablation: "zero" })).rejects.toThrow(
      /tensor act has shape \[\d+, 8, 64\]; the spatial level on a 3D model needs an \[N, C, D, H, W\] feature map/,
    );
    await m.release();
  });
});
