/** What `segcause queue` reads and changes: job counts, failures, cost so far; retrying and draining. */
import { Queue } from "bullmq";
import type { Redis } from "ioredis";
import { CELLS_QUEUE, connectRedis } from "./connection.js";
import { REFUSED, REJECTED } from "./jobs.js";

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
  return withQueue(url, async (q) => {
    const counts = await q.getJobCounts("waiting", "prioritized", "delayed", "active", "completed", "failed");
    const failed = await q.getFailed(0, -1);
    const refused = failed.filter((j) => j.failedReason?.startsWith(REFUSED)).length;
    const rejected = failed.filter((j) => j.failedReason?.startsWith(REJECTED)).length;
    // the cost so far: the passes and the methods' time of the finished cells
    let forward = 0,
      backward = 0,
      evaluation = 0,
      wallMs = 0,
      cells = 0;
    for (let start = 0; start < counts.completed; start += 500) {
      for (const j of await q.getCompleted(start, start + 499)) {
        const cost = (j.returnvalue as { record?: { cost?: Record<string, number> } } | null)?.record?.cost;
        if (!cost) continue;
        cells++;
        forward += cost.forwardPasses ?? 0;
        backward += cost.backwardPasses ?? 0;
        evaluation += cost.evaluationPasses ?? 0;
        wallMs += cost.wallMs ?? 0;
      }
    }
    const waiting = counts.waiting + counts.prioritized + counts.delayed;
    const lines = [
      `queued ${waiting}, running ${counts.active}, done ${counts.completed} (${cells} cells, the rest RoI controls), failed ${counts.failed} (${refused} refused by their method, ${rejected} rejected as not segcause's)`,
      `cost of the done cells: ${forward} forward + ${backward} backward passes in the methods (${(wallMs / 3600e3).toFixed(2)} CPU-hours), ${evaluation} passes for the curves`,
      ...failed.slice(0, 20).map((j) => `  failed ${j.name} ${String(j.id).slice(0, 16)}…: ${j.failedReason}`),
      ...(failed.length > 20 ? [`  ... and ${failed.length - 20} more`] : []),
    ];
    return {
      lines,
      json: {
        queued: waiting,
        running: counts.active,
        done: counts.completed,
        failed: counts.failed,
        refused,
        rejected,
        cost: { cells, forwardPasses: forward, backwardPasses: backward, evaluationPasses: evaluation, methodMs: wallMs },
        failures: failed.map((j) => ({ id: j.id, type: j.name, reason: j.failedReason })),
      },
    };
  });
}

/** Failed jobs back to waiting, except refusals (a method that refused an input refuses it again). */
export async function queueRetry(url: string): Promise<{ retried: number; refused: number }> {
  return withQueue(url, async (q) => {
    let retried = 0,
      refused = 0;
    for (const j of await q.getFailed(0, -1)) {
      if (j.failedReason?.startsWith(REFUSED) || j.failedReason?.startsWith(REJECTED)) refused++;
      else await j.retry("failed"), retried++;
    }
    return { retried, refused };
  });
}

export async function queueDrain(url: string): Promise<{ removed: number }> {
  return withQueue(url, async (q) => {
    const counts = await q.getJobCounts("waiting", "prioritized", "delayed");
    await q.drain(true);
    return { removed: counts.waiting + counts.prioritized + counts.delayed };
  });
}
