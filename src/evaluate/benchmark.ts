import { basename, resolve } from "node:path";
import { type Case, loadCase } from "../data/case.js";
import { casesInSplits, type Dataset, readManifest } from "../data/manifest.js";
import { PatchBank } from "../data/patchbank.js";
import { fail, SegcauseError } from "../errors.js";
import type { Attribution } from "../explain/attribution.js";
import { getMethod } from "../explain/catalog.js";
import { kebab, resolveOptions } from "../explain/methods.js";
import type { IncrementalMode } from "../explain/roi-executor.js";
import { Model } from "../model/model.js";
import { Runner } from "../model/runner.js";
import type { RemoteCell, RemoteCells } from "../queue/remote-cells.js";
import { etaOf, fmtDuration, type ProgressListener, type RunStatus } from "../util/progress.js";
import { bankFile, bankFor } from "./bank-cache.js";
import { computeControl, explainCell, measureCell, openRoi, writeCell } from "./cell.js";
import { cellKey, controlKey, groupKey, protocolKey as protocolKeyOf } from "./cell-key.js";
import { Pool } from "./pool.js";
import type { EvaluateConfig } from "./protocol.js";
import { rankUnitsProblem } from "./rank-units.js";
import { type Def, evaluateRoi, type RoiWork } from "./roi-cells.js";
import { type PlacedRoi, selectRois } from "./rois.js";
import { type CellId, type ControlRecord, controlPath, readJson } from "./store.js";
import { runVolumeEvaluation } from "./volume-benchmark.js";

export interface RunControl {
  signal?: AbortSignal;
  /** stop after computing this many new cells (finished cells found on disk do not count) */
  maxCells?: number;
  log?: (line: string) => void;
  /** known causal region per image id, at the model input size (tests with tiny models) */
  causalMask?: (imageId: string) => Uint8Array | undefined;
  /** progress of each method's own passes */
  onProgress?: ProgressListener;
  /**
   * The whole run's progress in cells (the current cell and its method's stage as the label, an ETA
   * from the time per cell computed so far); when given, `log` gets no per-cell lines (this shows them).
   */
  onStatus?: (s: RunStatus) => void;
  /** called before a cell is computed (tests inject failures here) */
  beforeCell?: (id: CellId, method: string) => void;
  /**
   * Called once the dataset, method options, models and a given bank have been checked, before
   * anything is written to `out` (the CLI records run.json here, so a refused run leaves none).
   */
  onValidated?: () => void | Promise<void>;
  /** called before the first file (a patch bank) may be written to `out` (the CLI marks the folder as an evaluation's) */
  beforeWrite?: () => void;
  /**
   * Computes the controls and cells on the workers of a queue (evaluate --queue): the RoIs are then
   * handed out up to this many at once, and their results written here as a local run writes them.
   */
  remote?: { cells: RemoteCells; roisAtOnce: number };
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

export async function runEvaluation(given: EvaluateConfig, ctl: RunControl = {}): Promise<RunSummary> {
  // One file named twice (`a.onnx ./a.onnx`) is one model.
  const cfg = { ...given, models: [...new Map(given.models.map((p) => [resolve(p), p])).values()] };
  const log = ctl.log ?? (() => {});
  const t0 = Date.now();
  const P = cfg.protocol;
  const ds = readManifest(cfg.dataset);
  // a test hook of local runs: the workers do not have it
  if (ctl.remote && ctl.causalMask) throw new Error("causalMask applies to local runs only");
  if (ctl.remote && ctl.maxCells !== undefined)
    fail(
      "--max-cells does not apply with --queue (the workers compute every queued cell)",
      "drop --max-cells, or stop the run and rerun it to resume",
    );
  if (ds.kind === "volume" && cfg.incremental && cfg.incremental !== "off")
    fail(
      `--incremental ${cfg.incremental} runs 2D block methods on RoI-cropped passes; ${ds.name} holds volumes`,
      "drop --incremental for volume data sets",
    );
  if (ds.kind === "volume")
    return runVolumeEvaluation(cfg, ctl, ds, { computed: 0, resumed: 0, skipped: 0, failed: 0, stoppedEarly: false, notes: [] });
  let cases = casesInSplits(ds, [cfg.split]);
  const inSplit = cases.length;
  if (cfg.images !== undefined) cases = cases.slice(0, cfg.images);
  if (cases.length === 0) fail(`no cases in split '${cfg.split}' of ${ds.name}`);
  if ("file" in cfg.rois) checkRoiFile(cfg.rois.file, cfg.rois.rows, ds, cases, cfg);
  const defs = cfg.methods.map((m) => ({ run: m, def: getMethod(m.name), options: resolveOptions(getMethod(m.name), m.options) }));
  const needBank = P.fills.includes("patches") || defs.some((d) => d.def.needsBank);
  const summary: RunSummary = { computed: 0, resumed: 0, skipped: 0, failed: 0, stoppedEarly: false, notes: [] };
  if (cfg.models.length < given.models.length) summary.notes.push(`a model given more than once in --models is evaluated once`);
  if (cfg.images !== undefined && cfg.images > inSplit)
    summary.notes.push(`--images ${cfg.images}: split '${cfg.split}' has only ${inSplit} images, all evaluated`);
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
    if (other)
      fail(
        `--models ${other} and ${p} have the same file name '${basename(p)}', which names their cells`,
        "copy or link one of them under another name",
      );
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
      if (cfg.bankSplits.includes(cfg.split))
        summary.notes.push(
          `the patch bank is built from split '${cfg.split}', which is also evaluated: each image's own patches are left out of its draws, the other evaluated images' patches stay in`,
        );
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
          d.def.check({
            model,
            options: d.options,
            bankPatchSize,
            label: (o, v) => `--set ${d.def.name}.${kebab(o)}${v === undefined ? "" : `=${v}`}`,
          });
        } catch (e) {
          if (!(e instanceof SegcauseError)) throw e;
          refusals.push({ path, error: e });
        }
      }
      if (refusals.length === loaded.size) throw refusals[0].error;
      for (const r of refusals)
        summary.notes.push(`${d.def.name} cannot run on ${modelName(r.path)}: ${r.error.message}; its cells of that model will be refused`);
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
    // --queue: inputs the queue cannot carry stop the run before run.json is written
    if (ctl.remote)
      await ctl.remote.cells.checkInputs(
        [...loaded.values()].map((l) => l.model),
        [...(needBank && cfg.bank ? [cfg.bank] : []), ...cases.flatMap((c) => [c.image, ...(c.mask ? [c.mask] : [])])],
      );
    // Notes known before the first cell (fewer images than asked, methods some model cannot take)
    // are shown now, not only in the summary after hours of work.
    for (const n of summary.notes) log(`note: ${n}`);
    // The run is recorded (run.json) once the first RoI's existing cells match its settings, so a
    // rerun refused for other settings leaves the folder's record as it was.
    // Every RoI waits for that one record: RoIs started at once (--queue) enqueue nothing when it is refused.
    let recording: Promise<void> | undefined;
    const validated = () => (recording ??= Promise.resolve().then(() => ctl.onValidated?.()));
    // Whole-run progress for the log: cells accounted for (computed, found, skipped, refused) of
    // about how many (less when a rule places fewer RoIs than it asks for), and an ETA from the time
    // spent on the RoIs that computed cells in this run (not bank building).
    const roisPer = (id: string) =>
      "file" in cfg.rois ? cfg.rois.rows.filter((r) => r.image === id).length : cfg.rois.rules.reduce((a, r) => a + r.count, 0);
    let total = cases.reduce((a, c) => a + roisPer(c.id), 0) * cfg.models.length * defs.length;
    let busyMs = 0;
    const progress = (runningMs: number) => {
      const done = summary.computed + summary.resumed + summary.skipped + summary.failed;
      const eta = summary.computed > 0 ? ((busyMs + runningMs) / summary.computed) * Math.max(0, total - done) : undefined;
      return `cells ${done} of about ${total}, ETA ${fmtDuration(eta)}`;
    };
    // The same numbers for the run's progress display: the total is exact with a RoI file, else a
    // bound (rules may place fewer RoIs than they ask for, which is known only image by image).
    let exact = "file" in cfg.rois;
    const status = (runningMs: number, label: string): RunStatus => {
      const done = summary.computed + summary.resumed + summary.skipped + summary.failed;
      const eta = etaOf(total - done, summary.computed, busyMs + runningMs);
      return {
        label,
        unit: "cells",
        done,
        total: exact ? total : undefined,
        exact,
        ...(exact ? {} : { bound: total }),
        resumed: done - summary.computed,
        elapsedMs: Date.now() - t0,
        etaMs: exact ? eta : undefined,
        ...(exact ? {} : { etaBoundMs: eta }),
      };
    };
    const pool = new Pool(ctl.remote?.roisAtOnce ?? 1);
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
          if (kase.emptyMask)
            summary.notes.push(
              `${c.id} at ${model.height}x${model.width}: ${kase.emptyMask}; RoIs that need the structure are not placed, Dice on it is undefined`,
            );
        }
        const rois = selectRois(cfg.rois, c.id, kase.mask, model.height, model.width, cfg.seed, summary.notes);
        total -= (roisPer(c.id) - rois.length) * defs.length;
        for (const roi of rois) {
          const id: CellId = { dataset: ds.name, model: modelName(modelPath), image: c.id, roi: roi.id };
          const computedBefore = summary.computed,
            start = Date.now();
          // the RoI in progress counts from its start (queued: the run's cells are computed at once, so the ETA is from the run's time)
          const running = () => (ctl.remote ? Date.now() - t0 - busyMs : Date.now() - start);
          const show = ctl.onStatus && ((label: string) => ctl.onStatus!(status(running(), label)));
          const at = { model, runner, kase, roi, bank, id, defs, protocolKey };
          const roiCells = evaluateRoi<Attribution | RemoteCell>(
            cfg,
            ctl,
            summary,
            ctl.remote ? queuedRoiWork(cfg, ctl.remote.cells, summary, at) : imageRoiWork(cfg, ctl, summary, at),
            id,
            defs,
            log,
            () => progress(running()),
            validated,
            show,
          );
          if (ctl.remote) {
            await pool.add(roiCells);
            continue;
          }
          const stop = await roiCells;
          if (summary.computed > computedBefore) busyMs += Date.now() - start;
          else show?.(`${id.model} · ${id.image} · ${id.roi}: found, skipped or refused`); // cells found on disk move the count too
          if (stop) {
            summary.stoppedEarly = true;
            return summary;
          }
        }
      }
    }
    await pool.all();
    exact = true; // every image's RoIs are placed
    ctl.onStatus?.(status(0, "all cells accounted for"));
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
    fail(
      `RoI file ${file} names ${unknown.length} image(s) that are not in ${ds.name}: ${unknown.slice(0, 5).join(", ")}${unknown.length > 5 ? ", ..." : ""}`,
      `use the manifest's case ids (e.g. ${ds.cases[0]?.id ?? "?"})`,
    );
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

type ImageRoi = {
  model: Model;
  runner: Runner;
  kase: Case;
  roi: PlacedRoi;
  bank?: PatchBank;
  id: CellId;
  defs: Def[];
  protocolKey: Record<string, unknown>;
};

/** The keys of the RoI's control and of its cells (one per method, in the order of `defs`). */
function roiKeys(r: ImageRoi, incremental: IncrementalMode | undefined): { controlKey: string; cellKeys: string[] } {
  const group = groupKey(r.protocolKey, r.model, r.kase, r.roi.rect, r.bank);
  return { controlKey: controlKey(group), cellKeys: r.defs.map((d) => cellKey(group, d.def, d.options, r.model, incremental)) };
}

/** An image's RoI whose control and cells are computed on a queue's workers (evaluate --queue). */
function queuedRoiWork(cfg: EvaluateConfig, remote: RemoteCells, summary: RunSummary, r: ImageRoi): RoiWork<RemoteCell> {
  const { roi, bank, id } = r;
  const keys = roiKeys(r, cfg.incremental);
  return {
    ...keys,
    place: { roiRect: roi.rect, roiKind: roi.kind },
    open: () =>
      remote.open(cfg, {
        ...r,
        ...keys,
        ...(bank ? { bankPath: bankFile.get(bank) } : {}),
        // the folder's control of this key (evaluateRoi has checked it) is not computed again
        control: readJson<ControlRecord>(controlPath(cfg.out, id)),
        notes: summary.notes,
      }),
  };
}

/** An image's RoI for the shared cell logic (roi-cells.ts): the 2D pass, Target, units and fills. */
function imageRoiWork(cfg: EvaluateConfig, ctl: RunControl, summary: RunSummary, r: ImageRoi): RoiWork<Attribution> {
  const { model, runner, kase, roi, bank, id } = r;
  return {
    ...roiKeys(r, cfg.incremental),
    place: { roiRect: roi.rect, roiKind: roi.kind },
    open: async (onProgress) => {
      const ctx = await openRoi(
        { P: cfg.protocol, seed: cfg.seed, batchSize: cfg.batchSize, incremental: cfg.incremental, onProgress, model, kase, roi, bank },
        runner,
        id,
        summary.notes,
      );
      if ("skipped" in ctx) return ctx;
      const causal = ctl.causalMask?.(kase.id);
      return {
        control: (key) => computeControl(ctx, id, key),
        explain: (d, checkpointPath) => explainCell(ctx, d.def, d.options, kase, cfg.seed, checkpointPath),
        measure: (control, h, a) => measureCell(ctx, control, h, a, causal),
        write: writeCell,
      };
    },
  };
}
