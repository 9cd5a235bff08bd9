/**
 * Image and mask IO with sharp: decode PNG, JPEG, TIFF, WebP and GIF (BMP through ./bmp.ts), convert
 * channels, resize as the card says.
 */
import { readdirSync, statSync } from "node:fs";
import { extname, join } from "node:path";
import sharp, { type Sharp } from "sharp";
import { fail } from "../errors.js";
import type { ResizeFilter } from "../model/card.js";
import { readFileBoundedAsync } from "../util/read.js";
import { decodeBmp, isBmp } from "./bmp.js";

/** Interleaved 8-bit pixels (HWC). */
export interface RasterImage {
  width: number;
  height: number;
  channels: 1 | 3;
  data: Uint8Array;
}

type Kernel = "nearest" | "linear" | "cubic" | "lanczos3";
const KERNEL: Record<ResizeFilter, Kernel> = {
  nearest: "nearest",
  bilinear: "linear",
  bicubic: "cubic",
  lanczos: "lanczos3",
};

/** An image or mask file's bytes: a regular file within the image size limit (src/util/read.ts). */
export async function readInput(path: string, what = "image"): Promise<Buffer> {
  return readFileBoundedAsync(path, {
    what,
    kind: "image",
    hint: `check the path (--image, --mask, or the files a dataset manifest lists): give a ${IMAGE_FORMATS} file`,
  });
}

/**
 * Decodes an image (any bit depth, gray/RGB/alpha) into 8-bit RGB or gray, optionally resized
 * (squashed, as the paper does) to height x width.
 */
export async function loadImage(
  path: string,
  opts: { channels: "rgb" | "gray"; height?: number; width?: number; resize?: ResizeFilter },
): Promise<RasterImage> {
  const bytes = await readInput(path);
  return decodeImage(bytes, path, opts);
}

/** Size and channel count of an encoded image as stored (before any resize or conversion). */
export interface ImageInfo {
  height: number;
  width: number;
  channels: number;
  /** EXIF orientation 2..8 (the file is displayed flipped or rotated); absent for 1 or none */
  orientation?: number;
}

export async function imageInfo(bytes: Buffer, label: string): Promise<ImageInfo> {
  try {
    if (isBmp(bytes)) {
      const bmp = decodeBmp(bytes);
      return { height: bmp.height, width: bmp.width, channels: bmp.grey ? 1 : bmp.channels };
    }
    const m = await sharp(bytes).metadata();
    if (!m.width || !m.height) throw new Error("no image size in the file");
    return {
      height: m.height,
      width: m.width,
      channels: m.channels ?? 0,
      ...(m.orientation && m.orientation > 1 ? { orientation: m.orientation } : {}),
    };
  } catch (e) {
    fail(`cannot decode image ${label} (${(e as Error).message.split("\n")[0]})`, DECODE_HINT);
  }
}

export async function decodeImage(
  bytes: Buffer,
  label: string,
  opts: { channels: "rgb" | "gray"; height?: number; width?: number; resize?: ResizeFilter },
): Promise<RasterImage> {
  try {
    let img = open(bytes).flatten({ background: "#000000" });
    if (opts.height !== undefined && opts.width !== undefined) {
      img = img.resize(opts.width, opts.height, { fit: "fill", kernel: KERNEL[opts.resize ?? "bilinear"] });
    }
    img = opts.channels === "gray" ? img.toColourspace("b-w") : img.toColourspace("srgb");
    const { data, info } = await img.raw({ depth: "uchar" }).toBuffer({ resolveWithObject: true });
    const want = opts.channels === "gray" ? 1 : 3;
    if (info.channels !== want) {
      // sharp keeps a grey image single-channel under "srgb"; expand or reduce as needed.
      return { width: info.width, height: info.height, channels: want, data: convertChannels(data, info.channels, want) };
    }
    return { width: info.width, height: info.height, channels: want, data: new Uint8Array(data) };
  } catch (e) {
    fail(`cannot decode image ${label} (${(e as Error).message.split("\n")[0]})`, DECODE_HINT);
  }
}

/** The formats segcause reads, in words (hints) and as file extensions (folder listings). */
export const IMAGE_FORMATS = "PNG, JPEG, TIFF, WebP, GIF or BMP";
export const IMAGE_EXTENSIONS: ReadonlySet<string> = new Set([".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".gif", ".bmp"]);
/** Image files directly in a folder, sorted by name so the bank does not depend on the file system. */
export function listImages(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    fail(`cannot list images in ${dir}`, `pass a folder of images (${IMAGE_FORMATS}) or a dataset manifest`);
  }
  // Hidden files (macOS's ._a1.png beside a1.png) are not images of the folder; a dangling link is no file.
  return names
    .filter(
      (n) => !n.startsWith(".") && IMAGE_EXTENSIONS.has(extname(n).toLowerCase()) && statSync(join(dir, n), { throwIfNoEntry: false })?.isFile(),
    )
    .sort()
    .map((n) => join(dir, n));
}

const DECODE_HINT = `give a ${IMAGE_FORMATS} file (re-save it if it is truncated or unusual)`;

/** A sharp pipeline over the file: BMP is decoded to raw RGB first, everything else by sharp itself. */
function open(bytes: Buffer): Sharp {
  if (!isBmp(bytes)) return sharp(bytes, { failOn: "error" });
  const { width, height, channels, pixels } = decodeBmp(bytes);
  return sharp(pixels, { raw: { width, height, channels } });
}

function convertChannels(data: Buffer, from: number, to: 1 | 3): Uint8Array {
  const n = data.length / from;
  const out = new Uint8Array(n * to);
  for (let i = 0; i < n; i++) {
    if (to === 3) {
      const v = data[i * from];
      out[i * 3] = from >= 3 ? data[i * from] : v;
      out[i * 3 + 1] = from >= 3 ? data[i * from + 1] : v;
      out[i * 3 + 2] = from >= 3 ? data[i * from + 2] : v;
    } else {
      out[i] = from >= 3 ? Math.round(0.299 * data[i * from] + 0.587 * data[i * from + 1] + 0.114 * data[i * from + 2]) : data[i * from];
    }
  }
  return out;
}

/**
 * A binary mask, resized with nearest neighbour to height x width. Read at the file's own depth
 * (a 16-bit 0/1 PNG is not rounded away) and accepted when it is binary: exactly two values (the
 * higher is the structure: 0/255, 0/1, a one-label map 0/2 ...), or nearly so (JPEG or resampling
 * noise: 98% of the pixels within 1/8 of either end of the full range, no third value on 5% of
 * them; cut at half the maximum). Anything else (a label map with several labels, a soft or
 * probability mask) is refused with its values.
 */
export async function loadMask(path: string, height: number, width: number): Promise<Uint8Array> {
  return decodeMask(await readInput(path, "mask"), path, height, width);
}

/** `loadMask` for bytes already read (the caller also hashes and size-checks them). */
export async function decodeMask(bytes: Buffer, path: string, height: number, width: number): Promise<Uint8Array> {
  const img = await decodeGreyNative(bytes, path);
  const foreground = binaryRule(img.data, path);
  // Nearest neighbour at pixel centres (as PIL's NEAREST), so labels are never blended.
  const mask = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    const sy = Math.min(img.height - 1, Math.floor(((y + 0.5) * img.height) / height));
    for (let x = 0; x < width; x++) {
      const sx = Math.min(img.width - 1, Math.floor(((x + 0.5) * img.width) / width));
      mask[y * width + x] = foreground(img.data[sy * img.width + sx]) ? 1 : 0;
    }
  }
  return mask;
}

/** Grey values at the file's depth: 0..255, or 0..65535 for a 16-bit file. */
async function decodeGreyNative(bytes: Buffer, label: string): Promise<{ width: number; height: number; data: Uint8Array | Uint16Array }> {
  try {
    const sixteen = !isBmp(bytes) && (await sharp(bytes).metadata()).depth === "ushort";
    const img = open(bytes)
      .flatten({ background: "#000000" })
      .toColourspace(sixteen ? "grey16" : "b-w");
    const { data, info } = await img.raw({ depth: sixteen ? "ushort" : "uchar" }).toBuffer({ resolveWithObject: true });
    const all = sixteen ? new Uint16Array(data.buffer, data.byteOffset, data.length / 2) : new Uint8Array(data);
    const n = info.width * info.height;
    const grey = all.length === n ? all : all.filter((_, i) => i % info.channels === 0);
    return { width: info.width, height: info.height, data: grey };
  } catch (e) {
    fail(`cannot decode image ${label} (${(e as Error).message.split("\n")[0]})`, DECODE_HINT);
  }
}

function binaryRule(data: Uint8Array | Uint16Array, path: string): (v: number) => boolean {
  const counts = new Map<number, number>();
  for (const v of data) counts.set(v, (counts.get(v) ?? 0) + 1);
  const values = [...counts.keys()].sort((a, b) => a - b);
  if (values.length === 1) return values[0] === 0 ? () => false : () => true;
  if (values.length === 2) return (v) => v === values[1];
  // Nearly binary (JPEG or resampling noise): a full-range mask whose pixels lie within 1/8 of
  // either end, cut at half the maximum. Noise spreads over many values, each rare (a JPEG'd PH2 or
  // vessel mask: at most 2% of the pixels on any value but the two commonest); a value on 5% or more
  // is a label (0/1/2, VOC's 0/1/255 with its void border) and the mask is refused, not guessed at.
  const max = values[values.length - 1];
  const full = data instanceof Uint16Array ? 32768 : 128;
  let nearEnds = 0;
  for (const [v, k] of counts) if (v <= max / 8 || v >= (7 * max) / 8) nearEnds += k;
  const [, , third] = [...counts.values()].sort((x, y) => y - x);
  if (max >= full && nearEnds >= 0.98 * data.length && third < 0.05 * data.length) return (v) => v > max / 2;
  const shown = values.length <= 6 ? values.join(", ") : `${values.slice(0, 3).join(", ")}, ..., ${values.slice(-2).join(", ")}`;
  fail(
    `mask ${path} is not binary: it has ${values.length} distinct values (${shown})`,
    "give a mask with the structure as 255 (or 1) and everything else 0: for a label map keep one label, for a soft mask threshold it first",
  );
}

/** Encodes interleaved 8-bit pixels as PNG. */
export async function encodePng(img: RasterImage | { width: number; height: number; channels: 3 | 4; data: Uint8Array }): Promise<Buffer> {
  return sharp(img.data, { raw: { width: img.width, height: img.height, channels: img.channels } })
    .png()
    .toBuffer();
}
