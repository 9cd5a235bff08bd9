/** Charts as SVG, rasterised to PNG by sharp (librsvg), so no browser or canvas is needed. */
import sharp from "sharp";
import { esc } from "../util/xml.js";
import { colourBarSvg } from "./picture.js";
import type { MapStats } from "./stats.js";

const RED = "#d62728",
  BLUE = "#1f5fbf",
  GREY = "#b0b0b0";

/**
 * Left: the map (overlay at the model's input size). Middle: what the counts rest on (src/report/counts.ts),
 * as bars of the units' shares, and the colour scale. Right: the value histogram (unsigned maps: [0, ∞) only).
 */
export function summarySvg(s: MapStats, title: string, mapPng?: Buffer): string {
  const mapW = mapPng ? 300 : 0;
  const W = 920 + mapW,
    H = 440;
  const unit = s.unitKind;
  const F = `font-family="DejaVu Sans, sans-serif"`;
  const parts: string[] = [];
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  parts.push(`<text x="20" y="28" ${F} font-size="16" font-weight="bold">${esc(title.length > 150 ? `${title.slice(0, 147)}...` : title)}</text>`);
  parts.push(
    `<text x="20" y="50" ${F} font-size="12" fill="#444">base ${esc(s.outcome)} ${s.baseOutcome.toFixed(3)} vs ${esc(s.reference)} · ${s.units} ${unit}s outside the RoI · ${s.forwardPasses} forward${s.backwardPasses ? ` + ${s.backwardPasses} backward` : ""} passes · ${(s.wallMs / 1000).toFixed(1)} s</text>`,
  );
  parts.push(
    `<text x="20" y="66" ${F} font-size="11" fill="#666">values: ${esc(s.valueUnits.length > 150 ? `${s.valueUnits.slice(0, 147)}...` : s.valueUnits)}</text>`,
  );
  if (mapPng)
    parts.push(
      `<image x="20" y="90" width="${mapW - 20}" height="${mapW - 20}" preserveAspectRatio="xMidYMid meet" href="data:image/png;base64,${mapPng.toString("base64")}"/>`,
    );
  // Shares of what the counts rest on. An unsigned map has no "against" side.
  const e = s.evidence;
  const n = Math.max(1, s.units);
  const rows: [string, number, string][] = e
    ? [
        ...(s.signed
          ? ([
              [`differ from zero, support (red)`, e.excludesZero.negative, RED],
              [`differ from zero, against (blue)`, e.excludesZero.positive, BLUE],
            ] as [string, number, string][])
          : ([[`differ from zero (important)`, e.excludesZero.total, RED]] as [string, number, string][])),
        [`above τ = ${s.tau}, not distinguishable from 0`, e.notDistinguishable.total, "#e8a0a0"],
        ...(e.noInterval.total ? ([[`above τ, no interval (deterministic)`, e.noInterval.total, "#c080c0"]] as [string, number, string][]) : []),
        [`estimated, below τ (drawn 0)`, e.belowTau, "#999"],
        [`cleared by own screening draws`, e.screenedAlone, "#c8c8c8"],
        [`cleared with their group (never alone)`, e.screenedByGroup, "#e4e4e4"],
      ]
    : s.signed
      ? [
          ["< 0, supports (red)", s.negative, RED],
          ["> 0, against (blue)", s.positive, BLUE],
          ["exactly 0", s.zero, GREY],
        ]
      : [
          ["> 0, important (red)", s.positive, RED],
          ["exactly 0", s.zero, GREY],
        ];
  const bx = 30 + mapW,
    by = 90,
    bw = 250,
    bh = 12,
    step = 33;
  parts.push(`<text x="${bx}" y="${by - 8}" ${F} font-size="13">${unit[0].toUpperCase()}${unit.slice(1)}s outside the RoI</text>`);
  rows.forEach(([label, count, colour], i) => {
    const y = by + i * step;
    parts.push(`<rect x="${bx}" y="${y}" width="${bw}" height="${bh}" fill="#f3f3f3"/>`);
    parts.push(`<rect x="${bx}" y="${y}" width="${((bw * count) / n).toFixed(1)}" height="${bh}" fill="${colour}"/>`);
    parts.push(`<text x="${bx}" y="${y + bh + 12}" ${F} font-size="11">${count} ${esc(label)} (${((100 * count) / n).toFixed(1)}%)</text>`);
  });
  const ny = by + rows.length * step + 6;
  const note = e
    ? [`"differ from zero": t test of each ${unit}'s estimate,`, `Benjamini–Hochberg 5% FDR across all ${e.units}`]
    : ["signs of the values only:", "no per-pixel uncertainty, no test"];
  note.forEach((l, i) => parts.push(`<text x="${bx}" y="${ny + i * 13}" ${F} font-size="10" fill="#444">${esc(l)}</text>`));
  // The colour scale of heatmap.png and overlay.png.
  const cy = Math.max(ny + 40, 330);
  parts.push(`<text x="${bx}" y="${cy - 6}" ${F} font-size="12">heatmap / overlay colours (RoI green)</text>`);
  parts.push(
    colourBarSvg(
      bx,
      cy,
      bw,
      s.signed,
      { spec: "", maxAbs: s.colourScaleMaxAbs, label: s.colourScale ?? "largest |value| outside the RoI" },
      "",
      "summaryBar",
    ),
  );
  // Histogram.
  const hx = 320 + mapW + 40,
    hy = 90,
    hw = W - hx - 30,
    hh = 240;
  const maxCount = Math.max(1, ...s.histogram.map((b) => b.blocks));
  const slot = hw / s.histogram.length;
  parts.push(
    `<text x="${hx}" y="${hy - 8}" ${F} font-size="13">Value histogram (${unit}s per bin; the ${s.signed ? "middle" : "first"} bin also holds the RoI's ${unit}s)</text>`,
  );
  parts.push(`<line x1="${hx}" y1="${hy + hh}" x2="${hx + hw}" y2="${hy + hh}" stroke="black"/>`);
  s.histogram.forEach((b, i) => {
    const h = ((hh - 20) * b.blocks) / maxCount; // room for the count label under the title
    const x = hx + i * slot + 4;
    const colour = !s.signed ? (b.lo > 0 ? RED : GREY) : b.hi <= 0 ? RED : b.lo >= 0 ? BLUE : GREY;
    parts.push(
      `<rect x="${x.toFixed(1)}" y="${(hy + hh - h).toFixed(1)}" width="${(slot - 8).toFixed(1)}" height="${h.toFixed(1)}" fill="${colour}"/>`,
    );
    parts.push(
      `<text x="${(x + (slot - 8) / 2).toFixed(1)}" y="${(hy + hh - h - 4).toFixed(1)}" text-anchor="middle" ${F} font-size="11">${b.blocks}</text>`,
    );
    parts.push(
      `<text transform="translate(${(x + (slot - 8) / 2).toFixed(1)},${hy + hh + 12}) rotate(30)" ${F} font-size="10">${esc(b.label)}</text>`,
    );
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}">${parts.join("")}</svg>`;
}

/**
 * A rendered plot as a palette PNG: 256 colours look the same for charts and diverging maps, and one byte
 * per pixel instead of RGBA's four keeps reports, which embed dozens, small.
 */
export function svgToPng(svg: string): Promise<Buffer> {
  return sharp(Buffer.from(svg)).png({ palette: true }).toBuffer();
}
