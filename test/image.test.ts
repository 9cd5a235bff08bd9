import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { crc32, deflateSync } from "node:zlib";
import sharp from "sharp";
import { beforeAll, describe, expect, it } from "vitest";
import { decodeImage, imageInfo, listImages, loadImage, loadMask } from "../src/data/image.js";
import { tmp } from "./helpers/tiny.js";

let dir: string;
beforeAll(() => {
  dir = tmp();
});

async function write(
  name: string,
  channels: 1 | 2 | 3 | 4,
  value: (c: number) => number,
  opts: { bits16?: boolean; jpeg?: boolean } = {},
): Promise<string> {
  const n = 8 * 8;
  const path = join(dir, name);
  const data = new Uint8Array(n * channels);
  for (let i = 0; i < n; i++) for (let c = 0; c < channels; c++) data[i * channels + c] = value(c);
  const img = sharp(data, { raw: { width: 8, height: 8, channels } });
  if (opts.bits16)
    await img
      .toColourspace(channels >= 3 ? "rgb16" : "grey16")
      .png()
      .toFile(path);
  else await (opts.jpeg ? img.jpeg({ quality: 100 }) : img.png()).toFile(path);
  return path;
}

describe("image folders", () => {
  it("lists image files by name, skipping hidden files, dangling links, folders and other files", async () => {
    const d = join(dir, "listing");
    mkdirSync(join(d, "sub.png"), { recursive: true });
    for (const n of ["b.PNG", "a.jpg", "._a.jpg", "notes.txt"]) writeFileSync(join(d, n), "x");
    symlinkSync(join(d, "nowhere.png"), join(d, "dangling.png"));
    expect(listImages(d)).toEqual([join(d, "a.jpg"), join(d, "b.PNG")]);
  });
});

describe("image decoding", () => {
  it("reads 8-bit RGB, RGBA (alpha dropped), gray and gray+alpha into RGB", async () => {
    for (const [name, ch] of [
      ["rgb.png", 3],
      ["rgba.png", 4],
      ["gray.png", 1],
      ["ga.png", 2],
    ] as const) {
      const p = await write(name, ch, (c) => (ch <= 2 ? [200, 255][c] : [200, 100, 50, 255][c]));
      const img = await loadImage(p, { channels: "rgb" });
      expect(img.channels).toBe(3);
      const want = ch <= 2 ? [200, 200, 200] : [200, 100, 50];
      expect(Array.from(img.data.subarray(0, 3)), name).toEqual(want);
    }
  });

  it("reads 16-bit PNGs as 8-bit", async () => {
    const p = await write("rgb16.png", 3, (c) => [10, 128, 250][c], { bits16: true });
    expect((await sharp(p).metadata()).depth).toBe("ushort");
    const img = await loadImage(p, { channels: "rgb" });
    expect(Array.from(img.data.subarray(0, 3))).toEqual([10, 128, 250]);
  });

  it("converts RGB to gray for gray models and resizes to the model size", async () => {
    const p = await write("rgb.jpg", 3, () => 128, { jpeg: true });
    const img = await loadImage(p, { channels: "gray", height: 16, width: 4, resize: "bilinear" });
    expect([img.width, img.height, img.channels]).toEqual([4, 16, 1]);
    expect(Math.abs(img.data[0] - 128)).toBeLessThanOrEqual(2);
  });

  it("reads 0/1 and 0/255 masks alike", async () => {
    const m01 = await write("m01.png", 1, () => 1);
    const m255 = await write("m255.png", 1, () => 255);
    expect((await loadMask(m01, 4, 4)).every((v) => v === 1)).toBe(true);
    expect((await loadMask(m255, 4, 4)).every((v) => v === 1)).toBe(true);
  });

  /** A 16-bit grey PNG written by hand (sharp's raw input is 8-bit only). */
  function png16(width: number, height: number, values: number[]): Buffer {
    const chunk = (type: string, body: Buffer) => {
      const len = Buffer.alloc(4),
        crc = Buffer.alloc(4),
        tb = Buffer.concat([Buffer.from(type, "ascii"), body]);
      len.writeUInt32BE(body.length);
      crc.writeUInt32BE(crc32(tb));
      return Buffer.concat([len, tb, crc]);
    };
    const ihdr = Buffer.alloc(13);
    ihdr.writeUInt32BE(width, 0);
    ihdr.writeUInt32BE(height, 4);
    ihdr.set([16, 0, 0, 0, 0], 8); // 16-bit grey, no interlace
    const rows = Buffer.alloc(height * (1 + 2 * width));
    for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) rows.writeUInt16BE(values[y * width + x], y * (1 + 2 * width) + 1 + 2 * x);
    return Buffer.concat([
      Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]),
      chunk("IHDR", ihdr),
      chunk("IDAT", deflateSync(rows)),
      chunk("IEND", Buffer.alloc(0)),
    ]);
  }

  /** An 8x8 mask whose left half is `fg` and right half `bg` (16-bit when asked; `noise` added to one pixel). */
  async function halfMask(name: string, fg: number, bg: number, bits16 = false, noise = 0): Promise<string> {
    const values = Array.from({ length: 64 }, (_, i) => Math.max(0, Math.min(bits16 ? 65535 : 255, (i % 8 < 4 ? fg : bg) + (i === 5 ? noise : 0))));
    const path = join(dir, name);
    if (bits16) writeFileSync(path, png16(8, 8, values));
    else
      await sharp(Uint8Array.from(values), { raw: { width: 8, height: 8, channels: 1 } })
        .png()
        .toFile(path);
    return path;
  }
  const leftHalf = (m: Uint8Array) => Array.from(m).every((v, i) => v === (i % 8 < 4 ? 1 : 0));

  it("reads any two-valued mask as binary, at the file's own depth (16-bit 0/1, a one-label map 0/2)", async () => {
    const m16 = await halfMask("m16-01.png", 1, 0, true);
    expect((await sharp(m16).metadata()).depth).toBe("ushort");
    expect(leftHalf(await loadMask(m16, 8, 8))).toBe(true);
    expect(leftHalf(await loadMask(await halfMask("m16-max.png", 65535, 0, true), 8, 8))).toBe(true);
    expect(leftHalf(await loadMask(await halfMask("label2.png", 2, 0), 8, 8))).toBe(true);
  });

  it("cuts a nearly binary mask (compression noise) at half its maximum, and refuses label maps and soft masks", async () => {
    expect(leftHalf(await loadMask(await halfMask("noisy.png", 250, 3, false, 4), 8, 8))).toBe(true);
    const labels = join(dir, "labels.png");
    await sharp(
      Uint8Array.from({ length: 64 }, (_, i) => i % 3),
      { raw: { width: 8, height: 8, channels: 1 } },
    )
      .png()
      .toFile(labels);
    await expect(loadMask(labels, 8, 8)).rejects.toThrow(/labels\.png is not binary: it has 3 distinct values \(0, 1, 2\)/);
    // a JPEG of a 0/255 disc (dozens of noise values around its edge) reads as the disc
    const disc = Uint8Array.from({ length: 64 * 64 }, (_, i) => ((Math.floor(i / 64) - 30) ** 2 + ((i % 64) - 34) ** 2 < 400 ? 255 : 0));
    const discPng = join(dir, "disc.png"),
      discJpg = join(dir, "disc.jpg");
    await sharp(disc, { raw: { width: 64, height: 64, channels: 1 } })
      .png()
      .toFile(discPng);
    await sharp(disc, { raw: { width: 64, height: 64, channels: 1 } })
      .jpeg({ quality: 75 })
      .toFile(discJpg);
    expect(new Set((await sharp(discJpg).raw().toBuffer()).values()).size).toBeGreaterThan(10);
    expect(Array.from(await loadMask(discJpg, 64, 64))).toEqual(Array.from(await loadMask(discPng, 64, 64)));
    // VOC style: object 1 with a void border 255; and a 0/1/2 label map whose label 1 is small
    const voc = join(dir, "voc.png");
    await sharp(
      Uint8Array.from({ length: 64 }, (_, i) => (i % 8 === 0 ? 255 : i % 8 < 4 ? 1 : 0)),
      { raw: { width: 8, height: 8, channels: 1 } },
    )
      .png()
      .toFile(voc);
    await expect(loadMask(voc, 8, 8)).rejects.toThrow(/voc\.png is not binary: it has 3 distinct values \(0, 1, 255\)/);
    const small = join(dir, "small-label.png");
    await sharp(
      Uint8Array.from({ length: 64 }, (_, i) => (i === 0 ? 1 : i < 32 ? 2 : 0)),
      { raw: { width: 8, height: 8, channels: 1 } },
    )
      .png()
      .toFile(small);
    await expect(loadMask(small, 8, 8)).rejects.toThrow(/not binary: it has 3 distinct values \(0, 1, 2\)/);
    const soft = join(dir, "soft.png");
    await sharp(
      Uint8Array.from({ length: 64 }, (_, i) => i * 4),
      { raw: { width: 8, height: 8, channels: 1 } },
    )
      .png()
      .toFile(soft);
    await expect(loadMask(soft, 8, 8)).rejects.toThrow(/not binary: it has 64 distinct values \(0, 4, 8, \.\.\., 248, 252\)/);
  });

  it("reads BMP files as Windows writes them (24-bit bottom-up, 8-bit grey palette, 32-bit top-down, a gap before the pixels)", async () => {
    // 5 wide (rows padded to 4 bytes), 3 high; pixel (x, y) = (40x, 60y, 7) so every row and column differs.
    const W = 5,
      H = 3;
    const rgbAt = (x: number, y: number) => [40 * x, 60 * y, 7];
    const want = Array.from({ length: W * H }, (_, i) => rgbAt(i % W, Math.floor(i / W))).flat();
    const bmp24 = writeBmp(W, H, 24, rgbAt, { bottomUp: true });
    expect(Array.from((await decodeImage(bmp24, "a.bmp", { channels: "rgb" })).data)).toEqual(want);
    expect(await imageInfo(bmp24, "a.bmp")).toEqual({ height: H, width: W, channels: 3 });
    const bmp32 = writeBmp(W, H, 32, rgbAt, { bottomUp: false });
    expect(Array.from((await decodeImage(bmp32, "b.bmp", { channels: "rgb" })).data)).toEqual(want);
    const gap = writeBmp(W, H, 24, rgbAt, { bottomUp: true, gap: 10 });
    expect(Array.from((await decodeImage(gap, "c.bmp", { channels: "rgb" })).data)).toEqual(want);
    // a PH2-style mask: 8-bit palette, lesion 255 on the left two columns
    const maskPath = join(dir, "mask.bmp");
    writeFileSync(
      maskPath,
      writeBmp(W, H, 8, (x) => (x < 2 ? [255, 255, 255] : [0, 0, 0]), { bottomUp: true }),
    );
    expect(
      await imageInfo(
        writeBmp(W, H, 8, () => [9, 9, 9], { bottomUp: true }),
        "g.bmp",
      ),
    ).toEqual({ height: H, width: W, channels: 1 });
    expect(Array.from(await loadMask(maskPath, H, W))).toEqual(Array.from({ length: W * H }, (_, i) => (i % W < 2 ? 1 : 0)));
    // resized and greyed through the same sharp pipeline as a PNG of the same pixels
    const png = await sharp(Uint8Array.from(want), { raw: { width: W, height: H, channels: 3 } })
      .png()
      .toBuffer();
    const opts = { channels: "gray" as const, height: 6, width: 4, resize: "bilinear" as const };
    expect(Array.from((await decodeImage(bmp24, "a.bmp", opts)).data)).toEqual(Array.from((await decodeImage(png, "a.png", opts)).data));
    await expect(decodeImage(bmp24.subarray(0, 30), "cut.bmp", { channels: "rgb" })).rejects.toThrow(
      /cannot decode image cut\.bmp \(BMP of 30 bytes is shorter than its headers\)/,
    );
  });

  it("reads the other BMP kinds writers produce with the colours the file encodes: 1/4/8-bit colour palettes, RLE8/RLE4, 16-bit 5-5-5 and 5-6-5, OS/2 headers, alpha", async () => {
    const rgbOf = async (bmp: Buffer) => Array.from((await decodeImage(bmp, "x.bmp", { channels: "rgb" })).data);
    const PAL = [
      [255, 0, 0],
      [0, 255, 0],
      [0, 0, 255],
      [10, 20, 30],
      [200, 100, 50],
      [1, 2, 3],
      [7, 8, 9],
      [90, 80, 70],
    ];
    const idx = (x: number, y: number) => (x + 3 * y) % 8;
    const want = (w: number, h: number, at: (x: number, y: number) => number[]) =>
      Array.from({ length: w * h }, (_, i) => at(i % w, Math.floor(i / w))).flat();
    // palette indices packed MSB first, odd widths (rows padded to 4 bytes), a colour palette shorter than 2^bits
    for (const [bits, w] of [
      [1, 11],
      [4, 5],
      [8, 5],
    ] as const) {
      const at = bits === 1 ? (x: number, y: number) => (x + y) % 2 : idx;
      const row = (y: number) => {
        const b = Buffer.alloc(Math.ceil((w * bits) / 8));
        for (let x = 0; x < w; x++) b[(x * bits) >> 3] |= at(x, y) << (8 - bits - ((x * bits) & 7));
        return b;
      };
      expect(await rgbOf(bmpFile({ width: w, height: 3, bits, palette: PAL.slice(0, 1 << Math.min(bits, 3)), rows: row })), `${bits}-bit`).toEqual(
        want(w, 3, (x, y) => PAL[at(x, y)]),
      );
    }
    // a grey 8-bit image is grey, not (0, v, v)
    const greyBmp = bmpFile({
      width: 5,
      height: 3,
      bits: 8,
      palette: Array.from({ length: 256 }, (_, i) => [i, i, i]),
      rows: (y) => Buffer.from([0, 1, 2, 3, 4].map((x) => 10 * x + 50 * y)),
    });
    expect(Array.from((await decodeImage(greyBmp, "g.bmp", { channels: "gray" })).data)).toEqual(want(5, 3, (x, y) => [10 * x + 50 * y]));
    // RLE8: a literal run of 3 (padded), runs, a delta, end of line, end of bitmap; skipped pixels are index 0
    const rle8 = Buffer.from([0, 3, 1, 2, 3, 0, 2, 4, 0, 0, /* row 1: */ 1, 5, 0, 2, 2, 0, 2, 6, 0, 0, /* row 2: */ 5, 7, 0, 1]);
    expect(await rgbOf(bmpFile({ width: 5, height: 3, bits: 8, compression: 1, palette: PAL, pixels: rle8 }))).toEqual(
      [
        [7, 7, 7, 7, 7],
        [5, 0, 0, 6, 6],
        [1, 2, 3, 4, 4],
      ]
        .flat()
        .flatMap((i) => PAL[i]),
    );
    // RLE4: every run starts on the high nibble; a literal run of 5 nibbles takes 3 bytes, padded to 4
    const rle4 = Buffer.from([3, 0x12, 2, 0x34, 0, 0, /* row 1: */ 0, 5, 0x56, 0x71, 0x20, 0, 0, 1]);
    expect(await rgbOf(bmpFile({ width: 5, height: 2, bits: 4, compression: 2, palette: PAL, pixels: rle4 }))).toEqual(
      [
        [5, 6, 7, 1, 2],
        [1, 2, 1, 3, 4],
      ]
        .flat()
        .flatMap((i) => PAL[i]),
    );
    // 16 bits: 5-5-5 (the default) and 5-6-5 bit fields, scaled so that the top value is 255
    const q = [
      [31, 0, 16],
      [0, 31, 1],
    ];
    const px555 = () => Buffer.from(Uint16Array.from([0, 1].map((x) => (q[x][0] << 10) | (q[x][1] << 5) | q[x][2])).buffer);
    const scale5 = (v: number) => Math.round((v * 255) / 31);
    expect(await rgbOf(bmpFile({ width: 2, height: 1, bits: 16, rows: px555 }))).toEqual(q.flatMap((c) => c.map(scale5)));
    const px565 = () => Buffer.from(Uint16Array.from([(31 << 11) | (63 << 5) | 0, (1 << 11) | (32 << 5) | 31]).buffer);
    expect(await rgbOf(bmpFile({ width: 2, height: 1, bits: 16, compression: 3, masks: [0xf800, 0x07e0, 0x001f], rows: px565 }))).toEqual([
      255, 255, 0, 8, 130, 255,
    ]);
    // OS/2 1.x header: 16-bit sizes, 3-byte palette entries
    expect(
      await rgbOf(
        bmpFile({ width: 5, height: 2, bits: 8, header: 12, palette: PAL, rows: (y) => Buffer.from([0, 1, 2, 3, 4].map((x) => idx(x, y))) }),
      ),
    ).toEqual(want(5, 2, (x, y) => PAL[idx(x, y)]));
    // 32 bits with an alpha mask (V5 header, as GIMP writes) is flattened on black like the same PNG;
    // alpha left 0 everywhere (no real alpha) is ignored
    const bgra = (a: (x: number) => number) => () => Buffer.from([0, 1, 2].flatMap((x) => [10 * x, 100, 200, a(x)]));
    const v5 = { width: 3, height: 1, bits: 32, header: 124, compression: 3, masks: [0xff0000, 0xff00, 0xff, 0xff000000] } as const;
    const png = await sharp(Uint8Array.from([200, 100, 0, 255, 200, 100, 10, 128, 200, 100, 20, 0]), { raw: { width: 3, height: 1, channels: 4 } })
      .png()
      .toBuffer();
    expect(await rgbOf(bmpFile({ ...v5, rows: bgra((x) => [255, 128, 0][x]) }))).toEqual(
      Array.from((await decodeImage(png, "a.png", { channels: "rgb" })).data),
    );
    expect(await rgbOf(bmpFile({ ...v5, rows: bgra(() => 0) }))).toEqual([200, 100, 0, 200, 100, 10, 200, 100, 20]);
    // a PH2-style 1-bit mask reads as the mask
    const maskPath = join(dir, "mask1.bmp");
    const on = (x: number, y: number) => (x > y ? 1 : 0);
    writeFileSync(
      maskPath,
      bmpFile({
        width: 11,
        height: 3,
        bits: 1,
        palette: [
          [0, 0, 0],
          [255, 255, 255],
        ],
        rows: (y) =>
          Buffer.from([
            Array.from({ length: 8 }, (_, x) => on(x, y) << (7 - x)).reduce((a, b) => a | b),
            Array.from({ length: 3 }, (_, x) => on(x + 8, y) << (7 - x)).reduce((a, b) => a | b),
          ]),
      }),
    );
    expect(Array.from(await loadMask(maskPath, 3, 11))).toEqual(want(11, 3, (x, y) => [on(x, y)]));
  });

  it("refuses damaged or absurd BMP files with one line, before allocating what their header claims", async () => {
    const ok = bmpFile({ width: 5, height: 3, bits: 24, rows: () => Buffer.alloc(15, 9) });
    const set = (...fields: [number, number][]) => {
      const b = Buffer.from(ok);
      for (const [at, v] of fields) b.writeInt32LE(v, at);
      return b;
    };
    const cases: [Buffer, RegExp][] = [
      [set([18, 100000], [22, 100000]), /BMP of 100000x100000 pixels is larger than segcause reads/],
      [set([22, 100000]), /BMP is truncated: its pixels need 1599999 bytes, the file holds 48 after its headers/],
      [set([18, -5]), /BMP size -5x3 is invalid/],
      [ok.subarray(0, ok.length - 10), /BMP is truncated/],
      [set([30, 4]), /BMP holding a JPEG stream/],
      [set([14, 20]), /BMP header of 20 bytes is of no known kind/],
      [
        bmpFile({ width: 5, height: 3, bits: 8, compression: 1, palette: [[0, 0, 0]], pixels: Buffer.from([5, 0, 0, 0]) }),
        /BMP is truncated: its RLE pixel data ends at row 1 of 3/,
      ],
    ];
    for (const [bytes, message] of cases) {
      await expect(decodeImage(bytes, "bad.bmp", { channels: "rgb" })).rejects.toThrow(
        new RegExp(`^cannot decode image bad\\.bmp \\(${message.source}`),
      );
      await expect(imageInfo(bytes, "bad.bmp")).rejects.toThrow(message);
    }
  });
});

/** A BITMAPINFOHEADER BMP written by hand (independent of the decoder under test). */
function writeBmp(
  width: number,
  height: number,
  bits: 8 | 24 | 32,
  rgbAt: (x: number, y: number) => number[],
  opts: { bottomUp: boolean; gap?: number },
): Buffer {
  const palette = bits === 8 ? 256 * 4 : 0;
  const stride = Math.ceil((width * bits) / 32) * 4;
  const offset = 54 + palette + (opts.gap ?? 0);
  const buf = Buffer.alloc(offset + stride * height);
  buf.write("BM", 0, "ascii");
  buf.writeUInt32LE(buf.length, 2);
  buf.writeUInt32LE(offset, 10);
  buf.writeUInt32LE(40, 14);
  buf.writeInt32LE(width, 18);
  buf.writeInt32LE(opts.bottomUp ? height : -height, 22);
  buf.writeUInt16LE(1, 26);
  buf.writeUInt16LE(bits, 28);
  buf.writeUInt32LE(stride * height, 34);
  for (let i = 0; i < palette / 4; i++) buf.fill(i, 54 + i * 4, 54 + i * 4 + 3); // grey palette, BGR0
  for (let y = 0; y < height; y++) {
    const row = offset + (opts.bottomUp ? height - 1 - y : y) * stride;
    for (let x = 0; x < width; x++) {
      const [r, g, b] = rgbAt(x, y);
      if (bits === 8) buf[row + x] = r;
      else buf.set([b, g, r], row + x * (bits / 8));
    }
  }
  return buf;
}

/** Any BMP kind, written by hand: `rows(y)` gives row y's bytes (top row 0, unpadded), or `pixels` the whole (RLE) pixel data. */
function bmpFile(o: {
  width: number;
  height: number;
  bits: number;
  header?: number;
  compression?: number;
  masks?: readonly number[];
  palette?: number[][];
  rows?: (y: number) => Buffer;
  pixels?: Buffer;
}): Buffer {
  const header = o.header ?? 40;
  const stride = Math.ceil((o.width * o.bits) / 32) * 4;
  let pixels = o.pixels;
  if (!pixels) {
    pixels = Buffer.alloc(stride * o.height);
    for (let y = 0; y < o.height; y++) o.rows!(y).copy(pixels, (o.height - 1 - y) * stride);
  }
  const palette = Buffer.from((o.palette ?? []).flatMap(([r, g, b]) => (header === 12 ? [b, g, r] : [b, g, r, 0])));
  const h = Buffer.alloc(header);
  h.writeUInt32LE(header, 0);
  if (header === 12) [o.width, o.height, 1, o.bits].forEach((v, i) => h.writeUInt16LE(v, 4 + 2 * i));
  else {
    h.writeInt32LE(o.width, 4);
    h.writeInt32LE(o.height, 8);
    h.writeUInt16LE(1, 12);
    h.writeUInt16LE(o.bits, 14);
    h.writeUInt32LE(o.compression ?? 0, 16);
    h.writeUInt32LE(o.palette && o.palette.length < 1 << o.bits ? o.palette.length : 0, 32);
    if (header > 40) (o.masks ?? []).forEach((m, i) => h.writeUInt32LE(m >>> 0, 40 + 4 * i)); // inside V2 and later headers
  }
  const masks = header === 40 && o.masks ? Buffer.from(Uint32Array.from(o.masks).buffer) : Buffer.alloc(0);
  const file = Buffer.alloc(14);
  file.write("BM", 0, "ascii");
  const offset = 14 + header + masks.length + palette.length;
  file.writeUInt32LE(offset + pixels.length, 2);
  file.writeUInt32LE(offset, 10);
  return Buffer.concat([file, h, masks, palette, pixels]);
}
