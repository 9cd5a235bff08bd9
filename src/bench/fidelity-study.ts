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
 * finished references are also written as small JSON files to `publishDir`.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Case } from "../data/case.js";
import { loadCase } from "../data/case.js";
import { casesInSplits, readManifest } from "../data/manifest.js";
import { spearman } from "../evaluate/map-metrics.js";
import type { Attribution } from "../explain/attribution.js";
import { explainPdcr } from "../explain/pdcr.js";
import { Model } from "../model/model.js";
import type { RoiRect } from "../target/roi.js";
import { t975 } from "../util/tdist.js";
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
}

/** One estimator setting: a point of a passes curve. */
export interface StudyConfig {
  estimator: "paper" | "fast" | "fast+prior" | "fast+prior+is";
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
}

export interface StudyPoint extends StudyConfig {
  model: string;
  caseId: string;
  passes: number;
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

function cached<T>(path: string, make: () => Promise<T>): Promise<T> {
  if (existsSync(path)) return Promise.resolve(JSON.parse(readFileSync(path, "utf8")) as T);
  return make().then((v) => (writeFileSync(path, JSON.stringify(v)), v));
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
    const points: StudyPoint[] = [];
    for (const { kase, roi } of cases) {
      const tag = `${name}-${kase.id}`;
      const target = { roi };
      const refFile = `study-ref-${tag}-${o.refSamples}.json`;
      const ref = await cached(join(o.cacheDir, refFile), async () => {
        o.log(`  ${tag}: reference, paper schedule τ = 0, ${o.refSamples} draws per block, seed ${REF_SEED} (resumable)`);
        const a = await explainPdcr(model, kase, target, {
          bank,
          schedule: "paper",
          tau: 0,
          samples: o.refSamples,
          seed: REF_SEED,
          checkpointPath: join(o.cacheDir, `study-ref-${tag}-${o.refSamples}.ckpt.json`),
        });
        const r: ReferenceMap = {
          model: name,
          caseId: kase.id,
          roi,
          samples: o.refSamples,
          seed: REF_SEED,
          forwardPasses: a.forwardPasses,
          mean: a.units.map((u) => u.rawEffect),
          se: a.units.map((u) => u.stderr),
          dof: a.units.map((u) => u.dof ?? u.samples - 1),
        };
        return r;
      });
      if (!existsSync(join(o.publishDir, refFile))) writeFileSync(join(o.publishDir, refFile), `${JSON.stringify(ref)}\n`);
      const ck = (kind: string) => join(o.cacheDir, `study-${kind}-${tag}.ckpt.json`);
      const rows: StudyPoint[] = [];
      // Highest precision first: the lower ones then find their draws in the checkpoint.
      for (const c of [...configs].sort((a, b) => (a.estimator === "paper" ? b.level - a.level : a.level - b.level))) {
        const file = join(o.cacheDir, `study-${c.estimator}-${c.level}-${tag}.json`);
        const run = await cached(file, async () => {
          o.log(`  ${tag}: ${c.estimator} ${c.estimator === "paper" ? `N=${c.level}` : `--map-noise ${c.level}`}`);
          const a = await explainPdcr(model, kase, target, {
            bank,
            seed: 0,
            ...(c.estimator === "paper"
              ? { schedule: "paper" as const, samples: c.level, checkpointPath: ck("paper") }
              : {
                  fast: {
                    fidelity: c.level,
                    ...(c.estimator !== "fast" ? { prior: "zero-fill" as const } : {}),
                    ...(c.estimator === "fast+prior+is" ? { sampling: "importance" as const } : {}),
                  },
                  checkpointPath: ck(c.estimator),
                }),
          });
          return { passes: a.forwardPasses, estimates: estimatesOf(a) };
        });
        rows.push({ ...c, model: name, caseId: kase.id, passes: run.passes, ...scoreAgainst(ref, run.estimates) });
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
