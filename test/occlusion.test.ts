import { beforeAll, describe, expect, it } from "vitest";
import { loadCase } from "../src/data/case.js";
import { explainOcclusion } from "../src/explain/occlusion.js";
import { Model } from "../src/model/model.js";
import { regionMeanModel, tmp, writeImage, writeModel } from "./helpers/tiny.js";

// Same known structure as the PdCR tests: foreground iff the mean of rows 0-15, cols 16-31 > 0.8.
// On a flat 230 image, a black window flips the prediction iff it covers >= 29 of those 256 pixels.
let modelPath: string, image: string;
const ROI = { row: 16, col: 0, height: 8, width: 8 };

beforeAll(async () => {
  const dir = tmp();
  modelPath = writeModel(dir, "causal.onnx", regionMeanModel([{ row: 0, col: 16, height: 16, width: 16, weight: 50 }], -40));
  image = await writeImage(dir, "flat.png", () => 230);
});

function overlap(u: { row: number; col: number; height: number; width: number }): number {
  const h = Math.max(0, Math.min(u.row + u.height, 16) - Math.max(u.row, 0));
  const w = Math.max(0, Math.min(u.col + u.width, 32) - Math.max(u.col, 16));
  return h * w;
}

async function run(opts: Parameters<typeof explainOcclusion>[3]) {
  const m = await Model.load(modelPath, { threads: 1 });
  try {
    return await explainOcclusion(m, await loadCase(m, image), { roi: ROI }, opts);
  } finally {
    await m.release();
  }
}

describe("occlusion", () => {
  it("black overlapping windows: -100 exactly where the window covers enough of the causal region", async () => {
    const a = await run({ window: 8, stride: 4 });
    expect(a.units.length).toBeGreaterThan(40);
    for (const u of a.units) expect(u.effect, `window at ${u.row},${u.col}`).toBeCloseTo(overlap(u) >= 29 ? -100 : 0, 6);
    expect(a.forwardPasses).toBe(1 + a.units.length);
    // per-pixel map = mean over covering windows: pixel (0,31) is covered only by flipping windows
    expect(a.map[0 * 32 + 31]).toBeCloseTo(-100, 4);
    expect(a.map[31 * 32 + 0]).toBe(0);
  });

  it("mean and blur fills of a flat image change nothing", async () => {
    for (const fill of ["mean", "blur"] as const) {
      const a = await run({ fill });
      expect(
        a.units.every((u) => u.effect === 0),
        fill,
      ).toBe(true);
    }
  });

  it("refuses a stride larger than the window", async () => {
    await expect(run({ window: 8, stride: 12 })).rejects.toThrow(/stride 12 must be an integer in 1..8/);
  });
});
