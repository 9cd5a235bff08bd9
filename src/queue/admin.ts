/** What `segcause queue` reads and changes: job counts, failures, cost so far; retrying and draining. */
import { Queue } from "bullmq";
import type { Redis } from "ioredis";
import { CELLS_QUEUE, connectRedis } from "./connection.js";
import { REFUSED, REJECTED } from "./jobs.js";
import { readRejections, readTally } from "./tally.js";

async function withQueue<T>(url: string, f: (q: Queue, redis: Redis) => Promise<T>): Promise<T> {
  const redis = await connectRedis(url);
  const q = new Queue(CELLS_QUEUE, { connection: redis });
  q.on("error", () => {});
  try {
    return await f(q, redis);
  } finally {
    await q.close();
    redis.disconnect();
  }
}

export async function queueStatus(url: string): Promise<{ lines: string[]; json: Record<string, unknown> }> {
  return withQueue(url, async (q, redis) => {
    const counts = await q.getJobCounts("waiting", "prioritized", "delayed", "active", "completed", "failed");
    // the failed jobs only (never the finished ones' results): the cost comes from the workers' tally
    const failed = await q.getFailed(0, -1);
    const refused = failed.filter((j) => j.failedReason?.startsWith(REFUSED)).length;
    const [tally, rejections] = await Promise.all([readTally(redis), readRejections(redis, 20)]);
    const waiting = counts.waiting + counts.prioritized + counts.delayed;
    const lines = [
      `queued ${waiting}, running ${counts.active}, done ${counts.completed} (${tally.cells} cells, ${tally.shards} map shards, the rest RoI controls), failed ${counts.failed} (${refused} refused by their method), rejected ${rejections.total} (not segcause's, removed from the queue)`,
      `cost of the done cells: ${tally.forwardPasses} forward + ${tally.backwardPasses} backward passes in the methods (${(tally.methodMs / 3600e3).toFixed(2)} CPU-hours), ${tally.evaluationPasses} passes for the curves`,
      ...failed.slice(0, 20).map((j) => `  failed ${j.name} ${String(j.id).slice(0, 16)}…: ${j.failedReason}`),
      ...(failed.length > 20 ? [`  ... and ${failed.length - 20} more`] : []),
      ...rejections.newest.map((r) => `  rejected ${r.type} ${r.id.slice(0, 16)} at ${r.at}: ${r.reason}`),
    ];
    return {
      lines,
      json: {
        queued: waiting,
        running: counts.active,
        done: counts.completed,
        failed: counts.failed,
        refused,
        rejected: rejections.total,
        cost: {
          cells: tally.cells,
          shards: tally.shards,
          forwardPasses: tally.forwardPasses,
          backwardPasses: tally.backwardPasses,
          evaluationPasses: tally.evaluationPasses,
          methodMs: tally.methodMs,
        },
        failures: failed.map((j) => ({ id: j.id, type: j.name, reason: j.failedReason })),
        rejections: rejections.newest,
      },
    };
  });
}

/**
 * Failed jobs back to waiting, except refusals (a method that refused an input refuses it again);
 * a rejected job still failed in the queue (left by an older segcause) is removed, so its id is free.
 */
export async function queueRetry(url: string): Promise<{ retried: number; refused: number; removed: number }> {
  return withQueue(url, async (q) => {
    let retried = 0,
      refused = 0,
      removed = 0;
    for (const j of await q.getFailed(0, -1)) {
      if (j.failedReason?.startsWith(REFUSED)) refused++;
      else if (j.failedReason?.startsWith(REJECTED)) await j.remove(), removed++;
      else await j.retry("failed"), retried++;
    }
    return { retried, refused, removed };
  });
}

export async function queueDrain(url: string): Promise<{ removed: number }> {
  return withQueue(url, async (q) => {
    const counts = await q.getJobCounts("waiting", "prioritized", "delayed");
    await q.drain(true);
    return { removed: counts.waiting + counts.prioritized + counts.delayed };
  });
}
