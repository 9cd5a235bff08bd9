/**
 * The viewer's runs: each is a `segcause explain` in a child process (run-child.ts), so the server
 * stays responsive and Stop is the CLI's own interruption. One run at a time per model; the others
 * wait in order. Every state change goes to the run's listeners (the page's event streams).
 */
import { type ChildProcess, fork } from "node:child_process";
import { existsSync, readdirSync, rmdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { OUTPUT_MARKER } from "../util/files.js";
import type { RunStatus } from "../util/progress.js";
import type { ChildMessage, PartialView, VolumePartialView } from "./run-child.js";

/** the built child (also when this module runs from src/ under the tests) */
const CHILD = fileURLToPath(new URL("../../dist/view/run-child.js", import.meta.url));

/** the environment variable that hands a run's bank build to its child */
export const BANK_ENV = "SEGCAUSE_VIEW_BANK_BUILD";

export type RunState = "queued" | "running" | "done" | "failed" | "stopped";

export type RunEvent =
  | { type: "state"; state: RunState; message?: string }
  | { type: "progress"; status: RunStatus }
  /** the map so far (the fast schedule, after each round) */
  | { type: "partial"; map: PartialView | VolumePartialView }
  | { type: "done"; summary: unknown };

/** A state a run never leaves. */
export function isFinal(state: RunState): boolean {
  return state === "done" || state === "failed" || state === "stopped";
}

export interface RunInfo {
  id: string;
  model: string;
  method: string;
  out: string;
  command: string;
  state: RunState;
  message?: string;
}

export class Run {
  state: RunState = "queued";
  message?: string;
  /** every event so far, replayed to a listener that joins late */
  readonly events: RunEvent[] = [];
  private readonly listeners = new Set<(e: RunEvent) => void>();
  child?: ChildProcess;
  private stopAsked = false;

  constructor(
    readonly id: string,
    readonly model: string,
    readonly method: string,
    readonly out: string,
    readonly args: string[],
    readonly command: string,
    /** `segcause bank build` arguments of a bank the run builds first when its file is not there yet (pdcr on a volume) */
    readonly bankArgs?: string[],
  ) {}

  get finished(): boolean {
    return isFinal(this.state);
  }

  info(): RunInfo {
    return { id: this.id, model: this.model, method: this.method, out: this.out, command: this.command, state: this.state, message: this.message };
  }

  listen(fn: (e: RunEvent) => void): () => void {
    for (const e of this.events) fn(e);
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  emit(e: RunEvent): void {
    // A late listener needs the latest map only, not every round's.
    const previous = e.type === "partial" ? this.events.findIndex((x) => x.type === "partial") : -1;
    if (previous >= 0) this.events.splice(previous, 1);
    this.events.push(e);
    if (e.type === "state") {
      this.state = e.state;
      this.message = e.message;
    }
    for (const fn of this.listeners) fn(e);
  }

  /** Stops a queued run at once, a running one as Ctrl-C would (its checkpoint is kept). */
  stop(): void {
    if (this.finished) return;
    this.stopAsked = true;
    if (!this.child) {
      // its folder was reserved when it was queued and is still empty: a run that never started leaves nothing
      try {
        rmdirSync(this.out);
      } catch {
        // not there, or not empty
      }
      this.emit({ type: "state", state: "stopped", message: "stopped before it started" });
    } else this.child.kill("SIGTERM");
  }

  /** Runs the child to its end; never rejects. */
  execute(): Promise<void> {
    if (this.stopAsked) return Promise.resolve();
    this.emit({ type: "state", state: "running" });
    return new Promise((resolve) => {
      const env = this.bankArgs ? { ...process.env, [BANK_ENV]: JSON.stringify(this.bankArgs) } : process.env;
      const child = fork(CHILD, this.args, { stdio: ["ignore", "ignore", "pipe", "ipc"], env });
      this.child = child;
      let stderr = "";
      child.stderr!.on("data", (d: Buffer) => {
        stderr = (stderr + d.toString()).slice(-2000);
      });
      let ended: RunEvent | undefined;
      child.on("message", (m: ChildMessage) => {
        if (m.type === "progress") this.emit({ type: "progress", status: m.status });
        else if (m.type === "note") this.emit({ type: "state", state: "running", message: m.message });
        else if (m.type === "partial") this.emit({ type: "partial", map: m.map });
        else if (m.type === "done") ended = { type: "done", summary: m.summary };
        else ended = { type: "state", state: "failed", message: m.message };
      });
      child.on("exit", (code) => {
        if (!(ended?.type === "done" && code === 0)) dropUnwritten(this.out);
        if (ended?.type === "done" && code === 0) {
          this.emit(ended);
          this.emit({ type: "state", state: "done" });
        } else if (ended) this.emit(ended);
        else if (this.stopAsked) {
          const kept = existsSync(join(this.out, ".checkpoint.json"));
          this.emit({
            type: "state",
            state: "stopped",
            message: kept ? "stopped; the checkpoint is kept: the command below continues the run" : "stopped before any sample finished",
          });
        } else
          this.emit({
            type: "state",
            state: "failed",
            message: `the run ended (exit ${code}) without a result: ${stderr.trim().split("\n").pop() ?? ""}`,
          });
        resolve();
      });
    });
  }
}

/** Runs in order of arrival, one at a time per model. */
export class RunQueue {
  private readonly runs = new Map<string, Run>();
  private readonly tails = new Map<string, Promise<void>>();

  add(run: Run): void {
    this.runs.set(run.id, run);
    run.emit({ type: "state", state: "queued" });
    const before = this.tails.get(run.model) ?? Promise.resolve();
    this.tails.set(
      run.model,
      before.then(() => run.execute()),
    );
  }

  get(id: string): Run | undefined {
    return this.runs.get(id);
  }

  list(): RunInfo[] {
    return [...this.runs.values()].map((r) => r.info());
  }

  /** Stops every run (the server is closing) and waits for the running ones to end. */
  async stopAll(): Promise<void> {
    for (const r of this.runs.values()) r.stop();
    await Promise.all(this.tails.values());
  }
}

/** A run that ended before writing anything (only the output marker, or nothing) leaves no folder that looks like a run. */
function dropUnwritten(dir: string): void {
  try {
    if (readdirSync(dir).every((f) => f === OUTPUT_MARKER)) rmSync(dir, { recursive: true, force: true });
  } catch {
    // not there
  }
}
