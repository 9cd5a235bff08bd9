/**
 * PatchBank: natural patches cropped from images other than the one explained (PdCR's
 * intervention distribution). Stored in one compact file: magic, a JSON header with provenance,
 * then count x size x size x 3 bytes of RGB.
 */
import { mkdir } from "node:fs/promises";
import { basename, dirname } from "node:path";
import { z } from "zod";
import { fail } from "../errors.js";
import { ResizeFilter } from "../model/card.js";
import { ioProblem, writeFileAtomic } from "../util/atomic.js";
import { sha256 } from "../util/hash.js";
import { parseJson, readFileBoundedAsync } from "../util/read.js";
import { Rng } from "../util/rng.js";
import { VERSION } from "../version.js";
import { type Case, caseImageHashes } from "./case.js";
import { decodeImage, IMAGE_FORMATS, readInput } from "./image.js";

export const PATCHBANK_MAGIC = "SEGCAUSE-PATCHBANK-1\n";
const MAGIC = PATCHBANK_MAGIC;

const count = z.number().int().nonnegative();
const HeaderSchema = z
  .object({
    format: z.literal("segcause.patchbank/1"),
    patchSize: z.number().int().min(1).max(4096),
    count,
    perImage: count,
    seed: z.number().int(),
    /** every source image is resized to this before cropping (the model's input size) */
    resizedTo: z.object({ height: z.number().int().positive(), width: z.number().int().positive(), filter: ResizeFilter }),
    sources: z.array(z.object({ name: z.string(), sha256: z.string(), patches: count })),
    createdWith: z.string(),
  })
  .passthrough();
export type PatchBankHeader = z.infer<typeof HeaderSchema>;

export class PatchBank {
  constructor(
    readonly header: PatchBankHeader,
    /** RGB bytes, patch-major then row, col, channel */
    readonly pixels: Uint8Array,
    readonly sha256: string,
  ) {}

  get count(): number {
    return this.header.count;
  }
  get patchSize(): number {
    return this.header.patchSize;
  }

  /**
   * Whether each source was cropped from the case's image (or the image it was derived from): such
   * patches would replace a block by a piece of the same image. A bank may list one file twice.
   */
  sourcesOf(kase: Case): boolean[] {
    const own = caseImageHashes(kase);
    return this.header.sources.map((s) => own.includes(s.sha256));
  }

  private grey?: boolean;
  /** every patch has R = G = B (cropped from grey images) */
  get isGrey(): boolean {
    if (this.grey === undefined) {
      const p = this.pixels;
      let grey = true;
      for (let i = 0; i < p.length && grey; i += 3) grey = p[i] === p[i + 1] && p[i] === p[i + 2];
      this.grey = grey;
    }
    return this.grey;
  }

  /**
   * All patches in a model's input space (CHW per patch), computed once so that pasting a
   * patch is a plain copy. `affine(c)` gives input = pixel*a + b.
   */
  toInputSpace(channels: 1 | 3, affine: (c: number) => [number, number]): Float32Array {
    const P = this.patchSize;
    const plane = P * P;
    const out = new Float32Array(this.count * channels * plane);
    const coef = Array.from({ length: channels }, (_, c) => affine(c));
    for (let k = 0; k < this.count; k++) {
      const src = k * plane * 3;
      const dst = k * channels * plane;
      for (let i = 0; i < plane; i++) {
        const r = this.pixels[src + i * 3],
          g = this.pixels[src + i * 3 + 1],
          b = this.pixels[src + i * 3 + 2];
        if (channels === 3) {
          out[dst + i] = r * coef[0][0] + coef[0][1];
          out[dst + plane + i] = g * coef[1][0] + coef[1][1];
          out[dst + 2 * plane + i] = b * coef[2][0] + coef[2][1];
        } else {
          out[dst + i] = Math.round(0.299 * r + 0.587 * g + 0.114 * b) * coef[0][0] + coef[0][1];
        }
      }
    }
    return out;
  }

  async save(path: string): Promise<void> {
    const head = Buffer.from(JSON.stringify(this.header), "utf8");
    const len = Buffer.alloc(4);
    len.writeUInt32LE(head.length);
    try {
      await mkdir(dirname(path), { recursive: true });
      await writeFileAtomic(path, Buffer.concat([Buffer.from(MAGIC, "latin1"), len, head, this.pixels]));
    } catch (e) {
      const problem = ioProblem(e);
      if (problem) throw problem;
      fail(
        `cannot write patch bank ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
        "give --out a file path you can write to",
      );
    }
  }

  static async load(path: string): Promise<PatchBank> {
    const rebuild = "rebuild it with `segcause bank build`";
    const buf = await readFileBoundedAsync(path, { what: "patch bank", kind: "bank", hint: "build one with `segcause bank build`" });
    if (buf.length < MAGIC.length + 4 || buf.toString("latin1", 0, MAGIC.length) !== MAGIC)
      fail(`${path} is not a segcause patch bank`, "build one with `segcause bank build`");
    const len = buf.readUInt32LE(MAGIC.length);
    const start = MAGIC.length + 4;
    if (start + len > buf.length) fail(`patch bank ${path}: its header length ${len} runs past the end of the file (${buf.length} bytes)`, rebuild);
    const raw = parseJson(buf.toString("utf8", start, start + len), `${path}'s header`, { what: "patch bank", kind: "bank", hint: rebuild });
    const parsed = HeaderSchema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      fail(`patch bank ${path}: header: ${issue.path.join(".") || "(root)"}: ${issue.message}`, rebuild);
    }
    const header = parsed.data;
    const pixels = new Uint8Array(buf.subarray(start + len));
    const P = header.patchSize;
    const want = header.count * P * P * 3;
    const what = `${header.count} patch${header.count === 1 ? "" : "es"} of ${P}x${P} (${want} bytes)`;
    if (pixels.length < want) fail(`patch bank ${path} is truncated: ${pixels.length} bytes of pixels for ${what}`, rebuild);
    if (pixels.length > want)
      fail(`patch bank ${path} holds ${pixels.length} bytes of pixels, ${pixels.length - want} more than its header's ${what}`, rebuild);
    return new PatchBank(header, pixels, sha256(buf));
  }
}

export interface BankBuildOptions {
  /** size the source images are resized to first: the model's input size */
  height: number;
  width: number;
  filter?: ResizeFilter;
  patchSize?: number;
  perImage?: number;
  seed?: number;
  onImage?: (done: number, total: number) => void;
}

/**
 * Crops `perImage` patches per image on the aligned grid (without replacement within an image,
 * as the paper's script does), after resizing each image to the model size.
 */
export async function buildPatchBank(images: string[], opts: BankBuildOptions): Promise<PatchBank> {
  const P = opts.patchSize ?? 8;
  const perImage = opts.perImage ?? 100;
  const seed = opts.seed ?? 0;
  const filter = opts.filter ?? "bilinear";
  if (images.length === 0)
    fail("no images to build the patch bank from", `pass a folder with images (${IMAGE_FORMATS}) or a manifest with non-test cases`);
  for (const [k, v] of [
    ["height", opts.height],
    ["width", opts.width],
  ] as const)
    if (!Number.isInteger(v) || v < 1)
      fail(`the bank's image ${k} must be a positive integer, got ${v}`, "pass --size H,W or a --model whose card gives the input size");
  if (!Number.isInteger(P) || P < 1 || P > Math.min(opts.height, opts.width))
    fail(`patch size ${P} does not fit a ${opts.height}x${opts.width} image`, "use a patch size such as 8");
  if (!Number.isInteger(perImage) || perImage < 1) fail(`patches per image must be a positive integer, got ${perImage}`, "use --per-image 100");
  const rowsG = Math.floor(opts.height / P),
    colsG = Math.floor(opts.width / P);
  const chunks: Uint8Array[] = [];
  const sources: PatchBankHeader["sources"] = [];
  for (let i = 0; i < images.length; i++) {
    const bytes = await readInput(images[i]);
    const img = await decodeImage(bytes, images[i], { channels: "rgb", height: opts.height, width: opts.width, resize: filter });
    const picks = new Rng(seed, i).sampleWithoutReplacement(rowsG * colsG, perImage);
    for (const g of picks) {
      const r0 = Math.floor(g / colsG) * P,
        c0 = (g % colsG) * P;
      const patch = new Uint8Array(P * P * 3);
      for (let y = 0; y < P; y++) patch.set(img.data.subarray(((r0 + y) * opts.width + c0) * 3, ((r0 + y) * opts.width + c0 + P) * 3), y * P * 3);
      chunks.push(patch);
    }
    sources.push({ name: basename(images[i]), sha256: sha256(bytes), patches: picks.length });
    opts.onImage?.(i + 1, images.length);
  }
  const pixels = new Uint8Array(chunks.length * P * P * 3);
  chunks.forEach((c, k) => pixels.set(c, k * P * P * 3));
  const header: PatchBankHeader = {
    format: "segcause.patchbank/1",
    patchSize: P,
    count: chunks.length,
    perImage,
    seed,
    resizedTo: { height: opts.height, width: opts.width, filter },
    sources,
    createdWith: `segcause ${VERSION}`,
  };
  return new PatchBank(header, pixels, sha256(pixels));
}
