/**
 * What a queued result (a shard of an `explain --queue` map, a control or cell of `evaluate --queue`)
 * was computed with: segcause's and ONNX Runtime's versions (the result carries them; the versions
 * decide the numbers, so results of other versions are refused) and the worker's machine (recorded:
 * other CPUs may round the last digits otherwise).
 */
import { cpus, hostname } from "node:os";
import { runtimeVersions } from "../version.js";

export interface ShardVersions {
  segcause: string;
  onnxruntime: string;
}

export interface ShardMachine {
  host: string;
  cpu: string;
  cores: number;
}

/** This process's versions. */
export function shardVersions(): ShardVersions {
  const v = runtimeVersions();
  return { segcause: v.segcause, onnxruntime: v.onnxruntimeNode };
}

/** This process's machine. */
export function shardMachine(): ShardMachine {
  const c = cpus();
  return { host: hostname(), cpu: c[0]?.model.trim() ?? "unknown", cores: c.length };
}

/** How `got` differs from this process's versions, or undefined when it does not. */
export function versionMismatch(got: ShardVersions, mine = shardVersions()): string | undefined {
  const diff = (["segcause", "onnxruntime"] as const).filter((k) => got[k] !== mine[k]);
  return diff.length ? diff.map((k) => `${k} ${got[k]} (this run: ${mine[k]})`).join(", ") : undefined;
}

/** What a worker's result says about where it was computed. */
export interface ComputedBy extends ShardVersions {
  machine: ShardMachine;
}

/** This worker's versions and machine, as its results carry them. */
export function computedHere(): ComputedBy {
  return { ...shardVersions(), machine: shardMachine() };
}

/** The workers of a queued run as its provenance records them (explain's provenance.queue, evaluate's run.json). */
export interface QueueWorkers {
  /** the version of segcause every result was computed with (the enqueuer's: others are refused) */
  segcause: string;
  /** the distinct machines and ONNX Runtime versions that computed the results */
  workers: { host: string; cpu: string; cores: number; onnxruntime: string }[];
  /** every worker had this machine's CPU model, core count and ONNX Runtime version (not a proof of identical numbers) */
  workersLikeThisMachine: boolean;
}

/** The distinct workers of `results` (of this process's versions: others were refused) and whether they are like this machine. */
export function queueWorkers(results: (ComputedBy | QueueWorkers["workers"][number])[]): QueueWorkers {
  const versions = shardVersions();
  const here = shardMachine();
  const all = results.map((r) => ("machine" in r ? { ...r.machine, onnxruntime: r.onnxruntime } : r));
  const workers = [...new Map(all.map((w) => [JSON.stringify([w.host, w.cpu, w.cores, w.onnxruntime]), w])).values()];
  const like = workers.every((m) => m.cpu === here.cpu && m.cores === here.cores && m.onnxruntime === versions.onnxruntime);
  return { segcause: versions.segcause, workers, workersLikeThisMachine: like };
}

/** What the one line refusing a result of other versions tells the user to do. */
export const rerunHint = (v: ShardVersions = shardVersions()) =>
  `run workers of segcause ${v.segcause} with onnxruntime-node ${v.onnxruntime} on the queue, then rerun the same command: the refused job is queued again`;
