/**
 * Checkpoints of finished samples, so that a long run that is killed loses at most a few seconds
 * of work. The key ties a checkpoint to everything that decides the samples.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { mkdir, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { sha256 } from "../util/hash.js";
import { saveOnInterrupt } from "../util/interrupt.js";
import { ProgressTracker, type ProgressListener } from "../util/progress.js";
import { cachedEvaluate, OutcomeStore, type Evaluate } from "./samples.js";

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
    if (this.discardedSamples > 0) out.push(`${this.path} held ${this.discardedSamples} samples of a run with other settings (another command, image, RoI or option): not reused, and replaced`);
    return out;
  }

  async maybeSave(): Promise<void> {
    if (Date.now() - this.lastSave >= this.everyMs) await this.save();
  }

  async save(): Promise<void> {
    this.lastSave = Date.now();
    const size = this.store.size;
    const tmp = `${this.path}.tmp`;
    await mkdir(dirname(this.path), { recursive: true }); // the output folder may not exist yet
    await writeFile(tmp, this.serialise());
    await rename(tmp, this.path);
    this.savedSize = Math.max(this.savedSize, size);
  }

  /** On interruption: writes the samples finished since the last save, synchronously (see util/interrupt.ts). */
  saveIfDirty(): boolean {
    if (this.store.size <= this.savedSize) return false;
    // Its own temp file: a periodic save may be half-way through writing `${path}.tmp`.
    const tmp = `${this.path}.${process.pid}.int.tmp`;
    mkdirSync(dirname(this.path), { recursive: true });
    writeFileSync(tmp, this.serialise());
    renameSync(tmp, this.path);
    this.savedSize = this.store.size;
    return true;
  }

  private serialise(): string {
    return JSON.stringify({ key: this.key, samples: this.store.toJSON() });
  }
}

/** Samples scored between checkpoint saves: bounded loss, negligible overhead. */
const CHUNK = 512;

export interface Resumable {
  /** scores only the samples not finished yet, saving them every few seconds; one progress stage per call */
  evaluate: Evaluate;
  /** counts `n` samples as done in the current progress stage (called by the raw evaluator as it goes) */
  progress: (n: number) => void;
  /** undefined without a checkpoint path */
  checkpoint: Checkpoint | undefined;
}

/**
 * The raw evaluator of a sampled method made resumable: samples finished by an earlier run with the
 * same key are reused, new ones are checkpointed at `path`, and samples resumed count as done in the
 * progress shown.
 */
export function resumableEvaluate(raw: Evaluate, opts: { path?: string; key: unknown; onProgress?: ProgressListener; chunk?: number; saveEveryMs?: number }): Resumable {
  const checkpoint = opts.path ? Checkpoint.open(opts.path, opts.key, opts.saveEveryMs) : undefined;
  const store = checkpoint?.store ?? new OutcomeStore();
  const cached = cachedEvaluate(raw, store, opts.chunk ?? CHUNK, checkpoint ? () => checkpoint.maybeSave() : undefined);
  let tracker: ProgressTracker | undefined;
  return {
    checkpoint,
    progress: (n) => tracker?.add(n),
    evaluate: (reqs, stage) => {
      tracker = new ProgressTracker(stage, reqs.length, opts.onProgress);
      tracker.add(reqs.filter((r) => store.get(r.unit, r.draw) !== undefined).length);
      return cached(reqs, stage);
    },
  };
}
