/**
 * The on-disk layout of a benchmark run. Every finished (model, image, RoI, method) cell is one
 * folder whose `cell.json` is written last and atomically (temp file + rename): a folder with
 * `cell.json` is complete, anything else is an unfinished cell that a rerun recomputes. The random
 * control of each (model, image, RoI) is its own atomic file, shared by the methods.
 *
 *   out/cells/<dataset>/<model>/<image>/<roi>/<method>/{map.npy, attribution.json, cell.json}
 *   out/controls/<dataset>/<model>/<image>/<roi>.json
 */
import { type Dirent, existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { RoiRect } from "../target/roi.js";
import { writeFileAtomic } from "../util/atomic.js";
import { assertInside } from "../util/files.js";
import { sha256 } from "../util/hash.js";
import type { CurvePair, Endpoints, TopK } from "./curves.js";
import type { FillName } from "./fills.js";

export interface CellId {
  dataset: string;
  model: string;
  image: string;
  roi: string;
}

export interface FillResult {
  ends: Endpoints;
  curves: CurvePair;
  topk: TopK[];
  /** area-matched top-k (--top-area) */
  topArea?: TopK[];
}

/**
 * Where a record's RoI lies: a rectangle on an image, or on a volume the RoI's bounds in the model's
 * box, [z0, y0, x0, z1, y1, x1] inclusive (a volume's RoI is a structure of its label map).
 */
export type RoiPlace = { roiRect: RoiRect; roiKind: string } | { roiBox: [number, number, number, number, number, number]; roiKind: string };

export type ControlRecord = RoiPlace & {
  format: "segcause.evalcontrol/1";
  key: string;
  id: CellId;
  status: "ok" | "skipped";
  reason?: string;
  baseOutcome?: number;
  outcome?: string;
  reference?: string;
  /** per fill: end points and the random-order curves (and area-matched top-k) */
  fills?: Partial<Record<FillName, { ends: Endpoints; curves: CurvePair; topArea?: TopK[] }>>;
  /** per fill: the distance-to-RoI order's curves (--controls distance) */
  distance?: Partial<Record<FillName, { curves: CurvePair; topArea?: TopK[] }>>;
  passes?: number;
};

export type CellRecord = RoiPlace & {
  format: "segcause.evalcell/1";
  key: string;
  id: CellId;
  method: string;
  /** every option of the method, defaults included */
  options: Record<string, unknown>;
  seed: number;
  baseOutcome: number;
  outcome: string;
  reference: string;
  signed: boolean;
  fills: Partial<Record<FillName, FillResult>>;
  /** flat metric name → value (null = undefined for this cell); the summary reads only this */
  metrics: Record<string, number | null>;
  cost: { forwardPasses: number; backwardPasses: number; wallMs: number; evaluationPasses: number; stabilityPasses: number };
  notes: string[];
};

export interface FailedRecord {
  format: "segcause.evalfailed/1";
  key: string;
  id: CellId;
  method: string;
  options: Record<string, unknown>;
  reason: string;
  /** the REFUSALS_REVISION it was recorded under (absent: 1); older refusals are retried */
  refusals?: number;
}

/**
 * One path component from a name (dataset, model, image, RoI, method): separators, NUL and other
 * characters become "_", and a name that would be no folder of its own ("", ".", "..", "...")
 * gets a leading "_". Other names keep the component they always had (cells stay where they are).
 */
export const safe = (s: string) => {
  const t = s.replace(/[^A-Za-z0-9._-]+/g, "_");
  return /^\.*$/.test(t) ? `_${t}` : t;
};

/** `path` after checking that it lies inside `out` (links resolved): no name can send a write elsewhere. */
function under(out: string, path: string): string {
  assertInside(out, path);
  return path;
}

export function cellDir(out: string, id: CellId, method: string): string {
  return under(out, join(out, "cells", safe(id.dataset), safe(id.model), safe(id.image), safe(id.roi), safe(method)));
}

export function controlPath(out: string, id: CellId): string {
  return under(out, join(out, "controls", safe(id.dataset), safe(id.model), safe(id.image), `${safe(id.roi)}.json`));
}

/** Writes `path` atomically (unique temp file created exclusively, flushed, renamed), creating its folder. */
export async function writeAtomic(path: string, data: string | Uint8Array): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFileAtomic(path, data);
}

export function readJson<T>(path: string): T | undefined {
  if (!existsSync(path)) return undefined;
  try {
    return JSON.parse(readFileSync(path, "utf8")) as T;
  } catch {
    return undefined;
  }
}

function walk(dir: string, name: string, found: string[]): void {
  let entries: Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    if (e.isDirectory()) walk(join(dir, e.name), name, found);
    else if (e.name === name || (name === "*.json" && e.name.endsWith(".json"))) found.push(join(dir, e.name));
  }
}

/** Every finished cell under `out`, in a stable order (sorted paths). */
export function listCells(out: string): CellRecord[] {
  const files: string[] = [];
  walk(join(out, "cells"), "cell.json", files);
  return files
    .sort()
    .map((f) => readJson<CellRecord>(f))
    .filter((c): c is CellRecord => c?.format === "segcause.evalcell/1");
}

export function listControls(out: string): ControlRecord[] {
  const files: string[] = [];
  walk(join(out, "controls"), "*.json", files);
  return files
    .sort()
    .map((f) => readJson<ControlRecord>(f))
    .filter((c): c is ControlRecord => c?.format === "segcause.evalcontrol/1");
}

export function listFailed(out: string): FailedRecord[] {
  const files: string[] = [];
  walk(join(out, "cells"), "failed.json", files);
  return files
    .sort()
    .map((f) => readJson<FailedRecord>(f))
    .filter((c): c is FailedRecord => c?.format === "segcause.evalfailed/1");
}

/**
 * One evaluate command that wrote into a folder, with its protocol and method options. Each
 * distinct command has its own file under runs/, so evaluate processes sharing a folder (e.g. one
 * per dataset) never overwrite each other's record.
 */
export interface RunRecord {
  format: "segcause.evalrun/1";
  command: string;
  /** ISO time of the command's first start (orders the records) */
  started?: string;
  protocol: Record<string, unknown>;
  methods: { name: string; options: Record<string, unknown> }[];
}

export const runRecordPath = (out: string, command: string) => join(out, "runs", `${sha256(command).slice(0, 16)}.json`);

export function listRuns(out: string): RunRecord[] {
  const files: string[] = [];
  walk(join(out, "runs"), "*.json", files);
  return files
    .map((f) => readJson<RunRecord>(f))
    .filter((r): r is RunRecord => r?.format === "segcause.evalrun/1")
    .sort((a, b) => (a.started ?? "").localeCompare(b.started ?? "") || a.command.localeCompare(b.command));
}
