/**
 * Changed-region passes (issue 24, phase 3): the unperturbed input runs once through the full graph,
 * which returns every tensor the changed-region graph (src/onnx/changed.ts) pastes into; each
 * perturbed pass then feeds only the input's changed window and recomputes every tensor over the part
 * the change reaches and the RoI needs. An item's changed box is found by diffing the written input
 * against the unperturbed one, so every block method works unchanged; items with the same box run as
 * one batch (one session serves every box: window positions and sizes are inputs of the graph).
 */
import ort from "onnxruntime-node";
import type { Model } from "../model/model.js";
import { Sessions, type TensorData } from "../model/runtime.js";
import { type BoxPlan, type ChangedGraph, cacheDims, paddedCache, planBox, type Win } from "../onnx/changed.js";
import { exposeTensors } from "../onnx/surgery.js";

export class ChangedPasses {
  private readonly plans = new Map<string, BoxPlan>();

  private constructor(
    private readonly model: Model,
    readonly cg: ChangedGraph,
    private readonly sessions: Sessions,
    private readonly caches: Record<string, ort.Tensor>,
    private readonly baseInput: Float32Array,
    /** the input's needed box (rows, cols): changes outside it cannot reach the RoI */
    private readonly needIn: Win,
  ) {}

  /** Runs the unperturbed input through the full graph with the cached tensors as outputs, and opens the changed-region graph. */
  static async open(model: Model, cg: ChangedGraph, baseInput: Float32Array): Promise<ChangedPasses> {
    const tensors = [...new Set(cg.caches.map((c) => c.tensor))].filter((t) => t !== cg.input);
    const threads = model.threads * model.workers;
    let caches: Record<string, ort.Tensor>;
    const probe = tensors.length
      ? await Sessions.open(exposeTensors(model.proto(), tensors), { threads, workers: 1, device: model.device })
      : undefined;
    try {
      const base = probe
        ? await probe.run(0, { [model.inputName]: { type: "float32", data: baseInput, dims: [1, ...model.inputDims] } }, tensors)
        : {};
      caches = Object.fromEntries(
        cg.caches.map((c) => {
          const dims = cg.g.dims.get(c.tensor)!;
          const data = paddedCache(c, dims, c.tensor === cg.input ? baseInput : (base[c.tensor].data as Float32Array));
          return [c.feed, new ort.Tensor("float32", data, cacheDims(c, dims))];
        }),
      );
    } finally {
      await probe?.release();
    }
    const sessions = await Sessions.open(cg.bytes, { threads, workers: 1, device: model.device });
    return new ChangedPasses(model, cg, sessions, caches, baseInput, cg.need.get(cg.input)!.box.slice(2) as Win);
  }

  /** The box (rows, cols) where `x` differs from the unperturbed input inside the input's needed box, or undefined. */
  diffBox(x: Float32Array): Win | undefined {
    const { channels: C, height: H, width: W } = this.model;
    const [[r0, r1], [c0, c1]] = this.needIn;
    let [y0, y1, x0, x1] = [Infinity, -1, Infinity, -1];
    for (let c = 0; c < C; c++)
      for (let y = r0; y < r1; y++) {
        const at = (c * H + y) * W;
        for (let i = c0; i < c1; i++)
          if (x[at + i] !== this.baseInput[at + i]) {
            if (y < y0) y0 = y;
            if (y > y1) y1 = y;
            if (i < x0) x0 = i;
            if (i > x1) x1 = i;
          }
      }
    return y1 < 0
      ? undefined
      : [
          [y0, y1 + 1],
          [x0, x1 + 1],
        ];
  }

  plan(box: Win): BoxPlan {
    const key = box.flat().join(",");
    let p = this.plans.get(key);
    if (!p) {
      p = planBox(this.cg, box);
      this.plans.set(key, p);
    }
    return p;
  }

  /** The input's tile of `box` (every channel) out of a full model input. */
  tile(
    x: Float32Array,
    box: Win,
    dst: Float32Array = new Float32Array(this.model.channels * (box[0][1] - box[0][0]) * (box[1][1] - box[1][0])),
  ): Float32Array {
    const { channels: C, height: H, width: W } = this.model;
    const [[r0, r1], [c0, c1]] = box;
    let k = 0;
    for (let c = 0; c < C; c++)
      for (let y = r0; y < r1; y++) {
        const at = (c * H + y) * W;
        dst.set(x.subarray(at + c0, at + c1), k);
        k += c1 - c0;
      }
    return dst;
  }

  /** Runs `tiles` (all of one box) as one batch; returns the output's tile [n, OC, oh, ow] and its window. */
  async run(box: Win, tiles: Float32Array[]): Promise<{ data: Float32Array; window: Win }> {
    const p = this.plan(box);
    const [h, w] = [box[0][1] - box[0][0], box[1][1] - box[1][0]];
    const size = this.model.channels * h * w;
    const data = new Float32Array(tiles.length * size);
    tiles.forEach((t, i) => data.set(t, i * size));
    const feeds: Record<string, TensorData | ort.Tensor> = { ...this.caches };
    feeds[this.cg.input] = new ort.Tensor("float32", data, [tiles.length, this.model.channels, h, w]);
    for (const [n, v] of Object.entries(p.ints)) feeds[n] = new ort.Tensor("int64", v, [v.length]);
    let out: Record<string, TensorData>;
    try {
      out = await this.sessions.run(0, feeds as Record<string, TensorData>, [this.cg.output]);
    } catch (e) {
      this.model.runFailed(e, tiles.length);
    }
    return { data: out[this.cg.output].data as Float32Array, window: p.output };
  }

  async release(): Promise<void> {
    await this.sessions.release();
  }
}
