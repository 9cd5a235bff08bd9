/**
 * An evaluate folder's numbers for the page's filters (by model, method and fill), read from the files
 * `segcause evaluate` wrote rather than its report.html: summary.csv's per-model rows of the faithfulness
 * metrics, and the mean deletion and insertion curves of each (data set, model, method, fill) from its
 * cells (cells.jsonl, or the published cells.jsonl.gz).
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { fail } from "../errors.js";
import { csvRecords } from "../evaluate/html.js";
import type { CurveGroup, EvaluateData, SummaryRow } from "./api-types.js";
import { evaluateTables } from "./evaluate-tables.js";

export type { CurveGroup, EvaluateData, SummaryRow } from "./api-types.js";

/** the curve metrics the page's table lists (the others are in the report and summary.csv) */
const METRICS = /^(del_auc|ins_auc|del_norm|ins_norm):/;

const cache = new Map<string, { stamp: string; data: Omit<EvaluateData, "tables"> }>();

export function evaluateData(dir: string): EvaluateData {
  const summaryFile = join(dir, "summary.csv");
  const cellsFile = ["cells.jsonl", "cells.jsonl.gz"].map((f) => join(dir, f)).find(existsSync);
  if (!existsSync(summaryFile)) fail(`${dir} has no summary.csv`, "open a complete `segcause evaluate` folder (rerun its command to finish it)");
  if (!cellsFile)
    fail(`${dir} has no cells.jsonl (nor cells.jsonl.gz)`, "open a complete `segcause evaluate` folder (rerun its command to finish it)");
  const stamp = [summaryFile, cellsFile].map((f) => statSync(f).mtimeMs).join("|");
  const hit = cache.get(dir);
  if (hit?.stamp === stamp) return { ...hit.data, tables: evaluateTables(dir) };

  let records: Record<string, string>[];
  try {
    records = csvRecords(readFileSync(summaryFile, "utf8"));
  } catch (e) {
    fail(`${summaryFile} is not the table segcause evaluate writes: ${(e as Error).message}`, "rerun the folder's evaluate command to rewrite it");
  }
  const num = (v: string) => (v === "" ? null : Number(v));
  const summary: SummaryRow[] = records
    .filter((r) => r.scope === "model" && METRICS.test(r.metric))
    .map((r) => [r.dataset, r.model, r.method, r.metric, Number(r.mean), num(r.mean_ci95_low), num(r.mean_ci95_high), Number(r.n)]);

  const text = cellsFile.endsWith(".gz") ? gunzipSync(readFileSync(cellsFile)).toString("utf8") : readFileSync(cellsFile, "utf8");
  const groups = new Map<string, CurveGroup>();
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const cell = JSON.parse(line) as {
      id: { dataset: string; model: string };
      method: string;
      fills?: Record<string, { curves?: { deletion?: number[]; insertion?: number[] } }>;
    };
    for (const [fill, f] of Object.entries(cell.fills ?? {})) {
      const del = f.curves?.deletion;
      const ins = f.curves?.insertion;
      if (!del || !ins) continue;
      // curves of another length (another step count) are averaged apart
      const key = [cell.id.dataset, cell.id.model, cell.method, fill, del.length, ins.length].join("|");
      let g = groups.get(key);
      if (!g) {
        g = {
          dataset: cell.id.dataset,
          model: cell.id.model,
          method: cell.method,
          fill,
          n: 0,
          deletion: del.map(() => 0),
          insertion: ins.map(() => 0),
        };
        groups.set(key, g);
      }
      g.n++;
      del.forEach((v, i) => (g.deletion[i] += v));
      ins.forEach((v, i) => (g.insertion[i] += v));
    }
  }
  const curves = [...groups.values()].map((g) => ({ ...g, deletion: g.deletion.map((v) => v / g.n), insertion: g.insertion.map((v) => v / g.n) }));
  const fills = [...new Set([...curves.map((c) => c.fill), ...summary.map((r) => r[3].split(":")[1])])].sort();
  const data = { fills, summary, curves };
  cache.set(dir, { stamp, data });
  return { ...data, tables: evaluateTables(dir) };
}
