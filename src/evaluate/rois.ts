/**
 * Reproducible RoI selection. A rule `kind:size[xcount]` (e.g. `boundary:32,inside:32,outside:32`,
 * or `boundary:32x3` for three) places square RoIs of `size` pixels (model-input pixels):
 *
 * 1. candidates, on the ground-truth mask resized to the model input (nearest):
 *    - boundary: foreground pixels with at least one 4-neighbour in the background;
 *    - inside: foreground pixels; outside: background pixels;
 * 2. the centre is candidate number ⌊u·n⌋, u = uniform(seed, stream(image id, kind), j) for the
 *    j-th RoI of that kind (a pure function of seed, image id, kind and j);
 * 3. top-left = centre − ⌊size/2⌋, snapped down to a multiple of `align` (default 8, like the
 *    paper's block grid) and clipped so the square lies inside the image.
 *
 * Or a CSV file with a header `image,row,col,size` (model-input pixels): every row whose image id
 * matches is used, in file order.
 */
import { existsSync, statSync } from "node:fs";
import { fail } from "../errors.js";
import type { RoiRect } from "../target/roi.js";
import { decimalInteger } from "../util/decimal.js";
import { readFileBounded } from "../util/read.js";
import { hash3, uniform } from "../util/rng.js";
import { STREAM } from "../util/streams.js";

export type RoiKind = "boundary" | "inside" | "outside";

export interface RoiRule {
  kind: RoiKind;
  size: number;
  count: number;
}

export interface RoiFileRow {
  image: string;
  row: number;
  col: number;
  size: number;
  /** line in the file, for messages */
  line?: number;
}

export type RoiSpec = { rules: RoiRule[]; align: number } | { file: string; rows: RoiFileRow[] };

export interface PlacedRoi {
  /** stable id used in cell names, e.g. boundary32-0 or file-3 */
  id: string;
  kind: RoiKind | "file";
  rect: RoiRect;
}

export function parseRoiSpec(spec: string, align = 8): RoiSpec {
  if (/\.csv$/i.test(spec.trim())) return { file: spec, rows: readRoiCsv(spec) };
  if (existsSync(spec))
    fail(
      `--rois ${spec} is a ${statSync(spec).isDirectory() ? "folder" : "file"}, not a RoI rule or a .csv RoI file`,
      "give a CSV file named *.csv (header image,row,col,size), or rules such as boundary:32",
    );
  const rules = spec.split(",").map((part) => {
    const m = /^\s*(boundary|inside|outside):(\d+)(?:x(\d+))?\s*$/.exec(part);
    if (!m) fail(`cannot parse RoI rule '${part}'`, "use e.g. --rois boundary:32,inside:32 (kind:size[xcount]) or --rois rois.csv");
    const rule = { kind: m[1] as RoiKind, size: Number(m[2]), count: m[3] ? Number(m[3]) : 1 };
    if (rule.size < 1 || rule.count < 1)
      fail(
        `RoI rule '${part.trim()}' asks for ${rule.count < 1 ? "no RoI" : "an empty RoI"}`,
        "size and count must be at least 1, e.g. --rois boundary:32x2",
      );
    return rule;
  });
  if (!Number.isInteger(align) || align < 1) fail(`--roi-align must be a positive integer, got ${align}`);
  return { rules, align };
}

export function readRoiCsv(path: string): RoiFileRow[] {
  const text = readFileBounded(path, { what: "RoI file", kind: "table", hint: "give a CSV with the header image,row,col,size" }).toString("utf8");
  // Keep each line's number in the file for messages (comments and blank lines are skipped).
  const numbered = text
    .split(/\r?\n/)
    .map((l, i) => ({ l: l.trim(), at: i + 1 }))
    .filter(({ l }) => l && !l.startsWith("#"));
  const head =
    numbered
      .shift()
      ?.l.split(",")
      .map((s) => s.trim().toLowerCase()) ?? [];
  const lines = numbered.map(({ l }) => l);
  const col = (name: string) => {
    const i = head.indexOf(name);
    if (i < 0) fail(`RoI file ${path} has no '${name}' column`, "the header must be image,row,col,size");
    return i;
  };
  const [ci, cr, cc, cs] = [col("image"), col("row"), col("col"), col("size")];
  if (lines.length === 0) fail(`RoI file ${path} has a header but no RoI`, "add one line image,row,col,size per RoI");
  const seen = new Map<string, number>();
  return numbered.map(({ l, at }) => {
    const n = at - 2; // the messages below say line n + 2
    const f = l.split(",").map((s) => s.trim());
    const [row, c, size] = [f[cr], f[cc], f[cs]].map((v) => decimalInteger(v ?? ""));
    if (row === undefined || c === undefined || size === undefined) fail(`RoI file ${path} line ${n + 2}: row, col and size must be integers`);
    if (size < 1) fail(`RoI file ${path} line ${n + 2}: size must be at least 1, got ${size}`);
    // A repeated RoI would be computed twice and counted twice in every mean and test.
    const key = `${f[ci]},${row},${c},${size}`;
    const first = seen.get(key);
    if (first !== undefined) fail(`RoI file ${path} line ${n + 2} repeats line ${first} (${key})`, "give each RoI once");
    seen.set(key, n + 2);
    return { image: f[ci], row, col: c, size, line: at };
  });
}

/** A 32-bit stream number from a string (so RoIs depend on the image id, not its position in a list). */
export function stringStream(s: string): number {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = hash3(h, STREAM.roi, s.charCodeAt(i));
  return h;
}

export function candidates(mask: Uint8Array, height: number, width: number, kind: RoiKind): number[] {
  const out: number[] = [];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const p = y * width + x;
      const fg = mask[p] !== 0;
      if (
        kind === "inside"
          ? fg
          : kind === "outside"
            ? !fg
            : fg &&
              ((y > 0 && !mask[p - width]) || (y < height - 1 && !mask[p + width]) || (x > 0 && !mask[p - 1]) || (x < width - 1 && !mask[p + 1]))
      )
        out.push(p);
    }
  }
  return out;
}

export function placeSquare(centre: number, size: number, height: number, width: number, align: number): RoiRect {
  const cy = Math.floor(centre / width),
    cx = centre % width;
  const snap = (v: number, extent: number) => Math.max(0, Math.min(extent - size, Math.floor(Math.max(0, v) / align) * align));
  return { row: snap(cy - Math.floor(size / 2), height), col: snap(cx - Math.floor(size / 2), width), height: size, width: size };
}

/** The RoIs of one image at one model input size; a rule without candidates (e.g. no boundary) yields nothing, with a note. */
export function selectRois(
  spec: RoiSpec,
  imageId: string,
  mask: Uint8Array | undefined,
  height: number,
  width: number,
  seed: number,
  notes: string[] = [],
): PlacedRoi[] {
  if ("rows" in spec) {
    return spec.rows
      .map((r, i) => ({ r, i }))
      .filter(({ r }) => r.image === imageId)
      .map(({ r, i }) => {
        const where = `RoI file ${spec.file}${r.line ? ` line ${r.line}` : ""} (${imageId},${r.row},${r.col},${r.size})`;
        if (r.row < 0 || r.col < 0 || r.row + r.size > height || r.col + r.size > width) {
          fail(
            `${where} lies outside the ${height}x${width} model input`,
            `RoIs are in model-input pixels (the image resized to ${height}x${width}): row + size <= ${height}, col + size <= ${width}`,
          );
        }
        if (r.size >= Math.min(height, width))
          fail(`${where} spans the ${height}x${width} model input: nothing outside it is left to intervene on`, "use a smaller RoI");
        return { id: `file-${i}`, kind: "file" as const, rect: { row: r.row, col: r.col, height: r.size, width: r.size } };
      });
  }
  if (!mask) fail(`image ${imageId} has no ground-truth mask, so RoI rules cannot be applied`, "give --rois file.csv");
  if (spec.align >= Math.min(height, width))
    fail(
      `--roi-align ${spec.align} is not smaller than the ${height}x${width} model input: every RoI would snap to the corner`,
      "use --roi-align 8 (the block grid)",
    );
  const out: PlacedRoi[] = [];
  for (const rule of spec.rules) {
    if (rule.size > Math.min(height, width))
      fail(`RoI size ${rule.size} does not fit the ${height}x${width} model input`, `use a size below ${Math.min(height, width)}`);
    // A RoI as tall or wide as the input leaves too little outside it for curves and block maps.
    if (rule.size >= Math.min(height, width))
      fail(
        `RoI size ${rule.size} spans the ${height}x${width} model input: nothing outside it is left to intervene on`,
        `use a smaller size, e.g. --rois ${rule.kind}:${Math.max(8, Math.floor(Math.min(height, width) / 8))}`,
      );
    const cand = candidates(mask, height, width, rule.kind);
    if (cand.length === 0) {
      notes.push(`${imageId}: no ${rule.kind} pixel in the mask, no ${rule.kind} RoI`);
      continue;
    }
    const stream = stringStream(`${imageId}/${rule.kind}`);
    for (let j = 0; j < rule.count; j++) {
      const centre = cand[Math.floor(uniform(seed, stream, j) * cand.length)];
      out.push({ id: `${rule.kind}${rule.size}-${j}`, kind: rule.kind, rect: placeSquare(centre, rule.size, height, width, spec.align) });
    }
  }
  return out;
}
