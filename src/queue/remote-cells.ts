/**
 * The enqueuing side of `evaluate --queue`: a RoI's controls and each of its cells become jobs whose
 * id is their key (a restarted run re-attaches to them, a finished one is not recomputed), their
 * inputs go to Redis as blobs, and their results come back as the jobs' return values, which the
 * shared cell logic (roi-cells.ts) writes exactly as a local run would.
 */
import { createHash } from "node:crypto";
import { createReadStream, existsSync, statSync } from "node:fs";
import { Queue, QueueEvents } from "bullmq";
import type { Redis } from "ioredis";
import type { Case } from "../data/case.js";
import type { PatchBank } from "../data/patchbank.js";
import { fail, SegcauseError } from "../errors.js";
import { addRoiNote, writeCellFiles } from "../evaluate/cell.js";
import type { EvaluateConfig } from "../evaluate/protocol.js";
import type { Def, OpenedRoi } from "../evaluate/roi-cells.js";
import type { PlacedRoi } from "../evaluate/rois.js";
import type { CellId, CellRecord, ControlRecord } from "../evaluate/store.js";
import type { Attribution } from "../explain/attribution.js";
import type { BoxUnitName } from "../explain/volume/box-size.js";
import type { Model } from "../model/model.js";
import type { VolumeNet } from "../model/volume-model.js";
import { sha256 } from "../util/hash.js";
import { type BlobRef, putBlob } from "./blobs.js";
import { CELLS_QUEUE, connectRedis, redactUrl } from "./connection.js";
import {
  type CellJob,
  CellResult,
  type ControlJob,
  ControlResult,
  firstIssue,
  JOB_VERSION,
  type JobName,
  REFUSED,
  type ShardJob,
  type VolumeCellJob,
  type VolumeControlJob,
  type VolumeShardJob,
} from "./jobs.js";
import { type ComputedBy, type QueueWorkers, queueWorkers, rerunHint, versionMismatch } from "./shard-env.js";

/** A cell computed on a worker: its files and its cost, as the cell logic reports it. */
export interface RemoteCell {
  /** the job that computed it (its result is dropped from Redis once the cell is written) */
  jobId: string;
  result: CellResult;
  forwardPasses: number;
  backwardPasses: number;
  wallMs: number;
}

/** What a RoI's jobs are made of, from the enqueuer's loaded model, case and bank. */
export interface RemoteRoi {
  id: CellId;
  model: Model;
  kase: Case;
  roi: PlacedRoi;
  bank?: PatchBank;
  bankPath?: string;
  controlKey: string;
  /** one per method, in the order of `defs` */
  cellKeys: string[];
  defs: Def[];
  /** the RoI's control when the folder holds it */
  control?: ControlRecord;
  /** the run's notes, which the notes of opening the RoI on a worker join (as a local run's) */
  notes: string[];
}

/** A volume data set's (model, case, structure) whose jobs the workers compute. */
export interface RemoteVolumeRoi extends Pick<RemoteRoi, "id" | "controlKey" | "cellKeys" | "defs" | "control" | "notes"> {
  model: Pick<VolumeNet, "path" | "cardPath">;
  /** the case's image as the manifest names it (the provenance's), and the file that carries it (a series folder packed) */
  imagePath: string;
  imageFile: string;
  imageFolder: boolean;
  series?: string;
  maskPath: string;
  /** --label, else the case's labels */
  label?: string | number[];
  bankPath?: string;
  boxUnit: BoxUnitName;
}

/**
 * A job that failed on the workers for another reason than a refusal: not a SegcauseError, so the
 * cell logic does not record it as the method's refusal; the run stops with its one line (queuedRun).
 */
export class JobFailed extends Error {
  constructor(
    message: string,
    readonly hint: string,
  ) {
    super(message);
  }
}

const LOST_HINT = "start Redis again and rerun the same command: finished cells are kept and the queue's jobs are re-attached";

/** Attempts of a job that fails for another reason than a refusal (a worker's crash, a lost connection). */
const ATTEMPTS = 3;

/** How often the enqueuer checks that the jobs it waits on are still in the queue. */
const VANISHED_CHECK_MS = 5_000;

export class RemoteCells {
  private blobs = new Map<string, Promise<BlobRef>>();
  private lostProblem?: string;
  private lostListeners = new Set<(e: SegcauseError) => void>();
  /** the jobs this process waits on, by id: how each wait fails when its job leaves the queue unfinished */
  private waiting = new Map<string, (e: SegcauseError) => void>();
  private watch?: NodeJS.Timeout;
  /** what computed the results this process accepted (distinct workers) */
  private computedBy = new Map<string, ComputedBy>();

  private constructor(
    readonly url: string,
    private redis: Redis,
    private queue: Queue,
    private events: QueueEvents,
  ) {}

  /** Connects (one line when Redis cannot be reached) and starts listening for finished jobs. */
  static async open(url: string): Promise<RemoteCells> {
    let self: RemoteCells | undefined;
    const redis = await connectRedis(url, (problem) => self?.lost(problem));
    const queue = new Queue(CELLS_QUEUE, { connection: redis });
    const events = new QueueEvents(CELLS_QUEUE, { connection: redis.duplicate() });
    events.setMaxListeners(0);
    // connection errors: the client's retry strategy decides, and a lost connection is one line (lost())
    queue.on("error", () => {});
    events.on("error", () => {});
    await events.waitUntilReady();
    self = new RemoteCells(url, redis, queue, events);
    const watched = self;
    watched.watch = setInterval(() => void watched.checkWaiting(), VANISHED_CHECK_MS);
    watched.watch.unref();
    return self;
  }

  /**
   * The run's failure as the CLI reports it: once the connection is lost, whatever failed for it is
   * that one line; a job that failed on the workers is its own line.
   */
  problem(e: unknown): unknown {
    if (this.lostProblem && !(e instanceof SegcauseError)) return new SegcauseError(this.lostProblem, LOST_HINT);
    return e instanceof JobFailed ? new SegcauseError(e.message, e.hint) : e;
  }

  private lost(problem: string): void {
    this.lostProblem ??= problem;
    const e = new SegcauseError(
      problem,
      "start Redis again and rerun the same command: finished cells are kept and the queue's jobs are re-attached",
    );
    for (const l of this.lostListeners) l(e);
  }

  /**
   * A job removed before it finished (`segcause queue drain`, a Redis restarted without its data) would
   * be waited on for ever: its wait fails in one line instead. One pipeline of EXISTS for all of them.
   */
  private async checkWaiting(): Promise<void> {
    if (this.waiting.size === 0 || this.lostProblem) return;
    const ids = [...this.waiting.keys()];
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.exists(this.queue.toKey(id));
    const answers = await pipeline.exec().catch(() => null);
    if (!answers) return; // a connection problem: lost() reports it
    answers.forEach(([err, n], i) => {
      if (err || n !== 0) return;
      this.waiting.get(ids[i])?.(
        new SegcauseError(
          `job ${ids[i].slice(0, 16)}… left the queue of ${redactUrl(this.url)} before it finished (drained, or Redis restarted without its data)`,
          "rerun the same command: finished cells are kept and the missing jobs are queued again",
        ),
      );
    });
  }

  /** Closes the connections; with Redis gone, after a second at most (pending commands are dropped). */
  async close(): Promise<void> {
    clearInterval(this.watch);
    const closed = Promise.allSettled([this.events.close(), this.queue.close()]);
    await Promise.race([closed, new Promise((r) => setTimeout(r, this.lostProblem ? 0 : 1000).unref())]);
    await Promise.allSettled([this.events.disconnect(), this.queue.disconnect()]);
    this.redis.disconnect();
  }

  /**
   * Refuses, before anything is written or enqueued, inputs the queue cannot carry: a model whose
   * weights are in external data files (a worker gets the .onnx alone), and a file over Redis' size
   * of one value (`proto-max-bulk-len`, 512 MB unless the server says otherwise).
   */
  async checkInputs(models: Pick<Model, "path" | "sha256">[], files: string[]): Promise<void> {
    for (const m of models)
      if ((await fileSha256(m.path)) !== m.sha256)
        fail(
          `${m.path} keeps its weights in external data files, which --queue does not send to the workers`,
          "save the model with its weights inside the .onnx (onnx.save(model, path) without save_as_external_data), or run without --queue",
        );
    const limit = await this.valueLimit();
    for (const path of new Set([...models.flatMap((m) => [m.path, `${m.path}.json`]), ...files])) {
      const size = existsSync(path) ? statSync(path).size : 0;
      if (size > limit)
        fail(
          `${path} has ${(size / 2 ** 20).toFixed(1)} MB, more than the ${(limit / 2 ** 20).toFixed(0)} MB one Redis value of ${redactUrl(this.url)} can hold`,
          "raise proto-max-bulk-len on the Redis server, or run without --queue",
        );
    }
  }

  private async valueLimit(): Promise<number> {
    try {
      const got = (await this.redis.config("GET", "proto-max-bulk-len")) as string[];
      const n = Number(got?.[1]);
      return Number.isFinite(n) && n > 0 ? n : 512 * 2 ** 20;
    } catch {
      return 512 * 2 ** 20; // CONFIG refused (a managed Redis): the default
    }
  }

  /** The file stored in Redis under its sha256 (once per process). */
  blob(path: string): Promise<BlobRef> {
    let b = this.blobs.get(path);
    if (!b) {
      b = putBlob(this.redis, path);
      this.blobs.set(path, b);
    }
    return b;
  }

  /**
   * Drops a finished job's return value once the enqueuer has written it to its folder: Redis keeps
   * the job (its state, attempts and stalls, which `queue status` counts) but not its map, and a
   * rerun finds the result in the folder, not in the queue.
   */
  async dropResult(jobId: string): Promise<void> {
    await this.redis.hdel(this.queue.toKey(jobId), "returnvalue");
  }

  /** Removes a finished job whose result was refused: a rerun queues it again instead of re-reading that result. */
  async forget(jobId: string): Promise<void> {
    await this.queue.remove(jobId);
  }

  /** The workers whose results this process accepted, as the run's provenance records them; undefined when none. */
  workers(): QueueWorkers | undefined {
    return this.computedBy.size ? queueWorkers([...this.computedBy.values()]) : undefined;
  }

  /**
   * A worker's result of a control or cell job, checked: its shape, the versions it was computed with
   * (another segcause or ONNX Runtime could give other numbers) and its key. A refused result is
   * never written, and its job leaves the queue, so the rerun the one line asks for computes it again.
   */
  private async accept<T extends ComputedBy>(
    raw: unknown,
    schema: { safeParse(x: unknown): { success: true; data: T } | { success: false; error: Parameters<typeof firstIssue>[0] } },
    jobId: string,
    what: string,
    key?: (r: T) => string | undefined,
    expected?: string,
  ): Promise<T> {
    const got = schema.safeParse(raw);
    const other = got.success ? versionMismatch(got.data) : undefined;
    const problem = !got.success
      ? `a malformed result (${firstIssue(got.error)})`
      : other
        ? `a result computed by ${other}`
        : key && key(got.data) !== expected
          ? "the result of another key"
          : undefined;
    if (problem || !got.success) {
      await this.forget(jobId);
      throw new JobFailed(`a worker returned ${problem} for ${what}; it is not kept`, rerunHint());
    }
    const { segcause, onnxruntime, machine } = got.data;
    this.computedBy.set(JSON.stringify([machine, onnxruntime]), { segcause, onnxruntime, machine });
    return got.data;
  }

  /** Adds the job (or finds the one of this id) and waits for its return value; a refusal is a SegcauseError. */
  async run(
    name: JobName,
    jobId: string,
    data: ControlJob | CellJob | ShardJob | VolumeShardJob | VolumeControlJob | VolumeCellJob,
  ): Promise<unknown> {
    if (this.lostProblem) fail(this.lostProblem);
    let onLost: ((e: SegcauseError) => void) | undefined;
    const lost = new Promise<never>((_, reject) => {
      onLost = reject;
      this.lostListeners.add(reject);
    });
    const once = async () => {
      const adding = this.queue.add(name, data, { jobId, attempts: ATTEMPTS, backoff: { type: "exponential", delay: 2000 }, removeOnFail: false });
      // a race's loser fails later, once the connection is closed: that failure is the lost connection's, told once
      adding.catch(() => {});
      const job = await Promise.race([adding, lost]);
      // watched only once added (before, its key is absent for a good reason)
      const vanished = new Promise<never>((_, reject) => this.waiting.set(jobId, reject));
      const finished = job.waitUntilFinished(this.events);
      finished.catch(() => {});
      return await Promise.race([finished, lost, vanished]);
    };
    try {
      const got = await once();
      if (got !== null && got !== undefined) return got;
      // a finished job whose result was dropped once written (dropResult), and the written files are gone since: computed again
      await this.queue.remove(jobId);
      return await once();
    } catch (e) {
      if (e instanceof SegcauseError) throw e;
      const reason = (e as Error).message ?? String(e);
      if (reason.startsWith(REFUSED)) throw new SegcauseError(reason.slice(REFUSED.length));
      throw new JobFailed(
        `job ${jobId.slice(0, 16)}… (${name}) failed on the workers of ${redactUrl(this.url)}: ${reason}`,
        "see `segcause queue status`; after fixing the cause, `segcause queue retry` and rerun this command",
      );
    } finally {
      this.lostListeners.delete(onLost!);
      this.waiting.delete(jobId);
    }
  }

  /** The payload every job of the RoI shares: its inputs as blobs and the run's settings. */
  private async base(cfg: EvaluateConfig, r: RemoteRoi) {
    const modelPath = r.model.path;
    const card = `${modelPath}.json`;
    const { kase } = r;
    if (!kase.imagePath) throw new Error("a queued case needs its image file");
    if (r.bank && !r.bankPath) throw new Error("a queued run needs its bank's file");
    return {
      v: JOB_VERSION,
      id: r.id,
      model: await this.blob(modelPath),
      card: existsSync(card) ? await this.blob(card) : null,
      image: await this.blob(kase.imagePath),
      mask: kase.maskPath ? await this.blob(kase.maskPath) : null,
      bank: r.bank ? await this.blob(r.bankPath!) : null,
      roi: { id: r.roi.id, kind: r.roi.kind, rect: r.roi.rect },
      protocol: cfg.protocol,
      seed: cfg.seed,
      ...(cfg.batchSize !== undefined ? { batchSize: cfg.batchSize } : {}),
      ...(cfg.threads !== undefined ? { threads: cfg.threads } : {}),
      // only when on: the jobs (and their ids) of a run without it are as before
      ...(cfg.incremental && cfg.incremental !== "off" ? { incremental: cfg.incremental } : {}),
    } satisfies Omit<ControlJob, "controlKey">;
  }

  /** The RoI as the cell logic opens it: its control and its cells computed by the workers. */
  async open(cfg: EvaluateConfig, r: RemoteRoi): Promise<OpenedRoi<RemoteCell> | { skipped: string }> {
    return this.openJobs(await this.base(cfg, r), r, ["control", "cell"], (meta) => localProvenance(meta, r));
  }

  /** A volume case's structure (evaluate --queue on a volume data set): its control and its cells computed by the workers. */
  async openVolume(cfg: EvaluateConfig, r: RemoteVolumeRoi): Promise<OpenedRoi<RemoteCell> | { skipped: string }> {
    const base = {
      v: JOB_VERSION,
      id: r.id,
      model: await this.blob(r.model.path),
      card: existsSync(r.model.cardPath) ? await this.blob(r.model.cardPath) : null,
      image: await this.blob(r.imageFile),
      imageFolder: r.imageFolder,
      ...(r.series !== undefined ? { series: r.series } : {}),
      mask: await this.blob(r.maskPath),
      maskPath: r.maskPath,
      ...(r.label !== undefined ? { label: r.label } : {}),
      bank: r.bankPath ? await this.blob(r.bankPath) : null,
      boxUnit: r.boxUnit,
      protocol: cfg.protocol,
      seed: cfg.seed,
      ...(cfg.batchSize !== undefined ? { batchSize: cfg.batchSize } : {}),
      ...(cfg.threads !== undefined ? { threads: cfg.threads } : {}),
    } satisfies Omit<VolumeControlJob, "controlKey">;
    return this.openJobs(base, r, ["volume-control", "volume-cell"], (meta) => localVolumeProvenance(meta, r));
  }

  /** The control and cell jobs of a RoI whose payloads share `base`. */
  private async openJobs(
    base: Omit<ControlJob, "controlKey"> | Omit<VolumeControlJob, "controlKey">,
    r: Pick<RemoteRoi, "id" | "controlKey" | "cellKeys" | "defs" | "control" | "notes">,
    [controlJob, cellJob]: ["control", "cell"] | ["volume-control", "volume-cell"],
    provenance: (meta: Record<string, unknown>) => Record<string, unknown>,
  ): Promise<OpenedRoi<RemoteCell> | { skipped: string }> {
    // keys hash content only: the labels (names of the data set, model, image, RoI, files) go into the job
    // id too, so two cells of the same bytes under other names are two jobs, each returning its own names
    const labels = sha256(JSON.stringify(base)).slice(0, 16);
    let control = r.control?.status === "ok" ? r.control : undefined;
    const roi = `${r.id.image} ${r.id.roi}`;
    if (!control) {
      const jobId = `control-${r.controlKey}-${labels}`;
      const raw = await this.run(controlJob, jobId, { ...base, controlKey: r.controlKey } as ControlJob | VolumeControlJob);
      const got = await this.accept(
        raw,
        ControlResult,
        jobId,
        `the control of ${roi}`,
        (c) => ("control" in c ? c.control.key : r.controlKey) as string,
        r.controlKey,
      );
      if ("skipped" in got) return { skipped: got.skipped };
      for (const n of got.notes) addRoiNote(r.notes, n);
      control = got.control as ControlRecord;
    }
    const known = control;
    return {
      control: async () => known,
      explain: async (d) => {
        const cellKey = r.cellKeys[r.defs.indexOf(d)];
        const jobId = `${cellKey}-${labels}`;
        const raw = await this.run(cellJob, jobId, {
          ...base,
          cellKey,
          method: { name: d.def.name, options: d.run.options },
          control: known as CellJob["control"],
        } as CellJob | VolumeCellJob);
        const got = await this.accept(raw, CellResult, jobId, `${roi} ${d.def.name}`, (c) => c.record.key, cellKey);
        for (const n of got.notes) addRoiNote(r.notes, n);
        const cost = (got.record as unknown as CellRecord).cost;
        return { jobId, result: got, forwardPasses: cost.forwardPasses, backwardPasses: cost.backwardPasses, wallMs: cost.wallMs };
      },
      measure: async (_control, _h, c) => c.result.record as unknown as CellRecord,
      write: async (dir, c, record, checkpointPath) => {
        await writeCellFiles(dir, Buffer.from(c.result.npy, "base64"), provenance(c.result.meta), record, checkpointPath);
        // written: Redis need not keep the map (the job stays, so a rerun still re-attaches to it)
        await this.dropResult(c.jobId);
      },
    };
  }
}

/**
 * The Attribution's metadata with the enqueuer's file paths, not the worker's cache paths: the
 * folder reads as a local run's (the files are the same: the worker checked their sha256).
 */
function localProvenance(meta: Record<string, unknown>, r: RemoteRoi): Record<string, unknown> {
  const p = meta.provenance as Attribution["provenance"] | undefined;
  if (!p) return meta;
  return {
    ...meta,
    provenance: {
      ...p,
      model: { ...p.model, path: r.model.path },
      case: { ...p.case, imagePath: r.kase.imagePath, maskPath: r.kase.maskPath },
    },
  };
}

/** The volume Attribution's metadata with the enqueuer's file paths (model, card, image, label map), as localProvenance. */
function localVolumeProvenance(meta: Record<string, unknown>, r: RemoteVolumeRoi): Record<string, unknown> {
  const p = meta.provenance as { model: Record<string, unknown>; case: Record<string, unknown> } | undefined;
  if (!p) return meta;
  return {
    ...meta,
    provenance: {
      ...p,
      model: { ...p.model, path: r.model.path, cardPath: r.model.cardPath },
      case: { ...p.case, imagePath: r.imagePath, maskPath: r.maskPath },
    },
  };
}

/** A file's sha256, streamed (a model may be larger than one buffer). */
async function fileSha256(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest("hex");
}
