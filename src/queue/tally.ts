/**
 * What `segcause queue status` reads without reading every job's result: a running tally of the
 * finished jobs' cost (one hash, added to by the workers as jobs complete), and the rejected jobs (a
 * capped list: a rejected job is removed from the queue, so its id, a cell's key, can be queued again).
 */
import type { Job } from "bullmq";
import type { Redis } from "ioredis";

const TALLY = "segcause:tally";
const REJECTIONS = "segcause:rejected";
/** Rejections kept for `queue status` (the newest). */
const KEEP_REJECTIONS = 1000;

export interface Tally {
  cells: number;
  shards: number;
  forwardPasses: number;
  backwardPasses: number;
  evaluationPasses: number;
  methodMs: number;
}

/** Adds a completed job's cost to the tally (called once per completion, by the worker that completed it). */
export async function tallyDone(redis: Redis, job: Job): Promise<void> {
  if (job.name === "shard" || job.name === "volume-shard") {
    await redis.hincrby(TALLY, "shards", 1);
    return;
  }
  const cost = (job.returnvalue as { record?: { cost?: Record<string, number> } } | null)?.record?.cost;
  if ((job.name !== "cell" && job.name !== "volume-cell") || !cost) return;
  const int = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? Math.round(v) : 0);
  await redis
    .multi()
    .hincrby(TALLY, "cells", 1)
    .hincrby(TALLY, "forwardPasses", int(cost.forwardPasses))
    .hincrby(TALLY, "backwardPasses", int(cost.backwardPasses))
    .hincrby(TALLY, "evaluationPasses", int(cost.evaluationPasses))
    .hincrby(TALLY, "methodMs", int(cost.wallMs))
    .exec();
}

export async function readTally(redis: Redis): Promise<Tally> {
  const h = await redis.hgetall(TALLY);
  const n = (k: string) => Number(h[k] ?? 0);
  return {
    cells: n("cells"),
    shards: n("shards"),
    forwardPasses: n("forwardPasses"),
    backwardPasses: n("backwardPasses"),
    evaluationPasses: n("evaluationPasses"),
    methodMs: n("methodMs"),
  };
}

export interface Rejection {
  id: string;
  type: string;
  reason: string;
  at: string;
}

/** Records a rejected job and removes it from the queue, so that its id can be queued again. */
export async function recordRejection(redis: Redis, job: Job, reason: string): Promise<void> {
  const r: Rejection = { id: String(job.id), type: job.name, reason, at: new Date().toISOString() };
  await redis
    .multi()
    .lpush(REJECTIONS, JSON.stringify(r))
    .ltrim(REJECTIONS, 0, KEEP_REJECTIONS - 1)
    .exec();
  await job.remove();
}

/** The rejections recorded (newest first), at most `max`, and how many are kept in all. */
export async function readRejections(redis: Redis, max: number): Promise<{ total: number; newest: Rejection[] }> {
  const [total, raw] = await Promise.all([redis.llen(REJECTIONS), redis.lrange(REJECTIONS, 0, max - 1)]);
  return { total, newest: raw.map((s) => JSON.parse(s) as Rejection) };
}
