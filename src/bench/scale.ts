/**
 * `npm run bench -- --scale`: `segcause evaluate` run here against `evaluate --queue` with 1, 2 and 4
 * `segcause worker` processes on this machine, through a redis-server started for the bench (Debian's,
 * on a free port, no persistence): wall time, cells per hour and the queue's overhead per cell (the
 * queued run with one worker minus the local run, per cell). Two kinds of cells of the shipped U-Net on
 * the bundled lesion: light ones (a few passes each, where the queue's cost dominates) and heavier ones.
 * Each queued run uses a database of its own, so no finished job is reused.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PACKAGE_ROOT } from "../cli/demo.js";
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
}

/** The two kinds of cells: the flags after the common ones. */
const KINDS: { name: string; flags: string[] }[] = [
  {
    name: "light (saliency, 2 curve steps, zero fill: ~10 passes a cell)",
    flags: ["--methods", "saliency,gradxinput", "--steps", "2", "--fills", "zero", "--topk", "10", "--top-area", "none", "--controls", "random"],
  },
  {
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

export async function scaleBench(workerCounts = [1, 2, 4]): Promise<ScaleRow[] | { skipped: string }> {
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
  try {
    for (const kind of KINDS) {
      const common = (out: string) => [
        "evaluate",
        ...["--models", join(PACKAGE_ROOT, "models", "unet-ph2.onnx"), "--dataset", join(dir, "manifest.json"), "--split", "test"],
        ...["--rois", "boundary:32x8", "--threads", "1", "--no-progress", "--out", join(dir, out)],
        ...kind.flags,
      ];
      const cells = 8 * kind.flags[1].split(",").length;
      const local = await timed(common(`local-${db}`));
      rows.push({ cells: kind.name, run: "local", count: cells, wallS: local, cellsPerHour: (3600 * cells) / local });
      console.log(`  ${kind.name}: local ${local.toFixed(1)} s`);
      for (const n of workerCounts) {
        const url = `redis://127.0.0.1:${port}/${++db}`;
        const workers: ChildProcess[] = Array.from({ length: n }, () =>
          spawn(process.execPath, [BIN, "worker", "--queue", url, "--cache", join(dir, "cache"), "--quiet"], { stdio: "ignore" }),
        );
        const wall = await timed([...common(`queued-${db}`), "--queue", url]).finally(() => {
          for (const w of workers) w.kill("SIGTERM");
        });
        rows.push({
          cells: kind.name,
          run: n,
          count: cells,
          wallS: wall,
          cellsPerHour: (3600 * cells) / wall,
          overheadMsPerCell: (1000 * (wall - local)) / cells,
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
