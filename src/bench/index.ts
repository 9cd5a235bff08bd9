/**
 * `npm run bench`: throughput of the Runner against a bare onnxruntime-node loop on the same model,
 * batch size and thread settings (one session with two threads, and two single-threaded sessions in
 * two threads),
 * measured side by side in interleaved rounds in one run; the bundled demo with the paper and the
 * fast schedule; with --fidelity, the fast schedule against a converged reference per model; with
 * --calibration, the coverage of its 95% intervals and the Pearson its stopping rule delivers; with
 * --volume, only the volume demo with both schedules (./volume.ts); with --regions, only the
 * multiply-adds per pass counted from the region rules (./regions.ts); with --incremental, only maps with
 * full vs RoI-cropped passes (./incremental.ts); with --scale, only evaluate
 * against evaluate --queue with local workers (./scale.ts); with --authors, only segcause against the authors'
 * torch loop (./authors.ts).
 */
import { readdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { Worker } from "node:worker_threads";
import { Command } from "commander";
import ort from "onnxruntime-node";
import { demoConfig, PACKAGE_ROOT } from "../cli/demo.js";
import { intAtLeast, positive } from "../cli/options.js";
import { loadCase } from "../data/case.js";
import { PatchBank } from "../data/patchbank.js";
import { PatchIntervention } from "../explain/interventions.js";
import { explainPdcr } from "../explain/pdcr.js";
import { Model } from "../model/model.js";
import { Runner } from "../model/runner.js";
import { sessionOptions } from "../model/runtime.js";
import { ortUrl } from "../model/session-worker.js";
import { makeOutcome } from "../target/outcome.js";
import { Region } from "../target/roi.js";
import { getOrInsert } from "../util/maps.js";
import { Rng } from "../util/rng.js";
import { authorsBench } from "./authors.js";
import { type CalibrationRow, calibrationForModel } from "./calibration.js";
import { fidelityForModel, pearson } from "./fidelity.js";
import { STUDY_CONFIGS, STUDY_ESTIMATORS, STUDY_INCREMENTAL, type StudyPoint, studyModel } from "./fidelity-study.js";
import { incrementalBench } from "./incremental.js";
import { opCostBench } from "./op-cost.js";
import type { OracleBound } from "./oracle.js";
import { regionsBench } from "./regions.js";
import { SCALE_CASES, type ScaleCase, scaleBench } from "./scale.js";
import { volumeBench } from "./volume.js";

const ROUNDS = 3;
const SECONDS_PER_ROUND = 4;

async function bareLoop(model: Model, batch: number, seconds: number): Promise<number> {
  const session = await ort.InferenceSession.create(model.path, sessionOptions(model.threads, "all", model.device));
  const data = new Float32Array(batch * model.inputSize);
  const rng = new Rng(1);
  for (let i = 0; i < data.length; i++) data[i] = rng.next();
  const feeds = { [model.inputName]: new ort.Tensor("float32", data, [batch, model.channels, model.height, model.width]) };
  await session.run(feeds); // warm-up
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    await session.run(feeds);
    n += batch;
  }
  const rate = n / ((performance.now() - t0) / 1000);
  await session.release();
  return rate;
}

async function runnerLoop(model: Model, batch: number, seconds: number, base: Float32Array, bank: PatchBank | undefined): Promise<number> {
  const runner = new Runner(model, { batchSize: batch });
  const region = Region.rect(
    { row: Math.floor(model.height / 2) - 16, col: Math.floor(model.width / 2) - 16, height: 32, width: 32 },
    model.height,
    model.width,
  );
  const reference = new Uint8Array(model.height * model.width).fill(1);
  // Same per-input work as a PdCR run: copy the image, paste a bank patch, score Dice on the RoI.
  const patch = bank ? new PatchIntervention(bank, model, bank.patchSize) : undefined;
  const block = { index: 0, row: 0, col: 0, height: bank?.patchSize ?? 0, width: bank?.patchSize ?? 0 };
  const items = Array.from({ length: batch * 16 }, (_, i) => i);
  await runner.evaluate(
    items.slice(0, batch),
    (_, dst) => dst.set(base),
    () => 0,
  ); // warm-up
  const score = makeOutcome("dice", model.card.output, model.outputLayout, region, reference);
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    await runner.evaluate(
      items,
      (i, dst) => {
        dst.set(base);
        patch?.apply(dst, block, i % patch.draws);
      },
      (d, slot) => score(d, slot),
    );
    n += items.length;
  }
  return n / ((performance.now() - t0) / 1000);
}

function shippedModels(): string[] {
  const dir = join(PACKAGE_ROOT, "models");
  try {
    return readdirSync(dir)
      .filter((f) => f.endsWith(".onnx"))
      .sort()
      .map((f) => join(dir, f));
  } catch {
    return [];
  }
}

/**
 * One bare single-threaded session looping in a worker thread: warms up, says "ready", and on "go"
 * runs for `seconds` and posts how many inputs it pushed. (onnxruntime-node's run is synchronous on
 * its JS thread, so two sessions overlap only in two threads.)
 */
const BARE_WORKER = `
(async () => {
  const { parentPort, workerData: w } = await import("node:worker_threads");
  const ort = (await import(w.ort)).default;
  const s = await ort.InferenceSession.create(w.path, w.options);
  const feeds = { [w.name]: new ort.Tensor("float32", w.data, w.dims) };
  await s.run(feeds);
  parentPort.once("message", async () => {
    let n = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < w.seconds * 1000) {
      await s.run(feeds);
      n += w.dims[0];
    }
    await s.release();
    parentPort.postMessage(n);
  });
  parentPort.postMessage("ready");
})();
`;

async function twoSessionLoop(model: Model, batch: number, seconds: number): Promise<number> {
  // The bare-ORT counterpart of workers = 2: two single-threaded sessions (the Model's options), each in its own thread.
  const data = new Float32Array(batch * model.inputSize);
  const rng = new Rng(1);
  for (let i = 0; i < data.length; i++) data[i] = rng.next();
  const workerData = {
    ort: ortUrl(),
    path: model.path,
    options: sessionOptions(1),
    name: model.inputName,
    data,
    dims: [batch, model.channels, model.height, model.width],
    seconds,
  };
  const workers = [0, 1].map(() => new Worker(BARE_WORKER, { eval: true, workerData }));
  const next = (w: Worker) => new Promise<unknown>((resolve, reject) => (w.once("message", resolve), w.once("error", reject)));
  await Promise.all(workers.map(next)); // both warmed up
  const t0 = performance.now();
  const counts = workers.map(next);
  for (const w of workers) w.postMessage("go");
  const n = (await Promise.all(counts)).reduce((a: number, b) => a + (b as number), 0);
  const rate = n / ((performance.now() - t0) / 1000);
  await Promise.all(workers.map((w) => w.terminate()));
  return rate;
}

const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

interface BenchFlags {
  models: string;
  fidelity: boolean;
  refSamples: number;
  batch: number;
  rounds: number;
  seconds: number;
  throughput: boolean;
  demo: boolean;
  json?: string;
  calibration?: string;
  calSeeds: number;
  calRefSamples: number;
  calMapNoise: string;
  volume: boolean;
  regions: boolean;
  study: boolean;
  studyCases: number;
  studyRefSamples: number;
  studyCache?: string;
  studyEstimators?: string;
  studyCachedOnly: boolean;
  incremental: boolean;
  incrementalPdcr: boolean;
  opCost: boolean;
  scale: boolean;
  authors: boolean;
  authorsSeconds: number;
  authorsFull: boolean;
  scaleCases: string;
}

function selectModels(spec: string, demoModel: string): string[] {
  if (spec === "demo") return [demoModel];
  const all = shippedModels();
  if (spec === "all") return all;
  return spec.split(",").map((name) => {
    const hit = all.find((p) => p.endsWith(`/${name}.onnx`) || p === name);
    if (!hit) throw new Error(`no shipped model ${name}; choose from ${all.map((p) => p.split("/").pop()).join(", ")}`);
    return hit;
  });
}

async function throughput(paths: string[], f: BenchFlags, base: (m: Model) => Promise<Float32Array>, bank: PatchBank): Promise<unknown[]> {
  console.log(`\n## Throughput (inputs/s; ${f.rounds} interleaved rounds of ${f.seconds}s, median; batch ${f.batch})`);
  console.log("model | bare ORT 1x2 threads | segcause 1x2 | ratio | bare ORT 2 sessions x1 | segcause workers=2 | ratio | best layout");
  console.log("---|---|---|---|---|---|---|---");
  const rows = [];
  for (const path of paths) {
    const one = await Model.load(path, { threads: 2, workers: 1 });
    const two = await Model.load(path, { threads: 1, workers: 2 });
    const input = await base(one);
    const b1: number[] = [],
      r1: number[] = [],
      b2: number[] = [],
      r2: number[] = [];
    for (let r = 0; r < f.rounds; r++) {
      b1.push(await bareLoop(one, f.batch, f.seconds));
      r1.push(await runnerLoop(one, f.batch, f.seconds, input, bank));
      b2.push(await twoSessionLoop(one, f.batch, f.seconds));
      r2.push(await runnerLoop(two, f.batch, f.seconds, input, bank));
    }
    const row = { model: path.split("/").pop()!, bare1: med(b1), ours1: med(r1), bare2: med(b2), ours2: med(r2) };
    rows.push(row);
    console.log(
      `${row.model} | ${row.bare1.toFixed(1)} | ${row.ours1.toFixed(1)} | ${(row.ours1 / row.bare1).toFixed(3)} | ${row.bare2.toFixed(1)} | ${row.ours2.toFixed(1)} | ${(row.ours2 / row.bare2).toFixed(3)} | ${row.ours2 > row.ours1 ? "2 sessions x 1 thread" : "1 session x 2 threads"}`,
    );
    await one.release();
    await two.release();
  }
  return rows;
}

const pct = (x: number) => (Number.isFinite(x) ? `${(100 * x).toFixed(0)}%` : "never");
/** Pearson / same sign of the oracle (src/bench/oracle.ts), or "–" without the reference's draws. */
const oracle = (b?: OracleBound) => (b ? `${b.pearson.toFixed(3)} / ${(100 * b.sameSign).toFixed(1)}%` : "–");

async function fidelity(paths: string[], f: BenchFlags): Promise<unknown[]> {
  const dataRoot = process.env.SEGCAUSE_DATA ?? join(PACKAGE_ROOT, "..", "shared", "data");
  const cacheDir = join(PACKAGE_ROOT, ".bench-cache");
  console.log(`\n## Fast vs paper schedule, fidelity against the paper schedule with N=${f.refSamples} (reference cached in .bench-cache/)`);
  const rows = [];
  const lines: string[] = [];
  for (const path of paths) {
    const r = await fidelityForModel(path, { dataRoot, cacheDir, refSamples: f.refSamples, log: (s) => console.error(s) });
    if (typeof r === "string") {
      console.log(`skipped: ${r}`);
      continue;
    }
    rows.push(r);
    lines.push(
      `${r.model} | ${r.caseId} ${r.roi.row},${r.roi.col} ${r.roi.height}px | ${r.paper.forwardPasses} / ${(r.paper.wallMs / 1000).toFixed(0)} s | ${r.fast.forwardPasses} / ${(r.fast.wallMs / 1000).toFixed(1)} s | ${(100 * r.passRatio).toFixed(1)}% | ${r.pearsonFast.toFixed(3)} | ${(100 * r.signAgreementFast).toFixed(1)}% of ${r.referenceSignificant} | ${r.pearsonPaper.toFixed(3)} | ${(100 * r.signAgreementPaper).toFixed(1)}% | ${oracle(r.oracle10?.uniform)} | ${oracle(r.oracle10?.stratified)} | ${r.oracle10 ? `${pct(r.oracle10.budgetForTarget.stratified / r.paper.forwardPasses)}` : "–"} | ${oracle(r.oracleAtFast)}`,
    );
  }
  console.log(
    "model | case, RoI | paper: passes / wall | fast: passes / wall | fast/paper passes | Pearson fast vs ref | same sign (fast) | Pearson paper vs ref | same sign (paper) | best possible at 10%: uniform draws | with brightness strata | passes needed for 0.95 / 95% (of paper) | best possible at the fast schedule's passes (strata)",
  );
  console.log("---|---|---|---|---|---|---|---|---|---|---|---|---");
  for (const l of lines) console.log(l);
  console.log(
    "best possible = the best expected Pearson / same-sign share of per-block means when an oracle that knows each block's ATE and per-draw spread (from the reference's draws) splits the passes as well as possible for each measure, with no screening cost (src/bench/oracle.ts); 'passes needed' = the smallest budget at which one split reaches Pearson 0.95 and 95% same sign together (with brightness strata). It bounds fixed allocations of unbiased block means: pooling across blocks, common draws (for Pearson) and sequential stopping are outside it",
  );
  return rows;
}

/** The fidelity study (./fidelity-study.ts): per model, the mean over its images of each estimator's point. */
async function study(paths: string[], f: BenchFlags): Promise<StudyPoint[]> {
  const dataRoot = process.env.SEGCAUSE_DATA ?? join(PACKAGE_ROOT, "..", "shared", "data");
  const cacheDir = resolve(f.studyCache ?? join(PACKAGE_ROOT, ".bench-cache"));
  const publishDir = join(PACKAGE_ROOT, "docs", "fidelity-study");
  console.log(
    `\n## Fidelity study: ${f.studyCases} test images per model against the paper schedule (τ = 0) with ${f.studyRefSamples} draws per block (cached in ${cacheDir}, references published in docs/fidelity-study/; every run --incremental ${STUDY_INCREMENTAL})`,
  );
  const only = f.studyEstimators?.split(",").map((e) => e.trim());
  const unknown = only?.filter((e) => !(STUDY_ESTIMATORS as readonly string[]).includes(e)) ?? [];
  if (unknown.length) throw new Error(`--study-estimators: no estimator ${unknown.join(", ")}; choose from ${STUDY_ESTIMATORS.join(", ")}`);
  const configs = only ? STUDY_CONFIGS.filter((c) => only.includes(c.estimator)) : STUDY_CONFIGS;
  const points: StudyPoint[] = [];
  for (const path of paths) {
    const r = await studyModel(
      path,
      {
        dataRoot,
        cacheDir,
        publishDir,
        refSamples: f.studyRefSamples,
        cases: f.studyCases,
        log: (s) => console.error(s),
        cachedOnly: f.studyCachedOnly,
      },
      configs,
    );
    if (typeof r === "string") console.log(`skipped: ${r}`);
    else points.push(...r);
  }
  console.log(
    "model | estimator | level | images | passes / paper (mean) | Pearson (mean, min) | Spearman (mean) | same sign (mean, of sign-decided blocks) | executor",
  );
  console.log("---|---|---|---|---|---|---|---|---");
  const groups = new Map<string, StudyPoint[]>();
  for (const p of points) getOrInsert(groups, `${p.model}|${p.estimator}|${p.level}`, () => []).push(p);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  // passes / paper needs the paper schedule's run on the same image (absent while the study runs elsewhere)
  const ratioOf = (g: StudyPoint[]) => {
    const r = g.flatMap((x) => (x.passRatio === undefined ? [] : [x.passRatio]));
    return r.length === 0 ? "–" : `${(100 * mean(r)).toFixed(1)}%${r.length < g.length ? ` (on ${r.length} image${r.length === 1 ? "" : "s"})` : ""}`;
  };
  for (const g of groups.values()) {
    const p = g[0];
    console.log(
      `${p.model} | ${p.estimator} | ${p.estimator === "paper" ? `N=${p.level}` : `map-noise ${p.level}`} | ${g.length} | ${ratioOf(g)} | ${mean(g.map((x) => x.pearson)).toFixed(3)}, ${Math.min(...g.map((x) => x.pearson)).toFixed(3)} | ${mean(g.map((x) => x.spearman)).toFixed(3)} | ${(100 * mean(g.map((x) => x.sign))).toFixed(1)}% of ${mean(g.map((x) => x.signBlocks)).toFixed(0)} | ${[...new Set(g.map((x) => x.executor))].join(", ")}`,
    );
  }
  return points;
}

async function calibration(f: BenchFlags): Promise<CalibrationRow[]> {
  const dataRoot = process.env.SEGCAUSE_DATA ?? join(PACKAGE_ROOT, "..", "shared", "data");
  const cacheDir = join(PACKAGE_ROOT, ".bench-cache");
  const mapNoise = f.calMapNoise.split(",").map(Number);
  console.log(
    `\n## Calibration of the fast schedule: ${f.calSeeds} seeds per model and --map-noise, reference = ${f.calRefSamples} uniform draws per block (tau 0)`,
  );
  const rows: CalibrationRow[] = [];
  for (const spec of f.calibration!.split(",")) {
    const [name, block] = spec.split(":");
    const [path] = selectModels(name, "");
    const r = await calibrationForModel(path, {
      dataRoot,
      cacheDir,
      refSamples: f.calRefSamples,
      block: Number(block ?? 8),
      seeds: f.calSeeds,
      mapNoise,
      log: (s) => console.error(s),
    });
    if (typeof r === "string") console.log(`skipped: ${r}`);
    else rows.push(...r);
  }
  console.log(
    "model | case | block | --map-noise | seeds | reference passes | fast passes (mean) | intervals | SE = 0 | coverage of ref mean | coverage, ref noise included | sd of z | ref SE / fast SE | Pearson with ref: mean / min | corrected for ref noise | promised",
  );
  console.log("---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---");
  for (const r of rows) {
    console.log(
      `${r.model} | ${r.caseId} | ${r.block} | ${r.mapNoise} | ${r.seeds} | ${r.referencePasses} | ${r.fastPasses.toFixed(0)} | ${r.intervals} | ${r.zeroSe} | ${(100 * r.coverage).toFixed(1)}% | ${(100 * r.coverageNoiseAware).toFixed(1)}% | ${r.zSd.toFixed(2)} | ${r.refSeRatio.toFixed(2)} | ${r.pearsonMean.toFixed(3)} / ${r.pearsonMin.toFixed(3)} | ${r.pearsonCorrected.toFixed(3)} | ${r.promised.toFixed(3)}`,
    );
  }
  return rows;
}

async function main(): Promise<void> {
  const f = new Command("bench")
    .option("--models <list>", "demo, all, or comma-separated shipped model names", "demo")
    .option("--fidelity", "fast-vs-paper schedule and fidelity against a converged reference (slow the first time: references are cached)", false)
    .option("--ref-samples <n>", "draws per block of the reference", intAtLeast("ref-samples"), 500)
    .option("--batch <n>", "batch size of the throughput comparison", intAtLeast("batch"), 8)
    .option("--rounds <n>", "interleaved rounds per throughput measurement", intAtLeast("rounds"), ROUNDS)
    .option("--seconds <s>", "seconds per round", positive("seconds"), SECONDS_PER_ROUND)
    .option("--no-throughput", "skip the throughput comparison")
    .option("--no-demo", "skip the demo with both schedules")
    .option("--json <file>", "also write the results as JSON")
    .option(
      "--calibration <models>",
      "coverage of the fast schedule's 95% intervals and its Pearson against a reference, as model:block pairs, e.g. deeplab-hc18:8,unet-ph2:16 (resumable, cached in .bench-cache/)",
    )
    .option("--cal-seeds <n>", "fast-schedule seeds per model and --map-noise value", intAtLeast("cal-seeds"), 8)
    .option("--cal-ref-samples <n>", "uniform draws per block of the calibration reference", intAtLeast("cal-ref-samples"), 200)
    .option("--cal-map-noise <list>", "--map-noise values to calibrate", "0.3")
    .option(
      "--volume",
      "only the volume demo (3D model, bundled hippocampus case) with both schedules: passes, wall time, passes/s, memory peak",
      false,
    )
    .option("--study", "the fidelity study: several images per model, Pearson/rank/sign vs passes for paper, fast and fast+prior (resumable)", false)
    .option("--study-cases <n>", "test images per model in the study", intAtLeast("study-cases"), 5)
    .option("--study-ref-samples <n>", "draws per block of the study's references", intAtLeast("study-ref-samples"), 200)
    .option(
      "--study-cached-only",
      "the study's table from what is cached or published only, running no pass (e.g. while the study runs elsewhere)",
      false,
    )
    .option("--study-estimators <list>", `only these estimators in the study, comma-separated (default all: ${STUDY_ESTIMATORS.join(", ")})`)
    .option(
      "--study-cache <dir>",
      "the study's cache folder (default .bench-cache/ in the package): references' checkpoints (study-ref-*.ckpt.json) and the patch bank (*.scbank) copied into it are resumed",
    )
    .option("--regions", "only the multiply-adds per pass counted from the region rules (full, RoI-cropped, incremental), every shipped model", false)
    .option(
      "--incremental",
      "only wall time of maps with full vs RoI-cropped passes: the demo's PdCR map (--no-demo skips it), then a zero map per model of --models (default here: every shipped 2D model)",
      false,
    )
    .option("--incremental-pdcr", "with --incremental, also a PdCR map (fast schedule, the demo's bank, centre RoI) per model", false)
    .option("--op-cost", "only the executor cost model's constants, measured on --models (default here: unet-ph2) (./op-cost.ts)", false)
    .option(
      "--scale",
      "only evaluate (and a tiny explain) run here vs --queue with local workers on a redis-server started for it (./scale.ts)",
      false,
    )
    .option("--scale-cases <list>", `with --scale: which cases, of ${SCALE_CASES.join(", ")}`, SCALE_CASES.join(","))
    .option(
      "--authors",
      "only segcause (paper schedule, fast schedule with --incremental auto) against the authors' torch loop on the demo case (--models: default unet-ph2; needs Debian's python3-torch, else skipped)",
      false,
    )
    .option(
      "--authors-seconds <s>",
      "time budget of the authors' torch loop; past it the whole map's time is extrapolated",
      positive("authors-seconds"),
      600,
    )
    .option("--authors-full", "with --authors, also segcause's paper schedule with full passes (--incremental off)", false)
    .parse(process.argv)
    .opts<BenchFlags>();
  const cfg = demoConfig();
  const demoModel = join(PACKAGE_ROOT, cfg.model);
  const paths = selectModels(f.models, demoModel);
  const bank = await PatchBank.load(join(PACKAGE_ROOT, cfg.bank));
  const os = await import("node:os");
  console.log(
    `segcause bench · ${os.cpus()[0]?.model ?? "cpu"} · ${os.cpus().length} cores · ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB · node ${process.version} · onnxruntime-node ${ort.env.versions.common}`,
  );
  const out: Record<string, unknown> = {};
  if (f.regions) {
    out.regions = regionsBench();
    if (f.json) writeFileSync(f.json, JSON.stringify(out, null, 1));
    return;
  }
  if (f.incremental) {
    const models = f.models === "demo" ? shippedModels().filter((p) => !p.includes("/volumes/")) : paths;
    out.incremental = await incrementalBench(models, { demo: f.demo, pdcr: f.incrementalPdcr });
    if (f.json) writeFileSync(f.json, JSON.stringify(out, null, 1));
    return;
  }
  if (f.authors) {
    out.authors = await authorsBench(paths, { seconds: f.authorsSeconds, full: f.authorsFull });
    if (f.json) writeFileSync(f.json, JSON.stringify(out, null, 1));
    return;
  }
  if (f.opCost) {
    const models = f.models === "demo" ? selectModels("unet-ph2", demoModel) : paths;
    out.opCost = [];
    for (const m of models) for (const threads of [1, 2]) (out.opCost as unknown[]).push(await opCostBench(m, threads));
    if (f.json) writeFileSync(f.json, JSON.stringify(out, null, 1));
    return;
  }
  if (f.scale) {
    const cases = f.scaleCases.split(",").map((c) => c.trim());
    const unknown = cases.filter((c) => !(SCALE_CASES as readonly string[]).includes(c));
    if (unknown.length) throw new Error(`--scale-cases: no case ${unknown.join(", ")}; choose from ${SCALE_CASES.join(", ")}`);
    out.scale = await scaleBench([1, 2, 4], cases as ScaleCase[]);
    console.log(JSON.stringify(out.scale, null, 1));
    if (f.json) writeFileSync(f.json, JSON.stringify(out, null, 1));
    return;
  }
  if (f.volume) {
    out.volume = volumeBench({ threads: 2 });
    if (f.json) writeFileSync(f.json, JSON.stringify(out, null, 1));
    return;
  }
  // The demo image at each model's own size, as the input of the throughput loops.
  const base = async (m: Model) => m.preprocess((await loadCase(m, join(PACKAGE_ROOT, cfg.image))).image);
  if (f.throughput) out.throughput = await throughput(paths, f, base, bank);

  if (f.demo) out.demo = await demoSchedules(cfg, demoModel);
  if (f.fidelity) out.fidelity = await fidelity(paths, f);
  if (f.calibration) out.calibration = await calibration(f);
  if (f.study) out.study = await study(paths, f);
  if (f.json) writeFileSync(f.json, JSON.stringify(out, null, 1));
}

/** The bundled demo with both schedules: the map users see first. */
async function demoSchedules(cfg: ReturnType<typeof demoConfig>, demoModel: string): Promise<unknown> {
  const model = await Model.load(demoModel);
  const kase = await loadCase(model, join(PACKAGE_ROOT, cfg.image), cfg.mask ? join(PACKAGE_ROOT, cfg.mask) : undefined);
  const [row, col, height, width] = cfg.roi;
  const demo: Record<string, unknown> = {};
  console.log("\n## The bundled demo, both schedules");
  for (const schedule of ["paper", "fast"] as const) {
    const a = await explainPdcr(
      model,
      kase,
      { roi: { row, col, height, width } },
      { bank: await PatchBank.load(join(PACKAGE_ROOT, cfg.bank)), schedule },
    );
    const aboveTau = a.units.filter((u) => u.status === "above-tau").length;
    demo[schedule] = { forwardPasses: a.forwardPasses, wallMs: a.wallMs, aboveTau, effects: a.units.map((u) => u.effect) };
    console.log(
      `${schedule}: ${a.forwardPasses} forward passes, ${(a.wallMs / 1000).toFixed(1)} s wall, ${(a.forwardPasses / (a.wallMs / 1000)).toFixed(1)} passes/s, ${aboveTau}/${a.units.length} blocks above tau (|ATE| >= tau, not a test)`,
    );
  }
  const p = demo.paper as { forwardPasses: number; effects: number[] },
    q = demo.fast as { forwardPasses: number; effects: number[] };
  console.log(
    `fast/paper passes ${(q.forwardPasses / p.forwardPasses).toFixed(3)}; Pearson(fast, paper) ${pearson(q.effects, p.effects).toFixed(3)}`,
  );
  await model.release();
  return demo;
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
});
