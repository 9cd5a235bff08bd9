/**
 * Calibration of the fast schedule's uncertainty on a shipped model: are its 95% intervals right,
 * and does its stopping rule deliver the Pearson it promises? The reference is the paper schedule
 * with τ = 0 (so every block passes the screen) and `refSamples` uniform draws per block: its block
 * means estimate the exact ATEs, with standard errors of their own that the comparison accounts for.
 * Every run is cached under the cache folder (the reference with a checkpoint), so an interrupted
 * calibration resumes where it stopped.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { explainPdcr, FAST_REVISION } from "../explain/pdcr.js";
import { t975 } from "../util/tdist.js";
import { bankFor, openBenchCase, pearson } from "./fidelity.js";

export interface CalibrationOptions {
  dataRoot: string;
  cacheDir: string;
  /** draws per block of the reference */
  refSamples: number;
  /** block size in pixels (the bank is built at this patch size) */
  block: number;
  seeds: number;
  /** --map-noise values to calibrate */
  mapNoise: number[];
  log: (s: string) => void;
}

interface BlockRun {
  effect: number[];
  raw: number[];
  se: number[];
  dof: number[];
  passing: boolean[];
  forwardPasses: number;
}

export interface CalibrationRow {
  model: string;
  caseId: string;
  block: number;
  mapNoise: number;
  seeds: number;
  referencePasses: number;
  /** mean forward passes of the fast runs */
  fastPasses: number;
  /** intervals compared (passing blocks over all seeds) */
  intervals: number;
  /** standard errors of exactly 0 among them */
  zeroSe: number;
  /** share of fast 95% intervals that cover the reference mean (reference noise makes this a slight underestimate) */
  coverage: number;
  /** share with |z| <= t975(dof), z = (fast − ref) / sqrt(SE_fast² + SE_ref²): coverage with the reference's noise accounted for */
  coverageNoiseAware: number;
  /** sd of z (1 for honest standard errors) */
  zSd: number;
  /** the reference's SE relative to the fast SE (root mean square over the intervals) */
  refSeRatio: number;
  /** Pearson of the fast map (passing blocks' means, 0 elsewhere) with the reference means: mean, min over seeds */
  pearsonMean: number;
  pearsonMin: number;
  /** the same, corrected for the reference's own noise (attenuation: r / sqrt(reliability of the reference)) */
  pearsonCorrected: number;
  /** the Pearson the stopping rule promises, 1/sqrt(1 + mapNoise²) */
  promised: number;
}

function loadOr<T>(path: string, make: () => Promise<T>): Promise<T> {
  if (existsSync(path)) return Promise.resolve(JSON.parse(readFileSync(path, "utf8")) as T);
  return make().then((v) => (writeFileSync(path, JSON.stringify(v)), v));
}

export async function calibrationForModel(modelPath: string, o: CalibrationOptions): Promise<CalibrationRow[] | string> {
  const opened = await openBenchCase(modelPath, o);
  if (typeof opened === "string") return opened;
  const { name, dataset, model, kase, roi } = opened;
  try {
    const bank = await bankFor(model, dataset, o, o.block);
    const base = { bank, blockSize: o.block };
    const tag = `${name}-b${o.block}`;
    const fastTag = `${tag}-r${FAST_REVISION}`;
    const toRun = (a: Awaited<ReturnType<typeof explainPdcr>>): BlockRun => ({
      effect: a.units.map((u) => u.effect),
      raw: a.units.map((u) => u.rawEffect),
      se: a.units.map((u) => u.stderr),
      dof: a.units.map((u) => u.dof ?? u.samples - 1),
      passing: a.units.map((u) => u.status !== "screened-out"),
      forwardPasses: a.forwardPasses,
    });
    const ref = await loadOr(join(o.cacheDir, `calib-ref-${tag}-${o.refSamples}.json`), async () => {
      o.log(
        `  ${name}: reference, ${o.refSamples} uniform draws per ${o.block} px block on ${kase.id}, RoI ${roi.row},${roi.col} ${roi.height}px (resumable)`,
      );
      return toRun(
        await explainPdcr(
          model,
          kase,
          { roi },
          {
            ...base,
            schedule: "paper",
            tau: 0,
            samples: o.refSamples,
            checkpointPath: join(o.cacheDir, `calib-ref-${tag}-${o.refSamples}.ckpt.json`),
          },
        ),
      );
    });
    const rows: CalibrationRow[] = [];
    for (const f of o.mapNoise) {
      const runs: BlockRun[] = [];
      for (let seed = 0; seed < o.seeds; seed++) {
        runs.push(
          await loadOr(join(o.cacheDir, `calib-fast-${fastTag}-f${f}-s${seed}.json`), async () => {
            o.log(`  ${name}: fast schedule, --map-noise ${f}, seed ${seed}`);
            return toRun(
              await explainPdcr(
                model,
                kase,
                { roi },
                { ...base, seed, fast: { fidelity: f }, checkpointPath: join(o.cacheDir, `calib-fast-${fastTag}-f${f}-s${seed}.ckpt.json`) },
              ),
            );
          }),
        );
      }
      rows.push(summarise(name, kase.id, o.block, f, ref, runs));
    }
    return rows;
  } finally {
    await model.release();
  }
}

export function summarise(model: string, caseId: string, block: number, mapNoise: number, ref: BlockRun, runs: BlockRun[]): CalibrationRow {
  const z: number[] = [];
  let covered = 0,
    coveredZ = 0,
    zeroSe = 0,
    ratio2 = 0;
  const pearsons: number[] = [];
  // Reliability of the reference map: the share of its spread that is not its own noise.
  const n = ref.raw.length;
  const refMean = ref.raw.reduce((a, b) => a + b, 0) / n;
  const refSpread = ref.raw.reduce((a, b) => a + (b - refMean) ** 2, 0);
  const refNoise = ref.se.reduce((a, s) => a + s * s, 0);
  const reliability = Math.max(1e-9, 1 - refNoise / refSpread);
  for (const r of runs) {
    r.raw.forEach((x, i) => {
      if (!r.passing[i]) return;
      const q = t975(r.dof[i]);
      if (r.se[i] === 0) zeroSe++;
      if (Math.abs(x - ref.raw[i]) <= q * r.se[i]) covered++;
      const zi = (x - ref.raw[i]) / Math.sqrt(r.se[i] ** 2 + ref.se[i] ** 2);
      z.push(zi);
      if (Math.abs(zi) <= q) coveredZ++;
      ratio2 += r.se[i] > 0 ? (ref.se[i] / r.se[i]) ** 2 : 0;
    });
    pearsons.push(
      pearson(
        r.raw.map((x, i) => (r.passing[i] ? x : 0)),
        ref.raw,
      ),
    );
  }
  const k = z.length;
  const zm = z.reduce((a, b) => a + b, 0) / k;
  const pm = pearsons.reduce((a, b) => a + b, 0) / pearsons.length;
  return {
    model,
    caseId,
    block,
    mapNoise,
    seeds: runs.length,
    referencePasses: ref.forwardPasses,
    fastPasses: runs.reduce((a, r) => a + r.forwardPasses, 0) / runs.length,
    intervals: k,
    zeroSe,
    coverage: covered / k,
    coverageNoiseAware: coveredZ / k,
    zSd: Math.sqrt(z.reduce((a, b) => a + (b - zm) ** 2, 0) / (k - 1)),
    refSeRatio: Math.sqrt(ratio2 / k),
    pearsonMean: pm,
    pearsonMin: Math.min(...pearsons),
    pearsonCorrected: pm / Math.sqrt(reliability),
    promised: 1 / Math.sqrt(1 + mapNoise * mapNoise),
  };
}
