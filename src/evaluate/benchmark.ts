/**
 * The faithfulness benchmark: for every (model, image, RoI, method) cell, the method's
 * Attribution, then deletion/insertion curves, top-k effects, leakage, sparsity, cost and
 * (optionally) stability, all measured with the method's own Target (RoI outcome vs reference).
 * Cells are written atomically as they finish and skipped on a rerun, so a killed run resumes and
 * ends with the same numbers (every random choice is a pure function of the seed and the cell).
 */
import { mkdir, rm } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { fail, SegcauseError } from "../errors.js";
import { loadCase, type Case } from "../data/case.js";
import { casesInSplits, readManifest, type Dataset } from "../data/manifest.js";
import { buildPatchBank, PatchBank } from "../data/patchbank.js";
import { Model } from "../model/model.js";
import { Runner } from "../model/runner.js";
import { getMethod } from "../explain/catalog.js";
import { autoLayerMovedByOutputPath } from "../explain/gradcam.js";
import { opsetOf } from "../onnx/opset.js";
import { kebab, keyedOptions, resolveOptions, type MethodDefinition } from "../explain/methods.js";
import { supportMap, type Attribution } from "../explain/attribution.js";
import { resolveTarget, type Target, type TargetSpec } from "../target/target.js";
import { Region } from "../target/roi.js";
import type { OutcomeName } from "../target/outcome.js";
import { assertInside } from "../util/files.js";
import { sha256, sha256File } from "../util/hash.js";
import { encodeNpy } from "../util/npy.js";
import { uniform } from "../util/rng.js";
import { fmtDuration, type ProgressListener } from "../util/progress.js";
import { curvePair, Prober, topAreaEffects, topKEffects, type CurvePair, type TopK } from "./curves.js";
import { makeFills, type FillName } from "./fills.js";
import { distanceToRoi, explainedDomain, gini, leakage, spearman } from "./map-metrics.js";
import { distanceUnits, randomUnits, rankUnits, type Ranking } from "./ordering.js";
import { STREAM } from "../util/streams.js";
import { protocolKey as protocolKeyOf, topAreaMetric, type ControlName } from "./protocol.js";
import { domainUnits, RANK_UNITS_DEFAULT, rankUnitsName, rankUnitsProblem, type RankUnits } from "./rank-units.js";
import { selectRois, type PlacedRoi, type RoiSpec } from "./rois.js";
import { cellDir, controlPath, readJson, safe, writeAtomic, type CellId, type CellRecord, type ControlRecord, type FailedRecord, type FillResult } from "./store.js";

export interface MethodRun {
  /** registry name */
  name: string;
  /** given options (the rest take the method's defaults) */
  options: Record<string, unknown>;
}

export interface Protocol {
  /** steps of the curves, each removing round(k·U/K) units in all (default 20) */
  steps: number;
  /** units every map is ranked on (default 16 px blocks clipped to the domain; pixel = the published run's protocol) */
  rankUnits: RankUnits;
  fills: FillName[];
  /** natural-patch draws averaged per curve point (default 2) */
  patchDraws: number;
  blurSigma: number;
  /** fractions of the positive support mass for the top-k effects (default 0.01, 0.05, 0.1, 0.2) */
  topk: number[];
  /** fractions of the domain's area for the area-matched top-k effects (default 0.01, 0.05, 0.1, 0.2; empty = none) */
  topArea: number[];
  /** model-free orders measured beside the methods: the random order (always) and distance to the RoI (default both) */
  controls: ControlName[];
  /** leakage radius in pixels (default 32) */
  radius: number;
  /** normalised AUCs are undefined unless removing all of D lowers the outcome by at least this: m(X) − m(removed) ≥ minRange (default 5 outcome units) */
  minRange: number;
  /** run each method twice more (noisy input, seed + 1) for the stability metrics */
  stability: boolean;
  /** sd of the Gaussian pixel noise for stability, in 0..255 units (default 4) */
  noiseSigma: number;
  outcome: OutcomeName;
  reference: "auto" | "ground-truth" | "prediction";
}

export const PROTOCOL_DEFAULTS: Protocol = {
  steps: 20,
  rankUnits: RANK_UNITS_DEFAULT,
  fills: ["patches", "blur", "zero", "mean"],
  patchDraws: 2,
  blurSigma: 5,
  topk: [0.01, 0.05, 0.1, 0.2],
  topArea: [0.01, 0.05, 0.1, 0.2],
  controls: ["random", "distance"],
  radius: 32,
  minRange: 5,
  stability: false,
  noiseSigma: 4,
  outcome: "dice",
  reference: "auto",
};

export interface EvaluateConfig {
  models: string[];
  /** manifest.json or a dataset folder */
  dataset: string;
  split: string;
  /** first n cases of the split, in manifest order (default all) */
  images?: number;
  methods: MethodRun[];
  rois: RoiSpec;
  /** natural-patch bank; default: built per model input size from `bankSplits` of the dataset, cached in out/banks */
  bank?: string;
  bankSplits: string[];
  bankPatchSize: number;
  out: string;
  seed: number;
  protocol: Protocol;
  batchSize?: number;
  threads?: number;
}

export interface RunControl {
  signal?: AbortSignal;
  /** stop after computing this many new cells (finished cells found on disk do not count) */
  maxCells?: number;
  log?: (line: string) => void;
  /** known causal region per image id, at the model input size (tests with tiny models) */
  causalMask?: (imageId: string) => Uint8Array | undefined;
  /** progress of each method's own passes */
  onProgress?: ProgressListener;
  /** called before a cell is computed (tests inject failures here) */
  beforeCell?: (id: CellId, method: string) => void;
  /**
   * Called once the dataset, method options, models and a given bank have been checked, before
   * anything is written to `out` (the CLI records run.json here, so a refused run leaves none).
   */
  onValidated?: () => void | Promise<void>;
  /** called before the first file (a patch bank) may be written to `out` (the CLI marks the folder as an evaluation's) */
  beforeWrite?: () => void;
}

export interface RunSummary {
  computed: number;
  resumed: number;
  skipped: number;
  /** cells whose method refused the input (recorded in failed.json) */
  failed: number;
  stoppedEarly: boolean;
  notes: string[];
}

const modelName = (p: string) => basename(p).replace(/\.onnx$/i, "");

async function bankFor(cfg: EvaluateConfig, ds: Dataset, model: Model, cache: Map<string, PatchBank>, log: (s: string) => void): Promise<PatchBank> {
  if (cfg.bank) {
    if (!cache.has(cfg.bank)) cache.set(cfg.bank, await PatchBank.load(cfg.bank));
    return cache.get(cfg.bank)!;
  }
  const filter = model.card.input.resize;
  const name = `${safe(ds.name)}-${cfg.bankSplits.join("+")}-${model.height}x${model.width}-${filter}-p${cfg.bankPatchSize}-s${cfg.seed}.scbank`;
  // The dataset's name comes from its manifest: one safe path component, checked to stay inside --out.
  const path = join(cfg.out, "banks", name);
  assertInside(cfg.out, path);
  if (cache.has(path)) return cache.get(path)!;
  const images = casesInSplits(ds, cfg.bankSplits).map((c) => c.image);
  // The images' content, not their names: another dataset under the same manifest name (or a
  // re-split one) must not reuse this bank, nor mix its cells with this folder's.
  const sources = sha256((await Promise.all(images.map((f) => sha256File(f)))).join("\n"));
  let bank: PatchBank | undefined;
  const ok = readJson<{ sourcesSha256?: string }>(path + ".ok");
  if (ok?.sourcesSha256 !== undefined && ok.sourcesSha256 !== sources) {
    fail(
      `${cfg.out} was evaluated on another dataset named '${ds.name}' (its ${cfg.bankSplits.join("+")} images differ from those of ${ds.root})`,
      "use a new --out folder for this dataset, or give its manifest another \"name\"",
    );
  }
  if (ok) bank = await PatchBank.load(path);
  if (!bank) {
    log(`building a patch bank from ${images.length} ${cfg.bankSplits.join("+")} images of ${ds.name} at ${model.height}x${model.width}`);
    bank = await buildPatchBank(images, { height: model.height, width: model.width, filter, patchSize: cfg.bankPatchSize, seed: cfg.seed });
    await mkdir(join(cfg.out, "banks"), { recursive: true });
    await bank.save(path);
    await writeAtomic(path + ".ok", JSON.stringify({ source: "built by segcause evaluate", images: images.length, sourcesSha256: sources }));
    // Reload: a bank's identity (sha256) is that of its file, the same on every rerun.
    bank = await PatchBank.load(path);
  }
  cache.set(path, bank);
  return bank;
}

/** Box–Muller Gaussian pixel noise, a pure function of (seed, pixel index). */
export function noisyCase(kase: Case, sigma: number, seed: number): Case {
  const data = new Uint8Array(kase.image.data.length);
  for (let i = 0; i < data.length; i++) {
    const u1 = Math.max(1e-12, uniform(seed, STREAM.noise, 2 * i)), u2 = uniform(seed, STREAM.noise, 2 * i + 1);
    const z = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
    data[i] = Math.max(0, Math.min(255, Math.round(kase.image.data[i] + sigma * z)));
  }
  return { ...kase, image: { ...kase.image, data }, imageSha256: sha256(data), derivedFrom: kase.derivedFrom ?? kase.imageSha256 };
}

/** The curves of one order (a method's or a control's) and, when the protocol asks, its area-matched top-k effects. */
async function orderCurves(prober: Prober, r: Ranking, f: Awaited<ReturnType<typeof makeFills>>[number], P: Protocol, ends: { base: number; removed: number }, base: number): Promise<{ curves: CurvePair; topArea?: TopK[] }> {
  const curves = await curvePair(prober, r, f, P.steps, ends, P.minRange);
  return P.topArea.length ? { curves, topArea: await topAreaEffects(prober, r, f, P.topArea, base) } : { curves };
}

function curveMetrics(prefix: string, c: CurvePair, m: Record<string, number | null>, fill: string): void {
  m[`${prefix}del_auc:${fill}`] = c.deletionAuc;
  m[`${prefix}ins_auc:${fill}`] = c.insertionAuc;
  m[`${prefix}del_norm:${fill}`] = c.deletionAucNorm;
  m[`${prefix}ins_norm:${fill}`] = c.insertionAucNorm;
}

export async function runEvaluation(given: EvaluateConfig, ctl: RunControl = {}): Promise<RunSummary> {
  // One file named twice (`a.onnx ./a.onnx`) is one model.
  const cfg = { ...given, models: [...new Map(given.models.map((p) => [resolve(p), p])).values()] };
  const log = ctl.log ?? (() => {});
  const P = cfg.protocol;
  const ds = readManifest(cfg.dataset);
  let cases = casesInSplits(ds, [cfg.split]);
  const inSplit = cases.length;
  if (cfg.images !== undefined) cases = cases.slice(0, cfg.images);
  if (cases.length === 0) fail(`no cases in split '${cfg.split}' of ${ds.name}`);
  if ("file" in cfg.rois) checkRoiFile(cfg.rois.file, cfg.rois.rows, ds, cases, cfg);
  const defs = cfg.methods.map((m) => ({ run: m, def: getMethod(m.name), options: resolveOptions(getMethod(m.name), m.options) }));
  const needBank = P.fills.includes("patches") || defs.some((d) => d.def.needsBank);
  const summary: RunSummary = { computed: 0, resumed: 0, skipped: 0, failed: 0, stoppedEarly: false, notes: [] };
  if (cfg.models.length < given.models.length) summary.notes.push(`a model given more than once in --models is evaluated once`);
  if (cfg.images !== undefined && cfg.images > inSplit) summary.notes.push(`--images ${cfg.images}: split '${cfg.split}' has only ${inSplit} images, all evaluated`);
  const banks = new Map<string, PatchBank>();
  const protocolKey = protocolKeyOf(P, cfg.seed);

  // Image-major order (every model on image 1, then image 2, ...): a run stopped early has whole
  // images for every model, which is what the paired statistics need. Models stay loaded, so all
  // are loaded up front: a bad model or card fails before anything is written.
  const loaded = new Map<string, { model: Model; runner: Runner; bank?: PatchBank }>();
  // Cells are filed under the model's file name: two files of one name would share cells.
  const byName = new Map<string, string>();
  for (const p of new Set(cfg.models)) {
    const other = byName.get(modelName(p));
    if (other) fail(`--models ${other} and ${p} have the same file name '${basename(p)}', which names their cells`, "copy or link one of them under another name");
    byName.set(modelName(p), p);
  }
  try {
    for (const path of cfg.models) {
      if (loaded.has(path)) continue;
      const model = await Model.load(path, { threads: cfg.threads });
      loaded.set(path, { model, runner: new Runner(model, { batchSize: cfg.batchSize }) });
      const problem = rankUnitsProblem(P.rankUnits, model.height, model.width);
      if (problem) fail(`${problem} of ${basename(path)}`, "use smaller --rank-units (e.g. block:16)");
    }
    if (needBank && cfg.bank) banks.set(cfg.bank, await PatchBank.load(cfg.bank));
    else if (needBank) {
      casesInSplits(ds, cfg.bankSplits);
      if (cfg.bankSplits.includes(cfg.split)) summary.notes.push(`the patch bank is built from split '${cfg.split}', which is also evaluated: each image's own patches are left out of its draws, the other evaluated images' patches stay in`);
    }
    // Settings that can work on none of the models (a block larger than every input, a bank of
    // another patch size, a Grad-CAM layer no model has) stop the run now, not as one refusal per
    // cell; a method only some models cannot take is refused on their cells, as before, with a note.
    for (const d of defs) {
      if (!d.def.check) continue;
      const bankPatchSize = d.def.needsBank ? (cfg.bank ? banks.get(cfg.bank)!.patchSize : cfg.bankPatchSize) : undefined;
      const refusals: { path: string; error: SegcauseError }[] = [];
      for (const [path, { model }] of loaded) {
        try {
          d.def.check({ model, options: d.options, bankPatchSize, label: (o, v) => `--set ${d.def.name}.${kebab(o)}${v === undefined ? "" : `=${v}`}` });
        } catch (e) {
          if (!(e instanceof SegcauseError)) throw e;
          refusals.push({ path, error: e });
        }
      }
      if (refusals.length === loaded.size) throw refusals[0].error;
      for (const r of refusals) summary.notes.push(`${d.def.name} cannot run on ${modelName(r.path)}: ${r.error.message}; its cells of that model will be refused`);
    }
    // Every chosen image, mask and RoI is read once before the first cell, so that a missing file,
    // a label-map mask or a RoI outside the image stops the run now rather than hours in.
    // Once per input geometry: models of one input size read the same pixels.
    // What loadCase decodes by: models differing only in normalisation read the same pixels.
    const geometry = ({ card: { input: i } }: Model) => JSON.stringify([i.height, i.width, i.channels, i.resize]);
    const geometries = new Map([...loaded.values()].map(({ model }) => [geometry(model), model]));
    for (const c of cases) {
      for (const model of geometries.values()) {
        const kase = await inCase(c.id, () => loadCase(model, c.image, c.mask, { allowEmptyMask: true }));
        await inCase(c.id, async () => selectRois(cfg.rois, c.id, kase.mask, model.height, model.width, cfg.seed, []));
      }
    }
    // Notes known before the first cell (fewer images than asked, methods some model cannot take)
    // are shown now, not only in the summary after hours of work.
    for (const n of summary.notes) log(`note: ${n}`);
    // The run is recorded (run.json) once the first RoI's existing cells match its settings, so a
    // rerun refused for other settings leaves the folder's record as it was.
    let recorded = false;
    const validated = async () => {
      if (!recorded) (recorded = true), await ctl.onValidated?.();
    };
    // Whole-run progress for the log: cells accounted for (computed, found, skipped, refused) of
    // about how many (less when a rule places fewer RoIs than it asks for), and an ETA from the time
    // spent on the RoIs that computed cells in this run (not bank building).
    const roisPer = (id: string) => ("file" in cfg.rois ? cfg.rois.rows.filter((r) => r.image === id).length : cfg.rois.rules.reduce((a, r) => a + r.count, 0));
    let total = cases.reduce((a, c) => a + roisPer(c.id), 0) * cfg.models.length * defs.length;
    let busyMs = 0;
    const progress = (runningMs: number) => {
      const done = summary.computed + summary.resumed + summary.skipped + summary.failed;
      const eta = summary.computed > 0 ? ((busyMs + runningMs) / summary.computed) * Math.max(0, total - done) : undefined;
      return `cells ${done} of about ${total}, ETA ${fmtDuration(eta)}`;
    };
    for (const c of cases) {
      // Models of one input geometry share the decoded case (read once per image, not per model).
      const decoded = new Map<string, Case>();
      for (const modelPath of cfg.models) {
        const m = loaded.get(modelPath)!;
        if (needBank && !m.bank) {
          if (!cfg.bank) ctl.beforeWrite?.(); // a bank is built into out/banks
          m.bank = await bankFor(cfg, ds, m.model, banks, log);
        }
        const { model, runner, bank } = m;
        // An empty ground truth is allowed: its RoIs are skipped with the reason (Dice undefined).
        let kase = decoded.get(geometry(model));
        if (!kase) {
          kase = await loadCase(model, c.image, c.mask, { allowEmptyMask: true });
          kase.id = c.id;
          decoded.set(geometry(model), kase);
          if (kase.emptyMask) summary.notes.push(`${c.id} at ${model.height}x${model.width}: ${kase.emptyMask}; RoIs that need the structure are not placed, Dice on it is undefined`);
        }
        const rois = selectRois(cfg.rois, c.id, kase.mask, model.height, model.width, cfg.seed, summary.notes);
        total -= (roisPer(c.id) - rois.length) * defs.length;
        for (const roi of rois) {
          const id: CellId = { dataset: ds.name, model: modelName(modelPath), image: c.id, roi: roi.id };
          const computedBefore = summary.computed, start = Date.now();
          // the RoI in progress counts from its start
          const stop = await evaluateRoi(cfg, ctl, summary, model, runner, kase, roi, id, defs, bank, protocolKey, log, () => progress(Date.now() - start), validated);
          if (summary.computed > computedBefore) busyMs += Date.now() - start;
          if (stop) {
            summary.stoppedEarly = true;
            return summary;
          }
        }
      }
    }
    await validated(); // a run whose RoIs were all skipped is an evaluation too
  } finally {
    for (const m of loaded.values()) await m.model.release();
  }
  return summary;
}

/** Runs a check of one case, naming the case in its error. */
async function inCase<T>(id: string, f: () => Promise<T> | T): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof SegcauseError) throw new SegcauseError(`case ${id}: ${e.message}`, e.hint);
    throw e;
  }
}

/**
 * A RoI file must name images of the dataset, and some of them must be among the images evaluated:
 * a mistyped id or another split would otherwise give an empty benchmark without a word.
 */
function checkRoiFile(file: string, rows: readonly { image: string }[], ds: Dataset, cases: readonly { id: string }[], cfg: EvaluateConfig): void {
  const known = new Set(ds.cases.map((c) => c.id));
  const unknown = [...new Set(rows.map((r) => r.image).filter((id) => !known.has(id)))];
  if (unknown.length) {
    fail(`RoI file ${file} names ${unknown.length} image(s) that are not in ${ds.name}: ${unknown.slice(0, 5).join(", ")}${unknown.length > 5 ? ", ..." : ""}`, `use the manifest's case ids (e.g. ${ds.cases[0]?.id ?? "?"})`);
  }
  const chosen = new Set(cases.map((c) => c.id));
  if (!rows.some((r) => chosen.has(r.image))) {
    const splits = [...new Set(rows.map((r) => ds.cases.find((c) => c.id === r.image)!.split))];
    fail(
      `none of the ${cases.length} images evaluated (split '${cfg.split}'${cfg.images !== undefined ? `, first ${cfg.images}` : ""}) has a RoI in ${file}`,
      `its images are in split ${splits.join(", ")}: use --split ${splits[0]}${cfg.images !== undefined ? " and a larger --images" : ""}`,
    );
  }
}

type Def = { run: MethodRun; def: ReturnType<typeof getMethod>; options: Record<string, unknown> };

/**
 * Raised when segcause learns to handle inputs it refused (operators, formats): a refusal recorded
 * under an older revision is retried once. (2: reflect/edge/wrap Pad, LogSoftmax, GroupNormalization, F.pad's computed pads.)
 */
const REFUSALS_REVISION = 2;

/**
 * Key parts of cells whose maps a fix changed only on some models, so that a folder resumed on such
 * a model recomputes them and other folders keep their keys: gradient methods on multi-class logit
 * models below opset 13 (their appended softmax ran over C x H x W), and Grad-CAM's automatic layer
 * on models with a second head (it could pick that head's features).
 */
const fixKeys = new WeakMap<Model, { gradient: object; gradcam: object }>();
function keyExtras(d: Def, model: Model): object {
  let k = fixKeys.get(model);
  if (!k) {
    // A one-channel output gets a Sigmoid, which the fix did not change.
    const dims = model.graph.outputs.find((o) => o.name === model.outputName)?.dims ?? [];
    const oneChannel = dims.length === 4 && dims[1] === 1;
    const softmaxFix = opsetOf(model.proto()) < 13 && model.card.output.kind === "logits" && !oneChannel;
    k = { gradient: softmaxFix ? { probabilities: "softmax over channels (opset >= 13)" } : {}, gradcam: autoLayerMovedByOutputPath(model) ? { autoLayer: "on the explained output's path" } : {} };
    fixKeys.set(model, k);
  }
  if (d.def.family !== "gradient") return {};
  return { ...k.gradient, ...(d.def.name === "gradcam" && d.options.layer === "auto" ? k.gradcam : {}) };
}

/** What a refused rerun changed, as far as the stored cell tells: method options, seed, fills, outcome. */
function cellDifference(e: CellRecord, d: Def, cfg: EvaluateConfig): string {
  const was = keyedOptions(d.def, e.options ?? {}), now = keyedOptions(d.def, d.options);
  const show = (v: unknown) => JSON.stringify(v ?? null);
  const diffs = [...new Set([...Object.keys(was), ...Object.keys(now)])]
    .filter((k) => show(was[k]) !== show(now[k]))
    .map((k) => `--set ${d.def.name}.${kebab(k)}: ${show(was[k])} then, ${show(now[k])} now`);
  if (e.seed !== cfg.seed) diffs.push(`--seed: ${e.seed} then, ${cfg.seed} now`);
  const fills = Object.keys(e.fills ?? {});
  if (show(fills) !== show(cfg.protocol.fills)) diffs.push(`--fills: ${fills.join(",")} then, ${cfg.protocol.fills.join(",")} now`);
  if (e.outcome !== cfg.protocol.outcome) diffs.push(`--outcome: ${e.outcome} then, ${cfg.protocol.outcome} now`);
  const legacy = cfg.protocol.rankUnits.kind === "pixel" && cfg.protocol.topArea.length === 0 && !cfg.protocol.controls.includes("distance");
  return diffs.length ? diffs.join("; ") : `the method's options, seed, fills and outcome match: another protocol setting (e.g. --steps, --topk${legacy ? "" : ", --rank-units: a folder from before the unit protocol needs --rank-units pixel --top-area none --controls random"}), the model, its card, the bank or the image differs`;
}

async function evaluateRoi(
  cfg: EvaluateConfig, ctl: RunControl, summary: RunSummary, model: Model, runner: Runner, kase: Case, roi: PlacedRoi, id: CellId,
  defs: Def[], bank: PatchBank | undefined, protocolKey: unknown, log: (s: string) => void, progress: () => string, validated: () => Promise<void>,
): Promise<boolean> {
  const P = cfg.protocol;
  // A bank holding this image: its patches are left out (PatchIntervention), which a folder
  // computed before that rule must not mix with; the key changes only for such banks.
  const ownPatches = bank?.sourcesOf(kase).some(Boolean) ? { bankOwnPatches: "left out" } : {};
  const groupKey = { protocol: protocolKey, model: model.sha256, card: model.card, image: kase.imageSha256, mask: kase.maskSha256 ?? null, roi: roi.rect, bank: bank?.sha256 ?? null, ...ownPatches };
  const cellKeys = defs.map((d) => sha256(JSON.stringify({ ...groupKey, method: d.def.name, options: keyedOptions(d.def, d.options), ...revisionKey(d.def, d.options), ...keyExtras(d, model) })));
  const dirs = defs.map((d) => cellDir(cfg.out, id, d.def.name));
  const existing = dirs.map((d) => readJson<CellRecord>(join(d, "cell.json")));
  existing.forEach((e, i) => {
    if (e && e.key !== cellKeys[i]) fail(`${join(dirs[i], "cell.json")} was computed with different settings (${cellDifference(e, defs[i], cfg)})`, "use a new --out folder for a different protocol, model, bank or method options");
  });
  await validated();
  // A method that refused this cell (a SegcauseError, e.g. an op it cannot differentiate) is recorded
  // in failed.json and not retried with the same settings.
  const failed = dirs.map((d, i) => {
    const f = readJson<FailedRecord>(join(d, "failed.json"));
    return f?.key === cellKeys[i] && (f.refusals ?? 1) >= REFUSALS_REVISION;
  });
  const todo = defs.map((_, i) => i).filter((i) => !existing[i] && !failed[i]);
  summary.resumed += existing.filter(Boolean).length;
  summary.failed += failed.filter(Boolean).length;
  const ctrlPath = controlPath(cfg.out, id);
  const ctrlKey = sha256(JSON.stringify(groupKey));
  let control = readJson<ControlRecord>(ctrlPath);
  if (control && control.key !== ctrlKey) fail(`${ctrlPath} was computed with different settings`, "use a new --out folder for a different protocol, model or bank");
  if (control?.status === "skipped") { summary.skipped += todo.length; return false; }
  if (todo.length === 0 && control) return false;

  // Unperturbed pass → the Target shared by the curves of every method.
  const base = model.preprocess(kase.image);
  let baseOutput: Float32Array | undefined;
  await runner.evaluate([0], (_, dst) => dst.set(base), (data) => { baseOutput = data.slice(0, data.length / runner.batchSize); return 0; });
  const spec: TargetSpec = { roi: roi.rect, outcome: P.outcome, reference: P.reference };
  let target: Target;
  try {
    target = resolveTarget(model, kase, spec, baseOutput!);
  } catch (e) {
    if (!(e instanceof SegcauseError)) throw e;
    const reason = e.oneLine();
    await writeAtomic(ctrlPath, JSON.stringify({ format: "segcause.evalcontrol/1", key: ctrlKey, id, roiRect: roi.rect, roiKind: roi.kind, status: "skipped", reason } satisfies ControlRecord, null, 1));
    summary.notes.push(`${id.model} ${id.image} ${id.roi}: skipped (${reason})`);
    summary.skipped += todo.length;
    return false;
  }
  const fills = await makeFills(model, kase, P.fills, { patchDraws: P.patchDraws, blurSigma: P.blurSigma, seed: cfg.seed }, bank);
  const prober = new Prober(model, runner, base, target);
  const domain = explainedDomain(target.region);
  const units = domainUnits(P.rankUnits, domain, model.height, model.width, kase.image);
  if (units.label.length < P.steps) {
    const note = `${id.model}: --rank-units ${rankUnitsName(P.rankUnits)} leaves as few as ${units.label.length} units for --steps ${P.steps}, so some curve steps remove no unit (use smaller units or fewer steps)`;
    if (!summary.notes.some((n) => n.startsWith(`${id.model}: --rank-units`))) summary.notes.push(note);
  }
  const dist = distanceToRoi(target.region);

  if (!control) {
    const before = prober.passes;
    const random = randomUnits(units, cfg.seed);
    const near = P.controls.includes("distance") ? distanceUnits(units, dist, cfg.seed) : undefined;
    const perFill: NonNullable<ControlRecord["fills"]> = {};
    const distance: NonNullable<ControlRecord["distance"]> = {};
    for (const f of fills) {
      const [removed] = await prober.outcomes([domain], f);
      const ends = { base: target.base, removed };
      perFill[f.name] = { ends, ...(await orderCurves(prober, random, f, P, ends, target.base)) };
      if (near) distance[f.name] = await orderCurves(prober, near, f, P, ends, target.base);
    }
    control = { format: "segcause.evalcontrol/1", key: ctrlKey, id, roiRect: roi.rect, roiKind: roi.kind, status: "ok", baseOutcome: target.base, outcome: target.outcome, reference: target.referenceKind, fills: perFill, ...(near ? { distance } : {}), passes: prober.passes - before };
    await writeAtomic(ctrlPath, JSON.stringify(control, null, 1));
  }

  const causal = ctl.causalMask?.(kase.id);
  for (const i of todo) {
    if (ctl.signal?.aborted) return true;
    if (ctl.maxCells !== undefined && summary.computed >= ctl.maxCells) return true;
    const { def, options } = defs[i];
    ctl.beforeCell?.(id, def.name);
    log(`${id.model} · ${id.image} · ${id.roi} · ${def.name}`);
    const dir = dirs[i];
    await mkdir(dir, { recursive: true });
    const explain = (k: Case, seed: number, checkpoint?: string) =>
      def.explain({ model, kase: k, target: spec, run: { seed, batchSize: cfg.batchSize, checkpointPath: checkpoint, onProgress: ctl.onProgress }, bank: def.needsBank ? bank : undefined, options });
    const checkpointPath = join(dir, ".checkpoint.json");
    let a: Attribution;
    try {
      a = await explain(kase, cfg.seed, checkpointPath);
    } catch (e) {
      if (!(e instanceof SegcauseError)) throw e;
      const reason = e.oneLine();
      await writeAtomic(join(dir, "failed.json"), JSON.stringify({ format: "segcause.evalfailed/1", key: cellKeys[i], id, method: def.name, options, reason, refusals: REFUSALS_REVISION } satisfies FailedRecord, null, 1));
      summary.failed++;
      summary.notes.push(`${id.model} ${id.image} ${id.roi} ${def.name}: failed (${reason})`);
      log(`  failed: ${reason}`);
      continue;
    }
    const support = supportMap(a);
    const order = rankUnits(units, support, cfg.seed);
    const metrics: Record<string, number | null> = {};
    const results: CellRecord["fills"] = {};
    const before = prober.passes;
    for (const f of fills) {
      const ends = control.fills![f.name]!.ends;
      const { curves, topArea } = await orderCurves(prober, order, f, P, ends, target.base);
      const topk = await topKEffects(prober, order, f, P.topk, target.base);
      results[f.name] = { ends, curves, topk, ...(topArea ? { topArea } : {}) } satisfies FillResult;
      curveMetrics("", curves, metrics, f.name);
      for (const t of topk) metrics[`top${Math.round(t.k * 100)}:${f.name}`] = t.effect;
      for (const t of topArea ?? []) metrics[topAreaMetric(t.k, f.name)] = t.effect;
    }
    const firstFill = results[P.fills[0]];
    for (const t of firstFill?.topk ?? []) metrics[`top${Math.round(t.k * 100)}_area`] = t.area;
    for (const t of firstFill?.topArea ?? []) metrics[`${topAreaMetric(t.k)}_area`] = t.area;
    const leak = leakage(support, domain, dist, P.radius, causal);
    metrics.leakage = Number.isNaN(leak.farShare) ? null : leak.farShare;
    if (causal) metrics.outside_causal = Number.isNaN(leak.outsideCausal!) ? null : leak.outsideCausal!;
    const g = gini(a.map, domain);
    metrics.gini = Number.isNaN(g) ? null : g;
    let stabilityPasses = 0;
    if (P.stability) {
      const noisy = await explain(noisyCase(kase, P.noiseSigma, cfg.seed), cfg.seed);
      const reseeded = await explain(kase, cfg.seed + 1);
      const sn = spearman(support, supportMap(noisy), domain), ss = spearman(support, supportMap(reseeded), domain);
      metrics.stab_noise = Number.isNaN(sn) ? null : sn;
      metrics.stab_seed = Number.isNaN(ss) ? null : ss;
      stabilityPasses = noisy.forwardPasses + noisy.backwardPasses + reseeded.forwardPasses + reseeded.backwardPasses;
    }
    metrics.forward = a.forwardPasses;
    metrics.backward = a.backwardPasses;
    metrics.wall_s = a.wallMs / 1000;
    const record: CellRecord = {
      format: "segcause.evalcell/1",
      key: cellKeys[i],
      id,
      method: def.name,
      options,
      seed: cfg.seed,
      roiRect: roi.rect,
      roiKind: roi.kind,
      baseOutcome: target.base,
      outcome: target.outcome,
      reference: target.referenceKind,
      signed: a.signed,
      fills: results,
      metrics,
      cost: { forwardPasses: a.forwardPasses, backwardPasses: a.backwardPasses, wallMs: a.wallMs, evaluationPasses: prober.passes - before, stabilityPasses },
      notes: a.notes,
    };
    await writeAtomic(join(dir, "map.npy"), encodeNpy(a.map, [a.height, a.width]));
    await writeAtomic(join(dir, "attribution.json"), JSON.stringify(attributionMeta(a), null, 1));
    await writeAtomic(join(dir, "cell.json"), JSON.stringify(record, null, 1));
    await rm(checkpointPath, { force: true });
    summary.computed++;
    log(`  done: ${a.forwardPasses} forward + ${a.backwardPasses} backward passes in ${(a.wallMs / 1000).toFixed(1)} s, curves ${record.cost.evaluationPasses} passes · ${progress()}`);
  }
  return false;
}

/** The Attribution without its per-pixel arrays and unit list (map.npy holds the map). */
export function attributionMeta(a: Attribution): Record<string, unknown> {
  const statuses: Record<string, number> = {};
  for (const u of a.units) statuses[u.status] = (statuses[u.status] ?? 0) + 1;
  return {
    format: "segcause.attribution-meta/1",
    method: a.method, unitKind: a.unitKind, valueUnits: a.valueUnits, signed: a.signed, height: a.height, width: a.width,
    roi: a.roi, roiCells: a.roiCells, units: a.units.length, unitStatuses: statuses, baseOutcome: a.baseOutcome, outcome: a.outcome, reference: a.reference,
    forwardPasses: a.forwardPasses, backwardPasses: a.backwardPasses, wallMs: a.wallMs, notes: a.notes, provenance: a.provenance,
    sign: a.signed ? "negative = the unit's content supported the RoI prediction; positive = it hurt" : "unsigned importance >= 0 (drawn as support)",
  };
}

export { Region };

/** The key part of a method's revision for these options (none when the method has none). */
function revisionKey(def: MethodDefinition, options: Record<string, unknown>): { revision?: string } {
  const r = typeof def.revision === "function" ? def.revision(options) : def.revision;
  return r ? { revision: r } : {};
}
