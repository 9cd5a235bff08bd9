/**
 * Progress of a long run. Engines report stages (a name, done/total units of work) through a
 * ProgressListener; RunProgress folds every stage of one run into one status (overall done/total,
 * the current stage as a label, elapsed time and an overall ETA), which one display shows.
 */

/**
 * The whole run's work as the engine knows it when it reports (units of `done`, e.g. passes).
 * `total === bound`: known exactly; `total < bound`: an estimate with a worst case; no `total`: only
 * the worst case is known (e.g. before a screen decides how many blocks are refined).
 */
export interface WorkPlan {
  total?: number;
  bound: number;
}

/** A stage's progress, as an engine reports it. */
export interface ProgressEvent {
  stage: string;
  done: number;
  total: number;
  elapsedMs: number;
  etaMs: number | undefined;
  /** of `done`, the units an earlier run finished (resumed from a checkpoint): not part of the rate */
  resumed?: number;
  /** which stage this is (stages of one name may run several times, e.g. rounds): increases per stage */
  step?: number;
  /** the run's whole work, when the engine can say (see WorkPlan) */
  plan?: WorkPlan;
}

/** Units per second of this run's own work (resumed units took no time here). */
export function rateOf(e: Pick<ProgressEvent, "done" | "resumed" | "elapsedMs">): number {
  return ((e.done - (e.resumed ?? 0)) / Math.max(e.elapsedMs, 1)) * 1000;
}

export type ProgressListener = (e: ProgressEvent) => void;

let nextStep = 1;

/** Tracks one stage; emits at most every `intervalMs` (and always at the end). */
export class ProgressTracker {
  private readonly start = Date.now();
  private readonly step = nextStep++;
  private lastEmit = 0;
  private done = 0;
  private resumed = 0;

  constructor(
    readonly stage: string,
    private total: number,
    private readonly listener?: ProgressListener,
    private readonly intervalMs = 200,
    private readonly plan?: WorkPlan,
  ) {}

  setTotal(total: number): void {
    this.total = total;
  }

  /** Counts `n` units an earlier run finished: done, but not in the rate (so the ETA stays honest). */
  resume(n: number): void {
    this.resumed += n;
    this.add(n);
  }

  /** Ends a stage whose total was a worst case: the work done is its total, and the display hears it. */
  end(): void {
    this.total = this.done;
    this.add(0);
  }

  add(n: number): void {
    this.done += n;
    const now = Date.now();
    if (this.listener && (now - this.lastEmit >= this.intervalMs || this.done >= this.total)) {
      this.lastEmit = now;
      this.listener(this.event(now));
    }
  }

  private event(now: number): ProgressEvent {
    const elapsedMs = now - this.start;
    const fresh = this.done - this.resumed;
    const etaMs = this.done >= this.total ? 0 : fresh > 0 ? (this.total - this.done) / (fresh / Math.max(elapsedMs, 1)) : undefined;
    return {
      stage: this.stage,
      done: this.done,
      total: this.total,
      elapsedMs,
      etaMs,
      step: this.step,
      ...(this.resumed ? { resumed: this.resumed } : {}),
      ...(this.plan ? { plan: this.plan } : {}),
    };
  }
}

/** One run's progress: what a display shows. */
export interface RunStatus {
  /** what the run is doing now (the current stage) */
  label: string;
  /** unit of done/total, e.g. "passes", "cells", "images" */
  unit: string;
  done: number;
  /** the run's total work: exact when `exact`, else the best estimate (undefined: only `bound` is known) */
  total: number | undefined;
  exact: boolean;
  /** worst case of the total when it is not exact */
  bound?: number;
  /** of `done`, units an earlier run finished (not in the rate) */
  resumed: number;
  elapsedMs: number;
  /** from this run's own rate over the whole run; undefined before any fresh work */
  etaMs: number | undefined;
  /** the ETA of the worst case, when the total is not exact */
  etaBoundMs?: number;
}

/** The ETA of `left` units at `fresh` units done in `ms` (undefined before any fresh work). */
export function etaOf(left: number, fresh: number, ms: number): number | undefined {
  if (left <= 0) return 0;
  return fresh > 0 ? (left * Math.max(ms, 1)) / fresh : undefined;
}

/**
 * Folds the stages of one run into one RunStatus. Overall done is the sum over stages; the total
 * is the engine's latest WorkPlan or, without one, the work known so far (finished stages plus the
 * current one). The rate is this run's own work (resumed units excluded) over the time since its
 * first stage began.
 */
export class RunProgress {
  private readonly stages = new Map<number, { done: number; resumed: number; total: number }>();
  private plan: WorkPlan | undefined;
  private firstStart: number | undefined;
  private readonly created: number;
  private lastStage = "";
  private stageStep: number | undefined;

  constructor(
    private readonly show: (s: RunStatus) => void,
    private readonly o: { unit?: string; now?: () => number } = {},
  ) {
    this.created = this.now();
  }

  private now(): number {
    return (this.o.now ?? Date.now)();
  }

  /** The listener an engine reports to (RunOptions.onProgress). */
  readonly listener: ProgressListener = (e) => {
    const now = this.now();
    this.firstStart ??= now - e.elapsedMs;
    const step = e.step ?? 0;
    this.stages.set(step, { done: e.done, resumed: e.resumed ?? 0, total: e.total });
    if (e.plan) this.plan = e.plan;
    // A stage already finished when first heard of (e.g. one pass) does not take the label.
    if (e.done < e.total || this.stages.size === 1 || this.stageStep === step) this.lastStage = e.stage;
    if (e.done < e.total) this.stageStep = step;
    this.show(this.status(now));
  };

  status(now = this.now()): RunStatus {
    let done = 0,
      resumed = 0,
      known = 0;
    for (const s of this.stages.values()) {
      done += s.done;
      resumed += s.resumed;
      known += Math.max(s.total, s.done);
    }
    const p = this.plan;
    const exact = p ? p.total === p.bound : true;
    const total = p ? (p.total === undefined ? undefined : Math.max(p.total, done)) : known;
    const bound = p && !exact ? Math.max(p.bound, done) : undefined;
    const fresh = done - resumed;
    const ms = now - (this.firstStart ?? now);
    return {
      label: this.lastStage,
      unit: this.o.unit ?? "passes",
      done,
      total,
      exact,
      ...(bound !== undefined ? { bound } : {}),
      resumed,
      elapsedMs: now - this.created,
      etaMs: total === undefined ? undefined : etaOf(total - done, fresh, ms),
      ...(bound !== undefined ? { etaBoundMs: etaOf(bound - done, fresh, ms) } : {}),
    };
  }
}

export function fmtDuration(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return "--:--";
  const s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

/**
 * One line for a RunStatus, e.g. "38% 1234/≈3250 passes (≤ 12001) · estimating · elapsed 0:42 ·
 * ETA ≈1:08 (≤ 5:40)": "≈" marks an estimated total and its ETA, "≤" the worst case.
 */
export function runStatusText(s: RunStatus): string {
  const of = s.exact ? `${s.total}` : s.total === undefined ? `≤${s.bound}` : `≈${s.total} (≤${s.bound})`;
  const eta = s.exact
    ? fmtDuration(s.etaMs)
    : s.total === undefined
      ? `≤${fmtDuration(s.etaBoundMs)}`
      : `≈${fmtDuration(s.etaMs)} (≤${fmtDuration(s.etaBoundMs)})`;
  const pct = fraction(s) === undefined ? "" : `${(fraction(s)! * 100).toFixed(0).padStart(3)}% `;
  return `${pct}${s.done}/${of} ${s.unit}${s.resumed ? ` (${s.resumed} resumed)` : ""} · ${s.label} · elapsed ${fmtDuration(s.elapsedMs)} · ETA ${eta}`;
}

function fraction(s: RunStatus): number | undefined {
  const t = s.total ?? s.bound;
  return t !== undefined && t > 0 ? Math.min(1, s.done / t) : undefined;
}

export interface ProgressDisplay {
  (s: RunStatus): void;
  /** ends the display: the line is finished (terminal) or the last status is printed (logs) */
  end(): void;
  /** a line of its own (a note, a log line) that the progress line must not overwrite */
  line(text: string): void;
}

/**
 * One progress display per run. On a terminal it redraws one line; elsewhere (CI, pipes) it prints
 * a plain line at most every `logEveryMs` (and the last status at the end), so that a long run's log
 * stays short but a hung run is still visible.
 */
export function progressDisplay(o: { tty: boolean; write: (text: string) => void; logEveryMs?: number; now?: () => number }): ProgressDisplay {
  const every = o.logEveryMs ?? 30_000;
  const now = o.now ?? Date.now;
  let lastLog: number | undefined;
  let last: RunStatus | undefined;
  let pending = false;
  const display = ((s: RunStatus) => {
    last = s;
    if (o.tty) {
      const width = 24;
      const filled = Math.round((fraction(s) ?? 0) * width);
      o.write(`\r\x1b[2K${"█".repeat(filled)}${"░".repeat(width - filled)} ${runStatusText(s)}`);
      pending = true;
      return;
    }
    const t = now();
    if (lastLog === undefined || t - lastLog >= every) {
      lastLog = t;
      o.write(`${runStatusText(s)}\n`);
      pending = false;
    } else pending = true;
  }) as ProgressDisplay;
  display.line = (text) => {
    if (!o.tty) return o.write(`${text}\n`);
    o.write(`\r\x1b[2K${text}\n`);
    if (last && pending) display(last);
  };
  display.end = () => {
    if (!pending || !last) return;
    o.write(o.tty ? "\n" : `${runStatusText(last)}\n`);
    pending = false;
  };
  return display;
}

/** A progress display on stderr (a terminal line, or sparse log lines elsewhere). */
export function stderrDisplay(logEveryMs?: number): ProgressDisplay {
  return progressDisplay({ tty: process.stderr.isTTY === true, write: (t) => process.stderr.write(t), logEveryMs });
}

/** The run's progress listener, shown on stderr (one display per call: call once per run). */
export function stderrProgress(o: { unit?: string; logEveryMs?: number } = {}): ProgressListener & { end(): void; run: RunProgress } {
  const display = stderrDisplay(o.logEveryMs);
  const run = new RunProgress(display, { unit: o.unit });
  const listener = ((e: ProgressEvent) => run.listener(e)) as ProgressListener & { end(): void; run: RunProgress };
  listener.end = () => display.end();
  listener.run = run;
  return listener;
}
