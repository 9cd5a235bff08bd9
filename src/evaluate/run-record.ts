/**
 * The run settings of an evaluation folder (run.json): the protocol (seed included) and each
 * method's options, and what differs when a run or a cell does not match them (the compatibility
 * rules themselves are cell-key.ts's). Several evaluate processes may share a folder (e.g. one per dataset or model)
 * only when these agree: the comparison and the update of run.json happen under a lock, so two
 * processes started together cannot both record their own settings and mix their cells.
 */
import { join } from "node:path";
import { fail } from "../errors.js";
import { getMethod } from "../explain/catalog.js";
import { kebab, type MethodDefinition, resolveOptions } from "../explain/methods.js";
import { type QueueWorkers, queueWorkers } from "../queue/shard-env.js";
import { claimOutputDir } from "../util/files.js";
import { lockFolder } from "../util/lock.js";
import { keyedAsPublished, keyedOptions, recordedSetting } from "./cell-key.js";
import type { EvaluateConfig, MethodRun } from "./protocol.js";
import { type CellRecord, listCells, listRuns, type RunRecord, readJson, runRecordPath, writeAtomic } from "./store.js";

export interface RunSettings {
  /** the protocol with the seed */
  protocol: Record<string, unknown>;
  methods: MethodRun[];
}

interface RunJson extends Partial<RunSettings> {
  commands?: string[];
  /** evaluate --queue: where the cells were computed (password redacted), by which workers (of every queued command) */
  queue?: { urls: string[] } & QueueWorkers;
}

const show = (v: unknown) => JSON.stringify(v ?? null);
const flagOf = (k: string) => (k === "topk" ? "--topk (fractions)" : `--${kebab(k)}`);

/** A method's options as its cells are keyed by (defaults resolved); undefined for a method segcause no longer has. */
function keyed(name: string, options: Record<string, unknown>): Record<string, unknown> | undefined {
  try {
    const def = getMethod(name);
    return keyedOptions(def, resolveOptions(def, options));
  } catch {
    return undefined;
  }
}

function optionDiffs(method: string, was: Record<string, unknown>, now: Record<string, unknown>): string[] {
  return [...new Set([...Object.keys(was), ...Object.keys(now)])]
    .filter((k) => show(was[k]) !== show(now[k]))
    .map((k) => `--set ${method}.${kebab(k)}: ${show(was[k])} there, ${show(now[k])} here`);
}

/** What differs between recorded settings and these (protocol keys; options of the methods both have); empty when they agree. */
export function settingsDifference(was: Partial<RunSettings>, now: RunSettings): string[] {
  const diffs: string[] = [];
  if (was.protocol) {
    // A run.json from before a setting existed ran with that setting's old behaviour.
    const before = (k: string) => recordedSetting(was.protocol!, k);
    for (const k of new Set([...Object.keys(was.protocol), ...Object.keys(now.protocol)])) {
      if (show(before(k)) !== show(now.protocol[k])) diffs.push(`${flagOf(k)}: ${show(before(k))} there, ${show(now.protocol[k])} here`);
    }
  }
  for (const m of now.methods) {
    const prev = was.methods?.find((p) => p.name === m.name);
    const a = prev && keyed(prev.name, prev.options),
      b = keyed(m.name, m.options);
    if (a && b) diffs.push(...optionDiffs(m.name, a, b));
  }
  return diffs;
}

/**
 * Records this command's settings in run.json and runs/ (creating and marking the folder), or
 * fails in one line when the folder holds an evaluation with other settings.
 */
export async function recordRun(out: string, settings: RunSettings, command: string): Promise<void> {
  claimOutputDir(out, "evaluate");
  const lock = lockFolder(out, { name: ".segcause-run.lock", what: `the run record of --out ${out} is being updated`, wait: 30_000 });
  try {
    const runPath = join(out, "run.json");
    const prev = readJson<RunJson>(runPath);
    const diffs = prev ? settingsDifference(prev, settings) : [];
    if (diffs.length)
      fail(
        `--out ${out} holds an evaluation with other settings (${diffs.join("; ")}), whose cells this run would mix with`,
        "use a new --out folder for other settings, or rerun with those of its run.json",
      );
    // Methods of earlier commands stay listed (their options agree with these).
    const methods = [...(prev?.methods ?? []).filter((m) => !settings.methods.some((n) => n.name === m.name)), ...settings.methods];
    await writeAtomic(
      runPath,
      JSON.stringify(
        {
          commands: [...new Set([...(prev?.commands ?? []), command])],
          protocol: settings.protocol,
          methods,
          ...(prev?.queue ? { queue: prev.queue } : {}),
        },
        null,
        1,
      ),
    );
    const recordPath = runRecordPath(out, command);
    const started = readJson<RunRecord>(recordPath)?.started ?? new Date().toISOString();
    await writeAtomic(recordPath, JSON.stringify({ format: "segcause.evalrun/1", command, started, ...settings } satisfies RunRecord, null, 1));
  } finally {
    lock.release();
  }
}

/**
 * Records in run.json the workers whose cells and controls an `evaluate --queue` command accepted
 * (results of other versions are refused), joined with those of earlier queued commands on the folder.
 */
export async function recordRunQueue(out: string, url: string, got: QueueWorkers): Promise<void> {
  const lock = lockFolder(out, { name: ".segcause-run.lock", what: `the run record of --out ${out} is being updated`, wait: 30_000 });
  try {
    const runPath = join(out, "run.json");
    const prev = readJson<RunJson>(runPath);
    if (!prev) return;
    const queue = { urls: [...new Set([...(prev.queue?.urls ?? []), url])], ...queueWorkers([...(prev.queue?.workers ?? []), ...got.workers]) };
    await writeAtomic(runPath, JSON.stringify({ ...prev, queue }, null, 1));
  } finally {
    lock.release();
  }
}

/** Why cell `c` was not computed with the recorded settings (seed, fills, outcome, method options); empty when it was. */
function cellMismatch(c: CellRecord, protocol: Record<string, unknown>, records: { name: string; options: Record<string, unknown> }[]): string[] {
  const diffs: string[] = [];
  if (protocol.seed !== undefined && c.seed !== protocol.seed) diffs.push(`--seed ${show(c.seed)} in the cell, ${show(protocol.seed)} in run.json`);
  const fills = Object.keys(c.fills ?? {});
  if (Array.isArray(protocol.fills) && show(fills) !== show(protocol.fills))
    diffs.push(`--fills ${fills.join(",")} in the cell, ${(protocol.fills as string[]).join(",")} in run.json`);
  if (protocol.outcome !== undefined && c.outcome !== protocol.outcome)
    diffs.push(`--outcome ${c.outcome} in the cell, ${show(protocol.outcome)} in run.json`);
  const mine = records
    .filter((r) => r.name === c.method)
    .map((r) => keyed(r.name, r.options))
    .filter((o): o is Record<string, unknown> => !!o);
  const cell = keyed(c.method, c.options ?? {});
  if (cell && mine.length && !mine.some((o) => show(o) === show(cell)))
    diffs.push(...optionDiffs(c.method, cell, mine[0]).map((d) => d.replace(" there, ", " in the cell, ").replace(" here", " in run.json")));
  return diffs;
}

/** Fails in one line when cells of `out` were computed with settings other than its run.json's (a folder two runs mixed). */
export function checkCellsMatchRun(out: string): void {
  const run = readJson<RunJson>(join(out, "run.json"));
  if (!run?.protocol) return;
  const records = [...(run.methods ?? []), ...listRuns(out).flatMap((r: RunRecord) => r.methods)];
  const cells = listCells(out);
  const mixed = cells.map((c) => ({ c, diffs: cellMismatch(c, run.protocol!, records) })).filter((m) => m.diffs.length);
  if (!mixed.length) return;
  const { c, diffs } = mixed[0];
  fail(
    `--report-only: ${out} mixes cells of different runs: ${mixed.length} of ${cells.length} cells differ from its run.json (e.g. ${c.id.model} ${c.id.image} ${c.id.roi} ${c.method}: ${diffs.join("; ")})`,
    "move those cells out of the folder, or rerun `segcause evaluate` into a new folder",
  );
}

/** What a refused rerun changed, as far as the stored cell tells: method options, seed, fills, outcome. */
export function cellDifference(
  e: CellRecord,
  def: MethodDefinition,
  options: Record<string, unknown>,
  cfg: Pick<EvaluateConfig, "seed" | "protocol">,
): string {
  const was = keyedOptions(def, e.options ?? {}),
    now = keyedOptions(def, options);
  const diffs = [...new Set([...Object.keys(was), ...Object.keys(now)])]
    .filter((k) => show(was[k]) !== show(now[k]))
    .map((k) => `--set ${def.name}.${kebab(k)}: ${show(was[k])} then, ${show(now[k])} now`);
  if (e.seed !== cfg.seed) diffs.push(`--seed: ${e.seed} then, ${cfg.seed} now`);
  const fills = Object.keys(e.fills ?? {});
  if (show(fills) !== show(cfg.protocol.fills)) diffs.push(`--fills: ${fills.join(",")} then, ${cfg.protocol.fills.join(",")} now`);
  if (e.outcome !== cfg.protocol.outcome) diffs.push(`--outcome: ${e.outcome} then, ${cfg.protocol.outcome} now`);
  const legacy = keyedAsPublished(cfg.protocol);
  return diffs.length
    ? diffs.join("; ")
    : `the method's options, seed, fills and outcome match: another protocol setting (e.g. --steps, --topk${legacy ? "" : ", --rank-units: a folder from before the unit protocol needs --rank-units pixel --top-area none --controls random"}), the model, its card, the bank or the image differs`;
}
