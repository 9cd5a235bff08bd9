/**
 * Fuzz: random bytes and mutated files fed to every reader of user input (ONNX model, image in each
 * format, mask, patch bank, dataset manifest, model card). Each must either read the file or refuse it
 * with a SegcauseError of one line (what the CLI prints with exit 1), never another error (which the
 * CLI reports as an internal error with exit 2). Seeded, so every run tries the same inputs.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import sharp from "sharp";
import { beforeAll, describe, expect, it } from "vitest";
import { decodeImage, decodeMask, imageInfo } from "../src/data/image.js";
import { readManifest } from "../src/data/manifest.js";
import { PatchBank } from "../src/data/patchbank.js";
import { SegcauseError } from "../src/errors.js";
import { Model } from "../src/model/model.js";
import { Rng } from "../src/util/rng.js";
import { flatBank, regionMeanModel, tmp, writeModel } from "./helpers/tiny.js";

const rng = new Rng(17, 0);
const byte = () => rng.int(256);

/** Random bytes of a random length (up to `max`). */
function randomBytes(max: number): Buffer {
  return Buffer.from(Array.from({ length: rng.int(max + 1) }, byte));
}

/** One to four random byte-level mutations: flip, overwrite, 32-bit extremes, truncate, insert. */
function mutate(src: Buffer, headerBytes = src.length): Buffer {
  let b = Buffer.from(src);
  const n = 1 + rng.int(4);
  for (let k = 0; k < n && b.length > 0; k++) {
    // most mutations hit the header, where the reader decides what to allocate and parse
    const at = rng.int(rng.next() < 0.8 ? Math.min(headerBytes, b.length) : b.length);
    switch (rng.int(6)) {
      case 0:
        b[at] ^= 1 << rng.int(8);
        break;
      case 1:
        b[at] = byte();
        break;
      case 2:
        if (at + 4 <= b.length) b.writeUInt32LE([0xffffffff, 0, 0x7fffffff, 0x3fff, 1 + rng.int(1 << 16)][rng.int(5)], at);
        break;
      case 3:
        b = b.subarray(0, at);
        break;
      case 4:
        b = Buffer.concat([b.subarray(0, at), randomBytes(16), b.subarray(at)]);
        break;
      default:
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + rng.int(8))]);
    }
  }
  return b;
}

const ODD: unknown[] = [null, "8", -1, 0, 1e300, 2 ** 53, [], {}, "", true, [[[[]]]], "../../etc", { a: null }];

/** A JSON value with one to three fields replaced by odd values or removed, at any depth. */
function mutateJson(value: unknown): unknown {
  const copy = JSON.parse(JSON.stringify(value));
  const n = 1 + rng.int(3);
  for (let k = 0; k < n; k++) {
    let node = copy;
    for (let depth = 0; depth < 4; depth++) {
      const keys = node && typeof node === "object" ? Object.keys(node) : [];
      if (keys.length === 0) break;
      const key = keys[rng.int(keys.length)];
      const child = node[key];
      if (child && typeof child === "object" && rng.next() < 0.5) {
        node = child;
        continue;
      }
      if (rng.next() < 0.25) delete node[key];
      else node[key] = structuredClone(ODD[rng.int(ODD.length)]);
      break;
    }
  }
  return rng.next() < 0.1 ? structuredClone(ODD[rng.int(ODD.length)]) : copy;
}

/** The refusal, if any; fails the test on anything but a one-line SegcauseError. */
async function readsOrRefuses(what: string, i: number, f: () => unknown): Promise<"read" | "refused"> {
  try {
    await f();
    return "read";
  } catch (e) {
    if (!(e instanceof SegcauseError)) throw new Error(`${what} #${i}: not a user error: ${(e as Error).stack}`);
    expect(e.oneLine(), `${what} #${i}`).not.toMatch(/\n/);
    return "refused";
  }
}

async function fuzz(what: string, inputs: Buffer[], read: (bytes: Buffer, i: number) => unknown): Promise<void> {
  const outcomes = { read: 0, refused: 0 };
  for (let i = 0; i < inputs.length; i++) outcomes[await readsOrRefuses(what, i, () => read(inputs[i], i))]++;
  // the mutations must reach the reader's checks, not only its first one
  expect(outcomes.refused, what).toBeGreaterThan(inputs.length / 4);
}

/** Random inputs, mutations of the valid file, and mutations of its start. */
function corpus(valid: Buffer, n: number, headerBytes = 64): Buffer[] {
  return [...Array.from({ length: n / 4 }, () => randomBytes(256)), ...Array.from({ length: (3 * n) / 4 }, () => mutate(valid, headerBytes))];
}

/** An 8x8 BMP: 24-bit, or 8-bit RLE with a grey palette. */
function bmp(rle: boolean): Buffer {
  const W = 8,
    H = 8;
  const palette = rle ? Buffer.from(Array.from({ length: 256 }, (_, i) => [i, i, i, 0]).flat()) : Buffer.alloc(0);
  const pixels = rle
    ? Buffer.from(
        Array.from({ length: H }, (_, r) => [W, r * 20, 0, 0])
          .flat()
          .concat([0, 1]),
      )
    : Buffer.from(Array.from({ length: W * H * 3 }, (_, i) => i % 256));
  const head = Buffer.alloc(54);
  head.write("BM", 0, "latin1");
  head.writeUInt32LE(54 + palette.length + pixels.length, 2);
  head.writeUInt32LE(54 + palette.length, 10);
  head.writeUInt32LE(40, 14);
  head.writeInt32LE(W, 18);
  head.writeInt32LE(H, 22);
  head.writeUInt16LE(1, 26);
  head.writeUInt16LE(rle ? 8 : 24, 28);
  head.writeUInt32LE(rle ? 1 : 0, 30);
  head.writeUInt32LE(rle ? 256 : 0, 46);
  return Buffer.concat([head, palette, pixels]);
}

let dir: string, model: string, modelBytes: Buffer;
const images: Record<string, Buffer> = {};
beforeAll(async () => {
  dir = tmp("segcause-fuzz-");
  modelBytes = Buffer.from(regionMeanModel([{ row: 0, col: 0, height: 8, width: 8, weight: 1 }], 0, { size: 8 }));
  model = writeModel(dir, "m.onnx", modelBytes);
  const raw = sharp(Buffer.from(Array.from({ length: 8 * 8 * 3 }, (_, i) => (i * 37) % 256)), { raw: { width: 8, height: 8, channels: 3 } });
  images.png = await raw.clone().png().toBuffer();
  images.jpeg = await raw.clone().jpeg().toBuffer();
  images.tiff = await raw.clone().tiff().toBuffer();
  images.bmp = bmp(false);
  images.rle = bmp(true);
});

describe("fuzz: every reader reads a file or refuses it in one line", () => {
  it("ONNX model (parse, graph summary, card inference)", async () => {
    await fuzz("model", corpus(modelBytes, 200, 400), (bytes, i) => Model.readCard(writeModel(dir, `m${i}.onnx`, bytes)));
  });

  it("ONNX model loaded into ONNX Runtime", async () => {
    // header mutations that still parse reach ONNX Runtime's own checks
    await fuzz(
      "model load",
      Array.from({ length: 24 }, () => mutate(modelBytes, 400)),
      async (bytes, i) => {
        const m = await Model.load(writeModel(dir, `l${i}.onnx`, bytes), { threads: 1 });
        await m.release();
      },
    );
  });

  for (const format of ["png", "jpeg", "tiff", "bmp", "rle"]) {
    it(`image: ${format}`, async () => {
      await fuzz(format, corpus(images[format], 160), async (bytes) => {
        await imageInfo(bytes, "x");
        await decodeImage(bytes, "x", { channels: "rgb", height: 8, width: 8 });
      });
    });
  }

  it("mask", async () => {
    const masks = [...corpus(images.png, 60), ...corpus(images.rle, 60)];
    await fuzz("mask", masks, (bytes) => decodeMask(bytes, "x", 8, 8));
  });

  it("patch bank", async () => {
    const path = join(dir, "valid.scbank");
    await flatBank([10, 200], 2).save(path);
    const valid = readFileSync(path);
    const headerEnd = 25 + valid.readUInt32LE(21);
    const header = JSON.parse(valid.toString("utf8", 25, headerEnd));
    // header fields replaced, with the length field kept right, then byte-level mutations
    const fields = Array.from({ length: 80 }, () => {
      const head = Buffer.from(JSON.stringify(mutateJson(header)));
      const len = Buffer.alloc(4);
      len.writeUInt32LE(head.length);
      return Buffer.concat([valid.subarray(0, 21), len, head, valid.subarray(headerEnd)]);
    });
    await fuzz("bank", [...fields, ...corpus(valid, 120, headerEnd)], (bytes, i) => {
      const p = join(dir, `b${i}.scbank`);
      writeFileSync(p, bytes);
      return PatchBank.load(p);
    });
  });

  it("dataset manifest", async () => {
    const valid = {
      name: "d",
      cases: [
        { id: "a", image: "a.png", mask: "a_mask.png", split: "train" },
        { id: "b", image: "b.png", split: "test" },
      ],
    };
    const inputs = [
      ...Array.from({ length: 100 }, () => Buffer.from(JSON.stringify(mutateJson(valid)))),
      ...corpus(Buffer.from(JSON.stringify(valid)), 60),
    ];
    await fuzz("manifest", inputs, (bytes, i) => {
      const p = join(dir, `manifest${i}.json`);
      writeFileSync(p, bytes);
      return readManifest(p);
    });
  });

  it("model card", async () => {
    const valid = {
      schema: "segcause.modelcard/1",
      input: { height: 8, width: 8, channels: "rgb", mean: [0.5, 0.5, 0.5], std: [0.2, 0.2, 0.2] },
      output: { kind: "probabilities", channel: 0, threshold: 0.5 },
    };
    const inputs = [
      ...Array.from({ length: 100 }, () => Buffer.from(JSON.stringify(mutateJson(valid)))),
      ...corpus(Buffer.from(JSON.stringify(valid)), 60),
    ];
    await fuzz("card", inputs, (bytes, i) => {
      const p = join(dir, `card${i}.json`);
      writeFileSync(p, bytes);
      return Model.readCard(model, { card: p });
    });
  });

  it("the CLI: a mutated image and a mutated card give one line and exit 1", () => {
    const bin = join(import.meta.dirname, "..", "bin", "segcause.js");
    const image = join(dir, "bad.png");
    writeFileSync(image, mutate(images.png, 16));
    const card = join(dir, "bad-card.json");
    writeFileSync(card, JSON.stringify({ input: { height: "8", width: 8, channels: "rgb" }, output: null }));
    for (const args of [
      ["--image", image],
      ["--image", join(dir, "ok.png"), "--card", card],
    ]) {
      writeFileSync(join(dir, "ok.png"), images.png);
      const r = spawnSync(
        process.execPath,
        [bin, "explain", "--model", model, "--roi", "0,0,4,4", "--method", "zero", "--no-progress", "--out", join(dir, "out"), ...args],
        { encoding: "utf8", timeout: 30_000 },
      );
      expect(r.status, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/^segcause: error: /);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(existsSync(join(dir, "out", "manifest.json"))).toBe(false);
    }
  });
});
