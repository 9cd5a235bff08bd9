import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { crc32, deflateSync } from "node:zlib";
import sharp from "sharp";
import { beforeAll, describe, expect, it } from "vitest";
import { decodeImage, imageInfo, loadImage, loadMask } from "../src/data/image.js";
import { tmp } from "./helpers/tiny.js";

let dir: string;
beforeAll(() => {
  dir = tmp();
});

async function write(name: string, channels: 1 | 2 | 3 | 4, value: (c: number) => number, opts: { bits16?: boolean; jpeg?: boolean } = {}): Promise<string> {
  const n = 8 * 8;
  const path = join(dir, name);
  const data = new Uint8Array(n * channels);
  for (let i = 0; i < n; i++) for (let c = 0; c < channels; c++) data[i * channels + c] = value(c);
  const img = sharp(data, { raw: { width: 8, height: 8, channels } });
  if (opts.bits16) await img.toColourspace(channels >= 3 ? "rgb16" : "grey16").png().toFile(path);
  else await (opts.jpeg ? img.jpeg({ quality: 100 }) : img.png()).toFile(path);
  return path;
}

describe("image decoding", () => {
  it("reads 8-bit RGB, RGBA (alpha dropped), gray and gray+alpha into RGB", async () => {
    for (const [name, ch] of [["rgb.png", 3], ["rgba.png", 4], ["gray.png", 1], ["ga.png", 2]] as const) {
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
      const len = Buffer.alloc(4), crc = Buffer.alloc(4), tb = Buffer.concat([Buffer.from(type, "ascii"), body]);
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
    return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk("IHDR", ihdr), chunk("IDAT", deflateSync(rows)), chunk("IEND", Buffer.alloc(0))]);
  }

  /** An 8x8 mask whose left half is `fg` and right half `bg` (16-bit when asked; `noise` added to one pixel). */
  async function halfMask(name: string, fg: number, bg: number, bits16 = false, noise = 0): Promise<string> {
    const values = Array.from({ length: 64 }, (_, i) => Math.max(0, Math.min(bits16 ? 65535 : 255, (i % 8 < 4 ? fg : bg) + (i === 5 ? noise : 0))));
    const path = join(dir, name);
    if (bits16) writeFileSync(path, png16(8, 8, values));
    else await sharp(Uint8Array.from(values), { raw: { width: 8, height: 8, channels: 1 } }).png().toFile(path);
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
    await sharp(Uint8Array.from({ length: 64 }, (_, i) => i % 3), { raw: { width: 8, height: 8, channels: 1 } }).png().toFile(labels);
    await expect(loadMask(labels, 8, 8)).rejects.toThrow(/labels\.png is not binary: it has 3 distinct values \(0, 1, 2\)/);
    // a JPEG of a 0/255 disc (dozens of noise values around its edge) reads as the disc
    const disc = Uint8Array.from({ length: 64 * 64 }, (_, i) => ((Math.floor(i / 64) - 30) ** 2 + ((i % 64) - 34) ** 2 < 400 ? 255 : 0));
    const discPng = join(dir, "disc.png"), discJpg = join(dir, "disc.jpg");
    await sharp(disc, { raw: { width: 64, height: 64, channels: 1 } }).png().toFile(discPng);
    await sharp(disc, { raw: { width: 64, height: 64, channels: 1 } }).jpeg({ quality: 75 }).toFile(discJpg);
    expect(new Set((await sharp(discJpg).raw().toBuffer()).values()).size).toBeGreaterThan(10);
    expect(Array.from(await loadMask(discJpg, 64, 64))).toEqual(Array.from(await loadMask(discPng, 64, 64)));
    // VOC style: object 1 with a void border 255; and a 0/1/2 label map whose label 1 is small
    const voc = join(dir, "voc.png");
    await sharp(Uint8Array.from({ length: 64 }, (_, i) => (i % 8 === 0 ? 255 : i % 8 < 4 ? 1 : 0)), { raw: { width: 8, height: 8, channels: 1 } }).png().toFile(voc);
    await expect(loadMask(voc, 8, 8)).rejects.toThrow(/voc\.png is not binary: it has 3 distinct values \(0, 1, 255\)/);
    const small = join(dir, "small-label.png");
    await sharp(Uint8Array.from({ length: 64 }, (_, i) => (i === 0 ? 1 : i < 32 ? 2 : 0)), { raw: { width: 8, height: 8, channels: 1 } }).png().toFile(small);
    await expect(loadMask(small, 8, 8)).rejects.toThrow(/not binary: it has 3 distinct values \(0, 1, 2\)/);
    const soft = join(dir, "soft.png");
    await sharp(Uint8Array.from({ length: 64 }, (_, i) => i * 4), { raw: { width: 8, height: 8, channels: 1 } }).png().toFile(soft);
    await expect(loadMask(soft, 8, 8)).rejects.toThrow(/not binary: it has 64 distinct values \(0, 4, 8, \.\.\., 248, 252\)/);
  });

  it("reads BMP files as Windows writes them (24-bit bottom-up, 8-bit grey palette, 32-bit top-down, a gap before the pixels)", async () => {
    // 5 wide (rows padded to 4 bytes), 3 high; pixel (x, y) = (40x, 60y, 7) so every row and column differs.
    const W = 5, H = 3;
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
    writeFileSync(maskPath, writeBmp(W, H, 8, (x) => (x < 2 ? [255, 255, 255] : [0, 0, 0]), { bottomUp: true }));
    expect(await imageInfo(writeBmp(W, H, 8, () => [9, 9, 9], { bottomUp: true }), "g.bmp")).toEqual({ height: H, width: W, channels: 1 });
    expect(Array.from(await loadMask(maskPath, H, W))).toEqual(Array.from({ length: W * H }, (_, i) => (i % W < 2 ? 1 : 0)));
    // resized and greyed through the same sharp pipeline as a PNG of the same pixels
    const png = await sharp(Uint8Array.from(want), { raw: { width: W, height: H, channels: 3 } }).png().toBuffer();
    const opts = { channels: "gray" as const, height: 6, width: 4, resize: "bilinear" as const };
    expect(Array.from((await decodeImage(bmp24, "a.bmp", opts)).data)).toEqual(Array.from((await decodeImage(png, "a.png", opts)).data));
    await expect(decodeImage(bmp24.subarray(0, 30), "cut.bmp", { channels: "rgb" })).rejects.toThrow(/cannot decode image cut\.bmp \(BMP of 30 bytes is shorter than its headers\)/);
  });
});

/** A BITMAPINFOHEADER BMP written by hand (independent of the decoder under test). */
function writeBmp(width: number, height: number, bits: 8 | 24 | 32, rgbAt: (x: number, y: number) => number[], opts: { bottomUp: boolean; gap?: number }): Buffer {
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
