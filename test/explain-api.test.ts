import { beforeAll, describe, expect, it } from "vitest";
import { loadCase } from "../src/data/case.js";
import { explain } from "../src/explain/explain.js";
import { defineMethod } from "../src/explain/methods.js";
import { choice, int } from "../src/explain/options.js";
import { explainZero } from "../src/explain/pdcr.js";
import { RunContext } from "../src/explain/run.js";
import { Model } from "../src/model/model.js";
import { regionMeanModel, tmp, writeImage, writeMask, writeModel } from "./helpers/tiny.js";

// The causal fixture of the PdCR tests: foreground iff the mean of rows 0-15, cols 16-31 > 0.8.
let modelPath: string, image: string, small: string, roiMask: string;
const ROI = { row: 16, col: 0, height: 8, width: 8 };

beforeAll(async () => {
  const dir = tmp();
  modelPath = writeModel(dir, "causal.onnx", regionMeanModel([{ row: 0, col: 16, height: 16, width: 16, weight: 50 }], -40));
  image = await writeImage(dir, "flat.png", () => 230);
  small = await writeImage(dir, "small.png", () => 230, 8);
  roiMask = await writeMask(dir, "roi.png", (y, x) => y >= 16 && y < 24 && x < 6);
});

async function withModel<T>(f: (m: Model) => Promise<T>): Promise<T> {
  const m = await Model.load(modelPath, { threads: 1 });
  try {
    return await f(m);
  } finally {
    await m.release();
  }
}

describe("explain(method, {...}): the library's one entry point", () => {
  it("gives the recipe's map bit for bit, with its defaults filled in and τ and the RoI on the result", async () => {
    await withModel(async (model) => {
      const kase = await loadCase(model, image);
      const a = await explain("zero", { model, case: kase, target: { roi: ROI }, options: { block: 8 }, run: { seed: 1 } });
      const b = await explainZero(model, kase, { roi: ROI }, { blockSize: 8, seed: 1 });
      expect(Buffer.from(a.map.buffer).equals(Buffer.from(b.map.buffer))).toBe(true);
      expect(a.units.filter((u) => Math.abs(u.effect + 100) < 1e-6).map((u) => [u.row, u.col])).toEqual([
        [0, 16],
        [0, 24],
        [8, 16],
        [8, 24],
      ]);
      expect(a.provenance.settings).toMatchObject({ blockSize: 8, tau: 0.02, fill: 0 });
      expect(a.tau).toBe(0.02);
      expect(a.region.kind).toBe("rect");
      expect(a.region.area).toBe(64);
    });
  });

  it("carries a mask RoI as resolved, not as its bounding box", async () => {
    await withModel(async (model) => {
      const kase = await loadCase(model, image);
      const { loadMask } = await import("../src/data/image.js");
      const a = await explain("occlusion", {
        model,
        case: kase,
        target: { roi: { mask: await loadMask(roiMask, 32, 32) } },
        options: { block: 8, stride: 8 },
      });
      expect(a.region.kind).toBe("mask");
      expect(a.region.area).toBe(48);
      expect(a.roi).toEqual({ row: 16, col: 0, height: 8, width: 6 });
      expect(a.tau).toBe(0);
    });
  });

  it("refuses an option the method does not take, and a setting its check rejects, before any pass", async () => {
    await withModel(async (model) => {
      const kase = await loadCase(model, image);
      await expect(explain("zero", { model, case: kase, target: { roi: ROI }, options: { stride: 4 } })).rejects.toThrow(
        /^options\.stride is not an option of method zero/,
      );
      await expect(explain("occlusion", { model, case: kase, target: { roi: ROI }, options: { block: 64 } })).rejects.toThrow(
        /^options\.block=64: the block does not fit the 32x32 input/,
      );
      await expect(explain("pdcr", { model, case: kase, target: { roi: ROI } })).rejects.toThrow(/pdcr needs a patch bank/);
    });
  });

  it("passes on loadCase's notes about the input", async () => {
    await withModel(async (model) => {
      const kase = await loadCase(model, small);
      expect(kase.notes).toEqual([expect.stringMatching(/^the 8x8 image was enlarged 4\.0x to the model's 32x32 input/)]);
      const a = await explain("zero", { model, case: kase, target: { roi: ROI }, options: { block: 16 } });
      expect(a.notes).toContain(kase.notes![0]);
    });
  });

  it("runs a method declared with defineMethod, its options typed and resolved from the declaration", async () => {
    const seen: unknown[] = [];
    const constant = defineMethod({
      name: "constant-test",
      family: "perturbation",
      summary: "every pixel gets the block size (a test of the declaration)",
      cost: "1",
      options: {
        block: int({ description: "a size", default: 4, min: 1 }),
        sign: choice(["plus", "minus"] as const, { description: "a sign", default: "minus" }),
      },
      explain: async (ctx, o) => {
        seen.push(o);
        const run = await RunContext.open(ctx.model, ctx.kase, ctx.target, ctx.run);
        const v: number = o.sign === "minus" ? -o.block : o.block;
        return run.finish({
          method: "constant-test",
          unitKind: "pixel",
          signed: true,
          map: new Float32Array(32 * 32).fill(v),
          units: [],
          roiCells: 0,
          forwardPasses: 1,
          tau: 0,
          settings: o,
          intervention: {},
        });
      },
    });
    await withModel(async (model) => {
      const kase = await loadCase(model, image);
      const a = await explain(constant, { model, case: kase, target: { roi: ROI }, options: { block: 3 } });
      expect(seen).toEqual([{ block: 3, sign: "minus" }]);
      expect(a.map[0]).toBe(-3);
      expect(a.forwardPasses).toBe(1);
      expect(a.provenance.settings).toEqual({ block: 3, sign: "minus" });
      await expect(explain(constant, { model, case: kase, target: { roi: ROI }, options: { sign: "up" as "plus" } })).rejects.toThrow(
        /^options\.sign must be one of plus, minus, got 'up'/,
      );
    });
  });
});
