/** Reads an explain results folder (what writeAttribution() wrote) for the page: the map, its standard errors, the units, the stats. */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { fail } from "../errors.js";
import { decodeNpy } from "../util/npy.js";

export interface ResultFolder {
  dir: string;
  method: string;
  width: number;
  height: number;
  /** map and standard errors, float32 little-endian, base64 */
  map: string;
  stderr: string;
  mapInfo: unknown;
  stats: unknown;
  manifest: unknown;
}

/** True when `dir` holds a complete explain result (its manifest is written last). */
export function isExplainResult(dir: string): boolean {
  const m = join(dir, "manifest.json");
  if (!existsSync(m)) return false;
  try {
    return JSON.parse(readFileSync(m, "utf8")).format === "segcause.attribution/1";
  } catch {
    return false;
  }
}

/** `dir` itself when it is a result, else its sub-folders that are (one level). */
export function listResults(dir: string): string[] {
  if (!existsSync(dir)) return [];
  if (isExplainResult(dir)) return [dir];
  return readdirSync(dir)
    .map((n) => join(dir, n))
    .filter((p) => statSync(p).isDirectory() && isExplainResult(p))
    .sort();
}

export function readResult(dir: string): ResultFolder {
  if (!isExplainResult(dir))
    fail(`${dir} is not a complete explain result (no segcause.attribution manifest)`, "open a folder written by `segcause explain`");
  const json = (n: string) => JSON.parse(readFileSync(join(dir, n), "utf8"));
  const map = decodeNpy(readFileSync(join(dir, "map.npy")));
  const se = decodeNpy(readFileSync(join(dir, "stderr.npy")));
  const b64 = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("base64");
  const manifest = json("manifest.json");
  return {
    dir,
    method: manifest.method,
    height: map.shape[0],
    width: map.shape[1],
    map: b64(map.data),
    stderr: b64(se.data),
    mapInfo: json("map.json"),
    stats: json("stats.json"),
    manifest,
  };
}
