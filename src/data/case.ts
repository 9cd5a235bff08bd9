/** Case: one image (at the model's input size), optionally with its ground-truth mask. */
import { basename } from "node:path";
import { fail } from "../errors.js";
import type { Model } from "../model/model.js";
import { sha256 } from "../util/hash.js";
import { decodeImage, decodeMask, type ImageInfo, imageInfo, type RasterImage, readInput } from "./image.js";

export interface Case {
  id: string;
  /** pixels resized to the model's input size, in the model's channel layout */
  image: RasterImage;
  imageSha256: string;
  imagePath?: string;
  /** ground truth at the model's input size, 0/1 */
  mask?: Uint8Array;
  maskPath?: string;
  maskSha256?: string;
  /** why the mask has no foreground at the model's size (empty, or its structure vanished), when allowed */
  emptyMask?: string;
  /** size and channels of the image file as stored, before resizing and channel conversion */
  source?: ImageInfo;
  /** sha256 of the image file a derived case (a noisy copy) was made from */
  derivedFrom?: string;
  /** what a reader of any result on this case should know about the input (conversion, enlargement, EXIF) */
  notes?: string[];
}

/** The image files a case's pixels come from: the bank's patches of these are not "other images". */
export function caseImageHashes(kase: Case): string[] {
  return kase.derivedFrom ? [kase.imageSha256, kase.derivedFrom] : [kase.imageSha256];
}

/**
 * An empty mask (no foreground) is refused unless `allowEmptyMask`: evaluate takes it and lets its
 * RoIs be skipped with the reason (Dice against an empty structure is undefined).
 */
export async function loadCase(model: Model, imagePath: string, maskPath?: string, opts: { allowEmptyMask?: boolean } = {}): Promise<Case> {
  const bytes = await readInput(imagePath);
  const { height, width, channels, resize } = model.card.input;
  const image = await decodeImage(bytes, imagePath, { channels, height, width, resize });
  const source = await imageInfo(bytes, imagePath);
  const kase: Case = { id: basename(imagePath).replace(/\.[^.]+$/, ""), image, imageSha256: sha256(bytes), imagePath, source };
  kase.notes = [channelConversion(kase, model), enlargement(kase, model), exifOrientation(kase)].filter((n): n is string => n !== undefined);
  if (maskPath) {
    const maskBytes = await readInput(maskPath, "mask");
    await checkMaskSize(
      maskPath,
      maskBytes,
      [{ ...source, what: `the image ${imagePath}` }],
      "give the ground-truth mask of this image, at its size",
    );
    kase.mask = await decodeMask(maskBytes, maskPath, height, width);
    kase.maskPath = maskPath;
    kase.maskSha256 = sha256(maskBytes);
    if (!kase.mask.some((v) => v)) {
      // A structure of a few pixels can vanish when the mask is resized to the model's input.
      const m = await imageInfo(maskBytes, maskPath);
      const native = m.height === height && m.width === width ? kase.mask : await decodeMask(maskBytes, maskPath, m.height, m.width);
      const fg = native.reduce((a, v) => a + v, 0);
      const [problem, fix] =
        fg > 0
          ? [
              `mask ${maskPath}: its structure (${fg} pixels at ${m.height}x${m.width}) vanishes when the mask is resized to the model's ${height}x${width} input`,
              "explain against the model's own prediction (omit --mask), or use a model with a larger input",
            ]
          : [
              `mask ${maskPath} is empty (no foreground pixel)`,
              "give a 0/255 or 0/1 mask of the structure, or omit --mask to explain against the model's own prediction",
            ];
      if (!opts.allowEmptyMask) fail(problem, fix);
      kase.emptyMask = problem;
    }
  }
  return kase;
}

/**
 * Fails unless the mask has one of the allowed sizes: a mask of another size is a mask of another
 * image (or a crop), and resizing it would silently misalign it.
 */
export async function checkMaskSize(
  path: string,
  bytes: Buffer,
  allowed: { height: number; width: number; what: string }[],
  hint: string,
): Promise<void> {
  const m = await imageInfo(bytes, path);
  if (allowed.some((a) => a.height === m.height && a.width === m.width)) return;
  fail(`mask ${path} is ${m.height}x${m.width} pixels but ${allowed.map((a) => `${a.what} is ${a.height}x${a.width}`).join(" and ")}`, hint);
}

/** A note when the image's channels were converted to the model's (a colour image explained by a grey model, or the reverse). */
export function channelConversion(kase: Case, model: Model): string | undefined {
  if (!kase.source) return undefined;
  const colour = kase.source.channels >= 3;
  if (colour === (model.channels === 3)) return undefined;
  return colour
    ? `the colour image was converted to grey (luma) for the model's 1-channel input: check that the model is meant for this kind of image`
    : `the grey image was replicated into RGB for the model's 3-channel input: check that the model is meant for this kind of image`;
}

/** A note when the image is much smaller than the model input: the model then sees a blown-up, blurred image. */
export function enlargement(kase: Case, model: Model): string | undefined {
  if (!kase.source) return undefined;
  const f = Math.max(model.height / kase.source.height, model.width / kase.source.width);
  if (f < 2) return undefined;
  return `the ${kase.source.height}x${kase.source.width} image was enlarged ${f.toFixed(f < 10 ? 1 : 0)}x to the model's ${model.height}x${model.width} input: check that this is the image the model is meant for`;
}

/**
 * A note when the file carries an EXIF orientation: segcause, like PIL's Image.open and the paper's
 * code, reads the stored pixels as they are, while viewers (and OpenCV) show them rotated.
 */
export function exifOrientation(kase: Case): string | undefined {
  const o = kase.source?.orientation;
  if (!o) return undefined;
  return `the image file carries EXIF orientation ${o} (viewers show it ${o >= 5 ? "rotated" : "flipped or rotated"}); segcause reads the stored pixels unrotated, as PIL's Image.open does: if the model or the mask expects the displayed orientation, save the image rotated`;
}
