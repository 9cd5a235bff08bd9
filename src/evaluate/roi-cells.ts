/**
 * The cells of one (model, case, RoI), whatever the input's geometry: check them against what the
 * folder holds (keys), resume or skip them, compute the RoI's controls once, then each missing
 * method's cell (explain, measure, write atomically), or record the method's refusal. What an
 * image's or a volume's RoI does (its pass, Target, units and fills) comes in as a RoiWork.
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { fail, SegcauseError } from "../errors.js";
import type { getMethod } from "../explain/catalog.js";
import type { ProgressListener } from "../util/progress.js";
import type { RunControl, RunSummary } from "./benchmark.js";
import { type CellHeader, skippedControl } from "./cell.js";
import { REFUSALS_REVISION, refusalHolds } from "./cell-key.js";
import type { EvaluateConfig, MethodRun } from "./protocol.js";
import { cellDifference } from "./run-record.js";
import {
  type CellId,
  type CellRecord,
  type ControlRecord,
  cellDir,
  controlPath,
  type FailedRecord,
  type RoiPlace,
  readJson,
  writeAtomic,
} from "./store.js";

export type Def = { run: MethodRun; def: ReturnType<typeof getMethod>; options: Record<string, unknown> };

/** A method's result as the log reports its cost. */
interface Costed {
  forwardPasses: number;
  backwardPasses?: number;
  wallMs: number;
}

/** A RoI whose Target resolved: its controls and its cells' steps. */
export interface OpenedRoi<R extends Costed> {
  control(key: string): Promise<ControlRecord>;
  explain(d: Def, checkpointPath: string): Promise<R>;
  measure(control: ControlRecord, h: CellHeader, r: R): Promise<CellRecord>;
  write(dir: string, r: R, record: CellRecord, checkpointPath: string): Promise<void>;
}

/** What one RoI of an image or a volume brings to the shared cell logic. */
export interface RoiWork<R extends Costed> {
  controlKey: string;
  /** one per method, in the order of `defs` */
  cellKeys: string[];
  place: RoiPlace;
  /** the unperturbed pass, the Target and what the orders are measured with; or why the RoI is skipped */
  open(onProgress: ProgressListener | undefined): Promise<OpenedRoi<R> | { skipped: string }>;
}

/** The RoI's cells: true when the run must stop (aborted, or --max-cells reached). */
export async function evaluateRoi<R extends Costed>(
  cfg: EvaluateConfig,
  ctl: RunControl,
  summary: RunSummary,
  work: RoiWork<R>,
  id: CellId,
  defs: Def[],
  log: (s: string) => void,
  progress: () => string,
  validated: () => Promise<void>,
  show?: (label: string) => void,
): Promise<boolean> {
  let cell = `${id.model} · ${id.image} · ${id.roi}`;
  // With a progress display the cell and its method's stage are its label, not log lines.
  const cellLog = show ? () => {} : log;
  const onProgress: ProgressListener | undefined = show
    ? (e) => {
        ctl.onProgress?.(e);
        show(`${cell}: ${e.stage} ${e.total > 0 ? Math.floor((100 * Math.min(e.done, e.total)) / e.total) : 0}%`);
      }
    : ctl.onProgress;
  const { cellKeys } = work;
  const dirs = defs.map((d) => cellDir(cfg.out, id, d.def.name));
  const existing = dirs.map((d) => readJson<CellRecord>(join(d, "cell.json")));
  existing.forEach((e, i) => {
    if (e && e.key !== cellKeys[i])
      fail(
        `${join(dirs[i], "cell.json")} was computed with different settings (${cellDifference(e, defs[i].def, defs[i].options, cfg)})`,
        "use a new --out folder for a different protocol, model, bank or method options",
      );
  });
  await validated();
  // A method that refused this cell (a SegcauseError, e.g. an op it cannot differentiate) is recorded
  // in failed.json and not retried with the same settings.
  const failed = dirs.map((d, i) => refusalHolds(readJson<FailedRecord>(join(d, "failed.json")), cellKeys[i]));
  const todo = defs.map((_, i) => i).filter((i) => !existing[i] && !failed[i]);
  summary.resumed += existing.filter(Boolean).length;
  summary.failed += failed.filter(Boolean).length;
  const ctrlPath = controlPath(cfg.out, id);
  const ctrlKey = work.controlKey;
  let control = readJson<ControlRecord>(ctrlPath);
  if (control && control.key !== ctrlKey)
    fail(`${ctrlPath} was computed with different settings`, "use a new --out folder for a different protocol, model or bank");
  if (control?.status === "skipped") {
    summary.skipped += todo.length;
    return false;
  }
  if (todo.length === 0 && control) return false;

  const ctx = await work.open(onProgress);
  if ("skipped" in ctx) {
    await writeAtomic(ctrlPath, JSON.stringify(skippedControl(work.place, id, ctrlKey, ctx.skipped), null, 1));
    summary.notes.push(`${id.model} ${id.image} ${id.roi}: skipped (${ctx.skipped})`);
    summary.skipped += todo.length;
    return false;
  }
  if (!control) {
    control = await ctx.control(ctrlKey);
    await writeAtomic(ctrlPath, JSON.stringify(control, null, 1));
  }

  for (const i of todo) {
    if (ctl.signal?.aborted) return true;
    if (ctl.maxCells !== undefined && summary.computed >= ctl.maxCells) return true;
    const { def, options } = defs[i];
    ctl.beforeCell?.(id, def.name);
    cellLog(`${id.model} · ${id.image} · ${id.roi} · ${def.name}`);
    cell = `${id.model} · ${id.image} · ${id.roi} · ${def.name}`;
    show?.(cell);
    const dir = dirs[i];
    await mkdir(dir, { recursive: true });
    const checkpointPath = join(dir, ".checkpoint.json");
    let a: R;
    try {
      a = await ctx.explain(defs[i], checkpointPath);
    } catch (e) {
      if (!(e instanceof SegcauseError)) throw e;
      const reason = e.oneLine();
      await writeAtomic(
        join(dir, "failed.json"),
        JSON.stringify(
          {
            format: "segcause.evalfailed/1",
            key: cellKeys[i],
            id,
            method: def.name,
            options,
            reason,
            refusals: REFUSALS_REVISION,
          } satisfies FailedRecord,
          null,
          1,
        ),
      );
      summary.failed++;
      summary.notes.push(`${id.model} ${id.image} ${id.roi} ${def.name}: failed (${reason})`);
      log(`  failed: ${reason}`);
      continue;
    }
    const record = await ctx.measure(control, { key: cellKeys[i], id, def, options }, a);
    await ctx.write(dir, a, record, checkpointPath);
    summary.computed++;
    cellLog(
      `  done: ${a.forwardPasses} forward + ${a.backwardPasses ?? 0} backward passes in ${(a.wallMs / 1000).toFixed(1)} s, curves ${record.cost.evaluationPasses} passes · ${progress()}`,
    );
    show?.(`${cell}: done`);
  }
  return false;
}
