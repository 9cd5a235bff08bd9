/**
 * A worker's loaded models, at most `max` at once (`segcause worker --max-models`): each holds ONNX
 * Runtime sessions, so a worker that meets many models over its life would otherwise keep them all.
 * The least recently used one is released when another is loaded, never while a job uses it.
 */
export interface Releasable {
  release(): Promise<void>;
}

interface Entry<T> {
  value: Promise<T>;
  users: number;
}

export class ModelCache<T extends Releasable> {
  /** in order of last use, oldest first (a Map keeps insertion order) */
  private readonly entries = new Map<string, Entry<T>>();

  constructor(
    readonly max: number,
    /** told of each value released to stay within `max` */
    private readonly onRelease: (key: string) => void = () => {},
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** The value of `key` (loaded once), held until `done` is called; may release others over the bound. */
  async use<R>(key: string, load: () => Promise<T>, f: (value: T) => Promise<R>): Promise<R> {
    let e = this.entries.get(key);
    if (e) this.entries.delete(key);
    else {
      const value = load();
      e = { value, users: 0 };
      // a load that fails is not kept: the next job tries again
      value.catch(() => this.entries.get(key) === e && this.entries.delete(key));
    }
    this.entries.set(key, e);
    e.users++;
    try {
      await this.evict();
      return await f(await e.value);
    } finally {
      e.users--;
      await this.evict();
    }
  }

  /** Releases the least recently used values not in use until at most `max` are held. */
  private async evict(): Promise<void> {
    for (const [key, e] of this.entries) {
      if (this.entries.size <= this.max) return;
      if (e.users > 0) continue;
      this.entries.delete(key);
      await e.value.then((v) => v.release()).catch(() => {});
      this.onRelease(key);
    }
  }

  /** Releases every value (the worker stops). */
  async clear(): Promise<void> {
    const all = [...this.entries.values()];
    this.entries.clear();
    await Promise.allSettled(all.map((e) => e.value.then((v) => v.release())));
  }
}
