/**
 * `segcause worker`: pulls evaluate's jobs from the queue and runs them with the local cell code
 * (openRoi, computeControl, explainCell, measureCell). Only the job types of jobs.ts run, each after
 * its payload is checked; the worker reads its inputs from its cache of verified blobs and writes
 * nowhere else.
 */
import { mkdirSync } from "node:fs";
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
import { fetchBlob } from "./blobs.js";
import { CELLS_QUEUE, connectRedis, redactUrl } from "./connection.js";
import { type CellJob, type CellResult, type ControlJob, type ControlResult, firstIssue, JOB_SCHEMAS, REFUSED, REJECTED } from "./jobs.js";

export interface WorkerSettings {
  url: string;
  /** jobs run at once by this process */
  concurrency: number;
  /** where fetched inputs and checkpoints are kept */
  cache: string;
  /** a job whose worker sent no heartbeat for this long is handed to another worker (once) */
  stallSeconds: number;
  log: (line: string) => void;
}

/** Runs until `signal` aborts or the connection to Redis is lost (then rejects with one line). */
const running = new Set<object>();

export async function runWorker(s: WorkerSettings, signal: AbortSignal): Promise<{ completed: number; failed: number }> {
  mkdirSync(s.cache, { recursive: true });
  let lostWith: SegcauseError | undefined;
  let wake: () => void = () => {};
  const redis = await connectRedis(s.url, (problem) => {
    lostWith = new SegcauseError(problem, "start Redis again and restart the worker (its jobs are handed to other workers)");
    wake();
  });
  const models = new Map<string, Promise<{ model: Model; runner: Runner }>>();
  // Jobs in progress and their lock tokens: a stop hands them back to the queue (see below).
  const active = new Map<Job, string | undefined>();
  const processor = async (job: Job, token?: string) => {
    active.set(job, token);
    try {
      return await processJob(job);
    } finally {
      active.delete(job);
    }
  };
  const processJob = async (job: Job) => {
    const schema = JOB_SCHEMAS[job.name as keyof typeof JOB_SCHEMAS];
    if (!schema) return reject(job, `job type '${job.name}' is not one of segcause's (control, cell)`);
    const parsed = schema.safeParse(job.data);
    if (!parsed.success) return reject(job, `malformed ${job.name} job: ${firstIssue(parsed.error)}`);
    try {
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
  worker.on("completed", (job) => {
    completed++;
    s.log(`done ${job.name} ${job.id}`);
  });
  worker.on("failed", (job, e) => {
    failed++;
    if (!e.message.startsWith(REJECTED)) s.log(`job ${job?.id ?? "?"} (${job?.name ?? "?"}) failed: ${e.message}`);
  });
  worker.on("error", () => {}); // connection errors: the connection's retry strategy decides (connection.ts)
  // Ctrl-C or SIGTERM (a restart, a scale-down) is not a crash: the jobs in progress go back to the
  // queue at once instead of waiting out the stall time and counting as stalled (one stall is allowed).
  const handBack = {
    closeForExit: async () => {
      await Promise.allSettled([...active].map(([job, token]) => job.moveToWait(token)));
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
  for (const m of models.values()) await (await m).model.release();
  if (lostWith) throw lostWith;
  return { completed, failed };
}

type Models = Map<string, Promise<{ model: Model; runner: Runner }>>;

/** The job's RoI opened as the local run opens it, from the verified blobs. */
async function openJobRoi(p: ControlJob | CellJob, redis: Redis, s: WorkerSettings, models: Models): Promise<RoiContext | { skipped: string }> {
  const fetch = (b: { sha256: string; name: string }) => fetchBlob(redis, b, s.cache);
  const modelPath = await fetch(p.model);
  const card = p.card ? await fetch(p.card) : undefined;
  const mk = JSON.stringify([p.model.sha256, p.card?.sha256 ?? null, p.threads ?? null, p.batchSize ?? null]);
  let m = models.get(mk);
  if (!m) {
    m = Model.load(modelPath, { ...(card ? { card } : {}), threads: p.threads }).then((model) => ({
      model,
      runner: new Runner(model, { batchSize: p.batchSize }),
    }));
    models.set(mk, m);
    m.catch(() => models.delete(mk));
  }
  const { model, runner } = await m;
  const kase = await loadCase(model, await fetch(p.image), p.mask ? await fetch(p.mask) : undefined, { allowEmptyMask: true });
  kase.id = p.id.image;
  const bank = p.bank ? await PatchBank.load(await fetch(p.bank)) : undefined;
  return openRoi(
    { P: p.protocol as RoiContext["P"], seed: p.seed, batchSize: p.batchSize, incremental: p.incremental, model, kase, roi: p.roi, bank },
    runner,
    p.id,
    [],
  );
}

async function runControl(p: ControlJob, redis: Redis, s: WorkerSettings, models: Models): Promise<ControlResult> {
  const ctx = await openJobRoi(p, redis, s, models);
  if ("skipped" in ctx) return { skipped: ctx.skipped };
  return { control: { ...(await computeControl(ctx, p.id, p.controlKey)) } };
}

async function runCell(p: CellJob, redis: Redis, s: WorkerSettings, models: Models): Promise<CellResult> {
  const def = getMethod(p.method.name);
  // the options as the user gave them, resolved (and checked) here as the enqueuer resolved them for the cell's key
  const options = resolveOptions(def, p.method.options);
  const ctx = await openJobRoi(p, redis, s, models);
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
  };
}
