/** Small SVG charts (line charts, box/strip plots, stacked bars) rasterised with the project's svgToPng. */
/**
 * Colours far apart from each other on white (after Trubetskoy's 20 distinct colours), so that the
 * benchmark's 15 methods stay apart in one chart (more methods reuse them in order).
 */
export const PALETTE = [
  "#e6194b",
  "#3cb44b",
  "#4363d8",
  "#f58231",
  "#911eb4",
  "#42d4f4",
  "#f032e6",
  "#9a6324",
  "#469990",
  "#800000",
  "#808000",
  "#000075",
  "#000000",
  "#bfef45",
  "#a9a9a9",
];
const FONT = `font-family="DejaVu Sans, sans-serif"`;

import { esc } from "../util/xml.js";

export function colourOf(method: string, methods: readonly string[]): string {
  if (method === "random") return "#555555";
  if (method === "distance") return "#a0a0a0"; // the other control: grey as well, lighter
  if (method === "pdcr") return PALETTE[0]; // the method the project is about: always red
  const i = methods.filter((m) => m !== "random" && m !== "distance" && m !== "pdcr").indexOf(method);
  return PALETTE[1 + (Math.max(i, 0) % (PALETTE.length - 1))];
}

function niceTicks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) return [lo];
  const step0 = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= step0) ?? step0;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9 * step; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

export interface Series {
  label: string;
  colour: string;
  dashed?: boolean;
  /** drawn thicker (the method a chart is about, e.g. PdCR) */
  bold?: boolean;
  /** y at x = k/(n−1), or at `xs` when given */
  ys: number[];
  xs?: number[];
}

export interface Panel {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  yRange?: [number, number];
  /** x axis range (default [0, 1]) */
  xRange?: [number, number];
}

function panelSvg(p: Panel, x0: number, y0: number, w: number, h: number): string {
  const parts: string[] = [];
  const L = x0 + 55,
    R = x0 + w - 10,
    T = y0 + 28,
    B = y0 + h - 40;
  const all = p.series.flatMap((s) => s.ys).filter(Number.isFinite);
  let [lo, hi] = p.yRange ?? [Math.min(0, ...all), Math.max(1, ...all)];
  if (!(hi > lo)) hi = lo + 1;
  const [xlo, xhi] = p.xRange ?? [0, 1];
  const sx = (f: number) => L + ((f - xlo) / (xhi - xlo)) * (R - L),
    sy = (v: number) => B - ((v - lo) / (hi - lo)) * (B - T);
  parts.push(`<text x="${x0 + w / 2}" y="${y0 + 16}" text-anchor="middle" ${FONT} font-size="13" font-weight="bold">${esc(p.title)}</text>`);
  for (const t of niceTicks(lo, hi)) {
    parts.push(`<line x1="${L}" x2="${R}" y1="${sy(t).toFixed(1)}" y2="${sy(t).toFixed(1)}" stroke="#e6e6e6"/>`);
    parts.push(`<text x="${L - 5}" y="${(sy(t) + 4).toFixed(1)}" text-anchor="end" ${FONT} font-size="10">${t}</text>`);
  }
  for (const t of p.xRange ? niceTicks(xlo, xhi) : [0, 0.25, 0.5, 0.75, 1])
    parts.push(`<text x="${sx(t).toFixed(1)}" y="${B + 14}" text-anchor="middle" ${FONT} font-size="10">${t}</text>`);
  parts.push(`<rect x="${L}" y="${T}" width="${R - L}" height="${B - T}" fill="none" stroke="#333"/>`);
  parts.push(`<text x="${(L + R) / 2}" y="${B + 30}" text-anchor="middle" ${FONT} font-size="11">${esc(p.xLabel)}</text>`);
  parts.push(
    `<text transform="translate(${x0 + 14},${(T + B) / 2}) rotate(-90)" text-anchor="middle" ${FONT} font-size="11">${esc(p.yLabel)}</text>`,
  );
  for (const s of p.series) {
    const n = s.ys.length;
    const pts = s.ys
      .map((v, k) =>
        Number.isFinite(v) ? `${sx(s.xs ? s.xs[k] : n > 1 ? k / (n - 1) : 0).toFixed(1)},${sy(Math.max(lo, Math.min(hi, v))).toFixed(1)}` : "",
      )
      .filter(Boolean);
    if (pts.length)
      parts.push(
        `<polyline points="${pts.join(" ")}" fill="none" stroke="${s.colour}" stroke-width="${s.bold ? 3.5 : 2}"${s.dashed ? ` stroke-dasharray="6,4"` : ""}/>`,
      );
    if (s.xs)
      for (const pt of pts) {
        const [x, y] = pt.split(",");
        parts.push(`<circle cx="${x}" cy="${y}" r="3" fill="${s.colour}"/>`);
      }
  }
  return parts.join("");
}

function legendSvg(
  items: { label: string; colour: string; dashed?: boolean }[],
  x: number,
  y: number,
  width: number,
): { svg: string; height: number } {
  const parts: string[] = [];
  let cx = x,
    cy = y;
  for (const it of items) {
    const w = 40 + it.label.length * 7;
    if (cx + w > x + width) {
      cx = x;
      cy += 18;
    }
    parts.push(
      `<line x1="${cx}" x2="${cx + 24}" y1="${cy}" y2="${cy}" stroke="${it.colour}" stroke-width="3"${it.dashed ? ` stroke-dasharray="6,4"` : ""}/>`,
    );
    parts.push(`<text x="${cx + 30}" y="${cy + 4}" ${FONT} font-size="11">${esc(it.label)}</text>`);
    cx += w;
  }
  return { svg: parts.join(""), height: cy - y + 18 };
}

/** Panels side by side with a shared legend and title. */
export function panelsSvg(title: string, panels: Panel[], subtitle = ""): string {
  const pw = 420,
    ph = 300,
    W = pw * panels.length + 20;
  const legendItems = [...new Map(panels.flatMap((p) => p.series).map((s) => [s.label, s])).values()];
  const leg = legendSvg(legendItems, 20, subtitle ? 62 : 46, W - 40);
  const top = (subtitle ? 62 : 46) + leg.height;
  const H = top + ph + 10;
  const parts = [
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="20" y="24" ${FONT} font-size="16" font-weight="bold">${esc(title)}</text>`,
  ];
  if (subtitle) parts.push(`<text x="20" y="44" ${FONT} font-size="11" fill="#444">${esc(subtitle)}</text>`);
  parts.push(leg.svg);
  panels.forEach((p, i) => parts.push(panelSvg(p, 10 + i * pw, top, pw, ph)));
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}">${parts.join("")}</svg>`;
}

export interface BoxGroup {
  label: string;
  colour: string;
  values: number[];
}

/** Quantile by linear interpolation of sorted values. */
function quantile(v: readonly number[], f: number): number {
  const pos = f * (v.length - 1),
    a = Math.floor(pos),
    b = Math.ceil(pos);
  return v[a] + (v[b] - v[a]) * (pos - a);
}

/** Tukey's whiskers: the most extreme values within 1.5 IQR of the box, never inside the box. */
function whiskers(v: readonly number[]): [number, number] {
  const q1 = quantile(v, 0.25),
    q3 = quantile(v, 0.75),
    k = 1.5 * (q3 - q1);
  return [Math.min(q1, v.find((x) => x >= q1 - k)!), Math.max(q3, [...v].reverse().find((x) => x <= q3 + k)!)];
}

/**
 * One box plot panel. The axis spans the whiskers of every group (not the extreme outliers, which
 * would squash the boxes); points beyond it are drawn as triangles on its edge with their count.
 */
function boxPanelSvg(
  title: string,
  yLabel: string,
  groups: BoxGroup[],
  x0: number,
  y0: number,
  w: number,
  h: number,
): { svg: string; clipped: number } {
  const parts: string[] = [];
  const L = x0 + 55,
    R = x0 + w - 10,
    T = y0 + 28,
    B = y0 + h - 60;
  const sorted = groups.map((g) => g.values.filter(Number.isFinite).sort((a, b) => a - b));
  const ends = sorted.filter((v) => v.length).map(whiskers);
  let lo = ends.length ? Math.min(...ends.map((e) => e[0])) : 0,
    hi = ends.length ? Math.max(...ends.map((e) => e[1])) : 1;
  // Boxes of tied values (every map 0 but a few) have no spread to scale by: show all the data.
  if (!(hi > lo) && ends.length) [lo, hi] = [Math.min(...sorted.flatMap((v) => v.slice(0, 1))), Math.max(...sorted.flatMap((v) => v.slice(-1)))];
  if (!(hi > lo)) {
    lo -= 0.5;
    hi += 0.5;
  }
  const pad = (hi - lo) * 0.05;
  lo -= pad;
  hi += pad;
  const sy = (v: number) => B - ((Math.min(hi, Math.max(lo, v)) - lo) / (hi - lo)) * (B - T);
  parts.push(`<text x="${x0 + w / 2}" y="${y0 + 16}" text-anchor="middle" ${FONT} font-size="13" font-weight="bold">${esc(title)}</text>`);
  for (const t of niceTicks(lo, hi)) {
    parts.push(`<line x1="${L}" x2="${R}" y1="${sy(t).toFixed(1)}" y2="${sy(t).toFixed(1)}" stroke="#e6e6e6"/>`);
    parts.push(`<text x="${L - 5}" y="${(sy(t) + 4).toFixed(1)}" text-anchor="end" ${FONT} font-size="10">${t}</text>`);
  }
  parts.push(`<rect x="${L}" y="${T}" width="${R - L}" height="${B - T}" fill="none" stroke="#333"/>`);
  parts.push(`<text transform="translate(${x0 + 14},${(T + B) / 2}) rotate(-90)" text-anchor="middle" ${FONT} font-size="11">${esc(yLabel)}</text>`);
  const slot = (R - L) / Math.max(1, groups.length);
  let clipped = 0;
  groups.forEach((g, i) => {
    const cx = L + slot * (i + 0.5);
    const v = sorted[i];
    if (v.length) {
      const bw = Math.min(40, slot * 0.5);
      const [wlo, whi] = whiskers(v);
      parts.push(`<line x1="${cx}" x2="${cx}" y1="${sy(wlo).toFixed(1)}" y2="${sy(whi).toFixed(1)}" stroke="${g.colour}"/>`);
      parts.push(
        `<rect x="${(cx - bw / 2).toFixed(1)}" y="${sy(quantile(v, 0.75)).toFixed(1)}" width="${bw.toFixed(1)}" height="${Math.max(1, sy(quantile(v, 0.25)) - sy(quantile(v, 0.75))).toFixed(1)}" fill="${g.colour}" fill-opacity="0.25" stroke="${g.colour}"/>`,
      );
      parts.push(
        `<line x1="${(cx - bw / 2).toFixed(1)}" x2="${(cx + bw / 2).toFixed(1)}" y1="${sy(quantile(v, 0.5)).toFixed(1)}" y2="${sy(quantile(v, 0.5)).toFixed(1)}" stroke="${g.colour}" stroke-width="2"/>`,
      );
      // deterministic jitter: golden-ratio sequence
      v.forEach((y, k) => {
        if (y >= lo && y <= hi)
          parts.push(
            `<circle cx="${(cx + (((k * 0.618034) % 1) - 0.5) * bw * 0.9).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="2.5" fill="${g.colour}" fill-opacity="0.8"/>`,
          );
      });
      const below = v.filter((y) => y < lo).length,
        above = v.filter((y) => y > hi).length;
      clipped += below + above;
      if (above)
        parts.push(
          `<path d="M${cx - 5},${T + 8} L${cx + 5},${T + 8} L${cx},${T + 2} Z" fill="${g.colour}"/><text x="${cx + 8}" y="${T + 10}" ${FONT} font-size="9">${above}</text>`,
        );
      if (below)
        parts.push(
          `<path d="M${cx - 5},${B - 8} L${cx + 5},${B - 8} L${cx},${B - 2} Z" fill="${g.colour}"/><text x="${cx + 8}" y="${B - 3}" ${FONT} font-size="9">${below}</text>`,
        );
    }
    parts.push(`<text transform="translate(${cx.toFixed(1)},${B + 12}) rotate(25)" ${FONT} font-size="10">${esc(g.label)} (n=${v.length})</text>`);
  });
  return { svg: parts.join(""), clipped };
}

export function boxPanelsSvg(title: string, panels: { title: string; yLabel: string; groups: BoxGroup[] }[], subtitle = ""): string {
  const pw = Math.max(420, 80 + 36 * Math.max(0, ...panels.map((p) => p.groups.length))),
    ph = 340,
    W = pw * panels.length + 100; // room on the right for the last panel's slanted labels
  const drawn = panels.map((p, i) => boxPanelSvg(p.title, p.yLabel, p.groups, 10 + i * pw, 0, pw, ph));
  const clipped = drawn.reduce((a, d) => a + d.clipped, 0);
  const note = [subtitle, clipped ? `${clipped} outlier${clipped === 1 ? "" : "s"} beyond the axes: triangles on the edge, with counts` : ""]
    .filter(Boolean)
    .join(" · ");
  const top = note ? 56 : 40;
  const H = top + ph + 10;
  const parts = [
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="20" y="24" ${FONT} font-size="16" font-weight="bold">${esc(title)}</text>`,
  ];
  if (note) parts.push(`<text x="20" y="44" ${FONT} font-size="11" fill="#444">${esc(note)}</text>`);
  parts.push(`<g transform="translate(0,${top})">${drawn.map((d) => d.svg).join("")}</g>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}">${parts.join("")}</svg>`;
}

/** Horizontal stacked bars (e.g. strategy class shares per model). */
export function stackedBarsSvg(title: string, rows: { label: string; parts: { name: string; value: number; colour: string }[] }[]): string {
  const W = 760,
    rowH = 26,
    top = 60,
    L = 200,
    R = W - 30;
  const H = top + rows.length * (rowH + 8) + 20;
  const parts = [
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="20" y="24" ${FONT} font-size="16" font-weight="bold">${esc(title)}</text>`,
  ];
  const names = [...new Map(rows.flatMap((r) => r.parts).map((p) => [p.name, p.colour])).entries()];
  names.forEach(([n, c], i) => {
    parts.push(
      `<rect x="${20 + i * 130}" y="36" width="14" height="14" fill="${c}"/>`,
      `<text x="${38 + i * 130}" y="48" ${FONT} font-size="12">${esc(n)}</text>`,
    );
  });
  rows.forEach((r, i) => {
    const y = top + i * (rowH + 8);
    const total = r.parts.reduce((s, p) => s + p.value, 0) || 1;
    parts.push(`<text x="${L - 8}" y="${y + rowH / 2 + 4}" text-anchor="end" ${FONT} font-size="12">${esc(r.label)}</text>`);
    let x = L;
    for (const p of r.parts) {
      const w = ((R - L) * p.value) / total;
      if (w > 0) {
        parts.push(`<rect x="${x.toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="${rowH}" fill="${p.colour}"/>`);
        if (w > 24)
          parts.push(
            `<text x="${(x + w / 2).toFixed(1)}" y="${y + rowH / 2 + 4}" text-anchor="middle" ${FONT} font-size="11" fill="white">${p.value}</text>`,
          );
      }
      x += w;
    }
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}">${parts.join("")}</svg>`;
}
