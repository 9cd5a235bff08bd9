/**
 * Gradients through sliding windows. The stitched output at a RoI cell is
 * Σ_w a_w(cell)·out_w(cell) / Σ_w a_w(cell), and only then does the card's activation make it a
 * probability; so dS/d(out_w) = a_w/Σa · act'(stitched)ᵀ · dS/d(prob). The activation's derivative
 * is taken at the stitched value (known after one forward pass of the windows), the result is fed as
 * the seed of the model's own gradient graph without the activation (the same GradientSession and
 * rules, no second gradient implementation), one window at a time, and the windows' input gradients
 * are summed into the padded volume.
 */

import type { BatchRunner } from "../../model/batches.js";
import type { Differentiable } from "../../model/differentiable.js";
import type { GradientReader, GradientRunner, GradientSession, GradientSlot, GradientWriter } from "../gradients.js";
import type { StitchedRoi, VolumeForward } from "./windows.js";

/** The model's gradient graph on its raw output (no appended activation): the seed is dS/d(raw output). */
export function rawOutput(model: Differentiable): Differentiable {
  return {
    path: model.path,
    inputName: model.inputName,
    outputName: model.outputName,
    inputDims: model.inputDims,
    outputDims: model.outputDims,
    outputChannels: model.outputChannels,
    classChannel: model.classChannel,
    activation: "none",
    gradientThreads: model.gradientThreads,
    device: model.device,
    proto: () => model.proto(),
  };
}

/**
 * dS/d(stitched raw output) on the RoI's cells (the kept channels' planes, as `stitch` gives them),
 * from dS/d(probability) `seed` ([C, plane] of the padded volume) and the stitched values, read as
 * the Target reads them: as they are (probabilities), a sigmoid (one kept channel) or a softmax over
 * the kept channels (all of them).
 */
export function stitchedUpstream(st: StitchedRoi, keep: readonly number[], seed: Float32Array, roiCells: Uint32Array, plane: number): Float32Array {
  const n = roiCells.length;
  const K = keep.length;
  const up = new Float32Array(K * n);
  const s = (k: number, i: number) => seed[keep[k] * plane + roiCells[i]];
  // Every non-zero seed must be one the stitch computes: a cell of the RoI on a kept channel.
  let all = 0,
    read = 0;
  for (const v of seed) all += Math.abs(v);
  for (let k = 0; k < K; k++) for (let i = 0; i < n; i++) read += Math.abs(s(k, i));
  if (read !== all) throw new Error("internal: a gradient seed outside the RoI's cells cannot go through sliding windows");
  for (let i = 0; i < n; i++) {
    if (st.spec.kind === "probabilities") for (let k = 0; k < K; k++) up[k * n + i] = s(k, i);
    else if (K === 1) {
      const p = 1 / (1 + Math.exp(-st.data[i]));
      up[i] = s(0, i) * p * (1 - p);
    } else {
      let max = -Infinity;
      for (let k = 0; k < K; k++) max = Math.max(max, st.data[k * n + i]);
      const p = new Float64Array(K);
      let sum = 0;
      for (let k = 0; k < K; k++) {
        p[k] = Math.exp(st.data[k * n + i] - max);
        sum += p[k];
      }
      let mean = 0;
      for (let k = 0; k < K; k++) {
        p[k] /= sum;
        mean += s(k, i) * p[k];
      }
      for (let k = 0; k < K; k++) up[k * n + i] = p[k] * (s(k, i) - mean);
    }
  }
  return up;
}

/**
 * A gradient session over the padded volume: each item's input and seed are written for the whole
 * padded volume, as for one box; its windows over the RoI run forward (the stitched value the
 * activation's derivative needs), then through the raw-output gradient graph with their share of the
 * seed; the read slot holds the summed input gradient. Counts every window run as a model pass.
 */
export class WindowedGradientSession implements GradientRunner {
  onEvaluated?: (n: number) => void;
  private stitchPasses = 0;

  constructor(
    private readonly inner: GradientSession,
    private readonly forward: VolumeForward,
    private readonly runner: BatchRunner,
    private readonly outputChannels: number,
  ) {
    inner.onEvaluated = (n) => this.onEvaluated?.(n);
  }

  get rule() {
    return this.inner.rule;
  }
  get batchSize() {
    return this.inner.batchSize;
  }
  get notes() {
    return this.inner.notes;
  }
  get forwardPasses() {
    return this.stitchPasses + this.inner.forwardPasses;
  }
  get backwardPasses() {
    return this.inner.backwardPasses;
  }

  async run<T>(items: readonly T[], write: GradientWriter<T>, read: GradientReader<T>, onBatch?: (n: number) => void): Promise<void> {
    const f = this.forward;
    const n = f.input.length;
    const slots = f.used.map((_, s) => s);
    for (let index = 0; index < items.length; index++) {
      const input = new Float32Array(n);
      const seed = new Float32Array(this.outputChannels * n);
      write(items[index], { input, seed });
      const stitched = await f.stitchOf(this.runner, input);
      this.stitchPasses += slots.length;
      this.onEvaluated?.(slots.length);
      const up = stitchedUpstream(stitched, f.keep, seed, f.roiCells, n);
      const grad = new Float32Array(n);
      await this.inner.run(
        slots,
        (slot, feed) => {
          f.fillWindow(slot, feed.input, input);
          f.windowSeed(slot, up, feed.seed);
        },
        (s, slot) => f.addWindow(slot, s.inputGrad, grad),
      );
      const none = (what: string) => () => {
        throw new Error(`internal: ${what} is not kept through sliding windows`);
      };
      const slot: GradientSlot = {
        get output(): Float32Array {
          return none("the whole output")();
        },
        inputGrad: grad,
        layerGrad: none("a layer's gradient"),
        activation: none("a layer's value"),
      };
      read(slot, items[index], index);
      onBatch?.(1);
    }
  }

  release(): Promise<void> {
    return this.inner.release();
  }
}
