/** Progress of a long run: a stage name, done/total units of work, a rate and an ETA. */
export interface ProgressEvent {
  stage: string;
  done: number;
  total: number;
  elapsedMs: number;
  etaMs: number | undefined;
  /** of `done`, the units an earlier run finished (resumed from a checkpoint): not part of the rate */
  resumed?: number;
}

/** Units per second of this run's own work (resumed units took no time here). */
export function rateOf(e: ProgressEvent): number {
  return ((e.done - (e.resumed ?? 0)) / Math.max(e.elapsedMs, 1)) * 1000;
}

export type ProgressListener = (e: ProgressEvent) => void;

/** Tracks one stage; emits at most every `intervalMs` (and always at the end). */
export class ProgressTracker {
  private readonly start = Date.now();
  private lastEmit = 0;
  private done = 0;
  private resumed = 0;

  constructor(
    readonly stage: string,
    private total: number,
    private readonly listener?: ProgressListener,
    private readonly intervalMs = 200,
  ) {}

  setTotal(total: number): void {
    this.total = total;
  }

  /** Counts `n` units an earlier run finished: done, but not in the rate (so the ETA stays honest). */
  resume(n: number): void {
    this.resumed += n;
    this.add(n);
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
    return { stage: this.stage, done: this.done, total: this.total, elapsedMs, etaMs, ...(this.resumed ? { resumed: this.resumed } : {}) };
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
 * A progress bar on stderr. On a terminal it redraws one line; elsewhere (CI, pipes) it prints a
 * line at most every `logEveryMs` so that logs stay short but a hung run is still visible.
 */
export function stderrProgress(logEveryMs = 10_000): ProgressListener {
  const tty = process.stderr.isTTY === true;
  let lastLog = 0;
  let lastStage = "";
  return (e) => {
    const frac = e.total > 0 ? Math.min(1, e.done / e.total) : 0;
    const rate = rateOf(e);
    const text = `${e.stage} ${(frac * 100).toFixed(0).padStart(3)}% ${e.done}/${e.total}${e.resumed ? ` (${e.resumed} resumed)` : ""} ${rate.toFixed(0)}/s elapsed ${fmtDuration(e.elapsedMs)} ETA ${fmtDuration(e.etaMs)}`;
    if (tty) {
      const width = 24;
      const filled = Math.round(frac * width);
      const bar = "█".repeat(filled) + "░".repeat(width - filled);
      process.stderr.write(`\r\x1b[2K${bar} ${text}`);
      if (e.done >= e.total) process.stderr.write("\n");
      return;
    }
    const now = Date.now();
    if (e.stage !== lastStage || now - lastLog >= logEveryMs || e.done >= e.total) {
      lastLog = now;
      lastStage = e.stage;
      process.stderr.write(`${text}\n`);
    }
  };
}
