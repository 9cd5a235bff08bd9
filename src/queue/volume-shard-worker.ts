/**
 * A worker's side of `explain --queue` on a volume: one shard of the map computed by the local run's
 * code (volumeMethod, checkVolumeInputs, openVolumeRun: the same reads, checks and plan), told to
 * sample only the shard's boxes, and the shard's samples read back from the run's checkpoint.
 */
import { readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { UnrecoverableError } from "bullmq";
import { checkVolumeInputs, openVolumeRun, type VolumeInputs, volumeMethod } from "../cli/explain-volume.js";
import { REJECTED, type ShardResult, type VolumeShardJob } from "./jobs.js";
import { computedHere } from "./shard-env.js";
import { rejectOtherVersions } from "./shard-worker.js";
import { shardSamples } from "./shards.js";
import { unshardableVolume } from "./volume-enqueue.js";

export interface VolumeShardIo {
  /** a blob as a verified file of the worker's cache */
  fetch: (b: { sha256: string; name: string }) => Promise<string>;
  /** a packed series folder (a verified blob's file) as a folder of the worker's cache */
  unpack: (file: string, b: { sha256: string; name: string }) => Promise<string>;
  /** where this job's checkpoint is kept (a retried job resumes from it) */
  checkpointPath: string;
}

export async function runVolumeShard(jobId: string, p: VolumeShardJob, io: VolumeShardIo): Promise<ShardResult> {
  rejectOtherVersions(p);
  const m = volumeMethod(p.method.name, p.method.options);
  // the enqueuer refuses these; a job that asks anyway is not segcause's own
  const problem =
    unshardableVolume(m) ?? (m.bounds.maxPasses > 0 || m.bounds.maxSeconds > 0 ? "a queued map takes no --max-passes or --max-time" : undefined);
  if (problem) throw new UnrecoverableError(`${REJECTED}${problem}`);
  const file = await io.fetch(p.image);
  const inputs: VolumeInputs = {
    model: await io.fetch(p.model),
    ...(p.card ? { card: await io.fetch(p.card) } : {}),
    image: p.imageFolder ? await io.unpack(file, p.image) : file,
    ...(p.series !== undefined ? { series: p.series } : {}),
    ...(p.mask ? { mask: await io.fetch(p.mask) } : {}),
    ...(p.label !== undefined ? { label: p.label } : {}),
    ...(p.bank ? { bank: await io.fetch(p.bank) } : {}),
    ...("box" in p.roi ? { roi: p.roi.box } : { roiMask: await io.fetch(p.roi.mask), roiName: p.roi.name }),
    ...(p.boxUnit ? { boxUnit: p.boxUnit } : {}),
    ...(p.sliceAxis ? { sliceAxis: p.sliceAxis } : {}),
    ...(p.batchSize !== undefined ? { batchSize: p.batchSize } : {}),
    ...(p.threads !== undefined ? { threads: p.threads } : {}),
    outcome: p.outcome as VolumeInputs["outcome"],
    reference: p.reference,
  };
  const { model, run, batchSize } = await openVolumeRun(inputs, m, checkVolumeInputs(inputs, m));
  try {
    await run({ seed: p.seed, batchSize, checkpointPath: io.checkpointPath, shard: { ...p.shard } });
  } finally {
    await model.release();
  }
  const saved = JSON.parse(readFileSync(io.checkpointPath, "utf8")) as ShardResult;
  await rm(io.checkpointPath, { force: true });
  const samples = shardSamples(saved.samples, p.shard.index, p.shard.count);
  return { job: jobId, ...computedHere(), key: saved.key, samples };
}
