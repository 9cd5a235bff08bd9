/**
 * An evaluate folder's statistics tables for the page, filtered on the server (pairs.csv holds tens of
 * thousands of rows): the pairwise tests (pairs.csv), the method ranks (ranks.csv) and, when the folder has
 * them, the strategy statistics per model (strategies/models.csv) and between models (strategies/model-pairs.csv).
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { fail } from "../errors.js";
import { csvRecords } from "../evaluate/html.js";
import type { EvaluateTable, EvaluateTableName } from "./api-types.js";

export type { EvaluateTable, EvaluateTableName } from "./api-types.js";

export const EVALUATE_TABLES: readonly EvaluateTableName[] = ["pairs.csv", "ranks.csv", "strategies/models.csv", "strategies/model-pairs.csv"];
/** rows sent at most (the file has them all) */
export const MAX_TABLE_ROWS = 300;

const cache = new Map<string, { mtimeMs: number; columns: string[]; rows: Record<string, string>[] }>();

/** The table's names in `dir` that are there (an older or partial folder may lack the strategies). */
export function evaluateTables(dir: string): EvaluateTableName[] {
  return EVALUATE_TABLES.filter((t) => existsSync(join(dir, t)));
}

function read(file: string): { columns: string[]; rows: Record<string, string>[] } {
  const { mtimeMs } = statSync(file);
  const hit = cache.get(file);
  if (hit?.mtimeMs === mtimeMs) return hit;
  const text = readFileSync(file, "utf8");
  let rows: Record<string, string>[];
  try {
    rows = csvRecords(text);
  } catch (e) {
    fail(`${file} is not the table segcause evaluate writes: ${(e as Error).message}`, "rerun the folder's evaluate command to rewrite it");
  }
  const entry = { mtimeMs, columns: text.slice(0, text.indexOf("\n")).split(","), rows };
  cache.set(file, entry);
  return entry;
}

/**
 * Rows of `name` in `dir` for a model, a method and a fill ("" for all): a pairwise row matches a model or
 * method on either side (a, b), a row with a metric matches a fill by its `metric:fill`.
 */
export function evaluateTable(dir: string, name: string, filter: { model: string; method: string; fill: string }): EvaluateTable {
  if (!(EVALUATE_TABLES as readonly string[]).includes(name)) fail(`no table ${name} in the viewer`, `ask for one of ${EVALUATE_TABLES.join(", ")}`);
  const file = join(dir, name);
  if (!existsSync(file)) fail(`${dir} has no ${name}`, "rerun the folder's evaluate command (with its strategies step) to write it");
  const t = read(file);
  const has = (c: string) => t.columns.includes(c);
  const side = (r: Record<string, string>, v: string) => r.a === v || r.b === v;
  const rows = t.rows.filter(
    (r) =>
      (!filter.model || (has("model") ? r.model === filter.model : side(r, filter.model))) &&
      (!filter.method || (has("method") ? r.method === filter.method : side(r, filter.method))) &&
      (!filter.fill || !has("metric") || r.metric.endsWith(`:${filter.fill}`)),
  );
  return { name, columns: t.columns, total: rows.length, rows: rows.slice(0, MAX_TABLE_ROWS).map((r) => t.columns.map((c) => r[c])) };
}
