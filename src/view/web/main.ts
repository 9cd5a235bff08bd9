/**
 * The viewer's page: pick a model and an image, drag a RoI, run methods through the server (which runs
 * the CLI's code), follow their progress, and look at the maps. No framework: a few DOM elements and
 * a canvas per map (the first, then the compared ones), redrawn whole on each change.
 */

import type { ComponentsFolder, EvaluateData, OptionField } from "../api-types.js";
import { colourOf, drawBar, type Layer, layerValues, maxAbs } from "./colour.js";
import { drawBars, drawSpatial } from "./components.js";
import { showEvaluateData } from "./evaluate.js";
import { methodForm } from "./options-form.js";
import { saveFigure } from "./save.js";

interface Named {
  name: string;
  path: string;
  /** shown under this heading (a data set's cases) */
  group?: string;
}
interface MethodInfo {
  name: string;
  family: string;
  summary: string;
  cost: string;
  needsBank: boolean;
  options: OptionField[];
}
interface RunInfo {
  id: string;
  method: string;
  out: string;
  command: string;
  state: "queued" | "running" | "done" | "failed" | "stopped";
  message?: string;
}
interface State {
  models: Named[];
  images: Named[];
  banks: Named[];
  methods: MethodInfo[];
  runs: RunInfo[];
  results: { dir: string; kind: "explain" | "components" | "evaluate" }[];
  runsFolder: string;
  volumeModels: Named[];
  volumes: Named[];
}
interface RunStatus {
  label: string;
  done: number;
  total?: number;
  bound?: number;
  etaMs?: number;
}
interface Unit {
  row: number;
  col: number;
  height: number;
  width: number;
  effect: number;
  stderr: number | null;
  ci95: number | null;
  samples: number;
  status?: string;
}
interface Result {
  dir: string;
  method: string;
  width: number;
  height: number;
  map: Float32Array;
  stderr: Float32Array;
  units: Unit[];
  unitKind: string;
  effectUnits: string;
  scaleMax: number;
  /** false: importance >= 0 without a direction (saliency, Grad-CAM, …), drawn as support (red) like the written pictures */
  signed: boolean;
  notes: string[];
  imagePath?: string;
  modelPath?: string;
}
type Rect = { row: number; col: number; height: number; width: number };
/** The map so far of a run on the fast schedule (sent after its screen and after each round). */
interface PartialView {
  height: number;
  width: number;
  valueUnits: string;
  passes: number;
  units: Unit[];
}

const token = new URLSearchParams(location.search).get("token") ?? "";
const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const ui = {
  status: $<HTMLSpanElement>("status"),
  model: $<HTMLSelectElement>("model"),
  image: $<HTMLSelectElement>("image"),
  drop: $<HTMLDivElement>("drop"),
  showPred: $<HTMLInputElement>("show-pred"),
  roiText: $<HTMLOutputElement>("roi-text"),
  roiTool: $<HTMLSelectElement>("roi-tool"),
  brush: $<HTMLInputElement>("brush"),
  threshold: $<HTMLInputElement>("threshold"),
  methods: $<HTMLDivElement>("methods"),
  bank: $<HTMLSelectElement>("bank"),
  seed: $<HTMLInputElement>("seed"),
  methodOptions: $<HTMLDivElement>("method-options"),
  run: $<HTMLButtonElement>("run"),
  stop: $<HTMLButtonElement>("stop"),
  save: $<HTMLButtonElement>("save"),
  compare: $<HTMLSelectElement>("compare"),
  runs: $<HTMLUListElement>("runs"),
  results: $<HTMLUListElement>("results"),
  layer: $<HTMLSelectElement>("layer"),
  opacity: $<HTMLInputElement>("opacity"),
  scale: $<HTMLSelectElement>("scale"),
  scaleMax: $<HTMLInputElement>("scale-max"),
  canvas: $<HTMLCanvasElement>("view"),
  legend: $<HTMLCanvasElement>("legend-bar"),
  legendText: $<HTMLSpanElement>("legend-text"),
  hover: $<HTMLOutputElement>("hover"),
  command: $<HTMLElement>("command"),
  notes: $<HTMLDivElement>("notes"),
};

let state: State | undefined;
interface Bits {
  height: number;
  width: number;
  bits: string;
}
let base:
  | { width: number; height: number; image: HTMLImageElement; mask: HTMLImageElement; foreground: Uint8Array; fgHeight: number; fgWidth: number }
  | undefined;
/** The RoI: a rectangle, or a mask (brushed, or a component of the prediction) in model-input pixels; one of them. */
let roi: Rect | undefined;
let roiMask: Uint8Array | undefined;
/** the part of the image every map shows: zoom factor and top-left model-input pixel */
const view = { scale: 1, row: 0, col: 0 };
let drag: { row: number; col: number } | undefined;
/** a pan in progress: where the mouse went down, the view's corner then, and the map it went down on */
let pan: { x: number; y: number; row: number; col: number; c: HTMLCanvasElement } | undefined;
let result: Result | undefined;
/** the maps beside the first (same image, RoI, layer, zoom and cursor), left to right, and the folders asked for */
let compares: Result[] = [];
let compareDirs: string[] = [];
let compareAsked = 0;
/** each drawn map's colour scale (undefined: it does not fit the image), the first map's first */
let scales: (number | undefined)[] = [];
/** the runs started together by one Run: the first to finish is drawn, the others beside it */
let batch: { ids: Set<string>; main?: string } | undefined;
/** the command that wrote each run's folder (kept in a saved PNG) */
const commands = new Map<string, string>();
let cursor: { row: number; col: number } | undefined;
const runs = new Map<string, { info: RunInfo; status?: RunStatus; li: HTMLLIElement }>();
/** The run whose map is filling in on the stage; "user" once the page's user opened another result meanwhile. */
let live: string | undefined;
let partialsDrawn = 0;
/** passes behind the map last drawn while filling in */
let livePasses: number | undefined;

async function api<T>(path: string, init: RequestInit = {}): Promise<T> {
  const res = await fetch(path, {
    ...init,
    headers: { "x-segcause-token": token, ...(init.body && typeof init.body === "string" ? { "content-type": "application/json" } : {}) },
  });
  const value = await res.json();
  if (!res.ok) throw new Error(value.error ?? `${res.status}`);
  return value as T;
}

function say(text: string, error = false): void {
  ui.status.textContent = text;
  ui.status.className = error ? "error" : "";
}

function loadImage(src: string): Promise<HTMLImageElement> {
  return new Promise((ok, ko) => {
    const img = new Image();
    img.onload = () => ok(img);
    img.onerror = () => ko(new Error("image failed to load"));
    img.src = src;
  });
}

function fill(select: HTMLSelectElement, items: Named[], keep = select.value): void {
  const groups = new Map<string, HTMLOptGroupElement>();
  select.replaceChildren(
    ...items.flatMap((i) => {
      if (!i.group) return [new Option(i.name, i.path)];
      const g = groups.get(i.group);
      if (g) {
        g.append(new Option(i.name, i.path));
        return [];
      }
      const made = Object.assign(document.createElement("optgroup"), { label: i.group });
      made.append(new Option(i.name, i.path));
      groups.set(i.group, made);
      return [made];
    }),
  );
  if (items.some((i) => i.path === keep)) select.value = keep;
}

async function refreshState(): Promise<void> {
  state = await api<State>("/api/state");
  fill(ui.model, state.models);
  fill(ui.image, state.images);
  fill(ui.bank, state.banks);
  ui.compare.replaceChildren(
    ...state.results
      .filter((r) => r.kind === "explain")
      .map((r) => new Option(r.dir.split("/").slice(-1)[0], r.dir, false, compareDirs.includes(r.dir))),
  );
  ui.results.replaceChildren(
    ...state.results.map(({ dir, kind }) => {
      const li = document.createElement("li");
      li.textContent = `${kind} result: ${dir.split("/").slice(-1)[0]}`;
      li.title = dir;
      li.onclick = () => {
        live = "user";
        void openResult(dir);
      };
      return li;
    }),
  );
}

function renderMethods(): void {
  ui.methods.replaceChildren(
    ...state!.methods.map((m) => {
      const label = document.createElement("label");
      label.title = `${m.summary} (passes: ${m.cost})`;
      const box = document.createElement("input");
      box.type = "checkbox";
      box.value = m.name;
      box.checked = m.name === "zero";
      box.onchange = renderOptions;
      label.append(box, ` ${m.name}`);
      return label;
    }),
  );
  renderOptions();
}

const chosenMethods = () => [...ui.methods.querySelectorAll<HTMLInputElement>("input:checked")].map((b) => b.value);

/** One form per ticked method (kept while it stays ticked, so typed values survive ticking another). */
function renderOptions(): void {
  const keep = new Map([...ui.methodOptions.querySelectorAll<HTMLElement>("[data-method]")].map((f) => [f.dataset.method!, f]));
  ui.methodOptions.replaceChildren(
    ...chosenMethods().flatMap((name) => {
      const fields = state!.methods.find((m) => m.name === name)?.options ?? [];
      return fields.length ? [keep.get(name) ?? methodForm(name, fields, schedulePreview)] : [];
    }),
  );
  schedulePreview();
}

/** A method's options as typed in its form: by flag name, numbers as numbers; an empty field keeps the default (not sent). */
function optionsOf(method: string): Record<string, number | string> {
  const out: Record<string, number | string> = {};
  for (const input of ui.methodOptions.querySelectorAll<HTMLInputElement | HTMLSelectElement>(`[data-method="${method}"] [data-option]`)) {
    const v = input.value.trim();
    if (v !== "") out[input.dataset.option!] = input.dataset.numeric && Number.isFinite(Number(v)) ? Number(v) : v;
  }
  return out;
}

/** The request of a run of `method` on the page's model, image and RoI (undefined without a RoI). */
function runRequest(method: string): Record<string, unknown> | undefined {
  if (!base || !(roi || roiMask)) return undefined;
  const needsBank = state!.methods.find((m) => m.name === method)?.needsBank;
  return {
    model: ui.model.value,
    image: ui.image.value,
    ...(roi ? { roi } : { roiMask: { height: base.height, width: base.width, bits: packBits(roiMask!) } }),
    method,
    seed: Number(ui.seed.value) || 0,
    options: optionsOf(method),
    ...(needsBank && ui.bank.value ? { bank: ui.bank.value } : {}),
  };
}

let previewTimer: ReturnType<typeof setTimeout> | undefined;
let previewAsked = 0;
function schedulePreview(): void {
  clearTimeout(previewTimer);
  previewTimer = setTimeout(() => void preview(), 250);
}

/**
 * The server checks each ticked method's options as the CLI would (its one line under the form when one is
 * wrong) and gives the command a run would be, shown as the equivalent command.
 */
async function preview(): Promise<void> {
  const asked = ++previewAsked;
  const lines = await Promise.all(
    chosenMethods().map(async (method) => {
      const body = runRequest(method);
      const out = ui.methodOptions.querySelector<HTMLOutputElement>(`[data-method="${method}"] output`);
      if (!body) return undefined;
      try {
        const r = await api<{ command: string }>("/api/runs/preview", { method: "POST", body: JSON.stringify(body) });
        if (out) out.textContent = "";
        return r.command;
      } catch (e) {
        if (out) out.textContent = (e as Error).message;
        return `${method}: ${(e as Error).message}`;
      }
    }),
  );
  if (asked !== previewAsked || lines.every((l) => l === undefined)) return;
  ui.command.textContent = lines.filter((l) => l !== undefined).join("\n");
  document.body.dataset.preview = String(asked);
}

async function showPrediction(): Promise<void> {
  if (!ui.model.value || !ui.image.value) return;
  showView("map");
  say("loading the model's prediction…");
  try {
    const p = await api<{ width: number; height: number; image: string; mask: string; area: number; foreground: Bits }>("/api/predict", {
      method: "POST",
      body: JSON.stringify({ model: ui.model.value, image: ui.image.value }),
    });
    base = {
      width: p.width,
      height: p.height,
      image: await loadImage(p.image),
      mask: await loadImage(p.mask),
      foreground: unpackBits(p.foreground),
      fgHeight: p.foreground.height,
      fgWidth: p.foreground.width,
    };
    if (roi && (roi.row + roi.height > p.height || roi.col + roi.width > p.width)) roi = undefined;
    if (roiMask && roiMask.length !== p.width * p.height) roiMask = undefined;
    Object.assign(view, { scale: 1, row: 0, col: 0 });
    if (result && (result.width !== p.width || result.height !== p.height)) result = undefined;
    say(`prediction: ${p.area} pixels of ${p.width}×${p.height}`);
  } catch (e) {
    base = undefined;
    say((e as Error).message, true);
  }
  updateRoi();
  draw();
}

function zoom(): number {
  const w = base?.width ?? result?.width ?? 256;
  const h = base?.height ?? result?.height ?? 256;
  return Math.max(1, Math.floor(560 / Math.max(w, h)));
}

/** The model-input pixel under a mouse event. */
function pixelAt(e: MouseEvent): { row: number; col: number } {
  // either map (side by side) or, for a drag that left it, the main one
  const r = (e.target === ui.canvas || !(e.target instanceof HTMLCanvasElement) ? ui.canvas : e.target).getBoundingClientRect();
  const w = base?.width ?? result?.width ?? 1;
  const h = base?.height ?? result?.height ?? 1;
  const col = Math.floor(view.col + ((e.clientX - r.left) / r.width) * (w / view.scale));
  const row = Math.floor(view.row + ((e.clientY - r.top) / r.height) * (h / view.scale));
  return { row: Math.min(h - 1, Math.max(0, row)), col: Math.min(w - 1, Math.max(0, col)) };
}

function rectFrom(a: { row: number; col: number }, b: { row: number; col: number }): Rect {
  const row = Math.min(a.row, b.row),
    col = Math.min(a.col, b.col);
  return { row, col, height: Math.abs(a.row - b.row) + 1, width: Math.abs(a.col - b.col) + 1 };
}

function updateRoi(): void {
  const area = roiMask?.reduce((a, v) => a + v, 0) ?? 0;
  ui.roiText.textContent = roi
    ? `--roi ${roi.row},${roi.col},${roi.height},${roi.width} (row, col, height, width)`
    : roiMask && area > 0
      ? `a RoI mask of ${area} pixels (the run's --roi-mask, a PNG kept in the runs folder)`
      : "no RoI yet";
  ui.run.disabled = !(roi || area > 0) || !base;
}

function unpackBits(b: Bits): Uint8Array {
  const bytes = Uint8Array.from(atob(b.bits), (ch) => ch.charCodeAt(0));
  return Uint8Array.from({ length: b.height * b.width }, (_, p) => (bytes[p >> 3] >> (7 - (p & 7))) & 1);
}

function packBits(values: Uint8Array): string {
  const bytes = new Uint8Array(Math.ceil(values.length / 8));
  values.forEach((v, p) => {
    if (v) bytes[p >> 3] |= 1 << (7 - (p & 7));
  });
  return btoa(String.fromCharCode(...bytes));
}

/** Paints (or, with shift, erases) a disc of the brush's radius into the RoI mask. */
function brushAt(at: { row: number; col: number }, erase: boolean): void {
  if (!base) return;
  if (!roiMask) roiMask = new Uint8Array(base.width * base.height);
  roi = undefined;
  const r = Math.max(0, Math.floor(Number(ui.brush.value) || 0));
  for (let y = Math.max(0, at.row - r); y <= Math.min(base.height - 1, at.row + r); y++)
    for (let x = Math.max(0, at.col - r); x <= Math.min(base.width - 1, at.col + r); x++)
      if ((y - at.row) ** 2 + (x - at.col) ** 2 <= r * r) roiMask[y * base.width + x] = erase ? 0 : 1;
}

/** The RoI mask of the predicted structure under the click: its connected component (4-neighbours), at the model-input size. */
function componentAt(at: { row: number; col: number }): Uint8Array | undefined {
  if (!base) return undefined;
  const { fgHeight: H, fgWidth: W, foreground: fg } = base;
  // the prediction's pixel under the click (the output may be another size than the input)
  const fy = Math.min(H - 1, Math.floor(((at.row + 0.5) * H) / base.height));
  const fx = Math.min(W - 1, Math.floor(((at.col + 0.5) * W) / base.width));
  if (!fg[fy * W + fx]) return undefined;
  const inC = new Uint8Array(H * W);
  const stack = [fy * W + fx];
  inC[stack[0]] = 1;
  while (stack.length) {
    const p = stack.pop()!;
    const y = Math.floor(p / W),
      x = p % W;
    for (const q of [y > 0 ? p - W : -1, y < H - 1 ? p + W : -1, x > 0 ? p - 1 : -1, x < W - 1 ? p + 1 : -1])
      if (q >= 0 && fg[q] && !inC[q]) {
        inC[q] = 1;
        stack.push(q);
      }
  }
  // back to model-input pixels, nearest at pixel centres (as a mask file is read)
  return Uint8Array.from({ length: base.height * base.width }, (_, p) => {
    const y = Math.floor(p / base!.width),
      x = p % base!.width;
    return inC[Math.min(H - 1, Math.floor(((y + 0.5) * H) / base!.height)) * W + Math.min(W - 1, Math.floor(((x + 0.5) * W) / base!.width))];
  });
}

/** Zooms both maps by `factor` about the model-input point under the mouse, kept in place. */
function zoomAt(factor: number, at: { row: number; col: number }, w: number, h: number): void {
  const scale = Math.min(16, Math.max(1, view.scale * factor));
  const keep = (start: number, p: number, extent: number) =>
    Math.min(extent - extent / scale, Math.max(0, p + 0.5 - ((p + 0.5 - start) * view.scale) / scale));
  view.row = keep(view.row, at.row, h);
  view.col = keep(view.col, at.col, w);
  view.scale = scale;
}

function currentScale(values: Float32Array, res: Result): number {
  if (ui.scale.value === "fixed") return Math.max(Number(ui.scaleMax.value) || 0, 1e-12);
  return ui.layer.value === "stderr" ? maxAbs(values) : res.scaleMax;
}

/** The layer to draw for `res`: an unsigned map's "signed" view is its importance, red as in the written pictures. */
function layerOf(res: Result): Layer {
  const layer = ui.layer.value as Layer;
  return layer === "signed" && !res.signed ? "abs" : layer;
}

function draw(): void {
  const main = drawInto(ui.canvas, result);
  if (result && main !== undefined) drawLegend(layerOf(result), main);
  $("legend").hidden = !result || main === undefined;
  const canvases = compareCanvases();
  scales = [main, ...compares.map((c, i) => drawInto(canvases[i], c))];
  $("compare-text").textContent = compares.length
    ? [result, ...compares]
        .map((r, i) =>
          !r
            ? `${i + 1}: no map`
            : scales[i] === undefined
              ? `${i + 1}: ${r.method}: a ${r.width}×${r.height} map does not fit this ${base?.width ?? "?"}×${base?.height ?? "?"} image`
              : `${i + 1}: ${r.method} of ${r.dir.split("/").slice(-1)[0]} (colour scale ${scales[i]!.toPrecision(3)} ${r.effectUnits})`,
        )
        .join("\n")
    : "";
}

/** The compared maps' canvases (ids view2, view3, …), one per map, made or removed as the maps change. */
function compareCanvases(): HTMLCanvasElement[] {
  const wrap = $("canvas-wrap");
  const have = [...wrap.querySelectorAll<HTMLCanvasElement>("canvas.compared")];
  for (const c of have.slice(compares.length)) c.remove();
  for (let i = have.length; i < compares.length; i++) {
    const c = Object.assign(document.createElement("canvas"), { id: `view${i + 2}`, className: "compared" });
    c.onmousemove = hover;
    c.onwheel = wheel;
    c.onmousedown = startPan;
    wrap.append(c);
  }
  return [...wrap.querySelectorAll<HTMLCanvasElement>("canvas.compared")];
}

/** Draws the image, prediction, `res`'s map, the RoI and the cursor into `c`; the map's colour scale, or undefined when no map fits. */
function drawInto(c: HTMLCanvasElement, res: Result | undefined): number | undefined {
  const w = base?.width ?? res?.width ?? 256;
  const h = base?.height ?? res?.height ?? 256;
  const z = zoom();
  if (c.width !== w * z || c.height !== h * z) {
    c.width = w * z;
    c.height = h * z;
  }
  const g = c.getContext("2d")!;
  g.imageSmoothingEnabled = false;
  g.fillStyle = "#30343a";
  g.fillRect(0, 0, c.width, c.height);
  // the zoomed window of a picture of any size that covers the model input
  const blit = (src: CanvasImageSource, sw: number, sh: number) =>
    g.drawImage(src, (view.col * sw) / w, (view.row * sh) / h, sw / view.scale, sh / view.scale, 0, 0, c.width, c.height);
  const zz = z * view.scale;
  const X = (col: number) => (col - view.col) * zz;
  const Y = (row: number) => (row - view.row) * zz;
  if (base) blit(base.image, base.image.naturalWidth, base.image.naturalHeight);
  if (base && ui.showPred.checked) blit(base.mask, base.mask.naturalWidth, base.mask.naturalHeight);
  let max: number | undefined;
  if (res && res.width === w && res.height === h) {
    const layer = layerOf(res);
    const values = layerValues(layer, res.map, res.stderr);
    max = currentScale(values, res);
    const opacity = Number(ui.opacity.value);
    const threshold = Number(ui.threshold.value) || 0;
    const off = new OffscreenCanvas(w, h);
    const data = new ImageData(w, h);
    for (let p = 0; p < w * h; p++) {
      if (Math.abs(values[p]) < threshold) continue;
      const [r, gr, b, t] = colourOf(layer, values[p], max);
      // Alpha follows |value| (square root, so mid values stay visible): a block near 0 leaves the image as it is.
      data.data.set([r, gr, b, Math.round(255 * opacity * Math.sqrt(t))], p * 4);
    }
    off.getContext("2d")!.putImageData(data, 0, 0);
    blit(off, w, h);
  }
  if (roi) {
    g.strokeStyle = "#ffeb3b";
    g.lineWidth = 2;
    g.strokeRect(X(roi.col) + 1, Y(roi.row) + 1, roi.width * zz - 2, roi.height * zz - 2);
  }
  if (roiMask && roiMask.length === w * h) {
    const off = new OffscreenCanvas(w, h);
    const data = new ImageData(w, h);
    roiMask.forEach((v, p) => v && data.data.set([255, 235, 59, 140], p * 4));
    off.getContext("2d")!.putImageData(data, 0, 0);
    blit(off, w, h);
  }
  // the same cursor on every map
  if (cursor && compares.length) {
    g.strokeStyle = "#ffffff";
    g.lineWidth = 1;
    g.strokeRect(X(cursor.col) + 0.5, Y(cursor.row) + 0.5, zz - 1, zz - 1);
  }
  return max;
}

function drawLegend(layer: Layer, max: number): void {
  drawBar(ui.legend, layer, max);
  const u = result?.effectUnits ?? "";
  const fmt = (v: number) => v.toPrecision(3);
  ui.legendText.textContent =
    layer === "signed"
      ? `${fmt(-max)} (red: supported the RoI) … 0 … ${fmt(max)} (blue: hurt) ${u}`
      : layer === "abs"
        ? `0 … ${fmt(max)} ${u} (|effect|)`
        : `0 … ${fmt(max)} ${u} (standard error)`;
}

function hoverText(e: MouseEvent): string {
  if (!result) return "";
  const at = pixelAt(e);
  return [result, ...compares]
    .filter((r) => r.width === result!.width && r.height === result!.height)
    .map((r) => `${compares.length ? `${r.method}: ` : ""}${unitText(r, at.row, at.col)}`)
    .join("\n");
}

function unitText(res: Result, row: number, col: number): string {
  const p = row * res.width + col;
  const u = res.units.find((x) => row >= x.row && row < x.row + x.height && col >= x.col && col < x.col + x.width);
  if (!u) return `pixel (${row}, ${col}): ${res.map[p].toPrecision(4)} ${res.effectUnits}`;
  const ci =
    u.ci95 === null
      ? "no interval (one draw or a deterministic fill)"
      : `95% interval [${(u.effect - u.ci95).toFixed(3)}, ${(u.effect + u.ci95).toFixed(3)}]`;
  return `${res.unitKind} at (${u.row}, ${u.col}), ${u.height}×${u.width}: ATE ${u.effect.toFixed(3)} ${res.effectUnits}, ${ci}, ${u.samples} draw${u.samples === 1 ? "" : "s"}${u.status ? ` · ${u.status}` : ""}`;
}

/** Which of the stage's views shows: a map over the image, a components result, or an evaluate report. */
function showView(which: "map" | "components" | "evaluate"): void {
  $("map-view").hidden = which !== "map";
  $("components-view").hidden = which !== "components";
  $("evaluate-view").hidden = which !== "evaluate";
  $("volume-view").hidden = true;
}

/** An evaluate folder: the report.html it wrote (tables, curves), sandboxed, and the commands that wrote it. */
function showEvaluate(e: { dir: string; commands: string[] }): void {
  showView("evaluate");
  api<EvaluateData>(`/api/evaluate?dir=${encodeURIComponent(e.dir)}`)
    .then((d) =>
      showEvaluateData(d, {
        dir: e.dir,
        get: api,
        imageUrl: (path) => `/api/image?path=${encodeURIComponent(path)}&token=${encodeURIComponent(token)}`,
      }),
    )
    .catch((err: Error) => say(err.message, true));
  $("eval-title").textContent = `evaluate report of ${e.dir}`;
  $<HTMLIFrameElement>("report").src = `/api/report?dir=${encodeURIComponent(e.dir)}&token=${encodeURIComponent(token)}`;
  ui.command.textContent = e.commands.join("\n") || `(opened ${e.dir})`;
  ui.notes.replaceChildren();
  say(`evaluate report ${e.dir.split("/").slice(-1)[0]}`);
  document.body.dataset.evaluate = "1";
}

/** A components result: its ranked effects as a table (1.96 SE intervals, as its bar chart) and the pictures segcause drew. */
function showComponents(c: ComponentsFolder): void {
  showView("components");
  $("comp-title").textContent =
    `${c.level} components, ${c.ablation} ablation: ATE on the RoI's ${c.outcome} (${c.valueUnits}), base ${c.baseOutcome.toFixed(2)}`;
  const cell = (text: string, cls = "") => Object.assign(document.createElement("td"), { textContent: text, className: cls });
  $("comp-table")
    .querySelector("tbody")!
    .replaceChildren(
      ...c.units.map((u) => {
        const tr = document.createElement("tr");
        const ci = u.stderr === null ? "–" : `[${(u.effect - 1.96 * u.stderr).toFixed(2)}, ${(u.effect + 1.96 * u.stderr).toFixed(2)}]`;
        tr.append(
          cell(String(u.rank)),
          cell(u.name),
          cell(u.effect.toFixed(2), u.effect < 0 ? "support" : u.effect > 0 ? "hurt" : ""),
          cell(ci),
          cell(String(u.samples)),
          cell(u.status),
        );
        return tr;
      }),
    );
  drawBars($<HTMLCanvasElement>("comp-bars"), c.units, c.valueUnits);
  const imageUrl = (path: string) => `/api/image?path=${encodeURIComponent(path)}&token=${encodeURIComponent(token)}`;
  $("comp-spatial").replaceChildren();
  drawSpatial($("comp-spatial"), c, imageUrl, Number(ui.opacity.value)).catch((err: Error) => say(err.message, true));
  // the spatial maps are drawn over the image above; the other pictures as segcause drew them
  $("comp-pictures").replaceChildren(
    ...c.pictures
      .filter((f) => !c.spatial.includes(f))
      .map((f) =>
        Object.assign(document.createElement("img"), {
          src: `/api/image?path=${encodeURIComponent(`${c.dir}/${f}`)}&token=${encodeURIComponent(token)}`,
          alt: f,
          title: f,
        }),
      ),
  );
  ui.command.textContent = `(opened ${c.dir}; its manifest.json records how it was made)`;
  ui.notes.replaceChildren(...c.notes.map((n) => Object.assign(document.createElement("div"), { textContent: `note: ${n}` })));
  const name = c.dir.split("/").slice(-1)[0];
  $("comp-save-bars").onclick = () =>
    void saveFigure({
      title: `segcause components ${name}: ${$("comp-title").textContent}`,
      panels: [{ canvas: $<HTMLCanvasElement>("comp-bars") }],
      legend: [
        `the ${Math.min(40, c.units.length)} largest |ATE| of ${c.units.length} units; red: supports the RoI's outcome (ATE < 0), blue: hurts it; whiskers: 95% interval (±1.96 SE)`,
      ],
      file: `segcause-components-${name}-chart`,
      source: c.dir,
    });
  $("comp-save-spatial").hidden = c.spatial.length === 0;
  $("comp-save-spatial").onclick = () =>
    void saveFigure({
      title: `segcause components ${name}: spatial maps (${c.ablation} ablation, ATE on the RoI's ${c.outcome}, ${c.valueUnits})`,
      panels: [...$("comp-spatial").querySelectorAll("canvas")].map((canvas) => ({ canvas, caption: canvas.dataset.spatial })),
      legend: [
        `each tensor's map of cell effects in the colours segcause components drew${c.match.image ? `, over the image it was made from at opacity ${ui.opacity.value}` : " (its image is not listed)"}`,
      ],
      file: `segcause-components-${name}-spatial`,
      source: c.dir,
    });
  say(`components result ${name}`);
  document.body.dataset.components = c.level;
}

interface ExplainPayload {
  dir: string;
  method: string;
  width: number;
  height: number;
  map: string;
  stderr: string;
  mapInfo: { units: Unit[]; unitKind: string; effectUnits: string; colourScaleMaxAbs: number; roi: Rect; signed: boolean };
  manifest: { notes: string[] };
  match: { model?: string; image?: string };
}

function toResult(r: ExplainPayload): Result {
  const floats = (b64: string) => new Float32Array(Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0)).buffer);
  return {
    dir: r.dir,
    method: r.method,
    width: r.width,
    height: r.height,
    map: floats(r.map),
    stderr: floats(r.stderr),
    units: r.mapInfo.units,
    unitKind: r.mapInfo.unitKind,
    effectUnits: r.mapInfo.effectUnits,
    scaleMax: r.mapInfo.colourScaleMaxAbs,
    signed: r.mapInfo.signed,
    notes: r.manifest.notes,
    modelPath: r.match.model,
    imagePath: r.match.image,
  };
}

/** The maps beside the first (same image, RoI, layer, opacity and zoom; each its own colour scale unless fixed), in this order. */
async function setCompares(dirs: string[]): Promise<void> {
  compareDirs = dirs;
  const asked = ++compareAsked;
  const got = await Promise.all(
    dirs.map((dir) =>
      api<ExplainPayload>(`/api/result?dir=${encodeURIComponent(dir)}`)
        .then(toResult)
        .catch((e: Error) => say(e.message, true)),
    ),
  );
  if (asked !== compareAsked) return; // a later choice is on its way
  compares = got.filter((r): r is Result => r !== undefined);
  for (const o of ui.compare.options) o.selected = dirs.includes(o.value);
  document.body.dataset.compare = compares.map((c) => c.method).join(",");
  draw();
}

async function openResult(dir: string, command?: string): Promise<void> {
  try {
    const any = await api<{ kind: string }>(`/api/result?dir=${encodeURIComponent(dir)}`);
    if (any.kind === "components") return showComponents(any as ComponentsFolder);
    if (any.kind === "evaluate") return showEvaluate(any as unknown as { dir: string; commands: string[] });
    showView("map");
    const r = any as unknown as ExplainPayload;
    result = toResult(r);
    ui.command.textContent = command ?? `(opened ${dir}; its manifest.json records how it was made)`;
    ui.notes.replaceChildren(...result.notes.map((n) => Object.assign(document.createElement("div"), { textContent: `note: ${n}` })));
    roi = r.mapInfo.roi;
    roiMask = undefined;
    updateRoi();
    // The map goes over the image it explains (with its model's prediction) when the server lists them, else over gray.
    const m = state?.models.find((x) => x.path === result!.modelPath);
    const i = state?.images.find((x) => x.path === result!.imagePath);
    if (m && i) {
      if (!base || ui.model.value !== m.path || ui.image.value !== i.path) {
        ui.model.value = m.path;
        ui.image.value = i.path;
        await showPrediction();
      }
    } else base = undefined;
    say(`${r.method} map of ${dir.split("/").slice(-1)[0]}`);
    document.body.dataset.map = r.method;
  } catch (e) {
    say((e as Error).message, true);
  }
  draw();
}

function etaText(s?: RunStatus): string {
  return s?.etaMs === undefined ? "" : ` · ETA ${Math.floor(s.etaMs / 60000)}:${String(Math.round((s.etaMs % 60000) / 1000)).padStart(2, "0")}`;
}

function runText(info: RunInfo, s?: RunStatus): string {
  if (info.state === "running" && s) {
    const total = s.total ?? s.bound;
    return `${info.method}: ${s.label} ${s.done}/${total ?? "?"} passes${total !== undefined ? ` (${total - s.done} left)` : ""}${etaText(s)}`;
  }
  return `${info.method}: ${info.state}${info.message ? ` — ${info.message}` : ""}`;
}

function renderRun(id: string): void {
  const r = runs.get(id)!;
  const s = r.status;
  const total = s?.total ?? s?.bound;
  const frac = r.info.state === "done" ? 1 : s && total ? s.done / total : 0;
  r.li.replaceChildren(document.createTextNode(runText(r.info, s)));
  const bar = document.createElement("div");
  bar.className = "bar";
  const inner = document.createElement("div");
  inner.style.width = `${Math.round(frac * 100)}%`;
  bar.append(inner);
  r.li.append(bar);
  r.li.className = r.info.state === "failed" ? "error" : "";
  ui.stop.disabled = ![...runs.values()].some((x) => x.info.state === "queued" || x.info.state === "running");
}

/** Shows a run in the list and follows its events; `openWhenDone`: draw its map when it ends (not for runs already over on a reload). */
function follow(info: RunInfo, openWhenDone = true): void {
  if (runs.has(info.id)) return;
  const li = document.createElement("li");
  li.title = info.out;
  li.onclick = () => {
    ui.command.textContent = info.command;
    if (runs.get(info.id)?.info.state === "done") {
      live = "user";
      void openResult(info.out, info.command);
    }
  };
  ui.runs.prepend(li);
  runs.set(info.id, { info, li });
  commands.set(info.out, info.command);
  renderRun(info.id);
  const es = new EventSource(`/api/runs/${info.id}/events?token=${encodeURIComponent(token)}`);
  es.addEventListener("progress", (ev) => {
    runs.get(info.id)!.status = JSON.parse((ev as MessageEvent).data).status;
    renderRun(info.id);
    if (live === info.id && livePasses !== undefined) sayPartial(info);
  });
  es.addEventListener("partial", (ev) => {
    // One run fills in the stage at a time, and not over a result the user opened meanwhile.
    if (live !== undefined && live !== info.id) return;
    live = info.id;
    showPartial(info, JSON.parse((ev as MessageEvent).data).map as PartialView);
  });
  es.addEventListener("state", (ev) => {
    const e = JSON.parse((ev as MessageEvent).data) as { state: RunInfo["state"]; message?: string };
    const r = runs.get(info.id)!;
    r.info = { ...r.info, state: e.state, message: e.message };
    renderRun(info.id);
    if (live === info.id && e.state !== "running" && e.state !== "queued") {
      live = undefined;
      livePasses = undefined;
    }
    if (e.state === "done" || e.state === "failed" || e.state === "stopped") es.close();
    if (e.state === "done" && openWhenDone) {
      // runs started together: the first done is drawn, each other one beside it as it finishes
      if (batch?.ids.has(info.id) && batch.main !== undefined) void refreshState().then(() => setCompares([...compareDirs, info.out]));
      else {
        if (batch?.ids.has(info.id)) batch.main = info.id;
        ui.command.textContent = info.command;
        void openResult(info.out, info.command).then(refreshState);
      }
    }
    if (e.state === "failed" && openWhenDone) say(`${info.method} failed: ${e.message ?? ""}`, true);
  });
}

/** A run's map so far, drawn as a result (its blocks' estimates painted; standard errors as they stand). */
function showPartial(info: RunInfo, p: PartialView): void {
  if (base && (base.width !== p.width || base.height !== p.height)) return;
  const map = new Float32Array(p.width * p.height);
  const stderr = new Float32Array(p.width * p.height).fill(Number.NaN);
  let scaleMax = 0;
  for (const u of p.units) {
    for (let y = u.row; y < u.row + u.height; y++) {
      map.fill(u.effect, y * p.width + u.col, y * p.width + u.col + u.width);
      stderr.fill(u.stderr ?? Number.NaN, y * p.width + u.col, y * p.width + u.col + u.width);
    }
    scaleMax = Math.max(scaleMax, Math.abs(u.effect));
  }
  showView("map");
  result = {
    dir: info.out,
    method: info.method,
    width: p.width,
    height: p.height,
    map,
    stderr,
    units: p.units,
    unitKind: "block",
    effectUnits: p.valueUnits,
    // the written pictures' rule (largest |value| outside the RoI): the blocks are all outside it
    scaleMax: scaleMax || 1e-12,
    signed: true,
    notes: [],
  };
  draw();
  livePasses = p.passes;
  sayPartial(info);
  document.body.dataset.partial = String(++partialsDrawn);
}

/** The filling map's line: its passes, and the run's passes left and ETA as its progress last said (updated with it). */
function sayPartial(info: RunInfo): void {
  const s = runs.get(info.id)?.status;
  const total = s?.total ?? s?.bound;
  const left = s && total !== undefined ? `; the run: ${Math.max(0, total - s.done)} passes left${etaText(s)}` : "";
  say(`${info.method}: the map after ${livePasses} passes${left}; it fills in as the rounds finish`);
}

async function startRuns(): Promise<void> {
  if (!(roi || roiMask) || !base) return;
  const chosen = chosenMethods();
  if (chosen.length === 0) return say("choose at least one method", true);
  // a preview on its way would overwrite the runs' commands
  clearTimeout(previewTimer);
  previewAsked++;
  live = undefined;
  batch = { ids: new Set() };
  await setCompares([]);
  for (const method of chosen) {
    try {
      const info = await api<RunInfo>("/api/runs", { method: "POST", body: JSON.stringify(runRequest(method)) });
      ui.command.textContent = info.command;
      batch.ids.add(info.id);
      follow(info);
    } catch (e) {
      say(`${method}: ${(e as Error).message}`, true);
    }
  }
}

async function upload(file: File): Promise<void> {
  say(`uploading ${file.name}…`);
  try {
    const r = await api<Named>(`/api/upload?name=${encodeURIComponent(file.name)}`, { method: "POST", body: file });
    await refreshState();
    ui.image.value = r.path;
    await showPrediction();
  } catch (e) {
    say((e as Error).message, true);
  }
}

/** The cursor's pixel on any map: read out for every map, outlined on every map. */
function hover(e: MouseEvent): void {
  if (pan) return;
  ui.hover.textContent = hoverText(e);
  if (compares.length) {
    cursor = pixelAt(e);
    draw();
  }
}

function wheel(e: WheelEvent): void {
  if (!base && !result) return;
  e.preventDefault();
  zoomAt(e.deltaY < 0 ? 1.25 : 1 / 1.25, pixelAt(e), base?.width ?? result!.width, base?.height ?? result!.height);
  draw();
}

function startPan(e: MouseEvent): void {
  pan = { x: e.clientX, y: e.clientY, row: view.row, col: view.col, c: e.currentTarget as HTMLCanvasElement };
}

/** Drags the zoomed window with the mouse (every map together), kept inside the image. */
function panTo(e: MouseEvent): void {
  if (!pan) return;
  const w = base?.width ?? result?.width ?? 1;
  const h = base?.height ?? result?.height ?? 1;
  const r = pan.c.getBoundingClientRect();
  const clamp = (v: number, extent: number) => Math.min(extent - extent / view.scale, Math.max(0, v));
  view.col = clamp(pan.col - ((e.clientX - pan.x) / r.width) * (w / view.scale), w);
  view.row = clamp(pan.row - ((e.clientY - pan.y) / r.height) * (h / view.scale), h);
  draw();
}

/** Save PNG of the map view: every map side by side, each with its method and colour scale, under the model, image and RoI. */
function saveMaps(): void {
  // the maps without the cursor's outline
  cursor = undefined;
  draw();
  const shown = [result, ...compares];
  const names = (sel: HTMLSelectElement) => sel.selectedOptions[0]?.text ?? "";
  const methods = shown.flatMap((r) => (r ? [r.method] : []));
  void saveFigure({
    title: `segcause · ${base ? `model ${names(ui.model)} · image ${names(ui.image)}` : "over gray (its image is not listed)"} · ${ui.roiText.textContent} · ${ui.layer.selectedOptions[0].text}`,
    panels: [ui.canvas, ...compareCanvases()].map((canvas, i) => {
      const r = shown[i];
      const s = scales[i];
      return {
        canvas,
        caption: !r
          ? "no map"
          : s === undefined
            ? `${r.method} (does not fit this image)`
            : `${r.method} · colour scale ${s.toPrecision(3)} ${r.effectUnits}`,
      };
    }),
    bar: result ? ui.legend : undefined,
    legend: result
      ? [
          ui.legendText.textContent ?? "",
          `yellow: the RoI${compares.length ? "; each map at its own colour scale (above it) unless the scale is fixed" : ""}`,
        ]
      : [],
    file: `segcause-${base ? names(ui.model).replace(/\.onnx$/, "") : "map"}-${methods.join("+") || "image"}-${roi ? `roi${roi.row},${roi.col},${roi.height},${roi.width}` : roiMask ? "roi-mask" : "no-roi"}`,
    source: shown.flatMap((r) => (r ? [commands.get(r.dir) ?? `results folder ${r.dir}`] : [])).join("\n") || undefined,
  });
}

function wire(): void {
  ui.model.onchange = () => void showPrediction();
  ui.image.onchange = () => void showPrediction();
  for (const el of [ui.showPred, ui.layer, ui.opacity, ui.scaleMax, ui.threshold]) el.oninput = draw;
  ui.scale.onchange = () => {
    ui.scaleMax.hidden = ui.scale.value !== "fixed";
    draw();
  };
  ui.canvas.onmousedown = (e) => {
    if (ui.roiTool.value === "pan") return startPan(e);
    if (!base) return;
    const at = pixelAt(e);
    if (ui.roiTool.value === "component") {
      const c = componentAt(at);
      if (!c) return say("no predicted structure there: click inside the prediction (show it with the box in 1)", true);
      roi = undefined;
      roiMask = c;
    } else if (ui.roiTool.value === "brush") {
      drag = at;
      brushAt(at, e.shiftKey);
    } else {
      drag = at;
      roiMask = undefined;
      roi = rectFrom(drag, drag);
    }
    updateRoi();
    draw();
  };
  ui.canvas.onmousemove = (e) => {
    if (drag) {
      if (ui.roiTool.value === "brush") brushAt(pixelAt(e), e.shiftKey);
      else roi = rectFrom(drag, pixelAt(e));
      updateRoi();
      draw();
    } else hover(e);
  };
  ui.canvas.onwheel = wheel;
  window.addEventListener("mousemove", panTo);
  $("zoom-reset").onclick = () => {
    Object.assign(view, { scale: 1, row: 0, col: 0 });
    draw();
  };
  ui.roiTool.onchange = () => {
    $("brush-row").hidden = ui.roiTool.value !== "brush";
  };
  // the maps stay in the order they were picked in
  ui.compare.onchange = () => {
    const picked = [...ui.compare.selectedOptions].map((o) => o.value);
    void setCompares([...compareDirs.filter((d) => picked.includes(d)), ...picked.filter((d) => !compareDirs.includes(d))]);
  };
  window.addEventListener("mouseup", (e) => {
    pan = undefined;
    if (!drag) return;
    if (ui.roiTool.value === "rect") roi = rectFrom(drag, pixelAt(e));
    drag = undefined;
    updateRoi();
    draw();
  });
  ui.run.onclick = () => void startRuns();
  ui.save.onclick = saveMaps;
  ui.seed.oninput = schedulePreview;
  ui.stop.onclick = async () => {
    for (const r of runs.values())
      if (r.info.state === "queued" || r.info.state === "running") await api(`/api/runs/${r.info.id}/stop`, { method: "POST" }).catch(() => {});
  };
  ui.drop.ondragover = (e) => {
    e.preventDefault();
    ui.drop.classList.add("over");
  };
  ui.drop.ondragleave = () => ui.drop.classList.remove("over");
  ui.drop.ondrop = (e) => {
    e.preventDefault();
    ui.drop.classList.remove("over");
    const f = e.dataTransfer?.files[0];
    if (f) void upload(f);
  };
}

async function start(): Promise<void> {
  wire();
  try {
    await refreshState();
  } catch (e) {
    return say((e as Error).message, true);
  }
  renderMethods();
  say(`runs write to ${state!.runsFolder}`);
  // After a reload: the server's runs (running ones can be followed and stopped again), oldest first as the list prepends.
  for (const info of state!.runs) follow(info, info.state === "queued" || info.state === "running");
  await showPrediction();
  // NiiVue is a chunk of its own, fetched only when there are volumes: the 2D page stays small.
  if (state!.volumes.length && state!.volumeModels.length) {
    const { startVolumes } = await import("./volume.js");
    await startVolumes({ token, models: state!.volumeModels, volumes: state!.volumes, api, say, fill: (s, items) => fill(s, items) }).catch(
      (e: Error) => say(`volumes: ${e.message}`, true),
    );
  }
  document.body.dataset.ready = "1";
}

void start();
