/**
 * `npm run bench -- --incremental`: wall time of maps with full passes and with RoI-cropped passes
 * (--incremental off / on), same seed, schedule and session layout, side by side in one run: the demo's
 * PdCR map (fast schedule, its bank and RoI), then a zero-ablation map (16 px blocks, a 32 px RoI at
 * the centre, mean probability against the prediction) per shipped 2D model. Says whether the maps are
 * identical, else their largest difference.
 */
import { join } from "node:path";
import { demoConfig, PACKAGE_ROOT } from "../cli/demo.js";
import { loadCase } from "../data/case.js";
import { PatchBank } from "../data/patchbank.js";
import type { Attribution } from "../explain/attribution.js";
import { explainPdcr, explainZero } from "../explain/pdcr.js";
import type { IncrementalMode } from "../explain/roi-executor.js";
import { Model } from "../model/model.js";

export interface IncrementalRow {
  model: string;
  map: string;
  passes: number;
  fullMs: number;
  incrementalMs: number;
  speedup: number;
  identical: boolean;
  maxMapDiff: number;
  macShare?: number;
  skippedPasses?: number;
  executor: string;
}

const BATCH = 8;

async function pair(make: (mode: IncrementalMode) => Promise<Attribution>, name: string, map: string): Promise<IncrementalRow> {
  const off = await make("off");
  const on = await make("on");
  let diff = 0;
  on.map.forEach((v, i) => (diff = Math.max(diff, Math.abs(v - off.map[i]))));
  const inc = on.provenance.settings.incremental as { macShare: number; skippedPasses: number } | undefined;
  return {
    model: name,
    map,
    passes: on.forwardPasses,
    fullMs: off.wallMs,
    incrementalMs: on.wallMs,
    speedup: off.wallMs / on.wallMs,
    identical: Buffer.from(on.map.buffer).equals(Buffer.from(off.map.buffer)),
    maxMapDiff: diff,
    macShare: inc?.macShare,
    skippedPasses: inc?.skippedPasses,
    executor: inc ? "roi-crop" : "full (no cropped graph)",
  };
}

export async function incrementalBench(models: string[], o: { demo: boolean }, log: (s: string) => void = console.error): Promise<IncrementalRow[]> {
  const cfg = demoConfig();
  const rows: IncrementalRow[] = [];
  console.log(`\n## Incremental (RoI-cropped) passes vs full passes (1 session x 2 threads, batch ${BATCH}; wall time of each map, off then on)`);
  console.log("model | map | passes | full | incremental | speed-up | maps | MACs per pass | passes skipped");
  console.log("---|---|---|---|---|---|---|---|---");
  const print = (r: IncrementalRow) =>
    console.log(
      `${r.model} | ${r.map} | ${r.passes} | ${(r.fullMs / 1000).toFixed(1)} s | ${(r.incrementalMs / 1000).toFixed(1)} s | ${r.speedup.toFixed(2)}× | ${r.identical ? "identical" : `max Δ ${r.maxMapDiff.toPrecision(2)}`} | ${r.macShare === undefined ? r.executor : `${(100 * r.macShare).toFixed(0)}%`} | ${r.skippedPasses ?? "–"}`,
    );
  const bank = await PatchBank.load(join(PACKAGE_ROOT, cfg.bank));
  if (o.demo) {
    const model = await Model.load(join(PACKAGE_ROOT, cfg.model), { threads: 2, workers: 1 });
    const kase = await loadCase(model, join(PACKAGE_ROOT, cfg.image), cfg.mask && join(PACKAGE_ROOT, cfg.mask));
    const [row, col, height, width] = cfg.roi;
    log(`incremental: demo map (${cfg.model})`);
    const r = await pair(
      (incremental) => explainPdcr(model, kase, { roi: { row, col, height, width } }, { bank, seed: 0, batchSize: BATCH, incremental }),
      cfg.model.split("/").pop()!,
      "demo: pdcr fast, 8 px",
    );
    rows.push(r);
    print(r);
    await model.release();
  }
  for (const path of models) {
    const model = await Model.load(path, { threads: 2, workers: 1 });
    try {
      const kase = await loadCase(model, join(PACKAGE_ROOT, cfg.image));
      const roi = { row: model.height / 2 - 16, col: model.width / 2 - 16, height: 32, width: 32 };
      log(`incremental: zero map of ${path}`);
      const r = await pair(
        (incremental) =>
          explainZero(model, kase, { roi, reference: "prediction", outcome: "mean-prob" }, { blockSize: 16, seed: 0, batchSize: BATCH, incremental }),
        path.split("/").pop()!,
        "zero, 16 px, centre RoI",
      );
      rows.push(r);
      print(r);
    } finally {
      await model.release();
    }
  }
  return rows;
}
