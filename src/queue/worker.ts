/**
 * `segcause worker`: pulls evaluate's jobs from the queue and runs them with the local cell code
 * (openRoi, computeControl, explainCell, measureCell), and the shards of `explain --queue` maps
 * (shard-worker.ts). Only the job types of jobs.ts run, each after
 * its payload is checked; the worker reads its inputs from its cache of verified blobs and writes
 * nowhere else.
 */
import { mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { type Job, UnrecoverableError, Worker } from "bullmq";
import type { Redis } from "ioredis";
import { loadCase } from "../data/case.js";
import { PatchBank } from "../data/patchbank.js";
import { SegcauseError } from "../errors.js";
import { attributionMeta, computeControl, explainCell, measureCell, openRoi, type RoiContext } from "../evaluate/cell.js";
import type { ControlRecord } from "../evaluate/store.js";
import { getMethod } from "../explain/catalog.js";
import { resolveOptions } from "../explain/methods.js";
import { Model } from "../model/model.js";
import { Runner } from "../model/runner.js";
import { closeOnInterrupt } from "../util/interrupt.js";
import { encodeNpy } from "../util/npy.js";
import { type BlobRef, blobName, fetchBlob } from "./blobs.js";
import { CELLS_QUEUE, connectRedis, redactUrl } from "./connection.js";
import { unpackFolder } from "./folder-blob.js";
import {
  type CellJob,
  type CellResult,
  type ControlJob,
  type ControlResult,
  firstIssue,
  JOB_SCHEMAS,
  REFUSED,
  REJECTED,
  type ShardJob,
  type ShardResult,
  type VolumeCellJob,
  type VolumeControlJob,
  type VolumeShardJob,
} from "./jobs.js";
import { ModelCache } from "./model-cache.js";
import { computedHere } from "./shard-env.js";
import { runShard } from "./shard-worker.js";
import { recordRejection, tallyDone } from "./tally.js";
import { runVolumeCell, runVolumeControl } from "./volume-cell-worker.js";
import { runVolumeShard } from "./volume-shard-worker.js";

export interface WorkerSettings {
  url: string;
  /** jobs run at once by this process */
  concurrency: number;
  /** where fetched inputs and checkpoints are kept */
  cache: string;
  /** a job whose worker sent no heartbeat for this long is handed to another worker (once) */
  stallSeconds: number;
  /** models kept loaded at once, least recently used released first (default DEFAULT_MAX_MODELS) */
  maxModels?: number;
  log: (line: string) => void;
}

/** Models a worker keeps loaded at once unless told otherwise (--max-models). */
export const DEFAULT_MAX_MODELS = 4;

/** Runs until `signal` aborts or the connection to Redis is lost (then rejects with one line). */
const running = new Set<object>();

export async function runWorker(s: WorkerSettings, signal: AbortSignal): Promise<{ completed: number; failed: number }> {
  mkdirSync(s.cache, { recursive: true });
  const pruned = pruneCheckpoints(join(s.cache, "checkpoints"));
  if (pruned.length) s.log(`removed ${pruned.length} checkpoints untouched for a day (their jobs finished elsewhere or left the queue)`);
  let lostWith: SegcauseError | undefined;
  let wake: () => void = () => {};
  const redis = await connectRedis(s.url, (problem) => {
    lostWith = new SegcauseError(problem, "start Redis again and restart the worker (its jobs are handed to other workers)");
    wake();
  });
  const maxModels = s.maxModels ?? DEFAULT_MAX_MODELS;
  const models: Models = new ModelCache(maxModels, (key) =>
    s.log(`released model ${String(JSON.parse(key)[0]).slice(0, 12)}… (--max-models ${maxModels})`),
  );
  // Jobs in progress and their lock tokens: a stop hands them back to the queue (see below).
  const active = new Map<Job, string | undefined>();
  // Jobs whose result is computed and on its way into Redis: a stop lets them be recorded (and logged) first.
  const finishing = new Set<string>();
  const processor = async (job: Job, token?: string) => {
    active.set(job, token);
    try {
      const result = await processJob(job);
      finishing.add(String(job.id));
      return result;
    } finally {
      active.delete(job);
    }
  };
  const processJob = async (job: Job) => {
    const schema = JOB_SCHEMAS[job.name as keyof typeof JOB_SCHEMAS];
    if (!schema) return reject(job, `job type '${job.name}' is not one of segcause's (${Object.keys(JOB_SCHEMAS).join(", ")})`);
    const parsed = schema.safeParse(job.data);
    if (!parsed.success) return reject(job, `malformed ${job.name} job: ${firstIssue(parsed.error)}`);
    try {
      if (job.name === "shard") return await runShardJob(String(job.id), parsed.data as ShardJob, redis, s, models);
      if (job.name === "volume-shard") return await runVolumeShardJob(String(job.id), parsed.data as VolumeShardJob, redis, s);
      if (job.name === "volume-control") return await runVolumeControl(parsed.data as VolumeControlJob, volumeIo(redis, s));
      if (job.name === "volume-cell") return await runVolumeCell(parsed.data as VolumeCellJob, volumeIo(redis, s));
      return job.name === "control"
        ? await runControl(parsed.data as ControlJob, redis, s, models)
        : await runCell(parsed.data as CellJob, redis, s, models);
    } catch (e) {
      // A problem with the job's inputs (a missing blob, an unreadable model) fails the same way on every worker.
      if (e instanceof SegcauseError) throw new UnrecoverableError(e.oneLine());
      throw e;
    }
  };
  const reject = (job: Job, problem: string): never => {
    s.log(`rejected job ${job.id}: ${problem}`);
    throw new UnrecoverableError(`${REJECTED}${problem}`);
  };
  const worker = new Worker(CELLS_QUEUE, processor, {
    connection: redis,
    concurrency: s.concurrency,
    lockDuration: s.stallSeconds * 1000,
    stalledInterval: s.stallSeconds * 1000,
    maxStalledCount: 1,
  });
  let completed = 0,
    failed = 0;
  // the tally and the rejections are bookkeeping: a failure to record them is logged, never a job's failure
  const record = (what: string, p: Promise<void>) => p.catch((e: Error) => s.log(`could not record ${what}: ${e.message}`));
  worker.on("completed", (job) => {
    finishing.delete(String(job.id));
    completed++;
    s.log(`done ${job.name} ${job.id}`);
    void record("the job's cost", tallyDone(redis, job));
  });
  worker.on("failed", (job, e) => {
    if (job) finishing.delete(String(job.id));
    failed++;
    if (!e.message.startsWith(REJECTED)) s.log(`job ${job?.id ?? "?"} (${job?.name ?? "?"}) failed: ${e.message}`);
    // a rejected job leaves the queue (recorded for `queue status`): its id, a cell's key, stays free to be queued again
    else if (job) void record("a rejection", recordRejection(redis, job, e.message));
  });
  worker.on("error", () => {}); // connection errors: the connection's retry strategy decides (connection.ts)
  // Ctrl-C or SIGTERM (a restart, a scale-down) is not a crash: the jobs in progress go back to the
  // queue at once instead of waiting out the stall time and counting as stalled (one stall is allowed).
  const handBack = {
    closeForExit: async () => {
      await Promise.allSettled([...active].map(([job, token]) => job.moveToWait(token)));
      for (const until = Date.now() + 5000; finishing.size > 0 && Date.now() < until; ) await new Promise((r) => setTimeout(r, 20));
      await worker.close(true);
    },
  };
  // closeOnInterrupt holds its owners weakly: this worker's is held here while it runs
  running.add(handBack);
  closeOnInterrupt(handBack);
  s.log(`worker pulling from ${redactUrl(s.url)} (${s.concurrency} at once, cache ${s.cache})`);
  await new Promise<void>((resolve) => {
    wake = resolve;
    if (signal.aborted) resolve();
    signal.addEventListener("abort", () => resolve(), { once: true });
  });
  running.delete(handBack);
  await (lostWith ? worker.close(true) : worker.close());
  redis.disconnect();
  await models.clear();
  if (lostWith) throw lostWith;
  return { completed, failed };
}

/** A job's checkpoint is rewritten as its passes run: one untouched this long is left by a worker killed mid-job whose job finished elsewhere. */
export const STALE_CHECKPOINT_MS = 24 * 3600 * 1000;

/** Removes the stale checkpoints of a worker cache's folder (a rerun of their job would only start over); returns their names. */
export function pruneCheckpoints(dir: string, now = Date.now()): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return []; // no checkpoint yet
  }
  return names.filter((n) => {
    const p = join(dir, n);
    try {
      if (!n.endsWith(".json") || now - statSync(p).mtimeMs < STALE_CHECKPOINT_MS) return false;
      rmSync(p, { force: true });
      return true;
    } catch {
      return false; // removed meanwhile by another worker sharing the cache
    }
  });
}

interface Loaded {
  model: Model;
  runner: Runner;
  release(): Promise<void>;
}
type Models = ModelCache<Loaded>;

/** Runs `f` with the job's model (and a Runner at its batch size) from the worker's bounded cache. */
async function withJobModel<R>(
  p: { model: BlobRef; card: BlobRef | null; threads?: number; batchSize?: number },
  redis: Redis,
  s: WorkerSettings,
  models: Models,
  f: (m: Loaded) => Promise<R>,
): Promise<R> {
  const fetch = (b: BlobRef) => fetchBlob(redis, b, s.cache);
  const modelPath = await fetch(p.model);
  const card = p.card ? await fetch(p.card) : undefined;
  const mk = JSON.stringify([p.model.sha256, p.card?.sha256 ?? null, p.threads ?? null, p.batchSize ?? null]);
  const load = async (): Promise<Loaded> => {
    const model = await Model.load(modelPath, { ...(card ? { card } : {}), threads: p.threads });
    return { model, runner: new Runner(model, { batchSize: p.batchSize }), release: () => model.release() };
  };
  return models.use(mk, load, f);
}

/** Runs `f` on the job's RoI opened as the local run opens it, from the verified blobs, with the notes opening it gave. */
async function withJobRoi<R>(
  p: ControlJob | CellJob,
  redis: Redis,
  s: WorkerSettings,
  models: Models,
  f: (ctx: RoiContext | { skipped: string }, notes: string[]) => Promise<R>,
): Promise<R> {
  const fetch = (b: BlobRef) => fetchBlob(redis, b, s.cache);
  return withJobModel(p, redis, s, models, async ({ model, runner }) => {
    const kase = await loadCase(model, await fetch(p.image), p.mask ? await fetch(p.mask) : undefined, { allowEmptyMask: true });
    kase.id = p.id.image;
    const bank = p.bank ? await PatchBank.load(await fetch(p.bank)) : undefined;
    const notes: string[] = [];
    const ctx = await openRoi(
      { P: p.protocol as RoiContext["P"], seed: p.seed, batchSize: p.batchSize, incremental: p.incremental, model, kase, roi: p.roi, bank },
      runner,
      p.id,
      notes,
    );
    return f(ctx, notes);
  });
}

async function runControl(p: ControlJob, redis: Redis, s: WorkerSettings, models: Models): Promise<ControlResult> {
  return withJobRoi(p, redis, s, models, async (ctx, notes) => {
    if ("skipped" in ctx) return { skipped: ctx.skipped, ...computedHere() };
    return { control: { ...(await computeControl(ctx, p.id, p.controlKey)) }, notes, ...computedHere() };
  });
}

async function runShardJob(id: string, p: ShardJob, redis: Redis, s: WorkerSettings, models: Models): Promise<ShardResult> {
  mkdirSync(join(s.cache, "checkpoints"), { recursive: true });
  return runShard(id, p, {
    fetch: (b) => fetchBlob(redis, b, s.cache),
    withModel: (f) => withJobModel(p, redis, s, models, ({ model }) => f(model)),
    checkpointPath: join(s.cache, "checkpoints", `${blobName(id)}.json`),
  });
}

/** How a volume job reads its blobs (a packed series folder unpacked into the cache) and where its checkpoints go. */
function volumeIo(redis: Redis, s: WorkerSettings) {
  const checkpoints = join(s.cache, "checkpoints");
  mkdirSync(checkpoints, { recursive: true });
  return {
    fetch: (b: BlobRef) => fetchBlob(redis, b, s.cache),
    unpack: (file: string, b: BlobRef) => unpackFolder(file, join(s.cache, "folders", b.sha256), b.name),
    checkpoints,
  };
}

/** A volume's shard: its model is loaded for the job and released after it (volume jobs are long; --max-models bounds the 2D models). */
function runVolumeShardJob(id: string, p: VolumeShardJob, redis: Redis, s: WorkerSettings): Promise<ShardResult> {
  const io = volumeIo(redis, s);
  return runVolumeShard(id, p, { ...io, checkpointPath: join(io.checkpoints, `${blobName(id)}.json`) });
}

async function runCell(p: CellJob, redis: Redis, s: WorkerSettings, models: Models): Promise<CellResult> {
  const def = getMethod(p.method.name);
  // the options as the user gave them, resolved (and checked) here as the enqueuer resolved them for the cell's key
  const options = resolveOptions(def, p.method.options);
  return withJobRoi(p, redis, s, models, (ctx, notes) => cellOf(p, def, options, ctx, notes, s));
}

async function cellOf(
  p: CellJob,
  def: ReturnType<typeof getMethod>,
  options: Record<string, unknown>,
  ctx: RoiContext | { skipped: string },
  notes: string[],
  s: WorkerSettings,
): Promise<CellResult> {
  if ("skipped" in ctx) throw new UnrecoverableError(`the RoI's control was computed but its Target now fails: ${ctx.skipped}`);
  // A checkpoint in the worker's cache: a job retried on this machine resumes its method's passes.
  const checkpointPath = join(s.cache, "checkpoints", `${p.cellKey}.json`);
  mkdirSync(join(s.cache, "checkpoints"), { recursive: true });
  let a: Awaited<ReturnType<typeof explainCell>>;
  try {
    a = await explainCell(ctx, def, options, ctx.kase, p.seed, checkpointPath);
  } catch (e) {
    // the method refuses this input: recorded by the enqueuer as the local run records it, never retried
    if (e instanceof SegcauseError) throw new UnrecoverableError(`${REFUSED}${e.oneLine()}`);
    throw e;
  }
  const record = await measureCell(ctx, p.control as unknown as ControlRecord, { key: p.cellKey, id: p.id, def, options }, a, undefined);
  await rm(checkpointPath, { force: true });
  return {
    npy: Buffer.from(encodeNpy(a.map, [a.height, a.width])).toString("base64"),
    meta: attributionMeta(a),
    record: JSON.parse(JSON.stringify(record)),
    notes,
    ...computedHere(),
  };
}
