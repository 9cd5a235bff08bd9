/**
 * `explain --queue`: one map's units split into shards (unit u belongs to shard u % count). A shard
 * computes exactly the samples the local schedule draws for its units, which is the whole map's work
 * only when each unit's draws depend on that unit's outcomes alone: the block engine's screened ATE
 * (pdcr --schedule paper, pdcr-superpixel) and its one-pass methods (zero, occlusion). The fast
 * schedule's rounds weigh every block against the others, so it is refused.
 */
import type { MethodDefinition } from "../explain/methods.js";
import type { ShardResult } from "./jobs.js";

/** Shards per `explain --queue` map unless --shards says otherwise. */
export const DEFAULT_SHARDS = 8;

/** Why the method (with these options) cannot be split into shards, or undefined when it can. */
export function unshardable(def: MethodDefinition, options: Record<string, unknown>): string | undefined {
  if (def.name === "pdcr" && options.schedule !== "paper")
    return "pdcr's fast schedule (the default) chooses its rounds from every block at once, so its map cannot be split into shards";
  if (!["pdcr", "pdcr-superpixel", "zero", "occlusion"].includes(def.name))
    return `${def.name}'s map cannot be split into shards of units on the queue's workers`;
  return undefined;
}

/** Whether unit `u` is shard `index`'s of `count`. */
export const ownsUnit = (index: number, count: number, u: number) => u % count === index;

/** The samples of one shard's units, from a checkpoint's samples (unit -> outcome by draw). */
export function shardSamples(samples: Record<string, (number | null)[]>, index: number, count: number): Record<string, (number | null)[]> {
  return Object.fromEntries(Object.entries(samples).filter(([u]) => ownsUnit(index, count, Number(u))));
}

/**
 * The shards' samples as one checkpoint of the local run (same key): every shard must have been
 * computed under the same key and hold only its own units.
 */
export function mergeShards(
  results: { index: number; count: number; result: ShardResult }[],
): { key: string; samples: Record<string, (number | null)[]> } | string {
  const keys = new Set(results.map((r) => r.result.key));
  if (keys.size !== 1) return `the shards were computed under ${keys.size} different settings (workers of different segcause versions?)`;
  const samples: Record<string, (number | null)[]> = {};
  for (const { index, count, result } of results)
    for (const [u, values] of Object.entries(result.samples)) {
      if (!ownsUnit(index, count, Number(u))) return `shard ${index + 1} of ${count} returned samples of unit ${u}, which is not its own`;
      samples[u] = values;
    }
  return { key: [...keys][0], samples };
}
