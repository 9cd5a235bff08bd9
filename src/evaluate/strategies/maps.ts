/**
 * The attribution maps a strategy analysis reads: found in evaluate outputs (cells/.../map.npy +
 * cell.json) or explain outputs (map.npy + manifest.json), each counted once, and read with checks.
 */
import { type Dirent, existsSync, readdirSync, readFileSync, realpathSync } from "node:fs";
import { basename, join } from "node:path";
import { fail } from "../../errors.js";
import type { RoiRect } from "../../target/roi.js";
import { sha256 } from "../../util/hash.js";
import { decodeNpy } from "../../util/npy.js";
import type { CellRecord } from "../store.js";
import type { StrategyStats } from "./stats.js";

export interface MapEntry {
  dataset: string;
  model: string;
  image: string;
  roi: string;
  method: string;
  roiRect: RoiRect;
  height: number;
  width: number;
  tau: number;
  /** signed map (negative = support) or unsigned importance; unknown for explain outputs */
  signed?: boolean;
  /** the map's own block size in px (block methods), when its record gives one */
  block?: number;
  path: string;
  /** where the map came from, as its own record says: enough to find or recompute it */
  source: { modelSha256?: string; seed?: number; cellKey?: string };
}

export interface MapResult extends MapEntry {
  /** the block grid the statistics used (px) */
  block: number;
  stats: StrategyStats;
  /** of the map.npy read: ties every statistic to the exact map */
  mapSha256: string;
}

// biome-ignore lint/suspicious/noExplicitAny: map.json/cell.json of any segcause version, each field checked where it is read
function readJsonFile(path: string): any {
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch {
    return undefined;
  }
}

/** Every map under the given folders (evaluate cells or explain outputs), in a stable order. */
export function findMaps(dirs: readonly string[], unreadable: string[] = [], duplicates: string[] = []): MapEntry[] {
  const out: MapEntry[] = [];
  const visit = (dir: string) => {
    let entries: Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    const names = new Set(entries.map((e) => e.name));
    if (names.has("map.npy")) {
      const npy = join(dir, "map.npy");
      if (names.has("cell.json")) {
        const c = readJsonFile(join(dir, "cell.json")) as CellRecord | undefined;
        if (c?.format !== "segcause.evalcell/1") unreadable.push(join(dir, "cell.json"));
        // a volume's cell (its RoI has bounds, not a rectangle): strategies classify 2D maps
        else if ("roiRect" in c) {
          const meta = readJsonFile(join(dir, "attribution.json"));
          const source = { modelSha256: meta?.provenance?.model?.sha256, seed: c.seed, cellKey: c.key };
          const block = Number(c.options.block) || undefined;
          out.push({
            dataset: c.id.dataset,
            model: c.id.model,
            image: c.id.image,
            roi: c.id.roi,
            method: c.method,
            roiRect: c.roiRect,
            height: meta?.height ?? 0,
            width: meta?.width ?? 0,
            tau: Number(c.options.tau ?? 0) || 0,
            signed: c.signed,
            block,
            path: npy,
            source,
          });
        }
      } else if (names.has("manifest.json")) {
        const m = readJsonFile(join(dir, "manifest.json"));
        if (m?.format !== "segcause.attribution/1") unreadable.push(join(dir, "manifest.json"));
        else {
          const prov = m.provenance ?? {};
          const imagePath: string = prov.case?.imagePath ?? "";
          const ds = /\/([^/]+)\/images\/[^/]+$/.exec(imagePath)?.[1] ?? "-";
          const roi: RoiRect = prov.target?.roi;
          out.push({
            dataset: ds,
            model: basename(String(prov.model?.path ?? "model")).replace(/\.onnx$/i, ""),
            image: String(prov.case?.id ?? basename(dir)),
            roi: roi ? `${roi.row},${roi.col},${roi.height}x${roi.width}` : "-",
            method: String(m.method),
            roiRect: roi,
            height: 0,
            width: 0,
            tau: Number(prov.settings?.tau ?? 0) || 0,
            block: Number(prov.settings?.blockSize) || undefined,
            path: npy,
            source: { modelSha256: prov.model?.sha256, seed: prov.seed },
          });
        }
      }
    }
    for (const e of entries) if (e.isDirectory() && !e.name.startsWith(".")) visit(join(dir, e.name));
  };
  for (const d of dirs) {
    if (!existsSync(d)) fail(`${d} does not exist`, "pass folders written by `segcause evaluate` or `segcause explain`");
    visit(d);
  }
  return distinctMaps(
    out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)),
    duplicates,
  );
}

/**
 * One entry per map: the same file reached twice (overlapping or repeated folders, links) or a copy
 * of the same cell is kept once (listed in `duplicates`), since each map must count once in the
 * statistics; two different maps for one (dataset, model, image, RoI, method) are refused.
 */
function distinctMaps(entries: MapEntry[], duplicates: string[]): MapEntry[] {
  const byIdentity = new Map<string, MapEntry>();
  const seenFiles = new Set<string>();
  const out: MapEntry[] = [];
  for (const e of entries) {
    const real = realpathSync(e.path);
    if (seenFiles.has(real)) {
      duplicates.push(e.path);
      continue;
    }
    seenFiles.add(real);
    const id = `${e.dataset}|${e.model}|${e.image}|${e.roi}|${e.method}`;
    const first = byIdentity.get(id);
    if (first) {
      const same =
        first.source.cellKey !== undefined ? first.source.cellKey === e.source.cellKey : readFileSync(first.path).equals(readFileSync(e.path));
      if (same) {
        duplicates.push(e.path);
        continue;
      }
      const otherModel = first.source.modelSha256 && e.source.modelSha256 && first.source.modelSha256 !== e.source.modelSha256;
      fail(
        `two different ${e.method} maps for model ${e.model}, image ${e.image}, RoI ${e.roi}: ${first.path} and ${e.path}`,
        otherModel
          ? `they come from two different models named '${e.model}' (their hashes differ), whose statistics would be pooled: give the models distinct file names`
          : "statistics are per (model, image, RoI): pass the folders of one protocol (or seed, or class) at a time",
      );
    }
    byIdentity.set(id, e);
    out.push(e);
  }
  return out;
}

export function loadMap(e: MapEntry): { map: Float32Array; height: number; width: number; sha256: string } {
  let npy: { data: Float32Array; shape: number[] };
  let bytes: Buffer;
  try {
    bytes = readFileSync(e.path);
    npy = decodeNpy(bytes);
  } catch (err) {
    fail(
      `${e.path} is not a readable attribution map (${(err as Error).message})`,
      "rerun the `segcause explain` or `segcause evaluate` that wrote it, or remove its folder",
    );
  }
  const { data, shape } = npy;
  const redo = "rerun the `segcause explain` or `segcause evaluate` that wrote it, or remove its folder";
  if (shape.length !== 2)
    fail(`${e.path} is not a 2-D attribution map (shape [${shape.join(", ")}])`, "pass folders written by `segcause evaluate` or `segcause explain`");
  if (shape[0] * shape[1] !== data.length) fail(`${e.path} is damaged: ${data.length} values for its shape [${shape.join(", ")}]`, redo);
  if (e.height && e.width && (shape[0] !== e.height || shape[1] !== e.width))
    fail(`${e.path} is ${shape[0]}x${shape[1]} but its cell records a ${e.height}x${e.width} map`, redo);
  const bad = data.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) fail(`${e.path} holds a non-finite value (${data[bad]}) at row ${Math.floor(bad / shape[1])}, col ${bad % shape[1]}`, redo);
  return { map: data, height: shape[0], width: shape[1], sha256: sha256(bytes) };
}
