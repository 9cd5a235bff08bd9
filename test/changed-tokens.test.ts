/**
 * Changed-region passes past a reshape into tokens, with several items in one call (a PdCR round's draws
 * of one block): the token reshape's batch, read from a shape in any of the forms exporters write, must be
 * the call's, or a Softmax over the tokens mixes the items. Maps must equal full passes'.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { loadCase } from "../src/data/case.js";
import { explainPdcr } from "../src/explain/pdcr.js";
import type { ExecutorRecord } from "../src/explain/roi-executor.js";
import { Model } from "../src/model/model.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import { changedGraph } from "../src/onnx/changed.js";
import { parseModel } from "../src/onnx/graph.js";
import { flatBank, tmp, writeImage, writeModel } from "./helpers/tiny.js";
import { type BatchForm, tokenModel } from "./helpers/tokens.js";

describe("changed-region passes on token models, several items per call", () => {
  let dir: string, image: string;
  beforeAll(async () => {
    dir = tmp();
    image = await writeImage(dir, "img.png", (y, x) => (y * 29 + x * 53) % 256);
  });

  for (const form of ["gather", "start-end", "size"] as BatchForm[])
    it(`gives full passes' map when the token batch is read by ${form}`, async () => {
      const model = await Model.load(writeModel(dir, `${form}.onnx`, tokenModel(form)), { threads: 1 });
      try {
        const kase = await loadCase(model, image);
        const target = { roi: { row: 8, col: 8, height: 8, width: 8 }, outcome: "soft-dice" as const, reference: "prediction" as const };
        const run = (incremental: "on" | "off") =>
          explainPdcr(model, kase, target, {
            seed: 3,
            incremental,
            bank: flatBank([0, 60, 120, 180, 240]),
            samples: 6,
            incrementalExecutor: "changed-region",
          });
        const [on, off] = [await run("on"), await run("off")];
        const rec = on.provenance.settings.incremental as ExecutorRecord;
        expect(rec.executor).toBe("changed-region");
        expect(rec.breaksAt).toMatch(/^Reshape/);
        const scale = off.map.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        expect(scale).toBeGreaterThan(0.1); // the blocks have effects, so mixed items would show
        let diff = 0;
        on.map.forEach((v, i) => (diff = Math.max(diff, Math.abs(v - off.map[i]))));
        expect(diff).toBeLessThan(1e-4 * scale);
      } finally {
        await model.release();
      }
    });
});

describe("an op run whole on an input the RoI needs none of", () => {
  it("is refused in one line naming the op, not a crash when a box is planned", () => {
    // a torch.roll along the rows: Concat(rows 28..32, rows 0..28); RoI rows 0..4 read only the first half
    const g = new GraphBuilder("roll");
    const x = g.input("x", ["N", 1, 32, 32]);
    const c = g.node("Conv", [x, g.constant([1, 1, 3, 3], new Float32Array(9).fill(0.1))], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
    const part = (a: number, b: number) => g.node("Slice", [c, g.constantInt64([a]), g.constantInt64([b]), g.constantInt64([2])]);
    const rolled = g.node("Concat", [part(28, 32), part(0, 28)], { axis: 2 });
    g.output(g.node("Identity", [rolled], {}, ["y"]), ["N", 1, 32, 32]);
    expect(() => changedGraph(parseModel(g.toBytes()), { rows: [0, 4], cols: [0, 8] })).toThrow(
      /Concat node .* runs whole but reads '.*', of which the RoI needs nothing/,
    );
  });
});
