/**
 * Tiny 3D models for the component tests: an 8³ box, a card that reads raw v as v/255 (a fixed
 * window, so a flat volume keeps its value, as a 2D gray image's pixels), the shared head and the
 * copied-channel model whose answer is known at the channel and spatial levels.
 */
import { join } from "node:path";
import { writeNifti } from "../../src/data/volume/nifti-write.js";
import { GraphBuilder } from "../../src/onnx/builder.js";

export const N = 8;
export const AFFINE = [1, 0, 0, -3, 0, 1, 0, 2, 0, 0, 1, 5, 0, 0, 0, 1];

export const CARD3D = {
  schema: "segcause.modelcard/1",
  name: "tiny-3d",
  input: {
    name: "image",
    layout: "ncdhw",
    depth: N,
    height: N,
    width: N,
    channels: "gray",
    normalisation: { kind: "ct-window", centre: 127.5, width: 255 },
    placement: { kind: "centre", fill: 0 },
    spacing: [1, 1, 1],
  },
  output: { name: "mask", layout: "ncdhw", kind: "logits", activation: "sigmoid", channel: 0, threshold: 0.5 },
};

/** Flat index of voxel (z, y, x) of the box (x fastest). */
export const at = (z: number, y: number, x: number) => (z * N + y) * N + x;

/** The head every fixture shares: the logit mask = 20·(s − 0.5) (the card's sigmoid reads it), named /head/... */
export function head(g: GraphBuilder, s: string): void {
  const l = g.node("Mul", [g.node("Sub", [s, g.constant([1], [0.5])], {}, ["c"], "/head/Sub"), g.constant([1], [20])], {}, ["mask"], "/head/Mul");
  g.output(l, ["N", 1, N, N, N]);
}

/**
 * feat = 4 channels of the input, channel 2 an exact copy; the head reads channel 2 with weight 1
 * and the others with 0.01, per voxel. Only channel 2, and only at the RoI's voxels, decides.
 */
export function copyChannelModel(): Uint8Array {
  const g = new GraphBuilder("copy-channel-3d");
  const x = g.input("image", ["N", 1, N, N, N]);
  g.node("Conv", [x, g.constant([4, 1, 1, 1, 1], [0.3, 0.2, 1, 0.1])], { kernel_shape: [1, 1, 1] }, ["feat"], "/enc/conv/Conv");
  head(g, g.node("Conv", ["feat", g.constant([1, 4, 1, 1, 1], [0.01, 0.01, 1, 0.01])], { kernel_shape: [1, 1, 1] }, ["s"], "/head/conv/Conv"));
  return g.toBytes();
}

/** Writes a volume of n³ voxels of raw value v (or v(z, y, x)) as `name`.nii.gz; its path. */
export async function writeFlatVolume(dir: string, name: string, v: number | ((z: number, y: number, x: number) => number), n = N): Promise<string> {
  const data = new Float32Array(n ** 3);
  for (let z = 0; z < n; z++)
    for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) data[(z * n + y) * n + x] = typeof v === "number" ? v : v(z, y, x);
  const path = join(dir, `${name}.nii.gz`);
  await writeNifti(path, { dims: [n, n, n], affine: AFFINE, data });
  return path;
}
