/**
 * Interventions: how a unit's content is replaced. Each writes into one model input (CHW, already
 * holding the unperturbed image) given a draw number; deterministic fills have one draw.
 */

import sharp from "sharp";
import type { Case } from "../data/case.js";
import type { RasterImage } from "../data/image.js";
import type { PatchBank } from "../data/patchbank.js";
import { fail } from "../errors.js";
import type { Model } from "../model/model.js";
import { randomInt } from "../util/rng.js";
import { STREAM } from "../util/streams.js";
import { forEachPixel, type Unit } from "./units.js";

export interface Intervention {
  readonly name: string;
  /** number of distinct draws (1 for deterministic replacements) */
  readonly draws: number;
  apply(dst: Float32Array, unit: Unit, draw: number): void;
  describe(): Record<string, unknown>;
  /** a scalar summary of a draw (a patch's mean value), used to stratify draws */
  drawKey?(draw: number): number;
  /** what the user should know about this intervention (kept in the attribution's notes) */
  readonly notes?: string[];
}

interface InputGeometry {
  channels: number;
  height: number;
  width: number;
}

/**
 * Natural patches from a PatchBank, pasted at the block, position-agnostic (PdCR). A unit larger
 * than a patch (a superpixel's bounding box, a group of blocks) is tiled with patches: the draw
 * picks the first tile's patch and seeds the others, so a draw is still one point of the
 * intervention distribution. Units with a pixel list are replaced on those pixels only.
 * Patches cropped from the explained image itself (a bank built from the folder that holds it) are
 * left out: PdCR's patches come from other images.
 */
export class PatchIntervention implements Intervention {
  readonly name = "natural-patches";
  readonly notes: string[] = [];
  private readonly patches: Float32Array;
  private readonly geom: InputGeometry;
  /** bank index of each draw when some patches are left out */
  private readonly index?: Int32Array;
  private readonly excluded?: { image: string; patches: number };

  constructor(
    private readonly bank: PatchBank,
    model: Model,
    /** the block size the patches must match; omit for units tiled with patches (superpixels) */
    blockSize?: number,
    /** the explained case: the bank's patches of its image are left out */
    explained?: Case,
  ) {
    if (blockSize !== undefined && bank.patchSize !== blockSize) {
      fail(
        `patch bank holds ${bank.patchSize}x${bank.patchSize} patches but the block size is ${blockSize}`,
        `build a bank with --patch-size ${blockSize}, or use --block ${bank.patchSize}`,
      );
    }
    this.geom = { channels: model.channels, height: model.height, width: model.width };
    this.patches = bank.toInputSpace(model.channels as 1 | 3, (c) => model.affine(c));
    const { height, width } = bank.header.resizedTo;
    // A bank whose images are the patch size holds ready-cut patches: no scale to compare.
    const readyCut = height === bank.patchSize && width === bank.patchSize;
    if (!readyCut && (height !== model.height || width !== model.width)) {
      this.notes.push(
        `the patch bank was cropped from images resized to ${height}x${width}, but the model input is ${model.height}x${model.width}: its patches show structures at another scale (rebuild it with \`segcause bank build --model <this model>\`)`,
      );
    }
    const colourImage = (explained?.source?.channels ?? 3) >= 3;
    if (model.channels === 3 && colourImage && bank.isGrey)
      this.notes.push(
        "the patch bank holds grey patches but the model takes colour images: the replacements are unlike any natural image it sees (build the bank from images of its own kind)",
      );
    const own = explained ? bank.sourcesOf(explained) : [];
    const keep: number[] = [];
    let start = 0,
      left = 0;
    const names: string[] = [];
    for (const [i, s] of bank.header.sources.entries()) {
      if (own[i]) {
        left += s.patches;
        names.push(s.name);
      } else for (let k = 0; k < s.patches; k++) keep.push(start + k);
      start += s.patches;
    }
    if (left > 0) {
      if (keep.length === 0)
        fail(`every patch of the bank comes from the explained image ${names[0]}`, "build the bank from other images of the same kind");
      this.index = Int32Array.from(keep);
      this.excluded = { image: names.join(", "), patches: left };
      this.notes.push(
        `the patch bank holds ${left} patches of the explained image (${names.join(", ")}); they were left out, so every patch comes from another image`,
      );
    }
  }

  get draws(): number {
    return this.index ? this.index.length : this.bank.count;
  }

  private patchOf(draw: number): number {
    return this.index ? this.index[draw] : draw;
  }

  apply(dst: Float32Array, u: Unit, draw: number): void {
    const P = this.bank.patchSize;
    const { channels, height, width } = this.geom;
    const plane = height * width;
    if (!u.pixels && u.height <= P && u.width <= P) {
      const src = this.patchOf(draw) * channels * P * P;
      for (let c = 0; c < channels; c++) {
        for (let y = 0; y < u.height; y++) {
          const s = src + c * P * P + y * P;
          dst.set(this.patches.subarray(s, s + u.width), c * plane + (u.row + y) * width + u.col);
        }
      }
      return;
    }
    const tilesAcross = Math.ceil(u.width / P);
    forEachPixel(u, width, (i) => {
      const dy = Math.floor(i / width) - u.row,
        dx = (i % width) - u.col;
      const tile = Math.floor(dy / P) * tilesAcross + Math.floor(dx / P);
      const patch = this.patchOf(tile === 0 ? draw : randomInt(draw, STREAM.patchTile, tile, this.draws));
      const src = patch * channels * P * P + (dy % P) * P + (dx % P);
      for (let c = 0; c < channels; c++) dst[c * plane + i] = this.patches[src + c * P * P];
    });
  }

  /** Mean of the patch over channels and pixels in input space: brightness, the main driver of its effect. */
  drawKey(draw: number): number {
    const len = this.geom.channels * this.bank.patchSize * this.bank.patchSize;
    const p = this.patchOf(draw);
    let s = 0;
    for (let i = p * len; i < (p + 1) * len; i++) s += this.patches[i];
    return s / len;
  }

  describe(): Record<string, unknown> {
    const d: Record<string, unknown> = {
      name: this.name,
      bankSha256: this.bank.sha256,
      bankPatches: this.bank.count,
      patchSize: this.bank.patchSize,
      bankSeed: this.bank.header.seed,
      bankResizedTo: this.bank.header.resizedTo,
    };
    // Only when patches were left out, so that the records of every other run stay as they were.
    if (this.excluded) d.excluded = this.excluded;
    return d;
  }
}

export type FillKind = "constant" | "mean" | "blur";

/** Range of a pixel value in image units (images are decoded to 8 bits per channel). */
export const PIXEL_VALUE = { min: 0, max: 255 } as const;
/** The Gaussian sigmas the blur fill accepts (sharp's limits). */
export const MIN_BLUR_SIGMA = 0.3;
export const MAX_BLUR_SIGMA = 1000;

export interface FillOptions {
  kind: FillKind;
  /** pixel value (0..scale units) for "constant"; 0 = black, the paper's zero ablation */
  value?: number;
  /** Gaussian sigma in pixels for "blur" */
  sigma?: number;
}

/**
 * Replaces a unit by the same pixels of a filled copy of the image: a constant, the image's
 * per-channel mean, or a Gaussian-blurred image (classic occlusion fills). One draw.
 */
export class FillIntervention implements Intervention {
  readonly draws = 1;
  readonly name: string;
  private readonly geom: InputGeometry;

  private constructor(
    model: Model,
    private readonly filled: Float32Array,
    private readonly opts: FillOptions,
  ) {
    this.geom = { channels: model.channels, height: model.height, width: model.width };
    this.name = `fill-${opts.kind}`;
  }

  static async create(model: Model, image: RasterImage, opts: FillOptions): Promise<FillIntervention> {
    const n = image.width * image.height;
    const C = image.channels;
    let pixels: Uint8Array | Float32Array;
    if (opts.kind === "blur") {
      const sigma = opts.sigma ?? 5;
      if (!(sigma >= MIN_BLUR_SIGMA && sigma <= MAX_BLUR_SIGMA))
        fail(`blur sigma must be in ${MIN_BLUR_SIGMA}..${MAX_BLUR_SIGMA} px, got ${sigma}`, "use --sigma 5");
      pixels = new Uint8Array(
        await sharp(image.data, { raw: { width: image.width, height: image.height, channels: C } })
          .blur(sigma)
          .raw()
          .toBuffer(),
      );
    } else {
      const v = opts.value ?? 0;
      if (opts.kind === "constant" && !(v >= PIXEL_VALUE.min && v <= PIXEL_VALUE.max))
        fail(`the constant fill must be a pixel value in ${PIXEL_VALUE.min}..${PIXEL_VALUE.max}, got ${v}`, "use --fill 0 (black) .. 255 (white)");
      const values = Array.from({ length: C }, (_, c) => {
        if (opts.kind === "constant") return opts.value ?? 0;
        let sum = 0;
        for (let i = 0; i < n; i++) sum += image.data[i * C + c];
        return sum / n;
      });
      pixels = new Float32Array(n * C);
      for (let i = 0; i < n; i++) for (let c = 0; c < C; c++) pixels[i * C + c] = values[c];
    }
    const filled = new Float32Array(C * n);
    for (let c = 0; c < C; c++) {
      const [a, b] = model.affine(c);
      for (let i = 0; i < n; i++) filled[c * n + i] = pixels[i * C + c] * a + b;
    }
    return new FillIntervention(model, filled, opts);
  }

  apply(dst: Float32Array, u: Unit): void {
    const { channels, height, width } = this.geom;
    if (u.pixels) {
      const plane = height * width;
      for (let c = 0; c < channels; c++) for (const i of u.pixels) dst[c * plane + i] = this.filled[c * plane + i];
      return;
    }
    for (let c = 0; c < channels; c++) {
      for (let y = 0; y < u.height; y++) {
        const o = c * height * width + (u.row + y) * width + u.col;
        dst.set(this.filled.subarray(o, o + u.width), o);
      }
    }
  }

  describe(): Record<string, unknown> {
    return { name: this.name, ...this.opts };
  }
}
