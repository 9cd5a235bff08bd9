/**
 * The sentences the published results state, generated from the numbers they rest on: the docs carry
 * them between `<!-- generated: NAME -->` and `<!-- end generated -->` markers, and a test checks every
 * such block against these functions on the published tables (so prose cannot drift from the data).
 */
import { csvRecords } from "./html.js";
import { direction, isControl, RANDOM, type Summary, winners } from "./summary.js";
import { pdcrPairCounts } from "./tables.js";

const ORDINAL = (n: number) => `${n}${n % 100 >= 11 && n % 100 <= 13 ? "th" : (["th", "st", "nd", "rd"][n % 10] ?? "th")}`;

/** The headline comparisons: normalised deletion and insertion AUC and the top-10% effect, per fill. */
export function headlineMetrics(fills: readonly string[]): string[] {
  return fills.flatMap((f) => [`del_norm:${f}`, `ins_norm:${f}`, `top10:${f}`]);
}

interface Placing {
  dataset: string;
  model: string;
  metric: string;
  /** 1-based, ties sharing the better place */
  rank: number;
  of: number;
  best: string;
}

/** PdCR's place by mean in every scope × headline comparison where it has a mean. */
export function pdcrPlacings(summary: Summary, fills: readonly string[]): Placing[] {
  const out: Placing[] = [];
  for (const metric of headlineMetrics(fills)) {
    for (const w of winners(summary, metric)) {
      const me = w.ranking.find((r) => r.method === "pdcr");
      if (!me) continue;
      const lower = direction(metric) === "lower";
      const rank = 1 + w.ranking.filter((r) => (lower ? r.mean < me.mean : r.mean > me.mean)).length;
      out.push({ dataset: w.dataset, model: w.model, metric, rank, of: w.ranking.length, best: w.best });
    }
  }
  return out;
}

const range = (xs: number[]) => (Math.min(...xs) === Math.max(...xs) ? ORDINAL(xs[0]) : `${ORDINAL(Math.min(...xs))}–${ORDINAL(Math.max(...xs))}`);
const FILL_NAMES: Record<string, string> = { patches: "natural patches", blur: "blur", zero: "zero", mean: "mean" };

/** The ranking paragraph of docs/results/README.md. */
export function rankingClaims(summary: Summary, fills: readonly string[]): string {
  const all = pdcrPlacings(summary, fills);
  const dataset = all.filter((p) => p.model === "*" && p.dataset !== "*");
  const perModel = all.filter((p) => p.model !== "*");
  const datasets = [...new Set(dataset.map((p) => p.dataset))].sort();
  const firstsPerModel = perModel.filter((p) => p.rank === 1);
  const lines = [
    `- **By mean, PdCR ranks first on ${dataset.filter((p) => p.rank === 1).length} of the ${dataset.length} dataset-level comparisons** (dataset × fill × metric: normalised deletion and insertion AUC and the top-10% effect), and first on ${firstsPerModel.length} of the ${perModel.length} per-model comparisons where it has a mean${firstsPerModel.length ? ` (${firstsPerModel.map((p) => `${p.model}, ${p.metric}`).join("; ")})` : ""}.`,
  ];
  for (const ds of datasets) {
    const mine = dataset.filter((p) => p.dataset === ds);
    const byFill = fills.map((f) => `${FILL_NAMES[f] ?? f} ${range(mine.filter((p) => p.metric.endsWith(`:${f}`)).map((p) => p.rank))}`);
    lines.push(
      `- On ${ds} it places ${range(mine.map((p) => p.rank))} of ${mine[0].of} (by fill: ${byFill.join(", ")}), in the top five on ${mine.filter((p) => p.rank <= 5).length} of ${mine.length}; the leaders: ${[...new Set(mine.map((p) => p.best))].join(", ")}.`,
    );
  }
  for (const c of pdcrPairCounts(summary, fills)) {
    lines.push(
      `- Paired tests on ${c.dataset} (Wilcoxon over the ${imagesOf(summary, c.dataset)} images, Holm-adjusted within each metric, p < 0.05; the random control and the descriptive leakage metric not counted): of ${c.tests} comparisons with the ${c.others} other methods, PdCR is better in ${c.better}, worse in ${c.worse}, and no difference is found in ${c.none}. Against the random order it is better in ${c.beatsRandom} and worse in ${c.losesToRandom} of ${c.randomTests} deletion/insertion comparisons${c.distanceTests ? `; against the distance-to-RoI order, better in ${c.beatsDistance} and worse in ${c.losesToDistance} of ${c.distanceTests}` : ""}.`,
    );
  }
  return lines.join("\n");
}

function imagesOf(summary: Summary, dataset: string): number {
  return Math.max(
    0,
    ...summary.pairs
      .filter((p) => p.scope === "dataset" && p.dataset === dataset && (p.a === "pdcr" || p.b === "pdcr") && !isControl(p.a) && !isControl(p.b))
      .map((p) => p.n),
  );
}

/** The passes each method spent per map (medians over all cells, with the range of the cells). */
export function budgetClaims(summary: Summary): string {
  const rows = summary.stats
    .filter((r) => r.scope === "all" && r.metric === "forward" && r.method !== RANDOM)
    .sort((a, b) => (b.median ?? 0) - (a.median ?? 0));
  return `The budgets are not matched: the median forward passes per map are ${rows.map((r) => `${r.method} ${Math.round(r.median ?? NaN)}`).join(", ")} (\`forward\` in the tables; gradient methods also spend backward passes).`;
}

/** The top-level README's one-paragraph summary of the benchmark. */
export function shortClaims(summary: Summary, fills: readonly string[], strategies: readonly StrategyMapRow[]): string {
  const dataset = pdcrPlacings(summary, fills).filter((p) => p.model === "*" && p.dataset !== "*");
  const datasets = [...new Set(dataset.map((p) => p.dataset))].sort();
  const counts = pdcrPairCounts(summary, fills);
  return [
    `In short, PdCR is not the most faithful method there: by mean it ranks first on ${dataset.filter((p) => p.rank === 1).length} of the ${dataset.length}`,
    `dataset-level comparisons (${datasets.map((d) => `${range(dataset.filter((p) => p.dataset === d).map((p) => p.rank))} on ${d}`).join(", ")}). In image-level paired tests with`,
    `Holm's correction it is ${counts.map((c, i) => `${i ? "" : "better than another method "}in ${c.better} and worse in ${c.worse} of ${c.tests} comparisons on ${c.dataset}`).join("; better ")}.`,
    `${strategySummary(strategies)}`,
  ].join("\n");
}

/** One row of strategies/maps.csv (the fields the claims read). */
export interface StrategyMapRow {
  dataset: string;
  model: string;
  method: string;
  cls: string;
  chainExtent: number | null;
  chainMass: number | null;
  chainWidth: number | null;
}

type ModelClasses = { model: string; maps: number; local: number; global: number; sequential: number; empty: number };

function classesByModel(rows: readonly StrategyMapRow[]): ModelClasses[] {
  const by = new Map<string, ModelClasses>();
  for (const r of rows) {
    if (r.method !== "pdcr") continue;
    const m = by.get(r.model) ?? by.set(r.model, { model: r.model, maps: 0, local: 0, global: 0, sequential: 0, empty: 0 }).get(r.model)!;
    m.maps++;
    if (r.cls === "local" || r.cls === "global" || r.cls === "sequential") m[r.cls]++;
    else m.empty++;
  }
  return [...by.values()].sort((a, b) => (a.model < b.model ? -1 : 1));
}

/** Local on every map with a class / global on at least 3 in 4 / mixed. */
function kind(m: ModelClasses): "local" | "global" | "mixed" {
  const classed = m.maps - m.empty;
  if (m.local === classed) return "local";
  if (m.global >= 0.75 * classed) return "global";
  return "mixed";
}

function strategySummary(rows: readonly StrategyMapRow[]): string {
  const ms = classesByModel(rows);
  const list = (k: string) => ms.filter((m) => kind(m) === k).map((m) => m.model);
  const mixed = ms.filter((m) => kind(m) === "mixed").map((m) => `${m.model} ${m.local} local, ${m.global} global`);
  return `Its maps are local on every map of ${list("local").join(", ")}; mostly global on ${list("global")
    .map((n) => {
      const m = ms.find((x) => x.model === n)!;
      return `${n} (${m.global} of ${m.maps})`;
    })
    .join(", ")}${mixed.length ? `; mixed on ${mixed.join(", ")}` : ""}.`;
}

/** The strategy paragraph of docs/results/README.md (r = the local radius in blocks the run used). */
export function strategyClaims(rows: readonly StrategyMapRow[], radius: number): string {
  const ms = classesByModel(rows);
  const pdcr = rows.filter((r) => r.method === "pdcr");
  const nonLocal = pdcr.filter((r) => r.cls === "global" || r.cls === "sequential");
  const reach = nonLocal.filter((r) => (r.chainExtent ?? 0) >= 2 * radius);
  const half = reach.filter((r) => (r.chainMass ?? 0) >= 0.5);
  const thin = (r: StrategyMapRow) => (r.chainWidth ?? Infinity) <= 6;
  const fmtModels = (xs: ModelClasses[]) =>
    xs
      .map(
        (m) =>
          `${m.model} (${[m.local && `${m.local} local`, m.global && `${m.global} global`, m.sequential && `${m.sequential} sequential`, m.empty && `${m.empty} empty`].filter(Boolean).join(", ")} of ${m.maps})`,
      )
      .join("; ");
  return [
    `- Local on every map: ${fmtModels(ms.filter((m) => kind(m) === "local"))}.`,
    `- Mostly global (at least 3 maps in 4): ${fmtModels(ms.filter((m) => kind(m) === "global"))}.`,
    `- Mixed: ${fmtModels(ms.filter((m) => kind(m) === "mixed")) || "none"}.`,
    `- Of the ${nonLocal.length} non-local PdCR maps, ${reach.length} have a chain of blocks from the RoI reaching ${2 * radius} blocks (2r), ${half.length} of those carry at least half the mass, and ${reach.filter(thin).length} of the ${reach.length} (${half.filter(thin).length} of the ${half.length}) are thin (width ≤ 6 blocks): the far-reaching chains are mostly wide blobs, not lines.`,
  ].join("\n");
}

/** maps.csv of a strategies folder, as StrategyMapRows. */
export function strategyRowsFromCsv(text: string): StrategyMapRow[] {
  const num = (v: string) => (v === "" ? null : Number(v));
  return csvRecords(text).map((r) => ({
    dataset: r.dataset,
    model: r.model,
    method: r.method,
    cls: r.cls,
    chainExtent: num(r.chainExtent),
    chainMass: num(r.chainMass),
    chainWidth: num(r.chainWidth),
  }));
}

/** Every `<!-- generated: NAME -->` block of a markdown text, with its current body. */
export function generatedBlocks(md: string): { name: string; body: string }[] {
  return [...md.matchAll(/<!-- generated: ([\w-]+) -->\n([\s\S]*?)\n<!-- end generated -->/g)].map((m) => ({ name: m[1], body: m[2] }));
}

/** md with the body of block `name` replaced. */
export function replaceBlock(md: string, name: string, body: string): string {
  const re = new RegExp(`(<!-- generated: ${name} -->\\n)[\\s\\S]*?(\\n<!-- end generated -->)`);
  if (!re.test(md)) throw new Error(`no generated block ${name}`);
  return md.replace(re, (_, a: string, b: string) => `${a}${body}${b}`);
}
