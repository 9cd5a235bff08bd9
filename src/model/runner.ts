/**
 * Runner: pushes inputs through a Model in fixed-size batches (the tail padded, so every run has
 * the same shape and ORT reuses its buffers), and turns each output into one number at once.
 * With several workers (sessions) each batch goes to whichever worker is free, and the next batch is
 * written while the others run. Workers in their own threads get two batch slots each, so a worker's
 * next batch is already queued when it finishes.
 */
import { fail } from "../errors.js";
import type { Model } from "./model.js";

export interface RunnerOptions {
  /** inputs per forward call; forced to the graph's batch size when that is fixed */
  batchSize?: number;
  /** called after each batch with the number of real (non-padding) inputs */
  onBatch?: (n: number) => void;
}

/** Fills `dst` (one model input, CHW) for an item. */
export type InputWriter<T> = (item: T, dst: Float32Array) => void;
/** Reads the output of batch slot `slot` (data holds the whole batch) and returns its score. */
export type OutputReader<T> = (data: Float32Array, slot: number, item: T) => number;

export const DEFAULT_BATCH_SIZE = 8;

export class Runner {
  readonly batchSize: number;
  /** real inputs pushed through the model (padding excluded) */
  forwardPasses = 0;
  /** model calls, padding included */
  batches = 0;
  readonly notes: string[] = [];
  /** one slot per batch in flight: the worker that runs it and its input buffer */
  private readonly slots: { worker: number; buf: Float32Array }[];

  constructor(
    readonly model: Model,
    private readonly opts: RunnerOptions = {},
  ) {
    const requested = opts.batchSize ?? DEFAULT_BATCH_SIZE;
    if (!Number.isInteger(requested) || requested < 1) fail(`batch size must be a positive integer, got ${requested}`, "use --batch-size 1..64");
    if (model.fixedBatch !== undefined && model.fixedBatch !== requested) {
      this.notes.push(
        `the model's batch dimension is fixed at ${model.fixedBatch} in the graph, so it runs ${model.fixedBatch} input(s) per call; export with a dynamic batch axis for speed`,
      );
      this.batchSize = model.fixedBatch;
    } else {
      this.batchSize = requested;
    }
    const workers = Array.from({ length: model.workers }, (_, w) => w);
    // Input buffers (and as much again for outputs) are allocated up front: refuse a batch that
    // cannot fit rather than let the allocation or ONNX Runtime fail later.
    const bytes = this.batchSize * model.inputSize * 4 * workers.length * (model.threaded ? 2 : 1);
    if (bytes > 2 ** 31) {
      fail(`a batch of ${this.batchSize} inputs of ${model.channels}x${model.height}x${model.width} needs ${(bytes / 2 ** 30).toFixed(1)} GiB of input buffers`, "lower --batch-size: a few dozen inputs already keep ONNX Runtime busy (or use --batch-size auto)");
    }
    this.slots = (model.threaded ? [...workers, ...workers] : workers).map((worker) => ({ worker, buf: model.batchBuffer(this.batchSize * model.inputSize) }));
  }

  /** Scores every item; result[i] belongs to items[i]. */
  async evaluate<T>(items: readonly T[], write: InputWriter<T>, read: OutputReader<T>): Promise<Float64Array> {
    const scores = new Float64Array(items.length);
    const size = this.model.inputSize;
    const B = this.batchSize;
    const free = this.slots.map((_, s) => s);
    const inflight = new Map<number, Promise<number>>(); // slot → its batch, resolving to the slot
    for (let start = 0; start < items.length; start += B) {
      if (free.length === 0) {
        const done = await Promise.race(inflight.values()); // a slot (and its buffer) is free again
        inflight.delete(done);
        free.push(done);
      }
      const s = free.shift()!;
      const { worker, buf } = this.slots[s];
      const n = Math.min(B, items.length - start);
      const first = start;
      for (let j = 0; j < n; j++) write(items[first + j], buf.subarray(j * size, (j + 1) * size));
      // Pad with a copy of the last real input: same shape every call, outputs ignored.
      for (let j = n; j < B; j++) buf.copyWithin(j * size, (n - 1) * size, n * size);
      const run = this.model.infer(buf, B, worker).then((out) => {
        for (let j = 0; j < n; j++) scores[first + j] = read(out, j, items[first + j]);
        this.forwardPasses += n;
        this.batches += 1;
        this.opts.onBatch?.(n);
        return s;
      });
      inflight.set(s, run);
      // Marked handled here; the error still surfaces at the next race or at the end.
      run.catch(() => undefined);
    }
    await Promise.all(inflight.values());
    return scores;
  }
}
