/**
 * Fidelity of the fast PdCR schedule against a converged reference (the paper schedule with many
 * draws per block, default 500), and its cost against the paper schedule, on one case per model:
 * the first test image of the model's dataset with a non-empty ground truth, and a square RoI
 * (1/8 of the input side) centred on the topmost point of the ground-truth boundary. References
 * are slow (hundreds of thousands of passes on large models), so they are cached and resumable
 * under .bench-cache/.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { type Case, loadCase } from "../data/case.js";
import { casesInSplits, readManifest } from "../data/manifest.js";
import { buildPatchBank, PatchBank } from "../data/patchbank.js";
import { FAST_SCHEDULE } from "../explain/adaptive.js";
import type { Attribution } from "../explain/attribution.js";
import { stratifyDraws, uniformDraw } from "../explain/block-effects.js";
import { PAPER_SCREENED_ATE } from "../explain/estimators.js";
import { PatchIntervention } from "../explain/interventions.js";
import { explainPdcr, PDCR_DEFAULTS } from "../explain/pdcr.js";
import { Model } from "../model/model.js";
import type { RoiRect } from "../target/roi.js";
import { drawSd, type OracleBlock, type OracleBound, oracleBound, oracleBudgetFor } from "./oracle.js";

export interface FidelityCase {
  model: string;
  dataset: string;
  caseId: string;
  roi: RoiRect;
}

export interface ScheduleRun {
  forwardPasses: number;
  wallMs: number;
  effects: number[];
  significant: boolean[];
}

export interface FidelityResult extends FidelityCase {
  blocks: number;
  reference: ScheduleRun & { samples: number };
  paper: ScheduleRun;
  fast: ScheduleRun;
  /** Pearson correlation of block effects with the reference */
  pearsonFast: number;
  pearsonPaper: number;
  /** share of reference-significant blocks whose fast effect has the same sign */
  signAgreementFast: number;
  signAgreementPaper: number;
  referenceSignificant: number;
  passRatio: number;
  /**
   * The oracle (./oracle.ts: the best split of the passes over unbiased block means) at 10% of the
   * paper's passes (the fidelity target's budget, docs/performance.md), from the reference's
   * per-draw spread: with uniform draws, and with the fast schedule's brightness strata; and the
   * budget it needs for both targets. Absent when the reference's draws (its checkpoint) are gone.
   */
  oracle10?: { uniform: OracleBound; stratified: OracleBound; budgetForTarget: { uniform: number; stratified: number } };
  /** the oracle (with strata) at the fast schedule's own pass count: how far the fast schedule is from the best possible */
  oracleAtFast?: OracleBound;
}

export function pearson(a: readonly number[], b: readonly number[]): number {
  const n = a.length;
  const ma = a.reduce((s, v) => s + v, 0) / n,
    mb = b.reduce((s, v) => s + v, 0) / n;
  let sab = 0,
    saa = 0,
    sbb = 0;
  for (let i = 0; i < n; i++) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) ** 2;
    sbb += (b[i] - mb) ** 2;
  }
  return saa === 0 && sbb === 0 ? 1 : sab / Math.sqrt(saa * sbb);
}

/** Share of blocks significant in the reference whose effect has the same (nonzero) sign. */
export function signAgreement(ref: ScheduleRun, other: ScheduleRun): { share: number; n: number } {
  let n = 0,
    same = 0;
  ref.effects.forEach((e, i) => {
    if (!ref.significant[i]) return;
    n++;
    if (Math.sign(other.effects[i]) === Math.sign(e)) same++;
  });
  return { share: n ? same / n : 1, n };
}

/** The topmost ground-truth pixel with the middle of its row's run: a reproducible boundary point. */
export function boundaryRoi(kase: Case, height: number, width: number, size: number): RoiRect | undefined {
  const m = kase.mask;
  if (!m) return undefined;
  for (let y = 0; y < height; y++) {
    const xs: number[] = [];
    for (let x = 0; x < width; x++) if (m[y * width + x]) xs.push(x);
    if (xs.length === 0) continue;
    const cx = xs[Math.floor(xs.length / 2)];
    const clamp = (v: number, hi: number) => Math.max(0, Math.min(hi - size, v));
    return { row: clamp(y - Math.floor(size / 2), height), col: clamp(cx - Math.floor(size / 2), width), height: size, width: size };
  }
  return undefined;
}

function run(a: Attribution): ScheduleRun {
  return {
    forwardPasses: a.forwardPasses,
    wallMs: a.wallMs,
    effects: a.units.map((u) => u.effect),
    significant: a.units.map((u) => u.status === "above-tau"),
  };
}

export interface FidelityOptions {
  dataRoot: string;
  cacheDir: string;
  refSamples: number;
  batchSize?: number;
  log: (s: string) => void;
}

/** The dataset's bank of `patchSize` px patches at the model's input size, built once into the cache. */
export async function bankFor(
  model: Model,
  dataset: string,
  o: Pick<FidelityOptions, "cacheDir" | "dataRoot">,
  patchSize = PDCR_DEFAULTS.blockSize,
): Promise<PatchBank> {
  const path = join(o.cacheDir, `${dataset}-${model.height}x${model.width}${patchSize === PDCR_DEFAULTS.blockSize ? "" : `-p${patchSize}`}.scbank`);
  if (existsSync(path)) return PatchBank.load(path);
  const ds = readManifest(join(o.dataRoot, dataset));
  const images = casesInSplits(ds, ["train", "val"]).map((c) => c.image);
  const bank = await buildPatchBank(images, { height: model.height, width: model.width, filter: model.card.input.resize, patchSize });
  await bank.save(path);
  // Loaded back: a loaded bank's sha256 is its file's, a freshly built one's its pixels', and the
  // checkpoint keys carry it, so a reference killed on the run that built the bank would not resume.
  return PatchBank.load(path);
}

/** The bench's case: the first test image with a non-empty mask, and a RoI of 1/8 of the side on its boundary. */
export async function benchCase(model: Model, dataRoot: string, dataset: string): Promise<{ kase: Case; roi: RoiRect } | undefined> {
  const ds = readManifest(join(dataRoot, dataset));
  const size = Math.max(8, Math.round(model.height / 8));
  for (const c of casesInSplits(ds, ["test"])) {
    const kase = await loadCase(model, c.image, c.mask);
    const roi = boundaryRoi(kase, model.height, model.width, size);
    if (roi) return { kase, roi };
  }
  return undefined;
}

/**
 * A shipped model with its dataset (from its card's sidecar) and bench case, loaded; or why the model
 * is skipped. The caller releases the model.
 */
/** A shipped model's name and data set, from its card beside it (the file name when the card has none). */
export function benchModelName(modelPath: string): { name: string; dataset?: string } {
  const sidecar = JSON.parse(readFileSync(`${modelPath}.json`, "utf8")) as { dataset?: string; name?: string };
  return { name: sidecar.name ?? basename(modelPath).replace(/\.onnx$/, ""), dataset: sidecar.dataset };
}

export async function openBenchCase(
  modelPath: string,
  o: { dataRoot: string; cacheDir: string },
): Promise<{ name: string; dataset: string; model: Model; kase: Case; roi: RoiRect } | string> {
  const { name, dataset } = benchModelName(modelPath);
  if (!dataset || !existsSync(join(o.dataRoot, dataset, "manifest.json"))) return `${name}: dataset ${dataset ?? "?"} not found under ${o.dataRoot}`;
  mkdirSync(o.cacheDir, { recursive: true });
  const model = await Model.load(modelPath);
  const picked = await benchCase(model, o.dataRoot, dataset).catch(async (e) => {
    await model.release();
    throw e;
  });
  if (!picked) {
    await model.release();
    return `${name}: no test case with a non-empty mask`;
  }
  return { name, dataset, model, ...picked };
}

export async function fidelityForModel(modelPath: string, o: FidelityOptions): Promise<FidelityResult | string> {
  const opened = await openBenchCase(modelPath, o);
  if (typeof opened === "string") return opened;
  const { name, dataset, model, kase, roi } = opened;
  try {
    const size = roi.height;
    const bank = await bankFor(model, dataset, o);
    const target = { roi };
    const base = { bank, batchSize: o.batchSize };
    const resultPath = join(o.cacheDir, `fidelity-${name}-${o.refSamples}.json`);
    let cached: { reference: FidelityResult["reference"]; paper: ScheduleRun } | undefined;
    if (existsSync(resultPath)) cached = JSON.parse(readFileSync(resultPath, "utf8"));
    if (!cached) {
      o.log(
        `  ${name}: reference (paper schedule, N=${o.refSamples}) on ${kase.id}, RoI ${roi.row},${roi.col} ${size}x${size} — resumable, cached in ${o.cacheDir}`,
      );
      const ref = await explainPdcr(model, kase, target, {
        ...base,
        schedule: "paper",
        samples: o.refSamples,
        checkpointPath: join(o.cacheDir, `ref-${name}-${o.refSamples}.ckpt.json`),
      });
      o.log(`  ${name}: paper schedule`);
      const paper = await explainPdcr(model, kase, target, { ...base, schedule: "paper" });
      cached = { reference: { ...run(ref), samples: o.refSamples }, paper: run(paper) };
      writeFileSync(resultPath, JSON.stringify(cached));
    }
    const fastAttribution = await explainPdcr(model, kase, target, base);
    const fast = run(fastAttribution);
    const refDraws = join(o.cacheDir, `ref-${name}-${o.refSamples}.ckpt.json`);
    const haveDraws = existsSync(refDraws);
    const oracle = haveDraws
      ? oracleBlocks(
          JSON.parse(readFileSync(refDraws, "utf8")).samples,
          cached,
          new PatchIntervention(bank, model, undefined, kase),
          fastAttribution.baseOutcome,
        )
      : undefined;
    if (haveDraws && !oracle) o.log(`  ${name}: ${refDraws} does not hold the reference's draws (another case or bank?): no oracle bound`);
    const budget10 = 0.1 * cached.paper.forwardPasses;
    // The fidelity targets (docs/performance.md): Pearson >= 0.95 and the same sign on >= 95% of the significant blocks.
    const oracle10 = oracle && {
      uniform: oracleBound(oracle.uniform, budget10),
      stratified: oracleBound(oracle.stratified, budget10),
      budgetForTarget: { uniform: oracleBudgetFor(oracle.uniform, 0.95, 0.95), stratified: oracleBudgetFor(oracle.stratified, 0.95, 0.95) },
    };
    const sf = signAgreement(cached.reference, fast),
      sp = signAgreement(cached.reference, cached.paper);
    return {
      model: name,
      dataset,
      caseId: kase.id,
      roi,
      blocks: fast.effects.length,
      reference: cached.reference,
      paper: cached.paper,
      fast,
      pearsonFast: pearson(fast.effects, cached.reference.effects),
      pearsonPaper: pearson(cached.paper.effects, cached.reference.effects),
      signAgreementFast: sf.share,
      signAgreementPaper: sp.share,
      referenceSignificant: sf.n,
      passRatio: fast.forwardPasses / cached.paper.forwardPasses,
      oracle10,
      oracleAtFast: oracle && oracleBound(oracle.stratified, fast.forwardPasses),
    };
  } finally {
    await model.release();
  }
}

/**
 * Oracle bounds (./oracle.ts) from the reference's stored draws: draw j >= S of block u used patch
 * uniformDraw(seed, u, j) (the paper schedule's draws; the reference runs at the default seed), so
 * each draw's brightness stratum is known and the within-strata spread can be measured as well.
 */
function oracleBlocks(
  samples: Record<string, (number | null)[]>,
  cached: { reference: ScheduleRun },
  patches: PatchIntervention,
  baseOutcome: number,
): { uniform: OracleBlock[]; stratified: OracleBlock[] } | undefined {
  const strat = stratifyDraws(patches.draws, FAST_SCHEDULE.strata, (d) => patches.drawKey(d));
  const stratumOf = new Int32Array(patches.draws);
  strat.strata.forEach((s, h) => s.forEach((d) => (stratumOf[d] = h)));
  const S = PAPER_SCREENED_ATE.screen;
  const uniform: OracleBlock[] = [],
    stratified: OracleBlock[] = [];
  for (let u = 0; u < cached.reference.effects.length; u++) {
    const draws: number[] = [],
      values: number[] = [];
    (samples[u] ?? []).forEach((v, j) => {
      if (j < S || v === null) return;
      draws.push(j);
      values.push(v);
    });
    const block = { effect: cached.reference.effects[u], significant: cached.reference.significant[u] };
    // The draws must be the reference's own: their mean is its ATE for every significant block.
    const mean = values.reduce((a, b) => a + b, 0) / values.length - baseOutcome;
    if (block.significant && !(Math.abs(mean - block.effect) <= 1e-6 * Math.max(1, Math.abs(block.effect)))) return undefined;
    uniform.push({ ...block, sd: drawSd(values) });
    stratified.push({ ...block, sd: drawSd(values, (i) => stratumOf[uniformDraw(PDCR_DEFAULTS.seed, u, draws[i], patches.draws)]) });
  }
  return { uniform, stratified };
}
