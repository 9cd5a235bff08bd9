/**
 * BatchRunner: pushes items through one graph's Sessions in fixed-size batches. Every call has the
 * same shape (the last batch is padded), so ORT reuses its buffers and an item's numbers do not
 * depend on how many items came with it. Feeds are named, one slice per item (`write` fills it);
 * constant feeds go whole with every batch. With several workers each batch goes to whichever is
 * free, and the next batch is written while the others run; workers in their own threads get two
 * batch slots each, so a worker's next batch is already queued when it finishes.
 */
import type { Sessions, TensorData } from "./runtime.js";

export interface FeedSpec {
  name: string;
  /** dims of one item (the batch axis excluded) */
  dims: readonly number[];
  /**
   * what a slot holds before `write`: nothing (write fills it whole), zeros, or `fill(slot, dst)`
   * (e.g. slot `slot` of a batch computed before). Padding slots hold it too, instead of a copy of
   * the last real item.
   */
  init?: "zero" | ((slot: number, dst: Float32Array) => void);
}

export interface BatchPlan {
  feeds: FeedSpec[];
  /** whole tensors fed unchanged with every batch (their batch axis is the batch size) */
  constants?: Record<string, TensorData>;
  /** outputs wanted (all when omitted) */
  fetches?: readonly string[];
  batchSize: number;
  /** a call with fewer items than the batch size runs at its own size (graphs with a free batch axis) */
  shrink?: boolean;
  /** turns ORT's error on a batch of `n` into the caller's one-line failure */
  failed: (e: unknown, n: number) => never;
}

/** Fills the feeds of one item: `slot[k]` is feed k's slice. */
export type SlotWriter<T> = (item: T, slot: Float32Array[], index: number) => void;
/** Reads item `slot` of a batch's outputs (views valid during the call only). */
export type SlotReader<T> = (outputs: Record<string, TensorData>, slot: number, item: T, index: number) => void;

interface Slot {
  worker: number;
  bufs: Float32Array[];
}

export class BatchRunner {
  /** real items run (padding excluded) */
  items = 0;
  /** session calls, padding included */
  batches = 0;
  private readonly sizes: number[];
  /** slots per batch size (one size unless `shrink`) */
  private readonly slots = new Map<number, Slot[]>();

  constructor(
    readonly sessions: Sessions,
    readonly plan: BatchPlan,
  ) {
    this.sizes = plan.feeds.map((f) => f.dims.reduce((a, b) => a * b, 1));
  }

  /** The batch size of a call with `count` items. */
  batchFor(count: number): number {
    return this.plan.shrink ? Math.max(1, Math.min(this.plan.batchSize, count)) : this.plan.batchSize;
  }

  /** Runs every item; `read` sees each item's outputs once its batch is done (in order with one slot). */
  async run<T>(items: readonly T[], write: SlotWriter<T>, read: SlotReader<T>, onBatch?: (n: number) => void): Promise<void> {
    if (items.length === 0) return;
    const B = this.batchFor(items.length);
    const slots = this.slotsFor(B);
    const { feeds, constants, fetches, failed } = this.plan;
    const free = slots.map((_, s) => s);
    const inflight = new Map<number, Promise<number>>(); // slot → its batch, resolving to the slot
    for (let start = 0; start < items.length; start += B) {
      if (free.length === 0) {
        const done = await Promise.race(inflight.values()); // a slot (and its buffers) is free again
        inflight.delete(done);
        free.push(done);
      }
      const s = free.shift()!;
      const { worker, bufs } = slots[s];
      const n = Math.min(B, items.length - start);
      const first = start;
      feeds.forEach((f, k) => {
        if (f.init === undefined) return;
        const size = this.sizes[k];
        for (let j = 0; j < B; j++) {
          const dst = bufs[k].subarray(j * size, (j + 1) * size);
          if (f.init === "zero") dst.fill(0);
          else f.init(j, dst);
        }
      });
      for (let j = 0; j < n; j++)
        write(
          items[first + j],
          bufs.map((b, k) => b.subarray(j * this.sizes[k], (j + 1) * this.sizes[k])),
          first + j,
        );
      // Padding: a copy of the last real item (its outputs ignored), unless the feed has an init value.
      feeds.forEach((f, k) => {
        if (f.init !== undefined) return;
        const size = this.sizes[k];
        for (let j = n; j < B; j++) bufs[k].copyWithin(j * size, (n - 1) * size, n * size);
      });
      const tensors: Record<string, TensorData> = { ...constants };
      feeds.forEach((f, k) => (tensors[f.name] = { type: "float32", data: bufs[k], dims: [B, ...f.dims] }));
      const run = this.sessions.run(worker, tensors, fetches).then(
        (out) => {
          for (let j = 0; j < n; j++) read(out, j, items[first + j], first + j);
          this.items += n;
          this.batches += 1;
          onBatch?.(n);
          return s;
        },
        (e) => failed(e, B),
      );
      inflight.set(s, run);
      // Marked handled here; the error still surfaces at the next race or at the end.
      run.catch(() => undefined);
    }
    await Promise.all(inflight.values());
  }

  private slotsFor(B: number): Slot[] {
    let slots = this.slots.get(B);
    if (!slots) {
      const workers = Array.from({ length: this.sessions.workers }, (_, w) => w);
      slots = (this.sessions.threaded ? [...workers, ...workers] : workers).map((worker) => ({
        worker,
        bufs: this.sizes.map((size) => this.sessions.buffer(B * size)),
      }));
      this.slots.set(B, slots);
    }
    return slots;
  }
}
