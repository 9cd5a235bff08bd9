/**
 * An evaluate folder's per-cell maps for the page: the cells that kept their map (cells/<dataset>/<model>/
 * <image>/<roi>/<method>/map.npy, where `segcause evaluate` writes it; a published folder has none), listed
 * by the page's filters, and one cell's map with the image it explains (matched by the SHA-256 its
 * attribution.json records, as an explain result's).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fail } from "../errors.js";
import { type CellId, cellDir } from "../evaluate/store.js";
import { decodeNpy } from "../util/npy.js";
import type { EvaluateCell, EvaluateCellList } from "./api-types.js";

export type { EvaluateCell, EvaluateCellList } from "./api-types.js";

/** cells listed at most (cells.jsonl has them all) */
const MAX_CELLS = 300;

/** The cells of `dir` with a map, for a model and a method ("" for all), in cells.jsonl's order. */
export function evaluateCells(dir: string, filter: { model: string; method: string }): EvaluateCellList {
  const file = join(dir, "cells.jsonl");
  if (!existsSync(join(dir, "cells")) || !existsSync(file)) return { total: 0, cells: [] };
  const cells: EvaluateCellList["cells"] = [];
  for (const line of readFileSync(file, "utf8").split("\n")) {
    if (!line.trim()) continue;
    const c = JSON.parse(line) as { id: CellId; method: string };
    if ((filter.model && c.id.model !== filter.model) || (filter.method && c.method !== filter.method)) continue;
    if (existsSync(join(cellDir(dir, c.id, c.method), "map.npy"))) cells.push({ ...c.id, method: c.method });
  }
  return { total: cells.length, cells: cells.slice(0, MAX_CELLS) };
}

/** One cell's map (float32 little-endian, base64), its RoI and the image SHA-256 its provenance records. */
export function evaluateCell(dir: string, id: CellId, method: string): Omit<EvaluateCell, "match"> & { imageSha256?: string } {
  for (const [k, v] of Object.entries({ ...id, method }))
    if (!v) fail(`no ${k} given for the cell`, "choose a cell from the folder's cell list (dataset, model, image, roi and method)");
  const at = cellDir(dir, id, method);
  if (!existsSync(join(at, "map.npy")))
    fail(`${dir} has no map for cell ${[id.dataset, id.model, id.image, id.roi, method].join("/")}`, "choose a cell from the folder's cell list");
  const map = decodeNpy(readFileSync(join(at, "map.npy")));
  // biome-ignore lint/suspicious/noExplicitAny: attribution.json as the evaluate cell writer wrote it
  let a: any;
  try {
    a = JSON.parse(readFileSync(join(at, "attribution.json"), "utf8"));
  } catch (e) {
    fail(
      `${join(at, "attribution.json")} cannot be read (${(e as Error).message.split("\n")[0]})`,
      "rerun the folder's evaluate command to rewrite the cell",
    );
  }
  const sha = a.provenance?.case?.imageSha256;
  return {
    ...id,
    method,
    height: map.shape[0],
    width: map.shape[1],
    map: Buffer.from(map.data.buffer, map.data.byteOffset, map.data.byteLength).toString("base64"),
    rect: a.roi,
    signed: a.signed !== false,
    valueUnits: a.valueUnits,
    imageSha256: typeof sha === "string" ? sha : undefined,
  };
}
