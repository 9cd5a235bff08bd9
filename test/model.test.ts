import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync, renameSync, rmSync, symlinkSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { ModelProtoSchema, StringStringEntryProtoSchema, TensorProto_DataLocation, TensorProto_DataType } from "onnx-buf";
import { beforeAll, describe, expect, it } from "vitest";
import { loadCase } from "../src/data/case.js";
import { explainPdcr, explainZero } from "../src/explain/pdcr.js";
import { explainSaliency } from "../src/explain/saliency.js";
import { Model } from "../src/model/model.js";
import { Runner } from "../src/model/runner.js";
import { bilinearMatrix, downscaleFactor } from "../src/onnx/adapt.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import { bottleneck, featureMaps } from "../src/onnx/feature-maps.js";
import { listComponents } from "../src/onnx/surgery.js";
import { checkBaseOutput } from "../src/target/target.js";
import { flatBank, regionMeanModel, tmp, writeImage, writeModel } from "./helpers/tiny.js";

let dir: string;
beforeAll(() => {
  dir = tmp();
});

/** A logits model with a 2-class output: class 1 logit = x, class 0 logit = -x (per pixel, channel 0). */
function twoClassLogits(): Uint8Array {
  const g = new GraphBuilder("two-class");
  const x = g.input("input", ["batch", 1, 16, 16]);
  const out = g.node("Conv", [x, g.constant([2, 1, 1, 1], [-10, 10]), g.constant([2], [5, -5])], { kernel_shape: [1, 1] }, ["logits"]);
  g.output(out, ["batch", 2, 16, 16]);
  return g.toBytes();
}

describe("model card", () => {
  it("infers what the graph says and lists every assumption", async () => {
    const m = await Model.load(writeModel(dir, "two.onnx", twoClassLogits()));
    expect(m.resolved.source).toBe("inferred");
    expect(m.card.input).toMatchObject({ height: 16, width: 16, channels: "gray", scale: 255 });
    expect(m.card.output).toMatchObject({ kind: "logits", channel: 1, threshold: 0.5 });
    expect(m.resolved.assumptions.join(" ")).toMatch(/normalisation/);
    expect(m.resolved.assumptions.join(" ")).toMatch(/read as logits/);
    await m.release();
  });

  it("a card that leaves out output.channel of a 2-class output says that channel 0 (the background) is explained", async () => {
    const p = writeModel(dir, "two-card.onnx", twoClassLogits(), { input: { height: 16, width: 16, channels: "gray" }, output: { kind: "logits" } });
    const m = await Model.load(p);
    expect(m.card.output.channel).toBe(0); // a card's default is kept, and said
    expect(m.card.input).toMatchObject({ mean: [0], std: [1] }); // a grey card needs no mean/std (defaults fit any channel count)
    expect(m.resolved.assumptions.join(" ")).toMatch(
      /the card gives no output\.channel: channel 0 of the 2 channels of output 'logits' is explained/,
    );
    await m.release();
    const stated = await Model.load(
      writeModel(dir, "two-card1.onnx", twoClassLogits(), {
        input: { height: 16, width: 16, channels: "gray" },
        output: { kind: "logits", channel: 1 },
      }),
    );
    expect(stated.resolved.assumptions.join(" ")).not.toMatch(/output\.channel/);
    await stated.release();
    const flagged = await Model.load(p, { overrides: { channel: 1 } });
    expect(flagged.resolved.assumptions.join(" ")).not.toMatch(/output\.channel/);
    await flagged.release();
  });

  it("a colour card without mean/std keeps the stored defaults; equal values fit another channel count", async () => {
    const p = writeModel(dir, "rgb-nomean.onnx", regionMeanModel([], 0), {
      input: { height: 32, width: 32, channels: "rgb" },
      output: { kind: "probabilities" },
    });
    expect(Model.readCard(p).card.input).toMatchObject({ mean: [0, 0, 0], std: [1, 1, 1] }); // evaluate's cell keys hold the card
    const q = writeModel(dir, "gray-mean3.onnx", twoClassLogits(), {
      input: { height: 16, width: 16, channels: "gray", mean: [0.5, 0.5, 0.5], std: [0.2, 0.2, 0.2] },
      output: { kind: "logits", channel: 1 },
    });
    expect(Model.readCard(q).card.input).toMatchObject({ mean: [0.5], std: [0.2] }); // equal values: one for the grey channel
    const r = writeModel(dir, "gray-mean-mixed.onnx", regionMeanModel([], 0), {
      input: { height: 32, width: 32, channels: "rgb", mean: [0.1, 0.2] },
      output: { kind: "probabilities" },
    });
    expect(() => Model.readCard(r)).toThrow(/model card mean has 2 values but the input has 3 channel\(s\)/);
  });

  it("reads a sidecar and lets flags override it", async () => {
    const p = writeModel(dir, "side.onnx", regionMeanModel([], 0), {
      input: { height: 32, width: 32, channels: "rgb", scale: 1, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25], resize: "nearest" },
      output: { kind: "probabilities", channel: 0, threshold: 0.3 },
    });
    const m = await Model.load(p, { overrides: { threshold: 0.7 } });
    expect(m.resolved.source).toBe("sidecar");
    expect(m.resolved.assumptions).toEqual([]);
    expect(m.card.input.resize).toBe("nearest");
    expect(m.card.output.threshold).toBe(0.7);
    // input = (pixel/scale - mean)/std
    const [a, b] = m.affine(0);
    expect(10 * a + b).toBeCloseTo((10 - 0.5) / 0.25, 6);
    await m.release();
  });

  it("rejects a sidecar that is not a model card, naming the field", async () => {
    const p = writeModel(dir, "badcard.onnx", regionMeanModel([], 0));
    writeFileSync(`${p}.json`, JSON.stringify({ input: { height: "big" } }));
    await expect(Model.load(p)).rejects.toThrow(/model card .*input\.(height|width|channels)/);
  });

  it("softmax logits: class 1 probability decides the prediction", async () => {
    const p = writeModel(dir, "two2.onnx", twoClassLogits());
    const img = await writeImage(dir, "g.png", (y) => (y < 8 ? 200 : 20), 16);
    const m = await Model.load(p, { threads: 1 });
    const kase = await loadCase(m, img);
    // RoI straddles the bright/dark boundary; the prediction (reference) is its bright half.
    const a = await explainZero(m, kase, { roi: { row: 4, col: 4, height: 8, width: 8 } }, { blockSize: 4 });
    expect(a.baseOutcome).toBeCloseTo(100, 6);
    // A per-pixel model: nothing outside the RoI can change the RoI's prediction.
    expect(a.units).toHaveLength(16 - 4);
    expect(a.units.every((u) => u.effect === 0)).toBe(true);
    await m.release();
  });
});

describe("runner", () => {
  it("runs a model exported with a fixed batch of 1, one input at a time, with a note", async () => {
    const p = writeModel(dir, "fixed.onnx", regionMeanModel([{ row: 0, col: 0, height: 8, width: 8, weight: 10 }], -5, { batch: 1 }));
    const m = await Model.load(p, { threads: 1 });
    const r = new Runner(m, { batchSize: 8 });
    expect(r.batchSize).toBe(1);
    expect(r.notes[0]).toMatch(/fixed at 1/);
    const vals = [0, 0.25, 1];
    const scores = await r.evaluate(
      vals,
      (v, dst) => dst.fill(v),
      (d) => d[0],
    );
    expect(scores[0]).toBeCloseTo(1 / (1 + Math.exp(5)), 5);
    expect(scores[2]).toBeCloseTo(1 / (1 + Math.exp(-5)), 5);
    expect(r.forwardPasses).toBe(3);
    await m.release();
  });

  it("pads the tail of the last batch and ignores the padding", async () => {
    const p = writeModel(dir, "dyn.onnx", regionMeanModel([{ row: 0, col: 0, height: 8, width: 8, weight: 10 }], -5));
    const m = await Model.load(p, { threads: 1 });
    const r = new Runner(m, { batchSize: 4 });
    const vals = [0, 0.1, 0.2, 0.3, 0.4, 0.5];
    const scores = await r.evaluate(
      vals,
      (v, dst) => dst.fill(v),
      (d, slot) => d[slot * 32 * 32],
    );
    vals.forEach((v, i) => expect(scores[i]).toBeCloseTo(1 / (1 + Math.exp(-(10 * v - 5))), 5));
    expect(r.batches).toBe(2);
    expect(r.forwardPasses).toBe(6);
    await m.release();
  });
});

describe("unusual but valid exports, and invalid ones", () => {
  it("dynamic H/W input with an [N, H, W] output: size assumed, then given by flags", async () => {
    const g = new GraphBuilder("dyn-hw");
    const x = g.input("x", ["N", 3, "H", "W"]);
    const conv = g.node("Conv", [x, g.constant([1, 3, 1, 1], [1, 0, 0])], { kernel_shape: [1, 1] });
    const sq = g.node("Squeeze", [conv, g.constantInt64([1])]);
    const out = g.node("Sigmoid", [sq], {}, ["y"]);
    g.output(out, ["N", "H", "W"]);
    const p = writeModel(dir, "dynhw.onnx", g.toBytes());
    const assumed = await Model.load(p);
    expect(assumed.height).toBe(256);
    expect(assumed.resolved.assumptions.join(" ")).toMatch(/dynamic.*assumed 256x256/);
    await assumed.release();
    // The card alone (what a patch bank needs) says the same, by setting, without a session.
    const card = Model.readCard(p);
    expect([card.card.input.height, card.card.input.width]).toEqual([256, 256]);
    expect(card.assumed.size).toMatch(/dynamic.*assumed 256x256/);
    expect(card.assumed.resize).toBe("resize filter not stated: assumed bilinear");
    expect(Model.readCard(p, { overrides: { height: 24, width: 40, resize: "nearest" } }).assumed).toEqual({});
    expect(() => Model.readCard(p, { overrides: { channels: "gray" } })).toThrow(/model input channels is 3 in the graph/);
    // one axis fixed: the note names the size used, not 256x256
    const half = new GraphBuilder("dyn-w");
    half.output(half.node("Sigmoid", [half.input("x", ["N", 1, 128, "W"])], {}, ["y"]), ["N", 1, 128, "W"]);
    const fixedH = Model.readCard(writeModel(dir, "dynw.onnx", half.toBytes()));
    expect([fixedH.card.input.height, fixedH.card.input.width]).toEqual([128, 256]);
    expect(fixedH.assumed.size).toMatch(/^input width is dynamic in the graph; assumed 128x256 /);
    const m = await Model.load(p, { overrides: { height: 24, width: 40 }, threads: 1 });
    expect([m.height, m.width]).toEqual([24, 40]);
    expect(m.resolved.assumptions.join(" ")).not.toMatch(/assumed 256x256/);
    const r = new Runner(m, { batchSize: 2 });
    const s = await r.evaluate(
      [1],
      (_, dst) => dst.fill(0),
      (d) => d[0],
    );
    expect(s[0]).toBeCloseTo(0.5, 6);
    expect(m.outputLayout).toEqual({ channels: 1, height: 24, width: 40 });
    await m.release();
  });

  it("an output that is a Sigmoid followed by Squeeze is read as probabilities, not as logits", async () => {
    const g = new GraphBuilder("sig-squeeze");
    const x = g.input("x", ["N", 1, 8, 8]);
    const conv = g.node("Conv", [x, g.constant([1, 1, 1, 1], [1])], { kernel_shape: [1, 1] });
    const sig = g.node("Sigmoid", [conv]);
    const out = g.node("Squeeze", [g.node("Identity", [sig]), g.constantInt64([1])], {}, ["y"]);
    g.output(out, ["N", 8, 8]);
    const m = await Model.load(writeModel(dir, "sigsq.onnx", g.toBytes()), { threads: 1 });
    expect(m.card.output.kind).toBe("probabilities");
    expect(m.resolved.assumptions.join(" ")).toMatch(/ends in Sigmoid \(then Identity, Squeeze\): read as probabilities/);
    await m.release();
  });

  it("an output whose channel count the graph does not declare: computed from the shapes (2 classes → class 1)", async () => {
    const g = new GraphBuilder("undeclared-channels");
    const x = g.input("x", ["N", 1, 8, 8]);
    const conv = g.node("Conv", [x, g.constant([2, 1, 1, 1], [-1, 1])], { kernel_shape: [1, 1], strides: [2, 2] });
    const out = g.node("Resize", [conv, "", g.constant([4], [1, 1, 2, 2])], { mode: "linear" }, ["y"]);
    g.output(out, ["N", "c", "h", "w"]);
    const m = await Model.load(writeModel(dir, "undeclared.onnx", g.toBytes()), { threads: 1 });
    expect(m.card.output).toMatchObject({ kind: "logits", channel: 1 });
    expect(m.resolved.assumptions.join(" ")).toMatch(/2 channel\(s\), computed from the graph's shapes/);
    await m.release();
  });

  it("an output larger than the input is refused at load, with the reason", async () => {
    const g = new GraphBuilder("up");
    const x = g.input("x", ["N", 3, 16, 16]);
    const out = g.node("Resize", [x, "", g.constant([4], [1, 1, 2, 2])], { mode: "nearest" }, ["y"]);
    g.output(out, ["N", 3, 32, 32]);
    await expect(Model.load(writeModel(dir, "up.onnx", g.toBytes()), { threads: 1 })).rejects.toThrow(/output is 32x32 but its input is 16x16/);
  });

  it("the output layout is known right after load, before any run", async () => {
    const g = new GraphBuilder("two-class");
    const x = g.input("x", ["N", 3, 16, 16]);
    g.output(g.node("Conv", [x, g.constant([2, 3, 1, 1], new Array(6).fill(0.1))], {}, ["y"]), ["N", 2, 16, 16]);
    const m = await Model.load(writeModel(dir, "two.onnx", g.toBytes()), { threads: 1 });
    expect(m.outputLayout).toEqual({ channels: 2, height: 16, width: 16 });
    await m.release();
  });

  it("a card of another schema version is refused with the one it must be", async () => {
    const p = writeModel(dir, "schema9.onnx", regionMeanModel([], 0), {
      schema: "foo/9",
      input: { height: 32, width: 32, channels: "rgb" },
      output: { kind: "probabilities" },
    });
    await expect(Model.load(p)).rejects.toThrow(/schema: schema must be "segcause\.modelcard\/1"/);
  });

  it("a card that reads a Sigmoid output as logits is refused (it would apply the sigmoid twice)", async () => {
    const p = writeModel(dir, "sig-as-logits.onnx", regionMeanModel([], 0));
    await expect(Model.load(p, { overrides: { outputKind: "logits" } })).rejects.toThrow(
      /reads output 'mask' as logits, but the graph produces it with Sigmoid/,
    );
  });

  it("raw scores read as probabilities, and NaN or Inf anywhere in the output, are refused before any explanation", async () => {
    const m = await Model.load(writeModel(dir, "scores.onnx", twoClassLogits()), {
      threads: 1,
      overrides: { outputKind: "probabilities", channel: 1 },
    });
    const kase = await loadCase(m, await writeImage(dir, "ramp16.png", (_y, x) => 16 * x, 16));
    await expect(explainZero(m, kase, { roi: { row: 4, col: 4, height: 8, width: 8 } }, { blockSize: 4 })).rejects.toThrow(
      /reads the output as probabilities, but its values range from -5\.000 to 5\.000, outside \[0, 1\]/,
    );
    await m.release();
    const ok = await Model.load(writeModel(dir, "two-ok.onnx", twoClassLogits()), { threads: 1 });
    const out = new Float32Array(2 * 16 * 16).fill(3);
    expect(() => checkBaseOutput(ok, out)).not.toThrow();
    out[7] = NaN;
    out[9] = Infinity;
    expect(() => checkBaseOutput(ok, out)).toThrow(/NaN or Inf at 2 of 512 output values/);
    await ok.release();
  });

  it("a model with two inputs is refused", async () => {
    const g = new GraphBuilder("two-in");
    const a = g.input("a", ["N", 3, 8, 8]);
    const b = g.input("b", ["N", 3, 8, 8]);
    g.output(g.node("Add", [a, b], {}, ["y"]), ["N", 3, 8, 8]);
    await expect(Model.load(writeModel(dir, "twoin.onnx", g.toBytes()))).rejects.toThrow(/2 inputs .*exactly one image input/);
  });

  it("several outputs: the explained one is named, and a card naming a missing one is refused (it fell back to the first)", async () => {
    const g = new GraphBuilder("two-out");
    const x = g.input("x", ["N", 3, 8, 8]);
    g.output(g.node("Sigmoid", [g.node("ReduceMean", [x], { axes: [1], keepdims: 1 })], {}, ["aux"]), ["N", 1, 8, 8]);
    g.output(g.node("Sigmoid", [g.node("ReduceMax", [x], { axes: [1], keepdims: 1 })], {}, ["main"]), ["N", 1, 8, 8]);
    const p = writeModel(dir, "twoout.onnx", g.toBytes());
    const m = await Model.load(p, { threads: 1 });
    expect(m.outputName).toBe("aux");
    expect(m.resolved.assumptions.join("\n")).toContain("the model has 2 outputs (aux, main); 'aux' is the one explained");
    await m.release();
    writeFileSync(`${p}.json`, JSON.stringify({ input: { height: 8, width: 8, channels: "rgb" }, output: { name: "main", kind: "probabilities" } }));
    const n = await Model.load(p, { threads: 1 });
    expect(n.outputName).toBe("main");
    expect(n.resolved.assumptions).toEqual([]);
    await n.release();
    writeFileSync(`${p}.json`, JSON.stringify({ input: { height: 8, width: 8, channels: "rgb" }, output: { name: "mian", kind: "probabilities" } }));
    await expect(Model.load(p)).rejects.toThrow(/the model card names output 'mian', but the graph's outputs are 'aux', 'main'/);
  });

  it("an input that is not float32 is refused at load, naming its type and what segcause feeds", async () => {
    const g = new GraphBuilder("uint8-in");
    const x = g.input("x", ["N", 3, 8, 8], TensorProto_DataType.UINT8);
    g.output(g.node("Cast", [x], { to: TensorProto_DataType.FLOAT }, ["y"]), ["N", 3, 8, 8]);
    await expect(Model.load(writeModel(dir, "u8.onnx", g.toBytes()))).rejects.toThrow(/model input 'x' is UINT8, but segcause feeds float32 images$/);
  });
});

describe("workers in worker threads", () => {
  const ROOT = join(import.meta.dirname, "..");

  /** PdCR on `path` with 1 worker and with 2 (each 1 thread): the attributions must be bit-identical. */
  async function both(
    path: string,
    image: string,
    roi: { row: number; col: number; height: number; width: number },
    opts: Parameters<typeof explainPdcr>[3],
  ) {
    const out = [];
    for (const workers of [1, 2]) {
      const m = await Model.load(path, { threads: 1, workers });
      try {
        expect(m.workers).toBe(workers);
        out.push(await explainPdcr(m, await loadCase(m, image), { roi, outcome: "mean-prob" }, opts));
      } finally {
        await m.release();
      }
    }
    const [a, b] = out;
    expect(b.forwardPasses).toBe(a.forwardPasses);
    expect(b.baseOutcome).toBe(a.baseOutcome);
    expect(b.units.map((u) => [u.effect, u.status])).toEqual(a.units.map((u) => [u.effect, u.status]));
    expect(Buffer.from(b.map.buffer).equals(Buffer.from(a.map.buffer))).toBe(true);
    return a;
  }

  it("workers=2 gives bit-identical maps to workers=1 on a tiny model (fast schedule)", async () => {
    const p = writeModel(dir, "smooth-w.onnx", regionMeanModel([{ row: 0, col: 16, height: 8, width: 8, weight: 3 }], -1.5));
    const img = await writeImage(dir, "w.png", (y, x) => (y * 7 + x * 3) % 256);
    const a = await both(p, img, { row: 24, col: 0, height: 8, width: 8 }, { bank: flatBank([20, 90, 160, 240]), batchSize: 4 });
    expect(a.units.some((u) => u.effect !== 0)).toBe(true);
  });

  it("workers=2 gives bit-identical maps to workers=1 on models/unet-hc18.onnx", async () => {
    const a = await both(
      join(ROOT, "models", "unet-hc18.onnx"),
      join(ROOT, "samples", "lesion.png"),
      { row: 48, col: 48, height: 32, width: 32 },
      {
        bank: flatBank([0, 128, 255], 32),
        schedule: "paper",
        blockSize: 32,
        screen: 2,
        samples: 3,
        batchSize: 4,
      },
    );
    expect(a.forwardPasses).toBeGreaterThan(16);
  });

  it("an ORT error in a worker thread is the same one-line error as in-thread; release() ends the workers", async () => {
    const file = writeModel(dir, "fixed1.onnx", regionMeanModel([], 0, { batch: 1 }));
    const local = await Model.load(file, { threads: 1, workers: 1 });
    const threaded = await Model.load(file, { threads: 1, workers: 2 });
    expect(threaded.threaded).toBe(true);
    const [mine, shared] = [local, threaded].map((m) => m.batchBuffer(2 * m.inputSize).fill(0.5));
    expect(shared.buffer).toBeInstanceOf(SharedArrayBuffer);
    const errors = await Promise.all(
      [local.infer(mine, 2, 0), threaded.infer(shared, 2, 0), threaded.infer(shared, 2, 1)].map((p) =>
        p.then(
          () => "ran",
          (e: Error) => `${e.name}: ${e.message}`,
        ),
      ),
    );
    expect(errors[0]).toMatch(/^SegcauseError: ONNX Runtime failed to run .*fixed1\.onnx: [^\n]+$/);
    expect(errors[1]).toBe(errors[0]);
    expect(errors[2]).toBe(errors[0]);
    expect(Array.from(await threaded.infer(shared, 1, 1))).toEqual(Array.from(await local.infer(mine, 1, 0)));
    await Promise.all([local.release(), threaded.release()]);
    await expect(threaded.infer(shared, 1, 0)).rejects.toThrow(/ONNX Runtime failed to run .*worker thread exited/);
  });

  it("a process that never releases a workers=2 model still exits (built dist/)", () => {
    const script = `import { Model } from ${JSON.stringify(join(ROOT, "dist", "model", "model.js"))};
      const m = await Model.load(${JSON.stringify(join(ROOT, "models", "unet-hc18.onnx"))}, { threads: 1, workers: 2 });
      await m.infer(m.batchBuffer(m.inputSize), 1, 1);
      console.log("done");`;
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", timeout: 60_000 });
    expect(r.stderr).toBe("");
    expect(r.stdout.trim()).toBe("done");
    expect(r.status).toBe(0);
  });
});

describe("layout adapters: channels-last and low-resolution exports run as NCHW at the input size", () => {
  const W3 = [1, -1, 0.5];

  /** A Keras-style export: input [N, 16, 16, 3], output sigmoid([N, 16, 16, 1]) of a 1x1 convolution. */
  function nhwcModel(): Uint8Array {
    const g = new GraphBuilder("nhwc");
    const x = g.input("x", ["N", 16, 16, 3]);
    const t = g.node("Transpose", [x], { perm: [0, 3, 1, 2] }, undefined, "/net/in/Transpose");
    const c = g.node("Conv", [t, g.constant([1, 3, 1, 1], W3), g.constant([1], [0.1])], { kernel_shape: [1, 1] }, undefined, "/net/conv/Conv");
    const back = g.node("Transpose", [c], { perm: [0, 2, 3, 1] }, undefined, "/net/out/Transpose");
    g.output(g.node("Sigmoid", [back], {}, ["y"], "/net/out/Sigmoid"), ["N", 16, 16, 1]);
    return g.toBytes();
  }

  /** The same network exported channels-first. */
  function nchwTwin(): Uint8Array {
    const g = new GraphBuilder("nchw");
    const x = g.input("x", ["N", 3, 16, 16]);
    const c = g.node("Conv", [x, g.constant([1, 3, 1, 1], W3), g.constant([1], [0.1])], { kernel_shape: [1, 1] });
    g.output(g.node("Sigmoid", [c], {}, ["y"]), ["N", 1, 16, 16]);
    return g.toBytes();
  }

  /**
   * Logits of a stride-4 convolution: 8x8 from 32x32 ("pool4"), or ceil(30/4) = 8 from 30x30 with
   * padding ("pad30", no exact float scale); `resize` appends ONNX Resize (linear, half-pixel) as the reference.
   */
  function lowRes(kind: "pool4" | "pad30", resize = false): Uint8Array {
    const n = kind === "pool4" ? 32 : 30;
    const g = new GraphBuilder(kind);
    const x = g.input("x", ["N", 3, n, n]);
    const w = g.constant(
      [1, 3, 4, 4],
      Array.from({ length: 48 }, (_, i) => Math.sin(i) / 20),
    );
    const y = g.node(
      "Conv",
      [x, w],
      { kernel_shape: [4, 4], strides: [4, 4], pads: kind === "pool4" ? [0, 0, 0, 0] : [0, 0, 2, 2] },
      resize ? undefined : ["y"],
    );
    if (!resize) g.output(y, ["N", 1, "h", "w"]);
    else {
      // 8 -> 30 has no exact float scale, so that reference gives sizes (forward only: sizes fix the batch axis)
      const how = kind === "pool4" ? ["", g.constant([4], [1, 1, 4, 4])] : ["", "", g.constantInt64([1, 1, n, n])];
      g.output(g.node("Resize", [y, ...how], { mode: "linear", coordinate_transformation_mode: "half_pixel" }, ["y"]), ["N", 1, n, n]);
    }
    return g.toBytes();
  }

  /** Removes the declared shape of the model's first output. */
  function dropShape(model: ReturnType<typeof fromBinary<typeof ModelProtoSchema>>): void {
    const t = model.graph!.output[0].type!.value;
    if (t.case === "tensorType") t.value.shape = undefined;
  }

  async function outputOf(m: Model, image: string): Promise<Float32Array> {
    const kase = await loadCase(m, image);
    return Float32Array.from(await m.infer(m.preprocess(kase.image), 1));
  }

  it("a channels-last model is transposed in the graph: same outputs and gradients as its channels-first twin", async () => {
    const img = await writeImage(dir, "rgbish16.png", (y, x) => (37 * y + 11 * x) % 256, 16);
    const a = await Model.load(writeModel(dir, "keras.onnx", nhwcModel()), { threads: 1 });
    const b = await Model.load(writeModel(dir, "twin.onnx", nchwTwin()), { threads: 1 });
    expect(a.card.input).toMatchObject({ layout: "nhwc", height: 16, width: 16, channels: "rgb" });
    expect(a.card.output.layout).toBe("nhwc");
    expect(a.resolved.assumptions.join("\n")).toMatch(/input 'x' is \[N, 16, 16, 3\]: read as channels-last/);
    expect(a.resolved.assumptions.join("\n")).toMatch(/output 'y' is channels-last \[N, H, W, K\]: transposed/);
    expect(a.inputName).toBe("x");
    expect(a.outputName).toBe("y");
    expect([a.fileGraph.inputs[0].dims, a.graph.inputs[0].dims]).toEqual([
      ["N", 16, 16, 3],
      ["N", 3, 16, 16],
    ]);
    expect(b.fileGraph).toBe(b.graph);
    const [ya, yb] = [await outputOf(a, img), await outputOf(b, img)];
    expect(ya.length).toBe(256);
    for (let i = 0; i < 256; i++) expect(ya[i]).toBeCloseTo(yb[i], 6);
    const roi = { roi: { row: 4, col: 4, height: 8, width: 8 } };
    const [sa, sb] = [await explainSaliency(a, await loadCase(a, img), roi), await explainSaliency(b, await loadCase(b, img), roi)];
    expect(Math.max(...sa.map)).toBeGreaterThan(0);
    sa.map.forEach((v, i) => expect(v).toBeCloseTo(sb.map[i], 6));
    // the adapter's Transposes are not components of the network
    expect(listComponents(a.proto(), "layer").map((c) => c.name)).toEqual(["in", "conv", "out"]);
    expect(a.sha256).not.toBe(b.sha256);
    await Promise.all([a.release(), b.release()]);
  });

  it("a card can state the layouts; a fixed size that contradicts the card is still refused", async () => {
    const p = writeModel(dir, "keras-card.onnx", nhwcModel(), {
      input: { layout: "nhwc", height: 16, width: 16, channels: "rgb" },
      output: { kind: "probabilities" },
    });
    const m = await Model.load(p, { threads: 1 });
    expect(m.resolved.assumptions.join("\n")).not.toMatch(/read as channels-last/);
    expect(m.card.output.layout).toBe("nhwc");
    await m.release();
    await expect(Model.load(p, { overrides: { height: 32, width: 32 } })).rejects.toThrow(
      /model input height is 16 in the graph \[N, 16, 16, 3\] read as channels-last, but the model card or its flags say 32/,
    );
  });

  for (const kind of ["pool4", "pad30"] as const) {
    it(`a ${kind === "pool4" ? "32 -> 8" : "30 -> 8 (padded)"} stride-4 output is upsampled bilinearly in the graph, as ONNX Resize (half-pixel) does`, async () => {
      const n = kind === "pool4" ? 32 : 30;
      const img = await writeImage(dir, `ramp${n}.png`, (y, x) => (7 * y * y + 13 * x) % 256, n);
      const a = await Model.load(writeModel(dir, `${kind}.onnx`, lowRes(kind)), { threads: 1 });
      const ref = await Model.load(writeModel(dir, `${kind}-resize.onnx`, lowRes(kind, true)), { threads: 1 });
      expect(a.resolved.assumptions.join("\n")).toContain(`output 'y' is 8x8 but the input is ${n}x${n}: upsampled bilinearly`);
      const [ya, yr] = [await outputOf(a, img), await outputOf(ref, img)];
      expect(ya.length).toBe(n * n);
      for (let i = 0; i < ya.length; i++) expect(ya[i]).toBeCloseTo(yr[i], 5);
      if (kind === "pad30") return void (await Promise.all([a.release(), ref.release()]));
      // gradients flow through the upsampling exactly as through the Resize
      const roi = { roi: { row: 8, col: 12, height: 8, width: 8 } };
      const [sa, sr] = [await explainSaliency(a, await loadCase(a, img), roi), await explainSaliency(ref, await loadCase(ref, img), roi)];
      expect(Math.max(...sa.map)).toBeGreaterThan(0);
      sa.map.forEach((v, i) => expect(v).toBeCloseTo(sr.map[i], 5));
      await Promise.all([a.release(), ref.release()]);
    });
  }

  it("a smaller output that is no stride of the input (a valid-convolution U-Net) is refused at load, not stretched", async () => {
    const g = new GraphBuilder("valid");
    const x = g.input("x", ["N", 3, 32, 32]);
    g.output(g.node("Conv", [x, g.constant([1, 3, 8, 8], new Array(192).fill(0.01))], { kernel_shape: [8, 8] }, ["y"]), ["N", 1, 25, 25]);
    await expect(Model.load(writeModel(dir, "valid.onnx", g.toBytes()))).rejects.toThrow(
      /output 'y' \[\?, 1, 25, 25\] read as channels-first is 25x25, but the input is 32x32 and that is not the input size divided by one stride/,
    );
    // a classifier's [N, 2, 1, 1] is no segmentation head either
    const c = new GraphBuilder("classifier");
    const cx = c.input("x", ["N", 3, 32, 32]);
    c.output(c.node("Conv", [c.node("GlobalAveragePool", [cx]), c.constant([2, 3, 1, 1], [1, 0, 0, 0, 1, 0])], { kernel_shape: [1, 1] }, ["y"]), [
      "N",
      2,
      1,
      1,
    ]);
    await expect(Model.load(writeModel(dir, "classifier.onnx", c.toBytes()))).rejects.toThrow(/is 1x1, but the input is 32x32/);
    const cases: [number, number, number, number][] = [
      [572, 572, 388, 388],
      [512, 512, 128, 128],
      [30, 30, 8, 8],
      [513, 513, 65, 65],
      [32, 32, 1, 1],
      [32, 64, 2, 32],
      [256, 512, 64, 128],
    ];
    expect(cases.map((x) => downscaleFactor(...x))).toEqual([undefined, 4, 4, 8, undefined, undefined, 4]);
  });

  it("channels-last pitfalls: a uint8 input, an NCHW output behind an NHWC input, a dynamic-size export, a wrong card", async () => {
    const u8 = new GraphBuilder("u8-nhwc");
    const ux = u8.input("x", ["N", 16, 16, 3], TensorProto_DataType.UINT8);
    const ut = u8.node("Transpose", [u8.node("Cast", [ux], { to: TensorProto_DataType.FLOAT })], { perm: [0, 3, 1, 2] });
    u8.output(u8.node("Conv", [ut, u8.constant([1, 3, 1, 1], W3)], { kernel_shape: [1, 1] }, ["y"]), ["N", 1, 16, 16]);
    await expect(Model.load(writeModel(dir, "u8-nhwc.onnx", u8.toBytes()))).rejects.toThrow(
      /model input 'x' is UINT8, but segcause feeds float32 images$/,
    );

    // NHWC in, NCHW 2-class softmax out: the output's shape says it is channels-first
    const mixed = new GraphBuilder("mixed");
    const mx = mixed.input("x", ["N", 16, 16, 3]);
    const mc = mixed.node(
      "Conv",
      [mixed.node("Transpose", [mx], { perm: [0, 3, 1, 2] }), mixed.constant([2, 3, 1, 1], [...W3, ...W3.map((v) => -v)])],
      { kernel_shape: [1, 1] },
    );
    mixed.output(mixed.node("Softmax", [mc], { axis: 1 }, ["y"]), ["N", 2, 16, 16]);
    const m = await Model.load(writeModel(dir, "mixed.onnx", mixed.toBytes()), { threads: 1 });
    expect(m.card.output.layout).toBeUndefined();
    expect(m.graph.outputs[0].dims).toEqual(["N", 2, 16, 16]);
    expect(m.card.output.channel).toBe(1);
    await m.release();

    // tf2onnx's usual [N, H, W, 3] with symbolic sizes
    const dyn = new GraphBuilder("dyn-nhwc");
    const dx = dyn.input("x", ["N", "H", "W", 3]);
    const dc = dyn.node("Conv", [dyn.node("Transpose", [dx], { perm: [0, 3, 1, 2] }), dyn.constant([1, 3, 1, 1], W3), dyn.constant([1], [0.1])], {
      kernel_shape: [1, 1],
    });
    dyn.output(dyn.node("Sigmoid", [dyn.node("Transpose", [dc], { perm: [0, 2, 3, 1] })], {}, ["y"]), ["N", "H", "W", 1]);
    const d = await Model.load(writeModel(dir, "dyn-nhwc.onnx", dyn.toBytes()), { threads: 1, overrides: { height: 16, width: 16 } });
    expect([d.card.input.layout, d.card.output.layout]).toEqual(["nhwc", "nhwc"]);
    const img = await writeImage(dir, "rgbish16b.png", (y, x) => (37 * y + 11 * x) % 256, 16);
    const twin = await Model.load(writeModel(dir, "twin2.onnx", nchwTwin()), { threads: 1 });
    const [yd, yt] = [await outputOf(d, img), await outputOf(twin, img)];
    for (let i = 0; i < 256; i++) expect(yd[i]).toBeCloseTo(yt[i], 5);
    await Promise.all([d.release(), twin.release()]);

    // a card (or flag) that says channels-last for a channels-first model is named as such
    const p = writeModel(dir, "twin3.onnx", nchwTwin());
    await expect(Model.load(p, { overrides: { layout: "nhwc" } })).rejects.toThrow(
      /model input channels is 16 in the graph \[N, 3, 16, 16\] read as channels-last, but the model card or its flags say 3/,
    );
  });

  it("symbolic sizes: the output's layout and class channel are read from the dim names, and batched runs keep a symbolic batch", async () => {
    // input [N, H, W, 3], output [N, 2, H, W] (softmax over axis 1): channel 1, channels-first output
    const g = new GraphBuilder("dyn-mixed");
    const x = g.input("x", ["N", "H", "W", 3]);
    const c = g.node("Conv", [g.node("Transpose", [x], { perm: [0, 3, 1, 2] }), g.constant([2, 3, 1, 1], [...W3, ...W3.map((v) => -v)])], {
      kernel_shape: [1, 1],
    });
    g.output(g.node("Softmax", [c], { axis: 1 }, ["y"]), ["N", 2, "H", "W"]);
    const m = await Model.load(writeModel(dir, "dyn-mixed.onnx", g.toBytes()), { threads: 1, overrides: { height: 16, width: 16 } });
    expect(m.card.output.channel).toBe(1);
    expect(m.card.output.layout).toBeUndefined();
    await m.release();
    // input [N, 3, H, W], output [N, H, W, 2]: channels-last output, channel 1, no batch-1 shape declared
    const h = new GraphBuilder("dyn-outnhwc");
    const hx = h.input("x", ["N", 3, "H", "W"]);
    const hc = h.node("Conv", [hx, h.constant([2, 3, 1, 1], [...W3, ...W3.map((v) => -v)])], { kernel_shape: [1, 1] });
    h.output(h.node("Softmax", [h.node("Transpose", [hc], { perm: [0, 2, 3, 1] })], { axis: -1 }, ["y"]), ["N", "H", "W", 2]);
    const n = await Model.load(writeModel(dir, "dyn-outnhwc.onnx", h.toBytes()), { threads: 1, overrides: { height: 16, width: 16 } });
    expect([n.card.output.channel, n.card.output.layout]).toEqual([1, "nhwc"]);
    expect(n.graph.outputs[0].dims).toEqual(["N", 2, 16, 16]);
    await n.release();
  });

  it("outputs with symbolic or no declared shapes: the class channel comes from the shapes at the card's size, an integer output and a wrong channels-last reading are named at load", async () => {
    // tf2onnx style: every size symbolic; the 2-class output's class count is known only at the card's size
    const g = new GraphBuilder("tf2onnx-2class");
    const x = g.input("x", ["N", "unk1", "unk2", 3]);
    const c = g.node("Conv", [g.node("Transpose", [x], { perm: [0, 3, 1, 2] }), g.constant([2, 3, 1, 1], [...W3, ...W3.map((v) => -v)])], {
      kernel_shape: [1, 1],
    });
    g.output(g.node("Transpose", [c], { perm: [0, 2, 3, 1] }, ["y"]), ["N", "unk3", "unk4", "unk5"]);
    const m = await Model.load(writeModel(dir, "tf2onnx-2class.onnx", g.toBytes()), { threads: 1, overrides: { height: 16, width: 16 } });
    expect(m.card.output.channel).toBe(1);
    expect(m.resolved.assumptions.join("\n")).toContain("output 'y' has 2 channel(s) at the input size: class channel 1");
    expect(m.graph.outputs[0].dims).toEqual(["N", 2, 16, 16]);
    await m.release();

    // an output without any declared shape: the class count comes from the shapes too
    const u = new GraphBuilder("noshape");
    const ux = u.input("x", [1, 3, 16, 16]);
    u.output(u.node("Conv", [ux, u.constant([2, 3, 1, 1], [...W3, ...W3.map((v) => -v)])], { kernel_shape: [1, 1] }, ["y"]), []);
    const bytes = fromBinary(ModelProtoSchema, u.toBytes());
    dropShape(bytes);
    const n = await Model.load(writeModel(dir, "noshape.onnx", toBinary(ModelProtoSchema, bytes)), { threads: 1 });
    expect(n.card.output.channel).toBe(1);
    await n.release();

    // an ArgMax output is named as such at load (ONNX Runtime's own type error would blame the export)
    const a = new GraphBuilder("argmax");
    const ax = a.input("x", ["N", 16, 16, 3]);
    a.output(a.node("ArgMax", [ax], { axis: 3, keepdims: 1 }, ["y"]), ["N", 16, 16, 1]);
    const ab = fromBinary(ModelProtoSchema, a.toBytes());
    const t = ab.graph!.output[0].type!.value;
    if (t.case === "tensorType") t.value.elemType = TensorProto_DataType.INT64;
    await expect(Model.load(writeModel(dir, "argmax.onnx", toBinary(ModelProtoSchema, ab)))).rejects.toThrow(
      /model output 'y' is INT64, segcause needs float32 scores or probabilities/,
    );

    // a wrong channels-last reading of an output without a declared shape: its shape is computed, and the misfit named
    await expect(Model.load(p3(), { overrides: { outputLayout: "nhwc" } })).rejects.toThrow(
      /model output 'y' \[1, 1, 16, 16\] read as channels-last is 16x1/,
    );
    function p3(): string {
      const b = fromBinary(ModelProtoSchema, nchwTwin());
      dropShape(b);
      return writeModel(dir, "twin-noshape.onnx", toBinary(ModelProtoSchema, b));
    }
  });

  it("an [N, h, w] output below the input size is upsampled too, and Grad-CAM never picks the model's own output", async () => {
    const g = new GraphBuilder("rank3");
    const x = g.input("x", ["N", 3, 32, 32]);
    const f = g.node("Relu", [
      g.node(
        "Conv",
        [
          x,
          g.constant(
            [4, 3, 4, 4],
            Array.from({ length: 192 }, (_, i) => Math.cos(i) / 10),
          ),
        ],
        { kernel_shape: [4, 4], strides: [4, 4] },
      ),
    ]);
    const logits = g.node("Conv", [f, g.constant([1, 4, 1, 1], [1, -1, 0.5, 0.25])], { kernel_shape: [1, 1] }, undefined, "/head/Conv");
    g.output(g.node("Squeeze", [logits, g.constantInt64([1])], {}, ["y"], "/head/Squeeze"), ["N", 8, 8]);
    const m = await Model.load(writeModel(dir, "rank3.onnx", g.toBytes()), { threads: 1 });
    expect(m.resolved.assumptions.join("\n")).toContain("output 'y' is 8x8 but the input is 32x32: upsampled bilinearly");
    expect(m.graph.outputs[0].dims).toEqual(["N", 32, 32]);
    await m.release();
    // 2-class logits straight from the head: renamed y::segcause_lowres by the adapter, the output is
    // the deepest 8x8 map, which Grad-CAM's default (smallest, then deepest) would pick
    const g2 = new GraphBuilder("two-class-lowres");
    const x2 = g2.input("x", ["N", 3, 32, 32]);
    const f2 = g2.node(
      "Relu",
      [
        g2.node(
          "Conv",
          [
            x2,
            g2.constant(
              [4, 3, 4, 4],
              Array.from({ length: 192 }, (_, i) => Math.cos(i) / 10),
            ),
          ],
          { kernel_shape: [4, 4], strides: [4, 4] },
        ),
      ],
      {},
      undefined,
      "/enc/Relu",
    );
    g2.output(
      g2.node("Conv", [f2, g2.constant([2, 4, 1, 1], [1, -1, 0.5, 0.25, -1, 1, -0.5, -0.25])], { kernel_shape: [1, 1] }, ["y"], "/head/Conv"),
      ["N", 2, 8, 8],
    );
    const m2 = await Model.load(writeModel(dir, "two-class-lowres.onnx", g2.toBytes()), { threads: 1 });
    expect(m2.proto().graph!.node.some((n) => n.output.includes("y::segcause_lowres"))).toBe(true);
    const maps = featureMaps(m2.proto(), 32, 32);
    expect(maps.length).toBe(2);
    expect(maps.map((x) => x.name)).toContain(f2);
    expect(maps.some((x) => x.name.startsWith("y"))).toBe(false);
    expect(bottleneck(maps)?.name).toBe(f2);
    await m2.release();
  });

  it("bilinearMatrix: rows sum to 1, identity at equal size, PyTorch's half-pixel weights", () => {
    const R = bilinearMatrix(2, 4);
    expect(Array.from(R)).toEqual([1, 0, 0.75, 0.25, 0.25, 0.75, 0, 1]);
    expect(Array.from(bilinearMatrix(3, 3))).toEqual([1, 0, 0, 0, 1, 0, 0, 0, 1]);
    const S = bilinearMatrix(7, 32);
    for (let o = 0; o < 32; o++) expect(S.slice(o * 7, o * 7 + 7).reduce((x, y) => x + y, 0)).toBeCloseTo(1, 6);
  });
});

describe("weights saved as external data", () => {
  /** twoClassLogits with its initializers moved to `file` (onnx.save(..., save_as_external_data=True) layout). */
  function externalise(folder: string, name: string, file: string): string {
    const m = fromBinary(ModelProtoSchema, twoClassLogits());
    const chunks: Uint8Array[] = [];
    let offset = 0;
    for (const t of m.graph!.initializer) {
      chunks.push(t.rawData);
      t.externalData = [
        create(StringStringEntryProtoSchema, { key: "location", value: file }),
        create(StringStringEntryProtoSchema, { key: "offset", value: String(offset) }),
        create(StringStringEntryProtoSchema, { key: "length", value: String(t.rawData.length) }),
      ];
      offset += t.rawData.length;
      t.rawData = new Uint8Array(0);
      t.dataLocation = TensorProto_DataLocation.EXTERNAL;
    }
    writeFileSync(join(folder, file), Buffer.concat(chunks));
    return writeModel(folder, name, toBinary(ModelProtoSchema, m));
  }

  it("are read from the file next to the model: same outputs, and the model's hash covers them", async () => {
    const folder = tmp("segcause-extdata-");
    // a file name that starts with two dots is still in the model's folder
    const p = externalise(folder, "ext.onnx", "..ext.weights");
    const inline = await Model.load(writeModel(folder, "inline.onnx", twoClassLogits()), { threads: 1 });
    const ext = await Model.load(p, { threads: 1 });
    const input = new Float32Array(256).map((_, i) => (i % 7) / 7);
    expect(Array.from(await ext.infer(input, 1))).toEqual(Array.from(await inline.infer(input, 1)));
    // the hash is of the files as stored (the .onnx, then its data file), not of a re-serialisation
    expect(ext.sha256).toBe(
      createHash("sha256")
        .update(Buffer.concat([readFileSync(p), readFileSync(join(folder, "..ext.weights"))]))
        .digest("hex"),
    );
    await Promise.all([ext.release(), inline.release()]);
    // other weights in the external file: another model, another hash
    const w = readFileSync(join(folder, "..ext.weights"));
    w[0] ^= 0xff;
    writeFileSync(join(folder, "..ext.weights"), w);
    const other = await Model.load(p, { threads: 1 });
    expect(other.sha256).not.toBe(ext.sha256);
    await other.release();
  });

  it("a missing or short external data file is named", async () => {
    const folder = tmp("segcause-extdata-");
    const p = externalise(folder, "ext.onnx", "ext.weights");
    writeFileSync(join(folder, "ext.weights"), Buffer.alloc(4));
    await expect(Model.load(p)).rejects.toThrow(/tensor '.*' reads bytes \d+\.\.\d+ of ext\.weights, which holds 4/);
    rmSync(join(folder, "ext.weights"));
    await expect(Model.load(p)).rejects.toThrow(/ext\.onnx keeps the weights of tensor '.*' in ext\.weights, which cannot be read \(ENOENT\)/);
  });

  it("data files that add up to more than one model can hold are refused before the last one is read", async () => {
    const folder = tmp("segcause-extdata-");
    const p = externalise(folder, "ext.onnx", "ext.weights");
    // the second tensor's file: sparse, so nothing is written, and its size alone is within the per-file limit
    const m = fromBinary(ModelProtoSchema, readFileSync(p));
    const second = m.graph!.initializer[1];
    second.externalData = [create(StringStringEntryProtoSchema, { key: "location", value: "huge.weights" })];
    writeFileSync(p, toBinary(ModelProtoSchema, m));
    writeFileSync(join(folder, "huge.weights"), "");
    truncateSync(join(folder, "huge.weights"), 2 ** 31 - 8);
    await expect(Model.load(p)).rejects.toThrow(/ext\.onnx has 2\.0 GiB of weights, more than one ONNX file can hold in memory/);
  });

  it("a data file that is a link must resolve inside the model's folder (a link to another file is never read as weights)", async () => {
    const folder = tmp("segcause-extdata-");
    const p = externalise(folder, "ext.onnx", "ext.weights");
    const outside = join(tmp("segcause-elsewhere-"), "secret");
    renameSync(join(folder, "ext.weights"), outside);
    symlinkSync(outside, join(folder, "ext.weights"));
    await expect(Model.load(p)).rejects.toThrow(
      /ext\.onnx keeps the weights of tensor '.*' in ext\.weights, a link to a file outside the model's folder/,
    );
    // a link to a file in the same folder is that file
    rmSync(join(folder, "ext.weights"));
    renameSync(outside, join(folder, "real.weights"));
    symlinkSync("real.weights", join(folder, "ext.weights"));
    const m = await Model.load(p, { threads: 1 });
    await m.release();
  });
});
