/**
 * One RoI of the benchmark and its cells: the unperturbed pass and the Target shared by every order
 * of the RoI, the model-free controls (random, distance), and for one method its Attribution and
 * metrics (curves, top-k effects, leakage, sparsity, stability, cost), all on the same units and
 * fills. Nothing here reads or writes the folder except `writeCell`: the orchestration
 * (benchmark.ts) decides what is computed, resumed or refused.
 */
import { rm } from "node:fs/promises";
import { join } from "node:path";
import type { Case } from "../data/case.js";
import type { PatchBank } from "../data/patchbank.js";
import { SegcauseError } from "../errors.js";
import { type Attribution, supportMap } from "../explain/attribution.js";
import type { MethodDefinition } from "../explain/methods.js";
import type { IncrementalMode } from "../explain/roi-executor.js";
import type { Model } from "../model/model.js";
import type { Runner } from "../model/runner.js";
import { resolveTarget, type Target, type TargetSpec } from "../target/target.js";
import { sha256 } from "../util/hash.js";
import { encodeNpy } from "../util/npy.js";
import type { ProgressListener } from "../util/progress.js";
import { uniform } from "../util/rng.js";
import { STREAM } from "../util/streams.js";
import { type CurvePair, type CurveProber, curvePair, type Endpoints, Prober, type TopK, topAreaEffects, topKEffects } from "./curves.js";
import { type CurveFill, type FillName, makeFills } from "./fills.js";
import { distanceToRoi, explainedDomain, gini, leakage, spearman } from "./map-metrics.js";
import { distanceUnits, type Ranking, randomUnits, rankUnits } from "./ordering.js";
import { type Protocol, topAreaMetric } from "./protocol.js";
import { type DomainUnits, domainUnits, rankUnitsName } from "./rank-units.js";
import type { PlacedRoi } from "./rois.js";
import { type CellId, type CellRecord, type ControlRecord, type FillResult, type RoiPlace, writeAtomic } from "./store.js";
import { curveMetrics } from "./summary.js";

/**
 * What the orders of one RoI are measured with, whatever the input's geometry: the cells of the
 * domain are pixels of an image or cells of a volume's box, and the prober runs the model on them.
 */
export interface OrderContext<F extends { name: FillName } = CurveFill> {
  P: Protocol;
  seed: number;
  prober: CurveProber<F>;
  fills: F[];
  /** the explained domain: the cells outside the RoI that the curves replace */
  domain: Uint32Array;
  units: DomainUnits;
  /** every cell's distance to the RoI (pixels; millimetres on volumes) */
  dist: Float32Array;
  target: Pick<Target, "base" | "outcome" | "referenceKind">;
  /** where the records place the RoI: a rectangle on images, the RoI's bounds on volumes */
  place: RoiPlace;
}

/** What the cells of one (model, image, RoI) share. */
export interface RoiContext extends OrderContext<CurveFill> {
  batchSize?: number;
  /** --incremental for the block methods' passes (undefined: off) */
  incremental?: IncrementalMode;
  onProgress?: ProgressListener;
  model: Model;
  kase: Case;
  roi: PlacedRoi;
  bank?: PatchBank;
  spec: TargetSpec;
  target: Target;
  prober: Prober;
}

type RoiInputs = Pick<RoiContext, "P" | "seed" | "batchSize" | "incremental" | "onProgress" | "model" | "kase" | "roi" | "bank">;

const FEW_UNITS = /^(.*): --rank-units \S+ leaves as few as (\d+) units/;

/**
 * Adds a note of opening a RoI (openRoi's, here or on a queue's worker) to the run's notes: once, and
 * one --rank-units note per model, the one of its fewest units (whatever order the RoIs come in).
 */
export function addRoiNote(notes: string[], note: string): void {
  const few = FEW_UNITS.exec(note);
  const same = few ? notes.findIndex((n) => FEW_UNITS.exec(n)?.[1] === few[1]) : notes.indexOf(note);
  if (same < 0) notes.push(note);
  else if (few && Number(FEW_UNITS.exec(notes[same])![2]) > Number(few[2])) notes[same] = note;
}

/**
 * The unperturbed pass, the Target and everything the orders of the RoI are measured with; or why
 * the RoI is skipped (its Target cannot be resolved, e.g. Dice on an empty structure).
 */
export async function openRoi(inputs: RoiInputs, runner: Runner, id: CellId, notes: string[]): Promise<RoiContext | { skipped: string }> {
  const { P, seed, model, kase, roi, bank } = inputs;
  const base = model.preprocess(kase.image);
  let baseOutput: Float32Array | undefined;
  await runner.evaluate(
    [0],
    (_, dst) => dst.set(base),
    (data) => {
      baseOutput = data.slice(0, data.length / runner.batchSize);
      return 0;
    },
  );
  const spec: TargetSpec = { roi: roi.rect, outcome: P.outcome, reference: P.reference };
  let target: Target;
  try {
    target = resolveTarget(model, kase, spec, baseOutput!);
  } catch (e) {
    if (!(e instanceof SegcauseError)) throw e;
    return { skipped: e.oneLine() };
  }
  const fills = await makeFills(model, kase, P.fills, { patchDraws: P.patchDraws, blurSigma: P.blurSigma, seed }, bank);
  const prober = new Prober(model, runner, base, target);
  const domain = explainedDomain(target.region);
  const units = domainUnits(P.rankUnits, domain, model.height, model.width, kase.image);
  if (units.label.length < P.steps) {
    addRoiNote(
      notes,
      `${id.model}: --rank-units ${rankUnitsName(P.rankUnits)} leaves as few as ${units.label.length} units for --steps ${P.steps}, so some curve steps remove no unit (use smaller units or fewer steps)`,
    );
  }
  const place = { roiRect: roi.rect, roiKind: roi.kind };
  return { ...inputs, spec, target, fills, prober, domain, units, dist: distanceToRoi(target.region), place };
}

/** The curves of one order (a method's or a control's) and, when the protocol asks, its area-matched top-k effects. */
async function orderCurves<F extends { name: FillName }>(
  ctx: OrderContext<F>,
  r: Ranking,
  f: F,
  ends: Endpoints,
): Promise<{ curves: CurvePair; topArea?: TopK[] }> {
  const { prober, P, target } = ctx;
  const curves = await curvePair(prober, r, f, P.steps, ends, P.minRange);
  return P.topArea.length ? { curves, topArea: await topAreaEffects(prober, r, f, P.topArea, target.base) } : { curves };
}

/** The model-free controls of the RoI: the random order (whose end points every method's curves share) and the distance order. */
export async function computeControl<F extends { name: FillName }>(ctx: OrderContext<F>, id: CellId, key: string): Promise<ControlRecord> {
  const { prober, P, seed, units, target } = ctx;
  const before = prober.passes;
  const random = randomUnits(units, seed);
  const near = P.controls.includes("distance") ? distanceUnits(units, ctx.dist, seed) : undefined;
  const perFill: NonNullable<ControlRecord["fills"]> = {};
  const distance: NonNullable<ControlRecord["distance"]> = {};
  for (const f of ctx.fills) {
    const [removed] = await prober.outcomes([ctx.domain], f);
    const ends = { base: target.base, removed };
    perFill[f.name] = { ends, ...(await orderCurves(ctx, random, f, ends)) };
    if (near) distance[f.name] = await orderCurves(ctx, near, f, ends);
  }
  return {
    format: "segcause.evalcontrol/1",
    key,
    id,
    ...ctx.place,
    status: "ok",
    baseOutcome: target.base,
    outcome: target.outcome,
    reference: target.referenceKind,
    fills: perFill,
    ...(near ? { distance } : {}),
    passes: prober.passes - before,
  };
}

/** The record of a RoI whose Target could not be resolved. */
export function skippedControl(place: RoiPlace, id: CellId, key: string, reason: string): ControlRecord {
  return { format: "segcause.evalcontrol/1", key, id, ...place, status: "skipped", reason };
}

/** The method's Attribution of `kase` (the RoI's case, or a noisy copy for stability) with the RoI's Target. */
export function explainCell(
  ctx: RoiContext,
  def: MethodDefinition,
  options: Record<string, unknown>,
  kase: Case,
  seed: number,
  checkpointPath?: string,
): Promise<Attribution> {
  return def.explain({
    model: ctx.model,
    kase,
    target: ctx.spec,
    run: { seed, batchSize: ctx.batchSize, checkpointPath, onProgress: ctx.onProgress, incremental: ctx.incremental },
    bank: def.needsBank ? ctx.bank : undefined,
    options,
  });
}

/** Box–Muller Gaussian pixel noise, a pure function of (seed, pixel index). */
export function noisyCase(kase: Case, sigma: number, seed: number): Case {
  const data = new Uint8Array(kase.image.data.length);
  for (let i = 0; i < data.length; i++) {
    const u1 = Math.max(1e-12, uniform(seed, STREAM.noise, 2 * i)),
      u2 = uniform(seed, STREAM.noise, 2 * i + 1);
    const z = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
    data[i] = Math.max(0, Math.min(255, Math.round(kase.image.data[i] + sigma * z)));
  }
  return { ...kase, image: { ...kase.image, data }, imageSha256: sha256(data), derivedFrom: kase.derivedFrom ?? kase.imageSha256 };
}

/** Where a cell was computed and with what: the parts of its record that are not measured. */
export interface CellHeader {
  key: string;
  id: CellId;
  def: MethodDefinition;
  options: Record<string, unknown>;
}

/**
 * The metrics of a method's Attribution `a` on the RoI, measured against the control's end points,
 * as the cell's record. `causal` is the known causal region (tests with tiny models).
 */
export function measureCell(
  ctx: RoiContext,
  control: ControlRecord,
  h: CellHeader,
  a: Attribution,
  causal: Uint8Array | undefined,
): Promise<CellRecord> {
  const { P, seed, kase } = ctx;
  const stability = async () => {
    const noisy = await explainCell(ctx, h.def, h.options, noisyCase(kase, P.noiseSigma, seed), seed);
    const reseeded = await explainCell(ctx, h.def, h.options, kase, seed + 1);
    return {
      noisy: supportMap(noisy),
      reseeded: supportMap(reseeded),
      passes: noisy.forwardPasses + noisy.backwardPasses + reseeded.forwardPasses + reseeded.backwardPasses,
    };
  };
  return measureOrder(ctx, control, h, { ...a, support: supportMap(a) }, causal, stability);
}

/** A method's map on the domain's grid, as the metrics read it, and its cost. */
export interface MeasuredMap {
  /** on the domain's grid (an image's pixels, a volume's box cells) */
  map: Float32Array;
  /** supportMap of it: larger = the cell's content held the RoI outcome up more */
  support: Float32Array;
  signed: boolean;
  forwardPasses: number;
  backwardPasses: number;
  wallMs: number;
  notes: string[];
}

/** The stability maps (--stability): the method on a noisy copy and at seed + 1, as support maps, and their passes. */
export type StabilityRun = () => Promise<{ noisy: Float32Array; reseeded: Float32Array; passes: number }>;

/** The cell's record from a method's map on the domain's grid: the one measurement of images and volumes. */
export async function measureOrder<F extends { name: FillName }>(
  ctx: OrderContext<F>,
  control: ControlRecord,
  h: CellHeader,
  a: MeasuredMap,
  causal: Uint8Array | undefined,
  stability?: StabilityRun,
): Promise<CellRecord> {
  const { P, seed, prober, target, domain } = ctx;
  const support = a.support;
  const order = rankUnits(ctx.units, support, seed);
  const metrics: Record<string, number | null> = {};
  const results: CellRecord["fills"] = {};
  const before = prober.passes;
  for (const f of ctx.fills) {
    const ends = control.fills![f.name]!.ends;
    const { curves, topArea } = await orderCurves(ctx, order, f, ends);
    const topk = await topKEffects(prober, order, f, P.topk, target.base);
    results[f.name] = { ends, curves, topk, ...(topArea ? { topArea } : {}) } satisfies FillResult;
    curveMetrics(curves, f.name, metrics);
    for (const t of topk) metrics[`top${Math.round(t.k * 100)}:${f.name}`] = t.effect;
    for (const t of topArea ?? []) metrics[topAreaMetric(t.k, f.name)] = t.effect;
  }
  const firstFill = results[P.fills[0]];
  for (const t of firstFill?.topk ?? []) metrics[`top${Math.round(t.k * 100)}_area`] = t.area;
  for (const t of firstFill?.topArea ?? []) metrics[`${topAreaMetric(t.k)}_area`] = t.area;
  const leak = leakage(support, domain, ctx.dist, P.radius, causal);
  metrics.leakage = Number.isNaN(leak.farShare) ? null : leak.farShare;
  if (causal) metrics.outside_causal = Number.isNaN(leak.outsideCausal!) ? null : leak.outsideCausal!;
  const g = gini(a.map, domain);
  metrics.gini = Number.isNaN(g) ? null : g;
  let stabilityPasses = 0;
  if (P.stability) {
    if (!stability) throw new Error("--stability needs the method run again");
    const s = await stability();
    const sn = spearman(support, s.noisy, domain),
      ss = spearman(support, s.reseeded, domain);
    metrics.stab_noise = Number.isNaN(sn) ? null : sn;
    metrics.stab_seed = Number.isNaN(ss) ? null : ss;
    stabilityPasses = s.passes;
  }
  metrics.forward = a.forwardPasses;
  metrics.backward = a.backwardPasses;
  metrics.wall_s = a.wallMs / 1000;
  return {
    format: "segcause.evalcell/1",
    key: h.key,
    id: h.id,
    method: h.def.name,
    options: h.options,
    seed,
    ...ctx.place,
    baseOutcome: target.base,
    outcome: target.outcome,
    reference: target.referenceKind,
    signed: a.signed,
    fills: results,
    metrics,
    cost: {
      forwardPasses: a.forwardPasses,
      backwardPasses: a.backwardPasses,
      wallMs: a.wallMs,
      evaluationPasses: prober.passes - before,
      stabilityPasses,
    },
    notes: a.notes,
  };
}

/** Writes a finished cell: the map, the Attribution's metadata, then cell.json last (its presence marks the cell complete). */
export function writeCell(dir: string, a: Attribution, record: CellRecord, checkpointPath: string): Promise<void> {
  return writeCellFiles(dir, encodeNpy(a.map, [a.height, a.width]), attributionMeta(a), record, checkpointPath);
}

/** The cell's files (an image's or a volume's): the map, the Attribution's metadata, then cell.json last. */
export async function writeCellFiles(
  dir: string,
  npy: Uint8Array,
  meta: Record<string, unknown>,
  record: CellRecord,
  checkpointPath: string,
): Promise<void> {
  await writeAtomic(join(dir, "map.npy"), npy);
  await writeAtomic(join(dir, "attribution.json"), JSON.stringify(meta, null, 1));
  await writeAtomic(join(dir, "cell.json"), JSON.stringify(record, null, 1));
  await rm(checkpointPath, { force: true });
}

/** The Attribution without its per-pixel arrays and unit list (map.npy holds the map). */
export function attributionMeta(a: Attribution): Record<string, unknown> {
  const statuses: Record<string, number> = {};
  for (const u of a.units) statuses[u.status] = (statuses[u.status] ?? 0) + 1;
  return {
    format: "segcause.attribution-meta/1",
    method: a.method,
    unitKind: a.unitKind,
    valueUnits: a.valueUnits,
    signed: a.signed,
    height: a.height,
    width: a.width,
    roi: a.roi,
    roiCells: a.roiCells,
    units: a.units.length,
    unitStatuses: statuses,
    baseOutcome: a.baseOutcome,
    outcome: a.outcome,
    reference: a.reference,
    forwardPasses: a.forwardPasses,
    backwardPasses: a.backwardPasses,
    wallMs: a.wallMs,
    notes: a.notes,
    provenance: a.provenance,
    sign: a.signed ? "negative = the unit's content supported the RoI prediction; positive = it hurt" : "unsigned importance >= 0 (drawn as support)",
  };
}
