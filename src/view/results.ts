/**
 * Reads results folders for the page: an explain folder (what writeAttribution() wrote: the map, its
 * standard errors, the units, the stats) or a components folder (writeComponentEffects(): the ranked
 * effects and the pictures it drew).
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { fail } from "../errors.js";
import { outputKind } from "../util/files.js";
import { decodeNpy } from "../util/npy.js";
import type { ComponentsFolder } from "./api-types.js";

export type { ComponentsFolder } from "./api-types.js";

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

export type ResultKind = "explain" | "components" | "evaluate";

/**
 * What complete result `dir` holds, or undefined: an explain or components folder by the manifest its command
 * writes last (outputKind, the CLI's own test), an evaluate folder by its run.json and the report.html the page
 * shows (a published folder such as docs/results keeps those without its cells/).
 */
export function resultKind(dir: string): ResultKind | undefined {
  if (existsSync(join(dir, "run.json")) && existsSync(join(dir, "report.html"))) return "evaluate";
  const kind = outputKind(dir);
  // a volume's explain folder (map.nii.gz, no map.npy) is not drawn by the 2D views: not listed, rather than listed and failing
  if (kind === "explain" && !existsSync(join(dir, "map.npy")) && existsSync(join(dir, "map.nii.gz"))) return undefined;
  return kind === "explain" || kind === "components" ? kind : undefined;
}

/** A volume's complete explain folder, by the manifest `segcause explain` writes last on a volume: the volume panel draws it. */
export function isVolumeResult(dir: string): boolean {
  try {
    return JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8"))?.format === "segcause.volume-result/1" && existsSync(join(dir, "map.nii.gz"));
  } catch {
    return false; // no manifest (or not ours)
  }
}

const isDir = (p: string): boolean => {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false; // a dangling link, or gone since listed
  }
};

/** `dir` itself when it is a result, else its sub-folders that are (one level); anything else in it is skipped. */
export function listResults<K extends string = ResultKind>(
  dir: string,
  kindOf: (dir: string) => K | undefined = resultKind as never,
): { dir: string; kind: K }[] {
  if (!isDir(dir)) return [];
  const here = kindOf(dir);
  if (here) return [{ dir, kind: here }];
  return readdirSync(dir)
    .sort()
    .map((n) => join(dir, n))
    .filter(isDir)
    .flatMap((p) => {
      const kind = kindOf(p);
      return kind ? [{ dir: p, kind }] : [];
    });
}

/** The volume results in `dir` (itself, or one level down), as listResults finds the 2D ones. */
export function listVolumeResults(dir: string): string[] {
  return listResults(dir, (d) => (isVolumeResult(d) ? "volume" : undefined)).map((r) => r.dir);
}

/** What the volume panel needs of a volume result: its method, RoI and the volume it was made from (as its provenance records). */
export function readVolumeResult(dir: string): {
  dir: string;
  method: string;
  roi: string;
  valueUnits: string;
  imagePath?: string;
  imageSha256?: string;
} {
  const m = readPart(dir, "map.json", (b) => JSON.parse(b.toString("utf8"))) as {
    method?: string;
    roi?: string;
    valueUnits?: string;
    provenance?: { case?: { imagePath?: string; imageSha256?: string } };
  };
  const c = m.provenance?.case;
  if (typeof m.method !== "string" || typeof c?.imageSha256 !== "string")
    fail(`${dir}/map.json has no method or provenance (the volume's SHA-256), so it is not a complete volume result`, "rerun its command");
  return {
    dir,
    method: m.method,
    roi: String(m.roi ?? ""),
    valueUnits: String(m.valueUnits ?? ""),
    imagePath: c.imagePath,
    imageSha256: c.imageSha256,
  };
}

/** A file of the result `dir`, parsed: one line naming it when it is missing or unreadable (deleted since, hand-edited). */
function readPart<T>(dir: string, name: string, parse: (bytes: Buffer) => T): T {
  try {
    return parse(readFileSync(join(dir, name)));
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === "ENOENT" ? "is missing" : `cannot be read (${(e as Error).message.split("\n")[0]})`;
    fail(`${join(dir, name)} ${why}, so ${dir} is not a complete result`, "rerun the command that wrote the folder, or open another one");
  }
}

const json = (b: Buffer): unknown => JSON.parse(b.toString("utf8"));

/** A components folder as read, before the server matches its image (by `imageSha256`) to the listed ones. */
export type ComponentsRead = Omit<ComponentsFolder, "match"> & { imageSha256?: string };

export function readResult(dir: string): ResultFolder | ComponentsRead | EvaluateFolder {
  const kind = resultKind(dir);
  if (kind === "components") return readComponents(dir);
  if (kind === "evaluate") return readEvaluate(dir);
  if (kind !== "explain")
    fail(
      `${dir} is not a complete explain, components or evaluate result (no segcause manifest, nor run.json with report.html)`,
      "open a folder written by `segcause explain`, `segcause components` or `segcause evaluate`",
    );
  const map = readPart(dir, "map.npy", decodeNpy);
  const se = readPart(dir, "stderr.npy", decodeNpy);
  const b64 = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("base64");
  const manifest = readPart(dir, "manifest.json", json) as { method: string };
  return {
    kind: "explain",
    dir,
    method: manifest.method,
    height: map.shape[0],
    width: map.shape[1],
    map: b64(map.data),
    stderr: b64(se.data),
    mapInfo: readPart(dir, "map.json", json),
    stats: readPart(dir, "stats.json", json),
    manifest,
  };
}

function readComponents(dir: string): ComponentsRead {
  // biome-ignore lint/suspicious/noExplicitAny: components.json as the components writer wrote it
  const c = readPart(dir, "components.json", json) as any;
  const manifest = readPart(dir, "manifest.json", json) as { files: string[]; notes: string[]; provenance?: { case?: { imageSha256?: unknown } } };
  const pictures = manifest.files.filter((f) => f.endsWith(".png"));
  const sha = manifest.provenance?.case?.imageSha256;
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
    pictures,
    spatial: c.level === "spatial" ? pictures.filter((f) => f.startsWith("spatial-")) : [],
    notes: manifest.notes,
    imageSha256: typeof sha === "string" ? sha : undefined,
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
  const run = readPart(dir, "run.json", json) as { commands?: unknown };
  const runs = join(dir, "runs");
  const more = existsSync(runs) ? readdirSync(runs).filter((f) => f.endsWith(".json")) : [];
  const commands = [
    ...(Array.isArray(run.commands) ? run.commands : []),
    ...more
      .map((f) => (readPart(dir, join("runs", f), json) as { command?: unknown } | null)?.command)
      .filter((c: unknown) => typeof c === "string" && c),
  ];
  return { kind: "evaluate", dir, commands: [...new Set(commands as string[])] };
}
