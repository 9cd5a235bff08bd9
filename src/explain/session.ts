/**
 * The plumbing every sampling method shares, as small helpers: the unperturbed pass that resolves
 * the Target and the provenance (base-pass.ts), checkpointed and progress-reported scoring of
 * numbered samples, and the Attribution. A sample's input must be a pure function of (seed, sample number), so that results
 * do not depend on the batch size or on where an interrupted run resumed.
 */
import type { Case } from "../data/case.js";
import type { Model } from "../model/model.js";
import { Runner } from "../model/runner.js";
import { outcomeUnits } from "../target/outcome.js";
import type { Target, TargetSpec } from "../target/target.js";
import type { Attribution } from "./attribution.js";
import { buildProvenance, unperturbedPass } from "./base-pass.js";
import type { RunOptions } from "./block-effects.js";
import { resumableEvaluate, type Resumable } from "./checkpoint.js";
import type { Evaluate } from "./samples.js";

export interface Session {
  model: Model;
  kase: Case;
  run: RunOptions;
  seed: number;
  runner: Runner;
  /** the unperturbed model input (CHW) */
  base: Float32Array;
  target: Target;
  t0: number;
}

/** Runs the unperturbed input once (m(X), and the reference when explaining the prediction). */
export async function openSession(model: Model, kase: Case, targetSpec: TargetSpec, run: RunOptions = {}): Promise<Session> {
  const t0 = Date.now();
  const runner = new Runner(model, { batchSize: run.batchSize });
  const { input, target } = await unperturbedPass(model, kase, targetSpec, runner);
  return { model, kase, run, seed: run.seed ?? 0, runner, base: input, target, t0 };
}

/** Samples scored between checkpoint saves. */
const CHUNK = 256;

/**
 * Scores numbered samples of one or more streams with a checkpoint (keyed by everything that
 * decides the samples) and progress reporting. `write(stream, index, dst)` fills a model input
 * that already holds the unperturbed image.
 */
export class SampleScorer {
  private readonly resumable: Resumable;

  constructor(
    s: Session,
    keyMaterial: Record<string, unknown>,
    private readonly write: (stream: number, index: number, dst: Float32Array) => void,
  ) {
    const { model, kase, target, seed, run, runner, base } = s;
    const key = {
      model: model.sha256, image: kase.imageSha256, mask: kase.maskSha256 ?? null, card: model.card, seed,
      target: { roi: target.region.bbox, kind: target.region.kind, outcome: target.outcome, ref: target.referenceKind },
      ...keyMaterial,
    };
    const raw: Evaluate = async (rs) => {
      // Recorded as its batch finishes: an interruption keeps every finished batch.
      return runner.evaluate(rs, (r, dst) => { dst.set(base); this.write(r.unit, r.draw, dst); }, (data, slot, r) => {
        const v = target.score(data, slot);
        this.resumable.finished(r, v);
        return v;
      });
    };
    this.resumable = resumableEvaluate(raw, { path: run.checkpointPath, key, onProgress: run.onProgress, chunk: CHUNK });
  }

  /** what the result should say about the checkpoint (samples reused, or another run's replaced) */
  get checkpointNotes(): string[] {
    return this.resumable.checkpoint?.notes() ?? [];
  }

  /** Scores samples `indices` of `stream`, in order; one progress stage per call. */
  async score(stream: number, indices: readonly number[], stage: string): Promise<Float64Array> {
    const out = await this.resumable.evaluate(indices.map((draw) => ({ unit: stream, draw })), stage);
    await this.resumable.checkpoint?.save();
    return out;
  }
}

export interface AttributionParts {
  method: string;
  unitKind: Attribution["unitKind"];
  signed: boolean;
  map: Float32Array;
  stderrMap: Float32Array;
  units: Attribution["units"];
  roiCells: number;
  /** forward passes beyond the unperturbed one */
  passes: number;
  settings: Record<string, unknown>;
  intervention: Record<string, unknown>;
  notes?: string[];
  checkpointNotes?: string[];
}

export function finishAttribution(s: Session, p: AttributionParts): Attribution {
  const { model, kase, target, runner } = s;
  const notes = [...runner.notes, ...model.resolved.assumptions.map((a) => `assumed: ${a}`), ...(p.notes ?? [])];
  notes.push(...(p.checkpointNotes ?? []));
  const provenance = buildProvenance(model, kase, target, { method: p.method, seed: s.seed, settings: p.settings, intervention: p.intervention, batchSize: runner.batchSize });
  return {
    method: p.method,
    unitKind: p.unitKind,
    valueUnits: outcomeUnits(target.outcome),
    signed: p.signed,
    height: model.height,
    width: model.width,
    map: p.map,
    stderrMap: p.stderrMap,
    units: p.units,
    baseOutcome: target.base,
    outcome: target.outcome,
    reference: target.referenceKind,
    roi: target.region.bbox,
    roiCells: p.roiCells,
    forwardPasses: 1 + p.passes,
    backwardPasses: 0,
    wallMs: Date.now() - s.t0,
    notes,
    provenance,
  };
}
