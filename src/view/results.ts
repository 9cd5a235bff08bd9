/**
 * Reads results folders for the page: an explain folder (what writeAttribution() wrote: the map, its
 * standard errors, the units, the stats) or a components folder (writeComponentEffects(): the ranked
 * effects and the pictures it drew).
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { fail } from "../errors.js";
import { decodeNpy } from "../util/npy.js";

export interface ResultFolder {
  kind: "explain";
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

const KINDS = { "segcause.attribution/1": "explain", "segcause.components/1": "components" } as const;
export type ResultKind = (typeof KINDS)[keyof typeof KINDS];

/** What complete result `dir` holds (its manifest is written last), or undefined. */
export function resultKind(dir: string): ResultKind | undefined {
  const m = join(dir, "manifest.json");
  if (!existsSync(m)) return undefined;
  try {
    return KINDS[JSON.parse(readFileSync(m, "utf8")).format as keyof typeof KINDS];
  } catch {
    return undefined;
  }
}

/** `dir` itself when it is a result, else its sub-folders that are (one level). */
export function listResults(dir: string): { dir: string; kind: ResultKind }[] {
  if (!existsSync(dir)) return [];
  const here = resultKind(dir);
  if (here) return [{ dir, kind: here }];
  return readdirSync(dir)
    .sort()
    .map((n) => join(dir, n))
    .filter((p) => statSync(p).isDirectory())
    .flatMap((p) => {
      const kind = resultKind(p);
      return kind ? [{ dir: p, kind }] : [];
    });
}

export function readResult(dir: string): ResultFolder | ComponentsFolder {
  const kind = resultKind(dir);
  if (kind === "components") return readComponents(dir);
  if (kind !== "explain")
    fail(
      `${dir} is not a complete explain or components result (no segcause manifest)`,
      "open a folder written by `segcause explain` or `segcause components`",
    );
  const json = (n: string) => JSON.parse(readFileSync(join(dir, n), "utf8"));
  const map = decodeNpy(readFileSync(join(dir, "map.npy")));
  const se = decodeNpy(readFileSync(join(dir, "stderr.npy")));
  const b64 = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("base64");
  const manifest = json("manifest.json");
  return {
    kind: "explain",
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

export interface ComponentsFolder {
  kind: "components";
  dir: string;
  level: string;
  ablation: string;
  outcome: string;
  valueUnits: string;
  baseOutcome: number;
  /** ranked by |effect| as components.json holds them */
  units: { rank: number; name: string; effect: number; stderr: number | null; samples: number; status: string }[];
  /** the PNGs the writer drew (bar chart, depth profile, spatial maps), by file name */
  pictures: string[];
  notes: string[];
}

function readComponents(dir: string): ComponentsFolder {
  const c = JSON.parse(readFileSync(join(dir, "components.json"), "utf8"));
  const manifest = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8"));
  return {
    kind: "components",
    dir,
    level: c.level,
    ablation: c.ablation,
    outcome: c.outcome,
    valueUnits: c.valueUnits,
    baseOutcome: c.baseOutcome,
    units: c.units.map((u: ComponentsFolder["units"][number]) => ({
      rank: u.rank,
      name: u.name,
      effect: u.effect,
      stderr: u.stderr,
      samples: u.samples,
      status: u.status,
    })),
    pictures: (manifest.files as string[]).filter((f) => f.endsWith(".png")),
    notes: manifest.notes,
  };
}
