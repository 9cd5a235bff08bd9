/**
 * Input files read with bounds: only regular files, at most a stated size, headers validated with a
 * schema, decompression bombs refused before allocating, and no error that quotes a file's contents.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { decodeBmp } from "../src/data/bmp.js";
import { loadImage, loadMask } from "../src/data/image.js";
import { readManifest } from "../src/data/manifest.js";
import { PatchBank } from "../src/data/patchbank.js";
import { SegcauseError } from "../src/errors.js";
import { Model } from "../src/model/model.js";
import { tuneCachePath, tuneExecution } from "../src/model/tune.js";
import { READ_LIMITS, readFileBounded } from "../src/util/read.js";
import { regionMeanModel, tmp, writeImage, writeModel } from "./helpers/tiny.js";

const SECRET = "root:*:20245:0:99999:7:::\nsecret-line\n";

let dir: string, fifo: string, model: string;
beforeAll(() => {
  dir = tmp("segcause-inputs-");
  fifo = join(dir, "pipe");
  execFileSync("mkfifo", [fifo]);
  model = writeModel(dir, "m.onnx", regionMeanModel([], 0));
});

/** Runs `f` and returns the SegcauseError it throws (failing when it throws anything else, or nothing). */
async function userError(f: () => unknown): Promise<SegcauseError> {
  try {
    await f();
  } catch (e) {
    if (e instanceof SegcauseError) return e;
    throw new Error(`expected a SegcauseError, got ${(e as Error).stack}`);
  }
  throw new Error("expected a SegcauseError, nothing was thrown");
}

describe("only regular files are read, up to a size limit", () => {
  it("refuses a device, a FIFO (without waiting for a writer) and a folder, for every reader", async () => {
    const readers: [string, (p: string) => unknown][] = [
      ["model", (p) => Model.readCard(p)],
      ["model card", (p) => Model.readCard(model, { card: p })],
      ["patch bank", (p) => PatchBank.load(p)],
      ["image", (p) => loadImage(p, { channels: "rgb" })],
      ["mask", (p) => loadMask(p, 8, 8)],
      ["dataset manifest", (p) => readManifest(p)],
    ];
    for (const [what, read] of readers) {
      expect((await userError(() => read("/dev/zero"))).message, what).toMatch(new RegExp(`${what} /dev/zero is a device, not a regular file`));
      expect((await userError(() => read(fifo))).message, what).toMatch(new RegExp(`${what} .*pipe is a named pipe \\(FIFO\\), not a regular file`));
    }
    expect((await userError(() => PatchBank.load(dir))).message).toMatch(/patch bank .* is a folder, not a regular file/);
  });

  it("refuses a file over its kind's limit before reading it", async () => {
    const big = join(dir, "big.onnx.json");
    writeFileSync(big, "");
    truncateSync(big, READ_LIMITS.card + 1); // sparse: nothing is written
    const e = await userError(() => Model.readCard(model, { card: big }));
    expect(e.message).toMatch(/model card .*big\.onnx\.json is 16777217 bytes, more than segcause reads for a model card \(16 MiB\)/);
  });

  it("reads a regular file whole", () => {
    const p = join(dir, "small.bin");
    writeFileSync(p, Buffer.from([1, 2, 3]));
    expect([...readFileBounded(p, { what: "file", kind: "card", hint: "" })]).toEqual([1, 2, 3]);
  });
});

describe("errors never quote a file's contents", () => {
  it("a secret passed as a card, a manifest, a bank, a model or an image", async () => {
    const secret = join(dir, "shadow");
    writeFileSync(secret, SECRET);
    const errors = [
      await userError(() => Model.readCard(model, { card: secret })),
      await userError(() => readManifest(secret)),
      await userError(() => PatchBank.load(secret)),
      await userError(() => Model.readCard(secret)),
      await userError(() => loadImage(secret, { channels: "rgb" })),
    ];
    for (const e of errors) {
      expect(e.oneLine()).not.toMatch(/root|20245|secret-line/);
      expect(e.oneLine()).not.toContain("\n");
    }
    expect(errors[0].message).toMatch(/model card .*shadow is not valid JSON \(a syntax error; its contents are not shown\)/);
  });

  it("says where a JSON file stops being JSON, by line and column", async () => {
    const card = join(dir, "broken.json");
    writeFileSync(card, '{"input": {"height": 8,\n  width: 8}}');
    expect((await userError(() => Model.readCard(model, { card }))).message).toMatch(/is not valid JSON \(a syntax error at line 2, column 3\)/);
    writeFileSync(card, '{"input": {');
    expect((await userError(() => Model.readCard(model, { card }))).message).toMatch(/is not valid JSON \(it ends early\)/);
  });
});

describe("patch bank files", () => {
  const MAGIC = "SEGCAUSE-PATCHBANK-1\n";
  const good = {
    format: "segcause.patchbank/1",
    patchSize: 2,
    count: 1,
    perImage: 1,
    seed: 0,
    resizedTo: { height: 8, width: 8, filter: "bilinear" },
    sources: [{ name: "a.png", sha256: "0".repeat(64), patches: 1 }],
    createdWith: "test",
  };
  function bank(name: string, header: string | unknown, pixels = 12, length?: number): string {
    const head = Buffer.from(typeof header === "string" ? header : JSON.stringify(header));
    const len = Buffer.alloc(4);
    len.writeUInt32LE(length ?? head.length);
    const p = join(dir, name);
    writeFileSync(p, Buffer.concat([Buffer.from(MAGIC, "latin1"), len, head, Buffer.alloc(pixels, 7)]));
    return p;
  }

  it("a valid bank loads", async () => {
    const b = await PatchBank.load(bank("good.scbank", good));
    expect(b.count).toBe(1);
    expect(b.patchSize).toBe(2);
  });

  const cases: [string, string | unknown, number, number | undefined, RegExp][] = [
    ["truncated JSON", JSON.stringify(good).slice(0, 40), 12, undefined, /header is not valid JSON \(it ends early\)/],
    ["null", "null", 12, undefined, /header: \(root\): Invalid input: expected object, received null/],
    ["length 0xffffffff", JSON.stringify(good), 12, 0xffffffff, /header length 4294967295 runs past the end of the file/],
    ["no resizedTo", { ...good, resizedTo: undefined }, 12, undefined, /header: resizedTo: Invalid input: expected object, received undefined/],
    ['patchSize "8"', { ...good, patchSize: "8" }, 12, undefined, /header: patchSize: Invalid input: expected number, received string/],
    ["patchSize 0", { ...good, patchSize: 0 }, 12, undefined, /header: patchSize: Too small: expected number to be >=1/],
    ["trailing bytes", good, 20, undefined, /holds 20 bytes of pixels, 8 more than its header's 1 patch of 2x2 \(12 bytes\)/],
    ["missing bytes", good, 5, undefined, /is truncated: 5 bytes of pixels for 1 patch of 2x2 \(12 bytes\)/],
  ];
  for (const [name, header, pixels, length, message] of cases) {
    it(`refuses a bank with ${name} in one line`, async () => {
      const e = await userError(() => PatchBank.load(bank(`${name.replace(/\W/g, "_")}.scbank`, header, pixels, length)));
      expect(e.message).toMatch(message);
      expect(e.oneLine()).not.toContain("\n");
    });
  }
});

describe("BMP decompression bombs", () => {
  /** A 1 KB RLE8 BMP declaring width x height whose pixel data is a single end-of-bitmap mark. */
  function rleBomb(width: number, height: number): Buffer {
    const palette = Buffer.alloc(256 * 4);
    const head = Buffer.alloc(54);
    head.write("BM", 0, "latin1");
    head.writeUInt32LE(54 + palette.length + 2, 2);
    head.writeUInt32LE(54 + palette.length, 10);
    head.writeUInt32LE(40, 14);
    head.writeInt32LE(width, 18);
    head.writeInt32LE(height, 22);
    head.writeUInt16LE(1, 26);
    head.writeUInt16LE(8, 28);
    head.writeUInt32LE(1, 30); // BI_RLE8
    head.writeUInt32LE(256, 46);
    return Buffer.concat([head, palette, Buffer.from([0, 1])]);
  }

  it("a 1 KB RLE BMP declaring 16383x16383 is refused before its pixels are allocated", async () => {
    const bytes = rleBomb(16383, 16383);
    expect(bytes.length).toBeLessThan(1100);
    expect(() => decodeBmp(bytes)).toThrow(/BMP declares 16383x16383 pixels in 2 bytes of RLE data/);
    const p = join(dir, "bomb.bmp");
    writeFileSync(p, bytes);
    expect((await userError(() => loadImage(p, { channels: "rgb", height: 8, width: 8 }))).message).toMatch(/cannot decode image .*bomb\.bmp/);
  });

  it("a small RLE BMP that ends early still decodes (skipped pixels are palette index 0, as in PIL)", () => {
    const img = decodeBmp(rleBomb(40, 30));
    expect([img.width, img.height]).toEqual([40, 30]);
  });

  it("over sharp's pixel limit (16383 x 16383) is refused whatever the encoding", () => {
    expect(() => decodeBmp(rleBomb(16384, 16384))).toThrow(/larger than segcause reads/);
  });
});

describe("the tuning cache", () => {
  it("lives in the user's cache folder (0700), not the shared temp folder, and a planted plan is ignored", async () => {
    const home = tmp("segcause-cache-");
    const old = process.env.XDG_CACHE_HOME;
    process.env.XDG_CACHE_HOME = home;
    try {
      const m = await Model.load(writeModel(tmp(), "tune.onnx", regionMeanModel([], 0)), { threads: 1 });
      const path = tuneCachePath(m.sha256);
      expect(path.startsWith(join(home, "segcause"))).toBe(true);
      const input = new Float32Array(3 * 32 * 32);
      const first = await tuneExecution(m, input, { threads: 1, seconds: 0.01 });
      expect(first.cached).toBe(false);
      expect(statSync(join(home, "segcause")).mode & 0o777).toBe(0o700);
      expect(statSync(path).mode & 0o777).toBe(0o600);
      expect((await tuneExecution(m, input, { threads: 1, seconds: 0.01 })).cached).toBe(true);
      // a batch size no candidate has: planted, not measured
      const saved = JSON.parse(readFileSync(path, "utf8"));
      saved.plan.batchSize = 5e7;
      writeFileSync(path, JSON.stringify(saved));
      const again = await tuneExecution(m, input, { threads: 1, seconds: 0.01 });
      expect(again.cached).toBe(false);
      expect([1, 4, 8]).toContain(again.batchSize);
      // a cache file others can write is not trusted either
      chmodSync(path, 0o666);
      expect((await tuneExecution(m, input, { threads: 1, seconds: 0.01 })).cached).toBe(false);
      await m.release();
    } finally {
      if (old === undefined) delete process.env.XDG_CACHE_HOME;
      else process.env.XDG_CACHE_HOME = old;
    }
  });
});

describe("tuning", () => {
  it("reconfigures the loaded model (the file is not read again) and leaves it at the winner's layout", async () => {
    const home = tmp("segcause-cache-");
    const file = writeModel(tmp(), "tune-live.onnx", regionMeanModel([], 0));
    const m = await Model.load(file, { threads: 1 });
    try {
      rmSync(file); // every candidate must come from the bytes in memory
      const plan = await tuneExecution(m, new Float32Array(3 * 32 * 32), {
        workers: 2,
        threads: 1,
        seconds: 0.01,
        cachePath: join(home, "plan.json"),
      });
      expect([plan.workers, plan.threads, plan.cached]).toEqual([2, 1, false]);
      expect([m.workers, m.threads]).toEqual([2, 1]);
      const x = m.batchBuffer(m.inputSize).fill(0.25);
      expect((await m.infer(x, 1, 1)).length).toBe(32 * 32);
    } finally {
      await m.release();
    }
  });
});

describe("images", () => {
  it("an image that is fine still loads through the bounded reader", async () => {
    const p = await writeImage(dir, "ok.png", () => 100, 8);
    const img = await loadImage(p, { channels: "gray" });
    expect([img.width, img.height, img.data[0]]).toEqual([8, 8, 100]);
  });
});
