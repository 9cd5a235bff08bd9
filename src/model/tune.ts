/**
 * Execution tuning: a short probe picks the ONNX Runtime layout (one session with all threads, or
 * one single-threaded session per core) and the batch size that push the most inputs per second
 * through this model on this machine. The winner is cached per (model, machine, runtime) so the
 * probe runs once; explicit --threads / --workers / --batch-size skip it.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { Model, type ModelLoadOptions } from "./model.js";
import { Runner } from "./runner.js";
import { runtimeVersions } from "../version.js";

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
  /** cache file (default in the OS temp folder); null disables caching */
  cachePath?: string | null;
}

function candidates(req: TuneRequest, cores: number): { threads: number; workers: number; batchSize: number }[] {
  const layouts = req.threads !== undefined || req.workers !== undefined
    ? [{ workers: req.workers ?? 1, threads: req.threads ?? (req.workers && req.workers > 1 ? 1 : cores) }]
    : [{ workers: 1, threads: cores }, ...(cores > 1 ? [{ workers: cores, threads: 1 }] : [])];
  const batches = req.batchSize !== undefined ? [req.batchSize] : [1, 4, 8];
  return layouts.flatMap((l) => batches.map((batchSize) => ({ ...l, batchSize })));
}

async function measure(path: string, load: ModelLoadOptions, c: { threads: number; workers: number; batchSize: number }, input: Float32Array, seconds: number): Promise<number> {
  const model = await Model.load(path, { ...load, threads: c.threads, workers: c.workers });
  try {
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
  } finally {
    await model.release();
  }
}

/** Probes the candidates not fixed by the request and returns the fastest plan. */
export async function tuneExecution(path: string, sha256: string, input: Float32Array, load: ModelLoadOptions, req: TuneRequest = {}): Promise<ExecutionPlan> {
  const cores = Math.max(1, cpus().length);
  const list = candidates(req, cores);
  if (list.length === 1) return { ...list[0], probe: [], cached: false };
  // workers: "all-threads" — plans probed before every extra worker ran in its own thread are re-measured.
  const key = JSON.stringify({ sha256, cores, versions: runtimeVersions(), workers: "all-threads", list });
  const cachePath = req.cachePath === undefined ? join(tmpdir(), `segcause-tune-${sha256.slice(0, 16)}.json`) : req.cachePath;
  if (cachePath && existsSync(cachePath)) {
    try {
      const saved = JSON.parse(readFileSync(cachePath, "utf8")) as { key: string; plan: ExecutionPlan };
      if (saved.key === key) return { ...saved.plan, cached: true };
    } catch {
      // a damaged cache is re-measured
    }
  }
  const probe = [];
  for (const c of list) probe.push({ ...c, perSecond: await measure(path, load, c, input, req.seconds ?? 0.6) });
  probe.sort((a, b) => b.perSecond - a.perSecond);
  const plan: ExecutionPlan = { threads: probe[0].threads, workers: probe[0].workers, batchSize: probe[0].batchSize, probe, cached: false };
  if (cachePath) {
    try {
      writeFileSync(cachePath, JSON.stringify({ key, plan }));
    } catch {
      // caching is an optimisation only
    }
  }
  return plan;
}
