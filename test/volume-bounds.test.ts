/**
 * Volume runs a user can watch and bound: the passes a run announces (cost line, progress plan)
 * against the passes it runs, and --max-passes / --max-time stopping a fixed schedule so that a
 * rerun resumes to the identical map.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { readNifti } from "../src/data/volume/nifti.js";
import { buildVolumeBank, checkBankForCard, type VolumeBank } from "../src/data/volume/volume-bank.js";
import { loadVolumeCase } from "../src/data/volume/volume-case.js";
import { FAST_SCHEDULE } from "../src/explain/adaptive.js";
import { plannedCost } from "../src/explain/volume/cost.js";
import { explainVolumeBlocks, type VolumeAttribution, type VolumeBlockSpec, volumeTarget } from "../src/explain/volume/engine.js";
import { RunBound, RunStopped } from "../src/explain/volume/run-bound.js";
import { VolumeModel } from "../src/model/volume-model.js";
import { type ProgressEvent, RunProgress, type RunStatus } from "../src/util/progress.js";
import { ROI, writeCausalFixture } from "./helpers/causal3d.js";
import { segcause } from "./helpers/cli.js";
import { tmp } from "./helpers/tiny.js";

let dir: string, model: string, image: string, manifest: string, bank: VolumeBank;

beforeAll(async () => {
  dir = tmp();
  ({ model, image, manifest } = await writeCausalFixture(dir));
  const m = await VolumeModel.load(model);
  bank = await buildVolumeBank(manifest, m.card, { box: [8, 8, 8], perVolume: 6, seed: 0, splits: ["train"] });
  await m.release();
});

/** PdCR's paper schedule with τ = 0: every one of the 7 boxes passes the screen, 1 + 7·3 + 7·5 = 57 passes. */
const paper = (): VolumeBlockSpec => ({
  method: "pdcr",
  block: [8, 8, 8],
  estimator: { screen: 3, samples: 5, tau: 0 },
  intervention: { kind: "bank", bank },
  settings: {},
  seed: 4,
});

async function explain(spec: VolumeBlockSpec): Promise<VolumeAttribution> {
  const m = await VolumeModel.load(model);
  try {
    const kase = await loadVolumeCase(m, image);
    return await explainVolumeBlocks(m, kase, { roi: ROI }, spec);
  } finally {
    await m.release();
  }
}

async function stopped(spec: VolumeBlockSpec): Promise<RunStopped> {
  const e = await explain(spec).catch((x: unknown) => x);
  expect(e).toBeInstanceOf(RunStopped);
  return e as RunStopped;
}

describe("a bounded fixed schedule stops, keeps its samples and resumes to the identical map", () => {
  it("--max-passes: each run adds at most its bound; the last, unbounded one gives the map of a run that was never stopped", async () => {
    const whole = await explain(paper());
    expect(whole.forwardPasses).toBe(57);
    const checkpointPath = join(dir, "bounded.checkpoint.json");
    const bounded = { ...paper(), checkpointPath };
    const first = await stopped({ ...bounded, bound: new RunBound({ maxPasses: 10, maxSeconds: 0 }) });
    expect(first).toMatchObject({ bound: "--max-passes 10", ranPasses: 10, keptSamples: 10 });
    // stopped during the screen: only the worst case is known yet
    expect(first.plan).toEqual({ bound: 1 + 7 * 3 + 7 * 5 });
    expect(first.describe()).toMatch(/rerun the same command to continue \(each run adds at most 10 passes\)/);
    const second = await stopped({ ...bounded, bound: new RunBound({ maxPasses: 30, maxSeconds: 0 }) });
    expect(second).toMatchObject({ ranPasses: 30, keptSamples: 40 });
    expect(second.plan).toEqual({ total: 57, bound: 57 });
    const last = await explain({ ...bounded, bound: new RunBound({ maxPasses: 0, maxSeconds: 0 }) });
    expect(last.notes).toContain("resumed from checkpoint: 40 samples reused");
    expect(last.forwardPasses).toBe(57);
    expect(Array.from(last.map)).toEqual(Array.from(whole.map));
    expect(Array.from(last.stderrMap)).toEqual(Array.from(whole.stderrMap));
  });

  it("--max-time stops between batches once the clock passes it (a fake clock: no timing in the test)", async () => {
    let t = 0;
    // the clock reads 0 when the bound is made and at the first check, then 5 s on
    const clock = () => (t++ < 2 ? 0 : 5000);
    const checkpointPath = join(dir, "timed.checkpoint.json");
    const e = await stopped({ ...paper(), checkpointPath, batchSize: 2, bound: new RunBound({ maxPasses: 0, maxSeconds: 4 }, clock) });
    // one slice of two batches of 2 ran before the clock passed 4 s
    expect(e).toMatchObject({ bound: "--max-time 4", ranPasses: 4, keptSamples: 4 });
    const done = await explain({ ...paper(), checkpointPath });
    expect(done.notes).toContain("resumed from checkpoint: 4 samples reused");
  });

  it("names the bound that refused: a pass bound not yet reached refuses a sample costing more than it leaves", () => {
    const b = new RunBound({ maxPasses: 10, maxSeconds: 3600 }, () => 0);
    b.count(8);
    // a sample of 4 window runs does not fit in the 2 passes left, so the run stops at 8 of its 10
    expect(b.allow(4)).toBe(2);
    expect(b.reason()).toBe("--max-passes 10");
    let t = 0;
    const timed = new RunBound({ maxPasses: 10, maxSeconds: 4 }, () => t);
    t = 5000;
    expect(timed.allow(4)).toBe(0);
    expect(timed.reason()).toBe("--max-time 4");
  });

  it("the fast schedule takes no stop: its budget is part of the map (as in 2D)", async () => {
    const a = await explain({
      ...paper(),
      adaptive: { ...FAST_SCHEDULE, tau: 0, maxSamples: 8, maxPasses: 40 },
      checkpointPath: join(dir, "fast.checkpoint.json"),
      bound: new RunBound({ maxPasses: 5, maxSeconds: 0 }),
    });
    expect(a.forwardPasses).toBeGreaterThan(5);
    expect(a.forwardPasses).toBeLessThanOrEqual(40);
    expect(a.provenance.settings).toMatchObject({ maxPasses: 40 });
  });
});

describe("a bank against the model's card", () => {
  it("accepts a spacing within the tolerance banks are built with (1%), refuses one beyond it", async () => {
    const m = await VolumeModel.load(model);
    await m.release();
    const at = (f: number) => ({
      ...m.card,
      input: { ...m.card.input, spacing: m.card.input.spacing.map((s) => s * f) as [number, number, number] },
    });
    expect(bank.header.spacing).toEqual(m.card.input.spacing);
    expect(() => checkBankForCard(bank, at(1.005), "b.scvbank")).not.toThrow();
    expect(() => checkBankForCard(bank, at(1 / 1.005), "b.scvbank")).not.toThrow();
    expect(() => checkBankForCard(bank, at(1.05), "b.scvbank")).toThrow(
      /bank b\.scvbank was cut with .* at 1x1x1 mm, the model's card says .* at 1\.05x1\.05x1\.05 mm/,
    );
  });
});

describe("--max-time on the fast schedule", () => {
  it("becomes a pass budget after the screen, recorded in the provenance (so --max-passes reproduces the map)", async () => {
    // a budget already spent when the screen ends: no rounds after it
    const a = await explain({ ...paper(), adaptive: { ...FAST_SCHEDULE, tau: 0, maxSamples: 8, maxSeconds: 1e-6 } });
    const budget = (a.provenance.settings as { timeBudgetPasses?: number }).timeBudgetPasses;
    expect(budget).toBe(a.forwardPasses);
    const again = await explain({ ...paper(), adaptive: { ...FAST_SCHEDULE, tau: 0, maxSamples: 8, maxPasses: budget! } });
    expect(Array.from(again.map)).toEqual(Array.from(a.map));
  });
});

describe("the passes a volume run announces", () => {
  async function watched(spec: VolumeBlockSpec) {
    const events: ProgressEvent[] = [];
    const statuses: RunStatus[] = [];
    let now = 0;
    // a fake clock: one second per event
    const overall = new RunProgress((s) => statuses.push(s), { now: () => (now += 1000) });
    const a = await explain({ ...spec, onProgress: (e) => (events.push(e), overall.listener(e)) });
    return { a, events, statuses };
  }

  it("paper schedule: the worst case during the screen, then exactly 1 + 3·7 + 50 with the causal box the only one above τ", async () => {
    const { a, events, statuses } = await watched({ ...paper(), estimator: { screen: 3, samples: 50, tau: 0.02 } });
    for (const e of events.filter((x) => x.stage === "screening")) expect(e.plan).toEqual({ bound: 1 + 3 * 7 + 50 * 7 });
    const estimating = events.filter((x) => x.stage === "estimating");
    expect(estimating.length).toBeGreaterThan(0);
    for (const e of estimating) expect(e.plan).toEqual({ total: 72, bound: 72 });
    expect(events.some((e) => e.stage === "unperturbed pass")).toBe(true);
    expect(statuses.at(-1)).toMatchObject({ done: 72, total: 72, exact: true, label: "estimating", etaMs: 0 });
    expect(a.forwardPasses).toBe(72);
  });

  it("fast schedule: the display ends at the passes run and never announced a bound below them", async () => {
    const { a, statuses } = await watched({
      ...paper(),
      adaptive: { ...FAST_SCHEDULE, maxSamples: 48 },
      estimator: { screen: 3, samples: 48, tau: 0.02 },
    });
    expect(statuses.at(-1)!.done).toBe(a.forwardPasses);
    for (const s of statuses) {
      if (s.bound !== undefined) expect(s.bound).toBeGreaterThanOrEqual(a.forwardPasses);
      expect(s.done).toBeLessThanOrEqual(a.forwardPasses);
    }
  });

  it("the cost said before the run: exact for zero, the paper's worst case, the fast schedule's screen as estimate", async () => {
    const m = await VolumeModel.load(model);
    try {
      const kase = await loadVolumeCase(m, image);
      const target = await volumeTarget(m, kase, { roi: ROI });
      const zero: VolumeBlockSpec = {
        method: "zero",
        block: [8, 8, 8],
        estimator: { screen: 1, samples: 0, tau: 0.02 },
        intervention: { kind: "constant", value: 0, describe: {} },
        settings: {},
      };
      expect(plannedCost(kase, target, zero)).toMatchObject({ units: 7, exact: 8, bound: 8 });
      expect(plannedCost(kase, target, paper())).toMatchObject({ units: 7, bound: 1 + 7 * 3 + 7 * 5 });
      expect(plannedCost(kase, target, paper()).exact).toBeUndefined();
      // 3 octree groups (2 draws each) and 7 boxes of 4 strata; rounds up to 48 draws
      const fast = plannedCost(kase, target, { ...paper(), adaptive: { ...FAST_SCHEDULE, maxSamples: 48 } });
      expect(fast).toMatchObject({ units: 7, estimate: 1 + 2 * 3 + 4 * 7, bound: 1 + 2 * 3 + 4 * 7 * 12 });
    } finally {
      await m.release();
    }
  });
});

describe("the CLI on a bounded volume run", () => {
  const args = (out: string, ...more: string[]) => [
    "explain",
    "--model",
    model,
    "--image",
    image,
    "--roi",
    "8,8,0,8,8,8",
    "--method",
    "zero",
    "--block",
    "8",
    "--out",
    out,
    ...more,
  ];

  it("says the cost, stops at --max-passes with only the checkpoint written, and a rerun finishes the map of an unbounded run", async () => {
    const out = join(dir, "cli-bounded");
    const r = segcause(...args(out, "--max-passes", "3", "--no-progress"));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^planned: 7 boxes, 8 passes \(≈\d+:\d\d\) at \d+ ms per pass \(measured\)/m);
    expect(r.stdout).toMatch(/^stopped at --max-passes 3 after 3 passes in this run; 4 of 8 passes of the map are done/);
    expect(existsSync(join(out, ".checkpoint.json"))).toBe(true);
    expect(existsSync(join(out, "manifest.json"))).toBe(false);
    const json = segcause(...args(out, "--max-passes", "3", "--json"));
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ complete: false, stoppedAt: "--max-passes 3", ranPasses: 3, keptSamples: 6 });
    const done = segcause(...args(out, "--quiet"));
    expect(done.code, done.stderr).toBe(0);
    expect(done.stderr).toBe("");
    expect(existsSync(join(out, ".checkpoint.json"))).toBe(false);
    const fresh = join(dir, "cli-unbounded");
    expect(segcause(...args(fresh, "--quiet")).code).toBe(0);
    const map = async (d: string) => Array.from((await readNifti(join(d, "map.nii.gz"))).data);
    expect(await map(out)).toEqual(await map(fresh));
    expect(JSON.parse(readFileSync(join(out, "map.json"), "utf8")).notes).toContain("resumed from checkpoint: 6 samples reused");
  });
});
