/**
 * explain --queue and evaluate --queue on volumes, on a real redis-server. evaluate: a volume data set's
 * cells computed by 1 and 2 workers are the local run's, cell for cell. explain: a volume map's boxes split into shards, computed
 * by `segcause worker`s and gathered into the local run's folder bit for bit (a 3D model's pdcr paper
 * map with 1 and 2 workers; a 2D model slice by slice; a DICOM series folder sent as one blob); an
 * enqueuer interrupted mid-run resumes without computing a finished shard again; a bad shard result is
 * refused and not kept; maps that cannot be split are refused in one line before anything is written.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeNifti } from "../src/data/volume/nifti-write.js";
import { buildVolumeBank } from "../src/data/volume/volume-bank.js";
import { readVolume } from "../src/data/volume/volume-case.js";
import { VolumeModel } from "../src/model/volume-model.js";
import { CELLS_QUEUE, redisOptions } from "../src/queue/connection.js";
import { packFolder, unpackFolder } from "../src/queue/folder-blob.js";
import { SHARDS_DIR } from "../src/queue/remote-explain.js";
import { shardMachine, shardVersions } from "../src/queue/shard-env.js";
import { AFFINE, causalBoxVolume, N, writeCausalFixture } from "./helpers/causal3d.js";
import { segcause } from "./helpers/cli.js";
import { bg, stop, until, within, worker } from "./helpers/processes.js";
import { answerOnce, doneShards, expectSameCells } from "./helpers/queue-jobs.js";
import { emptyDb, redisMissing, startRedis, type TestRedis } from "./helpers/redis.js";
import { regionMeanModel, tmp, writeModel } from "./helpers/tiny.js";

const missing = redisMissing();
if (missing) console.warn(`queue-volume.test.ts: ${missing}, so the explain --queue tests on volumes are skipped`);

const SERIES = resolve("..", "shared", "data", "dicom", "mr-hippocrop", "study1");

let dir: string;
let model: string;
let image: string;
let shared: TestRedis | undefined;
let sharedUrl: (db: number) => string;

/** The tiny 3D model's pdcr paper map, 4 mm (= 4 voxel) boxes, every box sampled (τ 0), soft Dice: 56 boxes, 8 of them with effects. */
const pdcrArgs = (out: string, more: string[] = []) => [
  ...["explain", "--model", model, "--image", image, "--roi", "8,8,0,8,8,8", "--method", "pdcr", "--schedule", "paper"],
  ...["--block", "4", "--bank", join(dir, "b.scvbank"), "--samples", "6", "--tau", "0", "--outcome", "soft-dice"],
  ...["--seed", "7", "--threads", "1", "--no-progress", "--out", out],
  ...more,
];

/** map.json but for what is this run's (its wall time, creation time and the queue's record and note). */
function runFree(d: string): Record<string, unknown> {
  const m = JSON.parse(readFileSync(join(d, "map.json"), "utf8"));
  const { createdAt: _c, queue: _q, ...provenance } = m.provenance;
  return { ...m, wallMs: 0, notes: m.notes.filter((n: string) => !n.startsWith("computed on the workers")), provenance };
}

/** The map's files are the local run's byte for byte (map.json but for what is this run's). */
function expectSameMap(local: string, queued: string, minEffects = 2): void {
  for (const f of ["map.nii.gz", "stderr.nii.gz"]) expect(readFileSync(join(queued, f)).equals(readFileSync(join(local, f))), f).toBe(true);
  expect(runFree(queued)).toEqual(runFree(local));
  // a map with effects (an all-zero one would compare equal for many wrong reasons)
  const effects = JSON.parse(readFileSync(join(local, "map.json"), "utf8")).units.filter((u: { effect: number }) => u.effect !== 0);
  expect(effects.length).toBeGreaterThanOrEqual(minEffects);
}

beforeAll(async () => {
  if (missing) return;
  dir = tmp("segcause-qvolume-");
  ({ model, image } = await writeCausalFixture(dir));
  const m = await VolumeModel.load(model);
  try {
    const bank = await buildVolumeBank(join(dir, "manifest.json"), m.card, { box: [4, 4, 4], perVolume: 6, seed: 5, splits: ["train"] });
    await bank.save(join(dir, "b.scvbank"));
  } finally {
    await m.release();
  }
  // a server of this file's own: its databases are not the other queue tests' (whose counts they check)
  shared = await startRedis();
  const base = shared.url.replace(/\/\d*$/, "");
  sharedUrl = (db) => emptyDb(`${base}/${db}`);
  const local = segcause(...pdcrArgs(join(dir, "local")));
  if (local.code !== 0) throw new Error(local.stderr);
});
afterAll(async () => {
  await shared?.stop();
});

/**
 * evaluate on the tiny volume data set's test cases (case and case2, the structure of labels.nii.gz; and
 * the real DICOM series folder with a small structure when ../shared/data is there): 2 methods each.
 */
const evaluateArgs = (out: string, more: string[] = []) => [
  ...["evaluate", "--models", model, "--dataset", join(dir, "manifest.json"), "--split", "test", "--methods", "zero,pdcr"],
  ...["--set", "zero.block=4", "--set", "pdcr.block=4", "--set", "pdcr.schedule=paper", "--set", "pdcr.samples=2", "--set", "pdcr.screen=1"],
  ...["--set", "pdcr.tau=0", "--rank-units", "block:4", "--box-unit", "vox", "--steps", "7", "--fills", "zero,mean,patches"],
  ...["--bank-splits", "train", "--bank-patch-size", "4", "--outcome", "mean-prob", "--threads", "1", "--no-progress", "--out", out],
  ...more,
];

describe.skipIf(!!missing)("evaluate --queue on a volume data set, on a real redis-server", () => {
  it("with 1 and with 2 workers the queued run writes the local run's cells, cell for cell, each job computed once", async () => {
    // the structure: the box z 8..15, y 8..15, x 0..7; case2 is the case with another background
    const inRoi = (i: number, j: number, k: number) => k >= 8 && j >= 8 && i < 8;
    const labels = Float32Array.from({ length: N ** 3 }, (_, c) => (inRoi(c % N, Math.floor(c / N) % N, Math.floor(c / N ** 2)) ? 1 : 0));
    await writeNifti(join(dir, "labels.nii.gz"), { dims: [N, N, N], affine: AFFINE, data: labels });
    await writeNifti(join(dir, "case2.nii.gz"), { dims: [N, N, N], affine: AFFINE, data: causalBoxVolume().map((v) => (v === 1 ? 1.2 : v)) });
    const m = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8"));
    for (const id of ["case", "case2"]) m.cases.push({ id, image: `${id}.nii.gz`, mask: "labels.nii.gz", split: "test" });
    if (existsSync(join(SERIES, "1.dcm"))) {
      // a 4-voxel cube near the series' centre, on its own grid, as its label map (the folder travels packed)
      const v = await readVolume(SERIES);
      const [nx, ny] = v.dims;
      const inCube = (c: number) =>
        [c % nx, Math.floor(c / nx) % ny, Math.floor(c / nx / ny)].every((x, a) => x >= [16, 24, 14][a] && x < [20, 28, 18][a]);
      const cube = Float32Array.from({ length: v.data.length }, (_, c) => (inCube(c) ? 1 : 0));
      await writeNifti(join(dir, "series-labels.nii.gz"), { dims: v.dims, affine: v.affine, data: cube });
      m.cases.push({ id: "series", image: SERIES, mask: "series-labels.nii.gz", split: "test" });
      m.kind = "volume";
    } else
      console.warn("queue-volume.test.ts: ../shared/data/dicom/mr-hippocrop is absent, so evaluate --queue runs no DICOM series (CI has the data)");
    writeFileSync(join(dir, "manifest.json"), JSON.stringify(m));
    const rois = m.cases.filter((c: { split: string }) => c.split === "test").length;
    const local = segcause(...evaluateArgs(join(dir, "eval-local")));
    expect(local.code, local.stderr).toBe(0);
    expect(local.stdout).toContain(`${2 * rois} cells computed, 0 already finished, 0 skipped, 0 refused`);
    for (const n of [1, 2]) {
      const url = sharedUrl(6 + n);
      const workers = Array.from({ length: n }, () => worker(url));
      const out = join(dir, `eval-queued${n}`);
      const run = bg(...evaluateArgs(out, ["--queue", url]));
      const code = await within(run.done, 300_000, "the queued evaluation is written");
      await stop(...workers);
      expect(code, run.err()).toBe(0);
      expect(run.out()).toContain(`${2 * rois} cells computed, 0 already finished`);
      expectSameCells(join(dir, "eval-local"), out);
      const done = workers.flatMap((w) => [...w.err().matchAll(/done (volume-control|volume-cell) (\S+)/g)].map((x) => x[2]));
      expect(done).toHaveLength(3 * rois);
      expect(new Set(done).size).toBe(3 * rois);
    }
  });
});

describe.skipIf(!!missing)("explain --queue on volumes, on a real redis-server", () => {
  it("maps that cannot be split, and a bound, are one line before anything is written or queued", async () => {
    const url = sharedUrl(9);
    const one = (args: string[], pattern: RegExp) => {
      const r = segcause(...args);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toMatch(pattern);
    };
    one(
      pdcrArgs(join(dir, "fast"), ["--queue", url]).map((a) => (a === "paper" ? "fast" : a)),
      /fast schedule .* cannot be split into shards \(--queue runs pdcr --schedule paper, zero and occlusion on volumes/,
    );
    one(
      ["explain", "--model", model, "--image", image, "--roi", "8,8,0,8,8,8", "--method", "rise", "--out", join(dir, "rise"), "--queue", url],
      /rise's map cannot be split into shards/,
    );
    one(
      pdcrArgs(join(dir, "bound"), ["--queue", url, "--max-passes", "50"]),
      /--max-passes and --max-time stop a local run; a queued map is computed whole/,
    );
    one(pdcrArgs(join(dir, "alone"), ["--shards", "3"]), /--shards applies with --queue/);
    expect(["fast", "rise", "bound", "alone"].map((d) => existsSync(join(dir, d)))).toEqual([false, false, false, false]);
    const connection = new Redis(redisOptions(url));
    try {
      expect(await connection.dbsize()).toBe(0);
    } finally {
      connection.disconnect();
    }
  });

  it("with 1 and with 2 workers a 3D model's map is the local run's bit for bit, each shard computed once, and Redis keeps no result", async () => {
    for (const n of [1, 2]) {
      const url = sharedUrl(n);
      const workers = Array.from({ length: n }, () => worker(url));
      const out = join(dir, `queued${n}`);
      const run = bg(...pdcrArgs(out, ["--queue", url, "--shards", "3"]));
      const code = await within(run.done, 300_000, "the queued map is written");
      await stop(...workers);
      expect(code, run.err()).toBe(0);
      expectSameMap(join(dir, "local"), out);
      const done = workers.flatMap((w) => doneShards(w.err()));
      expect(done).toHaveLength(3);
      expect(new Set(done).size).toBe(3);
      const map = JSON.parse(readFileSync(join(out, "map.json"), "utf8"));
      const local = JSON.parse(readFileSync(join(dir, "local", "map.json"), "utf8"));
      expect(map.provenance.queue).toMatchObject({ url, shards: 3, segcause: shardVersions().segcause, workersLikeThisMachine: true });
      expect(map.provenance.queue.workers).toEqual([{ ...shardMachine(), onnxruntime: shardVersions().onnxruntime }]);
      expect(map.provenance.queue.samples).toBe(local.samples);
      expect(map.notes.at(-1)).toMatch(/^computed on the workers of .*: 3 shards, 504 samples/);
      // the passes ran on the workers: the summary does not give them this process's gathering time
      expect(run.out()).toMatch(/ forward passes on the queue's workers \(gathered here in \d+\.\d s\)/);
      expect([existsSync(join(out, SHARDS_DIR)), existsSync(join(out, ".checkpoint.json"))]).toEqual([false, false]);
      const connection = new Redis(redisOptions(url));
      const q = new Queue(CELLS_QUEUE, { connection });
      try {
        const jobs = await q.getCompleted();
        expect(jobs.map((j) => j.name)).toEqual(["volume-shard", "volume-shard", "volume-shard"]);
        expect(jobs.every((j) => j.returnvalue === null)).toBe(true);
      } finally {
        await q.close();
        connection.disconnect();
      }
    }
  });

  it("an enqueuer interrupted mid-run keeps its shards; rerun: they are not computed again and the map is the local run's", async () => {
    const url = sharedUrl(5);
    const out = join(dir, "resumed");
    const args = pdcrArgs(out, ["--queue", url, "--shards", "8"]);
    const first = bg(...args);
    const w1 = worker(url);
    await until("a shard is written", () => existsSync(join(out, SHARDS_DIR)) && readdirSync(join(out, SHARDS_DIR)).some((f) => f.endsWith(".json")));
    w1.child.kill("SIGSTOP");
    first.child.kill("SIGINT");
    expect(await first.done).toBe(130);
    expect(first.err()).toMatch(/finished work is kept.*rerun the same command/);
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
    const before = doneShards(w1.err()),
      after = doneShards(w2.err());
    // nothing doubled: every shard computed once over both runs, the kept ones never again
    expect(before.length + after.length).toBe(8);
    expect(new Set([...before, ...after]).size).toBe(8);
    expect(after.length).toBeLessThanOrEqual(8 - kept);
  });

  it("a malformed shard result, or one holding another shard's boxes, is refused and not kept; the rerun with a real worker is the local map", async () => {
    const url = sharedUrl(9);
    const out = join(dir, "refused");
    const args = pdcrArgs(out, ["--queue", url, "--shards", "3"]);
    const refused = async (answer: Parameters<typeof answerOnce>[1]): Promise<string> => {
      const run = bg(...args);
      await answerOnce(url, answer);
      expect(await within(run.done, 300_000, "the run refuses the shard"), run.err()).toBe(1);
      expect(run.err().trim().split("\n")).toHaveLength(1);
      return run.err();
    };
    expect(await refused(() => ({ samples: "none" }))).toMatch(/a worker returned a bad shard \d of 3 of the map: malformed/);
    // shard i of 3 owns the boxes u with u % 3 === i: a result naming every shard's box 0..2 holds one not its own
    const stray = (job: { id?: string }) => ({
      job: job.id,
      ...shardVersions(),
      machine: shardMachine(),
      key: "a".repeat(64),
      samples: { 0: [1], 1: [1], 2: [1] },
    });
    expect(await refused(stray)).toMatch(/it holds samples of unit \d, which is not its own/);
    expect(existsSync(join(out, SHARDS_DIR)) ? readdirSync(join(out, SHARDS_DIR)) : []).toEqual([]);
    const w = worker(url);
    const again = bg(...args);
    const code = await within(again.done, 300_000, "the rerun finishes");
    await stop(w);
    expect(code, again.err()).toBe(0);
    expectSameMap(join(dir, "local"), out);
  });

  it("a 2D model slice by slice, and a DICOM series folder sent as one blob, give the local run's map", async () => {
    const url = sharedUrl(2);
    // a 2D model on the volume's axial slices: probability sigmoid(10·mean(rows 0..7, cols 8..15) − 7), the bright box's slices
    const card2d = {
      schema: "segcause.modelcard/1",
      name: "bright-rectangle-2d",
      input: { name: "image", height: 16, width: 16, channels: "gray", scale: 255, mean: [0], std: [1], slices: { axis: "k" } },
      output: { name: "mask", kind: "probabilities", channel: 0, threshold: 0.5 },
    };
    const model2d = writeModel(
      dir,
      "bright2d.onnx",
      regionMeanModel([{ row: 0, col: 8, height: 8, width: 8, weight: 10 }], -7, { channels: 1, size: 16 }),
      card2d,
    );
    const maps = [
      [
        "--model",
        model2d,
        "--image",
        image,
        "--roi",
        "0,8,0,8,8,8",
        "--method",
        "occlusion",
        "--block",
        "8",
        "--stride",
        "4",
        "--outcome",
        "soft-dice",
      ],
    ];
    // the real series (35x51x32 voxels, LPS) through the tiny 3D model: its 16³ box sees the centre
    if (existsSync(join(SERIES, "1.dcm")))
      maps.push([
        "--model",
        model,
        "--image",
        SERIES,
        "--roi",
        "10,20,12,8,8,8",
        "--method",
        "zero",
        "--block",
        "4",
        "--tau",
        "0",
        "--outcome",
        "mean-prob",
      ]);
    else
      console.warn("queue-volume.test.ts: ../shared/data/dicom/mr-hippocrop is absent, so the DICOM series folder is not queued (CI has the data)");
    const w = worker(url);
    try {
      for (const [k, m] of maps.entries()) {
        const args = (out: string) => ["explain", ...m, "--seed", "3", "--threads", "1", "--no-progress", "--out", out];
        const local = segcause(...args(join(dir, `v${k}-local`)));
        expect(local.code, local.stderr).toBe(0);
        const queued = bg(...args(join(dir, `v${k}-queued`)), "--queue", url, "--shards", "2");
        expect(await within(queued.done, 300_000, `the queued map ${k} is written`), queued.err()).toBe(0);
        expectSameMap(join(dir, `v${k}-local`), join(dir, `v${k}-queued`), 1);
      }
    } finally {
      await stop(w);
    }
    expect(doneShards(w.err())).toHaveLength(2 * maps.length);
  });
});

describe("a DICOM series folder as one blob", () => {
  it("packs the folder's DICOM files (a dangling link skipped) in the reader's order and unpacks them byte for byte; a truncated or foreign blob is one line", async () => {
    const d = tmp("segcause-pack-");
    const src = join(d, "series");
    mkdirSync(src);
    // DICOM by content (the 128-byte preamble and DICM): b before a.dcm in no order but the sorted one; notes.txt is not DICOM
    const dicom = (tail: string) => Buffer.concat([Buffer.alloc(128), Buffer.from(`DICM${tail}`)]);
    writeFileSync(join(src, "b 2.dcm"), dicom("second"));
    writeFileSync(join(src, "a1.dcm"), dicom("first"));
    writeFileSync(join(src, "notes.txt"), "not DICOM");
    // a dangling link is skipped, as the series reader skips it (one listing: dicomFolderFiles)
    symlinkSync(join(d, "gone.dcm"), join(src, "c-dangling.dcm"));
    const packed = join(d, "series.pack");
    writeFileSync(packed, packFolder(src));
    const out = await unpackFolder(packed, join(d, "cache"), "series");
    const names = readdirSync(out);
    expect(names).toEqual(["0-a1.dcm", "1-b_2.dcm"]);
    expect(names.map((n) => readFileSync(join(out, n)).toString("latin1").slice(132))).toEqual(["first", "second"]);
    // unpacked once: a second call finds the folder
    expect(await unpackFolder(packed, join(d, "cache"), "series")).toBe(out);
    const bytes = readFileSync(packed);
    writeFileSync(join(d, "short.pack"), bytes.subarray(0, bytes.length - 3));
    await expect(unpackFolder(join(d, "short.pack"), join(d, "cache"), "short")).rejects.toThrow(
      /^the queue's input short is a truncated packed DICOM folder$/,
    );
    writeFileSync(join(d, "other.pack"), "{}\nxyz");
    await expect(unpackFolder(join(d, "other.pack"), join(d, "cache"), "other")).rejects.toThrow(
      /^the queue's input other is not a packed DICOM folder$/,
    );
    expect(existsSync(join(d, "cache", "short"))).toBe(false);
    // a header of entries that are not files (null, a number as a name) is the same line, not an engine message
    for (const [i, files] of [[null], [{ name: 7, size: 1 }]].entries()) {
      writeFileSync(join(d, `bad${i}.pack`), `${JSON.stringify({ format: "segcause.folder/1", files })}\nx`);
      await expect(unpackFolder(join(d, `bad${i}.pack`), join(d, "cache"), `bad${i}`)).rejects.toThrow(
        new RegExp(`^the queue's input bad${i} is not a packed DICOM folder$`),
      );
    }
    expect(readdirSync(join(d, "cache")).filter((n) => n.startsWith(".unpack-"))).toEqual([]);
  });
});
