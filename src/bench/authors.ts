/**
 * `npm run bench -- --authors`: segcause against the PdCR authors' own loop on the same model, image,
 * RoI and bank (issue 24's last target). The authors' loop runs in PyTorch (training/authors_loop.py:
 * the zoo architecture of training/archs.py with the ONNX model's weights, which this module writes with
 * segcause's ONNX reader), only when Debian's torch is installed. It runs the paper schedule as their
 * released code does (batches of S and N draws per block, float32 Dice × 100) on segcause's paper-schedule
 * draw numbers, so its passes are the paper schedule's and its map can be compared with segcause's block
 * by block. Side by side in one run, same threads: the torch loop (within a time budget, blocks nearest the
 * RoI first: on a loaded machine the whole map takes hours, so its time is then extrapolated from the
 * batches it ran), segcause's
 * paper schedule and its fast schedule with `--incremental auto`, and optionally the paper schedule with
 * full passes.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import ort from "onnxruntime-node";
import { demoConfig, PACKAGE_ROOT } from "../cli/demo.js";
import { type Case, loadCase } from "../data/case.js";
import { PatchBank } from "../data/patchbank.js";
import type { Attribution } from "../explain/attribution.js";
import { uniformDraw } from "../explain/block-effects.js";
import { PAPER_SCREENED_ATE } from "../explain/estimators.js";
import { PatchIntervention } from "../explain/interventions.js";
import { explainPdcr } from "../explain/pdcr.js";
import { blockGrid, type Unit } from "../explain/units.js";
import { Model } from "../model/model.js";
import { sessionOptions } from "../model/runtime.js";
import { tensorValues } from "../onnx/attributes.js";
import { readModelFile } from "../onnx/model-file.js";
import { Region } from "../target/roi.js";

const PYTHON = "/usr/bin/python3";
const THREADS = 2;
const BATCH = 8;
/** Largest |torch − ONNX Runtime| over the output on the image that is accepted as the same model. */
const TOLERANCE = 1e-4;

export interface AuthorsRow {
  model: string;
  passes: { paper: number; fast: number };
  /** wall time of each map, ms: the authors' measured, or extrapolated from the blocks its budget ran */
  authorsMs: number;
  authorsMeasured: boolean;
  torchBlocks: number;
  paperFullMs?: number;
  paperAutoMs: number;
  fastAutoMs: number;
  /** executor the `auto` runs chose ("full", "roi-crop" or "changed-region") */
  executor: string;
  /** the torch loop's map against segcause's paper map (same draws), on the blocks it ran */
  sameMap: { blocks: number; identical: number; maxDiff: number; statusFlips: number };
  maxDiffOrt: number;
  load: [number, number];
}

/** Why the torch side cannot run here, or undefined. */
export function torchMissing(): string | undefined {
  const r = spawnSync(PYTHON, ["-c", "import torch"], { stdio: "ignore" });
  return r.status === 0 ? undefined : `${PYTHON} cannot import torch (install Debian's python3-torch to compare with the authors' torch loop)`;
}

/**
 * A module's dotted path from the scopes of its ONNX node: torch.onnx.export writes a numbered child
 * with its parent's path ("inc", "inc.0") and a named one alone ("ups.0", "conv" for ups.0.conv).
 */
function modulePath(scopes: string[]): string {
  return scopes.reduce((path, s) => (path && !s.startsWith(`${path}.`) ? `${path}.${s}` : s), "");
}

/**
 * The model's Conv weights as the ONNX file holds them (BatchNorm folded in), each named by the module
 * path of its node (torch.onnx.export names a node "/net/<scopes>/Conv").
 */
function writeWeights(path: string, dir: string): void {
  const g = readModelFile(path).proto.graph!;
  const inits = new Map(g.initializer.map((t) => [t.name, t]));
  const chunks: Float32Array[] = [];
  let offset = 0;
  const put = (name: string) => {
    const t = inits.get(name);
    if (!t) throw new Error(`Conv weight ${name} is not an initializer`);
    const v = Float32Array.from(tensorValues(t));
    chunks.push(v);
    offset += v.length;
    return [offset - v.length, t.dims.map(Number)];
  };
  const convs = g.node
    .filter((n) => n.opType === "Conv")
    .map((n) => {
      const parts = n.name.split("/");
      if (parts.length < 3 || parts[1] !== "net") throw new Error(`Conv node '${n.name}' does not name its torch module`);
      return { node: n.name, module: modulePath(parts.slice(2, -1)), weight: put(n.input[1]), bias: n.input[2] ? put(n.input[2]) : undefined };
    });
  if (convs.some((c) => !c.bias)) throw new Error("a Conv without bias: the export did not fold a BatchNorm into it");
  const flat = new Float32Array(offset);
  let at = 0;
  for (const c of chunks) {
    flat.set(c, at);
    at += c.length;
  }
  writeFileSync(join(dir, "weights.bin"), flat);
  writeFileSync(join(dir, "weights.json"), JSON.stringify({ convs }));
}

const f32 = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** The inputs of the torch loop: weights, image, mask, patches as segcause draws them, every block's draw numbers. */
export async function writeCase(
  dir: string,
  model: Model,
  kase: Case,
  bank: PatchBank,
  roi: readonly number[],
  units: readonly Unit[],
  budgetSeconds: number,
): Promise<void> {
  const input = model.preprocess(kase.image);
  if (!kase.mask) throw new Error("the authors' outcome needs a ground-truth mask");
  const patches = new PatchIntervention(bank, model, 8, kase);
  writeWeights(model.path, dir);
  writeFileSync(join(dir, "image.bin"), f32(input));
  writeFileSync(join(dir, "mask.bin"), kase.mask);
  const session = await ort.InferenceSession.create(model.path, sessionOptions(THREADS));
  const out = await session.run({ [model.inputName]: new ort.Tensor("float32", input, [1, model.channels, model.height, model.width]) });
  await session.release();
  writeFileSync(join(dir, "ort-output.bin"), f32((out[model.outputName].data as Float32Array).subarray(0, model.height * model.width)));
  const P = PAPER_SCREENED_ATE,
    B = 8,
    C = model.channels;
  // Each draw's patch as the paper schedule pastes it (the explained image's own patches left out).
  const scratch = new Float32Array(model.inputSize);
  const table = new Float32Array(patches.draws * C * B * B);
  for (let d = 0; d < patches.draws; d++) {
    patches.apply(scratch, { index: 0, row: 0, col: 0, height: B, width: B }, d);
    for (let c = 0; c < C; c++)
      for (let y = 0; y < B; y++)
        table.set(
          scratch.subarray(c * model.height * model.width + y * model.width, c * model.height * model.width + y * model.width + B),
          ((d * C + c) * B + y) * B,
        );
  }
  writeFileSync(join(dir, "patches.bin"), f32(table));
  const draws = new Int32Array(units.length * (P.screen + P.samples));
  units.forEach((u, i) => {
    for (let j = 0; j < P.screen + P.samples; j++) draws[i * (P.screen + P.samples) + j] = uniformDraw(0, u.index, j, patches.draws);
  });
  writeFileSync(join(dir, "draws.bin"), Buffer.from(draws.buffer));
  writeFileSync(
    join(dir, "config.json"),
    JSON.stringify({
      architecture: model.card.architecture,
      channels: C,
      height: model.height,
      width: model.width,
      threads: THREADS,
      tolerance: TOLERANCE,
      budgetSeconds,
      block: B,
      ...P,
      roi: { row: roi[0], col: roi[1], size: roi[2] },
      units: units.map((u) => [u.row, u.col]),
    }),
  );
}

interface TorchResult {
  wallMs: number;
  baseMs: number;
  seconds: { screen: number; fine: number };
  batches: { screen: number; fine: number };
  maxDiffOrt: number;
  /** per block: its value, or null when the time budget ended before it */
  effects: (number | null)[];
}

export function runTorch(dir: string): TorchResult | string {
  const r = spawnSync(PYTHON, [join(PACKAGE_ROOT, "training", "authors_loop.py"), dir], {
    encoding: "utf8",
    env: { ...process.env, OMP_NUM_THREADS: String(THREADS) },
    stdio: ["ignore", "pipe", "inherit"],
  });
  if (r.status === 2) return (JSON.parse(r.stdout) as { refused: string }).refused;
  if (r.status !== 0) return `the torch loop failed (exit ${r.status ?? r.signal})`;
  return JSON.parse(readFileSync(join(dir, "result.json"), "utf8")) as TorchResult;
}

/**
 * The authors' time for the whole map: measured when the loop finished, else its base pass plus, at the
 * mean time of each kind of batch, one screening batch per block and one fine batch per block that
 * passed the paper schedule's screen (the same draws give the same blocks).
 */
function authorsTime(t: TorchResult, paper: Attribution): { ms: number; measured: boolean } {
  if (t.effects.every((e) => e !== null)) return { ms: t.wallMs, measured: true };
  const passing = paper.units.filter((u) => u.status !== "screened-out").length;
  const per = (k: "screen" | "fine") => (1000 * t.seconds[k]) / t.batches[k];
  return { ms: t.baseMs + paper.units.length * per("screen") + passing * per("fine"), measured: false };
}

/** The torch map against segcause's paper map on the blocks the torch loop ran: within 1e-4 Dice points, the largest difference, 0 on one side only. */
function compareMaps(torch: (number | null)[], paper: Attribution): AuthorsRow["sameMap"] {
  let blocks = 0,
    identical = 0,
    maxDiff = 0,
    statusFlips = 0;
  paper.units.forEach((u, i) => {
    const t = torch[i];
    if (t === null) return;
    blocks++;
    const d = Math.abs(t - u.effect);
    if (d <= 1e-4) identical++;
    maxDiff = Math.max(maxDiff, d);
    if ((t === 0) !== (u.effect === 0)) statusFlips++;
  });
  return { blocks, identical, maxDiff, statusFlips };
}

export interface AuthorsOptions {
  /** wall-time budget of the torch loop, seconds (its whole-map time is extrapolated when it stops early) */
  seconds: number;
  /** also segcause's paper schedule with full passes (the runtimes alone at equal passes) */
  full: boolean;
}

export async function authorsBench(models: string[], o: AuthorsOptions, log: (s: string) => void = console.error): Promise<AuthorsRow[]> {
  console.log(
    `\n## segcause vs the authors' torch loop (demo image, RoI and bank; ${THREADS} threads each; segcause batch ${BATCH}, torch batches of ${PAPER_SCREENED_ATE.screen} and ${PAPER_SCREENED_ATE.samples} as the authors'; torch budget ${o.seconds} s)`,
  );
  const missing = torchMissing();
  if (missing) {
    console.log(`skipped: ${missing}`);
    return [];
  }
  const cfg = demoConfig();
  const bank = await PatchBank.load(join(PACKAGE_ROOT, cfg.bank));
  const [row, col, height, width] = cfg.roi;
  const rows: AuthorsRow[] = [];
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  for (const path of models) {
    const name = path
      .split("/")
      .pop()!
      .replace(/\.onnx$/, "");
    const model = await Model.load(path, { threads: THREADS, workers: 1 });
    const dir = mkdtempSync(join(tmpdir(), "segcause-authors-"));
    try {
      const kase = await loadCase(model, join(PACKAGE_ROOT, cfg.image), join(PACKAGE_ROOT, cfg.mask!));
      const load0 = loadavg()[0];
      const roi = { row, col, height, width };
      // The paper schedule's blocks (the explained grid around the RoI), in its order.
      const units = blockGrid(model.height, model.width, 8, Region.rect(roi, model.height, model.width)).units;
      await writeCase(dir, model, kase, bank, cfg.roi, units, o.seconds);
      log(`authors: ${name} torch loop (budget ${o.seconds} s)`);
      const torch = runTorch(dir);
      if (typeof torch === "string") {
        console.log(`${name}: skipped: ${torch}`);
        continue;
      }
      const map = (schedule: "paper" | "fast", incremental: "off" | "auto") => {
        log(`authors: ${name} segcause ${schedule}, --incremental ${incremental}`);
        return explainPdcr(model, kase, { roi }, { bank, schedule, seed: 0, batchSize: BATCH, incremental });
      };
      const paperAuto = await map("paper", "auto");
      if (paperAuto.units.some((u, i) => u.row !== units[i].row || u.col !== units[i].col))
        throw new Error("the paper schedule's blocks are not the grid the torch loop ran");
      const fastAuto = await map("fast", "auto");
      const paperFull = o.full ? await map("paper", "off") : undefined;
      const authors = authorsTime(torch, paperAuto);
      const r: AuthorsRow = {
        model: name,
        passes: { paper: paperAuto.forwardPasses, fast: fastAuto.forwardPasses },
        authorsMs: authors.ms,
        authorsMeasured: authors.measured,
        torchBlocks: torch.effects.filter((e) => e !== null).length,
        paperFullMs: paperFull?.wallMs,
        paperAutoMs: paperAuto.wallMs,
        fastAutoMs: fastAuto.wallMs,
        // auto's record: the executor that ran, or "full" when the cost model chose full passes (absent: no executor)
        executor: (fastAuto.provenance.settings.incremental as { executor?: string } | undefined)?.executor ?? "full",
        sameMap: compareMaps(torch.effects, paperAuto),
        maxDiffOrt: torch.maxDiffOrt,
        load: [load0, loadavg()[0]],
      };
      rows.push(r);
      const m = r.sameMap;
      console.log(
        "model | passes paper / fast | authors (torch) | segcause paper, --incremental auto | segcause fast, --incremental auto | authors / segcause paper | authors / segcause fast | segcause paper, full passes | torch map vs segcause paper map",
      );
      console.log("---|---|---|---|---|---|---|---|---");
      console.log(
        `${name} | ${r.passes.paper} / ${r.passes.fast} | ${s(r.authorsMs)}${r.authorsMeasured ? "" : ` (extrapolated from ${r.torchBlocks} of ${units.length} blocks)`} | ${s(r.paperAutoMs)} | ${s(r.fastAutoMs)} (${r.executor}) | ${(r.authorsMs / r.paperAutoMs).toFixed(2)}× | ${(r.authorsMs / r.fastAutoMs).toFixed(1)}× | ${r.paperFullMs === undefined ? "–" : `${s(r.paperFullMs)} (authors / it ${(r.authorsMs / r.paperFullMs).toFixed(2)}×)`} | ${m.identical} of ${m.blocks} blocks within 1e-4, max Δ ${m.maxDiff.toPrecision(2)}, ${m.statusFlips} zero on one side only`,
      );
      console.log(
        `(${name}: torch vs ONNX Runtime output max |Δ| ${r.maxDiffOrt.toExponential(1)}; torch batches: ${torch.batches.screen} screening (${((1000 * torch.seconds.screen) / torch.batches.screen).toFixed(0)} ms each), ${torch.batches.fine} fine (${((1000 * torch.seconds.fine) / Math.max(torch.batches.fine, 1)).toFixed(0)} ms each); load average ${r.load[0].toFixed(1)} → ${r.load[1].toFixed(1)})`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await model.release();
    }
  }
  return rows;
}
