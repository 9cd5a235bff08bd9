/**
 * The statistics of a published benchmark, recomputed from its cells.csv (every cell's metrics and the
 * random control's) and its strategies.json (every map's statistics), so a reader can re-derive every table without the run's folder, and a statistics
 * revision can be re-published from the same cells.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { markdownSummary, statisticsCsv } from "./report.js";
import { modelPairs, modelPairsCsv, type MapResult } from "./strategies-report.js";
import { summarizeRows, type Row, type Summary } from "./summary.js";

/** Rows of a cells.csv written by the report (header: dataset, model, image, roi, …, method, …, metrics). */
export function rowsFromCsv(text: string): Row[] {
  const [head, ...lines] = text.trimEnd().split("\n");
  const cols = head.split(",");
  const at = (name: string) => cols.indexOf(name);
  const fixed = new Set(["dataset", "model", "image", "roi", "roi_row", "roi_col", "roi_size", "method", "base_outcome"]);
  const metricCols = cols.map((c, i) => [c, i] as const).filter(([c]) => !fixed.has(c));
  return lines.map((line) => {
    // cells.csv quotes no field of a benchmark run (ids and metric names have no comma or quote)
    const v = line.split(",");
    if (v.length !== cols.length) throw new Error(`cells.csv line has ${v.length} fields, expected ${cols.length}: ${line.slice(0, 60)}`);
    const metrics: Record<string, number | null> = {};
    for (const [c, i] of metricCols) if (v[i] !== "") metrics[c] = Number(v[i]);
    const [dataset, model, image, roi, method] = ["dataset", "model", "image", "roi", "method"].map((k) => v[at(k)]);
    return { cellKey: `${dataset}|${model}|${image}|${roi}`, dataset, model, image, roi, method, metrics };
  });
}

export interface PublishedStatistics {
  summary: Summary;
  files: Record<string, string>;
}

/** summary.csv, pairs.csv, ranks.csv and the tables of report.md, from `dir`/cells.csv and the run's settings. */
export function publishedStatistics(dir: string): PublishedStatistics {
  const previous = JSON.parse(readFileSync(join(dir, "summary.json"), "utf8")) as Summary & { run?: { protocol?: { fills?: string[] } } };
  const rows = rowsFromCsv(readFileSync(join(dir, "cells.csv"), "utf8"));
  const summary: Summary = { format: previous.format, cells: previous.cells, controls: previous.controls, skippedRois: previous.skippedRois, ...summarizeRows(rows, previous.methods) };
  const fills = previous.run?.protocol?.fills ?? [];
  // report.md's tail (the cells a method refused) comes from the run's folder, not from cells.csv.
  const md = readFileSync(join(dir, "report.md"), "utf8");
  const tail = md.indexOf("\n#### Cells a method refused");
  const files: Record<string, string> = { ...statisticsCsv(summary), "report.md": markdownSummary(summary, fills) + (tail >= 0 ? md.slice(tail) : "") };
  const { definitions, run, runs } = previous as unknown as Record<string, unknown>;
  files["summary.json"] = JSON.stringify({ ...summary, definitions, run, runs });
  // The strategy analysis' model comparisons, from the per-map statistics it published.
  const strategies = JSON.parse(readFileSync(join(dir, "strategies", "strategies.json"), "utf8")) as Record<string, unknown> & { maps: MapResult[] };
  const pairs = modelPairs(strategies.maps);
  files["strategies/model-pairs.csv"] = modelPairsCsv(pairs);
  files["strategies/strategies.json"] = JSON.stringify({ ...strategies, pairs }, null, 1);
  return { summary, files };
}
