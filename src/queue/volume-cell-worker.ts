/**
 * A worker's side of `evaluate --queue` on a volume data set: a (model, case, structure)'s control and
 * its cells computed by the local run's volume cell code (openVolumeRoi: the same case, RoI, units and
 * fills), from the job's verified blobs.
 */
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { UnrecoverableError } from "bullmq";
import type { VolumeEntry } from "../data/manifest.js";
import { VolumeBank } from "../data/volume/volume-bank.js";
import { SegcauseError } from "../errors.js";
import type { Def } from "../evaluate/roi-cells.js";
import type { ControlRecord } from "../evaluate/store.js";
import { openVolumeRoi, type VolumeSettings, volumeCellFiles } from "../evaluate/volume-benchmark.js";
import { getMethod } from "../explain/catalog.js";
import { resolveOptions } from "../explain/methods.js";
import { VolumeModel } from "../model/volume-model.js";
import { type CellResult, type ControlResult, REFUSED, type VolumeCellJob, type VolumeControlJob } from "./jobs.js";
import { computedHere } from "./shard-env.js";

export interface VolumeRoiIo {
  /** a blob as a verified file of the worker's cache */
  fetch: (b: { sha256: string; name: string }) => Promise<string>;
  /** a packed series folder (a verified blob's file) as a folder of the worker's cache */
  unpack: (file: string, b: { sha256: string; name: string }) => Promise<string>;
  /** where a cell's checkpoint is kept (a retried job resumes from it) */
  checkpoints: string;
}

type Opened = Awaited<ReturnType<typeof openVolumeRoi>>;

/** Runs `f` on the job's case opened as the local run opens it; the model is loaded for the job. */
async function withVolumeRoi<R>(p: VolumeControlJob | VolumeCellJob, io: VolumeRoiIo, defs: Def[], f: (o: Opened) => Promise<R>): Promise<R> {
  const model = await VolumeModel.load(await io.fetch(p.model), { ...(p.card ? { card: await io.fetch(p.card) } : {}), threads: p.threads });
  try {
    const file = await io.fetch(p.image);
    const c: VolumeEntry = {
      id: p.id.image,
      image: p.imageFolder ? await io.unpack(file, p.image) : file,
      mask: await io.fetch(p.mask),
      format: p.imageFolder ? "dicom" : "nifti",
      ...(p.series !== undefined ? { series: p.series } : {}),
      ...(Array.isArray(p.label) ? { labels: p.label } : {}),
    } as VolumeEntry;
    const vs: VolumeSettings = { boxUnit: p.boxUnit, ...(typeof p.label === "string" ? { label: p.label } : {}) };
    const bank = p.bank ? { bank: await VolumeBank.load(await io.fetch(p.bank)), sha: p.bank.sha256 } : undefined;
    const settings = { protocol: p.protocol as VolumeSettingsOf["protocol"], seed: p.seed, batchSize: p.batchSize };
    return await f(await openVolumeRoi(settings, model, c, vs, bank, p.id, defs, p.maskPath));
  } finally {
    await model.release();
  }
}

type VolumeSettingsOf = Parameters<typeof openVolumeRoi>[0];

export function runVolumeControl(p: VolumeControlJob, io: VolumeRoiIo): Promise<ControlResult> {
  // a volume RoI's notes go to its case, so into each cell's attribution.json (meta), not to the run's summary
  return withVolumeRoi(p, io, [], async (o) =>
    "skipped" in o ? { skipped: o.skipped, ...computedHere() } : { control: { ...(await o.control(p.controlKey)) }, notes: [], ...computedHere() },
  );
}

export function runVolumeCell(p: VolumeCellJob, io: VolumeRoiIo): Promise<CellResult> {
  const def = getMethod(p.method.name);
  // the options as the user gave them, resolved (and checked) here as the enqueuer resolved them for the cell's key
  const options = resolveOptions(def, p.method.options);
  const d: Def = { run: { name: p.method.name, options: p.method.options }, def, options };
  return withVolumeRoi(p, io, [d], async (o) => {
    if ("skipped" in o) throw new UnrecoverableError(`the RoI's control was computed but its Target now fails: ${o.skipped}`);
    const checkpointPath = join(io.checkpoints, `${p.cellKey}.json`);
    let a: Awaited<ReturnType<typeof o.explain>>;
    try {
      a = await o.explain(d, checkpointPath);
    } catch (e) {
      // the method refuses this input: recorded by the enqueuer as the local run records it, never retried
      if (e instanceof SegcauseError) throw new UnrecoverableError(`${REFUSED}${e.oneLine()}`);
      throw e;
    }
    const record = await o.measure(p.control as unknown as ControlRecord, { key: p.cellKey, id: p.id, def, options }, a);
    await rm(checkpointPath, { force: true });
    const { npy, meta } = volumeCellFiles(a);
    return { npy: Buffer.from(npy).toString("base64"), meta, record: JSON.parse(JSON.stringify(record)), notes: [], ...computedHere() };
  });
}
