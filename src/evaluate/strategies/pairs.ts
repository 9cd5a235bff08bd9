/** Paired model comparisons of the strategy statistics (Wilcoxon signed-rank, Holm within each family). */
import { csv } from "../html.js";
import { holm } from "../inference.js";
import { wilcoxon } from "../wilcoxon.js";
import type { MapResult } from "./maps.js";

export interface ModelPair {
  dataset: string;
  method: string;
  stat: string;
  a: string;
  b: string;
  n: number;
  meanDiff: number;
  p: number;
  /** Holm-adjusted within the family (dataset, method, statistic): every pair of models */
  pHolm: number;
  test: string;
}

/** Paired model comparisons of each map statistic on the same (dataset, image, RoI, method). */
export function modelPairs(results: readonly Pick<MapResult, "dataset" | "model" | "image" | "roi" | "roiRect" | "method" | "stats">[]): ModelPair[] {
  const pairs: ModelPair[] = [];
  for (const ds of [...new Set(results.map((r) => r.dataset))].sort()) {
    for (const method of [...new Set(results.map((r) => r.method))].sort()) {
      const rs = results.filter((r) => r.dataset === ds && r.method === method);
      const models = [...new Set(rs.map((r) => r.model))].sort();
      for (let i = 0; i < models.length; i++) {
        for (let j = i + 1; j < models.length; j++) {
          const bKey = new Map(rs.filter((r) => r.model === models[j]).map((r) => [`${r.image}|${r.roi}|${r.roiRect.row},${r.roiRect.col}`, r]));
          for (const stat of ["localShare", "spread", "entropy", "chainExtent"] as const) {
            const d: number[] = [];
            for (const r of rs.filter((x) => x.model === models[i])) {
              const o = bKey.get(`${r.image}|${r.roi}|${r.roiRect.row},${r.roiRect.col}`);
              if (o && Number.isFinite(r.stats[stat]) && Number.isFinite(o.stats[stat])) d.push(r.stats[stat] - o.stats[stat]);
            }
            if (d.length === 0) continue;
            const w = wilcoxon(d);
            pairs.push({
              dataset: ds,
              method,
              stat,
              a: models[i],
              b: models[j],
              n: d.length,
              meanDiff: d.reduce((s, v) => s + v, 0) / d.length,
              p: w.p,
              pHolm: Number.NaN,
              test: w.method,
            });
          }
        }
      }
    }
  }
  const families = new Map<string, ModelPair[]>();
  for (const p of pairs) {
    const k = JSON.stringify([p.dataset, p.method, p.stat]);
    (families.get(k) ?? families.set(k, []).get(k)!).push(p);
  }
  for (const fam of families.values()) holm(fam.map((f) => f.p)).forEach((q, k) => (fam[k].pHolm = q));
  return pairs;
}

export function modelPairsCsv(pairs: readonly ModelPair[]): string {
  return csv(
    ["dataset", "method", "stat", "a", "b", "n", "mean_diff_a_minus_b", "p", "p_holm", "test"],
    pairs.map((p) => [p.dataset, p.method, p.stat, p.a, p.b, p.n, p.meanDiff, p.p, p.pHolm, p.test]),
  );
}
