/**
 * The statistics of a published benchmark, recomputed from its cells.csv (every cell's metrics and the
 * random control's) and its strategies.json (every map's statistics), so a reader can re-derive every table without the run's folder, and a statistics
 * revision can be re-published from the same cells.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { csvRecords } from "./html.js";
import type { MapResult } from "./strategies/maps.js";
import { modelPairs, modelPairsCsv } from "./strategies/pairs.js";
import { type Row, type Summary, summarizeRows } from "./summary.js";
import { markdownSummary, statisticsCsv } from "./tables.js";

/** Rows of a cells.csv written by the report (dataset, model, image, roi, …, method, …, one column per metric). */
export function rowsFromCsv(text: string): Row[] {
  const fixed = new Set(["dataset", "model", "image", "roi", "roi_row", "roi_col", "roi_size", "method", "base_outcome"]);
  return csvRecords(text).map((r) => {
    const metrics: Record<string, number | null> = {};
    for (const [c, v] of Object.entries(r)) if (!fixed.has(c) && v !== "") metrics[c] = Number(v);
    return {
      cellKey: `${r.dataset}|${r.model}|${r.image}|${r.roi}`,
      dataset: r.dataset,
      model: r.model,
      image: r.image,
      roi: r.roi,
      method: r.method,
      metrics,
    };
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
  const summary: Summary = {
    format: previous.format,
    cells: previous.cells,
    controls: previous.controls,
    skippedRois: previous.skippedRois,
    ...summarizeRows(rows, previous.methods),
  };
  const fills = previous.run?.protocol?.fills ?? [];
  // report.md's tail (the cells a method refused) comes from the run's folder, not from cells.csv.
  const md = readFileSync(join(dir, "report.md"), "utf8");
  const tail = md.indexOf("\n#### Cells a method refused");
  const files: Record<string, string> = {
    ...statisticsCsv(summary),
    "report.md": markdownSummary(summary, fills) + (tail >= 0 ? md.slice(tail) : ""),
  };
  const { definitions, run, runs } = previous as unknown as Record<string, unknown>;
  files["summary.json"] = JSON.stringify({ ...summary, definitions, run, runs });
  // The strategy analysis' model comparisons, from the per-map statistics it published.
  const strategies = JSON.parse(readFileSync(join(dir, "strategies", "strategies.json"), "utf8")) as Record<string, unknown> & { maps: MapResult[] };
  const pairs = modelPairs(strategies.maps);
  files["strategies/model-pairs.csv"] = modelPairsCsv(pairs);
  files["strategies/strategies.json"] = JSON.stringify({ ...strategies, pairs }, null, 1);
  return { summary, files };
}
