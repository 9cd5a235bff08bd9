/**
 * Causal effects of network components on the RoI outcome: the PdCR estimator with the
 * treatment moved inside the network. A component's output activations are replaced by those it
 * produces on donor images (resample ablation, the natural-distribution analogue of PdCR's
 * patches), by their mean over donors, or by zeros. The prefix runs once per image and donor;
 * each intervention then only runs the suffix of the graph after the component.
 */

import type { ModelProto } from "onnx-buf";
import type { Case } from "../data/case.js";
import { fail } from "../errors.js";
import { BatchRunner } from "../model/batches.js";
import type { Device } from "../model/device.js";
import type { Model } from "../model/model.js";
import { DEFAULT_BATCH_SIZE } from "../model/runner.js";
import { type SessionConfig, Sessions, type TensorData } from "../model/runtime.js";
import { outputLayoutOf } from "../onnx/adapt.js";
import {
  buildSuffix,
  type Component,
  type ComponentLevel,
  type CutPlan,
  exposeTensors,
  listComponents,
  planCut,
  type TensorType,
} from "../onnx/surgery.js";
import type { OutcomeFn } from "../target/outcome.js";
import { resolveTarget, type TargetSpec } from "../target/target.js";
import type { AttributionCore } from "./attribution.js";
import type { Resumable } from "./checkpoint.js";
import { donorEnumeratedAte } from "./donor-ate.js";
import { PAPER_SCREENED_ATE, screenedAte, type UnitEstimate } from "./estimators.js";
import { choice, int, num, type OptionValues, optionalChoice, optionalInt, optionDefaults } from "./options.js";
import { RunContext, type RunCore, type RunOptions } from "./run.js";
import type { Evaluate } from "./samples.js";

export const UNIT_LEVELS = ["stage", "block", "layer", "channel", "spatial"] as const;
export const ABLATIONS = ["resample", "mean", "zero"] as const;
export const DONOR_SAMPLINGS = ["exact", "random"] as const;
export type Ablation = (typeof ABLATIONS)[number];
export type DonorSampling = (typeof DONOR_SAMPLINGS)[number];
/**
 * stage/block/layer: module-path groups; channel: channel groups of one `tensors[0]`; spatial:
 * cells of the feature map of each tensor in `tensors`
 */
export type UnitLevel = (typeof UNIT_LEVELS)[number];

const onlyResample = { appliesWhen: { option: "ablation", values: ["resample"] } };

/** The options of `components`, declared as methods declare theirs; the CLI's flags read them. */
export const COMPONENT_OPTIONS = {
  level: choice(UNIT_LEVELS, {
    description: "stage, block or layer (module-path depth); channel or spatial (units inside --tensor)",
    default: "stage",
  }),
  channelGroup: int({
    description: "channels per unit at --level channel",
    default: 1,
    min: 1,
    appliesWhen: { option: "level", values: ["channel"] },
  }),
  cell: optionalInt({
    description: "cell size in feature-map pixels at --level spatial (default: a 16x16 grid; on volumes boxes of n voxels, an 8x8x8 grid)",
    min: 1,
    appliesWhen: { option: "level", values: ["spatial"] },
  }),
  ablation: choice(ABLATIONS, { description: "resample (donor activations), mean (donor mean) or zero", default: "resample" }),
  donorSampling: optionalChoice(DONOR_SAMPLINGS, {
    description:
      "resample: exact (every unit with each donor once: the expectation over the donors) or random (draws with replacement, screened); default exact when the donors are no more than --screen + --samples, random when either is given",
    ...onlyResample,
  }),
  screen: int({ description: "screening draws (resample)", default: PAPER_SCREENED_ATE.screen, ...onlyResample }),
  samples: int({ description: "draws for components passing the screen (resample)", default: PAPER_SCREENED_ATE.samples, min: 1, ...onlyResample }),
  tau: num({ description: "effects below tau are set to 0", default: PAPER_SCREENED_ATE.tau }),
};
const DEFAULTS = optionDefaults(COMPONENT_OPTIONS);

/** Part of one tensor that a unit replaces (channel group and/or spatial cell); none = all of it. */
export interface Selection {
  tensor: string;
  channels: [number, number];
  /** depth range of a volume's [C, D, H, W] feature map (absent on [C, H, W] maps) */
  slices?: [number, number];
  rows: [number, number];
  cols: [number, number];
}

/** The engine's options, whatever the input: images or volumes (their donors are given as model inputs). */
export interface ComponentRunOptions extends RunOptions, Partial<OptionValues<typeof COMPONENT_OPTIONS>> {
  /** explicit tensors, each its own unit, instead of grouped components */
  tensors?: string[];
  /** checkpoint save interval (default 5 s; tests use 0) */
  checkpointEveryMs?: number;
}

export interface ComponentOptions extends ComponentRunOptions {
  /** donor cases of the same domain (needed by resample and mean) */
  donors?: Case[];
}

export type ComponentResult = Pick<Component, "name" | "order" | "depth" | "outputs"> & UnitEstimate & { index: number; selection?: Selection };

interface Unit extends Pick<Component, "name" | "order" | "depth" | "outputs"> {
  /** key of the cut plan (the component, or the tensor for channel/spatial units) */
  plan: string;
  selection?: Selection;
}

/** What every components result holds, on images and on volumes. */
export interface ComponentParts {
  method: "components";
  level: UnitLevel | "tensors";
  /** feature-map size [channels, height, width] (volumes: [channels, depth, height, width]) of each tensor at the channel/spatial levels */
  tensorDims: Record<string, number[]>;
  /** base activations of the channel-level tensor (one input), for rendering */
  activations?: { tensor: string; dims: number[]; data: Float32Array };
  ablation: Ablation;
  units: ComponentResult[];
  skipped: { name: string; reason: string }[];
}

/** The components result: the fields every result shares (AttributionCore), with component units instead of a map. */
export interface ComponentEffects extends Omit<AttributionCore, "method">, ComponentParts {}

/** What the engine needs of a model, whatever its input's spatial rank: Model (2D) and VolumeModel (3D) both are one. */
export interface CutModel {
  readonly path: string;
  readonly inputName: string;
  readonly outputName: string;
  /** one input without the batch axis: [C, ...spatial] */
  readonly inputDims: number[];
  /** the batch size the graph fixes, if it does */
  readonly fixedBatch: number | undefined;
  readonly threads: number;
  readonly device: Device;
  proto(): ModelProto;
}

/** The run once the unperturbed output is known: seeds, checkpoints and progress, and the Target's score. */
export type ComponentRun = RunCore & { readonly target: { score: OutcomeFn; base: number } };

/** What is explained: the model, its unperturbed input, the donors' inputs and how the Target is read. */
export interface ComponentSubject<R extends ComponentRun> {
  model: CutModel;
  input: Float32Array;
  /** the donors' model inputs, in the donor list's order */
  donors: Float32Array[];
  /** what a donor is, in messages ("image", "volume") */
  donorNoun: string;
  /** the run, from the unperturbed output (one batch slot) */
  open(baseOutput: Float32Array): R;
  /** refuses a feature map whose channel/spatial units would be cut wrongly (a layout the rank does not tell) */
  checkFeatureMap(tensor: string, dims: readonly number[], level: "channel" | "spatial"): void;
}

/** The engine's result, before the caller adds what its input kind records (provenance, grid). */
export interface ComponentRunResult<R extends ComponentRun> {
  ctx: R;
  parts: ComponentParts;
  forwardPasses: number;
  tau: number;
  batchSize: number;
  /** the settings that change the result (provenance) */
  settings: Record<string, unknown>;
  notes: string[];
}

/**
 * Every session of a cut graph: "extended", not "all", since the NCHWc layout rewrite of "all"
 * changes float rounding at cut boundaries, while at "extended" prefix + suffix reproduce the full
 * model bit for bit.
 */
async function openCut(model: CutModel, bytes: Uint8Array): Promise<Sessions> {
  return Sessions.open(bytes, SESSION_OPTS(model));
}
const SESSION_OPTS = (model: CutModel): SessionConfig => ({ threads: model.threads, optimization: "extended", device: model.device });

/** ORT's failure on a cut graph of `model` as one line. */
const cutFailed =
  (model: CutModel, what: string) =>
  (e: unknown): never =>
    fail(
      `ONNX Runtime failed to run ${what} of ${model.path}: ${(e as Error).message.split("\n")[0]}`,
      "report this model to the segcause authors; input-level methods still work",
    );

/** Suffix sessions kept open at once (least recently used released first). */
const OPEN_SUFFIXES = 2;

const ELEM: Record<string, number> = { float32: 1, uint8: 2, int8: 3, int32: 6, int64: 7, bool: 9, float64: 11 };

type Outputs = Record<string, TensorData>;

/** Runs the exposed model on `inputs` in batches of B (the last padded with copies); the raw batch outputs. */
async function exposedBatches(
  session: Sessions,
  inputName: string,
  inputs: Float32Array[],
  dims: number[],
  B: number,
  failed: (e: unknown) => never,
): Promise<Outputs[]> {
  const out: Outputs[] = [];
  const runner = new BatchRunner(session, { feeds: [{ name: inputName, dims }], batchSize: B, failed });
  await runner.run(
    inputs,
    (x, [dst]) => dst.set(x),
    (r, j) => void (j === 0 && out.push(r)),
  );
  return out;
}

/** Runs the exposed model on `images` (each tiled/padded to batch B) and returns per-image tensors. */
async function runExposed(
  session: Sessions,
  inputName: string,
  inputs: Float32Array[],
  dims: number[],
  B: number,
  failed: (e: unknown) => never,
): Promise<Outputs[]> {
  const batches = await exposedBatches(session, inputName, inputs, dims, B, failed);
  return inputs.map((_, i) => sliceBatch(batches[Math.floor(i / B)], i % B, B));
}

/** Item j of every batched float tensor (other tensors are shared). */
function sliceBatch(r: Outputs, j: number, B: number): Outputs {
  const o: Outputs = {};
  for (const [k, t] of Object.entries(r)) {
    if (t.type === "float32" && t.dims[0] === B) {
      const per = (t.data as Float32Array).length / B;
      o[k] = { type: "float32", data: (t.data as Float32Array).slice(j * per, (j + 1) * per), dims: [1, ...t.dims.slice(1)] };
    } else o[k] = t;
  }
  return o;
}

export async function explainComponents(model: Model, kase: Case, targetSpec: TargetSpec, opts: ComponentOptions = {}): Promise<ComponentEffects> {
  const t0 = Date.now();
  const { donors: donorCases = [], ...run } = opts;
  const input = model.preprocess(kase.image);
  const r = await componentEngine(
    {
      model,
      input,
      donors: donorCases.map((d) => model.preprocess(d.image)),
      donorNoun: "image",
      open: (output) => RunContext.fromBase(model, kase, opts, { input, output, target: resolveTarget(model, kase, targetSpec, output) }, t0),
      checkFeatureMap: (t, d, level) => {
        if (d.length !== 4)
          fail(`tensor ${t} has shape [${d.join(", ")}]; the ${level} level needs an NCHW feature map`, "choose a convolutional feature map");
        // A channels-last activation (Keras/tf2onnx graphs carry them between Transposes) would be cut
        // into cells along its channels; the shape tells it when only the NHWC reading fits the input.
        if (outputLayoutOf([...d], model.height, model.width, "nchw") === "nhwc") {
          fail(
            `tensor ${t} is [${d.join(", ")}], which reads as channels-last [N, H, W, C]; the ${level} level splits [N, C, H, W] feature maps`,
            "choose a channels-first tensor, e.g. the output of the Transpose next to it (components --list --level layer)",
          );
        }
      },
    },
    donorCases.map((d) => d.imageSha256),
    run,
  );
  const core = r.ctx.finishCore({
    method: "components",
    forwardPasses: r.forwardPasses,
    tau: r.tau,
    settings: r.settings,
    intervention: { name: `${r.parts.ablation} ablation`, donors: donorCases.map((d) => ({ id: d.id, sha256: d.imageSha256 })) },
    runnerNotes: [],
    batchSize: r.batchSize,
    notes: r.notes,
  });
  return { ...core, ...r.parts };
}

/**
 * The engine, for images and volumes alike: cut plans, one exposed pass of the input and of each
 * donor, suffix passes per intervention, the donor-enumerated or screened ATE, checkpointed.
 * `donorKeys` identify the donors in the checkpoint key (their content hashes).
 */
export async function componentEngine<R extends ComponentRun>(
  subject: ComponentSubject<R>,
  donorKeys: string[],
  opts: ComponentRunOptions,
): Promise<ComponentRunResult<R>> {
  const { model, donors } = subject;
  const ablation = opts.ablation ?? DEFAULTS.ablation;
  const noun = subject.donorNoun;
  if (ablation !== "zero" && donors.length === 0)
    fail(`${ablation} ablation needs donor ${noun}s`, `pass --donors <folder or manifest> with ${noun}s of the same domain, or use --ablation zero`);
  const proto = model.proto();
  const requested = opts.level ?? DEFAULTS.level;
  const inTensor = requested === "channel" || requested === "spatial";
  if (inTensor && !opts.tensors?.length)
    fail(`the ${requested} level needs --tensor <name>`, "`segcause components --list --level layer` shows the tensors");
  if (requested === "channel" && opts.tensors!.length !== 1) fail("the channel level takes exactly one --tensor", "run once per tensor");
  const level = inTensor ? requested : opts.tensors ? "tensors" : requested;
  const comps: Component[] = opts.tensors
    ? opts.tensors.map((t, i) => ({ name: t, order: i, depth: 0, nodes: [], outputs: [t] }))
    : listComponents(proto, level as ComponentLevel);
  const outputName = model.outputName;
  const plans = new Map<string, CutPlan>();
  const skipped: ComponentParts["skipped"] = [];
  for (const c of comps) {
    try {
      plans.set(c.name, planCut(proto, c.outputs, [outputName]));
    } catch (e) {
      if (opts.tensors) throw e;
      skipped.push({ name: c.name, reason: (e as Error).message });
    }
  }
  const B = model.fixedBatch ?? opts.batchSize ?? DEFAULT_BATCH_SIZE;
  const needed = [...new Set([...plans.values()].flatMap((p) => p.suffixInputs).concat(outputName))];
  const exposed = await openCut(model, exposeTensors(proto, needed));
  const dims = model.inputDims;
  const base = subject.input;
  // Base activations at batch B (the input in every slot): shape-carrying tensors then match the suffix batch.
  let baseRun: Outputs;
  try {
    [baseRun] = await exposedBatches(exposed, model.inputName, [base], dims, B, cutFailed(model, "the exposed graph"));
  } catch (e) {
    await exposed.release();
    throw e;
  }
  let forwardPasses = 1; // the base run; then the donors' and every sample's (resumed ones too, as PdCR counts them)
  // The reference and m(X) come from the same session settings as the interventions.
  const baseOutput = baseRun[outputName].data as Float32Array;
  const ctx = subject.open(baseOutput.slice(0, baseOutput.length / B));
  const { target } = ctx;
  const types = new Map<string, TensorType>();
  for (const [k, t] of Object.entries(baseRun)) types.set(k, { elemType: ELEM[t.type] ?? 1, dims: [...t.dims] });
  const donorActs = donors.length ? await runExposed(exposed, model.inputName, donors, dims, B, cutFailed(model, "the exposed graph")) : [];
  forwardPasses += donors.length;
  await exposed.release();

  // Units: components whose outputs are all batched float activations.
  const usable = comps
    .filter((c) => plans.has(c.name))
    .filter((c) => {
      const bad = c.outputs.find((t) => baseRun[t].type !== "float32" || baseRun[t].dims[0] !== B);
      if (bad) {
        if (opts.tensors) fail(`tensor ${bad} is not a per-${noun} float activation`, "choose a float feature map");
        skipped.push({ name: c.name, reason: `output ${bad} is not a per-${noun} float activation` });
      }
      return !bad;
    });
  const tensorDims: Record<string, number[]> = {};
  const units: Unit[] = inTensor ? [] : usable.map((c) => ({ ...c, plan: c.name }));
  if (inTensor) {
    for (const c of usable) {
      const t = c.outputs[0];
      const d = baseRun[t].dims;
      subject.checkFeatureMap(t, d, level as "channel" | "spatial");
      // [C, H, W], or [C, D, H, W] on volumes: a unit's selection then also has a depth range
      const [, C, ...space] = d;
      tensorDims[t] = [C, ...space];
      const [H, W] = space.slice(-2);
      const D = space.length === 3 ? space[0] : undefined;
      const whole = D === undefined ? {} : { slices: [0, D] as [number, number] };
      if (level === "channel") {
        const g = opts.channelGroup ?? DEFAULTS.channelGroup;
        if (!Number.isInteger(g) || g < 1 || g > C) fail(`channel group ${g} must be in 1..${C}`, "use --channel-group 1");
        for (let c0 = 0; c0 < C; c0 += g) {
          const c1 = Math.min(C, c0 + g);
          units.push({
            name: g === 1 ? `${t}[${c0}]` : `${t}[${c0}:${c1}]`,
            order: c0,
            depth: 0,
            outputs: [t],
            plan: t,
            selection: { tensor: t, channels: [c0, c1], ...whole, rows: [0, H], cols: [0, W] },
          });
        }
      } else {
        // cells are squares of a [C, H, W] map, cubes (boxes) of a [C, D, H, W] one
        const cell = opts.cell ?? Math.max(1, Math.ceil(Math.max(...space) / (D === undefined ? 16 : 8)));
        if (!Number.isInteger(cell) || cell < 1) fail(`cell size must be a positive integer, got ${cell}`, "use --cell 1..feature-map size");
        for (let z = 0; z < (D ?? 1); z += cell) {
          for (let r = 0; r < H; r += cell) {
            for (let k = 0; k < W; k += cell) {
              const slices = D === undefined ? {} : { slices: [z, Math.min(D, z + cell)] as [number, number] };
              units.push({
                name: D === undefined ? `${t}@${r},${k}` : `${t}@${z},${r},${k}`,
                order: units.length,
                depth: 0,
                outputs: [t],
                plan: t,
                selection: { tensor: t, channels: [0, C], ...slices, rows: [r, Math.min(H, r + cell)], cols: [k, Math.min(W, k + cell)] },
              });
            }
          }
        }
      }
    }
  }
  if (units.length === 0) fail("no component of this model can be intervened on", "pass --tensor names of float activations");
  const meanOf = (t: string): Float32Array => {
    const per = (baseRun[t].data as Float32Array).length / B;
    const m = new Float32Array(per);
    for (const d of donorActs) {
      const v = d[t].data as Float32Array;
      for (let i = 0; i < per; i++) m[i] += v[i] / donorActs.length;
    }
    return m;
  };
  // Each suffix session holds ORT's memory for its activations: only the most recently used are kept
  // open, so a run over many cuts (a 3D U-Net's stages hold gigabytes at once) holds a few arenas.
  const sessions = new Map<string, { s: Sessions; out: string }>();
  const suffixOf = async (u: number) => {
    const key = units[u].plan;
    let e = sessions.get(key);
    if (e) sessions.delete(key);
    else {
      if (sessions.size >= OPEN_SUFFIXES) {
        const [oldest, old] = sessions.entries().next().value!;
        sessions.delete(oldest);
        await old.s.release();
      }
      const { bytes, outputName: out } = buildSuffix(proto, plans.get(key)!, types, outputName);
      e = { s: await openCut(model, bytes), out };
    }
    sessions.set(key, e); // the last entry is the most recently used
    return e;
  };
  const draws = ablation === "resample" ? donors.length : 1;
  const st =
    ablation === "resample"
      ? { screen: opts.screen ?? DEFAULTS.screen, samples: opts.samples ?? DEFAULTS.samples, tau: opts.tau ?? DEFAULTS.tau }
      : { screen: 1, samples: 0, tau: opts.tau ?? DEFAULTS.tau };
  const donorSampling: DonorSampling | null =
    ablation !== "resample" ? null : (opts.donorSampling ?? (donors.length <= st.screen + st.samples ? "exact" : "random"));
  const exact = donorSampling === "exact";
  const fixedFill = new Map<string, Float32Array>();
  const raw =
    (resumable: () => Resumable): Evaluate =>
    async (reqs) => {
      const scores = new Float64Array(reqs.length);
      // Requests of units that share a cut (channels, cells of one tensor) fill batches together.
      const byPlan = new Map<string, number[]>();
      reqs.forEach((r, i) => {
        const key = units[r.unit].plan;
        (byPlan.get(key) ?? byPlan.set(key, []).get(key)!).push(i);
      });
      for (const idx of byPlan.values()) {
        const first = units[reqs[idx[0]].unit];
        const { s, out } = await suffixOf(reqs[idx[0]].unit);
        const plan = plans.get(first.plan)!;
        // The replaced tensors start as the base batch, slot by slot (padding slots keep it); the
        // suffix's other inputs are the base batch's, whole.
        const feeds = first.outputs.map((t) => {
          const src = baseRun[t].data as Float32Array;
          const per = src.length / B;
          return { name: t, dims: baseRun[t].dims.slice(1), init: (j: number, dst: Float32Array) => dst.set(src.subarray(j * per, (j + 1) * per)) };
        });
        const constants = Object.fromEntries(plan.suffixInputs.filter((t) => !first.outputs.includes(t)).map((t) => [t, baseRun[t]]));
        const runner = new BatchRunner(s, { feeds, constants, fetches: [out], batchSize: B, failed: cutFailed(model, `the cut at ${first.plan}`) });
        await runner.run(
          idx,
          (ri, slot) => {
            const { unit: u, draw } = reqs[ri];
            first.outputs.forEach((t, k) => {
              let value: Float32Array;
              if (ablation === "resample") value = donorActs[exact ? draw : ctx.randomInt(u, draw, draws)][t].data as Float32Array;
              else {
                const key = `${ablation}:${t}`;
                if (!fixedFill.has(key)) fixedFill.set(key, ablation === "mean" ? meanOf(t) : new Float32Array(slot[k].length));
                value = fixedFill.get(key)!;
              }
              const sel = units[u].selection;
              if (sel) copySelection(slot[k], value, tensorDims[t], sel);
              else slot[k].set(value);
            });
          },
          (r, j, ri) => (scores[ri] = target.score(r[out].data as Float32Array, j)),
          (n) => resumable().progress(n),
        );
      }
      return scores;
    };
  // A sample is a function of the unit, the draw number and these: screen, samples and τ only decide
  // which samples are drawn, so a rerun with other values reuses every finished one.
  const key = ctx.checkpointKey([
    { method: "components" },
    "model",
    "card",
    "image",
    "mask",
    "target",
    { units: units.map((u) => [u.name, ...u.outputs]), ablation, donors: donorKeys },
    "seed",
    // Draw d is donor d when enumerating; the key part keeps those samples apart from random draws.
    exact ? { donorSampling } : {},
  ]);
  // Checkpoint chunks of one batch, not 512 samples: at one suffix pass per batch a chunk can take minutes.
  const resumable = ctx.resumable(raw, key, { chunk: B, saveEveryMs: opts.checkpointEveryMs });
  let estimates: UnitEstimate[];
  try {
    estimates = exact
      ? await donorEnumeratedAte(units.length, target.base, resumable.evaluate, { donors: donors.length, tau: st.tau })
      : await screenedAte(units.length, target.base, resumable.evaluate, st, ctx.plan);
  } catch (e) {
    // A failed run keeps what it finished, so the rerun after the fix resumes.
    await resumable.checkpoint?.save().catch(() => undefined);
    throw e;
  }
  await resumable.checkpoint?.save();
  forwardPasses += estimates.reduce((s, e) => s + e.samples, 0);
  for (const e of sessions.values()) await e.s.release();
  const notes: string[] = [];
  if (ablation === "resample" && donors.length < 10)
    notes.push(`only ${donors.length} donor ${noun}(s): the resample distribution is coarse; 20 or more are better`);
  const channelTensor = level === "channel" ? opts.tensors![0] : undefined;
  return {
    ctx,
    forwardPasses,
    tau: st.tau,
    batchSize: B,
    notes,
    settings: {
      level,
      ablation,
      donorSampling,
      ...(exact ? { tau: st.tau } : st),
      batchSize: B,
      tensors: opts.tensors ?? null,
      channelGroup: level === "channel" ? (opts.channelGroup ?? DEFAULTS.channelGroup) : null,
      cell: level === "spatial" ? units[0].selection!.rows[1] - units[0].selection!.rows[0] : null,
    },
    parts: {
      method: "components",
      level,
      ablation,
      units: units.map((c, i) => ({
        index: i,
        name: c.name,
        order: c.order,
        depth: c.depth,
        outputs: c.outputs,
        selection: c.selection,
        ...estimates[i],
      })),
      tensorDims,
      activations: channelTensor
        ? {
            tensor: channelTensor,
            dims: tensorDims[channelTensor],
            data: (baseRun[channelTensor].data as Float32Array).slice(0, (baseRun[channelTensor].data as Float32Array).length / B),
          }
        : undefined,
      skipped,
    },
  };
}

/**
 * Copies the selected channels x rows x cols (x slices, on a volume's feature map) of one item from
 * src to dst; dims are [C, H, W] or [C, D, H, W].
 */
function copySelection(dst: Float32Array, src: Float32Array, dims: number[], sel: Selection): void {
  const [H, W] = dims.slice(-2);
  const D = dims.length === 4 ? dims[1] : 1;
  const [z0, z1] = sel.slices ?? [0, 1];
  for (let c = sel.channels[0]; c < sel.channels[1]; c++) {
    for (let z = z0; z < z1; z++) {
      for (let r = sel.rows[0]; r < sel.rows[1]; r++) {
        const o = ((c * D + z) * H + r) * W;
        dst.set(src.subarray(o + sel.cols[0], o + sel.cols[1]), o + sel.cols[0]);
      }
    }
  }
}
