/**
 * The fidelity study (issue 25): several images per model, each against a converged reference, and
 * Pearson / rank / sign against forward passes for the paper schedule, the fast schedule and the
 * fast schedule with a zero-fill prior (stratified or importance-sampled draws), each at several precisions.
 *  - Reference: the paper schedule with τ = 0 (every block estimated) and `refSamples` uniform draws
 *    per block, at seed REF_SEED (the estimators run at seed 0, so their draws are not the reference's).
 *  - Sign target: the blocks whose reference 95% interval excludes 0 (the reference decides which blocks
 *    have a sign to get right, not τ); the share of them whose estimate has the same sign.
 *  - An estimate is the block's mean (posterior mean with a prior), 0 where the schedule screened it out.
 * Everything is cached under the cache folder, references with checkpoints, so a killed study resumes;
 * finished references are also written as small JSON files to `publishDir`, and a reference found there
 * (checked against this run's model, case, RoI, draws and seed) is not recomputed.
 * Every run uses the incremental executor `auto` (the same maps up to float rounding, fewer multiply-adds).
 */
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Case } from "../data/case.js";
import { loadCase } from "../data/case.js";
import { casesInSplits, readManifest } from "../data/manifest.js";
import type { PatchBank } from "../data/patchbank.js";
import { spearman } from "../evaluate/map-metrics.js";
import type { AdaptiveSettings } from "../explain/adaptive.js";
import type { Attribution } from "../explain/attribution.js";
import { explainPdcr } from "../explain/pdcr.js";
import { Model } from "../model/model.js";
import type { RoiRect } from "../target/roi.js";
import { writeFileAtomicSync } from "../util/atomic.js";
import { t975 } from "../util/tdist.js";
import { VERSION } from "../version.js";
import { bankFor, benchModelName, boundaryRoi, pearson } from "./fidelity.js";

export const REF_SEED = 1000;

export interface StudyOptions {
  dataRoot: string;
  cacheDir: string;
  publishDir: string;
  refSamples: number;
  /** test images per model (the first ones with a boundary RoI) */
  cases: number;
  log: (s: string) => void;
  /** only what is cached or published: no pass runs (a table of a study still running elsewhere) */
  cachedOnly?: boolean;
}

/** The incremental executor mode of every study run (the library option; `auto` picks by counts, never by timing). */
export const STUDY_INCREMENTAL = "auto" as const;

/** One estimator setting: a point of a passes curve. */
export const STUDY_ESTIMATORS = ["paper", "fast", "fast+prior", "fast+prior+is", "fast+split"] as const;

export interface StudyConfig {
  /** fast+split: the fast schedule with --prior zero-fill-split (session 16) */
  estimator: (typeof STUDY_ESTIMATORS)[number];
  /** paper: N; fast: --map-noise */
  level: number;
}

export const STUDY_CONFIGS: StudyConfig[] = [
  { estimator: "paper", level: 10 },
  { estimator: "paper", level: 50 },
  ...[0.6, 0.3, 0.15].flatMap((f) => [
    { estimator: "fast" as const, level: f },
    { estimator: "fast+prior" as const, level: f },
    { estimator: "fast+prior+is" as const, level: f },
    { estimator: "fast+split" as const, level: f },
  ]),
];

export interface ReferenceMap {
  model: string;
  caseId: string;
  roi: RoiRect;
  samples: number;
  seed: number;
  forwardPasses: number;
  mean: number[];
  se: number[];
  dof: number[];
  /** recorded since session 16 (older published references lack them): the model's and the bank's sha256 */
  modelSha256?: string;
  bankSha256?: string;
  /** which executor ran the passes: full, roi-crop or changed-region (absent: full passes, before session 16) */
  executor?: string;
  segcause?: string;
}

/** What a reference must have been computed for to stand for this run's. */
export interface ReferenceIdentity {
  model: string;
  caseId: string;
  roi: RoiRect;
  samples: number;
  seed: number;
  modelSha256: string;
  bankSha256: string;
}

/**
 * Why `ref` is not the reference of `want`, or undefined when it is. The hashes are compared when the
 * reference records them (older ones do not: their model and bank are then taken on the name).
 */
export function referenceMismatch(ref: ReferenceMap, want: ReferenceIdentity): string | undefined {
  const diffs: string[] = [];
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  for (const k of ["model", "caseId", "samples", "seed"] as const) if (ref[k] !== want[k]) diffs.push(`${k} ${ref[k]} (this run: ${want[k]})`);
  const roi = (r: RoiRect) => `${r.row},${r.col} ${r.height}x${r.width}`;
  if (!ref.roi || !same([ref.roi.row, ref.roi.col, ref.roi.height, ref.roi.width], [want.roi.row, want.roi.col, want.roi.height, want.roi.width]))
    diffs.push(`RoI ${ref.roi ? roi(ref.roi) : "?"} (this run: ${roi(want.roi)})`);
  if (ref.modelSha256 !== undefined && ref.modelSha256 !== want.modelSha256) diffs.push("model sha256 (the model file changed)");
  if (ref.bankSha256 !== undefined && ref.bankSha256 !== want.bankSha256) diffs.push("bank sha256 (the patch bank changed)");
  if (!Array.isArray(ref.mean) || ref.mean.length === 0 || ref.se?.length !== ref.mean.length || ref.dof?.length !== ref.mean.length)
    diffs.push("its block arrays are missing or of unequal length");
  return diffs.length ? diffs.join("; ") : undefined;
}

/** The executor an Attribution's passes ran on (its provenance's `incremental` record), or "full". */
export function executorOf(a: Pick<Attribution, "provenance">): string {
  const inc = a.provenance.settings.incremental as { executor?: string } | undefined;
  return inc?.executor ?? "full";
}

export interface StudyPoint extends StudyConfig {
  model: string;
  caseId: string;
  passes: number;
  /** the executor its passes ran on (full, roi-crop, changed-region) */
  executor?: string;
  /** passes relative to the paper schedule (N = 50) on the same image */
  passRatio?: number;
  pearson: number;
  spearman: number;
  /** share of the reference's sign-decided blocks with the same sign, and how many there are */
  sign: number;
  signBlocks: number;
}

/** The first `k` test images of the dataset with a non-empty mask, each with its boundary RoI (as the fidelity bench). */
export async function studyCases(model: Model, dataRoot: string, dataset: string, k: number): Promise<{ kase: Case; roi: RoiRect }[]> {
  const ds = readManifest(join(dataRoot, dataset));
  const size = Math.max(8, Math.round(model.height / 8));
  const out: { kase: Case; roi: RoiRect }[] = [];
  for (const c of casesInSplits(ds, ["test"])) {
    if (out.length >= k) break;
    const kase = await loadCase(model, c.image, c.mask);
    const roi = boundaryRoi(kase, model.height, model.width, size);
    if (roi) out.push({ kase, roi });
  }
  return out;
}

/** The estimates a map offers: block means (posterior means with a prior), 0 where screened out. */
export function estimatesOf(a: Pick<Attribution, "units">): number[] {
  return a.units.map((u) => (u.status === "screened-out" ? 0 : u.rawEffect));
}

/** Scores a map's estimates against the reference. */
export function scoreAgainst(ref: ReferenceMap, est: readonly number[]): { pearson: number; spearman: number; sign: number; signBlocks: number } {
  const n = ref.mean.length;
  const domain = Uint32Array.from({ length: n }, (_, i) => i);
  let decided = 0,
    same = 0;
  ref.mean.forEach((m, i) => {
    if (!(Math.abs(m) > t975(ref.dof[i]) * ref.se[i])) return;
    decided++;
    if (Math.sign(est[i]) === Math.sign(m)) same++;
  });
  return {
    pearson: pearson(est, ref.mean),
    spearman: spearman(Float32Array.from(est), Float32Array.from(ref.mean), domain),
    sign: decided ? same / decided : 1,
    signBlocks: decided,
  };
}

function readJson<T>(path: string): T | undefined {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as T;
  } catch {
    return undefined;
  }
}

function cached<T>(path: string, make: () => Promise<T>): Promise<T> {
  const hit = existsSync(path) ? readJson<T>(path) : undefined;
  if (hit !== undefined) return Promise.resolve(hit);
  return make().then((v) => (writeFileAtomicSync(path, JSON.stringify(v)), v));
}

/** Where a reference's files are: its cached and published JSON and its checkpoint (what a later session copies to resume it). */
export function referenceFiles(
  o: Pick<StudyOptions, "cacheDir" | "publishDir" | "refSamples">,
  tag: string,
): { cached: string; published: string; checkpoint: string } {
  const file = `study-ref-${tag}-${o.refSamples}`;
  return {
    cached: join(o.cacheDir, `${file}.json`),
    published: join(o.publishDir, `${file}.json`),
    checkpoint: join(o.cacheDir, `${file}.ckpt.json`),
  };
}

/**
 * A case's reference: the published one when it matches this run (model, case, RoI, draws, seed, and the
 * hashes it records), else the cached one, else computed (resumable from its checkpoint) and published.
 * A published reference that does not match is a one-line refusal for that case: it is not overwritten.
 */
export async function studyReference(
  model: Model,
  name: string,
  bank: PatchBank,
  kase: Case,
  roi: RoiRect,
  o: StudyOptions,
): Promise<ReferenceMap | string> {
  const tag = `${name}-${kase.id}`;
  const files = referenceFiles(o, tag);
  for (const d of [o.cacheDir, o.publishDir]) mkdirSync(d, { recursive: true });
  const want: ReferenceIdentity = {
    model: name,
    caseId: kase.id,
    roi,
    samples: o.refSamples,
    seed: REF_SEED,
    modelSha256: model.sha256,
    bankSha256: bank.sha256,
  };
  if (existsSync(files.published)) {
    const ref = readJson<ReferenceMap>(files.published);
    const why = ref ? referenceMismatch(ref, want) : "not readable JSON";
    if (ref && !why) return ref;
    return `${files.published} does not match this run (${why}): delete it to recompute the reference`;
  }
  let ref = existsSync(files.cached) ? readJson<ReferenceMap>(files.cached) : undefined;
  const why = ref && referenceMismatch(ref, want);
  if (why) o.log(`  ${tag}: the cached reference does not match (${why}); recomputing it`);
  if ((!ref || why) && o.cachedOnly) return "its reference is not finished yet";
  if (!ref || why) {
    o.log(
      `  ${tag}: reference, paper schedule τ = 0, ${o.refSamples} draws per block, seed ${REF_SEED}, --incremental ${STUDY_INCREMENTAL} (resumable from ${files.checkpoint})`,
    );
    const a = await explainPdcr(
      model,
      kase,
      { roi },
      {
        bank,
        schedule: "paper",
        tau: 0,
        samples: o.refSamples,
        seed: REF_SEED,
        incremental: STUDY_INCREMENTAL,
        checkpointPath: files.checkpoint,
      },
    );
    ref = {
      ...want,
      forwardPasses: a.forwardPasses,
      mean: a.units.map((u) => u.rawEffect),
      se: a.units.map((u) => u.stderr),
      dof: a.units.map((u) => u.dof ?? u.samples - 1),
      executor: executorOf(a),
      segcause: VERSION,
    };
    writeFileAtomicSync(files.cached, JSON.stringify(ref));
  }
  writeFileAtomicSync(files.published, `${JSON.stringify(ref)}\n`);
  return ref;
}

/** One estimator setting's run on a case: cached under a name with the executor mode (its own checkpoint too). */
async function studyRun(model: Model, bank: PatchBank, kase: Case, roi: RoiRect, tag: string, c: StudyConfig, o: StudyOptions) {
  const mode = `inc-${STUDY_INCREMENTAL}`;
  const ck = (kind: string) => join(o.cacheDir, `study-${kind}-${tag}-${mode}.ckpt.json`);
  const file = join(o.cacheDir, `study-${c.estimator}-${c.level}-${tag}-${mode}.json`);
  if (o.cachedOnly && !existsSync(file)) return undefined;
  return cached(file, async () => {
    o.log(`  ${tag}: ${c.estimator} ${c.estimator === "paper" ? `N=${c.level}` : `--map-noise ${c.level}`}`);
    const a = await explainPdcr(
      model,
      kase,
      { roi },
      {
        bank,
        seed: 0,
        incremental: STUDY_INCREMENTAL,
        ...(c.estimator === "paper"
          ? { schedule: "paper" as const, samples: c.level, checkpointPath: ck("paper") }
          : { fast: { fidelity: c.level, ...estimatorSettings(c.estimator) }, checkpointPath: ck(c.estimator) }),
      },
    );
    return { passes: a.forwardPasses, executor: executorOf(a), estimates: estimatesOf(a) };
  });
}

/** The fast schedule's settings of a fast-family estimator beyond its precision. */
function estimatorSettings(e: StudyConfig["estimator"]): Partial<AdaptiveSettings> {
  return {
    ...(e === "fast+prior" || e === "fast+prior+is" ? { prior: "zero-fill" as const } : {}),
    ...(e === "fast+split" ? { prior: "zero-fill-split" as const } : {}),
    ...(e === "fast+prior+is" ? { sampling: "importance" as const } : {}),
  };
}

export async function studyModel(modelPath: string, o: StudyOptions, configs = STUDY_CONFIGS): Promise<StudyPoint[] | string> {
  const { name, dataset } = benchModelName(modelPath);
  if (!dataset || !existsSync(join(o.dataRoot, dataset, "manifest.json"))) return `${name}: dataset ${dataset ?? "?"} not found under ${o.dataRoot}`;
  mkdirSync(o.cacheDir, { recursive: true });
  mkdirSync(o.publishDir, { recursive: true });
  const model = await Model.load(modelPath);
  try {
    const bank = await bankFor(model, dataset, o);
    const cases = await studyCases(model, o.dataRoot, dataset, o.cases);
    // Every reference first: they are the expensive part and the only one published, so a session that
    // ends early leaves as many of them as it can; the estimators' runs are cheaper and only cached.
    const withRef: { kase: Case; roi: RoiRect; ref: ReferenceMap }[] = [];
    for (const { kase, roi } of cases) {
      const ref = await studyReference(model, name, bank, kase, roi, o);
      if (typeof ref === "string") o.log(`  skipped ${name}-${kase.id}: ${ref}`);
      else withRef.push({ kase, roi, ref });
    }
    const points: StudyPoint[] = [];
    for (const { kase, roi, ref } of withRef) {
      const tag = `${name}-${kase.id}`;
      const rows: StudyPoint[] = [];
      // Highest precision first: the lower ones then find their draws in the checkpoint.
      for (const c of [...configs].sort((a, b) => (a.estimator === "paper" ? b.level - a.level : a.level - b.level))) {
        const run = await studyRun(model, bank, kase, roi, tag, c, o);
        if (run) rows.push({ ...c, model: name, caseId: kase.id, passes: run.passes, executor: run.executor, ...scoreAgainst(ref, run.estimates) });
      }
      const paper = rows.find((r) => r.estimator === "paper" && r.level === 50);
      for (const r of rows) if (paper) r.passRatio = r.passes / paper.passes;
      points.push(...rows);
    }
    return points;
  } finally {
    await model.release();
  }
}
