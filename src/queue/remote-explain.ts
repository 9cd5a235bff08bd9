/**
 * The enqueuing side of `explain --queue`: the map's units go to the workers as shards (shards.ts),
 * each shard's samples come back as its job's return value and are kept in the output folder
 * (`.segcause-shards/`, so a restarted run does not queue a finished shard again) and dropped from
 * Redis; once all are back they become the local run's checkpoint, and the local code path then
 * reads every sample from it and computes none, so the map is the local run's bit for bit.
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Case } from "../data/case.js";
import { fail } from "../errors.js";
import type { Provenance } from "../explain/attribution.js";
import type { IncrementalMode } from "../explain/roi-executor.js";
import type { Model } from "../model/model.js";
import type { TargetSpec } from "../target/target.js";
import { writeFileAtomic } from "../util/atomic.js";
import { sha256 } from "../util/hash.js";
import { type ProgressListener, ProgressTracker } from "../util/progress.js";
import { redactUrl } from "./connection.js";
import { firstIssue, JOB_VERSION, type ShardJob, ShardResult } from "./jobs.js";
import { RemoteCells } from "./remote-cells.js";
import { mergeShards } from "./shards.js";

/** Where the finished shards of a run are kept in its output folder until the map is written. */
export const SHARDS_DIR = ".segcause-shards";

export interface QueuedMap {
  url: string;
  shards: number;
  out: string;
  /** the local run's checkpoint, which the gathered samples become */
  checkpointPath: string;
  model: Model;
  /** the model's card file (--card), when not the one beside the model */
  cardPath?: string;
  kase: Case;
  bankPath?: string;
  roi: { row: number; col: number; height: number; width: number } | { maskPath: string };
  method: { name: string; options: Record<string, unknown> };
  outcome: NonNullable<TargetSpec["outcome"]>;
  reference: NonNullable<TargetSpec["reference"]>;
  incremental: IncrementalMode;
  seed: number;
  batchSize: number;
  threads?: number;
  onProgress?: ProgressListener;
}

/**
 * Connects to the queue and refuses, before the output folder is taken, inputs it cannot carry (see
 * RemoteCells.checkInputs): an unreachable Redis or a bad input is one line and nothing is written.
 */
export async function openShardQueue(q: QueuedMap): Promise<RemoteCells> {
  const remote = await RemoteCells.open(q.url);
  try {
    await remote.checkInputs([q.model], inputFiles(q));
    return remote;
  } catch (e) {
    await remote.close();
    throw e;
  }
}

/** The files a shard job carries besides the model. */
function inputFiles(q: QueuedMap): string[] {
  if (!q.kase.imagePath) throw new Error("a queued map needs its image file");
  const files = [q.kase.imagePath, q.kase.maskPath, q.bankPath, "maskPath" in q.roi ? q.roi.maskPath : undefined, cardOf(q)];
  return files.filter((f) => f !== undefined);
}

const cardOf = (q: QueuedMap) => q.cardPath ?? `${q.model.path}.json`;

/**
 * Queues the shards not finished yet, waits for them, and writes their samples as the local run's
 * checkpoint; returns what the provenance records.
 */
export async function gatherShards(q: QueuedMap, remote: RemoteCells): Promise<NonNullable<Provenance["queue"]>> {
  try {
    const card = cardOf(q);
    const image = inputFiles(q)[0];
    const base = {
      v: JOB_VERSION,
      model: await remote.blob(q.model.path),
      card: existsSync(card) ? await remote.blob(card) : null,
      image: await remote.blob(image),
      mask: q.kase.maskPath ? await remote.blob(q.kase.maskPath) : null,
      bank: q.bankPath ? await remote.blob(q.bankPath) : null,
      roi: "maskPath" in q.roi ? { mask: await remote.blob(q.roi.maskPath) } : q.roi,
      method: q.method,
      outcome: q.outcome,
      reference: q.reference,
      incremental: q.incremental,
      seed: q.seed,
      batchSize: q.batchSize,
      ...(q.threads !== undefined ? { threads: q.threads } : {}),
    } satisfies Omit<ShardJob, "shard">;
    const dir = join(q.out, SHARDS_DIR);
    mkdirSync(dir, { recursive: true });
    const progress = new ProgressTracker(`${q.shards} shards on the workers of ${redactUrl(q.url)}`, q.shards, q.onProgress);
    const results = await Promise.all(
      Array.from({ length: q.shards }, async (_, index) => {
        const job: ShardJob = { ...base, shard: { index, count: q.shards } };
        // the id is the payload's hash: a rerun of the same command finds the same jobs (or their files)
        const jobId = `shard-${sha256(JSON.stringify(job)).slice(0, 40)}`;
        const file = join(dir, `${jobId}.json`);
        let result = readShard(file);
        if (result) progress.resume(1);
        else {
          const got = ShardResult.safeParse(await remote.run("shard", jobId, job));
          if (!got.success) fail(`a worker returned a malformed shard of the map: ${firstIssue(got.error)}`, "run workers of this segcause version");
          result = got.data;
          await writeFileAtomic(file, JSON.stringify(result));
          progress.add(1);
        }
        // written to the folder: the queue need not keep it (nor a job a killed run left behind)
        await remote.dropResult(jobId);
        return { index, count: q.shards, result };
      }),
    );
    const merged = mergeShards(results);
    if (typeof merged === "string") fail(merged, "run the workers with this segcause version and rerun the same command");
    await writeFileAtomic(q.checkpointPath, JSON.stringify(merged));
    const samples = Object.values(merged.samples).reduce((a, v) => a + v.filter((x) => x !== null).length, 0);
    return {
      url: redactUrl(q.url),
      shards: q.shards,
      samples,
      identicalToLocalRun: true,
      how: "the workers computed the samples the local schedule draws for their shards of the units; this run read every sample from them and computed none, with the local code",
    };
  } catch (e) {
    throw remote.problem(e);
  }
}

/** A shard finished by an earlier run of the same command, or undefined. */
function readShard(file: string): ShardResult | undefined {
  if (!existsSync(file)) return undefined;
  try {
    const got = ShardResult.safeParse(JSON.parse(readFileSync(file, "utf8")));
    return got.success ? got.data : undefined;
  } catch {
    return undefined; // unreadable: computed again
  }
}

/** Once the map is written, the shards kept for a restart go. */
export function dropShards(out: string): void {
  rmSync(join(out, SHARDS_DIR), { recursive: true, force: true });
}
