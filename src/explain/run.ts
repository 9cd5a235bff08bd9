/**
 * RunContext: what one explanation run needs, shared by every engine (block, coalition, RISE,
 * gradient, components): the Model, the Case, the resolved Target, the batch Runner, the seed and
 * its random streams, one way to make checkpoint keys, the resumable scorer and `finish`, which
 * assembles the Attribution with its Provenance. A sample's input must be a pure function of
 * (seed, unit, draw), so that results do not depend on the batch size or on where an interrupted
 * run resumed.
 */
import type { Case } from "../data/case.js";
import { fail } from "../errors.js";
import type { Model } from "../model/model.js";
import { Runner } from "../model/runner.js";
import { outcomeUnits } from "../target/outcome.js";
import type { Target, TargetSpec } from "../target/target.js";
import { type ProgressEvent, type ProgressListener, ProgressTracker, type WorkPlan } from "../util/progress.js";
import { hash3, randomInt, uniform } from "../util/rng.js";
import type { ScreenLoss } from "./adaptive.js";
import type { Attribution, AttributionCore, UnitResult } from "./attribution.js";
import { buildProvenance, unperturbedPass } from "./base-pass.js";
import { type Resumable, resumableEvaluate } from "./checkpoint.js";
import type { ExecutorChoice, IncrementalMode } from "./roi-executor.js";
import type { Evaluate } from "./samples.js";
import type { UnitKind } from "./units.js";

export interface RunOptions {
  seed?: number;
  batchSize?: number;
  onProgress?: ProgressListener;
  /** file where finished samples are kept; an interrupted run with the same settings resumes from it */
  checkpointPath?: string;
  /** hears the map as the fast schedule's rounds fill it in (an observer: the result is the same without it) */
  onPartialMap?: (p: PartialMap) => void;
  /** block-intervention methods: run passes on the RoI-cropped graph (roi-executor.ts); default off */
  incremental?: IncrementalMode;
  /** which incremental executor: by the multiply-add counts (default), or forced (tests, the bench) */
  incrementalExecutor?: ExecutorChoice;
  /**
   * `explain --queue`'s shard on a worker: only the units u with u % count === index are sampled; the
   * others score m(X) without a pass (their samples are another shard's, and are not returned).
   * Only the block engine's independent schedules take it (src/queue/shards.ts).
   */
  shard?: Shard;
  /** `explain --queue`'s gathering run: every sample must come from the checkpoint (a pass to run is an error) */
  replayOnly?: boolean;
  /** called when the replay lacks samples, before it fails: the gathered shards are not this run's (a rerun computes them again) */
  onReplayMiss?: () => void;
}

/** `explain --queue`'s gathering run met `missing` samples it would have to compute: the gathered shards are not this run's. */
export function replayMiss(missing: number, onReplayMiss?: () => void): never {
  onReplayMiss?.();
  fail(
    `the samples gathered from the queue's workers lack ${missing} of this map's (they were computed under other settings or by another segcause version)`,
    "run the workers with this segcause version and rerun the same command (the gathered shards are deleted, so it computes them again)",
  );
}

/** One shard of a map's units: those with unit % count === index. */
export interface Shard {
  index: number;
  count: number;
  /**
   * Set by the scorer to the `skip` of ScorerOptions (units the RoI cannot see: no pass runs): the
   * shard does not return their samples, so the gathering run skips them as a local run does and
   * counts them alike. A predicate, not the units met while scoring: a retried job resumes samples
   * from its checkpoint without scoring them again.
   */
  unreachable?: (unit: number) => boolean;
}

/** A map still being estimated: every unit with its estimate so far, and the forward passes spent (the unperturbed one included). */
export interface PartialMap {
  height: number;
  width: number;
  /** the effects' units (the outcome's) */
  valueUnits: string;
  passes: number;
  units: UnitResult[];
}

/** What scores a batch of samples: the model's Runner, or the RoI-cropped executor. */
export type PassRunner = Pick<Runner, "evaluate" | "batchSize">;

/** What decides the unperturbed input and the Target: the part every checkpoint key shares. */
export interface KeyIdentity {
  model: string;
  image: string;
  mask: string | null;
  card: unknown;
  seed: number;
  target: { roi: Target["region"]["bbox"]; kind: Target["region"]["kind"]; outcome: Target["outcome"]; ref: Target["referenceKind"] };
}

/**
 * A checkpoint key, in order: a name takes that field of the identity, an object adds the engine's
 * own fields. The order is part of the key (it is hashed as JSON), so each engine keeps its own.
 */
export type KeyLayout = readonly (keyof KeyIdentity | Record<string, unknown>)[];

/** Samples scored between checkpoint saves by a SampleScorer. */
const CHUNK = 256;

/** The fields of a result that every engine fills the same way (see `RunContext.finish`). */
export interface ResultParts {
  method: string;
  /** forward passes in all, the unperturbed one included */
  forwardPasses: number;
  backwardPasses?: number;
  /** the τ the effects were thresholded at (0: none) */
  tau: number;
  settings: Record<string, unknown>;
  intervention: Record<string, unknown>;
  /** the method's notes, after the runner's and the card's */
  notes?: string[];
  /** notes of the runner(s) that ran the passes (default: the context's runner) */
  runnerNotes?: readonly string[];
  /** batch size recorded in the provenance (default: the context's runner's) */
  batchSize?: number;
}

export interface MapParts extends ResultParts {
  unitKind: UnitKind;
  signed: boolean;
  /** default: the outcome's units */
  valueUnits?: string;
  map: Float32Array;
  /** default: NaN everywhere */
  stderrMap?: Float32Array;
  units: UnitResult[];
  roiCells: number;
  screenLoss?: ScreenLoss;
}

/**
 * What a run needs whatever its model and case are (images or volumes): the seed and its random
 * streams, progress with the run's WorkPlan, checkpoint keys over the run's identity and the
 * resumable scorer. RunContext adds the 2D model, case and Target; volume runs add theirs.
 */
export abstract class RunCore {
  readonly seed: number;
  private readonly resumables: Resumable[] = [];

  protected constructor(
    readonly run: RunOptions,
    /** execution provider of the run's sessions (a GPU's samples are kept apart in checkpoints) */
    private readonly device: string,
    readonly t0: number,
  ) {
    this.seed = run.seed ?? 0;
    this.progress = run.onProgress && ((e) => this.report(run.onProgress!, e));
  }

  private baseReported = false;

  /**
   * Forwards a stage's progress with the latest WorkPlan. The unperturbed pass (which the plans
   * count) is reported just after the first stage's first event: a display's first line then shows
   * the run's work, not a finished one-pass stage.
   */
  private report(to: ProgressListener, e: ProgressEvent): void {
    const plan = this.workPlan ? { plan: this.workPlan } : {};
    to({ ...e, ...plan });
    if (this.baseReported) return;
    this.baseReported = true;
    new ProgressTracker("unperturbed pass", 1, (b) => to({ ...b, ...plan })).add(1);
  }

  private workPlan: WorkPlan | undefined;

  /** The run's whole work as the engine now knows it: later progress events carry it. */
  readonly plan = (p: WorkPlan): void => {
    this.workPlan = p;
  };

  /** The run's progress listener, with the latest WorkPlan. */
  protected readonly progress: ProgressListener | undefined;

  /** A progress stage of this run (for engines that count their own passes, e.g. the gradient layer). */
  tracker(stage: string, total: number): ProgressTracker {
    return new ProgressTracker(stage, total, this.progress);
  }

  /** The run's whole work when it is known exactly (a total of passes, the unperturbed one included). */
  planExactly(total: number): void {
    this.plan({ total, bound: total });
  }

  /** Uniform integer in [0, n) of the seed's stream `stream` at `index`. */
  randomInt(stream: number, index: number, n: number): number {
    return randomInt(this.seed, stream, index, n);
  }

  /** Uniform in [0, 1) of the seed's stream `stream` at `index`. */
  uniform(stream: number, index: number): number {
    return uniform(this.seed, stream, index);
  }

  /** The seed of sub-stream `index` of `stream` (for draws that need many numbers). */
  hash(stream: number, index: number): number {
    return hash3(this.seed, stream, index);
  }

  /** What decides the unperturbed input and the Target, by the names a KeyLayout takes. */
  abstract get identity(): Record<keyof KeyIdentity, unknown>;

  /** The key material of a checkpoint: everything that decides the samples, in `layout`'s order. */
  checkpointKey(layout: KeyLayout): Record<string, unknown> {
    const id = this.identity;
    const out: Record<string, unknown> = {};
    for (const part of layout) {
      if (typeof part === "string") out[part] = id[part];
      else Object.assign(out, part);
    }
    // A GPU's last digits may differ from the CPU's: its samples are kept apart. CPU keys are those from before devices.
    if (this.device !== "cpu") out.device = this.device;
    return out;
  }

  /**
   * A raw evaluator made resumable under `key` (see checkpoint.ts); its checkpoint notes go into
   * the result. Engines that score on the batch runner use `scorer` instead.
   */
  resumable(raw: (r: () => Resumable) => Evaluate, key: Record<string, unknown>, o: { chunk?: number; saveEveryMs?: number } = {}): Resumable {
    let resumable: Resumable | undefined;
    const get = () => resumable!;
    resumable = resumableEvaluate(raw(get), { path: this.run.checkpointPath, key, onProgress: this.progress, ...o });
    this.resumables.push(resumable);
    return resumable;
  }

  /** What every result says about its checkpoint (samples reused, or another run's replaced). */
  get checkpointNotes(): string[] {
    return this.resumables.flatMap((r) => r.checkpoint?.notes() ?? []);
  }
}

export class RunContext extends RunCore {
  private constructor(
    readonly model: Model,
    readonly kase: Case,
    run: RunOptions,
    readonly target: Target,
    /** the unperturbed model input (CHW) */
    readonly base: Float32Array,
    /** the model's raw output for it (one batch slot) */
    readonly baseOutput: Float32Array,
    private readonly batchRunner: Runner | undefined,
    t0: number,
  ) {
    super(run, model.device, t0);
  }

  /**
   * Runs the unperturbed input once (m(X), and the reference when explaining the prediction)
   * through `runner` (default: a Runner at the run's batch size). `t0` is when the run began.
   */
  static async open(model: Model, kase: Case, spec: TargetSpec, run: RunOptions = {}, o: { runner?: Runner; t0?: number } = {}): Promise<RunContext> {
    const t0 = o.t0 ?? Date.now();
    const runner = o.runner ?? new Runner(model, { batchSize: run.batchSize });
    const { input, output, target } = await unperturbedPass(model, kase, spec, runner);
    return new RunContext(model, kase, run, target, input, output, runner, t0);
  }

  /** A context for an engine that ran the unperturbed pass on its own sessions (components). */
  static fromBase(
    model: Model,
    kase: Case,
    run: RunOptions,
    base: { input: Float32Array; output: Float32Array; target: Target },
    t0: number,
  ): RunContext {
    return new RunContext(model, kase, run, base.target, base.input, base.output, undefined, t0);
  }

  get runner(): Runner {
    if (!this.batchRunner) throw new Error("internal: this run has no batch runner");
    return this.batchRunner;
  }

  get identity(): KeyIdentity {
    const { model, kase, target } = this;
    return {
      model: model.sha256,
      image: kase.imageSha256,
      mask: kase.maskSha256 ?? null,
      card: model.card,
      seed: this.seed,
      target: { roi: target.region.bbox, kind: target.region.kind, outcome: target.outcome, ref: target.referenceKind },
    };
  }

  /**
   * Scores numbered samples on the batch runner: `write(unit, draw, dst)` fills a model input that
   * already holds the unperturbed image; the scores are checkpointed under `key`.
   */
  scorer(key: Record<string, unknown>, write: (unit: number, draw: number, dst: Float32Array) => void, o: ScorerOptions = {}): SampleScorer {
    return new SampleScorer(this, key, write, o);
  }

  /** The fields every result shares, with the Provenance. */
  finishCore(p: ResultParts): AttributionCore {
    const { model, kase, target } = this;
    const notes = [
      ...(p.runnerNotes ?? this.batchRunner?.notes ?? []),
      ...model.resolved.assumptions.map((a) => `assumed: ${a}`),
      ...(p.notes ?? []),
      ...this.checkpointNotes,
      ...(kase.notes ?? []),
    ];
    const provenance = buildProvenance(model, kase, target, {
      method: p.method,
      seed: this.seed,
      settings: p.settings,
      intervention: p.intervention,
      batchSize: p.batchSize ?? this.runner.batchSize,
    });
    return {
      method: p.method,
      valueUnits: outcomeUnits(target.outcome),
      baseOutcome: target.base,
      outcome: target.outcome,
      reference: target.referenceKind,
      roi: target.region.bbox,
      region: target.region,
      tau: p.tau,
      forwardPasses: p.forwardPasses,
      backwardPasses: p.backwardPasses ?? 0,
      wallMs: Date.now() - this.t0,
      notes,
      provenance,
    };
  }

  /** The Attribution of a map. */
  finish(p: MapParts): Attribution {
    const { model } = this;
    const core = this.finishCore(p);
    return {
      ...core,
      unitKind: p.unitKind,
      valueUnits: p.valueUnits ?? core.valueUnits,
      signed: p.signed,
      height: model.height,
      width: model.width,
      map: p.map,
      stderrMap: p.stderrMap ?? new Float32Array(model.height * model.width).fill(Number.NaN),
      units: p.units,
      roiCells: p.roiCells,
      ...(p.screenLoss ? { screenLoss: p.screenLoss } : {}),
    };
  }
}

export interface ScorerOptions {
  chunk?: number;
  /** runs the passes instead of the context's runner (the RoI-cropped executor) */
  runner?: PassRunner;
  /** units whose intervention cannot move the RoI's outputs: their samples are m(X) exactly, and no pass runs */
  skip?: (unit: number) => boolean;
}

/** Scores numbered samples on the run's batch runner, checkpointed, with progress (see `RunContext.scorer`). */
export class SampleScorer {
  private readonly resumable: Resumable;
  /** passes actually run and their time (not samples resumed from a checkpoint): the rate a time budget uses */
  ranPasses = 0;
  ranMs = 0;
  /** samples of skipped units (no pass run) */
  skippedPasses = 0;

  constructor(ctx: RunContext, key: Record<string, unknown>, write: (unit: number, draw: number, dst: Float32Array) => void, o: ScorerOptions) {
    const { base, target } = ctx;
    const runner = o.runner ?? ctx.runner;
    const { shard, replayOnly } = ctx.run;
    // a shard's run scores the other shards' units as m(X), without a pass (those samples are never returned)
    const skip = shard ? (u: number) => u % shard.count !== shard.index || (o.skip?.(u) ?? false) : o.skip;
    if (shard && o.skip) shard.unreachable = o.skip;
    this.resumable = ctx.resumable(
      (resumable) => async (all) => {
        const scores = new Float64Array(all.length);
        const reqs = skip ? all.filter((r) => !skip(r.unit)) : all;
        if (reqs.length < all.length)
          all.forEach((r, i) => {
            if (!skip!(r.unit)) return;
            scores[i] = target.base;
            resumable().finished(r, target.base);
            this.skippedPasses++;
          });
        if (replayOnly && reqs.length > 0) replayMiss(reqs.length, ctx.run.onReplayMiss);
        const started = Date.now();
        const ran = await runner.evaluate(
          reqs,
          (r, dst) => {
            dst.set(base);
            write(r.unit, r.draw, dst);
          },
          // Recorded as its batch finishes: an interruption keeps every finished batch.
          (data, slot, r) => {
            const v = target.score(data, slot);
            resumable().finished(r, v);
            return v;
          },
        );
        this.ranPasses += reqs.length;
        this.ranMs += Date.now() - started;
        if (reqs.length === all.length) return ran;
        let k = 0;
        all.forEach((r, i) => {
          if (!skip!(r.unit)) scores[i] = ran[k++];
        });
        return scores;
      },
      key,
      { chunk: o.chunk ?? CHUNK },
    );
  }

  /** Scores requests in order (the resumable evaluator, for estimators that choose their own). */
  get evaluate(): Evaluate {
    return this.resumable.evaluate;
  }

  /** Scores samples `draws` of `unit`, in order, and saves the checkpoint; one progress stage per call. */
  async score(unit: number, draws: readonly number[], stage: string): Promise<Float64Array> {
    const out = await this.resumable.evaluate(
      draws.map((draw) => ({ unit, draw })),
      stage,
    );
    await this.save();
    return out;
  }

  async save(): Promise<void> {
    await this.resumable.checkpoint?.save();
  }
}
