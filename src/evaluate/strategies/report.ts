/**
 * `segcause strategies`: computes the strategy statistics of every map found (maps.ts) and writes
 * per-map and per-model tables (JSON/CSV), paired model comparisons (pairs.ts), distribution plots,
 * a gallery of example maps per model and a self-contained HTML report.
 */
import { mkdir } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { encodePng } from "../../data/image.js";
import { fail } from "../../errors.js";
import { svgToPng } from "../../report/charts.js";
import { heatRgb } from "../../report/colormap.js";
import { Region } from "../../target/roi.js";
import { writeFileAtomic } from "../../util/atomic.js";
import { esc } from "../../util/xml.js";
import { runtimeVersions } from "../../version.js";
import { csv, fmt, page, pngImg, table } from "../html.js";
import { meanSd } from "../map-metrics.js";
import { boxPanelsSvg, colourOf, stackedBarsSvg } from "../plots.js";
import { findMaps, loadMap, type MapResult } from "./maps.js";
import { modelPairs, modelPairsCsv } from "./pairs.js";
import { checkStrategySettings, STRATEGY_CLASSES, STRATEGY_DEFAULTS, type StrategySettings, strategyStats } from "./stats.js";

const CLASS_COLOURS: Record<string, string> = { local: "#d62728", sequential: "#2ca02c", global: "#1f77b4", null: "#aaaaaa" };
const STAT_KEYS = ["localShare", "spread", "entropy", "chainExtent", "chainBlocks", "chainWidth", "chainMass", "significantShare"] as const;

export interface StrategyReport {
  results: MapResult[];
  files: string[];
  /** maps reached twice (overlapping folders, copies of a cell), counted once */
  duplicates: string[];
}

export async function writeStrategyReport(
  dirs: readonly string[],
  out: string,
  opts: { methods?: string[]; settings?: Partial<StrategySettings>; gallery?: number; beforeWrite?: () => void } = {},
): Promise<StrategyReport> {
  const settings = { ...STRATEGY_DEFAULTS, ...opts.settings };
  checkStrategySettings(settings);
  if (opts.gallery !== undefined && !(Number.isInteger(opts.gallery) && opts.gallery >= 0))
    fail(`--gallery must be an integer >= 0, got ${opts.gallery}`, "use --gallery 6");
  const unreadable: string[] = [];
  const duplicates: string[] = [];
  let entries = findMaps(dirs, unreadable, duplicates);
  const present = [...new Set(entries.map((e) => e.method))].sort();
  if (opts.methods) entries = entries.filter((e) => opts.methods!.includes(e.method));
  if (entries.length === 0) {
    const why = unreadable.length
      ? `; ${unreadable.length} map.npy had an unreadable record beside it (${unreadable[0]}${unreadable.length > 1 ? ", ..." : ""})`
      : "";
    if (opts.methods && present.length > 0)
      fail(`no maps of method ${opts.methods.join(",")} in ${dirs.join(", ")}${why}`, `the folders hold maps of: ${present.join(", ")}`);
    fail(`no attribution maps found in ${dirs.join(", ")}${why}`, "pass folders written by `segcause evaluate` (cells/) or `segcause explain`");
  }
  // Without --block, a map is read on its own block grid, and a pixel map on that of its model's
  // block maps (PdCR's, else any), so that "r blocks" means the same for every map of a model.
  const modelBlock = new Map<string, number>();
  for (const e of [...entries].sort((a, b) => Number(b.method === "pdcr") - Number(a.method === "pdcr"))) {
    const k = `${e.dataset}|${e.model}`;
    if (e.block && !modelBlock.has(k)) modelBlock.set(k, e.block);
  }
  const results: MapResult[] = [];
  const maps = new Map<string, Float32Array>();
  for (const e of entries) {
    const { map, height, width, sha256: mapSha256 } = loadMap(e);
    const block = opts.settings?.block ?? e.block ?? modelBlock.get(`${e.dataset}|${e.model}`) ?? STRATEGY_DEFAULTS.block;
    if (block > Math.min(height, width))
      fail(
        `--block ${block} is larger than the ${height}x${width} map ${e.path}`,
        `use a block size of at most ${Math.min(height, width)} px (default: each map's own)`,
      );
    const tau = opts.settings?.tau ?? e.tau;
    const stats = strategyStats(map, height, width, e.roiRect, { ...settings, block, tau });
    // the tau and block the statistics used (--tau / --block override the map's own)
    results.push({ ...e, height, width, tau, block, stats, mapSha256 });
    maps.set(e.path, map);
  }
  const files: string[] = [];
  const put = async (name: string, data: string | Buffer) => {
    if (files.length === 0) opts.beforeWrite?.(); // every map is read and checked: the folder becomes the report's
    await mkdir(dirname(join(out, name)), { recursive: true });
    await writeFileAtomic(join(out, name), data); // replaces a planted link instead of writing through it
    files.push(name);
  };
  const statCols = [
    "cls",
    "localShare",
    "spread",
    "entropy",
    "chainBlocks",
    "chainExtent",
    "chainWidth",
    "chainMass",
    "chainGridShare",
    "significantBlocks",
    "significantShare",
    "totalMass",
    "blocks",
  ] as const;
  await put(
    "maps.csv",
    csv(
      ["dataset", "model", "image", "roi", "method", "block", ...statCols, "path"],
      results.map((r) => [r.dataset, r.model, r.image, r.roi, r.method, r.block, ...statCols.map((k) => r.stats[k] as number | string), r.path]),
    ),
  );

  // Per (dataset, model, method): class counts and mean ± sd.
  const groups = [
    ...new Map(results.map((r) => [`${r.dataset}|${r.model}|${r.method}`, { dataset: r.dataset, model: r.model, method: r.method }])).values(),
  ].sort((a, b) => `${a.method}|${a.dataset}|${a.model}`.localeCompare(`${b.method}|${b.dataset}|${b.model}`));
  // one row per (dataset, model, method), then per (dataset, method) over its models (model "*")
  const datasetGroups = [
    ...new Map(results.map((r) => [`${r.dataset}|${r.method}`, { dataset: r.dataset, model: "*", method: r.method }])).values(),
  ].sort((a, b) => `${a.method}|${a.dataset}`.localeCompare(`${b.method}|${b.dataset}`));
  const perGroup = [...groups, ...datasetGroups].map((g) => {
    const rs = results.filter((r) => r.dataset === g.dataset && (g.model === "*" || r.model === g.model) && r.method === g.method);
    const counts = Object.fromEntries(STRATEGY_CLASSES.map((c) => [c, rs.filter((r) => r.stats.cls === c).length]));
    const stats = Object.fromEntries(STAT_KEYS.map((k) => [k, meanSd(rs.map((r) => r.stats[k]))]));
    return { ...g, maps: rs.length, counts, stats };
  });
  const perModel = perGroup.filter((g) => g.model !== "*");
  const perDataset = perGroup.filter((g) => g.model === "*");
  const pairs = modelPairs(results);
  const provenance = {
    versions: runtimeVersions(),
    createdAt: new Date().toISOString(),
    inputs: dirs.map((d) => resolve(d)),
    methods: opts.methods ?? null,
  };
  // Without --tau, settings.tau (the default, 0) was not what any map used: null, and maps[].tau says.
  const recorded = {
    ...settings,
    tau: opts.settings?.tau ?? null,
    tauFrom: opts.settings?.tau === undefined ? "each map's own (maps[].tau)" : "--tau, for every map",
    block: opts.settings?.block ?? null,
    blockFrom:
      opts.settings?.block === undefined
        ? `each map's own block size, else that of its model's block maps, else ${STRATEGY_DEFAULTS.block} px (maps[].block)`
        : "--block, for every map",
  };
  await put(
    "strategies.json",
    JSON.stringify(
      {
        format: "segcause.strategies/1",
        provenance,
        settings: recorded,
        definitions: DEFINITIONS,
        perModel,
        perDataset,
        pairs,
        maps: results.map(({ path, ...r }) => ({ ...r, path })),
      },
      null,
      1,
    ),
  );
  await put(
    "models.csv",
    csv(
      ["dataset", "model", "method", "maps", ...STRATEGY_CLASSES, ...STAT_KEYS.flatMap((k) => [`${k}_mean`, `${k}_sd`])],
      perGroup.map((g) => [
        g.dataset,
        g.model,
        g.method,
        g.maps,
        ...STRATEGY_CLASSES.map((c) => g.counts[c]),
        ...STAT_KEYS.flatMap((k) => [g.stats[k].mean, g.stats[k].sd]),
      ]),
    ),
  );
  await put("model-pairs.csv", modelPairsCsv(pairs));

  // Plots per method: class shares per model, stat distributions per model, gallery.
  const plots: { name: string; png: Buffer; caption: string }[] = [];
  const methods = [...new Set(results.map((r) => r.method))].sort();
  for (const method of methods) {
    const gs = perModel.filter((g) => g.method === method);
    const label = (g: { dataset: string; model: string }) => `${g.model} (${g.dataset})`;
    plots.push({
      name: `plots/classes-${method}.png`,
      png: await svgToPng(
        stackedBarsSvg(
          `${method}: strategy of each map, per model`,
          gs.map((g) => ({ label: label(g), parts: STRATEGY_CLASSES.map((c) => ({ name: c, value: g.counts[c], colour: CLASS_COLOURS[c] })) })),
        ),
      ),
      caption: `${method}: number of maps classified local / sequential / global / null per model.`,
    });
    const modelsHere = gs.map(label);
    const panel = (k: (typeof STAT_KEYS)[number], title: string) => ({
      title,
      yLabel: k,
      groups: gs.map((g, i) => ({
        label: g.model,
        colour: colourOf(modelsHere[i], modelsHere),
        values: results.filter((r) => r.method === method && r.model === g.model && r.dataset === g.dataset).map((r) => r.stats[k]),
      })),
    });
    plots.push({
      name: `plots/stats-${method}.png`,
      png: await svgToPng(
        boxPanelsSvg(
          `${method}: strategy statistics per model`,
          [
            panel("localShare", `mass within ${settings.radius} blocks`),
            panel("spread", "spread (normalised distance)"),
            panel("entropy", "normalised entropy"),
            panel("chainExtent", "RoI chain extent (blocks)"),
          ],
          "box = quartiles, bar = median, whiskers = 1.5 IQR, dots = maps",
        ),
      ),
      caption: `${method}: distributions of the strategy statistics per model (one dot per map).`,
    });
    const n = opts.gallery ?? 6;
    const tile = 150;
    const rowsG = gs.map((g) => results.filter((r) => r.method === method && r.model === g.model && r.dataset === g.dataset).slice(0, n));
    const W = Math.max(780, 200 + Math.max(1, ...rowsG.map((r) => r.length)) * (tile + 10)),
      H = 50 + rowsG.length * (tile + 40);
    const parts = [
      `<rect width="${W}" height="${H}" fill="white"/>`,
      `<text x="10" y="26" font-family="DejaVu Sans, sans-serif" font-size="16" font-weight="bold">${esc(method)}: example maps per model (red = supports the RoI, blue = hurts, RoI green)</text>`,
    ];
    for (let i = 0; i < rowsG.length; i++) {
      const y = 50 + i * (tile + 40);
      parts.push(
        `<text x="10" y="${y + tile / 2}" font-family="DejaVu Sans, sans-serif" font-size="13">${esc(gs[i].model)}</text>`,
        `<text x="10" y="${y + tile / 2 + 16}" font-family="DejaVu Sans, sans-serif" font-size="11" fill="#555">${esc(gs[i].dataset)}</text>`,
      );
      for (let j = 0; j < rowsG[i].length; j++) {
        const r = rowsG[i][j];
        const m = maps.get(r.path)!;
        // signed maps as stored; unsigned maps (importance >= 0) drawn as support, like `segcause explain`
        const unsigned = r.signed === undefined ? !m.some((v) => v < 0) : !r.signed;
        const signed = unsigned ? m.map((v) => -v) : m;
        const png = await encodePng({
          width: r.width,
          height: r.height,
          channels: 3,
          data: heatRgb(signed, r.height, r.width, Region.rect(r.roiRect, r.height, r.width)),
        });
        const x = 200 + j * (tile + 10);
        parts.push(`<image x="${x}" y="${y}" width="${tile}" height="${tile}" href="data:image/png;base64,${png.toString("base64")}"/>`);
        parts.push(
          `<text x="${x}" y="${y + tile + 14}" font-family="DejaVu Sans, sans-serif" font-size="10">${esc(r.image)} · ${esc(r.stats.cls)}</text>`,
        );
        parts.push(
          `<text x="${x}" y="${y + tile + 27}" font-family="DejaVu Sans, sans-serif" font-size="10" fill="#555">local ${fmt(r.stats.localShare, 3)} · chain ${r.stats.chainExtent}</text>`,
        );
      }
    }
    plots.push({
      name: `plots/gallery-${method}.png`,
      png: await svgToPng(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}">${parts.join("")}</svg>`),
      caption: `${method}: the first ${n} maps of each model (sorted by image and RoI), with their class.`,
    });
  }
  for (const p of plots) await put(p.name, p.png);

  const body: string[] = [];
  const grids = [...new Set(results.map((r) => r.block))].sort((a, b) => a - b);
  body.push(
    `<p>${results.length} maps from ${esc(dirs.join(", "))}; block grid ${opts.settings?.block !== undefined ? `${opts.settings.block}×${opts.settings.block} px` : `each map's own block size (${grids.map((g) => `${g} px`).join(", ")}; pixel maps take their model's)`}, local radius ${settings.radius} blocks.</p>`,
  );
  body.push(
    `<h2>Per model (and per dataset: model *)</h2>` +
      table(
        ["method", "dataset", "model", "maps", ...STRATEGY_CLASSES, ...STAT_KEYS.map(String)],
        perGroup.map((g) => [
          esc(g.method),
          esc(g.dataset),
          esc(g.model),
          g.maps,
          ...STRATEGY_CLASSES.map((c) => g.counts[c]),
          ...STAT_KEYS.map((k) => `${fmt(g.stats[k].mean)} ± ${fmt(g.stats[k].sd)}`),
        ]),
        { numeric: true },
      ),
  );
  if (pairs.length)
    body.push(
      `<h2>Paired model comparisons (same image and RoI; Wilcoxon signed-rank)</h2>` +
        table(
          ["dataset", "method", "statistic", "a", "b", "n", "mean(a−b)", "p", "p (Holm)", "test"],
          pairs.map((p) => [esc(p.dataset), esc(p.method), p.stat, esc(p.a), esc(p.b), p.n, p.meanDiff, p.p, p.pHolm, p.test]),
        ),
    );
  body.push(`<h2>Plots</h2>`);
  for (const p of plots) body.push(`<figure>${pngImg(p.png, p.caption)}<figcaption class="small">${esc(p.caption)}</figcaption></figure>`);
  body.push(
    `<h2>Definitions</h2>` +
      table(
        ["term", "definition"],
        DEFINITIONS.map(([k, v]) => [esc(k), esc(v)]),
      ),
  );
  body.push(
    `<h2>Maps</h2>` +
      table(
        [
          "dataset",
          "model",
          "image",
          "RoI",
          "method",
          "class",
          "local",
          "spread",
          "entropy",
          "chain blocks",
          "chain extent",
          "chain width",
          "chain mass",
        ],
        results.map((r) => [
          esc(r.dataset),
          esc(r.model),
          esc(r.image),
          esc(r.roi),
          esc(r.method),
          r.stats.cls,
          r.stats.localShare,
          r.stats.spread,
          r.stats.entropy,
          r.stats.chainBlocks,
          r.stats.chainExtent,
          r.stats.chainWidth,
          r.stats.chainMass,
        ]),
      ),
  );
  await put("report.html", page("segcause perceptual strategies", body.join("\n")));
  return { results, files, duplicates };
}

export const DEFINITIONS: [string, string][] = [
  [
    "grid",
    "blocks of 8×8 px (--block) over the model input; blocks overlapping the RoI are left out; block value = mean of the map over the block (a PdCR map: the block's ATE); weight a = |value|",
  ],
  ["distance d", "Chebyshev distance in blocks from the block to the RoI's blocks (1 = adjacent)"],
  ["localShare", "Σ a over blocks with d ≤ r (r = 4 blocks, --radius) / Σ a"],
  ["spread", "mean distance of the |ATE| mass from the RoI, Σ a·d / Σ a, divided by the largest d in the image (0..1)"],
  ["entropy", "−Σ q log q / log(#blocks), q = a / Σ a: 0 = one block, 1 = uniform"],
  ["significant", "a ≥ max(τ, 0.05·max a); τ = the map's own τ (PdCR: 0.02 Dice points), 0 for methods without one"],
  [
    "chain",
    "union of the 8-connected components of significant blocks that touch the RoI (contain a block with d = 1): chainBlocks (size), chainExtent (max d, blocks), chainWidth (chainBlocks / chainExtent: ≈ 1 for a line, large for a blob), chainMass (share of Σ a), chainGridShare (share of the grid)",
  ],
  ["local", "localShare ≥ 0.7"],
  [
    "sequential",
    "not local, chainExtent ≥ 2r (8 blocks), chainMass ≥ 0.5, chainGridShare ≤ 0.25 and chainWidth ≤ 6 blocks: a thin structure of significant blocks leading away from the RoI",
  ],
  ["global", "neither: the mass is spread over the image, not along one chain from the RoI"],
  ["null", "the map is zero everywhere outside the RoI"],
];
