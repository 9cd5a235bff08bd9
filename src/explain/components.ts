/**
 * Causal effects of network components on the RoI outcome: the PdCR estimator with the
 * treatment moved inside the network. A component's output activations are replaced by those it
 * produces on donor images (resample ablation, the natural-distribution analogue of PdCR's
 * patches), by their mean over donors, or by zeros. The prefix runs once per image and donor;
 * each intervention then only runs the suffix of the graph after the component.
 */

import type { Case } from "../data/case.js";
import { fail } from "../errors.js";
import { BatchRunner } from "../model/batches.js";
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
import { resolveTarget, type TargetSpec } from "../target/target.js";
import type { AttributionCore } from "./attribution.js";
import type { Resumable } from "./checkpoint.js";
import { donorEnumeratedAte } from "./donor-ate.js";
import { PAPER_SCREENED_ATE, screenedAte, type UnitEstimate } from "./estimators.js";
import { choice, int, num, type OptionValues, optionalChoice, optionalInt, optionDefaults } from "./options.js";
import { RunContext, type RunOptions } from "./run.js";
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
    description: "cell size in feature-map pixels at --level spatial (default: a 16x16 grid)",
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
  rows: [number, number];
  cols: [number, number];
}

export interface ComponentOptions extends RunOptions, Partial<OptionValues<typeof COMPONENT_OPTIONS>> {
  /** explicit tensors, each its own unit, instead of grouped components */
  tensors?: string[];
  /** donor cases of the same domain (needed by resample and mean) */
  donors?: Case[];
  /** checkpoint save interval (default 5 s; tests use 0) */
  checkpointEveryMs?: number;
}

export type ComponentResult = Pick<Component, "name" | "order" | "depth" | "outputs"> & UnitEstimate & { index: number; selection?: Selection };

interface Unit extends Pick<Component, "name" | "order" | "depth" | "outputs"> {
  /** key of the cut plan (the component, or the tensor for channel/spatial units) */
  plan: string;
  selection?: Selection;
}

/** The components result: the fields every result shares (AttributionCore), with component units instead of a map. */
export interface ComponentEffects extends AttributionCore {
  method: "components";
  level: UnitLevel | "tensors";
  /** feature-map size [channels, height, width] of each tensor at the channel/spatial levels */
  tensorDims: Record<string, number[]>;
  /** base activations of the channel-level tensor (one image), for rendering */
  activations?: { tensor: string; dims: number[]; data: Float32Array };
  ablation: Ablation;
  units: ComponentResult[];
  skipped: { name: string; reason: string }[];
}

/**
 * Every session of a cut graph: "extended", not "all", since the NCHWc layout rewrite of "all"
 * changes float rounding at cut boundaries, while at "extended" prefix + suffix reproduce the full
 * model bit for bit.
 */
async function openCut(model: Model, bytes: Uint8Array): Promise<Sessions> {
  return Sessions.open(bytes, SESSION_OPTS(model));
}
const SESSION_OPTS = (model: Model): SessionConfig => ({ threads: model.threads, optimization: "extended", device: model.device });

/** ORT's failure on a cut graph of `model` as one line. */
const cutFailed =
  (model: Model, what: string) =>
  (e: unknown): never =>
    fail(
      `ONNX Runtime failed to run ${what} of ${model.path}: ${(e as Error).message.split("\n")[0]}`,
      "report this model to the segcause authors; input-level methods still work",
    );

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
  const ablation = opts.ablation ?? DEFAULTS.ablation;
  const donors = opts.donors ?? [];
  if (ablation !== "zero" && donors.length === 0)
    fail(`${ablation} ablation needs donor images`, "pass --donors <folder or manifest> with images of the same domain, or use --ablation zero");
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
  const skipped: ComponentEffects["skipped"] = [];
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
  const dims = [model.channels, model.height, model.width];
  const base = model.preprocess(kase.image);
  // Base activations at batch B (the image in every slot): shape-carrying tensors then match the suffix batch.
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
  const baseOut = baseOutput.slice(0, baseOutput.length / B);
  const ctx = RunContext.fromBase(model, kase, opts, { input: base, output: baseOut, target: resolveTarget(model, kase, targetSpec, baseOut) }, t0);
  const { target } = ctx;
  const types = new Map<string, TensorType>();
  for (const [k, t] of Object.entries(baseRun)) types.set(k, { elemType: ELEM[t.type] ?? 1, dims: [...t.dims] });
  const donorActs = donors.length
    ? await runExposed(
        exposed,
        model.inputName,
        donors.map((d) => model.preprocess(d.image)),
        dims,
        B,
        cutFailed(model, "the exposed graph"),
      )
    : [];
  forwardPasses += donors.length;
  await exposed.release();

  // Units: components whose outputs are all batched float activations.
  const usable = comps
    .filter((c) => plans.has(c.name))
    .filter((c) => {
      const bad = c.outputs.find((t) => baseRun[t].type !== "float32" || baseRun[t].dims[0] !== B);
      if (bad) {
        if (opts.tensors) fail(`tensor ${bad} is not a per-image float activation`, "choose a float feature map");
        skipped.push({ name: c.name, reason: `output ${bad} is not a per-image float activation` });
      }
      return !bad;
    });
  const tensorDims: Record<string, number[]> = {};
  const units: Unit[] = inTensor ? [] : usable.map((c) => ({ ...c, plan: c.name }));
  if (inTensor) {
    for (const c of usable) {
      const t = c.outputs[0];
      const d = baseRun[t].dims;
      if (d.length !== 4)
        fail(`tensor ${t} has shape [${d.join(", ")}]; the ${level} level needs an NCHW feature map`, "choose a convolutional feature map");
      // A channels-last activation (Keras/tf2onnx graphs carry them between Transposes) would be cut
      // into cells along its channels; the shape tells it when only the NHWC reading fits the input.
      if (outputLayoutOf(d, model.height, model.width, "nchw") === "nhwc") {
        fail(
          `tensor ${t} is [${d.join(", ")}], which reads as channels-last [N, H, W, C]; the ${level} level splits [N, C, H, W] feature maps`,
          "choose a channels-first tensor, e.g. the output of the Transpose next to it (components --list --level layer)",
        );
      }
      const [, C, H, W] = d;
      tensorDims[t] = [C, H, W];
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
            selection: { tensor: t, channels: [c0, c1], rows: [0, H], cols: [0, W] },
          });
        }
      } else {
        const cell = opts.cell ?? Math.max(1, Math.ceil(Math.max(H, W) / 16));
        if (!Number.isInteger(cell) || cell < 1) fail(`cell size must be a positive integer, got ${cell}`, "use --cell 1..feature-map size");
        for (let r = 0; r < H; r += cell) {
          for (let k = 0; k < W; k += cell) {
            units.push({
              name: `${t}@${r},${k}`,
              order: units.length,
              depth: 0,
              outputs: [t],
              plan: t,
              selection: { tensor: t, channels: [0, C], rows: [r, Math.min(H, r + cell)], cols: [k, Math.min(W, k + cell)] },
            });
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
  const sessions = new Map<string, { s: Sessions; out: string }>();
  const suffixOf = async (u: number) => {
    const key = units[u].plan;
    let e = sessions.get(key);
    if (!e) {
      const { bytes, outputName: out } = buildSuffix(proto, plans.get(key)!, types, outputName);
      e = { s: await openCut(model, bytes), out };
      sessions.set(key, e);
    }
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
              if (sel) copySelection(slot[k], value, 0, tensorDims[t], sel);
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
    { units: units.map((u) => [u.name, ...u.outputs]), ablation, donors: donors.map((d) => d.imageSha256) },
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
    notes.push(`only ${donors.length} donor image(s): the resample distribution is coarse; 20 or more are better`);
  const core = ctx.finishCore({
    method: "components",
    forwardPasses,
    tau: st.tau,
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
    intervention: { name: `${ablation} ablation`, donors: donors.map((d) => ({ id: d.id, sha256: d.imageSha256 })) },
    runnerNotes: [],
    batchSize: B,
    notes,
  });
  return {
    ...core,
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
    activations:
      level === "channel"
        ? {
            tensor: opts.tensors![0],
            dims: tensorDims[opts.tensors![0]],
            data: (baseRun[opts.tensors![0]].data as Float32Array).slice(0, (baseRun[opts.tensors![0]].data as Float32Array).length / B),
          }
        : undefined,
    skipped,
  };
}

/** Copies the selected channels x rows x cols of one item (CHW at `offset` in dst, at 0 in src). */
function copySelection(dst: Float32Array, src: Float32Array, offset: number, dims: number[], sel: Selection): void {
  const [, H, W] = dims;
  for (let c = sel.channels[0]; c < sel.channels[1]; c++) {
    for (let r = sel.rows[0]; r < sel.rows[1]; r++) {
      const o = c * H * W + r * W;
      dst.set(src.subarray(o + sel.cols[0], o + sel.cols[1]), offset + o + sel.cols[0]);
    }
  }
}
