/**
 * Runner: pushes model inputs through a Model in fixed-size batches (batches.ts: the tail padded,
 * so every run has the same shape and ORT reuses its buffers), and turns each output into one
 * number at once. It uses the Model's sessions as they are when it is made (see Model.configure).
 */
import { fail } from "../errors.js";
import { BatchRunner } from "./batches.js";
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

/** The batch size a graph runs at: its fixed batch axis when it has one, else the request (checked). */
export function batchSizeOf(fixed: number | undefined, requested = DEFAULT_BATCH_SIZE): number {
  if (!Number.isInteger(requested) || requested < 1) fail(`batch size must be a positive integer, got ${requested}`, "use --batch-size 1..64");
  return fixed ?? requested;
}

export class Runner {
  readonly batchSize: number;
  readonly notes: string[] = [];
  private readonly batches_: BatchRunner;

  constructor(
    readonly model: Model,
    private readonly opts: RunnerOptions = {},
  ) {
    const requested = opts.batchSize ?? DEFAULT_BATCH_SIZE;
    this.batchSize = batchSizeOf(model.fixedBatch, requested);
    if (this.batchSize !== requested) {
      this.notes.push(
        `the model's batch dimension is fixed at ${model.fixedBatch} in the graph, so it runs ${model.fixedBatch} input(s) per call; export with a dynamic batch axis for speed`,
      );
    }
    // Input buffers (and as much again for outputs) are allocated up front: refuse a batch that
    // cannot fit rather than let the allocation or ONNX Runtime fail later.
    const bytes = this.batchSize * model.inputSize * 4 * model.workers * (model.threaded ? 2 : 1);
    if (bytes > 2 ** 31) {
      fail(
        `a batch of ${this.batchSize} inputs of ${model.channels}x${model.height}x${model.width} needs ${(bytes / 2 ** 30).toFixed(1)} GiB of input buffers`,
        "lower --batch-size: a few dozen inputs already keep ONNX Runtime busy (or use --batch-size auto)",
      );
    }
    this.batches_ = new BatchRunner(model.sessions, {
      feeds: [{ name: model.inputName, dims: [model.channels, model.height, model.width] }],
      fetches: [model.outputName],
      batchSize: this.batchSize,
      failed: (e, n) => model.runFailed(e, n),
    });
  }

  /** real inputs pushed through the model (padding excluded) */
  get forwardPasses(): number {
    return this.batches_.items;
  }
  /** model calls, padding included */
  get batches(): number {
    return this.batches_.batches;
  }

  /** Scores every item; result[i] belongs to items[i]. */
  async evaluate<T>(items: readonly T[], write: InputWriter<T>, read: OutputReader<T>): Promise<Float64Array> {
    const scores = new Float64Array(items.length);
    const { model } = this;
    await this.batches_.run(
      items,
      (item, [dst]) => write(item, dst),
      (out, slot, item, i) => (scores[i] = read(model.outputOf(out[model.outputName], this.batchSize), slot, item)),
      this.opts.onBatch,
    );
    return scores;
  }
}
