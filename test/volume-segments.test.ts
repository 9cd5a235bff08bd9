/**
 * Which segments of a DICOM SEG make the structure: one reader (readStructure) for explain and for
 * data sets, one rule — a SEG of one segment needs nothing, a SEG of several needs --label (segment
 * numbers; a list is their union). On the shared data's CT series and its real liver SEG, and on a
 * two-segment SEG written here over the same series (the shared data holds no multi-segment SEG).
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { readManifest, volumeCasesInSplits } from "../src/data/manifest.js";
import { readCaseImage, readCaseMask } from "../src/data/volume/case-files.js";
import { readDicomVolume } from "../src/data/volume/dicom/index.js";
import { writeNifti } from "../src/data/volume/nifti-write.js";
import type { Volume } from "../src/data/volume/volume.js";
import { loadVolumeCase, readStructure } from "../src/data/volume/volume-case.js";
import { SegcauseError } from "../src/errors.js";
import { explainVolumeBlocks } from "../src/explain/volume/engine.js";
import { VolumeModel } from "../src/model/volume-model.js";
import { AFFINE, N, ROI, writeCausalFixture } from "./helpers/causal3d.js";
import { segcause } from "./helpers/cli.js";
import { writeBinarySeg } from "./helpers/seg-writer.js";
import { tmp } from "./helpers/tiny.js";

const DATA = join(process.env.SEGCAUSE_DATA ?? join(import.meta.dirname, "..", "..", "shared", "data"), "dicom");
const have = existsSync(join(DATA, "index.json"));
if (!have) console.warn(`DICOM SEG segment tests skipped: ${DATA}/index.json not found (set SEGCAUSE_DATA to the shared data folder)`);

const CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2";
const PLANE = 512 * 512;

/** A binary SEG over `ct`: segment 1 "Upper" marks the first 10 rows of slice 0, segment 2 "Band" the first 20 rows of slice 1. */
function twoSegmentSeg(ct: Volume, path: string): void {
  const src = ct.source as Extract<Volume["source"], { kind: "dicom" }>;
  const frame = (slice: number, segment: number, rows: number) => ({
    sopClassUid: src.sopClassUid ?? CT_IMAGE_STORAGE,
    sopInstanceUid: src.sopInstanceUids[slice]!,
    segment,
    rows,
  });
  writeBinarySeg(path, {
    seriesUid: src.seriesInstanceUid,
    rows: 512,
    columns: 512,
    segments: [
      { number: 1, label: "Upper" },
      { number: 2, label: "Band" },
    ],
    frames: [frame(0, 1, 10), frame(1, 2, 20)],
  });
}

const perSlice = (mask: Uint8Array) => [0, 1, 2].map((k) => mask.subarray(k * PLANE, (k + 1) * PLANE).reduce((a, b) => a + b, 0));

async function refusal(p: Promise<unknown>): Promise<string> {
  const e = await p.catch((x: unknown) => x);
  expect(e).toBeInstanceOf(SegcauseError);
  return (e as SegcauseError).oneLine();
}

describe.skipIf(!have)("the segments of a DICOM SEG that make the structure", () => {
  let dir: string, ct: Volume, seg2: string;
  const ctDir = join(DATA, "ct-liver-seg");
  const liver = join(DATA, "codecs", "liver.dcm");

  beforeAll(async () => {
    dir = tmp();
    ct = await readDicomVolume(ctDir);
    seg2 = join(dir, "two-segments.dcm");
    twoSegmentSeg(ct, seg2);
  });

  it("a SEG of one segment needs no --label; --label 1 names it, another number is refused with the segments it holds", async () => {
    const all = await readStructure(liver, ct, ctDir);
    expect(all.labels).toEqual([1]);
    expect(all.mask.some((v) => v)).toBe(true);
    const one = await readStructure(liver, ct, ctDir, "1");
    expect(one.mask).toEqual(all.mask);
    expect(await refusal(readStructure(liver, ct, ctDir, "2"))).toBe(
      `DICOM SEG ${liver} has no segment 2; it holds 1 "Liver" (pass --label N with the segment number, or --label 1,2 for one structure made of several segments)`,
    );
  });

  it("a SEG of several segments is refused without --label, listing them; --label picks one, a list is their union", async () => {
    expect(await refusal(readStructure(seg2, ct, ctDir))).toBe(
      `DICOM SEG ${seg2} holds 2 segments: 1 "Upper", 2 "Band" (pass --label N with the segment number, or --label 1,2 for one structure made of several segments)`,
    );
    const band = await readStructure(seg2, ct, ctDir, "2");
    expect(band.labels).toEqual([2]);
    // frames are matched to slices by SOP Instance UID: segment 2 is on slice 1 only
    expect(perSlice(band.mask)).toEqual([0, 20 * 512, 0]);
    const both = await readStructure(seg2, ct, ctDir, "1,2");
    expect(both.labels).toEqual([1, 2]);
    expect(perSlice(both.mask)).toEqual([10 * 512, 20 * 512, 0]);
    // the checkpoint keys see which segments made the mask
    expect(new Set([band.maskSha256, both.maskSha256]).size).toBe(2);
  });

  it("dataset init follows the same rule: refused without --label, and with it the manifest records the labels its readers use", async () => {
    const root = join(dir, "ds");
    mkdirSync(join(root, "images", "ct"), { recursive: true });
    mkdirSync(join(root, "segs"));
    for (const f of readdirSync(ctDir)) copyFileSync(join(ctDir, f), join(root, "images", "ct", f));
    copyFileSync(seg2, join(root, "segs", "ct.dcm"));
    const args = ["dataset", "init", "--images", join(root, "images"), "--masks", join(root, "segs")];
    const refused = segcause(...args, "--out", join(root, "refused.json"));
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim().split("\n")).toHaveLength(1);
    expect(refused.stderr).toMatch(/holds 2 segments: 1 "Upper", 2 "Band"/);
    expect(existsSync(join(root, "refused.json"))).toBe(false);

    const out = join(root, "manifest.json");
    const r = segcause(...args, "--label", "1,2", "--out", out);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(readFileSync(out, "utf8")).cases[0]).toMatchObject({ id: "ct", mask: "segs/ct.dcm", labels: [1, 2] });
    const [c] = volumeCasesInSplits(readManifest(out), ["test"]);
    expect(c!.labels).toEqual([1, 2]);
    const m = await readCaseMask(c!, await readCaseImage(c!));
    expect(m.labels).toEqual([1, 2]);
    expect(perSlice(m.mask)).toEqual([10 * 512, 20 * 512, 0]);
  });
});

describe("the labels that made a mask are part of a run's identity", () => {
  it("a run with --label 1 does not resume from the checkpoint of the same label map read with --label 1,2", async () => {
    const dir = tmp();
    const { model, image } = await writeCausalFixture(dir);
    // label 1 on the RoI's half of the box, label 2 on the other half
    const labels = join(dir, "labels.nii.gz");
    await writeNifti(labels, { dims: [N, N, N], affine: AFFINE, data: Float32Array.from({ length: N ** 3 }, (_, i) => (i % N < 8 ? 1 : 2)) });
    const checkpointPath = join(dir, "labels.checkpoint.json");
    const m = await VolumeModel.load(model);
    try {
      const run = async (label: string) =>
        explainVolumeBlocks(
          m,
          await loadVolumeCase(m, image, { mask: labels, label }),
          { roi: ROI, reference: "ground-truth" },
          {
            method: "zero",
            block: [8, 8, 8],
            estimator: { screen: 1, samples: 0, tau: 0 },
            intervention: { kind: "constant", value: 0, describe: {} },
            settings: {},
            checkpointPath,
          },
        );
      await run("1,2");
      const other = await run("1");
      expect(other.notes.some((n) => n.startsWith("resumed from checkpoint"))).toBe(false);
      expect(other.notes.some((n) => /held 7 samples of a run with other settings/.test(n))).toBe(true);
      expect((await run("1")).notes).toContain("resumed from checkpoint: 7 samples reused");
    } finally {
      await m.release();
    }
  });
});
