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

/** What complete result `dir` holds (an explain or components manifest, written last; an evaluate run with its report), or undefined. */
export function resultKind(dir: string): ResultKind | "evaluate" | undefined {
  if (existsSync(join(dir, "run.json")) && existsSync(join(dir, "report.html"))) return "evaluate";
  const m = join(dir, "manifest.json");
  if (!existsSync(m)) return undefined;
  try {
    return KINDS[JSON.parse(readFileSync(m, "utf8")).format as keyof typeof KINDS];
  } catch {
    return undefined;
  }
}

/** `dir` itself when it is a result, else its sub-folders that are (one level). */
export function listResults(dir: string): { dir: string; kind: ResultKind | "evaluate" }[] {
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

export function readResult(dir: string): ResultFolder | ComponentsFolder | EvaluateFolder {
  const kind = resultKind(dir);
  if (kind === "components") return readComponents(dir);
  if (kind === "evaluate") return readEvaluate(dir);
  if (kind !== "explain")
    fail(
      `${dir} is not a complete explain, components or evaluate result (no segcause manifest, nor run.json with report.html)`,
      "open a folder written by `segcause explain`, `segcause components` or `segcause evaluate`",
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

export interface EvaluateFolder {
  kind: "evaluate";
  dir: string;
  /** the commands that wrote into the folder */
  commands: string[];
}

/** An evaluate folder: the page shows the report.html `segcause evaluate` wrote (its tables and plots). */
function readEvaluate(dir: string): EvaluateFolder {
  const run = JSON.parse(readFileSync(join(dir, "run.json"), "utf8"));
  const runs = join(dir, "runs");
  const more = existsSync(runs) ? readdirSync(runs).filter((f) => f.endsWith(".json")) : [];
  const commands = [
    ...(Array.isArray(run.commands) ? run.commands : []),
    ...more.map((f) => JSON.parse(readFileSync(join(runs, f), "utf8")).command).filter((c: unknown) => typeof c === "string" && c),
  ];
  return { kind: "evaluate", dir, commands: [...new Set(commands as string[])] };
}
