/**
 * Tiny ONNX models whose causal structure is known, so the correct causal map is known, plus
 * helpers to write images, masks and banks for them.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { PatchBank, type PatchBankHeader } from "../../src/data/patchbank.js";
import { GraphBuilder } from "../../src/onnx/builder.js";
import { sha256 } from "../../src/util/hash.js";

export const SIZE = 32;

export function tmp(prefix = "segcause-test-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export interface RegionWeight {
  row: number;
  col: number;
  height: number;
  width: number;
  /** weight of the region's mean (channel 0) in the logit */
  weight: number;
}

/**
 * output[n, 0, y, x] = sigmoid(Σ_r weight_r · mean_r(input[n, 0]) + bias) for every pixel: the
 * prediction everywhere (RoI included) depends only on the means of the given regions.
 */
export function regionMeanModel(
  regions: RegionWeight[],
  bias: number,
  opts: { channels?: number; size?: number; batch?: number | string } = {},
): Uint8Array {
  const C = opts.channels ?? 3;
  const S = opts.size ?? SIZE;
  const g = new GraphBuilder("region-mean");
  const x = g.input("image", [opts.batch ?? "N", C, S, S]);
  const w = new Float32Array(C * S * S);
  for (const r of regions) {
    const n = r.height * r.width;
    for (let y = r.row; y < r.row + r.height; y++) for (let c = r.col; c < r.col + r.width; c++) w[y * S + c] += r.weight / n;
  }
  const conv = g.node("Conv", [x, g.constant([1, C, S, S], w), g.constant([1], [bias])], { kernel_shape: [S, S] });
  const logit = g.node("Add", [conv, g.constant([1, 1, S, S], new Float32Array(S * S))]);
  const out = g.node("Sigmoid", [logit], {}, ["mask"]);
  g.output(out, [opts.batch ?? "N", 1, S, S]);
  return g.toBytes();
}

/** A model that ignores its input: a constant probability of 0.9 everywhere. */
export function constantModel(): Uint8Array {
  return regionMeanModel([], Math.log(9));
}

/** A model whose output is NaN (log of a negative number). */
export function nanModel(): Uint8Array {
  const g = new GraphBuilder("nan");
  const x = g.input("image", ["N", 3, SIZE, SIZE]);
  const conv = g.node("Conv", [x, g.constant([1, 3, 1, 1], [1, 1, 1])], { kernel_shape: [1, 1] });
  const neg = g.node("Sub", [conv, g.constant([1], [10])]);
  const out = g.node("Log", [neg], {}, ["mask"]);
  g.output(out, ["N", 1, SIZE, SIZE]);
  return g.toBytes();
}

export function writeModel(dir: string, name: string, bytes: Uint8Array, card?: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  if (card) writeFileSync(`${path}.json`, JSON.stringify(card));
  return path;
}

/** A gray-level image (replicated into RGB) with given values per 8x8 block, as PNG. */
export async function writeImage(dir: string, name: string, value: (row: number, col: number) => number, size = SIZE): Promise<string> {
  const data = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) data.fill(value(y, x), (y * size + x) * 3, (y * size + x) * 3 + 3);
  const path = join(dir, name);
  await sharp(data, { raw: { width: size, height: size, channels: 3 } })
    .png()
    .toFile(path);
  return path;
}

export async function writeMask(dir: string, name: string, inside: (row: number, col: number) => boolean, size = SIZE): Promise<string> {
  const data = new Uint8Array(size * size);
  for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) data[y * size + x] = inside(y, x) ? 255 : 0;
  const path = join(dir, name);
  await sharp(data, { raw: { width: size, height: size, channels: 1 } })
    .png()
    .toFile(path);
  return path;
}

/** A bank of flat patches with the given gray values (one patch per value). */
export function flatBank(values: number[], patchSize = 8): PatchBank {
  const px = new Uint8Array(values.length * patchSize * patchSize * 3);
  values.forEach((v, k) => px.fill(v, k * patchSize * patchSize * 3, (k + 1) * patchSize * patchSize * 3));
  const header: PatchBankHeader = {
    format: "segcause.patchbank/1",
    patchSize,
    count: values.length,
    perImage: values.length,
    seed: 0,
    resizedTo: { height: SIZE, width: SIZE, filter: "bilinear" },
    sources: [{ name: "synthetic-flat", sha256: sha256(px), patches: values.length }],
    createdWith: "test",
  };
  return new PatchBank(header, px, sha256(px));
}

/**
 * A 16×16 model whose tensor `feat` is 4 channels of the input, channel 2 an exact copy, and whose head reads
 * channel 2 with weight 1 (the others 0.01) per pixel: at `--level spatial` only the feature cell under the RoI decides.
 */
export function copyChannelModel(): Uint8Array {
  const g = new GraphBuilder("copy-channel");
  const x = g.input("image", ["N", 1, 16, 16]);
  g.node("Conv", [x, g.constant([4, 1, 1, 1], [0.3, 0.2, 1, 0.1])], { kernel_shape: [1, 1] }, ["feat"], "/enc/conv/Conv");
  const s = g.node("Conv", ["feat", g.constant([1, 4, 1, 1], [0.01, 0.01, 1, 0.01])], { kernel_shape: [1, 1] }, ["s"], "/head/conv/Conv");
  const l = g.node("Mul", [g.node("Sub", [s, g.constant([1], [0.5])], {}, ["c"], "/head/Sub"), g.constant([1], [20])], {}, ["l"], "/head/Mul");
  g.output(g.node("Sigmoid", [l], {}, ["mask"], "/head/Sigmoid"), ["N", 1, 16, 16]);
  return g.toBytes();
}

/** A local model: two 3×3 convs, so RoI rows/cols 8..15 read input rows/cols 6..17 (9 of the 16 8×8 blocks). */
export function localConvModel(): Uint8Array {
  const g = new GraphBuilder("local");
  const x = g.input("image", ["N", 3, 32, 32]);
  const w1 = new Float32Array(2 * 3 * 9).map((_, i) => ((i * 7) % 11) / 40 - 0.1);
  const c1 = g.node("Relu", [
    g.node("Conv", [x, g.constant([2, 3, 3, 3], w1), g.constant([2], [0.1, -0.2])], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }),
  ]);
  const w2 = new Float32Array(2 * 9).map((_, i) => ((i * 5) % 7) / 10 - 0.2);
  const c2 = g.node("Conv", [c1, g.constant([1, 2, 3, 3], w2), g.constant([1], [-0.3])], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
  g.output(g.node("Sigmoid", [c2], {}, ["mask"]), ["N", 1, 32, 32]);
  return g.toBytes();
}

// The local model with an ASPP-like global branch after its first conv: c1 + sigmoid(1×1 conv of GAP(c1)), broadcast over
// the positions. Every block then reaches the RoI (through the pooling); the changed-region graph computes GAP whole.
export function globalBranchModel(): Uint8Array {
  const g = new GraphBuilder("global-branch");
  const x = g.input("image", ["N", 3, 32, 32]);
  const w1 = new Float32Array(2 * 3 * 9).map((_, i) => ((i * 7) % 11) / 40 - 0.1);
  const c1 = g.node("Relu", [
    g.node("Conv", [x, g.constant([2, 3, 3, 3], w1), g.constant([2], [0.1, -0.2])], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }),
  ]);
  const pooled = g.node("Sigmoid", [
    g.node("Conv", [g.node("GlobalAveragePool", [c1]), g.constant([2, 2, 1, 1], [0.8, -0.5, 0.3, 1.1])], { kernel_shape: [1, 1] }),
  ]);
  const mixed = g.node("Add", [c1, pooled]);
  const w2 = new Float32Array(2 * 9).map((_, i) => ((i * 5) % 7) / 10 - 0.2);
  const c2 = g.node("Conv", [mixed, g.constant([1, 2, 3, 3], w2), g.constant([1], [-0.3])], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
  g.output(g.node("Sigmoid", [c2], {}, ["mask"]), ["N", 1, 32, 32]);
  return g.toBytes();
}
