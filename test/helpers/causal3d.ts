/**
 * A known-answer 3D fixture: a tiny model whose RoI outcome depends on exactly one box, a volume
 * and a small "data set" of noise volumes for banks (see the comment below).
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { writeNifti } from "../../src/data/volume/nifti-write.js";
import { GraphBuilder } from "../../src/onnx/builder.js";
import { writeModel } from "./tiny.js";

// Known structure in 3D: a 16³ box; the logit everywhere is 10·(mean of the input over the causal
// box z 0..7, y 0..7, x 8..15) − 10. The volume is raw 1 with raw 3 in the causal box, z-scored per
// volume: the causal box is at +2.65, so every voxel is foreground. Replacing the causal box by raw 0
// (or by noise boxes of other volumes, whose z-scores average about 0) makes every voxel background:
// removal effect −100 Dice points there, exactly 0 for every other box.
export const N = 16;
export const CAUSAL = { z: 0, y: 0, x: 8 };
export const ROI = { z: 8, y: 8, x: 0, depth: 8, height: 8, width: 8 };
export const inCausal = (i: number, j: number, k: number) => k < 8 && j < 8 && i >= 8;

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

export const AFFINE = [1, 0, 0, -20, 0, 1, 0, 5, 0, 0, 1, 7.5, 0, 0, 0, 1];

/** The case volume: raw 3 in the causal box, 1 elsewhere (i fastest). */
export function causalBoxVolume(): Float32Array {
  const data = new Float32Array(N ** 3);
  for (let k = 0; k < N; k++) for (let j = 0; j < N; j++) for (let i = 0; i < N; i++) data[(k * N + j) * N + i] = inCausal(i, j, k) ? 3 : 1;
  return data;
}

/** Writes the model (with its card), the volume and a manifest of two noise volumes into `dir`. */
export async function writeCausalFixture(dir: string): Promise<{ model: string; image: string; manifest: string }> {
  const model = writeModel(dir, "causal3d.onnx", causalBoxModel(), CARD);
  const data = causalBoxVolume();
  const image = join(dir, "case.nii.gz");
  await writeNifti(image, { dims: [N, N, N], affine: AFFINE, data });
  // other volumes of the "data set": noise, whose z-scored boxes have a mean near 0
  const cases = [];
  for (let v = 0; v < 2; v++) {
    const noise = Float32Array.from(
      { length: N ** 3 },
      (_, i) => Math.sin(i * 12.9898 + v) * 43758.5453 - Math.floor(Math.sin(i * 12.9898 + v) * 43758.5453),
    );
    await writeNifti(join(dir, `other${v}.nii.gz`), { dims: [N, N, N], affine: AFFINE, data: noise });
    cases.push({ id: `other${v}`, image: `other${v}.nii.gz`, split: "train" });
  }
  const manifest = join(dir, "manifest.json");
  writeFileSync(manifest, JSON.stringify({ name: "tiny3d", cases }));
  return { model, image, manifest };
}
