/**
 * The statistics tables as text: the CSV files and the Markdown summary of report.md. One writer
 * for a run's folder (report.ts) and for the published results recomputed from cells.csv.
 */
import { csv, fmt } from "./html.js";
import { DISTANCE, direction, holmSignificant, isControl, RANDOM, type Summary, winners } from "./summary.js";

/** The faithfulness comparisons ranked and tabulated per fill (metrics a run lacks are skipped). */
export const FAITHFULNESS = (f: string) => [`del_norm:${f}`, `ins_norm:${f}`, `ins_minus_del_norm:${f}`, `top10:${f}`, `toparea10:${f}`];

/** The statistics tables as CSV text, by file name (one writer for a run's folder and the published results). */
export function statisticsCsv(summary: Summary): Record<"summary.csv" | "pairs.csv" | "ranks.csv", string> {
  return {
    "summary.csv": csv(
      ["scope", "dataset", "model", "method", "metric", "direction", "mean", "sd", "n", "median", "images", "mean_ci95_low", "mean_ci95_high"],
      summary.stats.map((s) => [
        s.scope,
        s.dataset,
        s.model,
        s.method,
        s.metric,
        direction(s.metric),
        s.mean,
        s.sd,
        s.n,
        s.median,
        s.images,
        s.ciLow,
        s.ciHigh,
      ]),
    ),
    "pairs.csv": csv(
      [
        "scope",
        "dataset",
        "model",
        "metric",
        "a",
        "b",
        "n_images",
        "n_cells",
        "mean_diff_a_minus_b",
        "diff_ci95_low",
        "diff_ci95_high",
        "rank_biserial",
        "w_plus",
        "statistic",
        "p",
        "p_holm",
        "test",
        "better",
      ],
      summary.pairs.map((p) => [
        p.scope,
        p.dataset,
        p.model,
        p.metric,
        p.a,
        p.b,
        p.n,
        p.cells,
        p.meanDiff,
        p.ciLow,
        p.ciHigh,
        p.rankBiserial,
        p.wPlus,
        p.statistic,
        p.p,
        p.pHolm,
        p.test,
        p.better,
      ]),
    ),
    "ranks.csv": csv(
      ["scope", "dataset", "model", "metric", "direction", "method", "rank", "rank_ci95_low", "rank_ci95_high", "images"],
      (summary.ranks ?? []).map((r) => [r.scope, r.dataset, r.model, r.metric, direction(r.metric), r.method, r.rank, r.low, r.high, r.images]),
    ),
  };
}

/** Markdown tables of the headline numbers (for READMEs): per dataset, mean ± sd (n) per method, and the best method per model. */
export function markdownSummary(summary: Summary, fills: readonly string[]): string {
  const lines: string[] = [
    "Each entry is the mean over the cells with its 95% image-bootstrap interval in brackets (n cells in",
    "parentheses; the interval resamples images, so an image explained by several models counts once; n",
    "differs between columns where cells whose outcome range is below --min-range are left out of the",
    "normalised AUCs; medians and sd are in summary.csv). ↓ lower is more faithful,",
    "↑ higher is. `del_norm`/`ins_norm`: normalised deletion/insertion AUC with the fill after the colon;",
    "`top10`: change of the RoI outcome (× 100, e.g. Dice points) when the top 10% of the support mass is",
    "replaced (0 for a map that claims no support: it replaces nothing); `forward`/`backward`: passes per",
    "map; `wall_s`: seconds per map.",
    "",
  ];
  const has = (re: RegExp) => summary.stats.some((s) => re.test(s.metric));
  if (has(/^(ins_minus_del_norm|toparea10):/) || summary.methods.includes(DISTANCE)) {
    lines.splice(
      lines.length - 1,
      0,
      "`ins_minus_del_norm`: normalised insertion − deletion AUC (↑); `toparea10`: change of the RoI outcome",
      "when the first 10% of the explained domain's area in the method's unit order is replaced (the same area",
      "for every method); `distance`: the control that removes the units nearest the RoI first.",
    );
  }
  const cols = [
    ...fills.flatMap((f) => [`del_norm:${f}`, `ins_norm:${f}`, `ins_minus_del_norm:${f}`]),
    ...fills.flatMap((f) => [`top10:${f}`, `toparea10:${f}`]),
    "forward",
    "backward",
    "wall_s",
  ];
  const arrow = (m: string) => (direction(m) === "lower" ? " ↓" : direction(m) === "higher" ? " ↑" : "");
  for (const scope of ["dataset", "model"] as const) {
    const groups = [...new Set(summary.stats.filter((s) => s.scope === scope).map((s) => `${s.dataset}|${s.model}`))];
    for (const g of groups) {
      const [ds, model] = g.split("|");
      const st = summary.stats.filter((s) => s.scope === scope && s.dataset === ds && s.model === model);
      lines.push(`#### ${ds}${model !== "*" ? ` · ${model}` : " (all models)"}`, "");
      const present = cols.filter((c) => st.some((s) => s.metric === c));
      lines.push(`| method | ${present.map((c) => c + arrow(c)).join(" | ")} |`, `|---|${present.map(() => "---").join("|")}|`);
      for (const m of summary.methods) {
        if (!st.some((s) => s.method === m)) continue;
        lines.push(
          `| ${m} | ${present
            .map((c) => {
              const s = st.find((x) => x.method === m && x.metric === c);
              const d = c === "forward" || c === "backward" ? 0 : 3;
              return s ? `${fmt(s.mean, d)}${Number.isFinite(s.ciLow ?? NaN) ? ` [${fmt(s.ciLow, d)}, ${fmt(s.ciHigh, d)}]` : ""} (${s.n})` : "–";
            })
            .join(" | ")} |`,
        );
      }
      lines.push("");
    }
  }
  lines.push(
    `#### Most faithful method by mean (${summary.methods.includes(DISTANCE) ? "random and distance controls" : "random control"} excluded)`,
    "",
    "Ranks by mean; in brackets the 95% image-bootstrap interval of PdCR's rank (a rank whose interval spans",
    "several places is not a finding).",
    "",
    "| dataset | model | metric | best | pdcr's rank [95% CI] | ranking |",
    "|---|---|---|---|---|---|",
  );
  for (const f of fills) {
    for (const metric of FAITHFULNESS(f)) {
      for (const w of winners(summary, metric)) {
        const rank = rankOf(w.ranking, "pdcr", metric);
        const ci = summary.ranks?.find(
          (r) => r.scope !== "all" && r.dataset === w.dataset && r.model === w.model && r.metric === metric && r.method === "pdcr",
        );
        const ciText = ci && Number.isFinite(ci.low) ? ` [${ci.low}–${ci.high}]` : "";
        lines.push(
          `| ${w.dataset} | ${w.model} | ${metric}${arrow(metric)} | ${w.best} | ${rank < 0 ? "–" : `${rank + 1} of ${w.ranking.length}${ciText}`} | ${w.ranking.map((r) => `${r.method} ${fmt(r.mean)}`).join(", ")} |`,
        );
      }
    }
  }
  if (summary.methods.includes("pdcr")) {
    lines.push("", "#### Where PdCR is not the most faithful (per dataset, by mean)", "");
    const not: string[] = [];
    const best: string[] = [];
    for (const f of fills) {
      for (const metric of FAITHFULNESS(f)) {
        for (const w of winners(summary, metric).filter((x) => x.dataset !== "*" && x.model === "*")) {
          const rank = rankOf(w.ranking, "pdcr", metric);
          if (rank < 0) continue;
          const pdcr = w.ranking.find((r) => r.method === "pdcr")!;
          if (rank === 0) best.push(`${w.dataset} ${metric}`);
          else
            not.push(
              `- ${w.dataset}, ${metric}${arrow(metric)}: PdCR ranks ${rank + 1} of ${w.ranking.length} (${fmt(pdcr.mean)}); best ${w.best} (${fmt(w.mean)})`,
            );
        }
      }
    }
    lines.push(
      ...(not.length ? not : ["- nowhere in these cells"]),
      "",
      `PdCR is the most faithful by mean on: ${best.length ? best.join("; ") : "none of these metrics"}.`,
    );
    lines.push(
      "",
      "#### PdCR in paired tests (per dataset, over images, Holm p < 0.05)",
      "",
      ...pdcrPairCounts(summary, fills).map(
        (c) =>
          `- ${c.dataset}: against the ${c.others} other methods on ${c.metrics} faithfulness metrics (${c.tests} tests), PdCR is better in ${c.better}, worse in ${c.worse}, and no difference is found in ${c.none}; it beats the random order in ${c.beatsRandom} of ${c.randomTests} (deletion/insertion) and loses to it in ${c.losesToRandom}${c.distanceTests ? `; it beats the distance-to-RoI order in ${c.beatsDistance} of ${c.distanceTests} and loses to it in ${c.losesToDistance}` : ""}.`,
      ),
    );
  }
  return `${lines.join("\n")}\n`;
}

/**
 * PdCR's paired-test record per dataset: faithfulness metrics only (normalised deletion and
 * insertion AUCs and the top-10% effect, per fill; not leakage, which is descriptive), other methods,
 * the random control and the distance control counted apart, a finding only at Holm p < 0.05.
 */
export function pdcrPairCounts(
  summary: Summary,
  fills: readonly string[],
): {
  dataset: string;
  others: number;
  metrics: number;
  tests: number;
  better: number;
  worse: number;
  none: number;
  beatsRandom: number;
  losesToRandom: number;
  randomTests: number;
  beatsDistance: number;
  losesToDistance: number;
  distanceTests: number;
}[] {
  const metrics = new Set(fills.flatMap((f) => [`del_norm:${f}`, `ins_norm:${f}`, `top10:${f}`]));
  const datasets = [...new Set(summary.pairs.filter((p) => p.scope === "dataset").map((p) => p.dataset))].sort();
  return datasets.map((dataset) => {
    const mine = summary.pairs.filter(
      (p) => p.scope === "dataset" && p.dataset === dataset && metrics.has(p.metric) && (p.a === "pdcr" || p.b === "pdcr"),
    );
    const vsMethods = mine.filter((p) => !isControl(p.a) && !isControl(p.b));
    const vsRandom = mine.filter((p) => p.a === RANDOM || p.b === RANDOM);
    const vsDistance = mine.filter((p) => p.a === DISTANCE || p.b === DISTANCE);
    const won = (p: (typeof mine)[number]) => holmSignificant(p) && p.better === "pdcr";
    const lost = (p: (typeof mine)[number]) => holmSignificant(p) && p.better !== "pdcr";
    return {
      dataset,
      others: new Set(vsMethods.map((p) => (p.a === "pdcr" ? p.b : p.a))).size,
      metrics: new Set(vsMethods.map((p) => p.metric)).size,
      tests: vsMethods.length,
      better: vsMethods.filter(won).length,
      worse: vsMethods.filter(lost).length,
      none: vsMethods.filter((p) => !won(p) && !lost(p)).length,
      beatsRandom: vsRandom.filter(won).length,
      losesToRandom: vsRandom.filter(lost).length,
      randomTests: vsRandom.length,
      beatsDistance: vsDistance.filter(won).length,
      losesToDistance: vsDistance.filter(lost).length,
      distanceTests: vsDistance.length,
    };
  });
}

/** 0-based rank = number of methods strictly better by mean (ties share the rank); −1 if absent. */
function rankOf(ranking: { method: string; mean: number }[], method: string, metric: string): number {
  const me = ranking.find((r) => r.method === method);
  if (!me) return -1;
  const lower = direction(metric) === "lower";
  return ranking.filter((r) => (lower ? r.mean < me.mean : r.mean > me.mean)).length;
}
