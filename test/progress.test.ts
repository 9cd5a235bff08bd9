import { afterEach, describe, expect, it, vi } from "vitest";
import { fastPlan, paperPlan } from "../src/explain/work-plan.js";
import { type ProgressEvent, ProgressTracker, progressDisplay, RunProgress, type RunStatus, rateOf, runStatusText } from "../src/util/progress.js";

describe("progress after a resume", () => {
  afterEach(() => vi.useRealTimers());
  it("samples resumed from a checkpoint count as done but not in the rate, so the ETA is that of the work left", () => {
    vi.useFakeTimers();
    vi.setSystemTime(0);
    const events: ProgressEvent[] = [];
    const t = new ProgressTracker("estimating", 1000, (e) => events.push(e), 0);
    t.resume(800); // an earlier run finished 800 of 1000
    vi.setSystemTime(10_000);
    t.add(100); // 100 new samples in 10 s: 10/s, so the 100 left take 10 s
    const e = events.at(-1)!;
    expect(e).toMatchObject({ done: 900, total: 1000, resumed: 800, elapsedMs: 10_000 });
    expect(rateOf(e)).toBeCloseTo(10, 9);
    expect(e.etaMs).toBeCloseTo(10_000, 6);
    // without the resume the same run would have claimed 90/s and an ETA of about 1 s
    expect(events[0].etaMs).toBeUndefined(); // nothing of this run's own yet: no rate, no ETA
  });
});

/** A RunProgress on a fake clock, its statuses collected. */
function fakeRun(unit?: string) {
  vi.useFakeTimers();
  vi.setSystemTime(0);
  const statuses: RunStatus[] = [];
  const run = new RunProgress((s) => statuses.push(s), { unit });
  return { run, statuses, at: (ms: number) => vi.setSystemTime(ms) };
}

describe("one progress display per run", () => {
  afterEach(() => vi.useRealTimers());

  it("the overall ETA comes from the rate over the whole run, across stages, with the stage as the label", () => {
    const { run, statuses, at } = fakeRun();
    const plan = { total: 400, bound: 400 };
    const a = new ProgressTracker("screening", 100, run.listener, 0, plan);
    at(10_000);
    a.add(100); // 100 passes in 10 s
    const b = new ProgressTracker("estimating", 300, run.listener, 0, plan);
    at(15_000);
    b.add(50); // 150 of 400 in 15 s: 10/s overall, so 250 left take 25 s
    const s = statuses.at(-1)!;
    expect(s).toMatchObject({ label: "estimating", done: 150, total: 400, exact: true, elapsedMs: 15_000, resumed: 0 });
    expect(s.etaMs).toBeCloseTo(25_000, 6);
    expect(runStatusText(s)).toBe(" 38% 150/400 passes · estimating · elapsed 0:15 · ETA 0:25");
  });

  it("without a plan the total is the work known so far (finished stages and the current one)", () => {
    const { run, statuses, at } = fakeRun("images");
    const a = new ProgressTracker("one", 10, run.listener, 0);
    at(1000);
    a.add(10);
    const b = new ProgressTracker("two", 30, run.listener, 0);
    at(2000);
    b.add(10);
    expect(statuses.at(-1)).toMatchObject({ done: 20, total: 40, exact: true, etaMs: 2000 });
  });

  it("an estimated total says so: '≈' with its bound, or only the bound ('≤') while the screen runs", () => {
    const { run, statuses, at } = fakeRun();
    const t = new ProgressTracker("screening", 46, run.listener, 0, paperPlan(15, 3, 50));
    at(4600);
    t.add(46); // 46 of at most 1 + 3·15 + 50·15 = 796, at 10/s
    const s = statuses.at(-1)!;
    expect(s).toMatchObject({ done: 46, total: undefined, exact: false, bound: 796 });
    expect(s.etaBoundMs).toBeCloseTo(75_000, 6);
    expect(runStatusText(s)).toBe("  6% 46/≤796 passes · screening · elapsed 0:05 · ETA ≤1:15");
    const e = new ProgressTracker("estimating", 100, run.listener, 0, { total: 246, bound: 796 });
    at(9600);
    e.add(50);
    expect(runStatusText(statuses.at(-1)!)).toBe(" 39% 96/≈246 (≤796) passes · estimating · elapsed 0:10 · ETA ≈0:15 (≤1:10)");
  });

  it("samples resumed from a checkpoint count as done but not in the run's rate", () => {
    const { run, statuses, at } = fakeRun();
    const plan = { total: 1001, bound: 1001 };
    new ProgressTracker("unperturbed pass", 1, run.listener, 0, plan).add(1);
    const t = new ProgressTracker("estimating", 1000, run.listener, 0, plan);
    t.resume(800);
    at(10_000);
    t.add(100); // 101 passes of this run in 10 s: the 100 left take about 9.9 s
    const s = statuses.at(-1)!;
    expect(s).toMatchObject({ done: 901, resumed: 800 });
    expect(s.etaMs).toBeCloseTo((100 * 10_000) / 101, 6);
    expect(runStatusText(s)).toContain("901/1001 passes (800 resumed)");
  });
});

describe("the paper schedule's passes", () => {
  it("before the screen only the worst case 1 + S·blocks + N·blocks; after it, 1 + S·blocks + N·passing exactly", () => {
    expect(paperPlan(15, 3, 50)).toEqual({ bound: 1 + 3 * 15 + 50 * 15 });
    expect(paperPlan(15, 3, 50, 4)).toEqual({ total: 1 + 3 * 15 + 50 * 4, bound: 1 + 3 * 15 + 50 * 4 });
    expect(paperPlan(15, 1, 0)).toEqual({ total: 16, bound: 16 }); // zero ablation: no refinement, known at once
  });
  it("the fast schedule's bound is the screen plus every open block at the sample cap, cut by a pass budget", () => {
    expect(fastPlan(100, 400, 0)).toEqual({ bound: 500 });
    expect(fastPlan(100, 400, 300)).toEqual({ bound: 300 });
    expect(fastPlan(100, 400, 50, 60)).toEqual({ bound: 160 }); // the screen completes beyond the budget
    expect(fastPlan(100, 400, 0, 0, 40)).toEqual({ total: 140, bound: 500 });
  });
});

describe("the display", () => {
  afterEach(() => vi.useRealTimers());
  const status = (done: number, label = "estimating"): RunStatus => ({
    label,
    unit: "passes",
    done,
    total: 100_000,
    exact: true,
    resumed: 0,
    elapsedMs: done * 36,
    etaMs: 1000,
  });

  it("without a terminal, a one-hour run prints at most a line every 30 s and its last status", () => {
    let clock = 0;
    const out: string[] = [];
    const d = progressDisplay({ tty: false, write: (t) => out.push(t), now: () => clock });
    for (let i = 1; i <= 36_000; i++) {
      clock = i * 100; // an update every 100 ms for an hour, through stages of every name
      d(status(i, `stage ${i % 7}`));
    }
    d.end();
    const lines = out.join("").split("\n").filter(Boolean);
    expect(lines.length).toBeLessThanOrEqual(3600 / 30 + 2);
    expect(lines.at(-1)).toContain("36000/100000 passes");
    expect(out.every((t) => t.endsWith("\n") && !t.includes("\r"))).toBe(true);
  });

  it("on a terminal, one line redrawn in place, finished by end(); a note goes above it", () => {
    const out: string[] = [];
    const d = progressDisplay({ tty: true, write: (t) => out.push(t) });
    d(status(1));
    d(status(2));
    d.line("note: something");
    d.end();
    const text = out.join("");
    expect(text.split("\n")).toHaveLength(3); // the note, the redrawn progress line, and the end
    expect(out[0].startsWith("\r\x1b[2K")).toBe(true);
    expect(text.endsWith("\n")).toBe(true);
    expect(text).toContain("\r\x1b[2Knote: something\n");
  });
});

describe("the label", () => {
  afterEach(() => vi.useRealTimers());
  it("is the stage under way: a one-pass stage reported already finished does not take it", () => {
    const { run, statuses } = fakeRun();
    const masks = new ProgressTracker("masks", 10, run.listener, 0);
    masks.add(1);
    new ProgressTracker("unperturbed pass", 1, run.listener, 0).add(1);
    expect(statuses.at(-1)).toMatchObject({ label: "masks", done: 2, total: 11 });
    masks.add(9);
    expect(statuses.at(-1)).toMatchObject({ label: "masks", done: 11, total: 11 });
  });
});
