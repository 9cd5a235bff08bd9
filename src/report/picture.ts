/**
 * heatmap.png and overlay.png as a person reads them: a title line (method, model, RoI, base
 * outcome), the map at the original image's aspect ratio, the RoI outline, a dot on every unit that
 * differs from zero (src/report/counts.ts), and a colour bar with its end values, units and how the
 * scale was chosen. The model-size images (pixel-aligned with map.npy) are written beside them.
 */
import sharp from "sharp";
import type { RoiRect } from "../target/roi.js";
import { esc } from "../util/xml.js";
import type { ColourScale } from "./scale.js";

export interface PictureSpec {
  /** RGB at the model's input size */
  rgb: Uint8Array;
  height: number;
  width: number;
  /** height and width to show (the original image's aspect ratio) */
  display: { height: number; width: number };
  title: string;
  subtitle: string;
  roi: RoiRect;
  roiKind: "rect" | "mask";
  /** units to mark, in model-input pixels */
  markers: { row: number; col: number; height: number; width: number }[];
  signed: boolean;
  scale: ColourScale;
  valueUnits: string;
}

const FONT = `font-family="DejaVu Sans, sans-serif"`;

/** Short form of a number for a scale's end: 3 significant digits. */
export function tickLabel(v: number): string {
  return v === 0 ? "0" : Number(v.toPrecision(3)).toString();
}

/** The colour bar (gradient, end values in bold, units and the scale rule), at (x, y) and width w; returns its SVG. */
export function colourBarSvg(x: number, y: number, w: number, signed: boolean, scale: ColourScale, valueUnits: string, id = "bar"): string {
  const p: string[] = [];
  if (scale.maxAbs === 0) {
    p.push(`<text x="${x}" y="${y + 12}" ${FONT} font-size="13" font-weight="bold">all values are 0 outside the RoI:</text>`);
    p.push(`<text x="${x}" y="${y + 28}" ${FONT} font-size="13" font-weight="bold">the map is blank, nothing to colour</text>`);
    return p.join("");
  }
  const stops = signed
    ? `<stop offset="0" stop-color="rgb(255,0,0)"/><stop offset="0.5" stop-color="white"/><stop offset="1" stop-color="rgb(0,0,255)"/>`
    : `<stop offset="0" stop-color="white"/><stop offset="1" stop-color="rgb(255,0,0)"/>`;
  p.push(`<defs><linearGradient id="${id}">${stops}</linearGradient></defs>`);
  p.push(`<rect x="${x}" y="${y}" width="${w}" height="14" fill="url(#${id})" stroke="#666"/>`);
  const m = tickLabel(scale.maxAbs);
  const tick = (tx: number, v: string, anchor: string) =>
    p.push(`<text x="${tx}" y="${y + 31}" text-anchor="${anchor}" ${FONT} font-size="14" font-weight="bold">${esc(v)}</text>`);
  if (signed) {
    tick(x, `−${m}`, "start");
    tick(x + w / 2, "0", "middle");
    tick(x + w, `+${m}`, "end");
    p.push(`<text x="${x}" y="${y + 46}" ${FONT} font-size="11" fill="#444">supports the RoI (red) … works against it (blue)</text>`);
  } else {
    tick(x, "0", "start");
    tick(x + w, m, "end");
    p.push(`<text x="${x}" y="${y + 46}" ${FONT} font-size="11" fill="#444">importance (unsigned)</text>`);
  }
  const units = valueUnits.length > 70 ? `${valueUnits.slice(0, 67)}...` : valueUnits;
  p.push(
    `<text x="${x}" y="${y + 61}" ${FONT} font-size="11" fill="#444">${units ? `${esc(units)}; ` : ""}full colour at the ${esc(scale.label)}</text>`,
  );
  return p.join("");
}

/** Display size at the original aspect ratio, the longer side `long` px. */
export function displaySize(
  source: { height: number; width: number } | undefined,
  model: { height: number; width: number },
  long = 512,
): { height: number; width: number } {
  const s = source ?? model;
  const f = long / Math.max(s.height, s.width);
  return { height: Math.max(1, Math.round(s.height * f)), width: Math.max(1, Math.round(s.width * f)) };
}

export async function annotatedPng(spec: PictureSpec): Promise<Buffer> {
  const { display: d } = spec;
  const img = await sharp(spec.rgb, { raw: { width: spec.width, height: spec.height, channels: 3 } })
    .resize(d.width, d.height, { fit: "fill", kernel: "nearest" })
    .png()
    .toBuffer();
  const pad = 14,
    top = 52,
    W = Math.max(d.width + 2 * pad, 560),
    barY = top + d.height + 14,
    H = barY + 72;
  const ox = Math.round((W - d.width) / 2);
  const sy = d.height / spec.height,
    sx = d.width / spec.width;
  const p: string[] = [`<rect width="${W}" height="${H}" fill="white"/>`];
  p.push(`<text x="${pad}" y="22" ${FONT} font-size="15" font-weight="bold">${esc(spec.title)}</text>`);
  p.push(`<text x="${pad}" y="41" ${FONT} font-size="11" fill="#444">${esc(spec.subtitle)}</text>`);
  p.push(`<image x="${ox}" y="${top}" width="${d.width}" height="${d.height}" href="data:image/png;base64,${img.toString("base64")}"/>`);
  const r = spec.roi;
  p.push(
    `<rect x="${(ox + r.col * sx).toFixed(1)}" y="${(top + r.row * sy).toFixed(1)}" width="${(r.width * sx).toFixed(1)}" height="${(r.height * sy).toFixed(1)}" fill="none" stroke="black" stroke-width="2"${spec.roiKind === "mask" ? ` stroke-dasharray="5,3"` : ""}/>`,
  );
  const dotR = Math.max(2, Math.min(5, Math.min(...spec.markers.map((u) => Math.min(u.height * sy, u.width * sx) / 4), 5)));
  for (const u of spec.markers) {
    p.push(
      `<circle cx="${(ox + (u.col + u.width / 2) * sx).toFixed(1)}" cy="${(top + (u.row + u.height / 2) * sy).toFixed(1)}" r="${dotR.toFixed(1)}" fill="black" stroke="white" stroke-width="1"/>`,
    );
  }
  p.push(colourBarSvg(pad, barY, Math.min(320, W - 2 * pad), spec.signed, spec.scale, spec.valueUnits));
  if (spec.markers.length)
    p.push(`<text x="${W - pad}" y="${barY + 31}" text-anchor="end" ${FONT} font-size="11">● differs from zero (BH 5%)</text>`);
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="${W}" height="${H}">${p.join("")}</svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}
