/**
 * explain --queue on a real redis-server: one map split into shards of blocks, computed by
 * `segcause worker`s and gathered into the local run's folder, bit for bit (1 and 2 workers); an
 * enqueuer killed mid-run resumes without computing a finished shard again; maps that cannot be split
 * (the fast schedule, RISE) are refused in one line before anything is written or queued; a bad
 * shard result (malformed, of another version, under another key) is refused, never kept, and the rerun
 * with real workers completes; the password is in no lock file; a worker restart returns the same shard.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { type Job, Queue } from "bullmq";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadCase } from "../src/data/case.js";
import { getMethod } from "../src/explain/catalog.js";
import { resolveOptions } from "../src/explain/methods.js";
import { Model } from "../src/model/model.js";
import { CELLS_QUEUE, redisOptions } from "../src/queue/connection.js";
import type { ShardJob } from "../src/queue/jobs.js";
import { SHARDS_DIR } from "../src/queue/remote-explain.js";
import { shardMachine, shardVersions } from "../src/queue/shard-env.js";
import { runShard } from "../src/queue/shard-worker.js";
import { segcause } from "./helpers/cli.js";
import { type Bg, bg, bgEnv, stop, until, within, worker } from "./helpers/processes.js";
import { answerOnce, doneShards } from "./helpers/queue-jobs.js";
import { emptyDb, redisMissing, startRedis, type TestRedis } from "./helpers/redis.js";
import { flatBank, localConvModel, regionMeanModel, tmp, writeImage, writeMask, writeModel } from "./helpers/tiny.js";

const missing = redisMissing();
if (missing) console.warn(`queue-explain.test.ts: ${missing}, so the explain --queue tests are skipped`);

let dir: string;
let shared: TestRedis | undefined;
let sharedUrl: (db: number) => string;

/** A paper-schedule PdCR map of the tiny model, 4 px blocks (60 blocks outside the RoI), at a fixed batch size and thread count. */
const explainArgs = (out: string, more: string[] = []) => [
  "explain",
  ...["--model", join(dir, "model.onnx"), "--image", join(dir, "img.png"), "--mask", join(dir, "mask.png")],
  ...["--roi", "0,16,8,8", "--method", "pdcr", "--schedule", "paper", "--block", "4", "--bank", join(dir, "bank.scbank")],
  ...["--samples", "20", "--seed", "7", "--batch-size", "4", "--threads", "1", "--workers", "1", "--no-progress", "--out", out],
  ...more,
];

/** The map's files are the local run's, byte for byte (stats.json but for the run's wall time). */
function expectSameMap(a: string, b: string): void {
  for (const f of ["map.npy", "stderr.npy", "map.json"]) expect(readFileSync(join(b, f)).equals(readFileSync(join(a, f))), f).toBe(true);
  const stats = (d: string) => ({ ...JSON.parse(readFileSync(join(d, "stats.json"), "utf8")), wallMs: 0 });
  expect(stats(b)).toEqual(stats(a));
  // a map with effects (an all-zero one would compare equal for many wrong reasons)
  expect(JSON.parse(readFileSync(join(a, "map.json"), "utf8")).units.filter((u: { effect: number }) => u.effect !== 0).length).toBeGreaterThan(2);
}

beforeAll(async () => {
  if (missing) return;
  dir = tmp("segcause-qexplain-");
  writeModel(
    dir,
    "model.onnx",
    regionMeanModel(
      [
        { row: 0, col: 16, height: 16, width: 16, weight: 40 },
        { row: 20, col: 0, height: 8, width: 8, weight: -15 },
      ],
      -27.5,
    ),
  );
  await writeImage(dir, "img.png", (y, x) => (y < 16 && x >= 16 ? 220 : 60 + ((x * 37 + y * 23) % 90)));
  await writeMask(dir, "mask.png", (y, x) => y < 16 && x >= 16);
  await flatBank([10, 60, 120, 180, 240], 4).save(join(dir, "bank.scbank"));
  const env = process.env.SEGCAUSE_TEST_REDIS;
  if (!env) shared = await startRedis();
  const base = (env ?? shared!.url).replace(/\/\d*$/, "");
  sharedUrl = (db) => emptyDb(`${base}/${db}`);
  const local = segcause(...explainArgs(join(dir, "local")));
  if (local.code !== 0) throw new Error(local.stderr);
});
afterAll(async () => {
  await shared?.stop();
});

describe.skipIf(!!missing)("explain --queue on a real redis-server", () => {
  it("with 1 and with 2 workers the map is the local run's bit for bit, each shard computed once, and Redis keeps no result", async () => {
    for (const n of [1, 2]) {
      const url = sharedUrl(9 + n);
      const workers = Array.from({ length: n }, () => worker(url));
      const out = join(dir, `queued${n}`);
      const run = bg(...explainArgs(out, ["--queue", url, "--shards", "5"]));
      const code = await within(run.done, 300_000, "the queued map is written");
      await stop(...workers);
      expect(code, run.err()).toBe(0);
      expectSameMap(join(dir, "local"), out);
      const done = workers.flatMap((w) => doneShards(w.err()));
      expect(done.length).toBe(5);
      expect(new Set(done).size).toBe(5);
      const manifest = JSON.parse(readFileSync(join(out, "manifest.json"), "utf8"));
      const local = JSON.parse(readFileSync(join(dir, "local", "manifest.json"), "utf8"));
      // the workers ran here: their machine and versions are this one's, and the provenance says so
      expect(manifest.provenance.queue).toMatchObject({ url, shards: 5, segcause: shardVersions().segcause, workersLikeThisMachine: true });
      expect(manifest.provenance.queue.workers).toEqual([{ ...shardMachine(), onnxruntime: shardVersions().onnxruntime }]);
      expect(manifest.provenance.queue.workers[0].host).toBe(hostname());
      expect(manifest.provenance.queue.samples).toBe(local.forwardPasses - 1); // every sample but the unperturbed pass
      expect(manifest.forwardPasses).toBe(local.forwardPasses);
      expect(existsSync(join(out, SHARDS_DIR))).toBe(false);
      expect(existsSync(join(out, ".checkpoint.json"))).toBe(false);
      // the finished jobs hold no result once the enqueuer has written it
      const connection = new Redis(redisOptions(url));
      const q = new Queue(CELLS_QUEUE, { connection });
      try {
        const jobs = await q.getCompleted();
        expect(jobs.length).toBe(5);
        expect(jobs.every((j) => j.returnvalue === null)).toBe(true);
      } finally {
        await q.close();
        connection.disconnect();
      }
    }
  });

  it("an enqueuer interrupted mid-run (Ctrl-C) says its kept shards are kept; rerun: they are not computed again and the map is the local run's", async () => {
    const url = sharedUrl(12);
    const out = join(dir, "resumed");
    const args = explainArgs(out, ["--queue", url, "--shards", "8"]);
    const first = bg(...args);
    const w1 = worker(url);
    // the worker is paused as soon as the first shard is in the folder, then the enqueuer is killed
    await until("a shard is written", () => existsSync(join(out, SHARDS_DIR)) && readdirSync(join(out, SHARDS_DIR)).some((f) => f.endsWith(".json")));
    w1.child.kill("SIGSTOP");
    first.child.kill("SIGINT");
    expect(await first.done).toBe(130);
    expect(first.err()).toMatch(/interrupted \(SIGINT\); finished work is kept.*rerun the same command/);
    const kept = readdirSync(join(out, SHARDS_DIR)).filter((f) => f.endsWith(".json")).length;
    w1.child.kill("SIGCONT");
    await stop(w1);
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(8);
    const w2 = worker(url);
    const again = bg(...args);
    const code = await within(again.done, 300_000, "the rerun finishes");
    await stop(w2);
    expect(code, again.err()).toBe(0);
    expectSameMap(join(dir, "local"), out);
    const first1 = doneShards(w1.err()),
      second = doneShards(w2.err());
    // nothing doubled: every shard computed once over both runs, the kept ones never again
    expect(first1.length + second.length).toBe(8);
    expect(new Set([...first1, ...second]).size).toBe(8);
    expect(second.length).toBeLessThanOrEqual(8 - kept);
  });

  it("occlusion (overlapping windows), pdcr-superpixel (irregular units) and RoI-cropped zero too, through a Redis with a password never recorded", async () => {
    const r = await startRedis({
      args: (port) => ["--port", String(port), "--requirepass", "s3cr@t"],
      url: (port) => `redis://:s3cr%40t@127.0.0.1:${port}/0`,
    });
    // no worker yet: the run waits with its folder locked; neither the lock file nor a second run's "in use" line holds the password
    const locked = join(dir, "locked");
    const lockArgs = [...explainArgs(locked, ["--queue", r.url, "--shards", "2"])];
    const waiting = bg(...lockArgs);
    await until("the folder is locked", () => existsSync(join(locked, ".segcause.lock")));
    const lockText = readFileSync(join(locked, ".segcause.lock"), "utf8");
    expect(lockText).toContain("--queue redis://:***@127.0.0.1");
    expect(lockText).not.toMatch(/s3cr/);
    const second = segcause(...lockArgs);
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/is being written by another segcause run .*--queue redis:\/\/:\*\*\*@/);
    expect(second.stderr).not.toMatch(/s3cr/);
    // the worker's password from the environment, the enqueuer's in the URL
    const bare = r.url.replace(/:[^:@/]*@/, "");
    const w = bgEnv({ SEGCAUSE_REDIS_PASSWORD: "s3cr@t" }, "worker", "--queue", bare, "--cache", tmp("segcause-wcache-"));
    try {
      writeModel(dir, "local.onnx", localConvModel());
      const tiny = ["--model", join(dir, "model.onnx"), "--image", join(dir, "img.png"), "--roi", "0,16,8,8"];
      const maps = [
        [...tiny, "--method", "occlusion", "--block", "8", "--stride", "4"],
        [...tiny, "--method", "pdcr-superpixel", "--segments", "12", "--samples", "10", "--bank", join(dir, "bank.scbank")],
        // RoI-cropped passes: the blocks outside the RoI's reach take no pass on the workers nor here
        [
          ...["--model", join(dir, "local.onnx"), "--image", join(dir, "img.png"), "--roi", "8,8,8,8", "--method", "zero", "--block", "8"],
          ...["--outcome", "soft-dice", "--incremental", "on"],
        ],
      ];
      for (const [k, m] of maps.entries()) {
        const args = (out: string) => [
          ...["explain", ...m],
          ...["--seed", "3", "--batch-size", "4", "--threads", "1", "--workers", "1", "--no-progress", "--out", out],
        ];
        const local = segcause(...args(join(dir, `map${k}-local`)));
        expect(local.code, local.stderr).toBe(0);
        const queued = bg(...args(join(dir, `map${k}-queued`)), "--queue", r.url, "--shards", "3");
        expect(await within(queued.done, 300_000, `the queued map ${k} is written`), queued.err()).toBe(0);
        expectSameMap(join(dir, `map${k}-local`), join(dir, `map${k}-queued`));
        const text = readFileSync(join(dir, `map${k}-queued`, "manifest.json"), "utf8");
        expect(text).not.toMatch(/s3cr/);
        const manifest = JSON.parse(text);
        expect(manifest.provenance.queue.url).toBe(r.url.replace("s3cr%40t", "***"));
        // passes, settings (the cropped passes' skipped count included) and notes as the local run records them
        const mine = JSON.parse(readFileSync(join(dir, `map${k}-local`, "manifest.json"), "utf8"));
        expect([manifest.forwardPasses, manifest.provenance.settings]).toEqual([mine.forwardPasses, mine.provenance.settings]);
        expect(manifest.notes.filter((n: string) => !n.startsWith("computed on the workers"))).toEqual(mine.notes);
        expect(queued.out()).toMatch(/ passes on the queue's workers \(gathered here in \d+\.\d s\)/);
        if (k === 2) expect(mine.provenance.settings.incremental.skippedPasses).toBeGreaterThan(0);
      }
      expect(await within(waiting.done, 300_000, "the locked run finishes"), waiting.err()).toBe(0);
      expectSameMap(join(dir, "local"), locked);
      expect(doneShards(w.err())).toHaveLength(11);
    } finally {
      await stop(w, waiting);
      await r.stop();
    }
  });

  it("a bad shard result (malformed, of another version, under another key) is refused and not kept; the rerun with real workers is the local map", async () => {
    const url = sharedUrl(14);
    const out = join(dir, "refused");
    const args = explainArgs(out, ["--queue", url, "--shards", "3"]);
    const good = (job: Job) => ({ job: job.id, ...shardVersions(), machine: shardMachine(), key: "a".repeat(64), samples: {} });
    const refused = async (answer: (job: Job) => unknown, before?: () => Bg): Promise<string> => {
      const run = bg(...args);
      await answerOnce(url, answer);
      const w = before?.();
      expect(await within(run.done, 300_000, "the run refuses the shard"), run.err()).toBe(1);
      if (w) await stop(w);
      expect(run.err().trim().split("\n")).toHaveLength(1);
      return run.err();
    };
    expect(await refused(() => ({ key: "nope", samples: {} }))).toMatch(
      /a worker returned a bad shard \d of 3 of the map: malformed .*run workers of segcause/,
    );
    expect(await refused((job) => ({ ...good(job), segcause: "0.0.0-other" }))).toMatch(/computed by segcause 0\.0\.0-other \(this run: /);
    // a result under a key of its own (here first), then real workers' results: none of the shards is kept
    expect(await refused(good, () => worker(url))).toMatch(/computed under other settings than the others.*kept shards are deleted/);
    expect(existsSync(join(out, SHARDS_DIR))).toBe(false);
    // nothing refused is left in Redis: the rerun queues it again and gathers the local run's map
    const w = worker(url);
    const again = bg(...args);
    const code = await within(again.done, 300_000, "the rerun finishes");
    await stop(w);
    expect(code, again.err()).toBe(0);
    expectSameMap(join(dir, "local"), out);
  });

  it("maps that cannot be split are one line before anything is written or queued", async () => {
    const url = sharedUrl(13);
    const fast = segcause(...explainArgs(join(dir, "fast"), ["--queue", url]).map((a) => (a === "paper" ? "fast" : a)));
    expect(fast.code).toBe(1);
    expect(fast.stderr.trim().split("\n")).toHaveLength(1);
    expect(fast.stderr).toMatch(
      /fast schedule .* cannot be split into shards \(--queue runs pdcr --schedule paper, pdcr-superpixel, zero and occlusion/,
    );
    const rise = segcause(
      ...["explain", "--model", join(dir, "model.onnx"), "--image", join(dir, "img.png"), "--roi", "0,16,8,8", "--method", "rise"],
      ...["--out", join(dir, "rise"), "--queue", url],
    );
    expect(rise.code, rise.stderr).toBe(1);
    expect(rise.stderr).toMatch(/rise's map cannot be split into shards/);
    // an unreachable Redis (nothing listens on port 1), and --shards without --queue
    const down = segcause(...explainArgs(join(dir, "down"), ["--queue", "redis://127.0.0.1:1/0"]));
    expect(down.code).toBe(1);
    expect(down.stderr.trim().split("\n")).toHaveLength(1);
    expect(down.stderr).toContain("cannot reach Redis at redis://127.0.0.1:1/0");
    const alone = segcause(...explainArgs(join(dir, "alone"), ["--shards", "4"]));
    expect(alone.code).toBe(1);
    expect(alone.stderr).toMatch(/--shards applies with --queue/);
    expect([existsSync(join(dir, "down")), existsSync(join(dir, "alone"))]).toEqual([false, false]);
    expect([existsSync(join(dir, "fast")), existsSync(join(dir, "rise"))]).toEqual([false, false]);
    const connection = new Redis(redisOptions(url));
    try {
      expect(await connection.dbsize()).toBe(0);
    } finally {
      connection.disconnect();
    }
  });
});

describe("a shard's worker", () => {
  it("rejects a job of other versions, and, restarted, returns the same samples when its job resumes from its checkpoint (units out of the RoI's reach are never returned)", async () => {
    const d = tmp("segcause-shard-restart-");
    const modelPath = writeModel(d, "local.onnx", localConvModel());
    const image = await writeImage(d, "img.png", (y, x) => 60 + ((x * 37 + y * 23) % 90));
    const blobOf = (path: string) => ({ sha256: "0".repeat(64), name: path });
    const job: ShardJob = {
      v: 1,
      ...shardVersions(),
      ...{ model: blobOf(modelPath), card: null, image: blobOf(image), mask: null, bank: null, roi: { row: 8, col: 8, height: 8, width: 8 } },
      ...{ method: { name: "zero", options: { block: 8 } }, outcome: "soft-dice", reference: "auto", incremental: "on" },
      ...{ seed: 3, batchSize: 4, threads: 1, shard: { index: 0, count: 2 } },
    };
    const model = await Model.load(modelPath, { threads: 1 });
    try {
      const io = (checkpointPath: string) => ({
        fetch: async (b: { name: string }) => b.name,
        withModel: <R>(f: (m: Model) => Promise<R>) => f(model),
        checkpointPath,
      });
      // a job of another version is rejected before anything runs (its samples could differ)
      await expect(runShard("shard-x", { ...job, onnxruntime: "0.0.0-other" }, io(join(d, "other.json")))).rejects.toThrow(
        /^rejected: the job was queued by onnxruntime 0\.0\.0-other \(this worker: .*\); run workers of the enqueuer's versions$/,
      );
      const fresh = await runShard("shard-x", job, io(join(d, "fresh.json")));
      // the job killed after its last checkpoint: every sample, the unreachable units' included, is in it
      const cp = join(d, "killed.json");
      const def = getMethod("zero");
      const kase = await loadCase(model, image);
      const target = {
        roi: job.roi as { row: number; col: number; height: number; width: number },
        outcome: "soft-dice" as const,
        reference: "auto" as const,
      };
      const run = { seed: 3, batchSize: 4, checkpointPath: cp, incremental: "on" as const, shard: { index: 0, count: 2 } };
      await def.explain({ model, kase, target, run, options: resolveOptions(def, { block: 8 }) });
      const inCheckpoint = Object.keys(JSON.parse(readFileSync(cp, "utf8")).samples).filter((u) => Number(u) % 2 === 0);
      const resumed = await runShard("shard-x", job, io(cp));
      expect(resumed).toEqual(fresh);
      // the case the bug lived in: the checkpoint holds units the shard does not return
      expect(Object.keys(fresh.samples).length).toBeGreaterThan(0);
      expect(inCheckpoint.length).toBeGreaterThan(Object.keys(fresh.samples).length);
    } finally {
      await model.release();
    }
  });
});
