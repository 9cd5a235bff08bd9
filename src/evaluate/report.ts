/**
 * Writes the results of a benchmark folder from whatever cells exist (a partial run is always
 * readable): cells.jsonl / cells.csv, summary.json and the tables (tables.ts), PNG plots and a
 * self-contained report.html.
 */
import { join } from "node:path";
import { svgToPng } from "../report/charts.js";
import { getOrInsert } from "../util/maps.js";
import { esc } from "../util/xml.js";
import type { CurvePair } from "./curves.js";
import type { FillName } from "./fills.js";
import { csv, fmt, page, pngImg, table } from "./html.js";
import { boxPanelsSvg, colourOf, panelsSvg, type Series } from "./plots.js";
import {
  type CellRecord,
  type ControlRecord,
  listCells,
  listControls,
  listFailed,
  listRuns,
  type RunRecord,
  readJson,
  writeAtomic,
} from "./store.js";
import { DISTANCE, direction, holmSignificant, isControl, RANDOM, rowsOf, type Summary, summarize, winners } from "./summary.js";
import { FAITHFULNESS, markdownSummary, statisticsCsv } from "./tables.js";

export const METRIC_DEFINITIONS: [string, string][] = [
  [
    "domain D",
    "the pixels outside the RoI; every method explains them and every curve intervenes only on them (the RoI is the target, never the treatment)",
  ],
  [
    "units",
    "--rank-units: D partitioned into the units every map is ranked on, the same for every method and control of a (model, image, RoI): block:N (default block:16) = the N×N cells of a grid from the image's top-left corner, clipped to D (a cell the RoI cuts keeps its pixels outside the RoI; edge cells clipped to the image); superpixel:N = SLIC superpixels of the image (about N, compactness 10, CIELAB), likewise cut by the RoI; pixel = every pixel its own unit (the published run's protocol; a run.json without rankUnits used it)",
  ],
  [
    "order",
    "the units sorted by decreasing mean support over their pixels (supportMap: −map for signed maps, the map for unsigned ones; NaN pixels ignored, a unit without a value last); ties (equal means, e.g. the exactly-zero regions of a sparse map) broken by one seeded key per unit, uniform(seed, unit's grid-cell / superpixel / pixel index), the same rule for every method and control; the pixels of a unit are removed and restored together",
  ],
  [
    "random / distance",
    "model-free controls ranked on the same units: random = a seeded uniformly random order of the units; distance (--controls distance) = units by increasing mean distance of their pixels to the RoI (nearest first), ties by the same seeded key; both get the curves and the area-matched top-k, and enter the tables and tests as pseudo-methods (left out of ranks and 'most faithful'); a method that does not beat distance is not shown to be faithful beyond 'what is near the RoI matters'",
  ],
  [
    "del_auc:<fill>",
    "deletion curve: outcome (Dice×100 of the RoI vs the reference, the method's Target) after replacing the first round(k·U/K) of the order's U units with the fill, k = 0..K (--steps, default 20; with pixel units these are K equal-area steps of round(kN/K) pixels; the settings this run used are listed above); AUC = trapezoid mean over k/K in [0,1], in Dice points; lower = more faithful",
  ],
  [
    "ins_auc:<fill>",
    "insertion curve: start from the image with all of D replaced, restore the first round(k·U/K) units of the order; AUC as above; higher = more faithful",
  ],
  [
    "ins_minus_del:<fill> / ins_minus_del_norm:<fill>",
    "insertion AUC − deletion AUC (Dice points) and normalised insertion − normalised deletion (= (ins_auc − del_auc) / (m(X) − m(removed)), defined where both are); one number per cell that rewards a curve pair for being steep where it should be and is blind to the shared end points; higher = more faithful; derived from the stored AUCs for every cell",
  ],
  [
    "del_norm / ins_norm",
    "normalised AUC = (AUC − m(removed)) / (m(X) − m(removed)), m(X) the intact outcome and m(removed) the outcome with all of D replaced (the shared end points of both curves); 0 = the curve sits at m(removed) throughout, 1 = at m(X); undefined (–) unless m(X) − m(removed) ≥ 5 Dice points (--min-range: removing all of D must hurt the RoI, otherwise the curve carries no signal); values outside [0,1] happen when a curve overshoots its end points; the random and distance controls' values are the ones to beat",
  ],
  [
    "fills",
    "patches = natural patches from the bank (of --bank-patch-size px, default 8) tiled over the removed pixels (PdCR's treatment, PatchIntervention; each point is the mean over the same seeded draws, --patch-draws, default 2, for every method and for the random control); blur = Gaussian blur (--blur-sigma, default σ 5 px) of the image; zero = black; mean = the image's mean colour",
  ],
  [
    "top<k>:<fill>",
    "mass-matched top-k: m(X with the top-k% of the attribution mass replaced) − m(X), k ∈ {1,5,10,20} (--topk); the attribution mass is Σ over units of |unit| · max(mean support, 0) (with pixel units Σ_D max(support,0)); the top-k% set is the shortest prefix of whole units of the order whose mass reaches k% of it (empty, effect 0, when the map claims no support); its area differs between methods (a sparse map's top-10% of the mass can be a tiny area), so compare methods on toparea<k>; more negative = more faithful",
  ],
  ["top<k>_area", "share of D in that mass-matched top-k% set"],
  [
    "toparea<k>:<fill>",
    "area-matched top-k: m(X with the top-k% of D's area replaced) − m(X), k ∈ {1,5,10,20} (--top-area); the set is the shortest prefix of whole units of the order covering at least k% of D, so every method and control replaces the same area up to one unit; more negative = more faithful; toparea<k>_area = its share of D",
  ],
  [
    "leakage",
    "share of the positive support mass farther than r px (default 32) (Euclidean, pixel centres) from the RoI; lower = the method credits the RoI's surroundings; a descriptive, not a faithfulness, metric on real models",
  ],
  ["outside_causal", "(tiny models only) share of the positive support mass outside the known causal region"],
  ["gini", "Gini coefficient of |map| over D (0 = uniform, 1 = one pixel holds everything): sparsity"],
  [
    "stab_noise / stab_seed",
    "(with --stability) Spearman rank correlation over D of the support map with the map of the same image plus Gaussian pixel noise (σ = 4 grey levels, seeded), and with the map computed with seed+1",
  ],
  ["forward / backward / wall_s", "passes of the model the method used for its map and its wall time (the curves' own passes are not included)"],
  [
    "paired tests",
    "of del_norm, ins_norm, ins_minus_del_norm, top10, toparea10 (per fill), leakage and stability: Wilcoxon signed-rank (two-sided; zero differences dropped; exact when n ≤ 50 without ties, else normal approximation with tie correction, no continuity correction — scipy's defaults) over the images two methods share: the differences of the cells they share (same model, image and RoI) are averaged per image first, so an image explained by 5 models counts once (n = images); p_holm = Holm's adjustment within each family (one scope and metric: every pair of methods; the pairs with a control are a family of their own); better = the method the test favours (W+ against W−, in the metric's direction; 'tie' when W+ = W−, 'none' when one image or p = 1 gives no evidence either way), a finding only where p_holm < 0.05; effect sizes: the mean per-image difference with its 95% image-bootstrap interval and the rank-biserial correlation (W+ − W−)/(W+ + W−)",
  ],
  [
    "intervals and ranks",
    "every mean (over cells) has a 95% percentile bootstrap interval that resamples whole images with all their cells (1000 resamples, seeded); ranks (1 = most faithful by mean, the random and distance controls excluded) have a 95% bootstrap interval from re-ranking the means on resampled images; medians are over cells",
  ],
];

const HEADLINE = (fills: string[]) => [
  ...fills.flatMap((f) => [`del_norm:${f}`, `ins_norm:${f}`, `ins_minus_del_norm:${f}`]),
  ...fills.flatMap((f) => [`top10:${f}`, `toparea10:${f}`]),
  "leakage",
  "gini",
  "stab_noise",
  "stab_seed",
  "forward",
  "wall_s",
];

function meanCurve(curves: CurvePair[], which: "deletion" | "insertion"): number[] {
  const ok = curves.filter((c) => c.deletionAucNorm !== null);
  if (ok.length === 0) return [];
  const K = ok[0][which].length;
  const out = new Array<number>(K).fill(0);
  for (const c of ok) {
    const base = c.deletion[0],
      removed = c.deletion[K - 1];
    for (let k = 0; k < K; k++) out[k] += (c[which][k] - removed) / (base - removed) / ok.length;
  }
  return out;
}

export interface ReportFiles {
  files: string[];
  /** what the report could not show (e.g. a plot with no cell to draw), also in report.html */
  notes: string[];
  summary: Summary;
}

export async function writeEvaluationReport(out: string, title = "segcause faithfulness benchmark"): Promise<ReportFiles> {
  const cells = listCells(out);
  const controls = listControls(out);
  const failedCells = listFailed(out);
  const summary = summarize(cells, controls);
  const run = readJson<Record<string, unknown>>(join(out, "run.json"));
  const runs = listRuns(out);
  const files: string[] = [];
  // Atomic: evaluate processes sharing the folder each rewrite the report when they finish.
  const put = async (name: string, data: string | Buffer) => {
    await writeAtomic(join(out, name), data);
    files.push(name);
  };
  await put("cells.jsonl", cells.map((c) => JSON.stringify(c)).join("\n") + (cells.length ? "\n" : ""));
  const rows = rowsOf(cells, controls);
  const metricNames = [...new Set(rows.flatMap((r) => Object.keys(r.metrics)))].sort();
  const byKey = new Map<string, CellRecord | ControlRecord>();
  for (const c of cells) byKey.set(`${c.id.dataset}|${c.id.model}|${c.id.image}|${c.id.roi}`, c);
  for (const c of controls) byKey.set(`${c.id.dataset}|${c.id.model}|${c.id.image}|${c.id.roi}`, c);
  await put(
    "cells.csv",
    csv(
      ["dataset", "model", "image", "roi", "roi_row", "roi_col", "roi_size", "method", "base_outcome", ...metricNames],
      rows.map((r) => {
        const src = byKey.get(r.cellKey)!;
        return [
          r.dataset,
          r.model,
          r.image,
          r.roi,
          // a volume's RoI is a structure, not a square: its bounds are in cell.json
          ...("roiRect" in src ? [src.roiRect.row, src.roiRect.col, src.roiRect.height] : ["", "", ""]),
          r.method,
          (src as CellRecord).baseOutcome,
          ...metricNames.map((m) => r.metrics[m]),
        ];
      }),
    ),
  );
  await put("summary.json", JSON.stringify({ ...summary, definitions: Object.fromEntries(METRIC_DEFINITIONS), run, runs }));
  for (const [name, data] of Object.entries(statisticsCsv(summary))) await put(name, data);

  // Plots per dataset and fill.
  const fills = [...new Set(cells.flatMap((c) => Object.keys(c.fills)))] as FillName[];
  const datasets = [...new Set(rows.map((r) => r.dataset))].sort();
  const methods = summary.methods;
  const plots: { name: string; png: Buffer; caption: string }[] = [];
  const notes: string[] = [];
  // the setting as the CLI recorded it (a run through the library records none)
  const minRange = [run?.protocol, ...runs.map((r) => r.protocol)]
    .map((p) => (p as { minRange?: number } | undefined)?.minRange)
    .find((v) => v !== undefined);
  for (const ds of datasets) {
    for (const fill of fills) {
      const series: { del: Series[]; ins: Series[] } = { del: [], ins: [] };
      const boxes: { del: { label: string; colour: string; values: number[] }[]; ins: { label: string; colour: string; values: number[] }[] } = {
        del: [],
        ins: [],
      };
      for (const m of methods) {
        const curves = isControl(m)
          ? controls
              .filter((c) => c.id.dataset === ds && c.status === "ok")
              .map((c) => (m === DISTANCE ? c.distance : c.fills)?.[fill]?.curves)
              .filter((c): c is CurvePair => !!c)
          : cells
              .filter((c) => c.id.dataset === ds && c.method === m)
              .map((c) => c.fills[fill]?.curves)
              .filter((c): c is CurvePair => !!c);
        if (curves.length === 0) continue;
        const colour = colourOf(m, methods);
        const n = curves.filter((c) => c.deletionAucNorm !== null).length;
        series.del.push({ label: `${m} (n=${n})`, colour, dashed: isControl(m), bold: m === "pdcr", ys: meanCurve(curves, "deletion") });
        series.ins.push({ label: `${m} (n=${n})`, colour, dashed: isControl(m), bold: m === "pdcr", ys: meanCurve(curves, "insertion") });
        boxes.del.push({ label: m, colour, values: curves.map((c) => c.deletionAucNorm).filter((v): v is number => v !== null) });
        boxes.ins.push({ label: m, colour, values: curves.map((c) => c.insertionAucNorm).filter((v): v is number => v !== null) });
      }
      if (series.del.length === 0) continue;
      // Curves are normalised by m(X) − m(removed): with no cell above --min-range there is nothing to draw.
      if (boxes.del.every((b) => b.values.length === 0)) {
        notes.push(
          `${ds}, fill ${fill}: no curve or AUC plot, since no cell's m(X) − m(removed) reaches --min-range${minRange === undefined ? "" : ` ${minRange}`} (replacing all of D never lowers the RoI outcome that much with this fill); a lower --min-range draws them`,
        );
        continue;
      }
      const sub =
        "per cell (m(k) − m(all removed)) / (m(X) − m(all removed)); cells with a range below --min-range left out (n per method in the legend)";
      plots.push({
        name: `plots/curves-${ds}-${fill}.png`,
        png: await svgToPng(
          panelsSvg(
            `${ds}: mean deletion / insertion curves, fill = ${fill}`,
            [
              {
                title: "deletion (lower = more faithful)",
                xLabel: "fraction of D removed (most supporting first)",
                yLabel: "normalised RoI outcome",
                series: series.del,
                yRange: [-0.1, 1.1],
              },
              {
                title: "insertion (higher = more faithful)",
                xLabel: "fraction of D restored (most supporting first)",
                yLabel: "normalised RoI outcome",
                series: series.ins,
                yRange: [-0.1, 1.1],
              },
            ],
            sub,
          ),
        ),
        caption: `${ds}, fill ${fill}: mean normalised deletion and insertion curves per method (the random and distance controls dashed).`,
      });
      plots.push({
        name: `plots/auc-${ds}-${fill}.png`,
        png: await svgToPng(
          boxPanelsSvg(
            `${ds}: normalised AUC per cell, fill = ${fill}`,
            [
              { title: "deletion AUC (lower = more faithful)", yLabel: "del_norm", groups: boxes.del },
              { title: "insertion AUC (higher = more faithful)", yLabel: "ins_norm", groups: boxes.ins },
            ],
            "box = quartiles, bar = median, whiskers = 1.5 IQR, dots = cells",
          ),
        ),
        caption: `${ds}, fill ${fill}: normalised deletion and insertion AUC of every cell.`,
      });
    }
  }
  // Top-k effects per dataset: mean outcome change vs k, one panel per fill.
  for (const ds of datasets) {
    const dsCells = cells.filter((c) => c.id.dataset === ds);
    const ks = [...new Set(dsCells.flatMap((c) => Object.values(c.fills).flatMap((f) => f!.topk.map((t) => t.k))))].sort((a, b) => a - b);
    if (ks.length === 0) continue;
    const panels = fills.map((fill) => ({
      title: `fill = ${fill}`,
      xLabel: "k (% of the positive attribution mass)",
      yLabel: "mean change of the RoI outcome (× 100)",
      xRange: [0, Math.max(...ks) * 100] as [number, number],
      series: methods
        .filter((m) => !isControl(m))
        .map((m) => {
          const mine = dsCells.filter((c) => c.method === m && c.fills[fill]);
          return {
            label: m,
            colour: colourOf(m, methods),
            bold: m === "pdcr",
            xs: ks.map((k) => k * 100),
            ys: ks.map((k) => mine.reduce((s, c) => s + (c.fills[fill]!.topk.find((t) => t.k === k)?.effect ?? NaN), 0) / mine.length),
          };
        })
        .filter((s) => s.ys.some(Number.isFinite)),
    }));
    const all = panels.flatMap((p) => p.series.flatMap((s) => s.ys)).filter(Number.isFinite);
    const yRange: [number, number] = [Math.min(0, ...all), Math.max(0, ...all) || 1];
    plots.push({
      name: `plots/topk-${ds}.png`,
      png: await svgToPng(
        panelsSvg(
          `${ds}: effect of replacing the top-k% of the attribution mass`,
          panels.map((p) => ({ ...p, yRange })),
          "more negative = removing what the method calls supportive hurts the RoI more (more faithful)",
        ),
      ),
      caption: `${ds}: mean change of the RoI outcome (Dice points) when the top-k% of each method's positive attribution mass is replaced, per fill.`,
    });
  }
  // Area-matched top-k per dataset, the controls dashed: the same area for every order.
  for (const ds of datasets) {
    const dsCells = cells.filter((c) => c.id.dataset === ds);
    const dsControls = controls.filter((c) => c.id.dataset === ds && c.status === "ok");
    const topAreaOf = (m: string, fill: FillName) =>
      m === RANDOM
        ? dsControls.map((c) => c.fills?.[fill]?.topArea)
        : m === DISTANCE
          ? dsControls.map((c) => c.distance?.[fill]?.topArea)
          : dsCells.filter((c) => c.method === m).map((c) => c.fills[fill]?.topArea);
    const ks = [...new Set(dsCells.flatMap((c) => Object.values(c.fills).flatMap((f) => (f!.topArea ?? []).map((t) => t.k))))].sort((a, b) => a - b);
    if (ks.length === 0) continue;
    const panels = fills.map((fill) => ({
      title: `fill = ${fill}`,
      xLabel: "k (% of the explained domain's area)",
      yLabel: "mean change of the RoI outcome",
      xRange: [0, Math.max(...ks) * 100] as [number, number],
      series: methods
        .map((m) => {
          const sets = topAreaOf(m, fill).filter((t): t is NonNullable<typeof t> => !!t);
          return {
            label: m,
            colour: colourOf(m, methods),
            dashed: isControl(m),
            bold: m === "pdcr",
            xs: ks.map((k) => k * 100),
            ys: ks.map((k) => sets.reduce((s, t) => s + (t.find((x) => x.k === k)?.effect ?? NaN), 0) / sets.length),
          };
        })
        .filter((x) => x.ys.some(Number.isFinite)),
    }));
    const all = panels.flatMap((p) => p.series.flatMap((x) => x.ys)).filter(Number.isFinite);
    const yRange: [number, number] = [Math.min(0, ...all), Math.max(0, ...all) || 1];
    plots.push({
      name: `plots/toparea-${ds}.png`,
      png: await svgToPng(
        panelsSvg(
          `${ds}: area-matched top-k`,
          panels.map((p) => ({ ...p, yRange })),
          "more negative = more faithful; dashed = the random and distance controls",
        ),
      ),
      caption: `${ds}: mean change of the RoI outcome when the first k% of the explained domain's area in each method's unit order is replaced (area-matched top-k), per fill; the controls dashed.`,
    });
  }
  for (const p of plots) await put(p.name, p.png);

  // HTML.
  const parts: string[] = [];
  parts.push(
    `<p>${summary.cells} finished cells (model × image × RoI × method), ${summary.controls} random controls, ${summary.skippedRois} skipped RoIs, ${failedCells.length} cells a method refused. Methods: ${methods.map(esc).join(", ")}. A partial run shows what exists; rerun the command to finish it.</p>`,
  );
  if (failedCells.length)
    parts.push(
      `<h2>Cells a method refused</h2>` +
        table(
          ["dataset", "model", "image", "RoI", "method", "reason"],
          failedCells.map((f) => [esc(f.id.dataset), esc(f.id.model), esc(f.id.image), esc(f.id.roi), esc(f.method), esc(f.reason)]),
        ),
    );
  if (run) {
    // Folders written before runs/ existed have only run.json (its settings are the latest command's).
    const groups = settingsGroups(
      runs.length
        ? runs
        : [
            {
              format: "segcause.evalrun/1",
              command: "",
              protocol: (run.protocol ?? {}) as Record<string, unknown>,
              methods: (run.methods ?? []) as RunRecord["methods"],
            },
          ],
    );
    const commands = [...new Set([...(Array.isArray(run.commands) ? (run.commands as string[]) : []), ...runs.map((r) => r.command)])];
    parts.push(`<h2>Run</h2><p>Commands that wrote into this folder:</p><pre>${commands.map(esc).join("\n")}</pre>`);
    groups.forEach((g, i) => {
      const which =
        groups.length > 1 ? ` (settings ${i + 1} of ${groups.length}, used by ${g.commands.length} command${g.commands.length > 1 ? "s" : ""})` : "";
      // settings recorded before --rank-units existed: the pixel protocol
      const protocol = "rankUnits" in g.protocol ? g.protocol : { ...g.protocol, rankUnits: "pixel (recorded before --rank-units existed)" };
      parts.push(
        `<p>Protocol${which}:</p><pre class="small">${esc(
          Object.entries(protocol)
            .map(([k, v]) => `${k}: ${JSON.stringify(v)}`)
            .join("\n"),
        )}</pre><p>Methods and the options given (the rest at their defaults; every resolved option is in cells.jsonl):</p><pre class="small">${esc(g.methods.map((m) => `${m.name} ${JSON.stringify(m.options)}`).join("\n"))}</pre>`,
      );
    });
  }
  const head = HEADLINE(fills).filter((m) => metricNames.includes(m));
  for (const scope of ["dataset", "model"] as const) {
    parts.push(`<h2>Mean ± sd per ${scope === "dataset" ? "dataset" : "model"} and method</h2>`);
    const groups = [...new Set(summary.stats.filter((s) => s.scope === scope).map((s) => `${s.dataset}|${s.model}`))];
    for (const g of groups) {
      const [ds, model] = g.split("|");
      const st = summary.stats.filter((s) => s.scope === scope && s.dataset === ds && s.model === model);
      const tableRows = methods
        .filter((m) => st.some((s) => s.method === m))
        .map((m) => [
          esc(m),
          ...head.map((metric) => {
            const s = st.find((x) => x.method === m && x.metric === metric);
            return s ? `${fmt(s.mean)} ± ${fmt(s.sd)} <span class="small">(${s.n})</span>` : "–";
          }),
        ]);
      parts.push(
        `<h3>${esc(ds)}${model !== "*" ? ` · ${esc(model)}` : ""}</h3>` +
          table(["method", ...head.map((h) => `${h} ${direction(h) === "lower" ? "↓" : direction(h) === "higher" ? "↑" : ""}`)], tableRows, {
            numeric: true,
          }),
      );
    }
  }
  parts.push(`<h2>Most faithful method by mean (controls excluded)</h2>`);
  const winRows: (string | number)[][] = [];
  for (const f of fills) {
    for (const metric of FAITHFULNESS(f)) {
      for (const w of winners(summary, metric).filter((x) => x.model !== "*" || x.dataset !== "*")) {
        winRows.push([esc(w.dataset), esc(w.model), esc(metric), esc(w.best), w.ranking.map((r) => `${esc(r.method)} ${fmt(r.mean)}`).join(" · ")]);
      }
    }
  }
  parts.push(table(["dataset", "model", "metric", "best", "ranking (mean)"], winRows));
  parts.push(`<h2>Paired Wilcoxon tests over images (per dataset; all scopes in pairs.csv)</h2>`);
  const pairRows = summary.pairs
    .filter((p) => p.scope === "dataset" && /^(del_norm|ins_norm|ins_minus_del_norm|top10|toparea10):/.test(p.metric))
    .map((p) => [
      esc(p.dataset),
      esc(p.metric),
      esc(p.a),
      esc(p.b),
      p.n,
      `${fmt(p.meanDiff)} [${fmt(p.ciLow)}, ${fmt(p.ciHigh)}]`,
      p.rankBiserial ?? NaN,
      p.p,
      p.pHolm ?? NaN,
      esc(holmSignificant(p) ? p.better : "–"),
    ]);
  parts.push(
    table(["dataset", "metric", "a", "b", "images", "mean(a−b) [95% CI]", "rank-biserial", "p", "p (Holm)", "better (Holm p < 0.05)"], pairRows),
  );
  parts.push(`<h2>Plots</h2>`);
  for (const n of notes) parts.push(`<p class="small">note: ${esc(n)}</p>`);
  for (const p of plots) parts.push(`<figure>${pngImg(p.png, p.caption)}<figcaption class="small">${esc(p.caption)}</figcaption></figure>`);
  parts.push(
    `<h2>Definitions</h2>` +
      table(
        ["metric", "definition"],
        METRIC_DEFINITIONS.map(([k, v]) => [esc(k), esc(v)]),
      ),
  );
  await put("report.html", page(title, parts.join("\n")));
  await put(
    "report.md",
    markdownSummary(summary, fills) +
      (failedCells.length
        ? `\n#### Cells a method refused\n\n${failedCells.map((f) => `- ${f.id.dataset} ${f.id.model} ${f.id.image} ${f.id.roi} ${f.method}: ${f.reason}`).join("\n")}\n`
        : ""),
  );
  return { files, summary, notes };
}

/** Commands grouped by identical protocol and method options (in first-seen order). */
function settingsGroups(runs: readonly RunRecord[]): { protocol: Record<string, unknown>; methods: RunRecord["methods"]; commands: string[] }[] {
  const groups = new Map<string, { protocol: Record<string, unknown>; methods: RunRecord["methods"]; commands: string[] }>();
  for (const r of runs) {
    const key = JSON.stringify([r.protocol, r.methods]);
    getOrInsert(groups, key, () => ({ protocol: r.protocol, methods: r.methods, commands: [] as string[] })).commands.push(r.command);
  }
  return [...groups.values()];
}
