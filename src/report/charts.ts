/** Charts as SVG, rasterised to PNG by sharp (librsvg), so no browser or canvas is needed. */
import sharp from "sharp";
import type { MapStats } from "./stats.js";

const RED = "#d62728", BLUE = "#1f5fbf", GREY = "#b0b0b0";

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** Left: shares of supporting / hurting / null units (important / null for unsigned maps). Right: the value histogram. */
export function summarySvg(s: MapStats, title: string): string {
  const W = 900, H = 400;
  const unit = s.unitKind === "window" ? "window" : s.unitKind === "superpixel" ? "superpixel" : s.unitKind === "pixel" ? "pixel" : "block";
  const parts: string[] = [];
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  parts.push(`<text x="20" y="28" font-family="DejaVu Sans, sans-serif" font-size="17" font-weight="bold">${esc(title)}</text>`);
  parts.push(
    `<text x="20" y="50" font-family="DejaVu Sans, sans-serif" font-size="12" fill="#444">base ${esc(s.outcome)} ${s.baseOutcome.toFixed(3)} vs ${esc(s.reference)} · ${s.units} ${unit}s outside the RoI · ${s.forwardPasses} forward${s.backwardPasses ? ` + ${s.backwardPasses} backward` : ""} passes · ${(s.wallMs / 1000).toFixed(1)} s</text>`,
  );
  parts.push(`<text x="20" y="66" font-family="DejaVu Sans, sans-serif" font-size="11" fill="#666">values: ${esc(s.valueUnits.length > 130 ? `${s.valueUnits.slice(0, 127)}...` : s.valueUnits)}</text>`);
  // Share bars. An unsigned map (importance >= 0) has no "hurts" side: its values are drawn as support.
  const shares: [string, number, number, string][] = s.signed
    ? [
        ["supports RoI (< 0)", s.negative, s.negativeShare, RED],
        ["hurts RoI (> 0)", s.positive, s.positiveShare, BLUE],
        ["no effect (0)", s.zero, s.zeroShare, GREY],
      ]
    : [
        ["important (> 0, no direction)", s.positive, s.positiveShare, RED],
        ["no importance (0)", s.zero, s.zeroShare, GREY],
      ];
  const bx = 30, by = 90, bw = 250, bh = 34;
  parts.push(`<text x="${bx}" y="${by - 8}" font-family="DejaVu Sans, sans-serif" font-size="13">${unit[0].toUpperCase()}${unit.slice(1)} shares</text>`);
  shares.forEach(([label, count, share, colour], i) => {
    const y = by + i * (bh + 26);
    parts.push(`<rect x="${bx}" y="${y}" width="${bw}" height="${bh}" fill="#f0f0f0"/>`);
    parts.push(`<rect x="${bx}" y="${y}" width="${(bw * share).toFixed(1)}" height="${bh}" fill="${colour}"/>`);
    parts.push(`<text x="${bx}" y="${y + bh + 15}" font-family="DejaVu Sans, sans-serif" font-size="12">${esc(label)}: ${count} (${(share * 100).toFixed(1)}%)</text>`);
  });
  // The colour scale of heatmap.png and overlay.png (normalised to the largest |value| outside the RoI).
  const scale = s.colourScaleMaxAbs;
  const cy = by + 3 * (bh + 26) + 30, cw = 250;
  const stops = s.signed
    ? `<stop offset="0" stop-color="rgb(255,0,0)"/><stop offset="0.5" stop-color="white"/><stop offset="1" stop-color="rgb(0,0,255)"/>`
    : `<stop offset="0" stop-color="white"/><stop offset="1" stop-color="rgb(255,0,0)"/>`;
  parts.push(`<defs><linearGradient id="scale">${stops}</linearGradient></defs>`);
  parts.push(`<text x="${bx}" y="${cy - 6}" font-family="DejaVu Sans, sans-serif" font-size="12">heatmap / overlay colours (RoI green)</text>`);
  parts.push(`<rect x="${bx}" y="${cy}" width="${cw}" height="12" fill="url(#scale)" stroke="#999"/>`);
  const tick = (x: number, v: string, anchor: string) => parts.push(`<text x="${x}" y="${cy + 25}" text-anchor="${anchor}" font-family="DejaVu Sans, sans-serif" font-size="11">${v}</text>`);
  const num = (v: number) => esc(v === 0 ? "0" : v.toPrecision(3));
  if (s.signed) {
    tick(bx, num(-scale), "start");
    tick(bx + cw / 2, "0", "middle");
    tick(bx + cw, num(scale), "end");
  } else {
    tick(bx, "0", "start");
    tick(bx + cw, num(scale), "end");
  }
  // Histogram.
  const hx = 360, hy = 90, hw = 510, hh = 215;
  const maxCount = Math.max(1, ...s.histogram.map((b) => b.blocks));
  const slot = hw / s.histogram.length;
  parts.push(`<text x="${hx}" y="${hy - 8}" font-family="DejaVu Sans, sans-serif" font-size="13">Value histogram (${unit}s per bin; the middle bin also holds the RoI's ${unit}s)</text>`);
  parts.push(`<line x1="${hx}" y1="${hy + hh}" x2="${hx + hw}" y2="${hy + hh}" stroke="black"/>`);
  s.histogram.forEach((b, i) => {
    const h = ((hh - 20) * b.blocks) / maxCount; // room for the count label under the title
    const x = hx + i * slot + 4;
    const colour = b.hi <= 0 ? RED : b.lo >= 0 ? (s.signed ? BLUE : RED) : GREY;
    parts.push(`<rect x="${x.toFixed(1)}" y="${(hy + hh - h).toFixed(1)}" width="${(slot - 8).toFixed(1)}" height="${h.toFixed(1)}" fill="${colour}"/>`);
    parts.push(`<text x="${(x + (slot - 8) / 2).toFixed(1)}" y="${(hy + hh - h - 4).toFixed(1)}" text-anchor="middle" font-family="DejaVu Sans, sans-serif" font-size="11">${b.blocks}</text>`);
    parts.push(
      `<text transform="translate(${(x + (slot - 8) / 2).toFixed(1)},${hy + hh + 12}) rotate(30)" font-family="DejaVu Sans, sans-serif" font-size="10">${esc(b.label)}</text>`,
    );
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}">${parts.join("")}</svg>`;
}

/** A rendered plot as a palette PNG: 256 colours look the same for charts and diverging maps and take half the bytes of RGBA (reports embed dozens). */
export function svgToPng(svg: string): Promise<Buffer> {
  return sharp(Buffer.from(svg)).png({ palette: true }).toBuffer();
}
