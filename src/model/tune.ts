/**
 * Execution tuning: a short probe picks the ONNX Runtime layout (one session with all threads, or
 * one single-threaded session per core) and the batch size that push the most inputs per second
 * through this model on this machine. Each candidate reconfigures the loaded model (its bytes are
 * already in memory), and the model is left at the winner's layout. The winner is cached per
 * (model, machine, runtime) in the user's cache folder so the probe runs once; explicit --threads /
 * --workers / --batch-size skip it.
 */
import { chmodSync, lstatSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { cpus, homedir } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import { readJsonBounded } from "../util/read.js";
import { runtimeVersions } from "../version.js";
import type { Model } from "./model.js";
import { Runner } from "./runner.js";

export interface ExecutionPlan {
  threads: number;
  workers: number;
  batchSize: number;
  /** inputs per second measured for each candidate, best first */
  probe: { threads: number; workers: number; batchSize: number; perSecond: number }[];
  cached: boolean;
}

export interface TuneRequest {
  threads?: number;
  workers?: number;
  batchSize?: number;
  /** seconds spent per candidate (default 0.6) */
  seconds?: number;
  /** cache file (default in the user's cache folder, see tuneCachePath); null disables caching */
  cachePath?: string | null;
}

function candidates(req: TuneRequest, cores: number): { threads: number; workers: number; batchSize: number }[] {
  const layouts =
    req.threads !== undefined || req.workers !== undefined
      ? [{ workers: req.workers ?? 1, threads: req.threads ?? (req.workers && req.workers > 1 ? 1 : cores) }]
      : [{ workers: 1, threads: cores }, ...(cores > 1 ? [{ workers: cores, threads: 1 }] : [])];
  const batches = req.batchSize !== undefined ? [req.batchSize] : [1, 4, 8];
  return layouts.flatMap((l) => batches.map((batchSize) => ({ ...l, batchSize })));
}

async function measure(
  model: Model,
  c: { threads: number; workers: number; batchSize: number },
  input: Float32Array,
  seconds: number,
): Promise<number> {
  await model.configure(c);
  const runner = new Runner(model, { batchSize: c.batchSize });
  const items = Array.from({ length: c.batchSize * c.workers * 2 }, (_, i) => i);
  const write = (_: number, dst: Float32Array) => dst.set(input);
  await runner.evaluate(items.slice(0, c.batchSize * c.workers), write, () => 0); // warm-up
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000 || n < items.length) {
    await runner.evaluate(items, write, () => 0);
    n += items.length;
  }
  return n / ((performance.now() - t0) / 1000);
}

/**
 * Probes the candidates not fixed by the request and returns the fastest plan; `model` is left
 * configured with the plan's threads and workers (the caller makes its Runner with the batch size).
 */
export async function tuneExecution(model: Model, input: Float32Array, req: TuneRequest = {}): Promise<ExecutionPlan> {
  const cores = Math.max(1, cpus().length);
  const list = candidates(req, cores);
  const chosen = async (plan: ExecutionPlan) => (await model.configure(plan), plan);
  if (list.length === 1) return chosen({ ...list[0], probe: [], cached: false });
  const { sha256 } = model;
  // workers: "all-threads" — plans probed before every extra worker ran in its own thread are re-measured.
  // A GPU's plan is another plan; CPU keys stay as they were before devices existed.
  const device = model.device === "cpu" ? {} : { device: model.device };
  const key = JSON.stringify({ sha256, cores, versions: runtimeVersions(), workers: "all-threads", list, ...device });
  const cachePath = req.cachePath === undefined ? tuneCachePath(sha256) : req.cachePath;
  const saved = cachePath ? readCache(cachePath, key, list) : undefined;
  if (saved) return chosen({ ...saved, cached: true });
  const probe = [];
  for (const c of list) probe.push({ ...c, perSecond: await measure(model, c, input, req.seconds ?? 0.6) });
  probe.sort((a, b) => b.perSecond - a.perSecond);
  const plan: ExecutionPlan = { threads: probe[0].threads, workers: probe[0].workers, batchSize: probe[0].batchSize, probe, cached: false };
  if (cachePath) writeCache(cachePath, { key, plan }, req.cachePath === undefined);
  return chosen(plan);
}

/**
 * The cache file of a model: in the user's own cache folder ($XDG_CACHE_HOME/segcause, else
 * ~/.cache/segcause), not the shared temp folder, where another user could plant a plan.
 */
export function tuneCachePath(sha256: string): string {
  const base = process.env.XDG_CACHE_HOME?.startsWith("/") ? process.env.XDG_CACHE_HOME : join(homedir(), ".cache");
  return join(base, "segcause", `tune-${sha256.slice(0, 16)}.json`);
}

const Candidate = {
  threads: z.number().int().min(1).max(256),
  workers: z.number().int().min(1).max(64),
  batchSize: z.number().int().min(1).max(4096),
};
const CacheSchema = z.object({
  key: z.string(),
  plan: z.object({ ...Candidate, probe: z.array(z.object({ ...Candidate, perSecond: z.number().nonnegative() })).max(64), cached: z.boolean() }),
});

/**
 * A cached plan, trusted only when the file is the user's own, writable by nobody else, valid, and
 * one of the candidates this run would measure; anything else is measured again.
 */
function readCache(path: string, key: string, list: { threads: number; workers: number; batchSize: number }[]): ExecutionPlan | undefined {
  try {
    const st = lstatSync(path);
    if (!st.isFile() || (st.mode & 0o022) !== 0 || (process.getuid && st.uid !== process.getuid())) return undefined;
    const parsed = CacheSchema.safeParse(readJsonBounded(path, { what: "tuning cache", kind: "cache", hint: "" }));
    if (!parsed.success || parsed.data.key !== key) return undefined;
    const p = parsed.data.plan;
    if (!list.some((c) => c.threads === p.threads && c.workers === p.workers && c.batchSize === p.batchSize)) return undefined;
    return p;
  } catch {
    return undefined; // missing or damaged: measured again
  }
}

/** Writes the cache with owner-only permissions (file 0600; segcause's own folder 0700), replacing the file whole. */
function writeCache(path: string, value: { key: string; plan: ExecutionPlan }, ownFolder: boolean): void {
  const dir = join(path, "..");
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (ownFolder) chmodSync(dir, 0o700);
    writeFileSync(tmp, JSON.stringify(value), { mode: 0o600, flag: "wx" });
    renameSync(tmp, path);
  } catch {
    // caching is an optimisation only
    try {
      rmSync(tmp, { force: true });
    } catch {
      // nothing was left, or nothing can be removed
    }
  }
}
