/**
 * Runner: pushes inputs through a Model in fixed-size batches (the tail padded, so every run has
 * the same shape and ORT reuses its buffers), and turns each output into one number at once.
 * With several workers (sessions) one batch is in flight per worker, and the next batch is
 * written while the others run.
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
  private readonly buffers: Float32Array[];

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
    this.buffers = Array.from({ length: model.workers }, (_, w) => model.batchBuffer(this.batchSize * model.inputSize, w));
  }

  /** Scores every item; result[i] belongs to items[i]. */
  async evaluate<T>(items: readonly T[], write: InputWriter<T>, read: OutputReader<T>): Promise<Float64Array> {
    const scores = new Float64Array(items.length);
    const size = this.model.inputSize;
    const B = this.batchSize;
    const W = this.buffers.length;
    const inflight: (Promise<void> | undefined)[] = new Array(W);
    for (let b = 0, start = 0; start < items.length; b++, start += B) {
      const w = b % W;
      await inflight[w]; // that worker's buffer is free again
      const buf = this.buffers[w];
      const n = Math.min(B, items.length - start);
      const first = start;
      for (let j = 0; j < n; j++) write(items[first + j], buf.subarray(j * size, (j + 1) * size));
      // Pad with a copy of the last real input: same shape every call, outputs ignored.
      for (let j = n; j < B; j++) buf.copyWithin(j * size, (n - 1) * size, n * size);
      inflight[w] = this.model.infer(buf, B, w).then((out) => {
        for (let j = 0; j < n; j++) scores[first + j] = read(out, j, items[first + j]);
        this.forwardPasses += n;
        this.batches += 1;
        this.opts.onBatch?.(n);
      });
      // Marked handled here; the error still surfaces at the next await of this worker or at the end.
      inflight[w]!.catch(() => undefined);
    }
    await Promise.all(inflight);
    return scores;
  }
}
