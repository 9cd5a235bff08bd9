/**
 * A volume's map as one PNG a person can read without a viewer: three rows (axial, coronal, sagittal),
 * each a few slices evenly spaced through the RoI's extent (the centre slice included), the image in
 * grey under the map in the project's colours (red: supports the RoI, blue: against it; an unsigned map
 * is drawn as support), the RoI outlined in green, the patient directions on each row's first panel, a
 * colour bar with its range and units, and a title. Panels keep the voxels' physical aspect ratio and
 * one scale (pixels per mm) for all three planes. Display convention: radiological (mosaic-layout.ts).
 *
 * Memory: each panel is sampled straight from the volume at its page size; nothing larger than the page
 * is allocated besides a strided sample of the image for its grey window (and what colourScale needs).
 */
import sharp from "sharp";
import { fail } from "../errors.js";
import { esc } from "../util/xml.js";
import { heatRgb } from "./colormap.js";
import { type GreyWindow, greyLevel, greyWindow } from "./grey-window.js";
import {
  type Box,
  centreSlice,
  ORIENTATIONS,
  type Panel,
  panelSize,
  patientAxes,
  pixelsPerMm,
  pixelToVoxel,
  plane,
  roiBox,
  slicesThrough,
} from "./mosaic-layout.js";
import { colourBarSvg, tickLabel } from "./picture.js";
import { type ColourScale, colourScale, type ScaleSpec } from "./scale.js";

export interface MosaicSpec {
  /** voxels per axis [nx, ny, nz]; voxel (i, j, k) at `(k * ny + j) * nx + i` (voxel/volume.ts) */
  dims: [number, number, number];
  /** voxel size in mm along i, j, k */
  spacing: [number, number, number];
  image: Float32Array;
  map: Float32Array;
  /** 1 inside the RoI, same layout */
  roi: Uint8Array;
  /** signed effects (negative = supports the RoI) or unsigned importance (drawn as support) */
  signed: boolean;
  /** colour scale (default the paper's: the largest |value| outside the RoI) */
  scale?: ScaleSpec;
  title?: string;
  /** second line under the title (default: geometry and RoI size) */
  subtitle?: string;
  /** what the map's values are, printed under the colour bar */
  valueUnits?: string;
  /** voxel → RAS+ mm (row-major 4x4): names the patient directions; without it the voxel axes are taken as RAS+ */
  affine?: number[];
  /** slices per orientation (default 5) */
  slices?: number;
  /** the longest panel side in pixels (default 200); every panel shares its pixels-per-mm */
  panelPixels?: number;
  /** show the RoI's bounding box plus this margin in mm (default: whole slices) */
  marginMm?: number;
}

export interface MosaicLayout {
  width: number;
  height: number;
  panels: Panel[];
  pxPerMm: number;
  /** the voxels shown (whole volume, or the RoI's box plus the margin) */
  fov: Box;
  roiBox: Box;
  /** false when the patient directions were assumed (no affine, or an oblique one) */
  fromAffine: boolean;
  scale: ColourScale;
  /** the grey window, from the voxels near the RoI (undefined: no finite voxel there) */
  grey: GreyWindow | undefined;
  /** the voxels the grey window's percentiles come from: the RoI's box grown on each side by its own size, at least 20 mm */
  greyBox: Box;
  /** title, subtitle and display convention */
  header: [string, string, string];
  /** the lines beside the colour bar */
  legend: string[];
}

const FONT = `font-family="DejaVu Sans, sans-serif"`;
const PAD = 16,
  HEADER = 76,
  CAPTION = 17,
  COL_GAP = 8,
  ROW_GAP = 10,
  FOOTER = 92,
  BAR_W = 300,
  LEGEND_X = PAD + BAR_W + 30,
  MIN_WIDTH = 820;
const OUTLINE: [number, number, number] = [0, 230, 0];
const GREY_MARGIN_MM = 20;
/** opacity of the map over the image at full colour; lower values are more transparent (square root: small effects stay visible) */
const MAX_ALPHA = 0.85;
const AXIS_NAMES = ["i", "j", "k"];
const NEIGHBOURS = [
  [-1, 0],
  [1, 0],
  [0, -1],
  [0, 1],
];

function check(s: MosaicSpec): void {
  const { dims, spacing } = s;
  if (dims.length !== 3 || dims.some((d) => !Number.isInteger(d) || d < 1))
    fail(`volume dims ${dims.join("x")} are not three positive whole numbers`, "give dims as [nx, ny, nz] voxels");
  if (spacing.length !== 3 || spacing.some((v) => !Number.isFinite(v) || v <= 0))
    fail(`voxel spacing ${spacing.join("x")} mm is not three positive numbers`, "give the spacing in mm along i, j, k (the affine's column lengths)");
  const n = dims[0] * dims[1] * dims[2];
  for (const [name, a] of [
    ["image", s.image],
    ["map", s.map],
    ["RoI mask", s.roi],
  ] as const) {
    if (a.length !== n)
      fail(`the ${name} holds ${a.length} voxels but the volume is ${dims.join("x")} = ${n}`, "give the image, map and RoI on the same voxel grid");
  }
  let bad = 0;
  for (const v of s.map) if (!Number.isFinite(v)) bad++;
  if (bad)
    fail(`the map holds ${bad} non-finite values (NaN or infinite), which have no colour`, "recompute the map; a finite map is needed to draw it");
  if (s.slices !== undefined && (!Number.isInteger(s.slices) || s.slices < 1))
    fail(`slices per orientation must be a positive whole number, got ${s.slices}`);
  if (s.panelPixels !== undefined && !(s.panelPixels >= 16)) fail(`panel size must be at least 16 pixels, got ${s.panelPixels}`);
  if (s.marginMm !== undefined && !(s.marginMm >= 0)) fail(`the margin around the RoI must be at least 0 mm, got ${s.marginMm}`);
}

/** The RoI's box grown by `marginMm` on every side (clipped to the volume), or the whole volume. */
function fieldOfView(box: Box, dims: [number, number, number], spacing: [number, number, number], marginMm?: number): Box {
  return [0, 1, 2].map((a) => {
    if (marginMm === undefined) return [0, dims[a] - 1];
    const m = Math.ceil(marginMm / spacing[a]);
    return [Math.max(0, box[a][0] - m), Math.min(dims[a] - 1, box[a][1] + m)];
  }) as Box;
}

/**
 * Everything the picture shows but its pixels: where each panel goes (sizes from the physical extent),
 * the colour scale, the grey window and the text. Exported so that tests can compute where things are.
 */
export function mosaicLayout(s: MosaicSpec): MosaicLayout {
  check(s);
  const box = roiBox(s.roi, s.dims);
  if (!box)
    fail(
      "the RoI mask is empty: no voxel to outline or to slice through",
      "give a RoI mask with at least one voxel set (a label present in the label map, or a box inside the volume)",
    );
  const fov = fieldOfView(box, s.dims, s.spacing, s.marginMm);
  const axes = patientAxes(s.affine);
  const pxPerMm = pixelsPerMm(fov, s.spacing, s.panelPixels ?? 200);
  const panels: Panel[] = [];
  let y = HEADER,
    widest = 0;
  for (const o of ORIENTATIONS) {
    const pl = plane(o, axes);
    const { width, height } = panelSize(pl, fov, s.spacing, pxPerMm);
    const [lo, hi] = box[pl.normal];
    const c = centreSlice(lo, hi);
    let x = PAD;
    for (const slice of slicesThrough(lo, hi, s.slices ?? 5)) {
      panels.push({ plane: pl, slice, centre: slice === c, x, y: y + CAPTION, width, height });
      x += width + COL_GAP;
    }
    widest = Math.max(widest, x - COL_GAP + PAD);
    y += CAPTION + height + ROW_GAP;
  }
  // colourScale asks a Region only which voxels are inside; building a whole Region (pixel list, bounding box)
  // over millions of voxels would take seconds for nothing.
  const scale = colourScale(s.map, { inside: s.roi }, s.scale ?? { kind: "max" });
  // The grey window looks around the RoI: its box grown by its own size, or GREY_MARGIN_MM if that is more, on each side.
  const greyBox = box.map(([lo, hi], a) => {
    const m = Math.max(hi - lo + 1, Math.ceil(GREY_MARGIN_MM / s.spacing[a]));
    return [Math.max(0, lo - m), Math.min(s.dims[a] - 1, hi + m)];
  }) as Box;
  const grey = greyWindow(s.image, s.dims, greyBox);
  const header = headerText(s, box, axes.fromAffine);
  const legend = legendText(s, pxPerMm, grey);
  // Wide enough for every line of text (librsvg does not wrap): the header, the legend beside the bar, the bar's own last line.
  const barNote = `${(s.valueUnits ?? "").slice(0, 70)}; full colour at the ${scale.label}`;
  const text = Math.max(
    textWidth(header[0], 16, true),
    ...header.slice(1).map((l) => textWidth(l, 12)),
    LEGEND_X + Math.max(...legend.map((l) => textWidth(l, 11))),
    textWidth(barNote, 11),
  );
  return {
    width: Math.ceil(Math.max(MIN_WIDTH, widest, PAD + text + PAD)),
    height: y + FOOTER,
    panels,
    pxPerMm,
    fov,
    roiBox: box,
    fromAffine: axes.fromAffine,
    scale,
    grey,
    greyBox,
    header,
    legend,
  };
}

/** Rendered width of a line of DejaVu Sans, a little generous (its mean advance in these lines is about 0.5 em, bold 0.58). */
function textWidth(s: string, size: number, bold = false): number {
  return s.length * size * (bold ? 0.62 : 0.54);
}

/**
 * One panel's RGB: the grey image, the map blended over it with an opacity that grows with |value|
 * (so a zero map leaves the image as it is), and the RoI's boundary drawn 2 pixels wide (the pixels on
 * both sides of it).
 */
function renderPanel(s: MosaicSpec, p: Panel, fov: Box, scale: ColourScale, grey: GreyWindow | undefined): Uint8Array {
  const { width: w, height: h, plane: pl } = p;
  const [nx, ny] = s.dims;
  const stride = [1, nx, nx * ny];
  const cols = pixelToVoxel(pl.col, fov, w),
    rows = pixelToVoxel(pl.row, fov, h);
  const voxel = new Int32Array(w * h);
  const values = new Float32Array(w * h);
  const sign = s.signed ? 1 : -1;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = p.slice * stride[pl.normal] + cols[x] * stride[pl.col.axis] + rows[y] * stride[pl.row.axis];
      voxel[y * w + x] = v;
      values[y * w + x] = sign * s.map[v];
    }
  }
  const heat = heatRgb(values, h, w, undefined, scale.maxAbs);
  const out = new Uint8Array(w * h * 3);
  const inside = (q: number) => s.roi[voxel[q]] !== 0;
  for (let y = 0, q = 0; y < h; y++) {
    for (let x = 0; x < w; x++, q++) {
      const g = greyLevel(s.image[voxel[q]], grey);
      const hAbs = scale.maxAbs > 0 ? Math.min(1, Math.abs(values[q]) / scale.maxAbs) : 0;
      const a = MAX_ALPHA * Math.sqrt(hAbs);
      for (let c = 0; c < 3; c++) out[q * 3 + c] = Math.round((1 - a) * g + a * heat[q * 3 + c]);
      // On the boundary: a neighbour on the other side of it, or (inside) the panel's edge.
      const me = inside(q);
      const boundary = NEIGHBOURS.some(([dx, dy]) => {
        const bx = x + dx,
          by = y + dy;
        if (bx < 0 || by < 0 || bx >= w || by >= h) return me;
        return inside(by * w + bx) !== me;
      });
      if (boundary) out.set(OUTLINE, q * 3);
    }
  }
  return out;
}

function headerText(s: MosaicSpec, box: Box, fromAffine: boolean): [string, string, string] {
  const [[i0, i1], [j0, j1], [k0, k1]] = box;
  const geometry = `${s.dims.join("x")} voxels, ${s.spacing.map((v) => Number(v.toPrecision(4))).join("x")} mm`;
  const title = s.title ?? "Map over the image: slices through the RoI";
  const axes = fromAffine ? "directions from the affine" : "no affine, voxel axes taken as RAS+";
  return [
    title.length > 150 ? `${title.slice(0, 147)}...` : title,
    s.subtitle ?? `${geometry} · RoI bounding box i ${i0}–${i1}, j ${j0}–${j1}, k ${k0}–${k1}`,
    `Radiological display: the patient's right on the image's left; anterior up (axial) and on the left (sagittal); superior up; ${axes}.`,
  ];
}

function legendText(s: MosaicSpec, pxPerMm: number, grey: GreyWindow | undefined): string[] {
  let roiVoxels = 0;
  for (const v of s.roi) if (v) roiVoxels++;
  return [
    `green outline: the RoI (${roiVoxels} voxels); slices evenly spaced through its extent`,
    grey
      ? `grey: the image, black..white = ${tickLabel(grey.low)}..${tickLabel(grey.high)} (its percentiles ${grey.lowPercentile} and ${grey.highPercentile} around the RoI)`
      : "grey: no finite image voxel around the RoI (drawn black)",
    `${s.signed ? "" : "unsigned map; "}colour opacity grows with |value|; one scale for all panels, ${Number(pxPerMm.toPrecision(3))} px per mm (physical aspect)`,
  ];
}

function headerSvg(L: MosaicLayout): string {
  const [title, subtitle, convention] = L.header.map(esc);
  return [
    `<text x="${PAD}" y="24" ${FONT} font-size="16" font-weight="bold">${title}</text>`,
    `<text x="${PAD}" y="44" ${FONT} font-size="12" fill="#333">${subtitle}</text>`,
    `<text x="${PAD}" y="62" ${FONT} font-size="12" fill="#555">${convention}</text>`,
  ].join("");
}

/** "axial k 6" on a row's first panel, "k 11" on the others, "· centre" on the slice through the RoI's centre. */
function captionSvg(p: Panel, first: boolean): string {
  const label = `${first ? `${p.plane.orientation} ` : ""}${AXIS_NAMES[p.plane.normal]} ${p.slice}${p.centre ? " · centre" : ""}`;
  return `<text x="${p.x}" y="${p.y - 5}" ${FONT} font-size="12"${p.centre ? ` font-weight="bold"` : ""}>${esc(label)}</text>`;
}

/** Patient directions at the four edges of a panel, light text with a dark halo so they read on any grey. */
function edgeLettersSvg(p: Panel): string {
  const e = p.plane.edges;
  const t = (x: number, y: number, anchor: string, s: string) =>
    `<text x="${x}" y="${y}" text-anchor="${anchor}" ${FONT} font-size="12" font-weight="bold" fill="#ffff80" stroke="black" stroke-width="2.5" paint-order="stroke">${s}</text>`;
  const cx = p.x + p.width / 2,
    cy = p.y + p.height / 2 + 4;
  return (
    t(p.x + 3, cy, "start", e.left) +
    t(p.x + p.width - 3, cy, "end", e.right) +
    t(cx, p.y + 13, "middle", e.top) +
    t(cx, p.y + p.height - 4, "middle", e.bottom)
  );
}

function footerSvg(s: MosaicSpec, L: MosaicLayout): string {
  const y = L.height - FOOTER + 14;
  return (
    colourBarSvg(PAD, y, BAR_W, s.signed, L.scale, s.valueUnits ?? "", "mosaicBar") +
    L.legend.map((l, n) => `<text x="${LEGEND_X}" y="${y + 11 + n * 16}" ${FONT} font-size="11" fill="#333">${esc(l)}</text>`).join("")
  );
}

function isFirstOfRow(p: Panel, n: number, panels: Panel[]): boolean {
  return n === 0 || panels[n - 1].plane.orientation !== p.plane.orientation;
}

/** The mosaic as a PNG (RGB). */
export async function volumeMosaic(s: MosaicSpec): Promise<Buffer> {
  const L = mosaicLayout(s);
  const captions = L.panels.map((p, n) => captionSvg(p, isFirstOfRow(p, n, L.panels))).join("");
  const background = `<svg xmlns="http://www.w3.org/2000/svg" width="${L.width}" height="${L.height}"><rect width="${L.width}" height="${L.height}" fill="white"/>${headerSvg(L)}${captions}${footerSvg(s, L)}</svg>`;
  const firsts = L.panels.filter((p, n) => isFirstOfRow(p, n, L.panels));
  const letters = `<svg xmlns="http://www.w3.org/2000/svg" width="${L.width}" height="${L.height}">${firsts.map(edgeLettersSvg).join("")}</svg>`;
  const panels = L.panels.map((p) => ({
    input: Buffer.from(renderPanel(s, p, L.fov, L.scale, L.grey)),
    raw: { width: p.width, height: p.height, channels: 3 as const },
    left: p.x,
    top: p.y,
  }));
  const page = await sharp(Buffer.from(background))
    .composite([...panels, { input: Buffer.from(letters), left: 0, top: 0 }])
    .raw()
    .toBuffer({ resolveWithObject: true });
  return sharp(page.data, { raw: { width: page.info.width, height: page.info.height, channels: page.info.channels } })
    .removeAlpha()
    .png()
    .toBuffer();
}
