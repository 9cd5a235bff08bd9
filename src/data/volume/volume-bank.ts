/**
 * VolumeBank: PdCR's natural patches for volumes — boxes cut from other volumes of the same data
 * set, each volume normalised on its own as the model's card says, in model space (the card's axes and
 * spacing). Stored in one file: magic, a JSON header line with provenance, then count boxes of
 * D x H x W float32 (little-endian).
 */
import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import { z } from "zod";
import { fail } from "../../errors.js";
import { boxCells, cubeSide, type Size3 } from "../../explain/volume/box-size.js";
import type { VolumeCard } from "../../model/volume-card.js";
import { VolumeNormalisation } from "../../model/volume-card.js";
import type { SliceSetting } from "../../model/volume-model.js";
import { ioProblem, writeFileAtomic } from "../../util/atomic.js";
import { readFileBoundedAsync } from "../../util/read.js";
import { Rng } from "../../util/rng.js";
import { STREAM } from "../../util/streams.js";
import { VERSION } from "../../version.js";
import { readManifest, volumeCasesInSplits } from "../manifest.js";
import { readCaseImage } from "./case-files.js";
import { SPACING_TOLERANCE } from "./model-space.js";
import { intoModelSpace, volumeNormaliser, volumeSha } from "./volume-case.js";

export const VOLUMEBANK_MAGIC = "SEGCAUSE-VOLUMEBANK-1\n";
const MAGIC = VOLUMEBANK_MAGIC;

const count = z.number().int().nonnegative();
const side = z.number().int().min(1).max(256);
const HeaderSchema = z
  .object({
    format: z.literal("segcause.volumebank/1"),
    /** box side in voxels, for cubic boxes (must equal the explain block size) */
    size: side.optional(),
    /** box size in voxels (D, H, W) when it differs per axis (blocks in mm on an anisotropic model space) */
    box: z.tuple([side, side, side]).optional(),
    count,
    perVolume: count,
    seed: z.number().int(),
    normalisation: VolumeNormalisation,
    spacing: z.tuple([z.number(), z.number(), z.number()]),
    /** a bank for a 2D model slice by slice: boxes cut in its slice space (the slice axis last), at the volumes' own spacing */
    sliceAxis: z.enum(["i", "j", "k"]).optional(),
    /** sha256 of the voxels and grid of each source (as a volume Case's imageSha256) */
    sources: z.array(z.object({ name: z.string(), sha256: z.string(), patches: count })),
    createdWith: z.string(),
  })
  .refine((h) => (h.size === undefined) !== (h.box === undefined), "a bank states either size (cubic boxes) or box [D, H, W]");
export type VolumeBankHeader = z.infer<typeof HeaderSchema>;

export class VolumeBank {
  constructor(
    readonly header: VolumeBankHeader,
    /** count x size³ values in normalised units, each box (D, H, W) with W fastest */
    readonly data: Float32Array,
    /** patch i of this bank is patch index[i] of the file (after removing a source) */
    private readonly index?: Uint32Array,
  ) {}

  /** box size in voxels (D, H, W) */
  get box(): Size3 {
    const h = this.header;
    return h.box ?? [h.size!, h.size!, h.size!];
  }
  get count(): number {
    return this.index ? this.index.length : this.header.count;
  }

  patch(i: number): Float32Array {
    const n = boxCells(this.box);
    const j = this.index ? this.index[i] : i;
    return this.data.subarray(j * n, (j + 1) * n);
  }

  /** The bank without the patches of the source whose voxels hash to `sha` (the volume explained). */
  without(sha: string): { bank: VolumeBank; removed: number } {
    let at = 0;
    const keep: number[] = [];
    let removed = 0;
    for (const s of this.header.sources) {
      for (let k = 0; k < s.patches; k++) s.sha256 === sha ? removed++ : keep.push(at + k);
      at += s.patches;
    }
    if (removed === 0) return { bank: this, removed };
    return { bank: new VolumeBank(this.header, this.data, Uint32Array.from(keep)), removed };
  }

  describe(): Record<string, unknown> {
    const { format, size, box, count, perVolume, seed, normalisation, spacing, sliceAxis } = this.header;
    return {
      kind: "volume-bank",
      format,
      ...(box ? { box } : { size }),
      count,
      used: this.count,
      perVolume,
      seed,
      normalisation,
      spacing,
      ...(sliceAxis ? { sliceAxis } : {}),
      sources: this.header.sources.length,
    };
  }

  async save(path: string): Promise<void> {
    const head = Buffer.from(`${MAGIC}${JSON.stringify(this.header)}\n`);
    const body = Buffer.from(this.data.buffer, this.data.byteOffset, this.data.byteLength);
    // as a 2D bank's save: the folder is made, and a write that fails is one line, not an internal error
    try {
      await mkdir(dirname(path), { recursive: true });
      await writeFileAtomic(path, Buffer.concat([head, body]));
    } catch (e) {
      const problem = ioProblem(e);
      if (problem) throw problem;
      fail(
        `cannot write volume bank ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
        "give --out a file path you can write to",
      );
    }
  }

  static async load(path: string): Promise<VolumeBank> {
    const bytes = await readFileBoundedAsync(path, {
      what: "volume bank",
      kind: "bank",
      hint: "build one with `segcause bank build --images manifest.json --model m.onnx` on a volume data set",
    });
    const hint = "build the bank again with `segcause bank build` on a volume manifest";
    if (bytes.subarray(0, MAGIC.length).toString() !== MAGIC) fail(`${path} is not a segcause volume bank`, hint);
    const nl = bytes.indexOf(10, MAGIC.length);
    if (nl < 0) fail(`${path} is truncated (no header)`, hint);
    let header: unknown;
    try {
      header = JSON.parse(bytes.subarray(MAGIC.length, nl).toString());
    } catch {
      fail(`${path}: bank header is not JSON`, hint);
    }
    const parsed = HeaderSchema.safeParse(header);
    if (!parsed.success) fail(`${path}: bank header is invalid (${parsed.error.issues[0].path.join(".")}: ${parsed.error.issues[0].message})`, hint);
    const h = parsed.data;
    const fromSources = h.sources.reduce((a, s) => a + s.patches, 0);
    if (fromSources !== h.count) fail(`${path}: its sources hold ${fromSources} patches, its header says ${h.count}`, hint);
    const n = h.count * boxCells(h.box ?? [h.size!, h.size!, h.size!]);
    if (bytes.length - nl - 1 !== n * 4) fail(`${path} holds ${bytes.length - nl - 1} bytes of patches, its header says ${n * 4}`, hint);
    const data = new Float32Array(n);
    Buffer.from(data.buffer).set(bytes.subarray(nl + 1));
    return new VolumeBank(h, data);
  }
}

export interface VolumeBankOptions {
  /** box size in model-space voxels (D, H, W) */
  box: Size3;
  perVolume: number;
  seed: number;
  splits: string[];
  /** a 2D model slice by slice: boxes in its slice space; every volume must have the same spacing (the bank's) */
  slicing?: SliceSetting;
}

/**
 * Cuts `perVolume` random boxes from each volume of the manifest's splits, each volume normalised
 * on its own by the card's rule, in model space (reoriented and resampled to the card's axes and spacing).
 */
export async function buildVolumeBank(manifestPath: string, card: VolumeCard, o: VolumeBankOptions): Promise<VolumeBank> {
  const cases = volumeCasesInSplits(readManifest(manifestPath), o.splits);
  const rng = new Rng(o.seed, STREAM.volumeBank);
  const [sd, sh, sw] = o.box;
  const cells = sd * sh * sw;
  const chunks: Float32Array[] = [];
  const sources: VolumeBankHeader["sources"] = [];
  let spacing = card.input.spacing;
  for (const [n, c] of cases.entries()) {
    const read = await readCaseImage(c);
    // boxes are cut in model space (the card's axes and spacing), as explain sees volumes
    const v = intoModelSpace(read, card, c.image, o.slicing).modelVolume;
    if (o.slicing && n === 0) spacing = [...v.spacing];
    if (o.slicing && v.spacing.some((s, a) => Math.abs(s - spacing[a]) > SPACING_TOLERANCE * spacing[a]))
      fail(
        `${c.image} has ${v.spacing.join("x")} mm voxels, the bank's first volume ${spacing.join("x")} mm: a 2D model's slices are not resampled, so its bank needs one spacing`,
        "build the bank from volumes of one spacing (e.g. one data set's split)",
      );
    const [nx, ny, nz] = v.dims;
    if (nx < sw || ny < sh || nz < sd)
      fail(
        `${c.image} (${v.dims.join("x")} voxels in model space) is smaller than a box of ${sw}x${sh}x${sd} voxels (i x j x k)`,
        "use a smaller --patch-size",
      );
    const norm = volumeNormaliser(v.data, card.input.normalisation);
    const out = new Float32Array(o.perVolume * cells);
    for (let p = 0; p < o.perVolume; p++) {
      const [x0, y0, z0] = [rng.int(nx - sw + 1), rng.int(ny - sh + 1), rng.int(nz - sd + 1)];
      for (let dz = 0; dz < sd; dz++)
        for (let dy = 0; dy < sh; dy++)
          for (let dx = 0; dx < sw; dx++) {
            out[p * cells + (dz * sh + dy) * sw + dx] = norm(v.data[((z0 + dz) * ny + y0 + dy) * nx + x0 + dx]);
          }
    }
    chunks.push(out);
    sources.push({ name: c.id, sha256: volumeSha(read), patches: o.perVolume });
  }
  const data = new Float32Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) data.set(c, at), (at += c.length);
  const header: VolumeBankHeader = {
    format: "segcause.volumebank/1",
    // cubic boxes keep the header banks had before boxes could differ per axis
    ...(cubeSide(o.box) !== undefined ? { size: sd } : { box: o.box }),
    count: cases.length * o.perVolume,
    perVolume: o.perVolume,
    seed: o.seed,
    normalisation: card.input.normalisation,
    spacing,
    ...(o.slicing ? { sliceAxis: o.slicing.axis } : {}),
    sources,
    createdWith: `segcause ${VERSION}`,
  };
  return new VolumeBank(header, data);
}

/**
 * A bank cut under another normalisation, spacing or slice axis would paste out-of-range or turned
 * content: refused. `slicing`: the run's 2D model slice by slice (its axis and file), else a 3D model.
 */
export function checkBankForCard(bank: VolumeBank, card: VolumeCard, path: string, slicing?: { axis: "i" | "j" | "k"; modelPath: string }): void {
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  const axis = slicing?.axis;
  if (bank.header.sliceAxis !== axis)
    fail(
      `bank ${path} was cut ${bank.header.sliceAxis ? `for a 2D model slicing across axis ${bank.header.sliceAxis}` : "for a 3D model"}, this run is ${axis ? `a 2D model slicing across axis ${axis}` : "a 3D model"}`,
      `build the bank again with \`segcause bank build --model ${slicing ? `${slicing.modelPath} --slice-axis ${axis}` : "<this model>"}\``,
    );
  // the spacing within the tolerance buildVolumeBank and model space accept (a 2D model's card takes each volume's own)
  const want = card.input.spacing;
  const spacingDiffers = bank.header.spacing.some((s, a) => Math.abs(s - want[a]) > SPACING_TOLERANCE * want[a]);
  if (!same(bank.header.normalisation, card.input.normalisation) || spacingDiffers)
    fail(
      `bank ${path} was cut with ${JSON.stringify(bank.header.normalisation)} at ${bank.header.spacing.join("x")} mm, the model's card says ${JSON.stringify(card.input.normalisation)} at ${card.input.spacing.join("x")} mm`,
      "build the bank again with `segcause bank build --model <this model>`",
    );
}
