/**
 * The known-answer 3D model: a 16³ box; the logit everywhere is 10·(mean of the input over the causal
 * box z 0..7, y 0..7, x 8..15) − 10. The volume is raw 1 with raw 3 in the causal box, z-scored per
 * volume: the causal box is at +2.65, so every voxel is foreground. Replacing the causal box by raw 0
 * (or by noise boxes of other volumes, whose z-scores average about 0) makes every voxel background:
 * removal effect −100 Dice points there, exactly 0 for every other box.
 */
import { GraphBuilder } from "../../src/onnx/builder.js";

export const N = 16;
export const CAUSAL = { z: 0, y: 0, x: 8 };
export const ROI = { z: 8, y: 8, x: 0, depth: 8, height: 8, width: 8 };
export const inCausal = (i: number, j: number, k: number) => k < 8 && j < 8 && i >= 8;
export const AFFINE = [1, 0, 0, -20, 0, 1, 0, 5, 0, 0, 1, 7.5, 0, 0, 0, 1];

export const CARD = {
  schema: "segcause.modelcard/1",
  name: "causal-box-3d",
  input: {
    name: "image",
    layout: "ncdhw",
    depth: N,
    height: N,
    width: N,
    channels: "gray",
    normalisation: { kind: "zscore" },
    placement: { kind: "centre", fill: 0 },
    spacing: [1, 1, 1],
  },
  output: { name: "mask", layout: "ncdhw", kind: "logits", activation: "sigmoid", channel: 0, threshold: 0.5 },
};

export function causalBoxModel(): Uint8Array {
  const g = new GraphBuilder("causal-box-3d");
  const x = g.input("image", ["N", 1, N, N, N]);
  const w = new Float32Array(N * N * N);
  for (let k = 0; k < N; k++) for (let j = 0; j < N; j++) for (let i = 0; i < N; i++) if (inCausal(i, j, k)) w[(k * N + j) * N + i] = 10 / 512;
  const conv = g.node("Conv", [x, g.constant([1, 1, N, N, N], w), g.constant([1], [-10])], { kernel_shape: [N, N, N] });
  const out = g.node("Add", [conv, g.constant([1, 1, N, N, N], new Float32Array(N * N * N))], {}, ["mask"]);
  g.output(out, ["N", 1, N, N, N]);
  return g.toBytes();
}

/** The case volume: raw 3 in the causal box, 1 elsewhere (i fastest). */
export function causalBoxVolume(): Float32Array {
  const data = new Float32Array(N ** 3);
  for (let k = 0; k < N; k++) for (let j = 0; j < N; j++) for (let i = 0; i < N; i++) data[(k * N + j) * N + i] = inCausal(i, j, k) ? 3 : 1;
  return data;
}
