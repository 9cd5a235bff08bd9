/**
 * `npm run bench -- --scale`: `segcause evaluate` run here against `evaluate --queue` with 1, 2 and 4
 * `segcause worker` processes on this machine, through a redis-server started for the bench (Debian's,
 * on a free port, no persistence): wall time, cells per hour and the queue's overhead per cell (the
 * queued run with one worker minus the local run, per cell). Two kinds of cells of the shipped U-Net on
 * the bundled lesion: light ones (a few passes each, where the queue's cost dominates) and heavier ones.
 * Each queued run uses a database of its own, so no finished job is reused.
 *
 * The tiny case (first) is where the queue dominates: a 32x32 model of one convolution, whose cells and
 * map shards take a few milliseconds each, so (queued wall − local wall) / jobs is the queue's cost per
 * job (a Redis round trip or two, the job's payload and result, the worker's bookkeeping), measured
 * against the local run in the same bench run: `evaluate` (a control and a cell per RoI) and
 * `explain --queue` (a paper-schedule PdCR map in 16 shards).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { PACKAGE_ROOT } from "../cli/demo.js";
import { encodePng } from "../data/image.js";
import { GraphBuilder } from "../onnx/builder.js";
import { redisMissing, startLocalRedis } from "../queue/local-redis.js";

const BIN = join(PACKAGE_ROOT, "bin", "segcause.js");

export interface ScaleRow {
  cells: string;
  /** local, or the number of workers */
  run: "local" | number;
  count: number;
  wallS: number;
  cellsPerHour: number;
  /** (queued wall − local wall) / cells, for queued runs */
  overheadMsPerCell?: number;
  /** the tiny case: jobs queued (cells and controls, or shards) and (queued wall − local wall) / jobs */
  jobs?: number;
  overheadMsPerJob?: number;
  /** the machine's 1-minute load average when the run ended */
  load1: number;
}

/** Which cases run: tiny (the queue dominates), light and heavier (the shipped U-Net). */
export const SCALE_CASES = ["tiny", "light", "heavier"] as const;
export type ScaleCase = (typeof SCALE_CASES)[number];

const SIZE = 32;

/** A 32x32 model of one convolution: the RoI's logit is the mean of the top-right quarter (weight 40) minus 27.5. */
function tinyModel(): Uint8Array {
  const g = new GraphBuilder("scale-tiny");
  const x = g.input("image", ["N", 3, SIZE, SIZE]);
  const w = new Float32Array(3 * SIZE * SIZE);
  for (let y = 0; y < 16; y++) for (let c = 16; c < SIZE; c++) w[y * SIZE + c] = 40 / 256;
  const conv = g.node("Conv", [x, g.constant([1, 3, SIZE, SIZE], w), g.constant([1], [-27.5])], { kernel_shape: [SIZE, SIZE] });
  const logit = g.node("Add", [conv, g.constant([1, 1, SIZE, SIZE], new Float32Array(SIZE * SIZE))]);
  g.output(g.node("Sigmoid", [logit], {}, ["mask"]), ["N", 1, SIZE, SIZE]);
  return g.toBytes();
}

/** The tiny case's files: the model, 16 images with masks (a data set), and a bank of flat 4 px patches. */
export async function tinyFiles(dir: string): Promise<{ model: string; manifest: string; image: string; bank: string }> {
  const model = join(dir, "tiny.onnx");
  writeFileSync(model, tinyModel());
  const cases = [];
  mkdirSync(join(dir, "tiny-images"));
  mkdirSync(join(dir, "tiny-masks"));
  for (let i = 0; i < 16; i++) {
    const rgb = new Uint8Array(SIZE * SIZE * 3);
    const mask = new Uint8Array(SIZE * SIZE * 3);
    for (let y = 0; y < SIZE; y++)
      for (let x = 0; x < SIZE; x++) {
        rgb.fill(y < 16 && x >= 16 ? 220 : 60 + ((x * 37 + y * 23 + 7 * i) % 90), 3 * (y * SIZE + x), 3 * (y * SIZE + x) + 3);
        mask.fill(y < 16 && x >= 16 ? 255 : 0, 3 * (y * SIZE + x), 3 * (y * SIZE + x) + 3);
      }
    writeFileSync(join(dir, "tiny-images", `img${i}.png`), await encodePng({ width: SIZE, height: SIZE, channels: 3, data: rgb }));
    writeFileSync(join(dir, "tiny-masks", `img${i}.png`), await encodePng({ width: SIZE, height: SIZE, channels: 3, data: mask }));
    cases.push({ id: `img${i}`, image: `tiny-images/img${i}.png`, mask: `tiny-masks/img${i}.png`, split: "test" });
  }
  const manifest = join(dir, "tiny.json");
  writeFileSync(manifest, JSON.stringify({ name: "tiny", cases }));
  // a bank is built from images by `segcause bank build`: the 16 images, 4 px patches
  const bank = join(dir, "tiny.scbank");
  await timed(["bank", "build", "--images", join(dir, "tiny-images"), "--model", model, "--patch-size", "4", "--out", bank]);
  return { model, manifest, image: join(dir, "tiny-images", "img0.png"), bank };
}

/** The two kinds of cells: the flags after the common ones. */
const KINDS: { case: ScaleCase; name: string; flags: string[] }[] = [
  {
    case: "light",
    name: "light (saliency, 2 curve steps, zero fill: ~10 passes a cell)",
    flags: ["--methods", "saliency,gradxinput", "--steps", "2", "--fills", "zero", "--topk", "10", "--top-area", "none", "--controls", "random"],
  },
  {
    case: "heavier",
    name: "heavier (zero + saliency, 10 steps, zero and blur fills)",
    flags: ["--methods", "zero,saliency", "--steps", "10", "--fills", "zero,blur", "--topk", "10", "--top-area", "none", "--controls", "random"],
  },
];

/** Runs `segcause <args>` and resolves with its wall time in seconds (rejects on a non-zero exit). */
function timed(args: string[]): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    c.stderr!.on("data", (d) => (err += d));
    c.once("exit", (code) => (code === 0 ? resolve((performance.now() - t0) / 1000) : reject(new Error(`segcause ${args[0]}: ${err.trim()}`))));
  });
}

export async function scaleBench(workerCounts = [1, 2, 4], cases: readonly ScaleCase[] = SCALE_CASES): Promise<ScaleRow[] | { skipped: string }> {
  const missing = redisMissing();
  if (missing) return { skipped: missing };
  const dir = mkdtempSync(join(tmpdir(), "segcause-scale-"));
  const samples = join(PACKAGE_ROOT, "samples");
  writeFileSync(
    join(dir, "manifest.json"),
    JSON.stringify({
      name: "scale",
      cases: [{ id: "lesion", image: join(samples, "lesion.png"), mask: join(samples, "lesion_mask.png"), split: "test" }],
    }),
  );
  const redis = await startLocalRedis(dir);
  const port = redis.port;
  const rows: ScaleRow[] = [];
  let db = 0;
  const load1 = () => Math.round(loadavg()[0] * 10) / 10;
  /** The queued run with `n` local workers: its wall time (the workers start with it). */
  const queued = async (n: number, args: (url: string) => string[]) => {
    const url = `redis://127.0.0.1:${port}/${++db}`;
    const workers: ChildProcess[] = Array.from({ length: n }, () =>
      spawn(process.execPath, [BIN, "worker", "--queue", url, "--cache", join(dir, "cache"), "--quiet"], { stdio: "ignore" }),
    );
    return timed(args(url)).finally(() => {
      for (const w of workers) w.kill("SIGTERM");
    });
  };
  try {
    if (cases.includes("tiny")) {
      const t = await tinyFiles(dir);
      const runs: { name: string; cells: number; jobs: number; args: (out: string) => string[]; queue: string[] }[] = [
        {
          name: "tiny: evaluate, 16 images x 2 RoIs, zero (16 passes a cell)",
          cells: 32,
          jobs: 64, // a control and a cell per RoI
          args: (out) => [
            ...["evaluate", "--models", t.model, "--dataset", t.manifest, "--split", "test", "--methods", "zero", "--rois", "boundary:8x2"],
            ...["--steps", "2", "--fills", "zero", "--topk", "10", "--top-area", "none", "--controls", "random", "--radius", "8"],
            // the mean probability: a RoI beside the structure is not skipped (its Dice would be 0 whatever the input)
            "--outcome",
            "mean-prob",
            ...["--threads", "1", "--no-progress", "--out", join(dir, out)],
          ],
          queue: [],
        },
        {
          name: "tiny: explain, pdcr --schedule paper, 4 px blocks, 16 shards",
          cells: 1,
          jobs: 16,
          args: (out) => [
            ...["explain", "--model", t.model, "--image", t.image, "--roi", "0,16,8,8", "--method", "pdcr", "--schedule", "paper"],
            ...["--block", "4", "--bank", t.bank, "--samples", "20", "--batch-size", "8", "--threads", "1", "--workers", "1", "--no-progress"],
            ...["--out", join(dir, out)],
          ],
          queue: ["--shards", "16"],
        },
      ];
      for (const r of runs) {
        const local = await timed(r.args(`local-${++db}`));
        rows.push({ cells: r.name, run: "local", count: r.cells, wallS: local, cellsPerHour: (3600 * r.cells) / local, load1: load1() });
        console.log(`  ${r.name}: local ${local.toFixed(1)} s (load ${load1()})`);
        const wall = await queued(1, (url) => [...r.args(`queued-${db}`), "--queue", url, ...r.queue]);
        rows.push({
          cells: r.name,
          run: 1,
          count: r.cells,
          wallS: wall,
          cellsPerHour: (3600 * r.cells) / wall,
          jobs: r.jobs,
          overheadMsPerJob: (1000 * (wall - local)) / r.jobs,
          load1: load1(),
        });
        console.log(`  ${r.name}: 1 worker ${wall.toFixed(1)} s (load ${load1()})`);
      }
    }
    for (const kind of KINDS.filter((k) => cases.includes(k.case))) {
      const common = (out: string) => [
        "evaluate",
        ...["--models", join(PACKAGE_ROOT, "models", "unet-ph2.onnx"), "--dataset", join(dir, "manifest.json"), "--split", "test"],
        ...["--rois", "boundary:32x8", "--threads", "1", "--no-progress", "--out", join(dir, out)],
        ...kind.flags,
      ];
      const cells = 8 * kind.flags[1].split(",").length;
      const local = await timed(common(`local-${db}`));
      rows.push({ cells: kind.name, run: "local", count: cells, wallS: local, cellsPerHour: (3600 * cells) / local, load1: load1() });
      console.log(`  ${kind.name}: local ${local.toFixed(1)} s`);
      for (const n of workerCounts) {
        const wall = await queued(n, (url) => [...common(`queued-${db + 1}`), "--queue", url]);
        rows.push({
          cells: kind.name,
          run: n,
          count: cells,
          wallS: wall,
          cellsPerHour: (3600 * cells) / wall,
          overheadMsPerCell: (1000 * (wall - local)) / cells,
          load1: load1(),
        });
        console.log(`  ${kind.name}: ${n} worker(s) ${wall.toFixed(1)} s`);
      }
    }
  } finally {
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}
