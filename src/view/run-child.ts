/**
 * One viewer run, in its own process: the `segcause explain` arguments are parsed by the CLI's own
 * command and run by `runExplain()`, the CLI's code, with its progress sent to the server. Stopping
 * the run is the CLI's Ctrl-C: SIGTERM saves the checkpoint and exits 143, so the shown command resumes it.
 */

import { existsSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { CommanderError } from "commander";
import { bankCommand } from "../cli/bank.js";
import { type ExplainFlags, explainCommand, runExplain, runVolumeCommand } from "../cli/explain.js";
import { volumeJson } from "../cli/explain-volume.js";
import { explainJson } from "../cli/summary.js";
import { niftiBytes } from "../data/volume/nifti-write.js";
import { SegcauseError } from "../errors.js";
import type { PartialMap } from "../explain/run.js";
import type { VolumePartialMap } from "../explain/volume/engine.js";
import { unitRecord } from "../report/write.js";
import { ioProblem } from "../util/atomic.js";
import { installInterruptHandlers } from "../util/interrupt.js";
import { RunProgress, type RunStatus } from "../util/progress.js";
import { BANK_ENV } from "./runs.js";

/** A map still being estimated, its units as map.json lists them. */
export interface PartialView {
  height: number;
  width: number;
  valueUnits: string;
  passes: number;
  units: ReturnType<typeof unitRecord>[];
}

/** A volume map still being estimated: the effects so far on the input's grid as a NIfTI file (as map.nii.gz), base64. */
export interface VolumePartialView {
  volume: string;
  valueUnits: string;
  passes: number;
}

export type ChildMessage =
  | { type: "progress"; status: RunStatus }
  | { type: "partial"; map: PartialView | VolumePartialView }
  /** a step before the run itself (building the volume bank), for the status line */
  | { type: "note"; message: string }
  | { type: "done"; summary: unknown }
  | { type: "failed"; message: string };

/** Every round's map goes to the page: a round is many passes, so these are few. */
function sendPartial(p: PartialMap): void {
  void send({ type: "partial", map: { ...p, units: p.units.map(unitRecord) } });
}

function sendVolumePartial(p: VolumePartialMap): void {
  const nifti = niftiBytes({ dims: p.dims, affine: p.affine, data: p.map }, { description: "segcause partial map" });
  void send({ type: "partial", map: { volume: Buffer.from(gzipSync(nifti)).toString("base64"), valueUnits: p.valueUnits, passes: p.passes } });
}

function send(m: ChildMessage): Promise<void> {
  return new Promise((done) => process.send!(m, () => done()));
}

let finishing = false;

/** The run's volume bank, cut first by the CLI's own `segcause bank build` when its file is not there yet (an earlier run's is reused). */
async function buildBank(): Promise<void> {
  const env = process.env[BANK_ENV];
  if (!env) return;
  const args = JSON.parse(env) as string[];
  if (existsSync(args[args.indexOf("--out") + 1])) return;
  await send({ type: "note", message: "building the volume bank from the data set's train split (once; later runs reuse it)" });
  await bankCommand()
    .exitOverride()
    .configureOutput({ writeErr: () => {}, writeOut: () => {} })
    .parseAsync(["build", ...args, "--no-progress"], { from: "user" });
}

async function main(args: string[]): Promise<void> {
  installInterruptHandlers();
  // The server went away (killed, crashed): stop as on Ctrl-C rather than run on unwatched.
  process.on("disconnect", () => {
    if (!finishing) process.kill(process.pid, "SIGTERM");
  });
  let lastSent = 0;
  const progress = new RunProgress((status) => {
    // The page needs a few updates a second, not every batch.
    const now = Date.now();
    if (now - lastSent < 150 && status.done !== status.total) return;
    lastSent = now;
    void send({ type: "progress", status });
  });
  const cmd = explainCommand()
    .exitOverride()
    .configureOutput({ writeErr: () => {}, writeOut: () => {} });
  cmd.action(async (flags: ExplainFlags) => {
    await buildBank();
    // A volume (a 3D model's NIfTI or DICOM input) runs as the CLI runs it; the fast schedule's rounds go to the page as NIfTI maps.
    const volume = await runVolumeCommand(flags, { onProgress: progress.listener, onPartialMap: sendVolumePartial });
    if (volume && "stopped" in volume) {
      await send({ type: "failed", message: volume.stopped.describe().split("\n")[0] });
      return;
    }
    const summary = volume ? { format: "segcause.volume-summary/1", complete: true, ...volumeJson(volume) } : undefined;
    const r = summary ? undefined : await runExplain({ ...flags, progress: false }, { onProgress: progress.listener, onPartialMap: sendPartial });
    await send({ type: "progress", status: progress.status() });
    await send({ type: "done", summary: summary ?? explainJson(r!) });
  });
  try {
    await cmd.parseAsync(args, { from: "user" });
  } catch (thrown) {
    const e = ioProblem(thrown) ?? thrown;
    const message =
      e instanceof SegcauseError
        ? e.oneLine()
        : e instanceof CommanderError
          ? e.message.replace(/^error:\s*/, "")
          : `internal error: ${(e as Error).message} (this is a bug; please report it)`;
    await send({ type: "failed", message });
  }
  finishing = true;
  process.disconnect();
}

void main(process.argv.slice(2));
