/**
 * A worker's side of `explain --queue`: one shard of a map computed by the method's own code (the
 * local engine, told to sample only the shard's units), and the shard's samples read back from the
 * run's checkpoint, which is what the enqueuer gathers into the local run's checkpoint.
 */
import { readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { UnrecoverableError } from "bullmq";
import { loadCase } from "../data/case.js";
import { PatchBank } from "../data/patchbank.js";
import { getMethod } from "../explain/catalog.js";
import { flagLabel, resolveOptions } from "../explain/methods.js";
import type { Shard } from "../explain/run.js";
import type { Model } from "../model/model.js";
import type { OutcomeName } from "../target/outcome.js";
import { loadRoiMask } from "../target/roi-mask.js";
import type { TargetSpec } from "../target/target.js";
import { REJECTED, type ShardJob, type ShardResult } from "./jobs.js";
import { computedHere, type ShardVersions, shardVersions, versionMismatch } from "./shard-env.js";
import { shardSamples, unshardable } from "./shards.js";

export interface ShardIo {
  /** a blob as a verified file of the worker's cache */
  fetch: (b: { sha256: string; name: string }) => Promise<string>;
  /** runs `f` with the job's model loaded (from the worker's bounded cache) */
  withModel: <R>(f: (model: Model) => Promise<R>) => Promise<R>;
  /** where this job's checkpoint is kept (a retried job resumes from it) */
  checkpointPath: string;
}

/** Samples of other versions may differ: such a job is rejected, and waits for workers of its own version. */
export function rejectOtherVersions(p: ShardVersions): void {
  const other = versionMismatch(p, shardVersions());
  if (other)
    throw new UnrecoverableError(
      `${REJECTED}the job was queued by ${other.replace(/this run/g, "this worker")}; run workers of the enqueuer's versions`,
    );
}

export async function runShard(jobId: string, p: ShardJob, io: ShardIo): Promise<ShardResult> {
  rejectOtherVersions(p);
  const def = getMethod(p.method.name);
  const options = resolveOptions(def, p.method.options);
  // the enqueuer refuses these; a job that asks anyway is not segcause's own
  const problem = unshardable(def, options);
  if (problem) throw new UnrecoverableError(`${REJECTED}${problem}`);
  const bank = p.bank ? await PatchBank.load(await io.fetch(p.bank)) : undefined;
  const image = await io.fetch(p.image);
  const mask = p.mask ? await io.fetch(p.mask) : undefined;
  return io.withModel(async (model) => {
    def.check?.({ model, options, bankPatchSize: bank?.patchSize, label: flagLabel });
    const kase = await loadCase(model, image, mask);
    const roi: TargetSpec["roi"] = "mask" in p.roi ? { mask: await loadRoiMask(await io.fetch(p.roi.mask), model, kase) } : p.roi;
    const target: TargetSpec = { roi, outcome: p.outcome as OutcomeName, reference: p.reference };
    const shard: Shard = { ...p.shard };
    const run = { seed: p.seed, batchSize: p.batchSize, checkpointPath: io.checkpointPath, incremental: p.incremental, shard };
    await def.explain({ model, kase, target, run, bank, options });
    const saved = JSON.parse(readFileSync(io.checkpointPath, "utf8")) as ShardResult;
    await rm(io.checkpointPath, { force: true });
    // units the RoI cannot see took no pass: the gathering run skips them itself, as a local run does
    const mine = shardSamples(saved.samples, p.shard.index, p.shard.count);
    const samples = Object.fromEntries(Object.entries(mine).filter(([u]) => !shard.unreachable?.(Number(u))));
    return { job: jobId, ...computedHere(), key: saved.key, samples };
  });
}
