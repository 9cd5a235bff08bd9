/**
 * The run's work that the coalition, RISE and gradient methods announce to the progress display,
 * against the work they do: exact totals where the work is known in advance, a worst case stated as
 * such (MiSuRe's dilations) until it is known. The display runs on a fake clock (one second a status).
 */
import { beforeAll, describe, expect, it } from "vitest";
import { loadCase } from "../src/data/case.js";
import type { Attribution } from "../src/explain/attribution.js";
import { explainDeepLift } from "../src/explain/deeplift.js";
import { explainGradCam } from "../src/explain/gradcam.js";
import { explainGradXInput } from "../src/explain/gradxinput.js";
import { explainGuided } from "../src/explain/guided.js";
import { explainIg } from "../src/explain/ig.js";
import { explainKernelShap } from "../src/explain/kernelshap.js";
import { explainLime } from "../src/explain/lime.js";
import { explainMisure } from "../src/explain/misure.js";
import { explainRise } from "../src/explain/rise.js";
import type { RunOptions } from "../src/explain/run.js";
import { explainSaliency } from "../src/explain/saliency.js";
import { explainSmoothGrad } from "../src/explain/smoothgrad.js";
import { Model } from "../src/model/model.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import type { TargetSpec } from "../src/target/target.js";
import { RunProgress, type RunStatus } from "../src/util/progress.js";
import { regionMeanModel, SIZE, tmp, writeImage, writeModel } from "./helpers/tiny.js";

const ROI: TargetSpec = { roi: { row: 12, col: 12, height: 8, width: 8 } };
let modelPath: string, camPath: string, image: string;
beforeAll(async () => {
  const dir = tmp();
  image = await writeImage(dir, "flat.png", () => 200);
  // a region-mean model: the RoI's prediction depends on the 16x8 region right of it (MiSuRe needs a predicted RoI)
  modelPath = writeModel(dir, "region.onnx", regionMeanModel([{ row: 8, col: 24, height: 16, width: 8, weight: 10 }], -10 * 0.5 * (200 / 255)));
  // Grad-CAM needs a feature map: Conv 3x3 (3→2) → Relu → Conv 1x1 (2→1) → Sigmoid
  const g = new GraphBuilder("cam");
  const x = g.input("image", ["N", 3, SIZE, SIZE]);
  const c = g.node(
    "Conv",
    [
      x,
      g.constant(
        [2, 3, 3, 3],
        Array.from({ length: 54 }, (_, i) => ((i % 7) - 3) / 10),
      ),
      g.constant([2], [0.1, 0.2]),
    ],
    {
      kernel_shape: [3, 3],
      pads: [1, 1, 1, 1],
    },
  );
  const r = g.node("Relu", [c], {}, ["feat"]);
  const z = g.node("Conv", [r, g.constant([1, 2, 1, 1], [1, -0.5]), g.constant([1], [0])], { kernel_shape: [1, 1] });
  g.output(g.node("Sigmoid", [z], {}, ["mask"]), ["N", 1, SIZE, SIZE]);
  camPath = writeModel(dir, "cam.onnx", g.toBytes());
});

type Explain = (m: Model, k: Awaited<ReturnType<typeof loadCase>>, run: RunOptions) => Promise<Attribution>;

async function run(explain: Explain, path = modelPath): Promise<{ a: Attribution; statuses: RunStatus[] }> {
  const statuses: RunStatus[] = [];
  let clock = 0;
  const overall = new RunProgress((s) => statuses.push(s), { now: () => (clock += 1000) });
  const model = await Model.load(path, { threads: 1 });
  try {
    const kase = await loadCase(model, image);
    const a = await explain(model, kase, { seed: 2, batchSize: 4, onProgress: overall.listener });
    return { a, statuses };
  } finally {
    await model.release();
  }
}

/** Every status announced `total` exactly, and the display ended there with nothing left. */
function expectExact(statuses: RunStatus[], total: number): void {
  expect(statuses.length).toBeGreaterThan(0);
  for (const s of statuses) expect(s).toMatchObject({ total, exact: true });
  for (const s of statuses.slice(0, -1)) if (s.done > 0 && s.done < total) expect(s.etaMs).toBeGreaterThan(0);
  expect(statuses.at(-1)).toMatchObject({ done: total, total, exact: true, etaMs: 0 });
}

describe("the work a run announces to its progress display", () => {
  it("coalition methods: exactly the coalitions that need a pass, the empty one (KernelSHAP) and the unperturbed pass", async () => {
    const lime = await run((m, k, r) => explainLime(m, k, ROI, { ...r, partition: "grid", block: 8, coalitions: 30 }));
    expectExact(lime.statuses, lime.a.forwardPasses);
    expect(lime.a.forwardPasses).toBeLessThanOrEqual(1 + 30);
    const shap = await run((m, k, r) => explainKernelShap(m, k, ROI, { ...r, partition: "grid", block: 8, coalitions: 40 }));
    expectExact(shap.statuses, shap.a.forwardPasses);
    // the first status already announced the whole run, the empty coalition's stage included
    expect(shap.statuses[0].done).toBeLessThan(shap.a.forwardPasses);
  });

  it("RISE: 1 + masks", async () => {
    const { a, statuses } = await run((m, k, r) => explainRise(m, k, ROI, { ...r, masks: 24, cells: 4 }));
    expect(a.forwardPasses).toBe(25);
    expectExact(statuses, 25);
  });

  it("one-gradient methods: the unperturbed pass and one gradient evaluation (DeepLIFT: and its baseline's forward pass)", async () => {
    for (const [name, explain, total] of [
      ["saliency", (m, k, r) => explainSaliency(m, k, ROI, r), 2],
      ["guided", (m, k, r) => explainGuided(m, k, ROI, r), 2],
      ["gradxinput", (m, k, r) => explainGradXInput(m, k, ROI, r), 2],
      ["deeplift", (m, k, r) => explainDeepLift(m, k, ROI, r), 3],
    ] as [string, Explain, number][]) {
      const { a, statuses } = await run(explain);
      expect(a.backwardPasses, name).toBe(1);
      expectExact(statuses, total);
    }
  });

  it("IG and SmoothGrad: 1 + steps + 1 (the baseline) and 1 + samples", async () => {
    const ig = await run((m, k, r) => explainIg(m, k, ROI, { ...r, steps: 7 }));
    expect(ig.a.forwardPasses).toBe(9);
    expectExact(ig.statuses, 9);
    const sg = await run((m, k, r) => explainSmoothGrad(m, k, ROI, { ...r, samples: 6 }));
    expect(sg.a.forwardPasses).toBe(7);
    expectExact(sg.statuses, 7);
  });

  it("Grad-CAM: 2 evaluations, with a worst case of 3 (a map that is 0 everywhere tries deeper layers) until the first is done", async () => {
    const { a, statuses } = await run((m, k, r) => explainGradCam(m, k, { ...ROI, outcome: "mean-prob" }, r), camPath);
    expect(a.forwardPasses).toBe(2);
    expect(statuses.at(-1)).toMatchObject({ done: 2, total: 2, exact: true, etaMs: 0 });
    const before = statuses.filter((s) => !s.exact);
    expect(before.length).toBeGreaterThan(0);
    for (const s of before) expect(s).toMatchObject({ total: 2, bound: 3 });
  });

  it("MiSuRe: a worst case of 1 + (15 + 1) dilated masks + 2·steps + 1 until the sufficient region is found, then its exact total", async () => {
    const steps = 4;
    const { a, statuses } = await run((m, k, r) => explainMisure(m, k, ROI, { ...r, iterations: steps }));
    // 32x32: each dilation grows the mask by at least 2 px, so at most ceil(31 / 2) = 16 dilations reach the whole image
    const bound = 1 + (Math.ceil((SIZE - 1) / 2) + 1) + 2 * steps + 1;
    const before = statuses.filter((s) => !s.exact);
    expect(before.length).toBeGreaterThan(0);
    for (const s of before) expect(s).toMatchObject({ total: undefined, bound });
    const after = statuses.filter((s) => s.exact);
    expect(after.length).toBeGreaterThan(0);
    for (const s of after) expect(s.total).toBe(a.forwardPasses);
    expect(a.forwardPasses).toBeLessThanOrEqual(bound);
    expect(statuses.at(-1)).toMatchObject({ done: a.forwardPasses, exact: true, etaMs: 0 });
    expect(a.backwardPasses).toBe(steps);
  });
});
