/**
 * The enqueuing side of `explain --queue`: the map's units go to the workers as shards (shards.ts),
 * each shard's samples come back as its job's return value and are kept in the output folder
 * (`.segcause-shards/`, so a restarted run does not queue a finished shard again) and dropped from
 * Redis; once all are back they become the local run's checkpoint, and the local code path then
 * reads every sample from it and computes none, so the map is the local run's bit for bit.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Case } from "../data/case.js";
import { fail } from "../errors.js";
import type { Provenance } from "../explain/attribution.js";
import type { IncrementalMode } from "../explain/roi-executor.js";
import type { Model } from "../model/model.js";
import type { TargetSpec } from "../target/target.js";
import { writeFileAtomic } from "../util/atomic.js";
import { sha256 } from "../util/hash.js";
import { saveOnInterrupt } from "../util/interrupt.js";
import { type ProgressListener, ProgressTracker } from "../util/progress.js";
import { redactUrl } from "./connection.js";
import { firstIssue, JOB_VERSION, type ShardJob, ShardResult, type VolumeShardJob } from "./jobs.js";
import { RemoteCells } from "./remote-cells.js";
import { queueWorkers, rerunHint, shardVersions, versionMismatch } from "./shard-env.js";
import { mergeShards, ownsUnit } from "./shards.js";

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

/** What gathering one map's shards needs, whatever the map (an image's or a volume's). */
export interface ShardGathering {
  url: string;
  shards: number;
  out: string;
  /** the local run's checkpoint, which the gathered samples become */
  checkpointPath: string;
  name: "shard" | "volume-shard";
  /** the jobs' payload but for their `shard` (its inputs are stored in Redis when it is called) */
  base: () => Promise<Omit<ShardJob, "shard"> | Omit<VolumeShardJob, "shard">>;
  onProgress?: ProgressListener;
}

/** An image's map: its jobs carry the model, card, image, mask, bank and RoI as blobs. */
export function gatherShards(q: QueuedMap, remote: RemoteCells): Promise<QueueRecord> {
  const base = async () => {
    const card = cardOf(q);
    return {
      v: JOB_VERSION,
      ...shardVersions(),
      model: await remote.blob(q.model.path),
      card: existsSync(card) ? await remote.blob(card) : null,
      image: await remote.blob(inputFiles(q)[0]),
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
  };
  const { url, shards, out, checkpointPath, onProgress } = q;
  return gatherMapShards({ url, shards, out, checkpointPath, onProgress, name: "shard", base }, remote);
}

/**
 * Queues the shards not finished yet, waits for them, and writes their samples as the local run's
 * checkpoint; returns what the provenance records. A shard's result is checked before it is kept
 * (acceptShard); a refused one is dropped from Redis too, so the rerun the message asks for queues it again.
 */
export async function gatherMapShards(q: ShardGathering, remote: RemoteCells): Promise<QueueRecord> {
  try {
    const versions = shardVersions();
    const base = await q.base();
    const dir = join(q.out, SHARDS_DIR);
    mkdirSync(dir, { recursive: true });
    // Ctrl-C: the shards kept in the folder are finished work a rerun continues from
    const keptShards = {
      saveIfDirty: () => false,
      get kept() {
        return countShards(q.out);
      },
    };
    saveOnInterrupt(keptShards);
    const progress = new ProgressTracker(`${q.shards} shards on the workers of ${redactUrl(q.url)}`, q.shards, q.onProgress);
    const jobs = Array.from({ length: q.shards }, (_, index) => {
      const job = { ...base, shard: { index, count: q.shards } } as ShardJob | VolumeShardJob;
      // the id is the payload's hash: a rerun of the same command finds the same jobs (or their files)
      const id = `shard-${sha256(JSON.stringify(job)).slice(0, 40)}`;
      return { index, job, id, file: join(dir, `${id}.json`) };
    });
    // the kept shards are read first (synchronously): the key they share is the one a new shard must have
    const kept = jobs.map((j) => readShard(j.file, j.id, j.index, q.shards));
    const keys = new Set(kept.flatMap((r) => (r ? [r.key] : [])));
    if (keys.size > 1) {
      dropShards(q.out);
      fail(
        `the kept shards of ${q.out} were computed under ${keys.size} different settings; they are deleted`,
        "rerun the same command to compute them again",
      );
    }
    let key: string | undefined = [...keys][0];
    const results = await Promise.all(
      jobs.map(async ({ index, job, id, file }, k) => {
        let result = kept[k];
        if (result) progress.resume(1);
        else {
          const raw = await remote.run(q.name, id, job);
          const problem = shardProblem(raw, id, index, q.shards);
          const got = problem ? undefined : (raw as ShardResult);
          const foreign = got && key !== undefined && got.key !== key;
          if (problem || foreign) {
            // a refused result is never kept, here nor in Redis: the rerun queues its shard again
            await remote.forget(id);
            if (problem) fail(`a worker returned a bad shard ${index + 1} of ${q.shards} of the map: ${problem}`, rerunHint(versions));
            // two shards under different keys: which one is this run's is not known here, so none is kept,
            // here nor in Redis (a finished job whose result was not yet dropped would be read again)
            dropShards(q.out);
            await Promise.allSettled(jobs.map((j) => remote.forget(j.id)));
            fail(
              `shard ${index + 1} of ${q.shards} was computed under other settings than the others (a worker on another machine or build?); the kept shards are deleted`,
              rerunHint(versions),
            );
          }
          result = got!;
          key ??= result.key;
          await writeFileAtomic(file, JSON.stringify(result));
          progress.add(1);
        }
        // written to the folder: the queue need not keep it (nor a job a killed run left behind)
        await remote.dropResult(id);
        return { index, count: q.shards, result };
      }),
    );
    const merged = mergeShards(results);
    if (typeof merged === "string") fail(merged, rerunHint(versions));
    await writeFileAtomic(q.checkpointPath, JSON.stringify(merged));
    void keptShards; // registered for Ctrl-C until the samples are the checkpoint's
    const samples = Object.values(merged.samples).reduce((a, v) => a + v.filter((x) => x !== null).length, 0);
    const workers = queueWorkers(results.map((r) => r.result));
    const sameMachine = workers.workersLikeThisMachine;
    return {
      url: redactUrl(q.url),
      shards: q.shards,
      samples,
      ...workers,
      how: `the workers computed the samples the local schedule draws for their shards of the units; this run read every sample from them and computed none, with the local code${
        sameMachine
          ? " (every worker had this machine's CPU model, core count and ONNX Runtime version; on this machine queued and local maps were tested bit-identical)"
          : " (a worker had another CPU model, core count or ONNX Runtime version than this machine: its samples, and so the map, may differ from a local run's in the last digits)"
      }`,
    };
  } catch (e) {
    throw remote.problem(e);
  }
}

/**
 * Why a worker's result cannot be this shard's, or undefined: its shape, the job it answers (so the
 * run's settings), the versions it was computed with, and units that are not the shard's.
 */
function shardProblem(raw: unknown, id: string, index: number, count: number): string | undefined {
  const got = ShardResult.safeParse(raw);
  if (!got.success) return `malformed (${firstIssue(got.error)})`;
  const r = got.data;
  if (r.job !== id) return `it answers job ${r.job.slice(0, 16)}…, not ${id.slice(0, 16)}… (other settings)`;
  const other = versionMismatch(r);
  if (other) return `it was computed by ${other}`;
  const stray = Object.keys(r.samples).find((u) => !ownsUnit(index, count, Number(u)));
  return stray === undefined ? undefined : `it holds samples of unit ${stray}, which is not its own`;
}

/** A shard finished by an earlier run of the same command (and of these versions), or undefined; a kept file that is not is deleted. */
function readShard(file: string, id: string, index: number, count: number): ShardResult | undefined {
  if (!existsSync(file)) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch {
    raw = undefined; // unreadable: computed again
  }
  if (raw !== undefined && !shardProblem(raw, id, index, count)) return raw as ShardResult;
  rmSync(file, { force: true });
  return undefined;
}

/** The finished shards kept in the folder. */
function countShards(out: string): number {
  try {
    return readdirSync(join(out, SHARDS_DIR)).filter((f) => f.endsWith(".json")).length;
  } catch {
    return 0;
  }
}

/** What the provenance of a map whose samples the queue's workers computed records. */
export type QueueRecord = NonNullable<Provenance["queue"]>;

/** The provenance and notes of a map (an image's or a volume's) whose samples the queue's workers computed. */
export function recordQueue(a: { notes: string[]; provenance: object }, q: QueueRecord): void {
  (a.provenance as { queue?: QueueRecord }).queue = q;
  // the run read its samples from the shards: that is the queue's note, not a resumed checkpoint's
  a.notes = a.notes.filter((n) => !n.startsWith("resumed from checkpoint"));
  a.notes.push(
    `computed on the workers of ${q.url}: ${q.shards} shards, ${q.samples} samples, gathered into the local code's map (${
      q.workersLikeThisMachine
        ? "every worker had this machine's CPU model, core count and ONNX Runtime version"
        : "a worker had another CPU model, core count or ONNX Runtime version than this machine: the last digits may differ from a local run's"
    }; workers: ${q.workers.map((w) => `${w.host} (${w.cpu}, ${w.cores} cores, onnxruntime ${w.onnxruntime})`).join(", ")})`,
  );
}

/**
 * How long a map took, as its summary line says it after its pass count: a queued map's passes ran on
 * the workers, and this process only gathered them, so its own time is not theirs.
 */
export function passesTime(a: { wallMs: number; provenance: object }): string {
  const s = (a.wallMs / 1000).toFixed(1);
  return (a.provenance as { queue?: QueueRecord }).queue ? `on the queue's workers (gathered here in ${s} s)` : `in ${s} s`;
}

/** Once the map is written, the shards kept for a restart go. */
export function dropShards(out: string): void {
  rmSync(join(out, SHARDS_DIR), { recursive: true, force: true });
}
