/**
 * Aggregation of whatever cells exist: mean ± sd of every metric per (dataset, model, method), per
 * (dataset, method) and over everything, and paired Wilcoxon signed-rank tests between methods over
 * the cells they share (same dataset, model, image and RoI). The random-order control enters as the
 * pseudo-method "random" for the curve metrics. The result depends only on the cell files, never on
 * the order they were computed in.
 */
import type { CellRecord, ControlRecord } from "./store.js";
import { meanSd } from "./map-metrics.js";
import { wilcoxon } from "./wilcoxon.js";

export const RANDOM = "random";

export type Direction = "lower" | "higher" | "none";

/** Which way is "more faithful" for a metric name (the part before ':'). */
export function direction(metric: string): Direction {
  const base = metric.split(":")[0];
  if (base === "del_auc" || base === "del_norm" || base === "leakage" || base === "outside_causal") return "lower";
  if (base === "ins_auc" || base === "ins_norm" || base === "stab_noise" || base === "stab_seed") return "higher";
  if (/^top\d+$/.test(base)) return "lower"; // a larger drop of the outcome when the claimed support is removed
  return "none";
}

/**
 * Metrics compared pairwise: the normalised AUCs, the top-10% effect, leakage and stability (the
 * raw AUCs and the other top-k levels are summarised but not tested, to keep the table readable;
 * cost, area and sparsity are descriptive).
 */
export function tested(metric: string): boolean {
  return /^(del_norm|ins_norm|top10):/.test(metric) || ["leakage", "outside_causal", "stab_noise", "stab_seed"].includes(metric);
}

export interface Row {
  cellKey: string;
  dataset: string;
  model: string;
  image: string;
  roi: string;
  method: string;
  metrics: Record<string, number | null>;
}

export interface StatRow {
  scope: "model" | "dataset" | "all";
  dataset: string;
  model: string;
  method: string;
  metric: string;
  mean: number;
  sd: number;
  n: number;
}

export interface PairRow {
  scope: "model" | "dataset" | "all";
  dataset: string;
  model: string;
  metric: string;
  a: string;
  b: string;
  n: number;
  /** mean of (a − b) over the paired cells */
  meanDiff: number;
  wPlus: number;
  statistic: number;
  p: number;
  test: "exact" | "normal";
  /** which method is better on average by the metric's direction ("tie" when equal) */
  better: string;
}

export interface Summary {
  format: "segcause.evalsummary/1";
  cells: number;
  controls: number;
  skippedRois: number;
  methods: string[];
  models: { dataset: string; model: string }[];
  stats: StatRow[];
  pairs: PairRow[];
}

/** Flat rows: one per cell plus one "random" row per control. */
export function rowsOf(cells: readonly CellRecord[], controls: readonly ControlRecord[]): Row[] {
  const rows: Row[] = cells.map((c) => ({ cellKey: `${c.id.dataset}|${c.id.model}|${c.id.image}|${c.id.roi}`, dataset: c.id.dataset, model: c.id.model, image: c.id.image, roi: c.id.roi, method: c.method, metrics: c.metrics }));
  for (const k of controls) {
    if (k.status !== "ok" || !k.fills) continue;
    const m: Record<string, number | null> = {};
    for (const [fill, r] of Object.entries(k.fills)) {
      m[`del_auc:${fill}`] = r!.curves.deletionAuc;
      m[`ins_auc:${fill}`] = r!.curves.insertionAuc;
      m[`del_norm:${fill}`] = r!.curves.deletionAucNorm;
      m[`ins_norm:${fill}`] = r!.curves.insertionAucNorm;
    }
    rows.push({ cellKey: `${k.id.dataset}|${k.id.model}|${k.id.image}|${k.id.roi}`, dataset: k.id.dataset, model: k.id.model, image: k.id.image, roi: k.id.roi, method: RANDOM, metrics: m });
  }
  return rows.sort((x, y) => (x.cellKey < y.cellKey ? -1 : x.cellKey > y.cellKey ? 1 : x.method < y.method ? -1 : x.method > y.method ? 1 : 0));
}

function metricOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function summarize(cells: readonly CellRecord[], controls: readonly ControlRecord[]): Summary {
  const rows = rowsOf(cells, controls);
  const methods = [...new Set(cells.map((c) => c.method))].sort();
  if (controls.some((c) => c.status === "ok")) methods.push(RANDOM);
  const models = [...new Map(rows.map((r) => [`${r.dataset}|${r.model}`, { dataset: r.dataset, model: r.model }])).values()].sort((a, b) => metricOrder(`${a.dataset}|${a.model}`, `${b.dataset}|${b.model}`));
  const metricNames = [...new Set(rows.flatMap((r) => Object.keys(r.metrics)))].sort(metricOrder);
  const scopes: { scope: StatRow["scope"]; dataset: string; model: string; pick: (r: Row) => boolean }[] = [
    ...models.map((m) => ({ scope: "model" as const, dataset: m.dataset, model: m.model, pick: (r: Row) => r.dataset === m.dataset && r.model === m.model })),
    ...[...new Set(models.map((m) => m.dataset))].sort().map((d) => ({ scope: "dataset" as const, dataset: d, model: "*", pick: (r: Row) => r.dataset === d })),
    { scope: "all", dataset: "*", model: "*", pick: () => true },
  ];
  const stats: StatRow[] = [];
  const pairs: PairRow[] = [];
  for (const s of scopes) {
    const sel = rows.filter(s.pick);
    for (const method of methods) {
      const mine = sel.filter((r) => r.method === method);
      if (mine.length === 0) continue;
      for (const metric of metricNames) {
        const xs = mine.map((r) => r.metrics[metric]).filter((v): v is number => v !== null && v !== undefined);
        if (xs.length === 0) continue;
        const { mean, sd, n } = meanSd(xs);
        stats.push({ scope: s.scope, dataset: s.dataset, model: s.model, method, metric, mean, sd, n });
      }
    }
    for (const metric of metricNames.filter(tested)) {
      for (let i = 0; i < methods.length; i++) {
        for (let j = i + 1; j < methods.length; j++) {
          const a = methods[i], b = methods[j];
          const byKey = new Map(sel.filter((r) => r.method === b).map((r) => [r.cellKey, r.metrics[metric]]));
          const diffs: number[] = [];
          for (const r of sel) {
            if (r.method !== a) continue;
            const va = r.metrics[metric], vb = byKey.get(r.cellKey);
            if (va === null || va === undefined || vb === null || vb === undefined) continue;
            diffs.push(va - vb);
          }
          if (diffs.length === 0) continue;
          const w = wilcoxon(diffs);
          const meanDiff = diffs.reduce((x, y) => x + y, 0) / diffs.length;
          const dir = direction(metric);
          const better = meanDiff === 0 ? "tie" : (meanDiff < 0) === (dir === "lower") ? a : b;
          pairs.push({ scope: s.scope, dataset: s.dataset, model: s.model, metric, a, b, n: diffs.length, meanDiff, wPlus: w.wPlus, statistic: w.statistic, p: w.p, test: w.method, better });
        }
      }
    }
  }
  return {
    format: "segcause.evalsummary/1",
    cells: cells.length,
    controls: controls.filter((c) => c.status === "ok").length,
    skippedRois: controls.filter((c) => c.status === "skipped").length,
    methods,
    models,
    stats,
    pairs,
  };
}

/** The best method (by mean, following the metric's direction) per scope and metric, random excluded. */
export function winners(s: Summary, metric: string): { dataset: string; model: string; best: string; mean: number; ranking: { method: string; mean: number; n: number }[] }[] {
  const dir = direction(metric);
  const groups = new Map<string, StatRow[]>();
  for (const r of s.stats) {
    if (r.metric !== metric || r.method === RANDOM || !Number.isFinite(r.mean)) continue;
    const k = `${r.dataset}|${r.model}`;
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k)!.push(r);
  }
  const key = (r: StatRow) => `${r.dataset === "*" ? "\uffff" : r.dataset}|${r.model === "*" ? "\uffff" : r.model}`;
  return [...groups.values()].sort((a, b) => (key(a[0]) < key(b[0]) ? -1 : key(a[0]) > key(b[0]) ? 1 : 0)).map((rs) => {
    const ranking = rs.map((r) => ({ method: r.method, mean: r.mean, n: r.n })).sort((x, y) => (dir === "higher" ? y.mean - x.mean : x.mean - y.mean));
    // Methods tied with the top mean share the place (e.g. every map 0 on a tiny model).
    const best = ranking.filter((r) => r.mean === ranking[0].mean).map((r) => r.method).join(" = ");
    return { dataset: rs[0].dataset, model: rs[0].model, best, mean: ranking[0].mean, ranking };
  });
}
