/**
 * `segcause strategies`: finds attribution maps in evaluate outputs (cells/.../map.npy + cell.json)
 * or explain outputs (map.npy + manifest.json), computes the strategy statistics of each map and
 * writes per-map and per-model tables (JSON/CSV), paired model comparisons, distribution plots, a
 * gallery of example maps per model and a self-contained HTML report.
 */
import { existsSync, readdirSync, readFileSync, realpathSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { fail } from "../errors.js";
import { encodePng } from "../data/image.js";
import { svgToPng } from "../report/charts.js";
import { heatRgb } from "../report/colormap.js";
import { Region, type RoiRect } from "../target/roi.js";
import { decodeNpy } from "../util/npy.js";
import { sha256 } from "../util/hash.js";
import { runtimeVersions } from "../version.js";
import { csv, fmt, page, pngImg, table } from "./html.js";
import { meanSd } from "./map-metrics.js";
import { boxPanelsSvg, colourOf, stackedBarsSvg } from "./plots.js";
import { esc } from "../util/xml.js";
import { writeFileAtomic } from "../util/atomic.js";
import type { CellRecord } from "./store.js";
import { checkStrategySettings, STRATEGY_CLASSES, STRATEGY_DEFAULTS, strategyStats, type StrategySettings, type StrategyStats } from "./strategies.js";
import { holm } from "./inference.js";
import { wilcoxon } from "./wilcoxon.js";

export interface MapEntry {
  dataset: string;
  model: string;
  image: string;
  roi: string;
  method: string;
  roiRect: RoiRect;
  height: number;
  width: number;
  tau: number;
  /** signed map (negative = support) or unsigned importance; unknown for explain outputs */
  signed?: boolean;
  /** the map's own block size in px (block methods), when its record gives one */
  block?: number;
  path: string;
  /** where the map came from, as its own record says: enough to find or recompute it */
  source: { modelSha256?: string; seed?: number; cellKey?: string };
}

export interface MapResult extends MapEntry {
  /** the block grid the statistics used (px) */
  block: number;
  stats: StrategyStats;
  /** of the map.npy read: ties every statistic to the exact map */
  mapSha256: string;
}

function readJsonFile(path: string): any {
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch {
    return undefined;
  }
}

/** Every map under the given folders (evaluate cells or explain outputs), in a stable order. */
export function findMaps(dirs: readonly string[], unreadable: string[] = [], duplicates: string[] = []): MapEntry[] {
  const out: MapEntry[] = [];
  const visit = (dir: string) => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    const names = new Set(entries.map((e) => e.name));
    if (names.has("map.npy")) {
      const npy = join(dir, "map.npy");
      if (names.has("cell.json")) {
        const c = readJsonFile(join(dir, "cell.json")) as CellRecord | undefined;
        if (c?.format !== "segcause.evalcell/1") unreadable.push(join(dir, "cell.json"));
        else {
          const meta = readJsonFile(join(dir, "attribution.json"));
          const source = { modelSha256: meta?.provenance?.model?.sha256, seed: c.seed, cellKey: c.key };
          const block = Number(c.options.block) || undefined;
          out.push({ dataset: c.id.dataset, model: c.id.model, image: c.id.image, roi: c.id.roi, method: c.method, roiRect: c.roiRect, height: meta?.height ?? 0, width: meta?.width ?? 0, tau: Number(c.options.tau ?? 0) || 0, signed: c.signed, block, path: npy, source });
        }
      } else if (names.has("manifest.json")) {
        const m = readJsonFile(join(dir, "manifest.json"));
        if (m?.format !== "segcause.attribution/1") unreadable.push(join(dir, "manifest.json"));
        else {
          const prov = m.provenance ?? {};
          const imagePath: string = prov.case?.imagePath ?? "";
          const ds = /\/([^/]+)\/images\/[^/]+$/.exec(imagePath)?.[1] ?? "-";
          const roi: RoiRect = prov.target?.roi;
          out.push({
            dataset: ds, model: basename(String(prov.model?.path ?? "model")).replace(/\.onnx$/i, ""), image: String(prov.case?.id ?? basename(dir)),
            roi: roi ? `${roi.row},${roi.col},${roi.height}x${roi.width}` : "-", method: String(m.method), roiRect: roi, height: 0, width: 0, tau: Number(prov.settings?.tau ?? 0) || 0, block: Number(prov.settings?.blockSize) || undefined, path: npy,
            source: { modelSha256: prov.model?.sha256, seed: prov.seed },
          });
        }
      }
    }
    for (const e of entries) if (e.isDirectory() && !e.name.startsWith(".")) visit(join(dir, e.name));
  };
  for (const d of dirs) {
    if (!existsSync(d)) fail(`${d} does not exist`, "pass folders written by `segcause evaluate` or `segcause explain`");
    visit(d);
  }
  return distinctMaps(out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)), duplicates);
}

/**
 * One entry per map: the same file reached twice (overlapping or repeated folders, links) or a copy
 * of the same cell is kept once (listed in `duplicates`), since each map must count once in the
 * statistics; two different maps for one (dataset, model, image, RoI, method) are refused.
 */
function distinctMaps(entries: MapEntry[], duplicates: string[]): MapEntry[] {
  const byIdentity = new Map<string, MapEntry>();
  const seenFiles = new Set<string>();
  const out: MapEntry[] = [];
  for (const e of entries) {
    const real = realpathSync(e.path);
    if (seenFiles.has(real)) {
      duplicates.push(e.path);
      continue;
    }
    seenFiles.add(real);
    const id = `${e.dataset}|${e.model}|${e.image}|${e.roi}|${e.method}`;
    const first = byIdentity.get(id);
    if (first) {
      const same = first.source.cellKey !== undefined ? first.source.cellKey === e.source.cellKey : readFileSync(first.path).equals(readFileSync(e.path));
      if (same) {
        duplicates.push(e.path);
        continue;
      }
      const otherModel = first.source.modelSha256 && e.source.modelSha256 && first.source.modelSha256 !== e.source.modelSha256;
      fail(
        `two different ${e.method} maps for model ${e.model}, image ${e.image}, RoI ${e.roi}: ${first.path} and ${e.path}`,
        otherModel
          ? `they come from two different models named '${e.model}' (their hashes differ), whose statistics would be pooled: give the models distinct file names`
          : "statistics are per (model, image, RoI): pass the folders of one protocol (or seed, or class) at a time",
      );
    }
    byIdentity.set(id, e);
    out.push(e);
  }
  return out;
}

export function loadMap(e: MapEntry): { map: Float32Array; height: number; width: number; sha256: string } {
  let npy: { data: Float32Array; shape: number[] };
  let bytes: Buffer;
  try {
    bytes = readFileSync(e.path);
    npy = decodeNpy(bytes);
  } catch (err) {
    fail(`${e.path} is not a readable attribution map (${(err as Error).message})`, "rerun the `segcause explain` or `segcause evaluate` that wrote it, or remove its folder");
  }
  const { data, shape } = npy;
  const redo = "rerun the `segcause explain` or `segcause evaluate` that wrote it, or remove its folder";
  if (shape.length !== 2) fail(`${e.path} is not a 2-D attribution map (shape [${shape.join(", ")}])`, "pass folders written by `segcause evaluate` or `segcause explain`");
  if (shape[0] * shape[1] !== data.length) fail(`${e.path} is damaged: ${data.length} values for its shape [${shape.join(", ")}]`, redo);
  if (e.height && e.width && (shape[0] !== e.height || shape[1] !== e.width)) fail(`${e.path} is ${shape[0]}x${shape[1]} but its cell records a ${e.height}x${e.width} map`, redo);
  const bad = data.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) fail(`${e.path} holds a non-finite value (${data[bad]}) at row ${Math.floor(bad / shape[1])}, col ${bad % shape[1]}`, redo);
  return { map: data, height: shape[0], width: shape[1], sha256: sha256(bytes) };
}

const CLASS_COLOURS: Record<string, string> = { local: "#d62728", sequential: "#2ca02c", global: "#1f77b4", null: "#aaaaaa" };
const STAT_KEYS = ["localShare", "spread", "entropy", "chainExtent", "chainBlocks", "chainWidth", "chainMass", "significantShare"] as const;

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
            pairs.push({ dataset: ds, method, stat, a: models[i], b: models[j], n: d.length, meanDiff: d.reduce((s, v) => s + v, 0) / d.length, p: w.p, pHolm: Number.NaN, test: w.method });
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
  return csv(["dataset", "method", "stat", "a", "b", "n", "mean_diff_a_minus_b", "p", "p_holm", "test"], pairs.map((p) => [p.dataset, p.method, p.stat, p.a, p.b, p.n, p.meanDiff, p.p, p.pHolm, p.test]));
}

export interface StrategyReport {
  results: MapResult[];
  files: string[];
  /** maps reached twice (overlapping folders, copies of a cell), counted once */
  duplicates: string[];
}

export async function writeStrategyReport(dirs: readonly string[], out: string, opts: { methods?: string[]; settings?: Partial<StrategySettings>; gallery?: number; beforeWrite?: () => void } = {}): Promise<StrategyReport> {
  const settings = { ...STRATEGY_DEFAULTS, ...opts.settings };
  checkStrategySettings(settings);
  if (opts.gallery !== undefined && !(Number.isInteger(opts.gallery) && opts.gallery >= 0)) fail(`--gallery must be an integer >= 0, got ${opts.gallery}`, "use --gallery 6");
  const unreadable: string[] = [];
  const duplicates: string[] = [];
  let entries = findMaps(dirs, unreadable, duplicates);
  const present = [...new Set(entries.map((e) => e.method))].sort();
  if (opts.methods) entries = entries.filter((e) => opts.methods!.includes(e.method));
  if (entries.length === 0) {
    const why = unreadable.length ? `; ${unreadable.length} map.npy had an unreadable record beside it (${unreadable[0]}${unreadable.length > 1 ? ", ..." : ""})` : "";
    if (opts.methods && present.length > 0) fail(`no maps of method ${opts.methods.join(",")} in ${dirs.join(", ")}${why}`, `the folders hold maps of: ${present.join(", ")}`);
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
    if (block > Math.min(height, width)) fail(`--block ${block} is larger than the ${height}x${width} map ${e.path}`, `use a block size of at most ${Math.min(height, width)} px (default: each map's own)`);
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
  const statCols = ["cls", "localShare", "spread", "entropy", "chainBlocks", "chainExtent", "chainWidth", "chainMass", "chainGridShare", "significantBlocks", "significantShare", "totalMass", "blocks"] as const;
  await put("maps.csv", csv(["dataset", "model", "image", "roi", "method", "block", ...statCols, "path"], results.map((r) => [r.dataset, r.model, r.image, r.roi, r.method, r.block, ...statCols.map((k) => r.stats[k] as number | string), r.path])));

  // Per (dataset, model, method): class counts and mean ± sd.
  const groups = [...new Map(results.map((r) => [`${r.dataset}|${r.model}|${r.method}`, { dataset: r.dataset, model: r.model, method: r.method }])).values()].sort((a, b) => `${a.method}|${a.dataset}|${a.model}`.localeCompare(`${b.method}|${b.dataset}|${b.model}`));
  // one row per (dataset, model, method), then per (dataset, method) over its models (model "*")
  const datasetGroups = [...new Map(results.map((r) => [`${r.dataset}|${r.method}`, { dataset: r.dataset, model: "*", method: r.method }])).values()].sort((a, b) => `${a.method}|${a.dataset}`.localeCompare(`${b.method}|${b.dataset}`));
  const perGroup = [...groups, ...datasetGroups].map((g) => {
    const rs = results.filter((r) => r.dataset === g.dataset && (g.model === "*" || r.model === g.model) && r.method === g.method);
    const counts = Object.fromEntries(STRATEGY_CLASSES.map((c) => [c, rs.filter((r) => r.stats.cls === c).length]));
    const stats = Object.fromEntries(STAT_KEYS.map((k) => [k, meanSd(rs.map((r) => r.stats[k]))]));
    return { ...g, maps: rs.length, counts, stats };
  });
  const perModel = perGroup.filter((g) => g.model !== "*");
  const perDataset = perGroup.filter((g) => g.model === "*");
  const pairs = modelPairs(results);
  const provenance = { versions: runtimeVersions(), createdAt: new Date().toISOString(), inputs: dirs.map((d) => resolve(d)), methods: opts.methods ?? null };
  // Without --tau, settings.tau (the default, 0) was not what any map used: null, and maps[].tau says.
  const recorded = {
    ...settings,
    tau: opts.settings?.tau ?? null,
    tauFrom: opts.settings?.tau === undefined ? "each map's own (maps[].tau)" : "--tau, for every map",
    block: opts.settings?.block ?? null,
    blockFrom: opts.settings?.block === undefined ? `each map's own block size, else that of its model's block maps, else ${STRATEGY_DEFAULTS.block} px (maps[].block)` : "--block, for every map",
  };
  await put("strategies.json", JSON.stringify({ format: "segcause.strategies/1", provenance, settings: recorded, definitions: DEFINITIONS, perModel, perDataset, pairs, maps: results.map(({ path, ...r }) => ({ ...r, path })) }, null, 1));
  await put("models.csv", csv(["dataset", "model", "method", "maps", ...STRATEGY_CLASSES, ...STAT_KEYS.flatMap((k) => [`${k}_mean`, `${k}_sd`])], perGroup.map((g) => [g.dataset, g.model, g.method, g.maps, ...STRATEGY_CLASSES.map((c) => g.counts[c]), ...STAT_KEYS.flatMap((k) => [g.stats[k].mean, g.stats[k].sd])])));
  await put("model-pairs.csv", modelPairsCsv(pairs));

  // Plots per method: class shares per model, stat distributions per model, gallery.
  const plots: { name: string; png: Buffer; caption: string }[] = [];
  const methods = [...new Set(results.map((r) => r.method))].sort();
  for (const method of methods) {
    const gs = perModel.filter((g) => g.method === method);
    const label = (g: { dataset: string; model: string }) => `${g.model} (${g.dataset})`;
    plots.push({
      name: `plots/classes-${method}.png`,
      png: await svgToPng(stackedBarsSvg(`${method}: strategy of each map, per model`, gs.map((g) => ({ label: label(g), parts: STRATEGY_CLASSES.map((c) => ({ name: c, value: g.counts[c], colour: CLASS_COLOURS[c] })) })))),
      caption: `${method}: number of maps classified local / sequential / global / null per model.`,
    });
    const modelsHere = gs.map(label);
    const panel = (k: (typeof STAT_KEYS)[number], title: string) => ({
      title, yLabel: k,
      groups: gs.map((g, i) => ({ label: g.model, colour: colourOf(modelsHere[i], modelsHere), values: results.filter((r) => r.method === method && r.model === g.model && r.dataset === g.dataset).map((r) => r.stats[k]) })),
    });
    plots.push({
      name: `plots/stats-${method}.png`,
      png: await svgToPng(boxPanelsSvg(`${method}: strategy statistics per model`, [panel("localShare", `mass within ${settings.radius} blocks`), panel("spread", "spread (normalised distance)"), panel("entropy", "normalised entropy"), panel("chainExtent", "RoI chain extent (blocks)")], "box = quartiles, bar = median, whiskers = 1.5 IQR, dots = maps")),
      caption: `${method}: distributions of the strategy statistics per model (one dot per map).`,
    });
    const n = opts.gallery ?? 6;
    const tile = 150;
    const rowsG = gs.map((g) => results.filter((r) => r.method === method && r.model === g.model && r.dataset === g.dataset).slice(0, n));
    const W = Math.max(780, 200 + Math.max(1, ...rowsG.map((r) => r.length)) * (tile + 10)), H = 50 + rowsG.length * (tile + 40);
    const parts = [`<rect width="${W}" height="${H}" fill="white"/>`, `<text x="10" y="26" font-family="DejaVu Sans, sans-serif" font-size="16" font-weight="bold">${esc(method)}: example maps per model (red = supports the RoI, blue = hurts, RoI green)</text>`];
    for (let i = 0; i < rowsG.length; i++) {
      const y = 50 + i * (tile + 40);
      parts.push(`<text x="10" y="${y + tile / 2}" font-family="DejaVu Sans, sans-serif" font-size="13">${esc(gs[i].model)}</text>`, `<text x="10" y="${y + tile / 2 + 16}" font-family="DejaVu Sans, sans-serif" font-size="11" fill="#555">${esc(gs[i].dataset)}</text>`);
      for (let j = 0; j < rowsG[i].length; j++) {
        const r = rowsG[i][j];
        const m = maps.get(r.path)!;
        // signed maps as stored; unsigned maps (importance >= 0) drawn as support, like `segcause explain`
        const unsigned = r.signed === undefined ? !m.some((v) => v < 0) : !r.signed;
        const signed = unsigned ? m.map((v) => -v) : m;
        const png = await encodePng({ width: r.width, height: r.height, channels: 3, data: heatRgb(signed, r.height, r.width, Region.rect(r.roiRect, r.height, r.width)) });
        const x = 200 + j * (tile + 10);
        parts.push(`<image x="${x}" y="${y}" width="${tile}" height="${tile}" href="data:image/png;base64,${png.toString("base64")}"/>`);
        parts.push(`<text x="${x}" y="${y + tile + 14}" font-family="DejaVu Sans, sans-serif" font-size="10">${esc(r.image)} · ${esc(r.stats.cls)}</text>`);
        parts.push(`<text x="${x}" y="${y + tile + 27}" font-family="DejaVu Sans, sans-serif" font-size="10" fill="#555">local ${fmt(r.stats.localShare, 3)} · chain ${r.stats.chainExtent}</text>`);
      }
    }
    plots.push({ name: `plots/gallery-${method}.png`, png: await svgToPng(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}">${parts.join("")}</svg>`), caption: `${method}: the first ${n} maps of each model (sorted by image and RoI), with their class.` });
  }
  for (const p of plots) await put(p.name, p.png);

  const body: string[] = [];
  const grids = [...new Set(results.map((r) => r.block))].sort((a, b) => a - b);
  body.push(`<p>${results.length} maps from ${esc(dirs.join(", "))}; block grid ${opts.settings?.block !== undefined ? `${opts.settings.block}×${opts.settings.block} px` : `each map's own block size (${grids.map((g) => `${g} px`).join(", ")}; pixel maps take their model's)`}, local radius ${settings.radius} blocks.</p>`);
  body.push(`<h2>Per model (and per dataset: model *)</h2>` + table(
    ["method", "dataset", "model", "maps", ...STRATEGY_CLASSES, ...STAT_KEYS.map(String)],
    perGroup.map((g) => [esc(g.method), esc(g.dataset), esc(g.model), g.maps, ...STRATEGY_CLASSES.map((c) => g.counts[c]), ...STAT_KEYS.map((k) => `${fmt(g.stats[k].mean)} ± ${fmt(g.stats[k].sd)}`)]),
    { numeric: true },
  ));
  if (pairs.length) body.push(`<h2>Paired model comparisons (same image and RoI; Wilcoxon signed-rank)</h2>` + table(["dataset", "method", "statistic", "a", "b", "n", "mean(a−b)", "p", "p (Holm)", "test"], pairs.map((p) => [esc(p.dataset), esc(p.method), p.stat, esc(p.a), esc(p.b), p.n, p.meanDiff, p.p, p.pHolm, p.test])));
  body.push(`<h2>Plots</h2>`);
  for (const p of plots) body.push(`<figure>${pngImg(p.png, p.caption)}<figcaption class="small">${esc(p.caption)}</figcaption></figure>`);
  body.push(`<h2>Definitions</h2>` + table(["term", "definition"], DEFINITIONS.map(([k, v]) => [esc(k), esc(v)])));
  body.push(`<h2>Maps</h2>` + table(["dataset", "model", "image", "RoI", "method", "class", "local", "spread", "entropy", "chain blocks", "chain extent", "chain width", "chain mass"], results.map((r) => [esc(r.dataset), esc(r.model), esc(r.image), esc(r.roi), esc(r.method), r.stats.cls, r.stats.localShare, r.stats.spread, r.stats.entropy, r.stats.chainBlocks, r.stats.chainExtent, r.stats.chainWidth, r.stats.chainMass])));
  await put("report.html", page("segcause perceptual strategies", body.join("\n")));
  return { results, files, duplicates };
}

export const DEFINITIONS: [string, string][] = [
  ["grid", "blocks of 8×8 px (--block) over the model input; blocks overlapping the RoI are left out; block value = mean of the map over the block (a PdCR map: the block's ATE); weight a = |value|"],
  ["distance d", "Chebyshev distance in blocks from the block to the RoI's blocks (1 = adjacent)"],
  ["localShare", "Σ a over blocks with d ≤ r (r = 4 blocks, --radius) / Σ a"],
  ["spread", "mean distance of the |ATE| mass from the RoI, Σ a·d / Σ a, divided by the largest d in the image (0..1)"],
  ["entropy", "−Σ q log q / log(#blocks), q = a / Σ a: 0 = one block, 1 = uniform"],
  ["significant", "a ≥ max(τ, 0.05·max a); τ = the map's own τ (PdCR: 0.02 Dice points), 0 for methods without one"],
  ["chain", "union of the 8-connected components of significant blocks that touch the RoI (contain a block with d = 1): chainBlocks (size), chainExtent (max d, blocks), chainWidth (chainBlocks / chainExtent: ≈ 1 for a line, large for a blob), chainMass (share of Σ a), chainGridShare (share of the grid)"],
  ["local", "localShare ≥ 0.7"],
  ["sequential", "not local, chainExtent ≥ 2r (8 blocks), chainMass ≥ 0.5, chainGridShare ≤ 0.25 and chainWidth ≤ 6 blocks: a thin structure of significant blocks leading away from the RoI"],
  ["global", "neither: the mass is spread over the image, not along one chain from the RoI"],
  ["null", "the map is zero everywhere outside the RoI"],
];
