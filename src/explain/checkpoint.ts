/**
 * Checkpoints of finished samples, so that a long run that is killed loses at most a few seconds
 * of work. The key ties a checkpoint to everything that decides the samples.
 */
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import { writeFileAtomic, writeFileAtomicSync } from "../util/atomic.js";
import { sha256 } from "../util/hash.js";
import { saveOnInterrupt } from "../util/interrupt.js";
import { type ProgressListener, ProgressTracker } from "../util/progress.js";
import { cachedEvaluate, type Evaluate, OutcomeStore, type SampleRequest } from "./samples.js";

export class Checkpoint {
  private lastSave = Date.now();
  readonly resumedSamples: number;

  private constructor(
    readonly path: string,
    readonly key: string,
    readonly store: OutcomeStore,
    private readonly everyMs: number,
  ) {
    this.resumedSamples = store.size;
    this.savedSize = store.size;
    saveOnInterrupt(this);
  }

  private savedSize: number;
  /** samples of another run (other settings) found at the path and not reused: the next save replaces them */
  discardedSamples = 0;

  /** samples a rerun would find in the checkpoint file */
  get kept(): number {
    return this.savedSize;
  }

  /** Opens the checkpoint at `path`; reuses its samples only when the key matches. */
  static open(path: string, keyMaterial: unknown, everyMs = 5000): Checkpoint {
    const key = sha256(JSON.stringify(keyMaterial));
    let store = new OutcomeStore();
    let discarded = 0;
    if (existsSync(path)) {
      try {
        const saved = JSON.parse(readFileSync(path, "utf8")) as { key: string; samples: Record<string, (number | null)[]> };
        if (saved.key === key) store = OutcomeStore.fromJSON(saved.samples);
        else discarded = Object.values(saved.samples ?? {}).reduce((a, v) => a + v.length, 0);
      } catch {
        // An unreadable checkpoint (e.g. killed mid-write on a non-atomic FS) is just ignored.
      }
    }
    const cp = new Checkpoint(path, key, store, everyMs);
    cp.discardedSamples = discarded;
    return cp;
  }

  /** What a result should say about this checkpoint: samples reused, or another run's replaced. */
  notes(): string[] {
    const out: string[] = [];
    if (this.resumedSamples > 0) out.push(`resumed from checkpoint: ${this.resumedSamples} samples reused`);
    if (this.discardedSamples > 0)
      out.push(
        `${this.path} held ${this.discardedSamples} samples of a run with other settings (another command, image, RoI or option): not reused, and replaced`,
      );
    return out;
  }

  private saving: Promise<void> | undefined;
  private saveError: unknown;

  async maybeSave(): Promise<void> {
    if (this.saveError) throw this.saveError;
    if (Date.now() - this.lastSave >= this.everyMs) await this.save();
  }

  /**
   * Starts a save in the background when one is due and none is running (called as batches
   * finish, where nothing can wait); its failure surfaces at the next maybeSave or save.
   */
  saveSoon(): void {
    if (this.saving || this.saveError || Date.now() - this.lastSave < this.everyMs) return;
    this.save().catch((e) => (this.saveError = e));
  }

  async save(): Promise<void> {
    if (this.saveError) throw this.saveError;
    while (this.saving) await this.saving; // one save at a time: an older snapshot never lands last
    this.lastSave = Date.now();
    // The snapshot is taken now: samples finished while it is written go into the next save.
    const size = this.store.size;
    const text = this.serialise();
    const write = (async () => {
      await mkdir(dirname(this.path), { recursive: true }); // the output folder may not exist yet
      await writeFileAtomic(this.path, text);
    })();
    this.saving = write;
    try {
      await write;
    } finally {
      this.saving = undefined;
    }
    this.savedSize = Math.max(this.savedSize, size);
    // An interruption saved a newer snapshot while this one was written: it must be the one that stays.
    if (this.interrupted) writeFileAtomicSync(this.path, this.serialise());
  }

  private interrupted = false;

  /** On interruption: writes the samples finished since the last save, synchronously (see util/interrupt.ts). */
  saveIfDirty(): boolean {
    this.interrupted = true;
    if (this.store.size <= this.savedSize) return false;
    // Its own temp file (every temp name is unique): a periodic save may be half-way through its own.
    mkdirSync(dirname(this.path), { recursive: true });
    writeFileAtomicSync(this.path, this.serialise());
    this.savedSize = this.store.size;
    return true;
  }

  private serialise(): string {
    return JSON.stringify({ key: this.key, samples: this.store.toJSON() });
  }
}

/** Samples handed to the raw evaluator at once (its batches run in parallel within a chunk). */
export const DEFAULT_CHUNK = 512;

export interface Resumable {
  /** scores only the samples not finished yet, saving them every few seconds; one progress stage per call */
  evaluate: Evaluate;
  /** counts `n` samples as done in the current progress stage (called by the raw evaluator as it goes) */
  progress: (n: number) => void;
  /**
   * Records one finished sample at once (called by the raw evaluator as each batch's outputs are
   * scored): it counts in the progress, an interruption checkpoints it, and a periodic save
   * may start, so no finished batch waits for the end of its chunk.
   */
  finished: (request: SampleRequest, value: number) => void;
  /** undefined without a checkpoint path */
  checkpoint: Checkpoint | undefined;
}

/**
 * The raw evaluator of a sampled method made resumable: samples finished by an earlier run with the
 * same key are reused, new ones are checkpointed at `path`, and samples resumed count as done in the
 * progress shown.
 */
export function resumableEvaluate(
  raw: Evaluate,
  opts: {
    path?: string;
    key: unknown;
    onProgress?: ProgressListener;
    chunk?: number;
    saveEveryMs?: number;
    /** what a sample counts in the progress (default 1; the model passes it runs, when they differ per sample) */
    cost?: (r: SampleRequest) => number;
  },
): Resumable {
  const checkpoint = opts.path ? Checkpoint.open(opts.path, opts.key, opts.saveEveryMs) : undefined;
  const store = checkpoint?.store ?? new OutcomeStore();
  const cached = cachedEvaluate(raw, store, opts.chunk ?? DEFAULT_CHUNK, checkpoint ? () => checkpoint.maybeSave() : undefined);
  let tracker: ProgressTracker | undefined;
  const cost = opts.cost ?? (() => 1);
  const sum = (reqs: SampleRequest[]) => (opts.cost ? reqs.reduce((n, r) => n + cost(r), 0) : reqs.length);
  return {
    checkpoint,
    progress: (n) => tracker?.add(n),
    finished: (r, v) => {
      store.set(r.unit, r.draw, v);
      tracker?.add(cost(r));
      checkpoint?.saveSoon();
    },
    evaluate: (reqs, stage) => {
      tracker = new ProgressTracker(stage, sum(reqs), opts.onProgress);
      tracker.resume(sum(reqs.filter((r) => store.get(r.unit, r.draw) !== undefined)));
      return cached(reqs, stage);
    },
  };
}
