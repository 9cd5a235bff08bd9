/** Queue test helpers shared by the `explain --queue` and `evaluate --queue` tests (images and volumes). */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type Job, Worker } from "bullmq";
import { Redis } from "ioredis";
import { expect } from "vitest";
import { CELLS_QUEUE, redisOptions } from "../../src/queue/connection.js";
import { within } from "./processes.js";

/** A worker that is not segcause's: answers the first job it takes with `answer(job)`, then stops. */
export async function answerOnce(url: string, answer: (job: Job) => unknown): Promise<void> {
  const connection = new Redis(redisOptions(url));
  let took!: () => void;
  const taken = new Promise<void>((resolve) => (took = resolve));
  const w: Worker = new Worker(
    CELLS_QUEUE,
    async (job) => {
      void w.close(); // takes no further job
      took();
      return answer(job);
    },
    { connection, concurrency: 1 },
  );
  try {
    await within(taken, 120_000, "the fake worker takes a job");
    await w.close();
  } finally {
    connection.disconnect();
  }
}

/** The shard jobs (of images or volumes) a worker's log says it finished. */
export const doneShards = (log: string) => [...log.matchAll(/done (?:volume-)?shard (\S+)/g)].map((m) => m[1]);

/**
 * The cells and controls of two folders are the same files, equal but for what differs between any two
 * runs (the methods' wall time, the creation time in the provenance): maps byte for byte.
 */
export function expectSameCells(a: string, b: string): void {
  const list = (d: string) => spawnSync("find", ["cells", "controls", "-type", "f"], { cwd: d, encoding: "utf8" }).stdout.trim().split("\n").sort();
  const files = list(a);
  expect(list(b)).toEqual(files);
  const norm = (f: string, s: string) => {
    if (f.endsWith("cell.json")) {
      const r = JSON.parse(s);
      delete r.cost.wallMs;
      delete r.metrics.wall_s;
      return JSON.stringify(r);
    }
    if (f.endsWith("attribution.json")) {
      const r = JSON.parse(s);
      delete r.wallMs;
      delete r.provenance.createdAt;
      return JSON.stringify(r);
    }
    return s;
  };
  for (const f of files) {
    if (f.endsWith(".npy")) expect(readFileSync(join(b, f)).equals(readFileSync(join(a, f))), f).toBe(true);
    else expect(norm(f, readFileSync(join(b, f), "latin1")), f).toBe(norm(f, readFileSync(join(a, f), "latin1")));
  }
}
