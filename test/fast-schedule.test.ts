import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { loadCase } from "../src/data/case.js";
import { keyedOptions } from "../src/evaluate/cell-key.js";
import { stratifyDraws } from "../src/explain/block-effects.js";
import { buildQuadtree, isBlockRef } from "../src/explain/hierarchy.js";
import { type MethodDefinition, resolveOptions } from "../src/explain/methods.js";
import { explainPdcr, pdcrMethod } from "../src/explain/pdcr.js";
import type { PartialMap } from "../src/explain/run.js";
import { blockGrid } from "../src/explain/units.js";
import { Model } from "../src/model/model.js";
import { writeAttribution } from "../src/report/write.js";
import { Region } from "../src/target/roi.js";
import { t975 } from "../src/util/tdist.js";
import { flatBank, regionMeanModel, tmp, writeImage, writeModel } from "./helpers/tiny.js";

// 64x64 images, 8x8 blocks: an 8x8 grid of 64 blocks, the RoI (rows 56-63, cols 0-7) is one of them.
const S = 64;
const ROI = { row: 56, col: 0, height: 8, width: 8 };
// The prediction depends only on the mean of rows 0-15, cols 32-47 (four blocks).
const CAUSAL = [
  [0, 32],
  [0, 40],
  [8, 32],
  [8, 40],
];
const isCausal = (u: { row: number; col: number }) => CAUSAL.some(([r, c]) => r === u.row && c === u.col);

let dir: string, image: string, causalModel: string, smoothModel: string, wideModel: string;

beforeAll(async () => {
  dir = tmp();
  image = await writeImage(dir, "bright.png", () => 230, S);
  causalModel = writeModel(dir, "causal.onnx", regionMeanModel([{ row: 0, col: 32, height: 16, width: 16, weight: 50 }], -40, { size: S }));
  // A smooth effect: one block drives a sigmoid gently, so every patch moves mean-prob by a different amount.
  smoothModel = writeModel(dir, "smooth.onnx", regionMeanModel([{ row: 0, col: 40, height: 8, width: 8, weight: 3 }], -1.5, { size: S }));
  // Eight blocks (rows 0-15, cols 0-31) drive the sigmoid gently: every block needs many rounds.
  wideModel = writeModel(dir, "wide.onnx", regionMeanModel([{ row: 0, col: 0, height: 16, width: 32, weight: 3 }], -1.5, { size: S }));
});

async function run(
  modelPath: string,
  bank: number[],
  opts: Parameters<typeof explainPdcr>[3] extends infer O ? Partial<O> : never,
  outcome: "dice" | "mean-prob" = "dice",
) {
  const model = await Model.load(modelPath, { threads: 1 });
  try {
    const kase = await loadCase(model, image);
    return await explainPdcr(model, kase, { roi: ROI, outcome }, { bank: flatBank(bank), ...opts });
  } finally {
    await model.release();
  }
}

describe("quadtree and strata", () => {
  it("covers every block exactly once, in groups no larger than the top size", () => {
    const grid = blockGrid(S, S, 8, Region.rect(ROI, S, S));
    const tree = buildQuadtree(grid.units, 8, 4);
    const seen = new Map<number, number>();
    const walk = (ref: number) => {
      if (isBlockRef(ref)) seen.set(-1 - ref, (seen.get(-1 - ref) ?? 0) + 1);
      else tree.groups[ref - tree.blockCount].children.forEach(walk);
    };
    tree.top.forEach(walk);
    expect(seen.size).toBe(63);
    expect([...seen.values()].every((v) => v === 1)).toBe(true);
    expect(tree.groups.every((g) => g.members.length <= 16 && g.members.length >= 2)).toBe(true);
  });

  it("splits draws into equal strata ordered by key", () => {
    const { strata, weights } = stratifyDraws(10, 4, (d) => -d);
    expect(strata.flat().sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(strata[0]).toEqual([9, 8]);
    expect(weights.reduce((a, b) => a + b)).toBeCloseTo(1, 12);
  });
});

describe("fast PdCR schedule on models with known causal structure", () => {
  it("finds exactly the causal blocks, at a fraction of the paper's passes", async () => {
    const bank = [20, 30, 10, 25, 15, 35, 5, 40];
    const fast = await run(causalModel, bank, {});
    const paper = await run(causalModel, bank, { schedule: "paper" });
    for (const a of [fast, paper]) {
      for (const u of a.units) expect(u.effect).toBeCloseTo(isCausal(u) ? -100 : 0, 6);
    }
    for (const u of fast.units) expect(u.status).toBe(isCausal(u) ? "above-tau" : "screened-out");
    expect(paper.forwardPasses).toBe(1 + 3 * 63 + 50 * 4);
    // Only the causal quadrant's blocks are screened one by one; a deterministic effect stops after one round.
    expect(fast.units.filter((u) => u.samples > 0).length).toBeLessThanOrEqual(16);
    expect(fast.forwardPasses).toBeLessThan(paper.forwardPasses / 5);
    expect(fast.provenance.settings).toMatchObject({ schedule: "fast", strata: 4, groupSize: 8 });
  });

  it("gives an all-zero map for a model that ignores its input in a handful of passes", async () => {
    const a = await run(writeModel(dir, "const.onnx", regionMeanModel([], Math.log(9), { size: S })), [0, 60, 120, 255], {});
    expect(a.map.every((v) => v === 0)).toBe(true);
    expect(a.forwardPasses).toBeLessThan(10);
  });

  it("does not depend on the batch size", async () => {
    const bank = [20, 240, 60, 200, 100, 160, 140, 180];
    const m1 = (await run(smoothModel, bank, { batchSize: 1 }, "mean-prob")).map;
    const m8 = (await run(smoothModel, bank, { batchSize: 8 }, "mean-prob")).map;
    expect(Buffer.from(m8.buffer).equals(Buffer.from(m1.buffer))).toBe(true);
  });

  it("reports its map after every round without changing it: the last report is the result", async () => {
    const bank = [20, 240, 60, 200, 100, 160, 140, 180];
    const partials: PartialMap[] = [];
    const heard = await run(smoothModel, bank, { onPartialMap: (p) => partials.push(p) }, "mean-prob");
    const plain = await run(smoothModel, bank, {}, "mean-prob");
    expect(Buffer.from(heard.map.buffer).equals(Buffer.from(plain.map.buffer))).toBe(true);
    expect(heard.units).toEqual(plain.units);
    // one report after the screen, one after each round, each with more passes; the maps differ as the rounds go
    expect(partials.length).toBeGreaterThanOrEqual(2);
    for (let i = 1; i < partials.length; i++) expect(partials[i].passes).toBeGreaterThan(partials[i - 1].passes);
    expect(new Set(partials.map((p) => JSON.stringify(p.units.map((u) => u.effect)))).size).toBeGreaterThanOrEqual(2);
    const last = partials.at(-1)!;
    expect([last.height, last.width, last.passes]).toEqual([S, S, heard.forwardPasses]);
    expect(last.units).toEqual(heard.units);
  });

  it("resumes from a checkpoint with the identical map", async () => {
    const ck = join(dir, "fast-ck.json");
    const bank = [20, 240, 60, 200, 100, 160, 140, 180];
    const full = await run(smoothModel, bank, { checkpointPath: ck }, "mean-prob");
    // Drop the later samples of every unit, as if the run had been killed part-way.
    const saved = JSON.parse(readFileSync(ck, "utf8"));
    for (const k of Object.keys(saved.samples)) saved.samples[k] = saved.samples[k].slice(0, 4);
    writeFileSync(ck, JSON.stringify(saved));
    const resumed = await run(smoothModel, bank, { checkpointPath: ck }, "mean-prob");
    expect(Array.from(resumed.map)).toEqual(Array.from(full.map));
    expect(resumed.notes.some((n) => n.startsWith("resumed from checkpoint"))).toBe(true);
  });

  it("its 95% intervals cover the true ATE at the nominal rate", async () => {
    // 40 flat patches spread over 0..255: the effect of each patch on mean-prob is known in closed
    // form, so the true ATE (uniform draw from the bank) is exact.
    const bank = Array.from({ length: 40 }, (_, k) => Math.round((k * 255) / 39));
    const sig = (z: number) => 1 / (1 + Math.exp(-z));
    const baseP = sig(3 * (230 / 255) - 1.5);
    const trueAte = (100 * bank.reduce((s, v) => s + sig(3 * (v / 255) - 1.5) - baseP, 0)) / bank.length;
    const model = await Model.load(smoothModel, { threads: 1 });
    const kase = await loadCase(model, image);
    let covered = 0;
    const runs = 120;
    for (let seed = 0; seed < runs; seed++) {
      // Two rounds of four stratified draws per block: a small-sample interval is the hard case.
      const a = await explainPdcr(
        model,
        kase,
        { roi: ROI, outcome: "mean-prob" },
        { bank: flatBank(bank), seed, samples: 8, fast: { absTol: 0, fidelity: 0 } },
      );
      const u = a.units.find((x) => x.row === 0 && x.col === 40)!;
      expect(u.samples).toBe(8);
      const half = t975(u.dof!) * u.stderr;
      if (Math.abs(u.rawEffect - trueAte) <= half) covered++;
    }
    await model.release();
    const rate = covered / runs;
    expect(rate).toBeGreaterThanOrEqual(0.88);
    expect(rate).toBeLessThanOrEqual(1);
  });

  it("reports how much effect its screen may have dropped: the cleared groups' largest |Δ|, summed", async () => {
    // One block barely matters (every patch moves mean-prob by less than τ), all others not at all:
    // the whole grid is cleared as one quadtree group, whose draws all move the outcome by the same Δ.
    const weak = writeModel(dir, "weak.onnx", regionMeanModel([{ row: 0, col: 40, height: 8, width: 8, weight: 0.0005 }], 1, { size: S }));
    const sig = (z: number) => 1 / (1 + Math.exp(-z));
    const delta = 100 * Math.abs(sig(1) - sig(1 + 0.0005 * (230 / 255)));
    expect(delta).toBeLessThan(0.02);
    const a = await run(weak, [0, 0], {}, "mean-prob");
    expect(a.map.every((v) => v === 0)).toBe(true);
    expect(a.screenLoss).toMatchObject({ blocks: 63, groups: 1, alone: 0 });
    expect(a.screenLoss!.bound).toBeCloseTo(delta, 4);
    expect(a.notes.join("\n")).toMatch(
      /the screen set 63 blocks to 0 \(1 quadtree group cleared whole, 0 blocks alone\); their largest \|Δ\| in any screening draw sums to 0\.0089:/,
    );
    // map.json carries it
    const model = await Model.load(weak, { threads: 1 });
    const out = join(dir, "weak-out");
    await writeAttribution(a, await loadCase(model, image), out);
    await model.release();
    expect(JSON.parse(readFileSync(join(out, "map.json"), "utf8")).screenLoss).toEqual(a.screenLoss);
    // the paper schedule has no such bound
    expect((await run(weak, [0, 0], { schedule: "paper" }, "mean-prob")).screenLoss).toBeUndefined();
  });

  describe("pass budget", () => {
    const bank = [20, 240, 60, 200, 100, 160, 140, 180];
    // No precision target: without a budget every causal block takes all its 48 draws.
    const precise = { absTol: 0, fidelity: 0 };

    it("stops the rounds at the budget and says how noisy the map is", async () => {
      const free = await run(wideModel, bank, { fast: precise }, "mean-prob");
      // map noise 0 cannot be reached: the note says where the rounds stopped, and why
      expect(free.notes.find((n) => n.includes("above the target 0 (--map-noise)"))).toMatch(
        /^the map's noise is [0-9.]+ of its spread, above the target 0 \(--map-noise\): no block could take another round \(each reached the cap of 48 draws, or a standard error below 0\)/,
      );
      const budget = Math.floor(free.forwardPasses / 3);
      const capped = await run(wideModel, bank, { fast: { ...precise, maxPasses: budget } }, "mean-prob");
      expect(capped.forwardPasses).toBeLessThanOrEqual(budget);
      // Rounds cost 4 passes each: all but the last few passes of the budget are used.
      expect(capped.forwardPasses).toBeGreaterThan(budget - 4);
      expect(capped.notes.find((n) => n.startsWith("pass budget reached"))).toMatch(
        new RegExp(`${capped.forwardPasses} of ${budget} passes; the map's noise is [0-9.]+ of its spread`),
      );
      // The eight causal blocks keep their sign; their SEs are wider than with every draw.
      const causal = (a: typeof free) => a.units.filter((u) => u.row < 16 && u.col < 32);
      for (const u of causal(capped)) expect(u.effect).toBeLessThan(0);
      const se = (a: typeof free) => causal(a).reduce((s, u) => s + u.stderr, 0);
      expect(se(capped)).toBeGreaterThan(se(free));
      expect(capped.provenance.settings).toMatchObject({ maxPasses: budget });
    });

    it("changes nothing when it is not reached, and always completes the screen", async () => {
      const free = await run(wideModel, bank, {}, "mean-prob");
      const roomy = await run(wideModel, bank, { fast: { maxPasses: free.forwardPasses } }, "mean-prob");
      expect(Array.from(roomy.map)).toEqual(Array.from(free.map));
      expect(roomy.notes.some((n) => n.startsWith("pass budget"))).toBe(false);
      const tiny = await run(wideModel, bank, { fast: { maxPasses: 10 } }, "mean-prob");
      expect(tiny.forwardPasses).toBeGreaterThan(10);
      expect(tiny.units.filter((u) => u.row < 16 && u.col < 32).every((u) => u.samples === 4)).toBe(true);
      expect(tiny.notes.find((n) => n.startsWith("pass budget exceeded"))).toMatch(
        new RegExp(`the screen alone needed ${tiny.forwardPasses} passes \\(budget 10\\)`),
      );
    });

    it("a time budget becomes a pass budget after the screen, reported so that --max-passes reproduces the map", async () => {
      const hurried = await run(wideModel, bank, { fast: { ...precise, maxSeconds: 1e-6 } }, "mean-prob");
      const note = hurried.notes.find((n) => n.startsWith("time budget"));
      expect(note).toMatch(/the screen alone took [\d.]+ s .*no further rounds ran/); // a microsecond is gone before the screen ends
      const passes = Number(/--max-passes (\d+) reproduces this map/.exec(note ?? "")?.[1]);
      expect(passes).toBeGreaterThan(0);
      expect(hurried.provenance.settings).toMatchObject({ timeBudgetPasses: passes });
      const replay = await run(wideModel, bank, { fast: { ...precise, maxPasses: passes } }, "mean-prob");
      expect(Array.from(replay.map)).toEqual(Array.from(hurried.map));
      // ample time: the map of an unbudgeted run
      const free = await run(wideModel, bank, {}, "mean-prob");
      const ample = await run(wideModel, bank, { fast: { maxSeconds: 3600 } }, "mean-prob");
      expect(Array.from(ample.map)).toEqual(Array.from(free.map));
      expect(ample.notes.some((n) => n.startsWith("time budget"))).toBe(false);
    });

    it("enters evaluate's cell keys only when set, so published folders stay valid", () => {
      // the registry's untyped view, as evaluate holds it
      const pdcr = pdcrMethod as unknown as MethodDefinition;
      expect(keyedOptions(pdcr, resolveOptions(pdcr, {}))).not.toHaveProperty("maxPasses");
      expect(keyedOptions(pdcr, resolveOptions(pdcr, {}))).not.toHaveProperty("maxTime");
      expect(keyedOptions(pdcr, resolveOptions(pdcr, { maxPasses: 5000 }))).toMatchObject({ maxPasses: 5000, mapNoise: 0.3 });
      expect(() => resolveOptions(pdcr, { schedule: "paper", maxPasses: 5000 })).toThrow(/--max-passes applies only to --schedule fast/);
    });
  });
});
