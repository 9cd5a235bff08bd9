/** The passes a PdCR run announces to its progress display, against the passes it runs. */
import { beforeAll, describe, expect, it } from "vitest";
import { loadCase } from "../src/data/case.js";
import { explainPdcr } from "../src/explain/pdcr.js";
import { Model } from "../src/model/model.js";
import { type ProgressEvent, RunProgress, type RunStatus } from "../src/util/progress.js";
import { flatBank, regionMeanModel, tmp, writeImage, writeModel } from "./helpers/tiny.js";

// The RoI outcome depends only on the four 8x8 blocks of rows 0-15, cols 16-31 (see pdcr.test.ts):
// of the 15 blocks outside the RoI, exactly those 4 pass the screen.
const ROI = { row: 16, col: 0, height: 8, width: 8 };
let modelPath: string, image: string;
beforeAll(async () => {
  const dir = tmp();
  image = await writeImage(dir, "bright.png", () => 230);
  modelPath = writeModel(dir, "causal.onnx", regionMeanModel([{ row: 0, col: 16, height: 16, width: 16, weight: 50 }], -40));
});

async function run(schedule: "paper" | "fast") {
  const events: ProgressEvent[] = [];
  const statuses: RunStatus[] = [];
  const overall = new RunProgress((s) => statuses.push(s));
  const model = await Model.load(modelPath, { threads: 1 });
  try {
    const kase = await loadCase(model, image);
    const onProgress = (e: ProgressEvent) => (events.push(e), overall.listener(e));
    const a = await explainPdcr(model, kase, { roi: ROI }, { bank: flatBank([20, 30, 10]), schedule, batchSize: 4, onProgress });
    return { a, events, statuses };
  } finally {
    await model.release();
  }
}

describe("a PdCR run's announced passes", () => {
  it("paper schedule: the worst case 1 + 3·15 + 50·15 during the screen, then exactly 1 + 3·15 + 50·4 with 4 of 15 blocks above τ", async () => {
    const { a, events, statuses } = await run("paper");
    expect(a.units).toHaveLength(15);
    expect(a.units.filter((u) => u.status === "above-tau")).toHaveLength(4);
    const screening = events.filter((e) => e.stage === "screening");
    expect(screening.length).toBeGreaterThan(0);
    for (const e of screening) expect(e.plan).toEqual({ bound: 1 + 3 * 15 + 50 * 15 });
    const estimating = events.filter((e) => e.stage === "estimating");
    for (const e of estimating) expect(e.plan).toEqual({ total: 1 + 3 * 15 + 50 * 4, bound: 1 + 3 * 15 + 50 * 4 });
    // the display's count ends where the run's own count of passes does
    const last = statuses.at(-1)!;
    expect(last).toMatchObject({ done: 246, total: 246, exact: true, label: "estimating" });
    expect(a.forwardPasses).toBe(246);
  });

  it("fast schedule: the display ends at the passes run, and never announced a bound below them", async () => {
    const { a, statuses } = await run("fast");
    const last = statuses.at(-1)!;
    expect(last.done).toBe(a.forwardPasses);
    for (const s of statuses) {
      if (s.bound !== undefined) expect(s.bound).toBeGreaterThanOrEqual(a.forwardPasses);
      expect(s.done).toBeLessThanOrEqual(a.forwardPasses);
    }
    // before the rounds begin only the bound is known
    expect(statuses.some((s) => s.label.startsWith("screening") && s.total === undefined && s.bound !== undefined)).toBe(true);
  });
});
