import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import ort from "onnxruntime-node";
import { beforeAll, describe, expect, it } from "vitest";
import { type Case, loadCase } from "../src/data/case.js";
import { explainComponents } from "../src/explain/components.js";
import { Model } from "../src/model/model.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import { parseModel } from "../src/onnx/model-file.js";
import { buildSuffix, exposeTensors, listComponents, planCut, type TensorType } from "../src/onnx/surgery.js";
import { copyChannelModel, tmp, writeImage, writeModel } from "./helpers/tiny.js";

const ROOT = join(import.meta.dirname, "..");
const ELEM: Record<string, number> = { float32: 1, int64: 7 };

/** Runs prefix (the exposed model) then suffix and returns both the cut output and the full output. */
async function cutAndCompare(
  bytes: Uint8Array,
  cut: string[],
  input: ort.Tensor,
  inputName: string,
  outputName: string,
  so: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, graphOptimizationLevel: "extended" },
) {
  const proto = parseModel(bytes);
  const plan = planCut(proto, cut, [outputName]);
  const full = await ort.InferenceSession.create(bytes, so);
  const want = (await full.run({ [inputName]: input }))[outputName].data as Float32Array;
  const prefix = await ort.InferenceSession.create(exposeTensors(proto, plan.suffixInputs), so);
  const acts = await prefix.run({ [inputName]: input });
  const types = new Map<string, TensorType>(Object.entries(acts).map(([k, t]) => [k, { elemType: ELEM[t.type], dims: [...t.dims] }]));
  const { bytes: suffixBytes, outputName: out } = buildSuffix(proto, plan, types, outputName);
  const suffix = await ort.InferenceSession.create(suffixBytes, so);
  const feeds: Record<string, ort.Tensor> = {};
  for (const t of plan.suffixInputs) feeds[t] = acts[t] as ort.Tensor;
  const got = (await suffix.run(feeds))[out].data as Float32Array;
  return { plan, want, got };
}

/** x → a = conv1(x) → b = relu(conv2(a)) → y = sigmoid(b + a): cutting at b leaves the skip a crossing. */
function skipModel(): Uint8Array {
  const g = new GraphBuilder("skip");
  const x = g.input("x", ["N", 1, 8, 8]);
  const a = g.node(
    "Conv",
    [
      x,
      g.constant(
        [2, 1, 3, 3],
        Array.from({ length: 18 }, (_, i) => Math.sin(i)),
      ),
      g.constant([2], [0.1, -0.2]),
    ],
    { kernel_shape: [3, 3], pads: [1, 1, 1, 1] },
    ["a"],
    "/enc/conv/Conv",
  );
  const c2 = g.node("Conv", [a, g.constant([2, 2, 1, 1], [0.5, -1, 2, 0.25])], { kernel_shape: [1, 1] }, ["c2"], "/mid/conv/Conv");
  const b = g.node("Relu", [c2], {}, ["b"], "/mid/act/Relu");
  const s = g.node("Add", [b, a], {}, ["s"], "/Add");
  const r = g.node("ReduceMean", [s], { axes: [1], keepdims: 1 }, ["r"], "/head/ReduceMean");
  const y = g.node("Sigmoid", [r], {}, ["y"], "/head/Sigmoid");
  g.output(y, ["N", 1, 8, 8]);
  return g.toBytes(17);
}

describe("graph cutting", () => {
  it("prefix then suffix reproduces a model with a skip connection bit-exactly", async () => {
    const x = new ort.Tensor(
      "float32",
      Float32Array.from({ length: 2 * 64 }, (_, i) => Math.cos(i * 0.37)),
      [2, 1, 8, 8],
    );
    const { plan, want, got } = await cutAndCompare(skipModel(), ["b"], x, "x", "y");
    expect(plan.suffixInputs).toEqual(["b", "a"]); // the skip tensor crosses the cut
    expect(Buffer.from(got.buffer).equals(Buffer.from(want.buffer))).toBe(true);
  });

  it("prefix then suffix reproduces the shipped U-Net (skip connections) bit-exactly", async () => {
    const bytes = readFileSync(join(ROOT, "models", "unet-ph2.onnx"));
    const proto = parseModel(bytes);
    const comps = listComponents(proto, "stage");
    const bottleneck = comps.find((c) => c.name === "downs.3")!;
    const x = new ort.Tensor(
      "float32",
      Float32Array.from({ length: 3 * 256 * 256 }, (_, i) => (i % 251) / 251),
      [1, 3, 256, 256],
    );
    const { plan, want, got } = await cutAndCompare(bytes, bottleneck.outputs, x, "image", "mask");
    expect(plan.suffixInputs.length).toBeGreaterThan(1); // encoder skips cross the cut
    let maxDiff = 0;
    for (let i = 0; i < want.length; i++) maxDiff = Math.max(maxDiff, Math.abs(want[i] - got[i]));
    expect(maxDiff).toBe(0);
  });

  it("groups nodes by module path at stage, block and layer depth", () => {
    const proto = parseModel(skipModel());
    expect(listComponents(proto, "stage").map((c) => c.name)).toEqual(["enc", "mid", "/Add", "head"]);
    expect(listComponents(proto, "block").map((c) => c.name)).toEqual(["enc/conv", "mid/conv", "mid/act", "/Add", "head"]);
  });

  it("lists only computation on the image: no Identity copies of weights, no shape arithmetic", () => {
    // As PyTorch exports shared weights and a reshape to the input's own batch size.
    const g = new GraphBuilder("exported");
    const x = g.input("x", [1, 1, 4, 4]);
    const w = g.node("Identity", [g.constant([1, 1, 1, 1], [2])], {}, ["conv.weight"], "Identity_0");
    const c = g.node("Conv", [x, w], { kernel_shape: [1, 1] }, ["c"], "/enc/Conv");
    const shape = g.node("Shape", [c], {}, ["shape"], "/Shape");
    const n = g.node("Gather", [shape, g.constantInt64([0])], { axis: 0 }, ["n"], "/Gather");
    const target = g.node("Concat", [n, g.constantInt64([16])], { axis: 0 }, ["target"], "/Concat");
    const flat = g.node("Reshape", [c, target], {}, ["flat"], "/Reshape");
    g.output(g.node("Reshape", [g.node("Sigmoid", [flat], {}, ["p"], "/head/Sigmoid"), shape], {}, ["y"], "/head/Reshape"), [1, 1, 4, 4]);
    const comps = listComponents(parseModel(g.toBytes()), "stage");
    expect(comps.map((k) => k.name)).toEqual(["enc", "/Reshape", "head"]);
    expect(comps[0].outputs).toEqual(["c"]);
  });

  it("names valid tensors for an unknown one, and refuses cuts and graphs it cannot handle", () => {
    const proto = parseModel(skipModel());
    expect(() => planCut(proto, ["nope"])).toThrow(/unknown tensor 'nope'.*valid tensors include a, c2, b/);
    const g = new GraphBuilder("dead");
    const x = g.input("x", ["N", 1, 4, 4]);
    const dead = g.node("Relu", [x], {}, ["dead"], "/side/Relu");
    void dead;
    g.output(g.node("Sigmoid", [x], {}, ["y"], "/head/Sigmoid"), ["N", 1, 4, 4]);
    expect(() => planCut(parseModel(g.toBytes()), ["dead"])).toThrow(/does not depend on dead.*does not separate/);
    const cf = new GraphBuilder("cf");
    const xi = cf.input("x", ["N", 1, 4, 4]);
    cf.node("If", [xi], {}, ["z"], "/ctl/If");
    cf.output(cf.node("Sigmoid", [xi], {}, ["y"]), ["N", 1, 4, 4]);
    expect(() => listComponents(parseModel(cf.toBytes()), "stage")).toThrow(/control flow \(If node '\/ctl\/If'\)/);
  });
});

describe("component effects with a known answer", () => {
  // Two parallel branches of the input; branch B is masked to the top half, the RoI is in the
  // bottom half, so only branch A can change the RoI's prediction.
  let model: Model, kase: Case, donors: Case[];
  beforeAll(async () => {
    const g = new GraphBuilder("branches");
    const x = g.input("image", ["N", 1, 16, 16]);
    const a = g.node("Conv", [x, g.constant([1, 1, 1, 1], [1])], { kernel_shape: [1, 1] }, ["a"], "/branchA/conv/Conv");
    const b = g.node("Conv", [x, g.constant([1, 1, 1, 1], [1])], { kernel_shape: [1, 1] }, ["b"], "/branchB/conv/Conv");
    const topHalf = g.constant(
      [1, 1, 16, 16],
      Array.from({ length: 256 }, (_, i) => (i < 128 ? 1 : 0)),
    );
    const bm = g.node("Mul", [b, topHalf], {}, ["bm"], "/head/Mul");
    const s = g.node("Add", [a, bm], {}, ["s"], "/head/Add");
    const l = g.node("Mul", [g.node("Sub", [s, g.constant([1], [0.5])], {}, ["c"], "/head/Sub"), g.constant([1], [20])], {}, ["l"], "/head/Mul_1");
    g.output(g.node("Sigmoid", [l], {}, ["mask"], "/head/Sigmoid"), ["N", 1, 16, 16]);
    const dir = tmp();
    const path = writeModel(dir, "branches.onnx", g.toBytes());
    model = await Model.load(path, { threads: 1 });
    kase = await loadCase(model, await writeImage(dir, "bright.png", () => 220, 16));
    donors = [];
    for (const v of [10, 30, 20]) donors.push(await loadCase(model, await writeImage(dir, `dark${v}.png`, () => v, 16)));
  });

  const ablations = [
    { ablation: "resample", donorSampling: "exact", idle: "below-tau" },
    { ablation: "resample", donorSampling: "random", idle: "screened-out" },
    { ablation: "mean", idle: "screened-out" },
    { ablation: "zero", idle: "screened-out" },
  ] as const;
  for (const { ablation, idle, ...rest } of ablations) {
    const donorSampling = "donorSampling" in rest ? rest.donorSampling : undefined;
    it(`${ablation}${donorSampling ? ` (${donorSampling} donors)` : ""}: the branch that feeds the RoI has the whole effect, the other exactly 0`, async () => {
      const e = await explainComponents(
        model,
        kase,
        { roi: { row: 10, col: 4, height: 4, width: 4 } },
        { ablation, donorSampling, donors, batchSize: 4 },
      );
      const byName = Object.fromEntries(e.units.map((u) => [u.name, u]));
      expect(Object.keys(byName)).toEqual(["branchA", "branchB", "head"]);
      expect(byName.branchA.effect).toBeCloseTo(-100, 6);
      expect(byName.branchB.effect).toBe(0);
      expect(byName.branchB.status).toBe(idle);
      expect(byName.head.effect).toBeCloseTo(-100, 6); // the head produces the output itself
    });
  }

  it("resample defaults to enumerating the donors when that costs no more than the screened draws", async () => {
    const roi = { row: 10, col: 4, height: 4, width: 4 };
    const e = await explainComponents(model, kase, { roi }, { donors, batchSize: 4 });
    expect(e.provenance.settings).toMatchObject({ donorSampling: "exact" });
    expect(e.units.every((u) => u.samples === donors.length)).toBe(true);
    expect(e.forwardPasses).toBe(1 + donors.length + 3 * donors.length);
    const many = await explainComponents(model, kase, { roi }, { donors, batchSize: 4, screen: 1, samples: 1 });
    expect(many.provenance.settings).toMatchObject({ donorSampling: "random" });
  });

  it("does not depend on the batch size", async () => {
    const runs = [];
    for (const batchSize of [1, 3])
      runs.push(
        await explainComponents(
          model,
          kase,
          { roi: { row: 10, col: 4, height: 4, width: 4 } },
          { donors, donorSampling: "random", batchSize, samples: 7 },
        ),
      );
    expect(runs[0].units.map((u) => u.effect)).toEqual(runs[1].units.map((u) => u.effect));
  });

  it("resumes from its checkpoint with identical effects, and a run with more samples reuses the finished ones", async () => {
    const roi = { row: 10, col: 4, height: 4, width: 4 };
    const ck = join(tmp(), ".checkpoint.json");
    const fresh = await explainComponents(model, kase, { roi }, { donors, donorSampling: "random", samples: 7 });
    const first = await explainComponents(model, kase, { roi }, { donors, donorSampling: "random", samples: 7, checkpointPath: ck });
    expect(existsSync(ck)).toBe(true);
    const again = await explainComponents(model, kase, { roi }, { donors, donorSampling: "random", samples: 7, checkpointPath: ck });
    for (const r of [first, again]) expect(r.units.map((u) => [u.effect, u.stderr])).toEqual(fresh.units.map((u) => [u.effect, u.stderr]));
    expect(again.forwardPasses).toBe(fresh.forwardPasses);
    const reused = first.units.reduce((s, u) => s + u.samples, 0);
    expect(again.notes).toContain(`resumed from checkpoint: ${reused} samples reused`);
    const more = await explainComponents(model, kase, { roi }, { donors, donorSampling: "random", samples: 12, checkpointPath: ck });
    expect(more.notes).toContain(`resumed from checkpoint: ${reused} samples reused`);
    expect(more.units.map((u) => u.effect)).toEqual(
      (await explainComponents(model, kase, { roi }, { donors, donorSampling: "random", samples: 12 })).units.map((u) => u.effect),
    );
    // another seed draws other donors for each sample: nothing is reused
    expect(
      (await explainComponents(model, kase, { roi }, { donors, donorSampling: "random", samples: 7, seed: 1, checkpointPath: ck })).notes.some((n) =>
        n.startsWith("resumed"),
      ),
    ).toBe(false);
  });

  it("an interrupted run keeps the batches it finished (not only whole chunks of 512), and the rerun resumes to the same effects", async () => {
    const roi = { row: 10, col: 4, height: 4, width: 4 };
    const ck = join(tmp(), ".checkpoint.json");
    const fresh = await explainComponents(model, kase, { roi }, { donors, donorSampling: "random", samples: 7, batchSize: 2 });
    // 3 units x 3 screening draws in batches of 2 per unit (2 + 1): stopped at the last batch, 8 samples are done
    const stop = (e: { stage: string; done: number; total: number }) => {
      if (e.stage === "screening" && e.done === e.total) throw new Error("interrupted");
    };
    await expect(
      explainComponents(
        model,
        kase,
        { roi },
        { donors, donorSampling: "random", samples: 7, batchSize: 2, checkpointPath: ck, checkpointEveryMs: 0, onProgress: stop },
      ),
    ).rejects.toThrow("interrupted");
    expect(existsSync(ck)).toBe(true);
    const again = await explainComponents(model, kase, { roi }, { donors, donorSampling: "random", samples: 7, batchSize: 2, checkpointPath: ck });
    expect(again.notes).toContain("resumed from checkpoint: 8 samples reused");
    expect(again.units.map((u) => [u.effect, u.stderr])).toEqual(fresh.units.map((u) => [u.effect, u.stderr]));
  });
});

describe("channel and spatial units with a known answer", () => {
  // feat = 4 channels of the input, channel 2 an exact copy; the head reads channel 2 with weight 1
  // and the others with 0.01, per pixel. Only channel 2, and only at the RoI's pixels, decides.
  let model: Model, kase: Case, donors: Case[];
  const ROI = { row: 8, col: 4, height: 4, width: 4 };
  beforeAll(async () => {
    const dir = tmp();
    model = await Model.load(writeModel(dir, "copy.onnx", copyChannelModel()), { threads: 1 });
    kase = await loadCase(model, await writeImage(dir, "bright.png", () => 200, 16));
    donors = [];
    for (const v of [0, 20, 40]) donors.push(await loadCase(model, await writeImage(dir, `d${v}.png`, () => v, 16)));
  });

  it("channel level: the copied channel ranks first with the whole effect", async () => {
    const e = await explainComponents(model, kase, { roi: ROI }, { level: "channel", tensors: ["feat"], donors, batchSize: 4 });
    expect(e.units.map((u) => u.name)).toEqual(["feat[0]", "feat[1]", "feat[2]", "feat[3]"]);
    const ranked = [...e.units].sort((a, b) => Math.abs(b.effect) - Math.abs(a.effect));
    expect(ranked[0].name).toBe("feat[2]");
    expect(ranked[0].effect).toBeCloseTo(-100, 6);
    for (const u of ranked.slice(1)) expect(u.effect).toBe(0);
    expect(e.activations?.dims).toEqual([4, 16, 16]);
  });

  it("spatial level: only the feature-map cell under the RoI has an effect", async () => {
    const e = await explainComponents(model, kase, { roi: ROI }, { level: "spatial", tensors: ["feat"], cell: 4, donors, ablation: "zero" });
    expect(e.units).toHaveLength(16);
    for (const u of e.units) {
      const atRoi = u.selection!.rows[0] === 8 && u.selection!.cols[0] === 4;
      expect(u.effect, u.name).toBeCloseTo(atRoi ? -100 : 0, 6);
    }
  });

  it("a channels-last activation is refused at the spatial level (its cells would cut across channels)", async () => {
    const g = new GraphBuilder("nhwc-inside");
    const x = g.input("image", ["N", 1, 16, 16]);
    const f = g.node("Conv", [x, g.constant([4, 1, 1, 1], [0.3, 0.2, 1, 0.1])], { kernel_shape: [1, 1] }, ["feat"], "/enc/conv/Conv");
    const t = g.node("Transpose", [f], { perm: [0, 2, 3, 1] }, ["feat_nhwc"], "/enc/t/Transpose");
    const back = g.node("Transpose", [g.node("Relu", [t], {}, ["act_nhwc"], "/mid/Relu")], { perm: [0, 3, 1, 2] }, ["act"], "/mid/t/Transpose");
    const s = g.node("Conv", [back, g.constant([1, 4, 1, 1], [0.01, 0.01, 1, 0.01])], { kernel_shape: [1, 1] }, ["s"], "/head/conv/Conv");
    g.output(g.node("Sigmoid", [g.node("Mul", [g.node("Sub", [s, g.constant([1], [0.5])]), g.constant([1], [20])])], {}, ["mask"], "/head/Sigmoid"), [
      "N",
      1,
      16,
      16,
    ]);
    const m = await Model.load(writeModel(tmp(), "nhwc-inside.onnx", g.toBytes()), { threads: 1 });
    const k = await loadCase(m, kase.imagePath!);
    await expect(
      explainComponents(m, k, { roi: ROI }, { level: "spatial", tensors: ["act_nhwc"], cell: 4, donors, ablation: "zero" }),
    ).rejects.toThrow(/tensor act_nhwc is \[\d+, 16, 16, 4\], which reads as channels-last/);
    const ok = await explainComponents(m, k, { roi: ROI }, { level: "spatial", tensors: ["act"], cell: 4, donors, ablation: "zero" });
    expect(ok.units).toHaveLength(16);
    await m.release();
  });

  it("the channel level needs exactly one tensor", async () => {
    await expect(explainComponents(model, kase, { roi: ROI }, { level: "channel", donors })).rejects.toThrow(/needs --tensor/);
    await expect(explainComponents(model, kase, { roi: ROI }, { level: "channel", tensors: ["feat", "s"], donors })).rejects.toThrow(
      /exactly one --tensor/,
    );
  });
});

describe("donor enumeration with known answers", () => {
  // A chain in which every path passes through each component: enc = x·W (W grades the RoI's
  // columns 1, 2, 3, 4), mid = Relu, head = Sigmoid(20·(mid − 0.5)). Replacing any one of them by a
  // donor's activation gives that donor's own prediction, so all three have the same true effect.
  // Donors of gray value v predict the RoI columns whose weight exceeds 0.5·255/v: v = 10 none,
  // v = 40 one column (Dice 40 against the base prediction's 16 pixels), v = 80 three (Dice 85.71).
  const ROI = { row: 8, col: 4, height: 4, width: 4 };
  const dice = [0, 40, ((2 * 12) / 28) * 100];
  let model: Model, kase: Case, donors: Case[];
  beforeAll(async () => {
    const g = new GraphBuilder("graded-chain");
    const x = g.input("image", ["N", 1, 16, 16]);
    const w = Array.from({ length: 256 }, (_, i) =>
      Math.floor(i / 16) >= 8 && Math.floor(i / 16) < 12 && i % 16 >= 4 && i % 16 < 8 ? (i % 16) - 3 : 1,
    );
    const a = g.node("Mul", [x, g.constant([1, 1, 16, 16], w)], {}, ["a"], "/enc/Mul");
    const b = g.node("Relu", [a], {}, ["b"], "/mid/Relu");
    const l = g.node("Mul", [g.node("Sub", [b, g.constant([1], [0.5])], {}, ["c"], "/head/Sub"), g.constant([1], [20])], {}, ["l"], "/head/Mul");
    g.output(g.node("Sigmoid", [l], {}, ["mask"], "/head/Sigmoid"), ["N", 1, 16, 16]);
    const dir = tmp();
    model = await Model.load(writeModel(dir, "chain.onnx", g.toBytes()), { threads: 1 });
    kase = await loadCase(model, await writeImage(dir, "bright.png", () => 220, 16));
    donors = [];
    for (const v of [10, 40, 80]) donors.push(await loadCase(model, await writeImage(dir, `d${v}.png`, () => v, 16)));
  });

  it("every single-path component gets the same exact effect: the mean over donors, with the donor sample's standard error", async () => {
    const e = await explainComponents(model, kase, { roi: ROI }, { donors, donorSampling: "exact", batchSize: 2 });
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
  });

  it("random draws with replacement estimate the same expectation but differ between components", async () => {
    const e = await explainComponents(model, kase, { roi: ROI }, { donors, donorSampling: "random", batchSize: 2, samples: 20 });
    expect(new Set(e.units.map((u) => u.effect)).size).toBeGreaterThan(1);
    for (const u of e.units) expect(Math.abs(u.effect - -58.095)).toBeLessThan(4 * u.stderr);
  });

  it("redundant paths: replacing one of two copies changes nothing, replacing their join has the whole effect", async () => {
    // y = Sigmoid(20·(max(a, b) − 0.5)) with a and b both copies of the input: a dark donor in one
    // branch leaves the other branch's bright value in the max.
    const g = new GraphBuilder("redundant");
    const x = g.input("image", ["N", 1, 16, 16]);
    const a = g.node("Relu", [x], {}, ["a"], "/pathA/Relu");
    const b = g.node("Relu", [x], {}, ["b"], "/pathB/Relu");
    const m = g.node("Max", [a, b], {}, ["m"], "/join/Max");
    const l = g.node("Mul", [g.node("Sub", [m, g.constant([1], [0.5])], {}, ["c"], "/head/Sub"), g.constant([1], [20])], {}, ["l"], "/head/Mul");
    g.output(g.node("Sigmoid", [l], {}, ["mask"], "/head/Sigmoid"), ["N", 1, 16, 16]);
    const dir = tmp();
    const red = await Model.load(writeModel(dir, "redundant.onnx", g.toBytes()), { threads: 1 });
    const k = await loadCase(red, kase.imagePath!);
    const ds = [];
    for (const v of [10, 40]) ds.push(await loadCase(red, await writeImage(dir, `r${v}.png`, () => v, 16)));
    const e = await explainComponents(red, k, { roi: ROI }, { donors: ds, batchSize: 2 });
    const byName = Object.fromEntries(e.units.map((u) => [u.name, u.effect]));
    expect(Object.keys(byName)).toEqual(["pathA", "pathB", "join", "head"]);
    expect([byName.pathA, byName.pathB]).toEqual([0, 0]);
    for (const n of ["join", "head"]) expect(byName[n], n).toBeCloseTo(-100, 6);
    await red.release();
  });
});
