/**
 * The output kind (probabilities or logits) read from what the graph computes: a Sigmoid followed by
 * ops that only broadcast, move or average its values still holds probabilities; a logits output
 * that lies entirely within [0, 1] is refused unless the card confirms it.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { loadCase } from "../src/data/case.js";
import { SegcauseError } from "../src/errors.js";
import { runEvaluation } from "../src/evaluate/benchmark.js";
import { PROTOCOL_DEFAULTS } from "../src/evaluate/protocol.js";
import { parseRoiSpec } from "../src/evaluate/rois.js";
import { explainComponents } from "../src/explain/components.js";
import { explainPdcr } from "../src/explain/pdcr.js";
import { Model } from "../src/model/model.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import "../src/explain/catalog.js";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { flatBank, tmp, writeImage, writeMask, writeModel } from "./helpers/tiny.js";

const S = 64;
/** the one causal block: rows 40..47, cols 8..15 */
const BLOCK = { row: 40, col: 8 };
const ROI = { row: 0, col: 0, height: 8, width: 8 };

/**
 * Every output pixel = sigmoid(40·mean(block (40,8)) − 20), broadcast to 64×64 by `tail`: the
 * Sigmoid is computed on a [N,1,1,1] tensor and the ops after it only broadcast or average it.
 */
function broadcastSigmoidModel(tail: "expand" | "identity-expand" | "tile" | "expand-avgpool" | "expand-maxpool" | "clip"): Uint8Array {
  const g = new GraphBuilder(`sigmoid-${tail}`);
  const x = g.input("image", ["N", 3, S, S]);
  const w = new Float32Array(3 * S * S);
  for (let y = BLOCK.row; y < BLOCK.row + 8; y++) for (let c = BLOCK.col; c < BLOCK.col + 8; c++) w[y * S + c] = 40 / 64;
  const conv = g.node("Conv", [x, g.constant([1, 3, S, S], w), g.constant([1], [-20])], { kernel_shape: [S, S] }, ["score"]);
  const full = g.constantInt64([1, 1, S, S]);
  let out: string;
  if (tail === "clip") {
    // No Sigmoid at all: a clipped linear score, which the graph cannot tell from logits.
    const lin = g.node("Add", [g.node("Mul", [conv, g.constant([1], [0.025])]), g.constant([1], [0.5])]);
    out = g.node("Clip", [g.node("Expand", [lin, full]), g.constant([], [0]), g.constant([], [1])], {}, ["mask"]);
  } else {
    const sig = g.node("Sigmoid", [conv]);
    const expanded = (t: string) => g.node("Expand", [t, full]);
    if (tail === "expand") out = g.node("Identity", [expanded(sig)], {}, ["mask"]);
    else if (tail === "identity-expand") out = g.node("Expand", [g.node("Identity", [sig]), full], {}, ["mask"]);
    else if (tail === "tile") out = g.node("Tile", [sig, full], {}, ["mask"]);
    else if (tail === "expand-avgpool")
      out = g.node("AveragePool", [expanded(sig)], { kernel_shape: [3, 3], pads: [1, 1, 1, 1], count_include_pad: 0 }, ["mask"]);
    else out = g.node("MaxPool", [expanded(sig)], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }, ["mask"]);
  }
  g.output(out, ["N", 1, S, S]);
  return g.toBytes();
}

let dir: string, image: string;
beforeAll(async () => {
  dir = tmp();
  // bright everywhere: the block's mean is 0.9, sigmoid(16) ≈ 1; a dark patch (20) gives sigmoid(−16.9) ≈ 0
  image = await writeImage(dir, "bright.png", () => 230, S);
});

async function withModel<T>(path: string, f: (m: Model) => Promise<T>, card?: string): Promise<T> {
  const model = await Model.load(path, { threads: 1, card });
  try {
    return await f(model);
  } finally {
    await model.release();
  }
}

describe("the output kind follows what the graph computes", () => {
  for (const tail of ["expand", "identity-expand", "tile", "expand-avgpool", "expand-maxpool"] as const) {
    it(`Sigmoid → ${tail}: read as probabilities; PdCR is −100 on the block and 0 elsewhere`, async () => {
      const path = writeModel(dir, `${tail}.onnx`, broadcastSigmoidModel(tail));
      await withModel(path, async (model) => {
        expect(model.card.output.kind).toBe("probabilities");
        expect(model.resolved.assumptions.join("\n")).toMatch(/ends in Sigmoid \(then .*\): read as probabilities/);
        const kase = await loadCase(model, image);
        const a = await explainPdcr(model, kase, { roi: ROI }, { bank: flatBank([20, 20, 20]), schedule: "paper" });
        expect(a.baseOutcome).toBeCloseTo(100, 6);
        for (const u of a.units) expect(u.effect, `block (${u.row},${u.col})`).toBeCloseTo(u.row === BLOCK.row && u.col === BLOCK.col ? -100 : 0, 6);
        expect(a.map[BLOCK.row * S + BLOCK.col]).toBe(-100);
        expect(a.map[(BLOCK.row + 7) * S + BLOCK.col + 7]).toBe(-100);
        expect(a.map[BLOCK.row * S + BLOCK.col + 8]).toBe(0);
      });
    });
  }

  it("a card that reads a Sigmoid → Expand output as logits is refused", () => {
    const path = writeModel(dir, "expand-card.onnx", broadcastSigmoidModel("expand"), {
      input: { height: S, width: S, channels: "rgb" },
      output: { kind: "logits" },
    });
    expect(() => Model.readCard(path)).toThrow(/reads output 'mask' as logits, but the graph produces it with Sigmoid \(then Expand, Identity\)/);
  });

  it("components: the ablated output is read as probabilities too (the Sigmoid → Expand node's effect is −100)", async () => {
    const path = writeModel(dir, "components.onnx", broadcastSigmoidModel("expand"));
    await withModel(path, async (model) => {
      const kase = await loadCase(model, image);
      const r = await explainComponents(model, kase, { roi: ROI }, { ablation: "zero", tensors: ["score"] });
      expect(r.baseOutcome).toBeCloseTo(100, 6);
      // zeroing the Conv's score gives sigmoid(0) = 0.5, not above the threshold: the RoI vanishes
      expect(r.units).toHaveLength(1);
      expect(r.units[0].effect).toBeCloseTo(-100, 6);
    });
  });
});

describe("an output read as logits that lies within [0, 1] on the unperturbed image", () => {
  it("is refused by explain and components (the check every method shares)", async () => {
    const path = writeModel(dir, "clip.onnx", broadcastSigmoidModel("clip"));
    await withModel(path, async (model) => {
      expect(model.card.output.kind).toBe("logits");
      const kase = await loadCase(model, image);
      const run = explainPdcr(model, kase, { roi: ROI }, { bank: flatBank([20, 20, 20]), schedule: "paper" });
      await expect(run).rejects.toThrow(SegcauseError);
      await expect(run).rejects.toThrow(
        /reads output 'mask' as logits, but on the unperturbed image every value lies within \[0, 1\] \(0\.90\d* to 0\.90\d*\)/,
      );
      await expect(explainComponents(model, kase, { roi: ROI }, { ablation: "zero", tensors: ["score"] })).rejects.toThrow(
        /every value lies within \[0, 1\]/,
      );
    });
  });

  it("evaluate skips every RoI of such a model, with the reason", async () => {
    const d = tmp("segcause-eval-unit-");
    const path = writeModel(d, "clip.onnx", broadcastSigmoidModel("clip"));
    const cases = [];
    for (let i = 0; i < 2; i++) {
      await writeImage(d, `c${i}.png`, () => 230, S);
      await writeMask(d, `c${i}_mask.png`, (_y, x) => x < 32, S);
      cases.push({ id: `c${i}`, image: `c${i}.png`, mask: `c${i}_mask.png`, split: i === 0 ? "train" : "test" });
    }
    const manifest = join(d, "manifest.json");
    writeFileSync(manifest, JSON.stringify({ name: "unit", cases }));
    const s = await runEvaluation({
      models: [path],
      dataset: manifest,
      split: "test",
      methods: [{ name: "occlusion", options: {} }],
      rois: parseRoiSpec("inside:8"),
      bankSplits: ["train"],
      bankPatchSize: 8,
      out: join(d, "out"),
      seed: 0,
      protocol: { ...PROTOCOL_DEFAULTS, radius: 8, fills: ["zero"], steps: 2 },
      threads: 1,
    });
    expect(s.computed).toBe(0);
    expect(s.skipped).toBe(1);
    expect(s.notes.join(" ")).toMatch(/c1 inside8-0: skipped \(.*every value lies within \[0, 1\]/);
  });

  it("runs when the card confirms it (output.logitsInUnitRange)", async () => {
    const path = writeModel(dir, "clip-confirmed.onnx", broadcastSigmoidModel("clip"), {
      input: { height: S, width: S, channels: "rgb" },
      output: { kind: "logits", logitsInUnitRange: true },
    });
    await withModel(path, async (model) => {
      const kase = await loadCase(model, image);
      // the clipped score is 0.90 (bright block) or 0.08 (dark patch), and its sigmoid above 0.5 either way:
      // every pixel foreground, whatever the block holds
      const a = await explainPdcr(model, kase, { roi: ROI }, { bank: flatBank([20, 20, 20]), schedule: "paper" });
      expect(a.baseOutcome).toBeCloseTo(100, 6);
      expect(a.units.every((u) => u.effect === 0)).toBe(true);
    });
  });
});
