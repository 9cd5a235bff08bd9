/**
 * The faithfulness benchmark on a volume data set: 3D models × volumes × the label map's structure
 * (the RoI) × the methods' volume forms. Each cell goes through the same cell logic, curves, controls,
 * metrics and store as an image's (roi-cells.ts, cell.ts); what differs is the geometry: the map is
 * ranked on boxes of the model's box (volume-units.ts), and the curves replace box cells by volume
 * fills through a volume prober (volume-probe.ts). Everything is read and checked before the first cell.
 */
import { existsSync } from "node:fs";
import { basename } from "node:path";
import type { Dataset, VolumeEntry } from "../data/manifest.js";
import { volumeCasesInSplits } from "../data/manifest.js";
import { imageToModel, maskToModel } from "../data/volume/model-space.js";
import { buildVolumeBank, checkBankForCard, VolumeBank } from "../data/volume/volume-bank.js";
import { loadVolumeCase, readStructure, toBox, type VolumeCase } from "../data/volume/volume-case.js";
import { fail, SegcauseError } from "../errors.js";
import { supportMap } from "../explain/attribution.js";
import { getMethod, volumeMethodNames, windowedMethodNames } from "../explain/catalog.js";
import { resolveOptions } from "../explain/methods.js";
import { type BoxUnitName, boxVoxels, describeSize, type Size3 } from "../explain/volume/box-size.js";
import { type ResolvedVolumeTarget, VOLUME_BATCH_SIZE, type VolumeAttribution, volumeTarget } from "../explain/volume/engine.js";
import { isVolumeModel } from "../model/volume-card.js";
import { VolumeModel } from "../model/volume-model.js";
import { PackedInputs } from "../queue/folder-blob.js";
import type { RemoteCell } from "../queue/remote-cells.js";
import { resolveVolumeRoi, type VolumeTargetSpec } from "../target/volume-target.js";
import { assertInside } from "../util/files.js";
import { sha256, sha256File } from "../util/hash.js";
import { encodeNpy } from "../util/npy.js";
import type { RunStatus } from "../util/progress.js";
import type { RunControl, RunSummary } from "./benchmark.js";
import { computeControl, type MeasuredMap, measureOrder, type OrderContext, writeCellFiles } from "./cell.js";
import { cellKey, controlKey, protocolKey as protocolKeyOf, volumeGroupKey } from "./cell-key.js";
import { Pool } from "./pool.js";
import type { EvaluateConfig } from "./protocol.js";
import { rankUnitsName } from "./rank-units.js";
import { type Def, evaluateRoi, type OpenedRoi, type RoiWork } from "./roi-cells.js";
import { type CellId, type ControlRecord, controlPath, readJson, safe, writeAtomic } from "./store.js";
import { makeVolumeFills, type VolumeCurveFill, VolumeProber } from "./volume-probe.js";
import { rankBox, volumeDistance, volumeDomain, volumeUnits } from "./volume-units.js";

/** Natural boxes cut per volume for a bank built here (as `bank build`'s --per-image). */
const BANK_PER_VOLUME = 100;

const modelName = (p: string) => basename(p).replace(/\.onnx$/i, "");

/** The volume settings of a run: what --box-unit and --label give (both in the cells' keys). */
export interface VolumeSettings {
  boxUnit: BoxUnitName;
  /** "1" or "1,2": the label map's labels that make the structure (default: the case's labels, else every label > 0) */
  label?: string;
}

export async function runVolumeEvaluation(cfg: EvaluateConfig, ctl: RunControl, ds: Dataset, summary: RunSummary): Promise<RunSummary> {
  const log = ctl.log ?? (() => {});
  const t0 = Date.now();
  const P = cfg.protocol;
  const vs: VolumeSettings = cfg.volume ?? { boxUnit: "mm" };
  if (P.stability) fail("--stability does not run on volumes yet", "drop --stability for a volume data set");
  if (P.rankUnits.kind !== "block")
    fail(
      `--rank-units ${rankUnitsName(P.rankUnits)} does not run on volumes`,
      "use --rank-units block:N (boxes of N mm, or voxels with --box-unit vox)",
    );
  let cases = volumeCasesInSplits(ds, [cfg.split]);
  const inSplit = cases.length;
  if (cfg.images !== undefined) cases = cases.slice(0, cfg.images);
  if (cases.length === 0) fail(`no cases in split '${cfg.split}' of ${ds.name}`);
  if (cfg.images !== undefined && cfg.images > inSplit)
    summary.notes.push(`--images ${cfg.images}: split '${cfg.split}' has only ${inSplit} volumes, all evaluated`);
  const defs: Def[] = cfg.methods.map((m) => ({ run: m, def: getMethod(m.name), options: resolveOptions(getMethod(m.name), m.options) }));
  for (const d of defs) {
    if (!d.def.volume)
      fail(`method ${d.def.name} does not run on volumes yet`, `use --methods ${volumeMethodNames().join(",")} on a volume data set`);
    d.def.volume.check?.(d.options, { bank: true });
  }
  const needBank = P.fills.includes("patches") || defs.some((d) => d.def.needsBank);
  const protocolKey = protocolKeyOf(P, cfg.seed);
  const models = new Map<string, { model: VolumeModel; bank?: VolumeBankFile }>();
  // --queue: a DICOM series folder travels packed into one file (made once, removed at the end)
  const packs = new PackedInputs();
  try {
    for (const path of cfg.models) {
      // a missing file is named by the model loader below
      if (existsSync(path) && !isVolumeModel(path))
        fail(
          `${basename(path)} is a 2D model, and ${ds.name} holds volumes`,
          "give a 3D model (its card declares a volume input, e.g. models/volumes/unet3d-hippocampus.onnx), or a 2D data set",
        );
      if (models.has(path)) continue;
      const name = modelName(path);
      if ([...models.keys()].some((p) => modelName(p) === name))
        fail(`two models in --models have the file name '${basename(path)}', which names their cells`, "copy or link one of them under another name");
      models.set(path, { model: await VolumeModel.load(path, { threads: cfg.threads }) });
    }
    const given = needBank && cfg.bank ? { bank: await VolumeBank.load(cfg.bank), sha: await sha256File(cfg.bank), path: cfg.bank } : undefined;
    for (const m of models.values()) if (given) checkBankForCard(given.bank, m.model.card, cfg.bank!);
    // Every volume, label map, RoI and unit grid is read and checked before the first cell.
    for (const c of cases)
      for (const { model } of models.values()) {
        const kase = await inCase(c.id, () => loadCase(model, c, vs));
        if (isEmpty(kase)) continue; // skipped with its reason below
        await inCase(c.id, () => {
          const roi = resolveVolumeRoi(kase, roiSpec(kase, P));
          rankBox(P.rankUnits, vs.boxUnit, kase);
          if (volumeDomain(kase, roi.roiCells).length === 0) fail("the RoI covers the whole volume: nothing is left to intervene on");
        });
      }
    await checkSettings(cfg, cases, models, defs, vs, given?.bank, summary.notes);
    // --queue: inputs the queue cannot carry stop the run before run.json is written
    if (ctl.remote) {
      const files = await Promise.all(cases.flatMap((c) => [packs.file(c.image), c.mask!]));
      await ctl.remote.cells.checkInputs(
        [...models.values()].map((m) => m.model),
        [...(given ? [given.path] : []), ...files],
      );
    }
    for (const n of summary.notes) log(`note: ${n}`);
    let recorded = false;
    const validated = async () => {
      if (!recorded) (recorded = true), await ctl.onValidated?.();
    };
    const total = cases.length * models.size * defs.length;
    let busyMs = 0;
    const status = (runningMs: number, label: string): RunStatus => {
      const done = summary.computed + summary.resumed + summary.skipped + summary.failed;
      const eta = summary.computed > 0 ? ((busyMs + runningMs) / summary.computed) * Math.max(0, total - done) : undefined;
      return { label, unit: "cells", done, total, exact: true, resumed: done - summary.computed, elapsedMs: Date.now() - t0, etaMs: eta };
    };
    const pool = new Pool(ctl.remote?.roisAtOnce ?? 1);
    for (const c of cases) {
      for (const [path, m] of models) {
        if (needBank && !m.bank) {
          if (!given) ctl.beforeWrite?.(); // a bank is built into out/banks
          m.bank = given ?? (await volumeBankFor(cfg, ds, m.model, vs, log));
        }
        const kase = await loadCase(m.model, c, vs);
        // As an empty 2D mask: no structure, no RoI; the case is skipped with the reason, not an error.
        if (isEmpty(kase)) {
          summary.notes.push(`${c.id}: its label map ${basename(c.mask!)} holds no labelled voxel, so it has no RoI; skipped`);
          summary.skipped += defs.length;
          continue;
        }
        const id: CellId = { dataset: ds.name, model: modelName(path), image: c.id, roi: roiId(kase) };
        const start = Date.now(),
          computedBefore = summary.computed;
        const show = ctl.onStatus && ((label: string) => ctl.onStatus!(status(Date.now() - start, label)));
        const local = volumeRoiWork(cfg, ctl, vs, { model: m.model, kase, bank: m.bank, id, defs, protocolKey });
        const remote = ctl.remote?.cells;
        const work: RoiWork<VolumeAttribution | RemoteCell> = remote
          ? {
              ...local,
              open: async () =>
                remote.openVolume(cfg, {
                  id,
                  model: m.model,
                  imagePath: c.image,
                  imageFile: await packs.file(c.image),
                  imageFolder: PackedInputs.isFolder(c.image),
                  ...(c.series !== undefined ? { series: c.series } : {}),
                  maskPath: c.mask!,
                  ...((vs.label ?? c.labels) !== undefined ? { label: vs.label ?? c.labels } : {}),
                  ...(m.bank ? { bankPath: m.bank.path } : {}),
                  boxUnit: vs.boxUnit,
                  controlKey: local.controlKey,
                  cellKeys: local.cellKeys,
                  defs,
                  // the folder's control of this key (evaluateRoi has checked it) is not computed again
                  control: readJson<ControlRecord>(controlPath(cfg.out, id)),
                  notes: summary.notes,
                }),
            }
          : local;
        const progress = () => {
          const done = summary.computed + summary.resumed + summary.skipped + summary.failed;
          return `cells ${done} of ${total}`;
        };
        const roiCells = evaluateRoi<VolumeAttribution | RemoteCell>(cfg, ctl, summary, work, id, defs, log, progress, validated, show);
        if (remote) {
          // the RoIs' jobs are on the workers at once
          await pool.add(roiCells);
          continue;
        }
        const stop = await roiCells;
        if (summary.computed > computedBefore) busyMs += Date.now() - start;
        else show?.(`${id.model} · ${id.image} · ${id.roi}: found, skipped or refused`);
        if (stop) {
          summary.stoppedEarly = true;
          return summary;
        }
      }
    }
    await pool.all();
    ctl.onStatus?.(status(0, "all cells accounted for"));
    await validated();
  } finally {
    for (const m of models.values()) await m.model.release();
    await packs.dispose();
  }
  return summary;
}

/**
 * Method settings that can work on none of the models (a block larger than the volume, Grad-CAM on
 * sliding windows, a Grad-CAM layer no model has) stop the run now, not as one refusal per cell: each method
 * plans on each model's first case with a structure (one unperturbed pass). A method only some models
 * cannot take is refused on their cells, with a note. A method needing a bank that is built later is
 * checked on its cells.
 */
async function checkSettings(
  cfg: EvaluateConfig,
  cases: VolumeEntry[],
  models: Map<string, { model: VolumeModel }>,
  defs: Def[],
  vs: VolumeSettings,
  bank: VolumeBank | undefined,
  notes: string[],
): Promise<void> {
  const refusals = new Map<Def, { path: string; error: SegcauseError }[]>(defs.map((d) => [d, []]));
  let checked = 0;
  for (const [path, { model }] of models) {
    let kase: LabelledCase | undefined;
    for (const c of cases) if (!kase) kase = await loadCase(model, c, vs).then((k) => (isEmpty(k) ? undefined : k));
    if (!kase) continue;
    let target: ResolvedVolumeTarget;
    try {
      target = await volumeTarget(model, kase, roiSpec(kase, cfg.protocol), cfg.batchSize ?? VOLUME_BATCH_SIZE);
    } catch (e) {
      if (e instanceof SegcauseError) continue; // that case's RoI is skipped with the reason
      throw e;
    }
    checked++;
    for (const d of defs) {
      if (d.def.needsBank && !bank) continue;
      try {
        const own = { ...kase, notes: [...kase.notes] };
        await d.def.volume!.plan({ model, kase: own, target, bank: d.def.needsBank ? bank : undefined, boxUnit: vs.boxUnit }, d.options);
      } catch (e) {
        if (!(e instanceof SegcauseError)) throw e;
        refusals.get(d)!.push({ path, error: e });
      }
    }
  }
  for (const [d, r] of refusals) {
    if (checked > 0 && r.length === checked) throw r[0].error;
    for (const x of r) notes.push(`${d.def.name} cannot run on ${modelName(x.path)}: ${x.error.message}; its cells of that model will be refused`);
  }
}

/** A volume case with its structure on the input's grid: the RoI, and (in model space) the reference mask. */
type LabelledCase = VolumeCase & { structure: Uint8Array; labels: number[]; maskPath: string };

/** A case of the manifest as the model sees it, its structure from its label map (--label, else the case's labels, else every label > 0). */
async function loadCase(model: VolumeModel, c: VolumeEntry, vs: VolumeSettings): Promise<LabelledCase> {
  if (!c.mask)
    fail(`case ${c.id} has no mask: the RoI of a volume is a structure of its label map`, "give every evaluated case a mask in the manifest");
  const kase = await loadVolumeCase(model, c.image, { seriesUid: c.series });
  // read once: the input-grid mask is the RoI, its model-space form the ground truth (as explain's --mask)
  const { labelMap: _map, mask, ...m } = await readStructure(c.mask, kase.volume, c.image, vs.label ?? c.labels, { allowEmpty: true });
  return { ...kase, ...m, id: c.id, mask: maskToModel(kase.space, mask, (n) => new Uint8Array(n)), structure: mask };
}

/** The RoI of a volume: its structure, named by its labels (as explain's --roi-mask with --label). */
function roiSpec(kase: LabelledCase, P: EvaluateConfig["protocol"]): VolumeTargetSpec {
  return {
    roi: { mask: kase.structure, name: `${basename(kase.maskPath)} (label ${kase.labels.join(",")})` },
    outcome: P.outcome,
    reference: P.reference,
  };
}

const isEmpty = (kase: LabelledCase) => !kase.structure.some((v) => v !== 0);

const roiId = (kase: LabelledCase) => `label-${kase.labels.join("-")}`;

/** Runs a check of one case, naming the case in its error. */
async function inCase<T>(id: string, f: () => Promise<T> | T): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof SegcauseError) throw new SegcauseError(`case ${id}: ${e.message}`, e.hint);
    throw e;
  }
}

/** A volume's map on the model's box, where the domain's cells are: the input grid brought into model space and placed. */
export function mapOnBox(kase: Pick<VolumeCase, "space" | "placement">, map: Float32Array): Float32Array {
  return toBox(imageToModel(kase.space, map), kase.space.dims, kase.placement, Number.NaN, (n) => new Float32Array(n));
}

/** The run settings a volume RoI's work reads. */
type RoiSettings = Pick<EvaluateConfig, "protocol" | "seed" | "batchSize">;

/**
 * A case of a volume data set opened on a queue's worker as the local run opens it (evaluate --queue):
 * its structure read from the label map (`c.mask`, a file of the worker's cache; `maskPath` is the
 * enqueuer's name of it), its RoI's pass, Target, units and fills; or why it is skipped.
 */
export async function openVolumeRoi(
  cfg: RoiSettings,
  model: VolumeModel,
  c: VolumeEntry,
  vs: VolumeSettings,
  bank: { bank: VolumeBank; sha: string } | undefined,
  id: CellId,
  defs: Def[],
  maskPath: string,
): Promise<OpenedRoi<VolumeAttribution> | { skipped: string }> {
  // the label map as the enqueuer names it: the RoI is named after it, as in the local run
  const kase = { ...(await loadCase(model, c, vs)), maskPath };
  if (isEmpty(kase)) return { skipped: `its label map ${basename(c.mask!)} holds no labelled voxel, so it has no RoI` };
  return volumeRoiWork(cfg, {}, vs, { model, kase, bank, id, defs, protocolKey: {} }).open(undefined);
}

/** A volume cell's files: map.npy ((k, j, i) on the input volume's grid) and attribution.json's object. */
export function volumeCellFiles(a: VolumeAttribution): { npy: Uint8Array; meta: Record<string, unknown> } {
  return { npy: encodeNpy(a.map, [a.dims[2], a.dims[1], a.dims[0]]), meta: volumeMeta(a) };
}

/** A bank of a run and its file (sent to a queue's workers). */
type VolumeBankFile = { bank: VolumeBank; sha: string; path: string };

/** A volume's RoI for the shared cell logic (roi-cells.ts). */
function volumeRoiWork(
  cfg: RoiSettings,
  ctl: RunControl,
  vs: VolumeSettings,
  r: {
    model: VolumeModel;
    kase: LabelledCase;
    bank?: Pick<VolumeBankFile, "bank" | "sha">;
    id: CellId;
    defs: Def[];
    protocolKey: Record<string, unknown>;
  },
): RoiWork<VolumeAttribution> {
  const { model, kase, id } = r;
  const P = cfg.protocol;
  const spec = roiSpec(kase, P);
  const roi = resolveVolumeRoi(kase, spec);
  const box = rankBox(P.rankUnits, vs.boxUnit, kase);
  const bank = r.bank?.bank;
  const group = volumeGroupKey(r.protocolKey, {
    model,
    kase,
    roi: { describe: roi.describe, bounds: roi.roiBounds },
    rankBox: box,
    boxUnit: vs.boxUnit,
    bank: r.bank?.sha ?? null,
    ownPatches: bank ? bank.without(kase.imageSha256).removed > 0 : false,
  });
  const place = { roiBox: roi.roiBounds, roiKind: "label" };
  return {
    controlKey: controlKey(group),
    cellKeys: r.defs.map((d) => cellKey(group, d.def, d.options)),
    place,
    open: async (onProgress) => {
      const batchSize = cfg.batchSize ?? VOLUME_BATCH_SIZE;
      let target: ResolvedVolumeTarget;
      try {
        target = await volumeTarget(model, kase, spec, batchSize);
      } catch (e) {
        if (!(e instanceof SegcauseError)) throw e;
        return { skipped: e.oneLine() };
      }
      const domain = volumeDomain(kase, target.roiCells);
      const units = volumeUnits(kase, box, domain);
      if (units.label.length < P.steps)
        kase.notes.push(
          `--rank-units ${rankUnitsName(P.rankUnits)} leaves ${units.label.length} boxes of ${describeSize(box)} voxels for --steps ${P.steps}, so some curve steps remove no box (use smaller units or fewer steps)`,
        );
      const ctx: OrderContext<VolumeCurveFill> = {
        P,
        seed: cfg.seed,
        prober: new VolumeProber(model, model.runner(batchSize), kase, target),
        fills: makeVolumeFills(kase, P.fills, { patchDraws: P.patchDraws, blurSigma: P.blurSigma, seed: cfg.seed }, bank),
        domain,
        units,
        dist: volumeDistance(kase, target.roiCells, domain),
        target,
        place,
      };
      const causal = ctl.causalMask?.(kase.id);
      return {
        control: (key) => computeControl(ctx, id, key),
        explain: async (d, checkpointPath) => {
          const p = kase.placement;
          if (p.kind === "sliding" && !d.def.volume!.windows && p.box.some((b, a) => b > p.patch[a]))
            fail(
              `${d.def.name} does not run over sliding windows${d.def.volume!.noWindows ? ` (${d.def.volume!.noWindows})` : " yet"}, and this volume needs more than one ${[...p.patch].reverse().join("x")} window`,
              `evaluate ${windowedMethodNames().join(", ")} on it, or use a card whose box holds the whole volume`,
            );
          // each method notes its own settings on a copy of the case
          const own = { ...kase, notes: [...kase.notes] };
          const run = await d.def.volume!.plan(
            { model, kase: own, target, bank: d.def.needsBank ? bank : undefined, boxUnit: vs.boxUnit },
            d.options,
          );
          return run({ seed: cfg.seed, batchSize, checkpointPath, onProgress });
        },
        measure: (control, h, a) => measureOrder(ctx, control, h, measuredMap(kase, a), causal),
        write: (dir, a, record, checkpointPath) => {
          const { npy, meta } = volumeCellFiles(a);
          return writeCellFiles(dir, npy, meta, record, checkpointPath);
        },
      };
    },
  };
}

/** The map on the domain's grid (the model's box) as the metrics read it. */
function measuredMap(kase: VolumeCase, a: VolumeAttribution): MeasuredMap {
  const map = mapOnBox(kase, a.map);
  return {
    map,
    support: supportMap({ map, signed: a.signed }),
    signed: a.signed,
    forwardPasses: a.forwardPasses,
    backwardPasses: a.backwardPasses ?? 0,
    wallMs: a.wallMs,
    notes: a.notes,
  };
}

/** The volume Attribution without its arrays (map.npy holds the map, (k, j, i) on the input volume's grid). */
function volumeMeta(a: VolumeAttribution): Record<string, unknown> {
  return {
    format: "segcause.attribution-meta/1",
    method: a.method,
    unitKind: a.unitKind,
    valueUnits: a.valueUnits,
    signed: a.signed,
    dims: a.dims,
    spacing: a.spacing,
    affine: a.affine,
    roi: a.roi,
    roiCells: a.roiCells,
    units: a.units.length,
    baseOutcome: a.baseOutcome,
    outcome: a.outcome,
    reference: a.reference,
    samples: a.samples,
    forwardPasses: a.forwardPasses,
    backwardPasses: a.backwardPasses ?? 0,
    ...(a.windows ? { windows: a.windows } : {}),
    wallMs: a.wallMs,
    notes: a.notes,
    provenance: a.provenance,
    sign: a.signed ? "negative = the box's content supported the RoI prediction; positive = it hurt" : "unsigned importance >= 0 (drawn as support)",
  };
}

/**
 * The volume bank of a run: built as `bank build` does on volumes (boxes of --bank-patch-size, in mm
 * unless --box-unit vox, cut in the model's space, normalised per volume) from --bank-splits, cached
 * in out/banks per card input, box and seed; its identity in the keys is its file's sha256.
 */
async function volumeBankFor(
  cfg: EvaluateConfig,
  ds: Dataset,
  model: VolumeModel,
  vs: VolumeSettings,
  log: (s: string) => void,
): Promise<VolumeBankFile> {
  const box: Size3 = boxVoxels(cfg.bankPatchSize, vs.boxUnit, model.card.input.spacing, "--bank-patch-size");
  const sources = volumeCasesInSplits(ds, cfg.bankSplits).map((c) => [c.id, c.image, c.series ?? null]);
  const input = sha256(JSON.stringify(model.card.input));
  const name = `${safe(ds.name)}-${cfg.bankSplits.join("+")}-volume-${input.slice(0, 12)}-b${box.join("x")}-s${cfg.seed}.scvbank`;
  const path = `${cfg.out}/banks/${name}`;
  assertInside(cfg.out, path);
  // The cases it was cut from, by id and path: another data set under the same name must not reuse it.
  const sourcesSha256 = sha256(JSON.stringify(sources));
  const ok = readJson<{ sourcesSha256?: string }>(`${path}.ok`);
  if (ok?.sourcesSha256 !== undefined && ok.sourcesSha256 !== sourcesSha256)
    fail(
      `${cfg.out} was evaluated on another data set named '${ds.name}' (its ${cfg.bankSplits.join("+")} volumes differ from those of ${ds.root})`,
      'use a new --out folder for this data set, or give its manifest another "name"',
    );
  if (!ok) {
    log(`building a volume bank of ${describeSize(box)}-voxel boxes from ${sources.length} ${cfg.bankSplits.join("+")} volumes of ${ds.name}`);
    const bank = await buildVolumeBank(cfg.dataset, model.card, { box, perVolume: BANK_PER_VOLUME, seed: cfg.seed, splits: cfg.bankSplits });
    await bank.save(path);
    await writeAtomic(`${path}.ok`, JSON.stringify({ source: "built by segcause evaluate", volumes: sources.length, sourcesSha256 }));
  }
  const bank = await VolumeBank.load(path);
  checkBankForCard(bank, model.card, path);
  return { bank, sha: await sha256File(path), path };
}
