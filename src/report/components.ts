/** Writers for component effects: ranked JSON and CSV, a bar chart in network order, a depth profile. */
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { encodePng } from "../data/image.js";
import type { ComponentEffects, ComponentParts } from "../explain/components.js";
import type { Region } from "../target/roi.js";
import { writeManifest, writeStaged } from "../util/atomic.js";
import { esc } from "../util/xml.js";
import { svgToPng } from "./charts.js";
import { heatRgb } from "./colormap.js";
import { unitEvidence } from "./counts.js";

/** What the writers read of a components result, on images or volumes. */
export type ComponentReport = ComponentParts & {
  outcome: string;
  baseOutcome: number;
  notes: string[];
  forwardPasses: number;
  wallMs: number;
  provenance: unknown;
};

function ranked(e: ComponentReport) {
  return [...e.units].sort((a, b) => Math.abs(b.effect) - Math.abs(a.effect) || a.order - b.order);
}

/** Horizontal bars, one per component in network order; red = supports the RoI (ATE < 0). */
export function componentBarsSvg(e: ComponentReport, title: string): string {
  const rowH = 18,
    left = 260,
    width = 420,
    top = 60;
  const H = top + e.units.length * rowH + 40;
  const W = left + width + 140;
  const max = Math.max(1e-9, ...e.units.map((u) => Math.abs(u.effect) + (Number.isFinite(u.stderr) ? 1.96 * u.stderr : 0)));
  const mid = left + width / 2;
  const sc = width / 2 / max;
  const p: string[] = [`<rect width="${W}" height="${H}" fill="white"/>`];
  p.push(`<text x="16" y="24" font-family="DejaVu Sans, sans-serif" font-size="15" font-weight="bold">${esc(title)}</text>`);
  p.push(
    `<text x="16" y="44" font-family="DejaVu Sans, sans-serif" font-size="11" fill="#444">ATE on RoI ${esc(e.outcome)} (× 100) · ${e.ablation} ablation · base ${e.baseOutcome.toFixed(2)}${e.ablation === "resample" ? " · bars ±1.96 SE" : " (deterministic: no error bars)"}</text>`,
  );
  p.push(`<line x1="${mid}" y1="${top - 4}" x2="${mid}" y2="${top + e.units.length * rowH}" stroke="#888"/>`);
  e.units.forEach((u, i) => {
    const y = top + i * rowH;
    const w = Math.abs(u.effect) * sc;
    const x = u.effect < 0 ? mid - w : mid;
    p.push(
      `<text x="${left - 8}" y="${y + 13}" text-anchor="end" font-family="DejaVu Sans Mono, monospace" font-size="11">${esc(u.name.slice(-34))}</text>`,
    );
    p.push(
      `<rect x="${x.toFixed(1)}" y="${y + 3}" width="${w.toFixed(1)}" height="${rowH - 6}" fill="${u.effect < 0 ? "#d62728" : u.effect > 0 ? "#1f5fbf" : "#bbb"}"/>`,
    );
    if (Number.isFinite(u.stderr) && u.effect !== 0) {
      const c = mid + u.effect * sc,
        h = 1.96 * u.stderr * sc;
      p.push(`<line x1="${(c - h).toFixed(1)}" y1="${y + rowH / 2}" x2="${(c + h).toFixed(1)}" y2="${y + rowH / 2}" stroke="black"/>`);
    }
    p.push(`<text x="${left + width + 8}" y="${y + 13}" font-family="DejaVu Sans, sans-serif" font-size="11">${u.effect.toFixed(2)}</text>`);
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}">${p.join("")}</svg>`;
}

/** |ATE| against position in the network (first node index), a line over the components. */
export function depthProfileSvg(e: ComponentReport, title: string): string {
  const W = 720,
    H = 320,
    l = 60,
    r = 20,
    t = 50,
    b = 50;
  const xs = e.units.map((u) => u.order);
  const minX = Math.min(...xs),
    maxX = Math.max(...xs, minX + 1);
  const maxY = Math.max(1e-9, ...e.units.map((u) => Math.abs(u.effect)));
  const px = (x: number) => l + ((x - minX) / (maxX - minX)) * (W - l - r);
  const py = (y: number) => H - b - (y / maxY) * (H - t - b);
  const pts = e.units.map((u) => `${px(u.order).toFixed(1)},${py(Math.abs(u.effect)).toFixed(1)}`).join(" ");
  const p = [`<rect width="${W}" height="${H}" fill="white"/>`];
  p.push(`<text x="16" y="24" font-family="DejaVu Sans, sans-serif" font-size="15" font-weight="bold">${esc(title)}</text>`);
  p.push(
    `<line x1="${l}" y1="${H - b}" x2="${W - r}" y2="${H - b}" stroke="black"/><line x1="${l}" y1="${t}" x2="${l}" y2="${H - b}" stroke="black"/>`,
  );
  p.push(
    `<text x="${(W / 2).toFixed(0)}" y="${H - 15}" text-anchor="middle" font-family="DejaVu Sans, sans-serif" font-size="11">position in the network (input → output)</text>`,
  );
  p.push(`<text x="14" y="${t - 8}" font-family="DejaVu Sans, sans-serif" font-size="11">|ATE| (max ${maxY.toFixed(2)})</text>`);
  p.push(`<polyline points="${pts}" fill="none" stroke="#1f5fbf" stroke-width="2"/>`);
  for (const u of e.units)
    p.push(`<circle cx="${px(u.order).toFixed(1)}" cy="${py(Math.abs(u.effect)).toFixed(1)}" r="3" fill="${u.effect < 0 ? "#d62728" : "#1f5fbf"}"/>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}">${p.join("")}</svg>`;
}

function csvCell(v: unknown): string {
  const s = v === null || v === undefined || (typeof v === "number" && Number.isNaN(v)) ? "" : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** Effects of spatial cells of one tensor, painted on the feature grid and upsampled to the image. */
function spatialHeat(e: ComponentEffects, tensor: string, height: number, width: number, roi: Region): Uint8Array {
  const [, H, W] = e.tensorDims[tensor];
  const grid = new Float32Array(H * W);
  for (const u of e.units) {
    const s = u.selection;
    if (!s || s.tensor !== tensor) continue;
    for (let r = s.rows[0]; r < s.rows[1]; r++) grid.fill(u.effect, r * W + s.cols[0], r * W + s.cols[1]);
  }
  const map = new Float32Array(height * width);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) map[y * width + x] = grid[Math.floor((y * H) / height) * W + Math.floor((x * W) / width)];
  return heatRgb(map, height, width, roi);
}

/** The base activation maps of the top channels, each min-max scaled, in a row. */
async function topChannelsPng(e: ComponentReport, k = 8): Promise<Buffer | undefined> {
  const act = e.activations;
  // a row of 2D maps: a volume's [C, D, H, W] channels have no one plane to show
  if (act?.dims.length !== 3) return undefined;
  const [, H, W] = act.dims;
  const top = ranked(e).slice(0, k);
  const scale = Math.max(1, Math.floor(128 / Math.max(H, W)));
  const tw = W * scale,
    th = H * scale,
    gap = 4;
  const out = new Uint8Array((tw + gap) * top.length * th * 3).fill(255);
  const rowLen = (tw + gap) * top.length;
  top.forEach((u, i) => {
    const c = u.selection!.channels[0];
    const plane = act.data.subarray(c * H * W, (c + 1) * H * W);
    let lo = Infinity,
      hi = -Infinity;
    for (const v of plane) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    for (let y = 0; y < th; y++) {
      for (let x = 0; x < tw; x++) {
        const v = Math.round((255 * (plane[Math.floor(y / scale) * W + Math.floor(x / scale)] - lo)) / (hi - lo || 1));
        out.fill(v, (y * rowLen + i * (tw + gap) + x) * 3, (y * rowLen + i * (tw + gap) + x) * 3 + 3);
      }
    }
  });
  return encodePng({ width: rowLen, height: th, channels: 3, data: out });
}

/** The spatial level's maps of a 2D result: each tensor's cell effects painted over the image, as PNG. */
export async function spatialPngs(e: ComponentEffects): Promise<Record<string, Buffer>> {
  const { region } = e;
  const files: Record<string, Buffer> = {};
  for (const [i, t] of Object.keys(e.tensorDims).entries())
    files[spatialName(i, t, "png")] = await encodePng({
      width: region.imageWidth,
      height: region.imageHeight,
      channels: 3,
      data: spatialHeat(e, t, region.imageHeight, region.imageWidth, region),
    });
  return files;
}

/** The file of tensor `t`'s spatial map (the i-th tensor). */
export function spatialName(i: number, t: string, ext: string): string {
  return `spatial-${i}-${t.replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^_+/, "")}.${ext}`;
}

/** Writes the result; at the spatial level `spatial` holds the maps (spatialPngs on images, NIfTI on volumes). */
export async function writeComponentEffects(e: ComponentReport, dir: string, title: string, spatial: Record<string, Buffer> = {}): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  await rm(join(dir, "manifest.json"), { force: true });
  const rows = ranked(e);
  const ev = unitEvidence(e.units);
  const evOf = new Map(e.units.map((u, i) => [u, ev.perUnit[i]]));
  const header = ["rank", "unit", "network_order", "effect", "raw_effect", "stderr", "samples", "status", "tensors", "channels", "rows", "cols"];
  const sel = (u: (typeof rows)[number], k: "channels" | "rows" | "cols") => (u.selection ? u.selection[k].join(":") : "");
  const csv = [
    header.join(","),
    ...rows.map((u, i) =>
      [
        i + 1,
        u.name,
        u.order,
        u.effect,
        u.rawEffect,
        u.stderr,
        u.samples,
        u.status,
        u.outputs.join(" "),
        sel(u, "channels"),
        sel(u, "rows"),
        sel(u, "cols"),
      ]
        .map(csvCell)
        .join(","),
    ),
  ].join("\n");
  const files: Record<string, string | Buffer> = {
    "components.json": JSON.stringify(
      {
        ...e,
        evidence: ev.counts,
        units: rows.map((u, i) => ({ rank: i + 1, ...u, stderr: Number.isNaN(u.stderr) ? null : u.stderr, ...evOf.get(u) })),
        activations: undefined,
        provenance: undefined,
        region: undefined,
      },
      null,
      1,
    ),
    "components.csv": `${csv}\n`,
  };
  if (e.level === "spatial") Object.assign(files, spatial);
  else {
    files["components.png"] = await svgToPng(componentBarsSvg(e, title));
    if (e.level !== "channel") files["depth-profile.png"] = await svgToPng(depthProfileSvg(e, title));
    const top = await topChannelsPng(e);
    if (top) files["top-channels.png"] = top;
  }
  // Every file complete first, the manifest last: a folder with a manifest is a complete result.
  await writeStaged(dir, files);
  await writeManifest(
    dir,
    JSON.stringify(
      {
        format: "segcause.components/1",
        files: Object.keys(files),
        notes: e.notes,
        skipped: e.skipped,
        forwardPasses: e.forwardPasses,
        wallMs: e.wallMs,
        provenance: e.provenance,
      },
      null,
      2,
    ),
  );
  return [...Object.keys(files), "manifest.json"];
}
