/**
 * The gradient layer: a gradient graph of the model (src/onnx/gradient.ts) in its own ONNX Runtime
 * session, batched by the batch runner (model/batches.ts), and the scaffolding every gradient method shares.
 *
 * What is differentiated. The RoI score is
 *
 *     S(x) = Σ_{p ∈ RoI} prob_c(x)[p]
 *
 * the class probability (card channel c) summed over the RoI's pixels — Seg-Grad-CAM's target
 * (`y = Σ_{(i,j)∈M} out(i,j)`, pytorch-grad-cam's `SemanticSegmentationTarget`) with M = the RoI,
 * used by every gradient method. The seed fed to the gradient graph (dS/d output) is therefore the
 * RoI mask on channel c. For a card with `kind: logits` a Sigmoid (one channel) or Softmax over the
 * channels is appended to the graph before differentiation, so S is always a sum of probabilities
 * (the score the other methods threshold), never of raw logits.
 *
 * Where. Gradients are taken w.r.t. the model input tensor, i.e. after the card's preprocessing
 * `(pixel / scale − mean) / std`; maps are per model-input pixel, reduced over channels by each
 * method (max |·| for saliency-like maps, sum for attributions that add up to a score difference).
 *
 * Cost. One gradient-graph evaluation = one forward + one backward pass of one input (DeepLIFT:
 * two forward passes, image and reference, and one backward pass). Inputs are
 * pushed in fixed-size batches (tail padded with copies, as the Runner does), but a call with fewer
 * inputs than the batch size runs at its own size, so a one-input method costs one pass.
 */
import { clone, create, fromBinary } from "@bufbuild/protobuf";
import {
  AttributeProto_AttributeType,
  AttributeProtoSchema,
  type ModelProto,
  ModelProtoSchema,
  NodeProtoSchema,
  ValueInfoProtoSchema,
} from "onnx-buf";
import type { Case } from "../data/case.js";
import { fail } from "../errors.js";
import { BatchRunner } from "../model/batches.js";
import type { Differentiable } from "../model/differentiable.js";
import type { Model } from "../model/model.js";
import { batchSizeOf, DEFAULT_BATCH_SIZE, type InputWriter, type OutputReader, Runner } from "../model/runner.js";
import { Sessions } from "../model/runtime.js";
import { buildGradientModel, GRADIENT_OPSET, type GradientModel } from "../onnx/gradient/index.js";
import { withInputSize } from "../onnx/graph.js";
import { upgradeOpset } from "../onnx/opset.js";
import { makeProbability } from "../target/outcome.js";
import type { Target, TargetSpec } from "../target/target.js";
import { getOrInsert } from "../util/maps.js";
import type { ProgressTracker, WorkPlan } from "../util/progress.js";
import type { Attribution } from "./attribution.js";
import { FillIntervention, type FillKind } from "./interventions.js";
import { fillOptions } from "./options.js";
import { RunContext, type RunOptions } from "./run.js";

export type GradientRule = "gradient" | "guided" | "deeplift";

export interface GradientSessionOptions {
  /** backward rule at nonlinearities (default plain "gradient") */
  rule?: GradientRule;
  /** intermediate tensors whose gradient and value are also returned (Grad-CAM) */
  layers?: string[];
  /** inputs per call (default 8; forced to the graph's batch size when that is fixed) */
  batchSize?: number;
  /**
   * ONNX Runtime graph optimisation level of the gradient session (default "extended"). Measured on
   * the zoo's U-Net: "extended" reproduces the unoptimised graph's gradients exactly, while "all"
   * (the NCHWc layout rewrite the Model's session uses) moved the input gradient by up to 2% of its
   * largest value (ReLU masks and MaxPool argmaxes flip under the changed rounding); the speed of
   * the two levels was the same.
   */
  optimization?: "disabled" | "basic" | "extended" | "all";
}

/** What the writer fills for one input: the model input, and the seed dL/d(output). */
export interface GradientFeed {
  /** model input, CHW */
  input: Float32Array;
  /** dL/d(probabilities), same layout as one output item [C, H, W]; zero-filled before each write */
  seed: Float32Array;
  /** DeepLIFT reference input (rule "deeplift" only), CHW */
  reference?: Float32Array;
}

/** Results for one input; views into ONNX Runtime's buffers, valid during the callback only. */
export interface GradientSlot {
  /** the model's class probabilities for this input, [C, H, W] (card semantics applied) */
  output: Float32Array;
  /** dL/d(input) (or DeepLIFT multipliers), CHW */
  inputGrad: Float32Array;
  /** dL/d(layer) and the layer's value, [K, h, w] */
  layerGrad(name: string): Float32Array;
  activation(name: string): Float32Array;
}

export type GradientWriter<T> = (item: T, feed: GradientFeed) => void;
export type GradientReader<T> = (slot: GradientSlot, item: T, index: number) => void;

const OPT_LEVEL = "extended" as const;

/** Appends a Sigmoid (per channel) or a Softmax (over channels) after a logit output. */
function withProbabilities(proto: ModelProto, output: string, activation: "sigmoid" | "softmax"): { proto: ModelProto; output: string } {
  // Raise the opset first: below 13 the appended Softmax(axis=1) would flatten C x H x W into one
  // distribution (opset 11's meaning), and upgrading afterwards would keep that meaning.
  const m = clone(ModelProtoSchema, upgradeOpset(proto, GRADIENT_OPSET));
  const g = m.graph!;
  const prob = `${output}__segcause_prob`;
  g.node.push(
    create(NodeProtoSchema, {
      name: "/segcause/probabilities",
      opType: activation === "sigmoid" ? "Sigmoid" : "Softmax",
      input: [output],
      output: [prob],
      attribute: activation === "sigmoid" ? [] : [create(AttributeProtoSchema, { name: "axis", type: AttributeProto_AttributeType.INT, i: 1n })],
    }),
  );
  const vi = g.output.find((o) => o.name === output);
  const nvi = vi ? clone(ValueInfoProtoSchema, vi) : create(ValueInfoProtoSchema, {});
  nvi.name = prob;
  g.output = [...g.output.filter((o) => o.name !== output), nvi];
  return { proto: m, output: prob };
}

/**
 * What a method's body drives: a GradientSession, or one run through sliding windows
 * (volume/window-gradients.ts). Items are whole model inputs; the passes are model passes.
 */
export interface GradientRunner {
  readonly rule: GradientRule;
  readonly batchSize: number;
  readonly notes: string[];
  readonly forwardPasses: number;
  readonly backwardPasses: number;
  /** hears every model pass (forward or forward/backward), for the run's progress */
  onEvaluated?: (n: number) => void;
  run<T>(items: readonly T[], write: GradientWriter<T>, read: GradientReader<T>, onBatch?: (n: number) => void): Promise<void>;
  release(): Promise<void>;
}

/**
 * One gradient graph of a model (2D or 3D: any Differentiable) in its own ONNX Runtime session (as
 * many intra-op threads as the model's sessions have together), driven by the batch runner. Counts
 * real (non-padding) inputs as forward and backward passes.
 */
export class GradientSession implements GradientRunner {
  forwardPasses = 0;
  backwardPasses = 0;
  /** hears every input evaluated (forward and backward), for the run's progress */
  onEvaluated?: (n: number) => void;
  readonly notes: string[] = [];
  private readonly inputDims: number[];
  private readonly seedDims: number[];
  private readonly runner: BatchRunner;
  private readonly fetches: string[];

  private constructor(
    readonly model: Differentiable,
    readonly graph: GradientModel,
    readonly sessions: Sessions,
    readonly batchSize: number,
    readonly fixedBatch: boolean,
    readonly rule: GradientRule,
    readonly layers: string[],
  ) {
    this.inputDims = model.inputDims;
    this.seedDims = model.outputDims;
    const gIn = graph.gradients[model.inputName];
    if (!gIn) throw new Error(`internal: the gradient graph has no gradient for ${model.inputName}`);
    this.fetches = [graph.output, gIn];
    for (const l of layers) this.fetches.push(graph.gradients[l], graph.activations[l]);
    if (rule === "deeplift" && !graph.referenceInput) throw new Error("internal: the deeplift graph has no reference input");
    this.runner = new BatchRunner(sessions, {
      // Padding: copies of the last real input (and reference) with a zero seed: no gradient, outputs ignored.
      feeds: [
        { name: graph.input, dims: this.inputDims },
        { name: graph.seedInput, dims: this.seedDims, init: "zero" },
        ...(rule === "deeplift" ? [{ name: graph.referenceInput!, dims: this.inputDims }] : []),
      ],
      fetches: this.fetches,
      batchSize,
      // A call with fewer inputs than the batch size runs at its own size, so a one-input method costs one pass.
      shrink: !fixedBatch,
      failed: (e) =>
        fail(
          `ONNX Runtime failed to run the ${rule} graph of ${model.path}: ${(e as Error).message.split("\n")[0]}`,
          "report this model to the segcause authors; perturbation methods still work",
        ),
    });
  }

  /** Builds the gradient graph of `model` (its input fixed at the model's input size). */
  static async create(model: Differentiable, opts: GradientSessionOptions = {}): Promise<GradientSession> {
    const rule = opts.rule ?? "gradient";
    const layers = opts.layers ?? [];
    let proto = withInputSize(model.proto(), model.inputName, model.inputDims);
    let output = model.outputName;
    if (model.activation !== "none") ({ proto, output } = withProbabilities(proto, output, model.activation));
    let gm: GradientModel;
    try {
      gm = buildGradientModel(proto, { output, wrt: [model.inputName, ...layers], rule });
    } catch (e) {
      if ((e as Error).name === "SegcauseError") throw e;
      fail(
        `cannot build the ${rule} graph of ${model.path}: ${(e as Error).message.split("\n")[0]}`,
        "this model uses an operator the gradient builder does not support; use a perturbation method (occlusion, pdcr)",
      );
    }
    const gproto = fromBinary(ModelProtoSchema, gm.bytes);
    const inVi = gproto.graph!.input.find((i) => i.name === gm.input);
    const d0 = inVi?.type?.value.case === "tensorType" ? inVi.type.value.value.shape?.dim[0]?.value : undefined;
    const fixed = d0?.case === "dimValue" ? Number(d0.value) : undefined;
    const requested = opts.batchSize ?? DEFAULT_BATCH_SIZE;
    const batchSize = batchSizeOf(fixed, requested);
    let sessions: Sessions;
    try {
      sessions = await Sessions.open(gm.bytes, {
        threads: model.gradientThreads,
        optimization: opts.optimization ?? OPT_LEVEL,
        device: model.device,
      });
    } catch (e) {
      if ((e as Error).name === "SegcauseError") throw e;
      fail(
        `ONNX Runtime cannot load the ${rule} graph of ${model.path}: ${(e as Error).message.split("\n")[0]}`,
        "report this model to the segcause authors; perturbation methods still work",
      );
    }
    const s = new GradientSession(model, gm, sessions, batchSize, fixed !== undefined, rule, layers);
    if (fixed !== undefined && fixed !== requested)
      s.notes.push(`the gradient graph's batch dimension is fixed at ${fixed}, so it runs ${fixed} input(s) per call`);
    return s;
  }

  /**
   * Evaluates every item: `write` fills the input and seed of a batch slot, `read` receives the
   * slot's output and gradients. Items are processed in order, in batches of `batchSize`.
   */
  async run<T>(items: readonly T[], write: GradientWriter<T>, read: GradientReader<T>, onBatch?: (n: number) => void): Promise<void> {
    const B = this.runner.batchFor(items.length);
    const inSize = this.inputDims.reduce((a, b) => a * b, 1);
    const seedSize = this.seedDims.reduce((a, b) => a * b, 1);
    const [output, gIn] = this.fetches;
    const deeplift = this.rule === "deeplift";
    const ofSlot = (d: Float32Array, j: number) => d.subarray((j * d.length) / B, ((j + 1) * d.length) / B);
    await this.runner.run(
      items,
      (item, [input, seed, reference]) => write(item, { input, seed, reference }),
      (result, j, item, index) => {
        const slot: GradientSlot = {
          output: (result[output].data as Float32Array).subarray(j * seedSize, (j + 1) * seedSize),
          inputGrad: (result[gIn].data as Float32Array).subarray(j * inSize, (j + 1) * inSize),
          layerGrad: (name) => ofSlot(result[this.graph.gradients[name]].data as Float32Array, j),
          activation: (name) => ofSlot(result[this.graph.activations[name]].data as Float32Array, j),
        };
        read(slot, item, index);
      },
      (n) => {
        // DeepLIFT graphs run the forward pass of the image and of its reference.
        this.forwardPasses += deeplift ? 2 * n : n;
        this.backwardPasses += n;
        this.onEvaluated?.(n);
        onBatch?.(n);
      },
    );
  }

  async release(): Promise<void> {
    await this.sessions.release();
  }
}

/** What every gradient method's body reads, on an image or a volume alike. */
export interface GradientCore {
  seed: number;
  /** the unperturbed model input x, [C, ...spatial] */
  input: Float32Array;
  /** input channels C and cells per channel (H·W, or D·H·W) */
  channels: number;
  plane: number;
  /** S(x) = Σ_RoI prob */
  baseScore: number;
  /** dS/d(prob): the RoI mask on the card's channel, shaped like one output */
  roiSeed: Float32Array;
  /** S from a gradient slot's output (probabilities) */
  scoreOfProb(prob: Float32Array): number;
  /** S of plain model inputs (forward passes only), one per input */
  forwardScores(inputs: Float32Array[]): Promise<number[]>;
  /** a gradient session, released when the method ends; counted in the Attribution */
  session(opts?: Omit<GradientSessionOptions, "batchSize"> & { batchSize?: number }): Promise<GradientRunner>;
  /**
   * Model passes one evaluation costs, for plans: a forward pass of one input (`forwardScores`) and a
   * gradient of one input (`session`). 1 and 1, except through sliding windows (one per window run).
   */
  passes: { forward: number; gradient: number };
  /**
   * Names the progress stage of the evaluations that follow (`total` of them, as far as known).
   * Every evaluation is counted on its own: a forward pass or a forward/backward pass of one input.
   */
  stage(name: string, total: number): void;
  /**
   * The run's evaluations, the unperturbed pass included: `total` when known (exact when no
   * `bound` is given), and the worst case `bound` (alone: the total is not known yet).
   */
  plan(total: number | undefined, bound?: number): void;
  batchSize: number;
}

/** Everything a gradient method needs on an image, prepared by `explainGradient`. */
export interface GradientEnv extends GradientCore {
  model: Model;
  kase: Case;
  target: Target;
  /** the model's raw output for x */
  baseOutput: Float32Array;
  /**
   * Plain forward passes of the model, counted: batches of at most the batch size, a call with
   * fewer items runs at its own size (no padding to a full batch for one input).
   */
  forward<T>(items: readonly T[], write: InputWriter<T>, read: OutputReader<T>): Promise<Float64Array>;
  /** class probability at pixel p of batch slot `slot` of a raw model output (card semantics) */
  probAt(data: Float32Array, slot: number, p: number): number;
}

/**
 * The RoI score S over output cells `cells` (flat spatial indices) of the class channel: the seed
 * dS/d(prob), S of a probability output, and S of a raw output through the card's semantics.
 */
export function roiScore(
  cells: ArrayLike<number>,
  channels: number,
  channel: number,
  plane: number,
  prob: (data: Float32Array, slot: number, p: number) => number,
): { roiSeed: Float32Array; scoreOfProb(p: Float32Array): number; scoreOfRaw(data: Float32Array, slot: number): number } {
  const roiSeed = new Float32Array(channels * plane);
  const n = cells.length;
  for (let i = 0; i < n; i++) roiSeed[channel * plane + cells[i]] = 1;
  return {
    roiSeed,
    scoreOfProb: (p) => {
      let s = 0;
      for (let i = 0; i < n; i++) s += p[channel * plane + cells[i]];
      return s;
    },
    scoreOfRaw: (data, slot) => {
      let s = 0;
      for (let i = 0; i < n; i++) s += prob(data, slot, cells[i]);
      return s;
    },
  };
}

export interface GradientMap {
  map: Float32Array;
  /** per-pixel standard error of the map where the method has one (Monte-Carlo methods), else NaN */
  stderrMap?: Float32Array;
  signed: boolean;
  valueUnits: string;
  notes?: string[];
  /** settings decided at run time (e.g. the Grad-CAM layer chosen), recorded in the provenance */
  settings?: Record<string, unknown>;
}

/**
 * One forward/backward pass of the unperturbed input, its input gradient reduced to a map by `reduce`:
 * the whole of saliency, gradient × input and guided backpropagation.
 */
export async function inputGradientMap(
  env: GradientCore,
  reduce: (inputGrad: Float32Array) => Float32Array,
  opts: { rule?: GradientRule } = {},
): Promise<Float32Array> {
  env.plan(env.passes.forward + env.passes.gradient); // the unperturbed pass and one forward/backward pass
  const s = await env.session(opts);
  let map: Float32Array = new Float32Array(env.plane);
  await s.run(
    [0],
    (_, f) => (f.input.set(env.input), f.seed.set(env.roiSeed)),
    (slot) => {
      map = reduce(slot.inputGrad);
    },
  );
  return map;
}

/**
 * What a gradient method's run keeps around its body, on images and volumes alike: the gradient
 * sessions it opens (released when it ends), and its progress, where every evaluation counts in the
 * current stage (the method's own name until the body names one) and the body's plan goes to `setPlan`.
 */
export function gradientScaffold(
  method: string,
  model: Differentiable,
  batchSize: number,
  open: (stage: string, total: number) => ProgressTracker,
  setPlan: (p: WorkPlan) => void,
  create: (opts: GradientSessionOptions) => Promise<GradientRunner> = (opts) => GradientSession.create(model, opts),
) {
  let stage: ProgressTracker | undefined;
  const sessions: GradientRunner[] = [];
  const evaluated = (n: number) => {
    stage ??= open(method, 1);
    stage.add(n);
  };
  const parts = {
    session: async (o: Omit<GradientSessionOptions, "batchSize"> & { batchSize?: number } = {}) => {
      const s = await create({ ...o, batchSize: o.batchSize ?? batchSize });
      s.onEvaluated = evaluated;
      sessions.push(s);
      return s;
    },
    stage: (name: string, total: number) => {
      stage?.end();
      stage = open(name, total);
    },
    plan: (total: number | undefined, bound?: number) => setPlan(total === undefined ? { bound: bound! } : { total, bound: bound ?? total }),
  };
  return {
    evaluated,
    sessions,
    parts,
    /** Runs the body, then releases every session it opened. */
    async run<E>(env: E, body: (env: E) => Promise<GradientMap>): Promise<GradientMap> {
      try {
        const result = await body(env);
        stage?.end();
        return result;
      } finally {
        for (const s of sessions) await s.release();
      }
    },
  };
}

/**
 * Runs a gradient method: unperturbed pass and Target (shared with every method), gradient
 * sessions on demand, then the method's body, and assembles the pixel-level Attribution.
 */
export async function explainGradient(
  model: Model,
  kase: Case,
  targetSpec: TargetSpec,
  run: RunOptions,
  method: string,
  settings: Record<string, unknown>,
  body: (env: GradientEnv) => Promise<GradientMap>,
): Promise<Attribution> {
  const t0 = Date.now();
  const batchSize = run.batchSize ?? DEFAULT_BATCH_SIZE;
  const runners = new Map<number, Runner>();
  const runnerFor = (items: number): Runner => {
    const b = Math.max(1, Math.min(batchSize, items));
    return getOrInsert(runners, b, () => new Runner(model, { batchSize: b }));
  };
  const ctx = await RunContext.open(model, kase, targetSpec, run, { runner: runnerFor(1), t0 });
  const scaffold = gradientScaffold(method, model, batchSize, (name, total) => ctx.tracker(name, total), ctx.plan);
  const { evaluated } = scaffold;
  const forward = async <T>(items: readonly T[], write: InputWriter<T>, read: OutputReader<T>) => {
    const out = await runnerFor(items.length).evaluate(items, write, read);
    evaluated(items.length);
    return out;
  };
  const { target } = ctx;
  const layout = model.outputLayout;
  const plane = layout.height * layout.width;
  const ch = model.card.output.channel;
  const probAt = makeProbability(model.card.output, layout);
  const { roiSeed, scoreOfProb, scoreOfRaw } = roiScore(target.region.pixels, layout.channels, ch, plane, probAt);
  const forwardScores = async (inputs: Float32Array[]): Promise<number[]> => Array.from(await forward(inputs, (x, dst) => dst.set(x), scoreOfRaw));
  const { sessions } = scaffold;
  const env: GradientEnv = {
    model,
    kase,
    target,
    seed: ctx.seed,
    input: ctx.base,
    channels: model.channels,
    plane: model.height * model.width,
    baseOutput: ctx.baseOutput,
    baseScore: scoreOfRaw(ctx.baseOutput, 0),
    roiSeed,
    scoreOfProb,
    forwardScores,
    forward,
    probAt,
    ...scaffold.parts,
    passes: { forward: 1, gradient: 1 },
    batchSize,
  };
  const result = await scaffold.run(env, body);
  const notes = [
    `gradient target: S = sum of the class-${ch} probability over the ${target.region.area} RoI pixels (S(x) = ${env.baseScore.toPrecision(6)}); gradients are w.r.t. the model input tensor (after the card's (pixel/scale - mean)/std)`,
    ...(result.notes ?? []),
  ];
  zeroMapNote(result.map, notes);
  return ctx.finish({
    method,
    unitKind: "pixel",
    valueUnits: result.valueUnits,
    signed: result.signed,
    map: result.map,
    stderrMap: result.stderrMap,
    units: [],
    roiCells: 0,
    forwardPasses: [...runners.values()].reduce((n, r) => n + r.forwardPasses, 0) + sessions.reduce((n, s) => n + s.forwardPasses, 0),
    backwardPasses: sessions.reduce((n, s) => n + s.backwardPasses, 0),
    tau: 0,
    settings: { ...settings, ...(result.settings ?? {}), score: "sum of class probability over the RoI" },
    intervention: { name: "gradient", rule: sessions[0]?.rule ?? "gradient" },
    runnerNotes: [...new Set([...runners.values()].flatMap((r) => r.notes)), ...new Set(sessions.flatMap((s) => s.notes))],
    batchSize: sessions[0]?.batchSize ?? batchSize,
    notes,
  });
}

/** An all-zero map is an answer worth a word (e.g. SmoothGrad with noise far beyond the input's range). */
export function zeroMapNote(map: Float32Array, notes: string[]): void {
  if (!map.some((v) => v !== 0) && !notes.some((n) => n.includes("0 everywhere"))) {
    notes.push(
      "the map is 0 everywhere: the RoI score does not respond to the input here (saturated outputs, or settings such as a large noise that take the inputs out of the model's range)",
    );
  }
}

// ---- helpers shared by the methods -------------------------------------------------------------

/** max over channels of |v|, per pixel. */
export function maxAbsOverChannels(v: ArrayLike<number>, channels: number, plane: number): Float32Array {
  const out = new Float32Array(plane);
  for (let c = 0; c < channels; c++) for (let i = 0; i < plane; i++) out[i] = Math.max(out[i], Math.abs(v[c * plane + i]));
  return out;
}

/** Σ_c scale · a_c · (b_c − r_c) per pixel (r omitted = 0). */
export function sumOverChannels(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  r: ArrayLike<number> | undefined,
  channels: number,
  plane: number,
  scale = 1,
): Float32Array {
  const out = new Float32Array(plane);
  for (let c = 0; c < channels; c++) {
    for (let i = 0; i < plane; i++) out[i] += scale * a[c * plane + i] * (b[c * plane + i] - (r ? r[c * plane + i] : 0));
  }
  return out;
}

export interface BaselineOptions {
  kind: FillKind;
  /** pixel value of a constant baseline (0..scale units; 0 = black) */
  value: number;
  /** Gaussian sigma in pixels of a blur baseline */
  sigma: number;
}

/** The baseline input (CHW, model-input space): the whole image replaced by a fill (as occlusion's). */
export async function baselineInput(model: Model, kase: Case, b: BaselineOptions): Promise<{ input: Float32Array; describe: string }> {
  const fill = await FillIntervention.create(model, kase.image, { kind: b.kind, value: b.value, sigma: b.sigma });
  const input = model.preprocess(kase.image);
  fill.apply(input, { index: 0, row: 0, col: 0, height: model.height, width: model.width });
  const describe =
    b.kind === "constant"
      ? b.value === 0
        ? "black image"
        : `constant ${b.value}`
      : b.kind === "mean"
        ? "the image's mean colour"
        : `the image blurred (sigma ${b.sigma} px)`;
  return { input, describe };
}

/** The baseline options shared by IG, DeepLIFT and MiSuRe (same names and meaning as occlusion's fill). */
export const BASELINE_OPTIONS = fillOptions("baseline that replaces the image", { fillKind: "constant", fill: 0, sigma: 5 });
