/**
 * `npm run bench -- --incremental`: wall time of maps with full passes, RoI-cropped passes (phase 2)
 * and changed-region passes (phase 3), same seed, schedule and session layout, side by side in one run: the demo's
 * PdCR map (fast schedule, its bank and RoI), then a zero-ablation map (16 px blocks, a 32 px RoI at
 * the centre, mean probability against the prediction) per shipped 2D model, and with --incremental-pdcr
 * a PdCR map (fast schedule, the demo's bank, same RoI) per model too. Says whether the maps are
 * identical, else their largest difference.
 */
import { join } from "node:path";
import { demoConfig, PACKAGE_ROOT } from "../cli/demo.js";
import { loadCase } from "../data/case.js";
import { PatchBank } from "../data/patchbank.js";
import type { Attribution } from "../explain/attribution.js";
import { explainPdcr, explainZero } from "../explain/pdcr.js";
import type { ExecutorRecord, IncrementalMode } from "../explain/roi-executor.js";
import { Model } from "../model/model.js";

export interface IncrementalRow {
  model: string;
  map: string;
  passes: number;
  fullMs: number;
  /** RoI-cropped passes (phase 2) */
  incrementalMs: number;
  /** CPU time of the full, cropped maps */
  fullCpuMs: number;
  incrementalCpuMs: number;
  speedup: number;
  identical: boolean;
  maxMapDiff: number;
  macShare?: number;
  skippedPasses?: number;
  executor: string;
  /** changed-region passes (phase 3), or why there are none */
  changed?:
    | { ms: number; cpuMs: number; speedup: number; identical: boolean; maxMapDiff: number; macShare: number; autoPicks: string }
    | { none: string };
}

const BATCH = 8;

type Make = (mode: IncrementalMode, executor: "roi-crop" | "changed-region") => Promise<Attribution>;

/** A map and the CPU time of this process while it ran (every ORT thread included): on a loaded machine it varies less than the wall time. */
async function timed(make: Make, mode: IncrementalMode, executor: "roi-crop" | "changed-region"): Promise<{ a: Attribution; cpuMs: number }> {
  const t = process.cpuUsage();
  const a = await make(mode, executor);
  const d = process.cpuUsage(t);
  return { a, cpuMs: (d.user + d.system) / 1000 };
}

const mapDiff = (a: Attribution, b: Attribution) => a.map.reduce((m, v, i) => Math.max(m, Math.abs(v - b.map[i])), 0);
const same = (a: Attribution, b: Attribution) => Buffer.from(a.map.buffer).equals(Buffer.from(b.map.buffer));

async function trio(make: Make, name: string, map: string): Promise<IncrementalRow> {
  const { a: off, cpuMs: offCpu } = await timed(make, "off", "roi-crop");
  const { a: on, cpuMs: onCpu } = await timed(make, "on", "roi-crop");
  const inc = on.provenance.settings.incremental as { macShare: number; skippedPasses: number } | undefined;
  let changed: IncrementalRow["changed"];
  try {
    const { a: ch, cpuMs } = await timed(make, "on", "changed-region");
    const rec = ch.provenance.settings.incremental as ExecutorRecord;
    changed = {
      ms: ch.wallMs,
      speedup: off.wallMs / ch.wallMs,
      cpuMs,
      identical: same(ch, off),
      maxMapDiff: mapDiff(ch, off),
      macShare: rec.macShare,
      autoPicks: rec.cost
        ? `${rec.cost.pick} (full ${rec.cost.full}, cropped ${rec.cost.cropped}, changed ${rec.cost.changed ?? "–"}; ${rec.cost.passes} passes assumed)`
        : "?",
    };
  } catch (e) {
    changed = { none: (e as Error).message.split("\n")[0] };
  }
  return {
    model: name,
    map,
    passes: on.forwardPasses,
    fullMs: off.wallMs,
    incrementalMs: on.wallMs,
    fullCpuMs: offCpu,
    incrementalCpuMs: onCpu,
    speedup: off.wallMs / on.wallMs,
    identical: same(on, off),
    maxMapDiff: mapDiff(on, off),
    macShare: inc?.macShare,
    skippedPasses: inc?.skippedPasses,
    executor: inc ? "roi-crop" : "full (no cropped graph)",
    changed,
  };
}

export async function incrementalBench(
  models: string[],
  o: { demo: boolean; pdcr?: boolean },
  log: (s: string) => void = console.error,
): Promise<IncrementalRow[]> {
  const cfg = demoConfig();
  const rows: IncrementalRow[] = [];
  console.log(
    `\n## Incremental passes vs full passes (1 session x 2 threads, batch ${BATCH}; wall time of each map: full, RoI-cropped, changed-region)`,
  );
  console.log(
    "model | map | passes | full | cropped | changed-region | speed-up cropped | speed-up changed | CPU s full / cropped / changed | maps cropped | maps changed | MACs cropped | MACs changed | auto picks | passes skipped",
  );
  console.log("---|---|---|---|---|---|---|---|---|---|---|---|---|---|---");
  const maps = (identical: boolean, d: number) => (identical ? "identical" : `max Δ ${d.toPrecision(2)}`);
  const print = (r: IncrementalRow) => {
    const c = r.changed && "ms" in r.changed ? r.changed : undefined;
    const none = r.changed && "none" in r.changed ? r.changed.none : "–";
    console.log(
      `${r.model} | ${r.map} | ${r.passes} | ${(r.fullMs / 1000).toFixed(1)} s | ${(r.incrementalMs / 1000).toFixed(1)} s | ${c ? `${(c.ms / 1000).toFixed(1)} s` : none} | ${r.speedup.toFixed(2)}× | ${c ? `${c.speedup.toFixed(2)}×` : "–"} | ${(r.fullCpuMs / 1000).toFixed(1)} / ${(r.incrementalCpuMs / 1000).toFixed(1)} / ${c ? (c.cpuMs / 1000).toFixed(1) : "–"} | ${maps(r.identical, r.maxMapDiff)} | ${c ? maps(c.identical, c.maxMapDiff) : "–"} | ${r.macShare === undefined ? r.executor : `${(100 * r.macShare).toFixed(0)}%`} | ${c ? `${(100 * c.macShare).toFixed(1)}%` : "–"} | ${c ? c.autoPicks : "?"} | ${r.skippedPasses ?? "–"}`,
    );
  };
  const bank = await PatchBank.load(join(PACKAGE_ROOT, cfg.bank));
  if (o.demo) {
    const model = await Model.load(join(PACKAGE_ROOT, cfg.model), { threads: 2, workers: 1 });
    const kase = await loadCase(model, join(PACKAGE_ROOT, cfg.image), cfg.mask && join(PACKAGE_ROOT, cfg.mask));
    const [row, col, height, width] = cfg.roi;
    log(`incremental: demo map (${cfg.model})`);
    const r = await trio(
      (incremental, incrementalExecutor) =>
        explainPdcr(model, kase, { roi: { row, col, height, width } }, { bank, seed: 0, batchSize: BATCH, incremental, incrementalExecutor }),
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
      const r = await trio(
        (incremental, incrementalExecutor) =>
          explainZero(
            model,
            kase,
            { roi, reference: "prediction", outcome: "mean-prob" },
            { blockSize: 16, seed: 0, batchSize: BATCH, incremental, incrementalExecutor },
          ),
        path.split("/").pop()!,
        "zero, 16 px, centre RoI",
      );
      rows.push(r);
      print(r);
      // several draws per block and call (the case where changed-region passes share a call's overhead), with the demo's bank
      if (o.pdcr) {
        log(`incremental: pdcr map of ${path}`);
        const p = await trio(
          (incremental, incrementalExecutor) =>
            explainPdcr(
              model,
              kase,
              { roi, reference: "prediction", outcome: "mean-prob" },
              { bank, seed: 0, batchSize: BATCH, incremental, incrementalExecutor },
            ),
          path.split("/").pop()!,
          `pdcr fast, ${bank.patchSize} px, centre RoI`,
        );
        rows.push(p);
        print(p);
      }
    } finally {
      await model.release();
    }
  }
  return rows;
}
