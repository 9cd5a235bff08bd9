/**
 * Checkpoints of finished samples, so that a long run that is killed loses at most a few seconds
 * of work. The key ties a checkpoint to everything that decides the samples.
 */
import { existsSync, readFileSync } from "node:fs";
import { rename, rm, writeFile } from "node:fs/promises";
import { sha256 } from "../util/hash.js";
import { OutcomeStore } from "./samples.js";

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
  }

  /** Opens the checkpoint at `path`; reuses its samples only when the key matches. */
  static open(path: string, keyMaterial: unknown, everyMs = 5000): Checkpoint {
    const key = sha256(JSON.stringify(keyMaterial));
    let store = new OutcomeStore();
    if (existsSync(path)) {
      try {
        const saved = JSON.parse(readFileSync(path, "utf8")) as { key: string; samples: Record<string, (number | null)[]> };
        if (saved.key === key) store = OutcomeStore.fromJSON(saved.samples);
      } catch {
        // An unreadable checkpoint (e.g. killed mid-write on a non-atomic FS) is just ignored.
      }
    }
    return new Checkpoint(path, key, store, everyMs);
  }

  async maybeSave(): Promise<void> {
    if (Date.now() - this.lastSave >= this.everyMs) await this.save();
  }

  async save(): Promise<void> {
    this.lastSave = Date.now();
    const tmp = `${this.path}.tmp`;
    await writeFile(tmp, JSON.stringify({ key: this.key, samples: this.store.toJSON() }));
    await rename(tmp, this.path);
  }

  async remove(): Promise<void> {
    await rm(this.path, { force: true });
  }
}
