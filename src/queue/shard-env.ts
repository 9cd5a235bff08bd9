/**
 * What a shard of an `explain --queue` map was computed with: segcause's and ONNX Runtime's versions
 * (a job and its result carry them; the versions decide the samples, so shards of other versions are
 * never merged) and the worker's machine (recorded: other CPUs may round the last digits otherwise).
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
