/**
 * The enqueuing side of `explain --queue` on a volume: the map's boxes go to the workers as shards
 * (as an image's blocks do: remote-explain.ts), each job carrying the volume's inputs as blobs. A
 * DICOM series folder travels as one packed blob of its files (folder-blob.ts), read on the worker by
 * the same reader; a NIfTI or a DICOM file travels as it is.
 */
import { existsSync, statSync } from "node:fs";
import type { VolumeInputs, VolumeMethod } from "../cli/explain-volume.js";
import { fail } from "../errors.js";
import { getMethod } from "../explain/catalog.js";
import type { VolumeNet } from "../model/volume-model.js";
import type { ProgressListener } from "../util/progress.js";
import { PackedInputs } from "./folder-blob.js";
import { JOB_VERSION, type VolumeShardJob } from "./jobs.js";
import { RemoteCells } from "./remote-cells.js";
import { gatherMapShards, type QueueRecord } from "./remote-explain.js";
import { shardVersions } from "./shard-env.js";
import { unshardable } from "./shards.js";

/** What `explain --queue` runs on volumes, as a fix to give when it cannot. */
export const QUEUE_VOLUME_FIX = "--queue runs pdcr --schedule paper, zero and occlusion on volumes; run other maps without --queue";

/** Why this volume method (with these options) cannot be split into shards, or undefined when it can. */
export function unshardableVolume(m: VolumeMethod): string | undefined {
  return unshardable(getMethod(m.name), m.options);
}

export interface VolumeShardMap {
  url: string;
  shards: number;
  out: string;
  /** the local run's checkpoint, which the gathered samples become */
  checkpointPath: string;
  model: VolumeNet;
  inputs: VolumeInputs & { seed: number };
  method: VolumeMethod;
  batchSize?: number;
}

export interface VolumeShardQueue {
  /** queues the shards not finished yet, waits for them, and writes the local run's checkpoint */
  gather(onProgress?: ProgressListener): Promise<QueueRecord>;
  close(): Promise<void>;
}

/**
 * Connects to the queue and refuses, before the output folder is taken, inputs it cannot carry (a
 * model with external weights, a file or packed series above one Redis value, a mask given as a folder).
 */
export async function openVolumeShardQueue(q: VolumeShardMap): Promise<VolumeShardQueue> {
  const f = q.inputs;
  for (const [flag, path] of [
    ["--mask", f.mask],
    ["--roi-mask", f.roiMask],
  ] as const)
    if (path && statSync(path).isDirectory())
      fail(`${flag} ${path} is a folder; --queue sends a mask as one file`, `give the DICOM SEG or label map file itself as ${flag}`);
  const folder = PackedInputs.isFolder(f.image);
  const packs = new PackedInputs();
  const card = f.card ?? q.model.cardPath;
  let remote: RemoteCells | undefined;
  const close = async () => {
    await remote?.close();
    await packs.dispose();
  };
  let image: string;
  try {
    image = await packs.file(f.image);
    remote = await RemoteCells.open(q.url);
    const files = [image, f.mask, f.roiMask, f.bank, existsSync(card) ? card : undefined].filter((p) => p !== undefined);
    await remote.checkInputs([q.model], files);
  } catch (e) {
    await close();
    throw e;
  }
  const r = remote;
  const base = async (): Promise<Omit<VolumeShardJob, "shard">> => ({
    v: JOB_VERSION,
    ...shardVersions(),
    model: await r.blob(q.model.path),
    card: existsSync(card) ? await r.blob(card) : null,
    image: await r.blob(image),
    imageFolder: folder,
    ...(f.series !== undefined ? { series: f.series } : {}),
    mask: f.mask ? await r.blob(f.mask) : null,
    ...(f.label !== undefined ? { label: f.label } : {}),
    bank: f.bank ? await r.blob(f.bank) : null,
    roi: f.roi ? { box: f.roi } : { mask: await r.blob(f.roiMask!), name: f.roiMask! },
    ...(f.boxUnit ? { boxUnit: f.boxUnit } : {}),
    ...(f.sliceAxis ? { sliceAxis: f.sliceAxis } : {}),
    method: { name: q.method.name, options: q.method.given },
    outcome: f.outcome,
    reference: f.reference,
    seed: f.seed,
    ...(q.batchSize !== undefined ? { batchSize: q.batchSize } : {}),
    ...(typeof f.threads === "number" ? { threads: f.threads } : {}),
  });
  return {
    gather: (onProgress) =>
      gatherMapShards({ url: q.url, shards: q.shards, out: q.out, checkpointPath: q.checkpointPath, name: "volume-shard", base, onProgress }, r),
    close,
  };
}
