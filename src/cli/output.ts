/**
 * What a command prints on stdout: a summary for a person by default, one JSON document under
 * --json (nothing else on stdout; progress and notes go to stderr), nothing under --quiet.
 */

import type { Command } from "commander";
import { replacedResultNote } from "../util/files.js";

export interface OutputFlags {
  json?: boolean;
  quiet?: boolean;
  progress?: boolean;
}

export function addOutputFlags(cmd: Command): Command {
  return cmd
    .option("--json", "print one machine-readable JSON summary on stdout, nothing else there (progress and notes go to stderr)")
    .option("--quiet", "no progress and no summary (errors still go to stderr; with --json, only the JSON)");
}

/** Whether a progress display goes to stderr. */
export function showProgress(f: OutputFlags): boolean {
  return f.progress !== false && !f.quiet;
}

/** Writes the run's summary: `human` (lines) or `json`; notes go to stderr under --json. */
export function emit(f: OutputFlags, human: () => string, json: () => Record<string, unknown>, notes: readonly string[] = []): void {
  if (f.json) {
    if (!f.quiet) for (const n of notes) process.stderr.write(`note: ${n}\n`);
    process.stdout.write(
      `${JSON.stringify(json(), (_, v) => (typeof v === "number" && !Number.isFinite(v) ? (Number.isNaN(v) ? null : v > 0 ? "inf" : "-inf") : v), 2)}\n`,
    );
  } else if (!f.quiet) {
    const text = human();
    process.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
  }
}

/** A line for people that JSON runs send to stderr instead of stdout (e.g. the demo's description). */
export function humanLine(f: OutputFlags, line: string): void {
  if (f.quiet) return;
  (f.json ? process.stderr : process.stdout).write(`${line}\n`);
}

/** Says on stderr (unless --quiet) that the finished result in --out is about to be replaced. */
export function noteReplaced(dir: string, quiet: boolean): void {
  const note = replacedResultNote(dir);
  if (note && !quiet) process.stderr.write(`note: ${note}\n`);
}
