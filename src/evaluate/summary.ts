/**
 * Aggregation of whatever cells exist: mean ± sd, median and an image-bootstrap interval of every
 * metric per (dataset, model, method), per (dataset, method) and over everything; ranks with bootstrap
 * intervals; and paired Wilcoxon signed-rank tests between methods. The image is the unit of
 * independence: where a scope holds several cells of one image (several models, several RoIs), tests
 * run on the per-image averages of the paired differences, and intervals of means and ranks resample
 * whole images. Tests are Holm-adjusted within their family (one scope, one metric: every pair of
 * methods; pairs with a control are a family of their own). The model-free controls enter as the
 * pseudo-methods "random" (random unit order) and "distance" (units nearest the RoI first) for the
 * curve and area-matched top-k metrics. The result depends only on the cell files, never on the order
 * they were computed in.
 */
import type { CurvePair } from "./curves.js";
import { bootstrapMeanCi, bootstrapRanks, holm, median } from "./inference.js";
import { meanSd } from "./map-metrics.js";
import { topAreaMetric } from "./protocol.js";
import type { CellRecord, ControlRecord } from "./store.js";
import { wilcoxon } from "./wilcoxon.js";

export const RANDOM = "random";
export const DISTANCE = "distance";
/** The pseudo-methods: yardsticks a method must beat, not competitors (left out of ranks and winners). */
export const CONTROLS: readonly string[] = [RANDOM, DISTANCE];
export const isControl = (method: string) => CONTROLS.includes(method);

export type Direction = "lower" | "higher" | "none";

/** Which way is "more faithful" for a metric name (the part before ':'). */
export function direction(metric: string): Direction {
  const base = metric.split(":")[0];
  if (base === "del_auc" || base === "del_norm" || base === "leakage" || base === "outside_causal") return "lower";
  if (
    base === "ins_auc" ||
    base === "ins_norm" ||
    base === "ins_minus_del" ||
    base === "ins_minus_del_norm" ||
    base === "stab_noise" ||
    base === "stab_seed"
  )
    return "higher";
  if (/^top(area)?[\d.]+$/.test(base)) return "lower"; // a larger drop of the outcome when the claimed support is removed
  return "none";
}

/**
 * Metrics compared pairwise: the normalised AUCs and their difference (insertion − deletion), the
 * top-10% effects (of the mass and of the area), leakage and stability (the raw AUCs and the other
 * top-k levels are summarised but not tested, to keep the table readable; cost, area and sparsity
 * are descriptive).
 */
export function tested(metric: string): boolean {
  return (
    /^(del_norm|ins_norm|ins_minus_del_norm|top10|toparea10):/.test(metric) ||
    ["leakage", "outside_causal", "stab_noise", "stab_seed"].includes(metric)
  );
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
  /** cells with a value */
  n: number;
  /** median over the cells */
  median?: number;
  /** images the cells come from (the bootstrap's clusters) */
  images?: number;
  /** 95% image-bootstrap interval of the mean (per-image means resampled); NaN with fewer than 2 images */
  ciLow?: number;
  ciHigh?: number;
}

/** A method's place among the methods of one scope by mean (1 = most faithful), with its interval. */
export interface RankRow {
  scope: "model" | "dataset" | "all";
  dataset: string;
  model: string;
  metric: string;
  method: string;
  rank: number;
  /** 95% image-bootstrap interval of the rank */
  low: number;
  high: number;
  images: number;
}

export interface PairRow {
  scope: "model" | "dataset" | "all";
  dataset: string;
  model: string;
  metric: string;
  a: string;
  b: string;
  /** images in the test: the paired differences are averaged per image first */
  n: number;
  /** paired cells behind those images */
  cells?: number;
  /** mean of the per-image mean (a − b) */
  meanDiff: number;
  /** 95% image-bootstrap interval of meanDiff */
  ciLow?: number;
  ciHigh?: number;
  /** matched-pairs rank-biserial correlation (W+ − W−) / (W+ + W−): the test's effect size, in [−1, 1] */
  rankBiserial?: number;
  wPlus: number;
  statistic: number;
  p: number;
  /** Holm-adjusted p within the family (scope, dataset, model, metric) */
  pHolm?: number;
  test: "exact" | "normal";
  /**
   * the method the test favours (by W+ against W−, in the metric's direction); "tie" when W+ = W−;
   * "none" when the test cannot favour either (one image, or p = 1)
   */
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
  ranks?: RankRow[];
  pairs: PairRow[];
}

/**
 * Insertion − deletion per fill, raw (ins_minus_del, outcome units) and normalised
 * (ins_minus_del_norm = ins_norm − del_norm, defined where both are): a pure function of the two AUCs,
 * so it is derived here for every cell and control rather than stored (cells computed before it
 * existed get it too, with unchanged keys).
 */
export function withInsMinusDel(metrics: Record<string, number | null>): Record<string, number | null> {
  const out = { ...metrics };
  for (const [name, del] of Object.entries(metrics)) {
    const m = /^del_(auc|norm):(.+)$/.exec(name);
    if (!m) continue;
    const ins = metrics[`ins_${m[1]}:${m[2]}`];
    if (ins === undefined) continue;
    out[`ins_minus_del${m[1] === "norm" ? "_norm" : ""}:${m[2]}`] = del === null || ins === null ? null : ins - del;
  }
  return out;
}

/** The flat metrics of a curve pair with one fill (cells and controls are summarised by the same names). */
export function curveMetrics(c: CurvePair, fill: string, m: Record<string, number | null>): void {
  m[`del_auc:${fill}`] = c.deletionAuc;
  m[`ins_auc:${fill}`] = c.insertionAuc;
  m[`del_norm:${fill}`] = c.deletionAucNorm;
  m[`ins_norm:${fill}`] = c.insertionAucNorm;
}

/** Flat rows: one per cell plus one "random" (and, when measured, "distance") row per control. */
export function rowsOf(cells: readonly CellRecord[], controls: readonly ControlRecord[]): Row[] {
  const rows: Row[] = cells.map((c) => ({
    cellKey: `${c.id.dataset}|${c.id.model}|${c.id.image}|${c.id.roi}`,
    dataset: c.id.dataset,
    model: c.id.model,
    image: c.id.image,
    roi: c.id.roi,
    method: c.method,
    metrics: withInsMinusDel(c.metrics),
  }));
  for (const k of controls) {
    if (k.status !== "ok" || !k.fills) continue;
    const orders: [string, NonNullable<ControlRecord["distance"]>][] = [[RANDOM, k.fills]];
    if (k.distance) orders.push([DISTANCE, k.distance]);
    for (const [method, perFill] of orders) {
      const m: Record<string, number | null> = {};
      for (const [fill, r] of Object.entries(perFill)) {
        curveMetrics(r!.curves, fill, m);
        for (const t of r!.topArea ?? []) m[topAreaMetric(t.k, fill)] = t.effect;
      }
      rows.push({
        cellKey: `${k.id.dataset}|${k.id.model}|${k.id.image}|${k.id.roi}`,
        dataset: k.id.dataset,
        model: k.id.model,
        image: k.id.image,
        roi: k.id.roi,
        method,
        metrics: withInsMinusDel(m),
      });
    }
  }
  return rows.sort((x, y) => (x.cellKey < y.cellKey ? -1 : x.cellKey > y.cellKey ? 1 : x.method < y.method ? -1 : x.method > y.method ? 1 : 0));
}

function metricOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Metrics ranked with intervals: the headline faithfulness comparisons. */
export function ranked(metric: string): boolean {
  return /^(del_norm|ins_norm|ins_minus_del_norm|top10|toparea10):/.test(metric);
}

/** Sum and count of each cluster's (image's) values, in first-seen order of the clusters. */
function clusterSums(values: readonly { cluster: string; v: number }[]): Map<string, [number, number]> {
  const acc = new Map<string, [number, number]>();
  for (const { cluster, v } of values) {
    const a = acc.get(cluster) ?? acc.set(cluster, [0, 0]).get(cluster)!;
    a[0] += v;
    a[1]++;
  }
  return acc;
}

/** Mean of each cluster's values. */
function clusterMeans(values: readonly { cluster: string; v: number }[]): Map<string, number> {
  return new Map([...clusterSums(values)].map(([k, [s, n]]) => [k, s / n]));
}

const imageOf = (r: Row) => `${r.dataset}|${r.image}`;

export function summarize(cells: readonly CellRecord[], controls: readonly ControlRecord[]): Summary {
  const methods = [...new Set(cells.map((c) => c.method))].sort();
  if (controls.some((c) => c.status === "ok")) methods.push(RANDOM);
  if (controls.some((c) => c.status === "ok" && c.distance)) methods.push(DISTANCE);
  return {
    format: "segcause.evalsummary/1",
    cells: cells.length,
    controls: controls.filter((c) => c.status === "ok").length,
    skippedRois: controls.filter((c) => c.status === "skipped").length,
    ...summarizeRows(rowsOf(cells, controls), methods),
  };
}

/** The statistics of flat rows (`methods` in table order, the random control last when present). */
export function summarizeRows(rows: readonly Row[], methods: string[]): Pick<Summary, "methods" | "models" | "stats" | "ranks" | "pairs"> {
  const models = [...new Map(rows.map((r) => [`${r.dataset}|${r.model}`, { dataset: r.dataset, model: r.model }])).values()].sort((a, b) =>
    metricOrder(`${a.dataset}|${a.model}`, `${b.dataset}|${b.model}`),
  );
  const metricNames = [...new Set(rows.flatMap((r) => Object.keys(r.metrics)))].sort(metricOrder);
  const scopes: { scope: StatRow["scope"]; dataset: string; model: string; pick: (r: Row) => boolean }[] = [
    ...models.map((m) => ({
      scope: "model" as const,
      dataset: m.dataset,
      model: m.model,
      pick: (r: Row) => r.dataset === m.dataset && r.model === m.model,
    })),
    ...[...new Set(models.map((m) => m.dataset))]
      .sort()
      .map((d) => ({ scope: "dataset" as const, dataset: d, model: "*", pick: (r: Row) => r.dataset === d })),
    { scope: "all", dataset: "*", model: "*", pick: () => true },
  ];
  const stats: StatRow[] = [];
  const ranks: RankRow[] = [];
  const pairs: PairRow[] = [];
  for (const s of scopes) {
    const sel = rows.filter(s.pick);
    // Each method's rows of this scope, in row order, split once for the stats, ranks and pairs below.
    const byMethod = new Map(methods.map((m) => [m, sel.filter((r) => r.method === m)]));
    for (const method of methods) {
      const mine = byMethod.get(method)!;
      if (mine.length === 0) continue;
      for (const metric of metricNames) {
        const vals = mine.flatMap((r) => {
          const v = r.metrics[metric];
          return v === null || v === undefined || !Number.isFinite(v) ? [] : [{ cluster: imageOf(r), v }];
        });
        if (vals.length === 0) continue;
        const xs = vals.map((x) => x.v);
        const { mean, sd, n } = meanSd(xs);
        // The interval of the cell mean itself, resampling whole images (with all their cells).
        const perImage = [...clusterSums(vals).values()];
        const [ciLow, ciHigh] = bootstrapMeanCi(
          perImage.map((c) => c[0]),
          perImage.map((c) => c[1]),
        );
        stats.push({
          scope: s.scope,
          dataset: s.dataset,
          model: s.model,
          method,
          metric,
          mean,
          sd,
          n,
          median: median(xs),
          images: perImage.length,
          ciLow,
          ciHigh,
        });
      }
    }
    // Ranks by the cell mean (as the tables rank), re-ranked on resampled images.
    for (const metric of metricNames.filter(ranked)) {
      const ms = methods.filter((m) => !isControl(m) && byMethod.get(m)!.some((r) => Number.isFinite(r.metrics[metric] ?? NaN)));
      if (ms.length === 0) continue;
      const perMethod = ms.map((m) =>
        clusterSums(
          byMethod
            .get(m)!
            .filter((r) => Number.isFinite(r.metrics[metric] ?? NaN))
            .map((r) => ({ cluster: imageOf(r), v: r.metrics[metric]! })),
        ),
      );
      const images = [...new Set(perMethod.flatMap((p) => [...p.keys()]))].sort();
      const sums = perMethod.map((p) => images.map((c) => p.get(c)?.[0] ?? 0));
      const counts = perMethod.map((p) => images.map((c) => p.get(c)?.[1] ?? 0));
      bootstrapRanks(sums, counts, direction(metric) === "lower").forEach((r, i) =>
        ranks.push({
          scope: s.scope,
          dataset: s.dataset,
          model: s.model,
          metric,
          method: ms[i],
          rank: r.rank,
          low: r.low,
          high: r.high,
          images: images.length,
        }),
      );
    }
    for (const metric of metricNames.filter(tested)) {
      for (let i = 0; i < methods.length; i++) {
        for (let j = i + 1; j < methods.length; j++) {
          const a = methods[i],
            b = methods[j];
          const byKey = new Map(byMethod.get(b)!.map((r) => [r.cellKey, r.metrics[metric]]));
          const diffs: { cluster: string; v: number }[] = [];
          for (const r of byMethod.get(a)!) {
            const va = r.metrics[metric],
              vb = byKey.get(r.cellKey);
            if (va === null || va === undefined || vb === null || vb === undefined) continue;
            diffs.push({ cluster: imageOf(r), v: va - vb });
          }
          if (diffs.length === 0) continue;
          const perImage = [...clusterMeans(diffs).values()];
          const w = wilcoxon(perImage);
          const meanDiff = perImage.reduce((x, y) => x + y, 0) / perImage.length;
          const [ciLow, ciHigh] = bootstrapMeanCi(perImage);
          const dir = direction(metric);
          // The test's own direction: W+ > W− means a − b tends to be positive.
          // One image, or p = 1, is no evidence either way: the test favours neither method.
          const better = w.wPlus === w.wMinus ? "tie" : perImage.length < 2 || !(w.p < 1) ? "none" : w.wPlus < w.wMinus === (dir === "lower") ? a : b;
          const rankBiserial = w.wPlus + w.wMinus > 0 ? (w.wPlus - w.wMinus) / (w.wPlus + w.wMinus) : 0;
          pairs.push({
            scope: s.scope,
            dataset: s.dataset,
            model: s.model,
            metric,
            a,
            b,
            n: perImage.length,
            cells: diffs.length,
            meanDiff,
            ciLow,
            ciHigh,
            rankBiserial,
            wPlus: w.wPlus,
            statistic: w.statistic,
            p: w.p,
            pHolm: Number.NaN,
            test: w.method,
            better,
          });
        }
      }
    }
  }
  // Holm within each family: one scope and metric, every pair of methods; comparisons with a control
  // are a family of their own (switching a control on must not change the methods' corrections).
  const families = new Map<string, PairRow[]>();
  for (const p of pairs) {
    const k = `${p.scope}|${p.dataset}|${p.model}|${p.metric}|${isControl(p.a) || isControl(p.b)}`;
    (families.get(k) ?? families.set(k, []).get(k)!).push(p);
  }
  for (const fam of families.values()) holm(fam.map((p) => p.p)).forEach((q, i) => (fam[i].pHolm = q));
  return { methods, models, stats, ranks, pairs };
}

/** Tests that find a difference at level α after Holm's adjustment. */
export function holmSignificant(p: PairRow, alpha = 0.05): boolean {
  return (p.pHolm ?? Number.NaN) < alpha && p.better !== "tie" && p.better !== "none";
}

/** The best method (by mean, following the metric's direction) per scope and metric, controls excluded. */
export function winners(
  s: Summary,
  metric: string,
): { dataset: string; model: string; best: string; mean: number; ranking: { method: string; mean: number; n: number }[] }[] {
  const dir = direction(metric);
  const groups = new Map<string, StatRow[]>();
  for (const r of s.stats) {
    if (r.metric !== metric || isControl(r.method) || !Number.isFinite(r.mean)) continue;
    const k = `${r.dataset}|${r.model}`;
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k)!.push(r);
  }
  const key = (r: StatRow) => `${r.dataset === "*" ? "\uffff" : r.dataset}|${r.model === "*" ? "\uffff" : r.model}`;
  return [...groups.values()]
    .sort((a, b) => (key(a[0]) < key(b[0]) ? -1 : key(a[0]) > key(b[0]) ? 1 : 0))
    .map((rs) => {
      const ranking = rs
        .map((r) => ({ method: r.method, mean: r.mean, n: r.n }))
        .sort((x, y) => (dir === "higher" ? y.mean - x.mean : x.mean - y.mean));
      // Methods tied with the top mean share the place (e.g. every map 0 on a tiny model).
      const best = ranking
        .filter((r) => r.mean === ranking[0].mean)
        .map((r) => r.method)
        .join(" = ");
      return { dataset: rs[0].dataset, model: rs[0].model, best, mean: ranking[0].mean, ranking };
    });
}
