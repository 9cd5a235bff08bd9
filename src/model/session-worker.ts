/**
 * SessionWorker: one ONNX Runtime session in a worker_threads Worker. onnxruntime-node runs
 * `session.run` synchronously on the calling JS thread (the binding only defers it with
 * setImmediate, microsoft/onnxruntime#26968), so several sessions in one thread take turns instead
 * of overlapping; a session in its own thread really runs beside the main one.
 *
 * Batch inputs are Float32Arrays on a SharedArrayBuffer (see Sessions.buffer) so posting one shares the
 * memory instead of copying it on the main thread; the binding refuses SharedArrayBuffer-backed
 * tensors ("Invalid argument"), so the worker copies the batch into its own array (one memcpy, off
 * the main thread). The output buffer is transferred back without a copy. The worker only runs the
 * graph: every check of the output (type, shape, NaN) stays on the main side, as for workers = 1.
 */
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import type ort from "onnxruntime-node";
import { closeOnInterrupt, isInterrupted } from "../util/interrupt.js";

/** A tensor as it crosses threads: an ort.Tensor is one, and so is a worker's reply. */
export interface TensorData {
  type: ort.Tensor.Type;
  dims: readonly number[];
  data: ort.Tensor.DataType;
}

/**
 * The worker's code, as a string so the same source runs from dist/ and from the TypeScript
 * sources under vitest (a .ts worker file cannot be loaded by Node 20). Only dynamic import(): an
 * eval worker is CommonJS or ESM depending on the parent's flags (--input-type=module). It loads
 * the onnxruntime-node the main thread resolved, so both threads use one build of the runtime.
 */
const WORKER_SOURCE = `
(async () => {
const { parentPort, workerData } = await import("node:worker_threads");
const ort = (await import(workerData.ort)).default;
const firstLine = (e) => String((e && e.message) || e).split("\\n")[0];
ort.InferenceSession.create(workerData.bytes, workerData.options).then(
  (session) => {
    parentPort.postMessage({ ready: true });
    parentPort.on("message", async ({ id, feeds, fetches }) => {
      try {
        const tensors = {};
        // slice() of a shared buffer: the binding refuses SharedArrayBuffer-backed tensors, and a run
        // queued behind another must not see its input change. Other buffers were copied by postMessage.
        for (const [k, t] of Object.entries(feeds)) {
          const data = typeof SharedArrayBuffer !== "undefined" && t.data.buffer instanceof SharedArrayBuffer ? t.data.slice() : t.data;
          tensors[k] = new ort.Tensor(t.type, data, t.dims);
        }
        const result = fetches ? await session.run(tensors, fetches) : await session.run(tensors);
        const outputs = {};
        const transfer = [];
        for (const [k, out] of Object.entries(result)) {
          let data = out.data;
          // Transfer the output's own buffer when it holds exactly the data; copy otherwise.
          if (data.byteOffset !== 0 || data.byteLength !== data.buffer.byteLength || transfer.includes(data.buffer)) data = data.slice();
          outputs[k] = { type: out.type, dims: out.dims, data };
          transfer.push(data.buffer);
        }
        try {
          parentPort.postMessage({ id, outputs }, transfer);
        } catch {
          parentPort.postMessage({ id, outputs }); // a buffer the runtime will not let go of is copied instead
        }
      } catch (e) {
        parentPort.postMessage({ id, error: firstLine(e) });
      }
    });
  },
  (e) => parentPort.postMessage({ error: firstLine(e) }),
);
})();
`;

/** file: URL of the onnxruntime-node entry this module uses, for a worker thread to import. */
export function ortUrl(): string {
  return pathToFileURL(createRequire(import.meta.url).resolve("onnxruntime-node")).href;
}

export class SessionWorker {
  private readonly pending = new Map<number, { resolve: (r: Record<string, TensorData>) => void; reject: (e: Error) => void }>();
  private nextId = 0;
  private dead: Error | undefined;
  /** called once nothing is in flight (closeForExit waits for it) */
  private onIdle: (() => void) | undefined;

  private constructor(private readonly worker: Worker) {
    worker.on("message", (m: { id: number; error?: string; outputs: Record<string, TensorData> }) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      this.idle();
      if (m.error !== undefined) p.reject(new Error(m.error));
      else p.resolve(m.outputs);
    });
    // A crashed worker fails what it had in flight (and anything sent later) instead of hanging.
    const die = (e: Error) => {
      this.dead ??= e;
      for (const p of this.pending.values()) p.reject(this.dead);
      this.pending.clear();
      this.idle();
    };
    worker.on("error", die);
    worker.on("exit", (code) => die(new Error(`ONNX Runtime worker thread exited (code ${code})`)));
  }

  /** Starts a worker and creates its session; rejects with ORT's first error line. */
  static async create(bytes: Uint8Array, options: ort.InferenceSession.SessionOptions): Promise<SessionWorker> {
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { ort: ortUrl(), bytes, options },
    });
    const ready = new Promise<void>((resolve, reject) => {
      worker.once("message", (m: { ready?: boolean; error?: string }) => (m.ready ? resolve() : reject(new Error(m.error))));
      worker.once("error", reject);
      worker.once("exit", (code) => reject(new Error(`ONNX Runtime worker thread exited (code ${code})`)));
    });
    try {
      await ready;
    } catch (e) {
      await worker.terminate();
      throw e;
    }
    const w = new SessionWorker(worker);
    w.idle();
    closeOnInterrupt(w);
    return w;
  }

  /**
   * Runs one batch: `feeds` by input name, `fetches` the outputs wanted (all when omitted). Float
   * feeds should live on a SharedArrayBuffer (otherwise postMessage copies them).
   */
  run(feeds: Record<string, TensorData>, fetches?: readonly string[]): Promise<Record<string, TensorData>> {
    if (this.dead) return Promise.reject(this.dead);
    // After Ctrl-C/kill nothing new starts; the caller waits while the process closes and exits.
    if (isInterrupted()) return new Promise(() => {});
    const id = this.nextId++;
    const done = new Promise<Record<string, TensorData>>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.worker.ref(); // keep the process alive while a batch is in flight
    const plain = Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, { type: t.type, dims: [...t.dims], data: t.data }]));
    this.worker.postMessage({ id, feeds: plain, fetches });
    return done;
  }

  /** An idle worker must not keep the process alive (a Model that is never released). */
  private idle(): void {
    if (this.pending.size > 0) return;
    this.worker.unref();
    this.onIdle?.();
  }

  async release(): Promise<void> {
    await this.worker.terminate();
  }

  /** Lets the batches in flight finish, then stops the thread (see closeOnInterrupt). */
  async closeForExit(): Promise<void> {
    if (this.pending.size > 0) await new Promise<void>((resolve) => (this.onIdle = resolve));
    await this.worker.terminate();
  }
}
