import { afterEach, describe, expect, it, vi } from "vitest";
import { ProgressTracker, rateOf, type ProgressEvent } from "../src/util/progress.js";

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
