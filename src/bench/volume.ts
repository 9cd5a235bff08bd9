/**
 * `npm run bench -- --volume`: the volume demo (`segcause demo --volume`: shipped 3D model, bundled
 * hippocampus case and bank) with the paper and the fast schedule, side by side in one run. Each
 * schedule runs in its own child process (this file, given the schedule), so its memory peak
 * (maxRSS) is its own: model, volume, bank, batch buffers and outputs. Prints a Markdown table.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { PACKAGE_ROOT, volumeDemoConfig, volumeDemoData } from "../cli/demo.js";
import { runVolumeExplain } from "../cli/explain-volume.js";
import { pearson } from "./fidelity.js";

const SCHEDULES = ["paper", "fast"] as const;

export interface VolumeBenchRow {
  schedule: (typeof SCHEDULES)[number];
  forwardPasses: number;
  wallMs: number;
  passesPerSecond: number;
  maxRssMiB: number;
  boxes: number;
  aboveTau: number;
  effects: number[];
}

/** One schedule on the demo case, in this process (the child's job); the outputs go to a temp folder. */
async function runOne(schedule: VolumeBenchRow["schedule"], threads: number): Promise<VolumeBenchRow> {
  const cfg = volumeDemoConfig();
  const at = (p: string) => join(PACKAGE_ROOT, p);
  const data = volumeDemoData(cfg);
  const out = mkdtempSync(join(tmpdir(), "segcause-bench-volume-"));
  try {
    const r = await runVolumeExplain(
      {
        model: at(cfg.model),
        image: join(data, cfg.image),
        mask: join(data, cfg.mask!),
        label: cfg.label,
        roi: cfg.roi.join(","),
        bank: at(cfg.bank),
        out: join(out, "run"),
        method: "pdcr",
        schedule,
        block: cfg.block,
        seed: 0,
        outcome: "dice",
        reference: "auto",
        threads,
        quiet: true,
        progress: false,
      },
      new Set(["model", "image", "mask", "label", "roi", "bank", "out", "method", "seed", "outcome", "reference", "threads", "quiet", "progress"]),
    );
    if ("stopped" in r) throw new Error("the bench run stopped at a bound");
    const a = r.attribution;
    return {
      schedule,
      forwardPasses: a.forwardPasses,
      wallMs: a.wallMs,
      passesPerSecond: a.forwardPasses / (a.wallMs / 1000),
      // maxRSS is in KiB on Linux and macOS
      maxRssMiB: process.resourceUsage().maxRSS / 1024,
      boxes: a.units.length,
      aboveTau: a.units.filter((u) => u.status === "above-tau").length,
      effects: a.units.map((u) => u.effect),
    };
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

/** Both schedules, each in a child process; prints and returns the rows. */
export function volumeBench(o: { threads: number }): VolumeBenchRow[] {
  const cfg = volumeDemoConfig();
  console.log(`\n## The volume demo (\`segcause demo --volume\`), both schedules, ${o.threads} ONNX Runtime threads`);
  console.log(`${cfg.description.replace(/^PdCR map \(fast schedule, /, "PdCR map (")}\n`);
  const rows: VolumeBenchRow[] = [];
  for (const schedule of SCHEDULES) {
    const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url), schedule, String(o.threads)], { encoding: "utf8" });
    if (child.status !== 0) throw new Error(`the ${schedule} schedule failed: ${child.stderr.trim().split("\n").at(-1)}`);
    rows.push(JSON.parse(child.stdout) as VolumeBenchRow);
  }
  console.log("| schedule | forward passes | wall time | passes/s | memory peak (maxRSS) | boxes above τ |");
  console.log("|---|---|---|---|---|---|");
  for (const r of rows)
    console.log(
      `| ${r.schedule} | ${r.forwardPasses} | ${(r.wallMs / 1000).toFixed(1)} s | ${r.passesPerSecond.toFixed(1)} | ${r.maxRssMiB.toFixed(0)} MiB | ${r.aboveTau} of ${r.boxes} |`,
    );
  const [paper, fast] = rows;
  console.log(
    `\nfast/paper passes ${(fast.forwardPasses / paper.forwardPasses).toFixed(3)}; Pearson(fast, paper) over the ${paper.boxes} boxes ${pearson(fast.effects, paper.effects).toFixed(3)}`,
  );
  return rows;
}

// As a child: `node volume.js <schedule> <threads>` prints one row as JSON.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [schedule, threads] = process.argv.slice(2);
  runOne(schedule as VolumeBenchRow["schedule"], Number(threads)).then(
    (row) => process.stdout.write(JSON.stringify(row)),
    (e) => {
      process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
