/** Charts as SVG, rasterised to PNG by sharp (librsvg), so no browser or canvas is needed. */
import sharp from "sharp";
import type { MapStats } from "./stats.js";

const RED = "#d62728", BLUE = "#1f5fbf", GREY = "#b0b0b0";

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** Left: shares of supporting / hurting / null blocks. Right: the effect histogram in blocks. */
export function summarySvg(s: MapStats, title: string): string {
  const W = 900, H = 380;
  const parts: string[] = [];
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  parts.push(`<text x="20" y="28" font-family="DejaVu Sans, sans-serif" font-size="17" font-weight="bold">${esc(title)}</text>`);
  parts.push(
    `<text x="20" y="50" font-family="DejaVu Sans, sans-serif" font-size="12" fill="#444">base ${esc(s.outcome)} ${s.baseOutcome.toFixed(3)} vs ${esc(s.reference)} · ${s.units} blocks · ${s.forwardPasses} forward passes · ${(s.wallMs / 1000).toFixed(1)} s</text>`,
  );
  // Share bars.
  const shares: [string, number, number, string][] = [
    ["supports RoI (ATE<0)", s.negative, s.negativeShare, RED],
    ["hurts RoI (ATE>0)", s.positive, s.positiveShare, BLUE],
    ["no effect", s.zero, s.zeroShare, GREY],
  ];
  const bx = 30, by = 80, bw = 250, bh = 34;
  parts.push(`<text x="${bx}" y="${by - 8}" font-family="DejaVu Sans, sans-serif" font-size="13">Block shares</text>`);
  shares.forEach(([label, count, share, colour], i) => {
    const y = by + i * (bh + 26);
    parts.push(`<rect x="${bx}" y="${y}" width="${bw}" height="${bh}" fill="#f0f0f0"/>`);
    parts.push(`<rect x="${bx}" y="${y}" width="${(bw * share).toFixed(1)}" height="${bh}" fill="${colour}"/>`);
    parts.push(`<text x="${bx}" y="${y + bh + 15}" font-family="DejaVu Sans, sans-serif" font-size="12">${esc(label)}: ${count} (${(share * 100).toFixed(1)}%)</text>`);
  });
  // Histogram.
  const hx = 360, hy = 80, hw = 510, hh = 215;
  const maxCount = Math.max(1, ...s.histogram.map((b) => b.blocks));
  const slot = hw / s.histogram.length;
  parts.push(`<text x="${hx}" y="${hy - 8}" font-family="DejaVu Sans, sans-serif" font-size="13">Effect histogram (blocks per ATE bin; the middle bin includes the RoI blocks)</text>`);
  parts.push(`<line x1="${hx}" y1="${hy + hh}" x2="${hx + hw}" y2="${hy + hh}" stroke="black"/>`);
  s.histogram.forEach((b, i) => {
    const h = ((hh - 20) * b.blocks) / maxCount; // room for the count label under the title
    const x = hx + i * slot + 4;
    const colour = b.hi <= 0 ? RED : b.lo >= 0 ? BLUE : GREY;
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
