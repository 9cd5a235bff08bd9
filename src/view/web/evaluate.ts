/**
 * The evaluate view's own tables and curves: summary.csv's per-model rows and the mean deletion and insertion
 * curves (from the folder's cells), filtered by model, method and fill. The server reads the files
 * (src/view/evaluate-data.ts); this draws the selection.
 */

import type { EvaluateCell, EvaluateCellList, EvaluateData, EvaluateTable } from "../api-types.js";
import { colourOf, drawBar, maxAbs } from "./colour.js";
import { saveFigure } from "./save.js";

const ALL = "";
/** rows drawn in the table at most (summary.csv has them all) */
const MAX_ROWS = 300;
const PALETTE = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"];

const el = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

function options(select: HTMLSelectElement, values: string[], all: string | undefined): void {
  const keep = select.value;
  select.replaceChildren(...(all === undefined ? [] : [new Option(all, ALL)]), ...values.map((v) => new Option(v, v)));
  if ([ALL, ...values].includes(keep) && (keep !== ALL || all !== undefined)) select.value = keep;
}

let data: EvaluateData | undefined;
/** the folder shown, how the page asks the server for JSON, and an image's URL */
let folder: { dir: string; get: <T>(path: string) => Promise<T>; imageUrl: (path: string) => string } | undefined;

/** Shows an evaluate folder's numbers with its filters (kept across folders when they still apply). */
export function showEvaluateData(d: EvaluateData, f: NonNullable<typeof folder>): void {
  data = d;
  folder = f;
  options(el("ev-stats-name"), d.tables, undefined);
  el<HTMLSelectElement>("ev-stats-name").onchange = render;
  const models = [...new Set([...d.summary.map((r) => r[1]), ...d.curves.map((c) => c.model)])].sort();
  const methods = [...new Set([...d.summary.map((r) => r[2]), ...d.curves.map((c) => c.method)])].sort();
  options(el("ev-model"), models, "all models");
  options(el("ev-method"), methods, "all methods");
  options(el("ev-fill"), d.fills, undefined);
  for (const id of ["ev-model", "ev-method", "ev-fill"]) el<HTMLSelectElement>(id).onchange = render;
  el("ev-save-curves").onclick = saveCurves;
  el("ev-save-cell").onclick = saveCell;
  el("ev-save-cell").hidden = true;
  render();
}

/** The selection's filters in words, or in a file name. */
function selection(sep: string): string {
  const v = (id: string, all: string) => el<HTMLSelectElement>(id).value || all;
  return [v("ev-model", "all models"), v("ev-method", "all methods"), `fill ${v("ev-fill", "")}`].join(sep);
}

function saveCurves(): void {
  if (!folder) return;
  const name = folder.dir.split("/").slice(-1)[0];
  void saveFigure({
    title: `segcause evaluate ${name}: mean deletion and insertion curves · ${selection(", ")}`,
    panels: [{ canvas: el("ev-deletion") }, { canvas: el("ev-insertion") }],
    legend: [
      "one line per method: its mean outcome over the selection's cells (their number in brackets) as the top-ranked pixels are removed / restored",
    ],
    file: `segcause-evaluate-${name}-${selection("-")}`,
    source: folder.dir,
  });
}

let cellShown: { name: string; max: number; units: string; signed: boolean; source: string } | undefined;

function saveCell(): void {
  if (!cellShown) return;
  const bar = Object.assign(document.createElement("canvas"), { width: 256, height: 12 });
  const { max, units, signed } = cellShown;
  drawBar(bar, signed ? "signed" : "abs", max, false);
  void saveFigure({
    title: `segcause evaluate cell ${cellShown.name}`,
    panels: [{ canvas: el("ev-cell-map") }],
    bar,
    legend: [
      `${signed ? `${(-max).toPrecision(3)} (red: supported the RoI) … 0 … ${max.toPrecision(3)} (blue: hurt)` : `0 … ${max.toPrecision(3)} (importance)`} ${units}, the map's own |max|; green: the RoI`,
    ],
    file: `segcause-evaluate-cell-${cellShown.name.replaceAll(" / ", "-")}`,
    source: cellShown.source,
  });
}

function render(): void {
  if (!data) return;
  const model = el<HTMLSelectElement>("ev-model").value;
  const method = el<HTMLSelectElement>("ev-method").value;
  const fill = el<HTMLSelectElement>("ev-fill").value;
  const rows = data.summary
    .filter((r) => (model === ALL || r[1] === model) && (method === ALL || r[2] === method) && r[3].endsWith(`:${fill}`))
    .sort((a, b) => a[0].localeCompare(b[0]) || a[1].localeCompare(b[1]) || a[3].localeCompare(b[3]) || a[4] - b[4]);
  const cell = (text: string) => Object.assign(document.createElement("td"), { textContent: text });
  const f = (v: number | null) => (v === null ? "–" : v.toFixed(3));
  el("ev-table")
    .querySelector("tbody")!
    .replaceChildren(
      ...rows.slice(0, MAX_ROWS).map((r) => {
        const tr = document.createElement("tr");
        tr.append(
          cell(r[0]),
          cell(r[1]),
          cell(r[2]),
          cell(r[3]),
          cell(f(r[4])),
          cell(r[5] === null ? "–" : `[${f(r[5])}, ${f(r[6])}]`),
          cell(String(r[7])),
        );
        return tr;
      }),
    );
  el("ev-count").textContent =
    `${rows.length} rows of summary.csv (per model, fill ${fill})${rows.length > MAX_ROWS ? `, the first ${MAX_ROWS} shown` : ""}; the curves: the mean over the selection's cells (their number in brackets)`;
  // Each method's curve over the selection: its groups' means weighted by their cells.
  const byMethod = new Map<string, { n: number; deletion: number[]; insertion: number[] }>();
  for (const c of data.curves) {
    if (c.fill !== fill || (model !== ALL && c.model !== model) || (method !== ALL && c.method !== method)) continue;
    const m = byMethod.get(c.method);
    if (!m) byMethod.set(c.method, { n: c.n, deletion: c.deletion.map((v) => v * c.n), insertion: c.insertion.map((v) => v * c.n) });
    else if (m.deletion.length === c.deletion.length && m.insertion.length === c.insertion.length) {
      m.n += c.n;
      c.deletion.forEach((v, i) => (m.deletion[i] += v * c.n));
      c.insertion.forEach((v, i) => (m.insertion[i] += v * c.n));
    }
  }
  const curves = [...byMethod.entries()].sort(([a], [b]) => a.localeCompare(b));
  const mean = (v: number[], n: number) => v.map((x) => x / n);
  drawCurves(
    el("ev-deletion"),
    "deletion: top-ranked pixels removed",
    curves.map(([name, m]) => ({ name, n: m.n, values: mean(m.deletion, m.n) })),
  );
  drawCurves(
    el("ev-insertion"),
    "insertion: top-ranked pixels restored",
    curves.map(([name, m]) => ({ name, n: m.n, values: mean(m.insertion, m.n) })),
  );
  document.body.dataset.evalRows = String(rows.length);
  document.body.dataset.evalCurves = String(curves.length);
  renderTable({ model, method, fill });
}

/** The chosen statistics table's rows for the filters, as the server selects them from the file. */
function renderTable(filter: { model: string; method: string; fill: string }): void {
  const name = el<HTMLSelectElement>("ev-stats-name").value;
  const head = el("ev-stats").querySelector("thead")!;
  const body = el("ev-stats").querySelector("tbody")!;
  renderCells(filter);
  if (!name || !folder) {
    head.replaceChildren();
    body.replaceChildren();
    el("ev-stats-count").textContent = "this folder has no pairs.csv, ranks.csv nor strategies tables";
    return;
  }
  const asked = JSON.stringify([name, filter]);
  el("ev-stats").dataset.asked = asked;
  folder
    .get<EvaluateTable>(`/api/evaluate-table?${new URLSearchParams({ dir: folder.dir, table: name, ...filter })}`)
    .then((t) => {
      if (el("ev-stats").dataset.asked !== asked) return; // a later choice is on its way
      const row = (tag: "th" | "td", values: string[]) => {
        const tr = document.createElement("tr");
        tr.append(...values.map((v) => Object.assign(document.createElement(tag), { textContent: v })));
        return tr;
      };
      head.replaceChildren(row("th", t.columns));
      body.replaceChildren(...t.rows.map((r) => row("td", r)));
      el("ev-stats-count").textContent =
        `${t.total} rows of ${t.name} for this selection${t.total > t.rows.length ? `, the first ${t.rows.length} shown` : ""} (a pairwise row matches a model or method on either side)`;
      document.body.dataset.evalTable = `${t.name}:${t.total}`;
    })
    .catch((e: Error) => {
      el("ev-stats-count").textContent = e.message;
    });
}

/** Mean outcome against the share of ranked pixels, one line per method, with its legend. */
function drawCurves(c: HTMLCanvasElement, title: string, lines: { name: string; n: number; values: number[] }[]): void {
  const g = c.getContext("2d")!;
  g.fillStyle = "#fff";
  g.fillRect(0, 0, c.width, c.height);
  const all = lines.flatMap((l) => l.values);
  const pad = { left: 40, right: 140, top: 22, bottom: 28 };
  const w = c.width - pad.left - pad.right;
  const h = c.height - pad.top - pad.bottom;
  g.fillStyle = "#222";
  g.font = "12px sans-serif";
  g.fillText(title, pad.left, 14);
  g.strokeStyle = "#888";
  g.strokeRect(pad.left, pad.top, w, h);
  if (all.length === 0) {
    g.fillText("no curves for this selection", pad.left + 8, pad.top + 20);
    return;
  }
  const lo = Math.min(...all);
  const hi = Math.max(...all, lo + 1e-9);
  g.fillText(hi.toFixed(1), 2, pad.top + 10);
  g.fillText(lo.toFixed(1), 2, pad.top + h);
  g.fillText("0", pad.left, c.height - 10);
  g.fillText("share of pixels → 1", pad.left + w - 110, c.height - 10);
  lines.forEach((l, k) => {
    // past the palette's colours, dashed lines
    const dash = k >= PALETTE.length ? [6, 4] : [];
    g.strokeStyle = PALETTE[k % PALETTE.length];
    g.lineWidth = 2;
    g.setLineDash(dash);
    g.beginPath();
    l.values.forEach((v, i) => {
      const x = pad.left + (i / Math.max(1, l.values.length - 1)) * w;
      const y = pad.top + (1 - (v - lo) / (hi - lo)) * h;
      if (i === 0) g.moveTo(x, y);
      else g.lineTo(x, y);
    });
    g.stroke();
    // the legend: a piece of the line, then the method and its cells
    const y = pad.top + 8 + 14 * k;
    g.beginPath();
    g.moveTo(pad.left + w + 4, y);
    g.lineTo(pad.left + w + 18, y);
    g.stroke();
    g.setLineDash([]);
    g.fillStyle = PALETTE[k % PALETTE.length];
    g.fillText(`${l.name} (${l.n})`, pad.left + w + 22, y + 4);
  });
}

/** The cells with a map for the model and method chosen; a click draws one (its fill does not change a map). */
function renderCells(filter: { model: string; method: string }): void {
  if (!folder) return;
  const asked = JSON.stringify([folder.dir, filter]);
  el("ev-cells").dataset.asked = asked;
  folder
    .get<EvaluateCellList>(`/api/evaluate-cells?${new URLSearchParams({ dir: folder.dir, model: filter.model, method: filter.method })}`)
    .then((list) => {
      if (el("ev-cells").dataset.asked !== asked) return;
      el("ev-cells-count").textContent =
        list.total === 0
          ? "no per-cell maps for this selection (a published folder keeps none; `segcause evaluate` writes them under cells/)"
          : `${list.total} cells with a map${list.total > list.cells.length ? `, the first ${list.cells.length} listed` : ""}: click one to draw it`;
      el("ev-cells").replaceChildren(
        ...list.cells.map((c) => {
          const li = document.createElement("li");
          li.textContent = [c.dataset, c.model, c.image, c.roi, c.method].join(" / ");
          li.onclick = () => showCell(c);
          return li;
        }),
      );
      document.body.dataset.evalCells = String(list.total);
    })
    .catch((e: Error) => {
      el("ev-cells-count").textContent = e.message;
    });
}

const loadImage = (src: string) =>
  new Promise<HTMLImageElement>((ok, no) => {
    const im = new Image();
    im.onload = () => ok(im);
    im.onerror = () => no(new Error(`cannot load ${src.split("?")[0]}`));
    im.src = src;
  });

/** One cell's map over its image (when listed), in the page's signed colours at its own |max|, with its RoI. */
async function showCell(c: EvaluateCellList["cells"][number]): Promise<void> {
  if (!folder) return;
  try {
    const cell = await folder.get<EvaluateCell>(`/api/evaluate-cell?${new URLSearchParams({ dir: folder.dir, ...c })}`);
    const map = new Float32Array(Uint8Array.from(atob(cell.map), (ch) => ch.charCodeAt(0)).buffer);
    const canvas = el<HTMLCanvasElement>("ev-cell-map");
    canvas.width = cell.width;
    canvas.height = cell.height;
    const g = canvas.getContext("2d")!;
    g.fillStyle = "#888";
    g.fillRect(0, 0, cell.width, cell.height);
    if (cell.match.image) g.drawImage(await loadImage(folder.imageUrl(cell.match.image)), 0, 0, cell.width, cell.height);
    const under = g.getImageData(0, 0, cell.width, cell.height);
    const max = maxAbs(map);
    // hover: the map's value under the cursor, as map.npy holds it
    canvas.onmousemove = (e) => {
      const col = Math.min(cell.width - 1, Math.floor((e.offsetX / canvas.clientWidth) * cell.width));
      const row = Math.min(cell.height - 1, Math.floor((e.offsetY / canvas.clientHeight) * cell.height));
      el("ev-cell-hover").textContent = `pixel (${row}, ${col}): ${map[row * cell.width + col].toPrecision(4)} ${cell.valueUnits}`;
    };
    for (let p = 0; p < map.length; p++) {
      const [r, gr, b, a] = colourOf(cell.signed ? "signed" : "abs", map[p], max);
      for (const [k, v] of [r, gr, b].entries()) under.data[p * 4 + k] = Math.round(under.data[p * 4 + k] * (1 - a) + v * a);
    }
    g.putImageData(under, 0, 0);
    g.strokeStyle = "#0f0";
    g.strokeRect(cell.rect.col + 0.5, cell.rect.row + 0.5, cell.rect.width - 1, cell.rect.height - 1);
    const name = [c.dataset, c.model, c.image, c.roi, c.method].join(" / ");
    cellShown = {
      name,
      max,
      units: cell.valueUnits,
      signed: cell.signed,
      source: `${folder.dir}/cells/${[c.dataset, c.model, c.image, c.roi, c.method].join("/")}`,
    };
    el("ev-save-cell").hidden = false;
    el("ev-cell-title").textContent =
      `${name}: |max| ${max.toPrecision(3)} ${cell.valueUnits}${cell.match.image ? "" : " (its image is not listed: over gray)"}`;
    document.body.dataset.evalCell = [c.image, c.roi, c.method].join("/");
  } catch (e) {
    el("ev-cell-title").textContent = (e as Error).message;
  }
}
