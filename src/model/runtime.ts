/**
 * The runtime layer: the one place that creates ONNX Runtime sessions. A `Sessions` is one graph
 * (as bytes) opened either as one session on this thread or as one session per worker thread, all
 * with the same options so every worker computes the same outputs. Model, gradient graphs and
 * component cuts all open their graphs here; the batch Runner (runner.ts) drives them.
 */
import ort from "onnxruntime-node";
import { checkDevice, type Device, deviceFailed, executionProviders } from "./device.js";
import { SessionWorker, type TensorData } from "./session-worker.js";

export type { TensorData } from "./session-worker.js";

/** ONNX Runtime graph optimisation level. */
export type Optimization = "disabled" | "basic" | "extended" | "all";

export interface SessionConfig {
  /** intra-op threads of each session */
  threads: number;
  /** sessions, each in its own worker thread when more than 1 (default 1: one in-thread session) */
  workers?: number;
  /**
   * default "all". Graph surgery (gradient graphs, component cuts) uses "extended": the NCHWc layout
   * rewrite of "all" changes float rounding, so a cut or differentiated graph would no longer
   * reproduce the full model's outputs bit for bit.
   */
  optimization?: Optimization;
  /** execution provider (default "cpu"); see device.ts */
  device?: Device;
}

/** The options of every session: identical options, identical outputs. */
export function sessionOptions(threads: number, optimization: Optimization = "all", device: Device = "cpu"): ort.InferenceSession.SessionOptions {
  return {
    ...executionProviders(device),
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: optimization,
    // Spinning threads burn the second core between small batches; measured slower on 2 cores.
    extra: { session: { intra_op: { allow_spinning: "0" }, inter_op: { allow_spinning: "0" } } },
  };
}

/**
 * One graph's sessions. With one worker it is an in-thread session; with several, every worker is a
 * session in its own worker thread, since sessions sharing one JS thread never run at the same time
 * (see session-worker.ts), and a run on the main thread would also block it from feeding the others.
 * Creation errors are ORT's own: the caller knows what the graph is and words the failure.
 */
export class Sessions {
  private constructor(
    readonly threads: number,
    readonly optimization: Optimization,
    readonly device: Device,
    private readonly local: ort.InferenceSession | undefined,
    private readonly remotes: SessionWorker[],
  ) {}

  static async open(bytes: Uint8Array, cfg: SessionConfig): Promise<Sessions> {
    const workers = cfg.workers ?? 1;
    const optimization = cfg.optimization ?? "all";
    const device = cfg.device ?? "cpu";
    checkDevice(device);
    const options = sessionOptions(cfg.threads, optimization, device);
    if (workers === 1) {
      const local = await ort.InferenceSession.create(bytes, options).catch((e) => deviceFailed(device, e));
      return new Sessions(cfg.threads, optimization, device, local, []);
    }
    const remotes: SessionWorker[] = [];
    try {
      for (let k = 0; k < workers; k++) remotes.push(await SessionWorker.create(bytes, options).catch((e) => deviceFailed(device, e)));
    } catch (e) {
      await Promise.all(remotes.map((r) => r.release()));
      throw e;
    }
    return new Sessions(cfg.threads, optimization, device, undefined, remotes);
  }

  get workers(): number {
    return Math.max(1, this.remotes.length);
  }

  /** true when the workers are threads: the Runner then queues two batches per worker */
  get threaded(): boolean {
    return this.remotes.length > 0;
  }

  /**
   * A batch buffer: on a SharedArrayBuffer when the workers are threads, so handing it over shares
   * the memory instead of copying it. The caller must not write it while a run is in flight.
   */
  buffer(length: number): Float32Array {
    return this.threaded ? new Float32Array(new SharedArrayBuffer(length * Float32Array.BYTES_PER_ELEMENT)) : new Float32Array(length);
  }

  /** Runs one batch on session `worker`; `fetches` omitted returns every output. Rejects with ORT's error. */
  async run(worker: number, feeds: Record<string, TensorData>, fetches?: readonly string[]): Promise<Record<string, TensorData>> {
    if (this.remotes.length > 0) return this.remotes[worker].run(feeds, fetches);
    const tensors: Record<string, ort.Tensor> = {};
    for (const [k, t] of Object.entries(feeds)) tensors[k] = t instanceof ort.Tensor ? t : new ort.Tensor(t.type, t.data as never, t.dims);
    return fetches ? this.local!.run(tensors, fetches) : this.local!.run(tensors);
  }

  async release(): Promise<void> {
    await Promise.all([this.local?.release(), ...this.remotes.map((r) => r.release())]);
  }
}
