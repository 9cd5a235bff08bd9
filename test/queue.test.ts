/**
 * evaluate --queue, segcause worker and segcause queue on a real redis-server: the queued run writes
 * the local run's cells with 1 and 2 workers; a worker killed mid-job, an enqueuer stopped and
 * restarted, and Redis stopped mid-run lose and double nothing; refusals are recorded once, foreign
 * or malformed jobs are rejected unrun; passwords and TLS work; bad URLs are one line.
 */
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Queue, UnrecoverableError, Worker } from "bullmq";
import { Redis } from "ioredis";
import { ModelProtoSchema, StringStringEntryProtoSchema, TensorProto_DataLocation } from "onnx-buf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import "../src/explain/catalog.js";
import { fail } from "../src/errors.js";
import { runEvaluation } from "../src/evaluate/benchmark.js";
import { type EvaluateConfig, PROTOCOL_DEFAULTS } from "../src/evaluate/protocol.js";
import { parseRoiSpec } from "../src/evaluate/rois.js";
import { registerMethod } from "../src/explain/methods.js";
import { fetchBlob, putBlob } from "../src/queue/blobs.js";
import { CELLS_QUEUE, redisOptions } from "../src/queue/connection.js";
import { REFUSED, REJECTED } from "../src/queue/jobs.js";
import { RemoteCells } from "../src/queue/remote-cells.js";
import { shardMachine, shardVersions } from "../src/queue/shard-env.js";
import { pruneCheckpoints, runWorker, STALE_CHECKPOINT_MS } from "../src/queue/worker.js";
import { segcause } from "./helpers/cli.js";
import { bg, stop, until, within, worker } from "./helpers/processes.js";
import { answerOnce, expectSameCells } from "./helpers/queue-jobs.js";
import { emptyDb, redisMissing, startRedis, type TestRedis } from "./helpers/redis.js";
import { flatBank, regionMeanModel, tmp, writeImage, writeMask, writeModel } from "./helpers/tiny.js";

const BIN = join(import.meta.dirname, "..", "bin", "segcause.js");
const missing = redisMissing();
if (missing) console.warn(`queue.test.ts: ${missing}, so the queue tests are skipped`);

let dir: string;
let shared: TestRedis | undefined;
/** The CI's server (SEGCAUSE_TEST_REDIS) or one of the file's own; each test uses its own database. */
let sharedUrl: (db: number) => string;

/** The run's settings: 2 images × 2 boundary RoIs × 3 methods = 12 cells and 4 controls (16 jobs). */
const evaluateArgs = (out: string, more: string[] = [], methods = ["zero,saliency,rise", "--set", "rise.masks=100"]) => [
  "evaluate",
  ...["--models", join(dir, "causal.onnx"), "--dataset", join(dir, "manifest.json"), "--split", "test"],
  ...["--methods", ...methods, "--rois", "boundary:8x2", "--bank", join(dir, "bank.scbank")],
  ...["--radius", "8", "--rank-units", "pixel", "--threads", "1", "--no-progress", "--out", out],
  ...more,
];

/** The queue as the tests inspect it (its own connection, closed with it). */
function queueAt(url: string): Queue & { shut(): Promise<void> } {
  const connection = new Redis(redisOptions(url));
  const q = new Queue(CELLS_QUEUE, { connection });
  return Object.assign(q, {
    shut: async () => {
      await q.close();
      connection.disconnect();
    },
  });
}

/** The job of a cell or control key (its id is the key and a hash of the run's names). */
async function jobOf(q: Queue, key: string) {
  const jobs = await q.getJobs(["completed", "failed", "active", "waiting"]);
  return jobs.find((j) => String(j.id).startsWith(key));
}

/** The jobs a worker's log says it finished, by id. */
const doneJobs = (log: string) => [...log.matchAll(/done (control|cell) (\S+)/g)].map((m) => m[2]);

/** An in-process run on the tiny data set: the zero method, one boundary RoI per image, zero fills; `more` overrides. */
const tinyRun = (models: string[], out: string, more: Partial<EvaluateConfig> = {}): EvaluateConfig => ({
  models,
  dataset: join(dir, "manifest.json"),
  split: "test",
  images: 1,
  methods: [{ name: "zero", options: {} }],
  rois: parseRoiSpec("boundary:8x1"),
  bankSplits: ["train"],
  bankPatchSize: 8,
  out,
  seed: 0,
  protocol: { ...PROTOCOL_DEFAULTS, fills: ["zero"], radius: 8, rankUnits: { kind: "pixel" } },
  threads: 1,
  ...more,
});

beforeAll(async () => {
  if (missing) return;
  dir = tmp("segcause-queue-");
  writeModel(dir, "causal.onnx", regionMeanModel([{ row: 0, col: 16, height: 16, width: 16, weight: 50 }], -40));
  const cases = [];
  for (let i = 0; i < 2; i++) {
    await writeImage(dir, `img${i}.png`, (y, x) => (y < 16 && x >= 16 ? 230 : 70 + ((x * 37 + y * 23 + 11 * i) % 60)));
    await writeMask(dir, `img${i}_mask.png`, (_y, x) => x < 16);
    cases.push({ id: `img${i}`, image: `img${i}.png`, mask: `img${i}_mask.png`, split: "test" });
  }
  writeFileSync(join(dir, "manifest.json"), JSON.stringify({ name: "tiny", cases }));
  await flatBank([20, 240, 20]).save(join(dir, "bank.scbank"));
  const env = process.env.SEGCAUSE_TEST_REDIS;
  if (!env) shared = await startRedis();
  const base = (env ?? shared!.url).replace(/\/\d*$/, "");
  sharedUrl = (db) => emptyDb(`${base}/${db}`);
  // the local run every queued run is compared with
  const local = segcause(...evaluateArgs(join(dir, "local")));
  if (local.code !== 0) throw new Error(local.stderr);
});
afterAll(async () => {
  await shared?.stop();
});

describe.skipIf(!!missing)("evaluate --queue on a real redis-server", () => {
  it("a queued run with 1 and with 2 workers writes exactly the local run's cells, each job computed once", async () => {
    for (const n of [1, 2]) {
      const url = sharedUrl(n);
      const workers = Array.from({ length: n }, () => worker(url));
      const out = join(dir, `queued${n}`);
      const run = bg(...evaluateArgs(out, ["--queue", url]));
      const code = await run.done;
      await stop(...workers);
      expect(code, run.err()).toBe(0);
      expect(run.out()).toContain("12 cells computed, 0 already finished");
      expectSameCells(join(dir, "local"), out);
      const done = workers.flatMap((w) => doneJobs(w.err()));
      expect(done.length).toBe(16);
      expect(new Set(done).size).toBe(16);
      if (n === 2) expect(workers.every((w) => doneJobs(w.err()).length > 0)).toBe(true);
      // the status counts the finished jobs and their cost
      const st = segcause("queue", "status", "--queue", url, "--json");
      expect(st.code, st.stderr).toBe(0);
      const s = JSON.parse(st.stdout);
      expect([s.queued, s.running, s.done, s.failed, s.cost.cells]).toEqual([0, 0, 16, 0, 12]);
      // the cells' maps left Redis once written (the jobs stay: a rerun re-attaches to them)
      const q = queueAt(url);
      try {
        const finished = await q.getCompleted();
        expect(finished.filter((j) => j.name === "cell").map((j) => j.returnvalue ?? null)).toEqual(Array(12).fill(null));
        expect(finished.filter((j) => j.name === "control").every((j) => j.returnvalue?.control)).toBe(true);
      } finally {
        await q.shut();
      }
    }
  });

  it("a worker killed (-9) mid-job: the job goes to another worker after the stall time and completes once", async () => {
    const url = sharedUrl(3);
    const out = join(dir, "killed");
    const w1 = worker(url, "--stall-seconds", "2");
    const run = bg(...evaluateArgs(out, ["--queue", url, "--images", "1", "--rois", "boundary:8x1"], ["rise", "--set", "rise.masks=8000"]));
    const q = queueAt(url);
    try {
      await until("the cell job runs", async () => (await q.getActive()).some((j) => j.name === "cell"));
      w1.child.kill("SIGKILL");
      await w1.done;
      const w2 = worker(url, "--stall-seconds", "2");
      const code = await run.done;
      await stop(w2);
      expect(code, run.err()).toBe(0);
      expect(run.out()).toContain("1 cells computed");
      const cell = JSON.parse(readFileSync(join(out, "cells/tiny/causal/img0/boundary8-0/rise/cell.json"), "utf8"));
      expect(cell.cost.forwardPasses).toBe(8001); // RISE: 1 + masks
      const job = (await jobOf(q, cell.key))!;
      expect(await job.getState()).toBe("completed");
      expect(job.stalledCounter).toBe(1);
      expect(job.returnvalue ?? null).toBeNull(); // written to the folder, so dropped from Redis
      expect(doneJobs(w1.err())).not.toContain(job.id);
      expect(doneJobs(w2.err()).filter((id) => id === job.id)).toHaveLength(1);
    } finally {
      await q.shut();
    }
  });

  it("a worker stopped (SIGTERM) mid-job, twice: the job goes back to the queue at once, not as a stall, and completes once", async () => {
    const url = sharedUrl(7);
    const out = join(dir, "stopped");
    const run = bg(...evaluateArgs(out, ["--queue", url, "--images", "1", "--rois", "boundary:8x1"], ["rise", "--set", "rise.masks=8000"]));
    const q = queueAt(url);
    try {
      for (let k = 0; k < 2; k++) {
        // a stall time far above the test's waits: the job must come back by the hand-back, not by stalling
        const w = worker(url, "--stall-seconds", "600");
        await until("the cell job runs", async () => (await q.getActive()).some((j) => j.name === "cell"));
        w.child.kill("SIGTERM");
        expect(await within(w.done, 60_000, "the stopped worker exits")).toBe(143);
        expect(doneJobs(w.err())).toHaveLength(k === 0 ? 1 : 0); // the RoI's control, then nothing
        await until("the cell job waits again", async () => (await q.getWaiting()).some((j) => j.name === "cell"), 30_000);
      }
      const w3 = worker(url, "--stall-seconds", "600");
      const code = await within(run.done, 300_000, "the run finishes");
      await stop(w3);
      expect(code, run.err()).toBe(0);
      const cell = JSON.parse(readFileSync(join(out, "cells/tiny/causal/img0/boundary8-0/rise/cell.json"), "utf8"));
      expect(cell.cost.forwardPasses).toBe(8001);
      const job = (await jobOf(q, cell.key))!;
      expect(await job.getState()).toBe("completed");
      expect(job.stalledCounter).toBe(0);
      expect(doneJobs(w3.err()).filter((id) => id === job.id)).toHaveLength(1);
    } finally {
      await q.shut();
    }
  });

  it("jobs removed while the enqueuer waits (queue drain): one line, exit 1; the same command then queues them again", async () => {
    const url = sharedUrl(8);
    const out = join(dir, "drained");
    const run = bg(...evaluateArgs(out, ["--queue", url, "--images", "1", "--rois", "boundary:8x1"], ["zero"]));
    const q = queueAt(url);
    try {
      await until("a job waits", async () => (await q.getWaitingCount()) > 0);
      const drain = segcause("queue", "drain", "--queue", url);
      expect(drain.code, drain.stderr).toBe(0);
      expect(await within(run.done, 60_000, "the enqueuer notices")).toBe(1);
      const lines = run.err().trim().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^segcause: error: job \S+ left the queue of redis:\/\/\S+ before it finished .*rerun the same command/);
      const w = worker(url);
      const again = bg(...evaluateArgs(out, ["--queue", url, "--images", "1", "--rois", "boundary:8x1"], ["zero"]));
      const code = await within(again.done, 120_000, "the rerun finishes");
      await stop(w);
      expect(code, again.err()).toBe(0);
      expect(again.out()).toContain("1 cells computed, 0 already finished");
    } finally {
      await q.shut();
    }
  });

  it("an enqueuer stopped and restarted re-attaches: finished cells are kept and no job is computed twice", async () => {
    const url = sharedUrl(4);
    const out = join(dir, "restarted");
    const w = worker(url);
    const first = bg(...evaluateArgs(out, ["--queue", url]));
    await until("a cell is written", () => existsSync(join(out, "cells/tiny/causal/img0/boundary8-0/zero/cell.json")));
    first.child.kill("SIGKILL");
    await first.done;
    const again = bg(...evaluateArgs(out, ["--queue", url]));
    const code = await again.done;
    await stop(w);
    expect(code, again.err()).toBe(0);
    const [, computed, resumed] = /(\d+) cells computed, (\d+) already finished/.exec(again.out())!.map(Number);
    expect(resumed).toBeGreaterThan(0);
    expect(computed + resumed).toBe(12);
    expectSameCells(join(dir, "local"), out);
    const done = doneJobs(w.err());
    expect(new Set(done).size).toBe(done.length);
    expect(done.length).toBe(16);
  });

  it("Redis stopped mid-run: the enqueuer stops with one line; with Redis back the same command finishes the run", async () => {
    const r = await startRedis();
    try {
      const out = join(dir, "redis-lost");
      const run = bg(...evaluateArgs(out, ["--queue", r.url])); // no worker yet: the jobs wait
      const probe = new Redis(redisOptions(r.url));
      await until("jobs wait in the queue", async () => (await probe.llen(`bull:${CELLS_QUEUE}:wait`)) > 0);
      probe.disconnect();
      await r.stop();
      expect(await within(run.done, 120_000, "the enqueuer stops after Redis went away")).toBe(1);
      const lines = run.err().trim().split("\n");
      expect(lines, run.err()).toHaveLength(1);
      expect(lines[0]).toMatch(/^segcause: error: lost the connection to Redis at redis:\/\/127\.0\.0\.1:\d+\/0 .*rerun the same command/);
      await r.start();
      const w = worker(r.url);
      const again = bg(...evaluateArgs(out, ["--queue", r.url]));
      const code = await within(again.done, 300_000, "the rerun finishes with Redis back");
      await stop(w);
      expect(code, again.err()).toBe(0);
      expectSameCells(join(dir, "local"), out);
    } finally {
      await r.stop();
    }
  });

  it("with a password: a refused cell is recorded once (not retried); foreign and malformed jobs are rejected, never run", async () => {
    const r = await startRedis({
      args: (port) => ["--port", String(port), "--requirepass", "p@ss w0rd"],
      url: (port) => `redis://:p%40ss%20w0rd@127.0.0.1:${port}/0`,
    });
    let explained = 0;
    registerMethod({
      name: "t-queue-refuse",
      family: "perturbation",
      summary: "refuses every input",
      cost: "0",
      options: [],
      explain: async () => {
        explained++;
        return fail("t-queue-refuse cannot explain this model", "it never can");
      },
    });
    const logs: string[] = [];
    const stopWorker = new AbortController();
    const working = runWorker(
      { url: r.url, concurrency: 1, cache: tmp("segcause-wcache-"), stallSeconds: 30, log: (l) => logs.push(l) },
      stopWorker.signal,
    );
    const cells = await RemoteCells.open(r.url);
    const q = queueAt(r.url);
    try {
      const out = join(dir, "refused");
      const s = await runEvaluation(tinyRun([join(dir, "causal.onnx")], out, { methods: [{ name: "t-queue-refuse", options: {} }] }), {
        remote: { cells, roisAtOnce: 4 },
      });
      expect([s.computed, s.failed]).toEqual([0, 1]);
      const failed = JSON.parse(readFileSync(join(out, "cells/tiny/causal/img0/boundary8-0/t-queue-refuse/failed.json"), "utf8"));
      expect(failed.reason).toBe("t-queue-refuse cannot explain this model (it never can)");
      const job = (await jobOf(q, failed.key))!;
      expect(job.failedReason).toBe(`${REFUSED}t-queue-refuse cannot explain this model (it never can)`);
      expect([job.attemptsMade, explained]).toEqual([1, 1]);

      // a job type segcause does not have, and a cell job whose payload names a path
      const foreign = await q.add("shell", { cmd: "touch /tmp/owned" }, { attempts: 3 });
      const bad = { ...job.data, id: { dataset: "tiny" }, image: { sha256: "../../etc/passwd", name: "x" } };
      const malformed = await q.add("cell", bad, { attempts: 3, jobId: "t-malformed" });
      // a rejected job leaves the queue (its id is free again) and is listed by `queue status`
      const rejectedOnce = async (ids: string[]) => {
        for (const id of ids) await until("the job is rejected and removed", async () => (await q.getJob(id)) === undefined);
      };
      await rejectedOnce([foreign.id!, malformed.id!]);
      const st = segcause("queue", "status", "--queue", r.url, "--json");
      expect(st.code, st.stderr).toBe(0);
      const status = JSON.parse(st.stdout);
      expect(status.rejected).toBe(2);
      expect(status.rejections.map((x: { type: string }) => x.type).sort()).toEqual(["cell", "shell"]);
      expect(status.rejections.every((x: { reason: string }) => x.reason.startsWith(REJECTED))).toBe(true);
      // the same id queued again is a new job (BullMQ would have returned the old, failed one) and is rejected again, unrun
      const again = await q.add("cell", bad, { attempts: 3, jobId: "t-malformed" });
      expect(again.timestamp).toBeGreaterThan(malformed.timestamp);
      await rejectedOnce([again.id!]);
      expect(logs.filter((l) => l.startsWith("rejected job"))).toHaveLength(3);
      expect(explained).toBe(1);
      // the wrong password is one line
      const wrong = segcause("queue", "status", "--queue", r.url.replace("p%40ss", "nope"));
      expect(wrong.code).toBe(1);
      expect(wrong.stderr.trim().split("\n")).toHaveLength(1);
      expect(wrong.stderr).toMatch(/cannot reach Redis at redis:\/\/:\*\*\*@127\.0\.0\.1/);
    } finally {
      await q.shut();
      await cells.close();
      stopWorker.abort();
      await working;
      await r.stop();
    }
  });

  it("two models of the same bytes under two names: two jobs, each cell labelled as in a local run", async () => {
    const copyDir = tmp("segcause-renamed-");
    copyFileSync(join(dir, "causal.onnx"), join(copyDir, "renamed.onnx"));
    const url = sharedUrl(6);
    const stopWorker = new AbortController();
    const working = runWorker({ url, concurrency: 1, cache: tmp("segcause-wcache-"), stallSeconds: 30, log: () => {} }, stopWorker.signal);
    const cells = await RemoteCells.open(url);
    const config = (out: string) => tinyRun([join(dir, "causal.onnx"), join(copyDir, "renamed.onnx")], out);
    try {
      await runEvaluation(config(join(dir, "renamed-local")));
      const s = await runEvaluation(config(join(dir, "renamed-queued")), { remote: { cells, roisAtOnce: 4 } });
      expect(s.computed).toBe(2);
      expectSameCells(join(dir, "renamed-local"), join(dir, "renamed-queued"));
      const id = JSON.parse(readFileSync(join(dir, "renamed-queued/cells/tiny/renamed/img0/boundary8-0/zero/cell.json"), "utf8")).id;
      expect(id.model).toBe("renamed");
      // a cached input that changed on disk is fetched again, never used
      const redis = new Redis(redisOptions(url));
      try {
        const cache = tmp("segcause-bcache-");
        const ref = await putBlob(redis, join(dir, "causal.onnx"));
        const path = await fetchBlob(redis, ref, cache);
        writeFileSync(path, "garbage");
        expect(await fetchBlob(redis, ref, cache)).toBe(path);
        expect(readFileSync(path).equals(readFileSync(join(dir, "causal.onnx")))).toBe(true);
      } finally {
        redis.disconnect();
      }
    } finally {
      await cells.close();
      stopWorker.abort();
      await working;
    }
  });

  it("a worker bounded to one loaded model (--max-models 1) releases the least recently used and writes the local run's cells", async () => {
    const other = tmp("segcause-other-");
    writeModel(other, "other.onnx", regionMeanModel([{ row: 8, col: 8, height: 16, width: 16, weight: 30 }], -20));
    const url = sharedUrl(14);
    const logs: string[] = [];
    const stopWorker = new AbortController();
    const working = runWorker(
      { url, concurrency: 1, cache: tmp("segcause-wcache-"), stallSeconds: 30, maxModels: 1, log: (l) => logs.push(l) },
      stopWorker.signal,
    );
    const cells = await RemoteCells.open(url);
    const config = (out: string) => tinyRun([join(dir, "causal.onnx"), join(other, "other.onnx")], out, { images: 2 });
    try {
      await runEvaluation(config(join(dir, "bounded-local")));
      const s = await runEvaluation(config(join(dir, "bounded-queued")), { remote: { cells, roisAtOnce: 1 } });
      expect(s.computed).toBe(4);
      expectSameCells(join(dir, "bounded-local"), join(dir, "bounded-queued"));
      expect(logs.filter((l) => /^released model [0-9a-f]{12}… \(--max-models 1\)$/.test(l)).length).toBeGreaterThan(0);
    } finally {
      await cells.close();
      stopWorker.abort();
      await working;
    }
  });

  it("queue retry removes a rejected job an older worker left failed, so its id can be queued again; other failures go back to the queue", async () => {
    const url = sharedUrl(15);
    const q = queueAt(url);
    const connection = new Redis(redisOptions(url));
    // an older worker: it failed rejected jobs and kept them
    const old = new Worker(
      CELLS_QUEUE,
      async (job) => {
        throw job.name === "cell" ? new UnrecoverableError(`${REJECTED}malformed cell job`) : new UnrecoverableError("a crash");
      },
      { connection },
    );
    try {
      await q.add("cell", { v: 0 }, { jobId: "t-old-rejected" });
      await q.add("control", { v: 0 }, { jobId: "t-old-crashed" });
      await until("both jobs failed", async () => (await q.getFailedCount()) === 2);
      await old.close();
      const retry = segcause("queue", "retry", "--queue", url, "--json");
      expect(retry.code, retry.stderr).toBe(0);
      expect(JSON.parse(retry.stdout)).toMatchObject({ retried: 1, refused: 0, removed: 1 });
      expect(await q.getJob("t-old-rejected")).toBeUndefined();
      expect(await (await q.getJob("t-old-crashed"))!.getState()).toBe("waiting");
      const again = await q.add("cell", { v: 1 }, { jobId: "t-old-rejected" });
      expect(again.data).toEqual({ v: 1 });
    } finally {
      await old.close();
      connection.disconnect();
      await q.shut();
    }
  });

  it("inputs the queue cannot carry (external weights, a file over Redis' value size) are refused before anything is written", async () => {
    const r = await startRedis({ args: (port) => ["--port", String(port), "--proto-max-bulk-len", "1mb"] });
    const cells = await RemoteCells.open(r.url);
    const q = queueAt(r.url);
    try {
      const folder = tmp("segcause-extq-");
      const m = fromBinary(ModelProtoSchema, regionMeanModel([{ row: 0, col: 16, height: 16, width: 16, weight: 50 }], -40));
      const chunks: Uint8Array[] = [];
      let offset = 0;
      for (const t of m.graph!.initializer) {
        chunks.push(t.rawData);
        t.externalData = [
          create(StringStringEntryProtoSchema, { key: "location", value: "ext.weights" }),
          create(StringStringEntryProtoSchema, { key: "offset", value: String(offset) }),
          create(StringStringEntryProtoSchema, { key: "length", value: String(t.rawData.length) }),
        ];
        offset += t.rawData.length;
        t.rawData = new Uint8Array(0);
        t.dataLocation = TensorProto_DataLocation.EXTERNAL;
      }
      writeFileSync(join(folder, "ext.weights"), Buffer.concat(chunks));
      writeModel(folder, "ext.onnx", toBinary(ModelProtoSchema, m));
      await flatBank(Array.from({ length: 8000 }, (_, k) => 20 + (k % 200))).save(join(folder, "big.scbank")); // 1.5 MB
      const config = (model: string, bank: string, out: string) =>
        tinyRun([model], out, { bank, protocol: { ...PROTOCOL_DEFAULTS, radius: 8, rankUnits: { kind: "pixel" } } });
      const remote = { remote: { cells, roisAtOnce: 4 } };
      const ext = join(dir, "ext-queued");
      await expect(runEvaluation(config(join(folder, "ext.onnx"), join(dir, "bank.scbank"), ext), remote)).rejects.toThrow(
        /ext\.onnx keeps its weights in external data files, which --queue does not send to the workers/,
      );
      const big = join(dir, "big-queued");
      await expect(runEvaluation(config(join(dir, "causal.onnx"), join(folder, "big.scbank"), big), remote)).rejects.toThrow(
        /big\.scbank has 1\.5 MB, more than the 1 MB one Redis value of redis:\/\/127\.0\.0\.1:\d+\/0 can hold/,
      );
      expect([existsSync(ext), existsSync(big)]).toEqual([false, false]);
      expect(await q.count()).toBe(0);
    } finally {
      await q.shut();
      await cells.close();
      await r.stop();
    }
  });

  it("rediss:// reaches a TLS-only redis-server (a self-signed certificate trusted through NODE_EXTRA_CA_CERTS)", async () => {
    const certs = tmp("segcause-tls-");
    const cert = join(certs, "cert.pem"),
      key = join(certs, "key.pem");
    const ssl = spawnSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        key,
        "-out",
        cert,
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=DNS:localhost",
      ],
      { encoding: "utf8" },
    );
    expect(ssl.status, ssl.stderr).toBe(0);
    const r = await startRedis({
      args: (port) => [
        "--port",
        "0",
        "--tls-port",
        String(port),
        "--tls-cert-file",
        cert,
        "--tls-key-file",
        key,
        "--tls-ca-cert-file",
        cert,
        "--tls-auth-clients",
        "no",
        "--requirepass",
        "s3/cr@t",
      ],
      url: (port) => `rediss://:s3%2Fcr%40t@localhost:${port}/0`,
    });
    try {
      const env = { ...process.env, NODE_EXTRA_CA_CERTS: cert };
      // the worker's password from the environment, the enqueuer's in the URL: neither is ever written or printed
      const bare = r.url.replace(/:[^:@]*@/, "");
      const w = spawn(process.execPath, [BIN, "worker", "--queue", bare, "--cache", tmp("segcause-wcache-")], {
        env: { ...env, SEGCAUSE_REDIS_PASSWORD: "s3/cr@t" },
        stdio: "ignore",
      });
      const run = spawnSync(
        process.execPath,
        [BIN, ...evaluateArgs(join(dir, "tls"), ["--queue", r.url, "--images", "1", "--rois", "boundary:8x1"], ["saliency"])],
        {
          env,
          encoding: "utf8",
          timeout: 240_000,
        },
      );
      w.kill("SIGTERM");
      expect(run.status, run.stderr).toBe(0);
      expect(run.stdout).toContain("1 cells computed");
      const leaks = spawnSync("grep", ["-rlE", "s3/cr@t|s3%2Fcr%40t|cr%40t", join(dir, "tls")], { encoding: "utf8" });
      expect(leaks.stdout).toBe("");
      expect(readFileSync(join(dir, "tls", "run.json"), "utf8")).toContain("rediss://:***@localhost");
      const plain = segcause("queue", "status", "--queue", r.url.replace("rediss:", "redis:"));
      expect(plain.code).toBe(1);
      expect(plain.stderr.trim().split("\n")).toHaveLength(1);
    } finally {
      await r.stop();
    }
  });

  it("a result of another segcause version is refused in one line and not kept; the rerun's notes are the local run's and run.json names its workers", async () => {
    const url = sharedUrl(10);
    // one method; blocks of 8 px leave fewer units than --steps 20 on every RoI: the note a worker's RoI gives
    const args = (out: string, more: string[] = []) =>
      evaluateArgs(out, ["--steps", "20", ...more], ["zero"]).map((a) => (a === "pixel" ? "block:8" : a));
    const local = segcause(...args(join(dir, "notes-local"), ["--json"]));
    expect(local.code, local.stderr).toBe(0);
    const notes: string[] = JSON.parse(local.stdout).notes;
    expect(notes.filter((n) => /^causal: --rank-units block:8 leaves as few as \d+ units for --steps 20/.test(n))).toHaveLength(1);
    const out = join(dir, "notes-queued");
    const run = bg(...args(out, ["--queue", url]));
    let refusedJob = "";
    // a worker of another segcause version (the same job format) answers the first control job
    await answerOnce(url, (job) => {
      refusedJob = String(job.id);
      return { skipped: "a skipped RoI, were it kept", ...shardVersions(), segcause: "0.0.0-other", machine: shardMachine() };
    });
    expect(await within(run.done, 120_000, "the run refuses the result"), run.err()).toBe(1);
    expect(run.err().trim().split("\n")).toHaveLength(1);
    expect(run.err()).toMatch(
      /a worker returned a result computed by segcause 0\.0\.0-other \(this run: .*\) for the control of img\d \S+; it is not kept \(run workers of segcause /,
    );
    expect(existsSync(join(out, "controls"))).toBe(false);
    const q = queueAt(url);
    try {
      expect(refusedJob).toMatch(/^control-/);
      expect(await q.getJob(refusedJob)).toBeUndefined();
    } finally {
      await q.shut();
    }
    // the rerun with a real worker computes it again: the local run's cells and notes
    const w = worker(url);
    const again = bg(...args(out, ["--queue", url, "--json"]));
    const code = await within(again.done, 120_000, "the rerun finishes");
    await stop(w);
    expect(code, again.err()).toBe(0);
    expect(JSON.parse(again.out()).notes).toEqual(notes);
    expectSameCells(join(dir, "notes-local"), out);
    const recorded = JSON.parse(readFileSync(join(out, "run.json"), "utf8")).queue;
    expect(recorded).toEqual({
      urls: [url],
      segcause: shardVersions().segcause,
      workers: [{ ...shardMachine(), onnxruntime: shardVersions().onnxruntime }],
      workersLikeThisMachine: true,
    });
    expect(recorded.workers[0].host).toBe(hostname());
  });

  it("a bad or unreachable --queue is one line, exit 1, and evaluate writes nothing", async () => {
    const percent = segcause("queue", "status", "--queue", "redis://:100%@127.0.0.1:6379/0");
    expect(percent.code).toBe(1);
    expect(percent.stderr.trim()).toMatch(
      /^segcause: error: the password in --queue redis:\/\/:\*\*\*@127\.0\.0\.1:6379\/0 is not percent-encoded \(encode % as %25/,
    );
    const noDb = segcause("queue", "status", "--queue", sharedUrl(99));
    expect(noDb.code).toBe(1);
    expect(noDb.stderr.trim()).toMatch(/^segcause: error: --queue redis:\/\/\S+\/99: the server has no database 99 \(ERR DB index is out of range\)/);
    const slash = segcause("queue", "status", "--queue", "redis://:pa/ss@127.0.0.1:6379/0");
    expect(slash.code).toBe(1);
    expect(slash.stderr).not.toContain("ss@");
    const notRedis = segcause("worker", "--queue", "http://127.0.0.1:6379/0");
    expect(notRedis.code).toBe(1);
    expect(notRedis.stderr.trim()).toMatch(/^segcause: error: --queue http:\/\/127\.0\.0\.1:6379\/0 is not a Redis URL \(http:\) \(give redis:/);
    const r = await startRedis();
    await r.stop(); // a port nothing listens on
    const out = join(dir, "unreachable");
    const down = segcause(...evaluateArgs(out, ["--queue", r.url]));
    expect(down.code).toBe(1);
    expect(down.stderr.trim().split("\n")).toHaveLength(1);
    expect(down.stderr).toContain(`cannot reach Redis at ${r.url}`);
    expect(existsSync(out)).toBe(false);
  });
});

describe("a worker's cache", () => {
  it("drops checkpoints untouched for a day (a worker killed mid-job whose job finished elsewhere), keeps fresh ones", () => {
    const d = join(tmp("segcause-wcache-"), "checkpoints");
    mkdirSync(d, { recursive: true });
    for (const n of ["old.json", "fresh.json", "old.txt"]) writeFileSync(join(d, n), "{}");
    const old = (Date.now() - STALE_CHECKPOINT_MS - 60_000) / 1000;
    for (const n of ["old.json", "old.txt"]) utimesSync(join(d, n), old, old);
    expect(pruneCheckpoints(d)).toEqual(["old.json"]);
    expect(readdirSync(d).sort()).toEqual(["fresh.json", "old.txt"]);
    expect(pruneCheckpoints(join(d, "absent"))).toEqual([]);
  });
});
