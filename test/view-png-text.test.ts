/**
 * The text chunk the viewer's Save PNG adds (src/view/web/png-text.ts): a PNG reader (sharp, libvips)
 * reads it back as written, ASCII text as tEXt and any other text as iTXt (UTF-8), and the image is unchanged.
 */
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { withText } from "../src/view/web/png-text.js";

describe("Save PNG's text chunk", () => {
  it("is read back by a PNG reader, ASCII as tEXt and other text as iTXt, and leaves the pixels alone", async () => {
    const pixels = Buffer.from(Array.from({ length: 4 * 3 * 3 }, (_, i) => (i * 37) % 256));
    const png = await sharp(pixels, { raw: { width: 4, height: 3, channels: 3 } })
      .png()
      .toBuffer();
    for (const [text, chunk] of [
      ["segcause explain --model m.onnx --image a.png --out runs/a\nresults folder /data/b", "tEXt"],
      ["segcause explain --model m.onnx --image café.png --out runs/a", "iTXt"],
      ["segcause explain --image /données/病例-7.png --out runs/a", "iTXt"],
    ] as const) {
      const out = Buffer.from(withText(new Uint8Array(png), "segcause", text));
      // the chunk sits right after IHDR
      expect(out.subarray(37, 41).toString("latin1")).toBe(chunk);
      expect((await sharp(out).metadata()).comments).toEqual([{ keyword: "segcause", text }]);
      expect((await sharp(out).raw().toBuffer()).equals(pixels)).toBe(true);
    }
  });
});
