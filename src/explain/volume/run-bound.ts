/**
 * A bound on one invocation of a fixed volume schedule (paper, zero, occlusion): after this run's
 * own passes or seconds it stops between batches. The samples finished so far are in the
 * checkpoint, so rerunning the same command continues where it stopped (and the map is the one an
 * unbounded run gives: a sample is a pure function of (seed, unit, draw)). The fast schedule does
 * not stop: it fits its map to the budget (adaptive.ts, maxPasses / maxSeconds).
 */
import type { WorkPlan } from "../../util/progress.js";

export interface RunBoundSettings {
  /** passes this invocation may run (0 = no limit); passes resumed from a checkpoint do not count */
  maxPasses: number;
  /** seconds this invocation may run (0 = no limit), checked between batches */
  maxSeconds: number;
}

export class RunBound {
  private ran = 0;
  private readonly t0: number;
  /** the bound that last refused passes: with windows a sample costs several, so the pass bound can refuse before it is reached */
  private refused: "passes" | "time" | undefined;

  constructor(
    readonly settings: RunBoundSettings,
    private readonly now: () => number = Date.now,
  ) {
    this.t0 = now();
  }

  get active(): boolean {
    return this.settings.maxPasses > 0 || this.settings.maxSeconds > 0;
  }

  /** How many of the next `n` passes may run now (0: the bound is reached). */
  allow(n: number): number {
    const { maxPasses, maxSeconds } = this.settings;
    if (maxSeconds > 0 && this.now() - this.t0 >= maxSeconds * 1000) {
      this.refused = "time";
      return 0;
    }
    const left = maxPasses > 0 ? Math.max(0, maxPasses - this.ran) : n;
    if (left < n) this.refused = "passes";
    return Math.min(n, left);
  }

  /** Counts passes this invocation ran. */
  count(n: number): void {
    this.ran += n;
  }

  /** passes this invocation ran */
  get passes(): number {
    return this.ran;
  }

  /** Which bound stopped the run, as the flag that set it: the one that last refused passes. */
  reason(): string {
    const { maxPasses, maxSeconds } = this.settings;
    const refused = this.refused ?? (maxPasses > 0 && this.ran >= maxPasses ? "passes" : "time");
    return refused === "passes" ? `--max-passes ${maxPasses}` : `--max-time ${maxSeconds}`;
  }
}

/** Thrown between batches when a RunBound is reached; the engine saves the checkpoint, then rethrows it as RunStopped. */
export class BoundReached extends Error {
  constructor() {
    super("run bound reached");
  }
}

/** A bounded run that stopped: what it did and what is kept (no result was written). */
export class RunStopped extends Error {
  constructor(
    /** the flag that stopped it, e.g. "--max-passes 500" */
    readonly bound: string,
    /** passes this invocation ran */
    readonly ranPasses: number,
    /** samples the checkpoint holds now, the unperturbed pass not included */
    readonly keptSamples: number,
    readonly checkpointPath: string,
    /** the run's whole work as last known (passes, the unperturbed one included) */
    readonly plan: WorkPlan | undefined,
    /** passes of the map done (the unperturbed ones and the kept samples'); default keptSamples + 1 */
    readonly donePasses = keptSamples + 1,
  ) {
    super(`stopped at ${bound}`);
    this.name = "RunStopped";
  }

  /** What the user reads: where it stopped, what is kept, how to continue. */
  describe(): string {
    const all = this.plan?.total ?? this.plan?.bound;
    const of = all !== undefined ? ` of ${this.plan?.total === this.plan?.bound ? "" : "at most "}${all}` : "";
    return [
      `stopped at ${this.bound} after ${this.ranPasses} passes in this run; ${this.donePasses}${of} passes of the map are done`,
      `  finished samples are kept in ${this.checkpointPath}: rerun the same command to continue (each run adds at most ${this.bound.replace(/^--max-passes (\S+)$/, "$1 passes").replace(/^--max-time (\S+)$/, "$1 s of passes")}), or drop the bound to finish the map`,
      "  no map was written yet (a folder without manifest.json is not a result)",
    ].join("\n");
  }
}
