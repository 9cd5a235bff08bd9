import { join } from "node:path";
import sharp from "sharp";
import { beforeAll, describe, expect, it } from "vitest";
import { loadImage, loadMask } from "../src/data/image.js";
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
});
