/**
 * DICOM reader: decoders against uncompressed twins, series order by position (not file name), gaps
 * and mixed series refused, SEG frames placed by SOP Instance UID, hostile headers refused before
 * allocation. Needs ../shared/data/dicom (or SEGCAUSE_DATA); skipped with a message when absent.
 */

import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { deflateRawSync } from "node:zlib";
import sharp from "sharp";
import { afterAll, describe, expect, it } from "vitest";
import {
  PARAMETRIC_MAP_SOP_CLASS,
  readDicomPixels,
  readDicomSegMask,
  readDicomVolume,
  transferSyntax,
  writeDicomParametricMap,
} from "../src/data/volume/dicom/index.js";
import type { Volume } from "../src/data/volume/volume.js";
import { SegcauseError } from "../src/errors.js";
import { writeBinarySeg } from "./helpers/seg-writer.js";

const ROOT = join(import.meta.dirname, "..");
const DATA = join(process.env.SEGCAUSE_DATA ?? join(ROOT, "..", "shared", "data"), "dicom");
const have = existsSync(join(DATA, "index.json"));
if (!have) console.warn(`DICOM tests skipped: ${DATA}/index.json not found (set SEGCAUSE_DATA to the shared data folder)`);
// the test reads tags independently of the reader under test
const dicomParser = createRequire(import.meta.url)("dicom-parser") as typeof import("dicom-parser");
// dcmjs wraps a JPEG stream as a .50 file (no such fixture is shipped); sharp is the reference decoder
const dcmjs = createRequire(import.meta.url)("dcmjs") as {
  data: {
    DicomDict: new (meta: object) => { dict: object; write(): ArrayBuffer };
    DicomMetaDictionary: { denaturalizeDataset(d: object): object; uid(): string };
  };
};

const tmp = mkdtempSync(join(tmpdir(), "segcause-dicom-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const tmpDir = () => {
  const d = join(tmp, String(n++));
  mkdirSync(d);
  return d;
};

interface IndexEntry {
  file: string;
  transfer_syntax: string;
  size: [number, number, number];
  modality: string;
}
const index: IndexEntry[] = have ? JSON.parse(readFileSync(join(DATA, "index.json"), "utf8")).files : [];

/** The uncompressed twin of a compressed file, by the naming of index.json's entries. */
function twinOf(file: string): string | undefined {
  const b = basename(file);
  if (file.startsWith("multiframe/CT0012.")) return "multiframe/CT0012.explicit_little_endian.dcm";
  if (b.startsWith("emri_small_")) return "codecs/emri_small.dcm";
  if (b.startsWith("liver_")) return "codecs/liver.dcm";
  if (b === "693_J2KR.dcm") return "codecs/693_UNCR.dcm";
  return undefined;
}
const UNCOMPRESSED = new Set(["Explicit VR Little Endian", "Implicit VR Little Endian"]);

function refusal(e: unknown): string {
  expect(e).toBeInstanceOf(SegcauseError);
  const line = (e as SegcauseError).oneLine();
  expect(line).not.toContain("\n");
  return line;
}
async function refused(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return refusal(e);
  }
  throw new Error("expected a refusal");
}

/** Position (LPS) of a single-frame file, read with dicom-parser directly. */
function tagsOf(path: string) {
  const ds = dicomParser.parseDicom(new Uint8Array(readFileSync(path)));
  return { ds, z: ds.floatString("x00200032", 2)!, uid: ds.string("x00080018")! };
}

/** JPEG-LS NEAR parameter of a frame (SOS: length, Ns, Ns x (Ci, Tmi), NEAR). */
function jpegLsNear(frame: Uint8Array): number {
  for (let i = 0; i + 1 < frame.length; i++) if (frame[i] === 0xff && frame[i + 1] === 0xda) return frame[i + 5 + 2 * frame[i + 4]!]!;
  throw new Error("no SOS marker");
}

describe.skipIf(!have)("DICOM decoders: every compressed file equals its uncompressed twin", () => {
  const compressed = index.filter((e) => (e.file.startsWith("codecs/") || e.file.startsWith("multiframe/")) && !UNCOMPRESSED.has(e.transfer_syntax));
  it("index.json pairs every compressed file except the JPEG-lossless NM image and the refused .51 with a twin", () => {
    const unpaired = compressed.filter((e) => !twinOf(e.file)).map((e) => e.file);
    expect(unpaired).toEqual(["codecs/JPEG-LL.dcm"]);
  });
  for (const e of compressed.filter((x) => twinOf(x.file) && !x.file.includes(".51."))) {
    it(`${e.file} (${e.transfer_syntax})`, async () => {
      const got = await readDicomPixels(join(DATA, e.file));
      const want = await readDicomPixels(join(DATA, twinOf(e.file)!));
      expect([got.format.columns, got.format.rows, got.frames.length]).toEqual(e.size);
      expect(got.frames.length).toBe(want.frames.length);
      if (e.file.endsWith(".81.dcm")) {
        // near-lossless: every sample within the encoder's NEAR bound, and the bound is not zero
        const near = jpegLsNear(dicomParser.readEncapsulatedPixelDataFromFragments(got.file.dataSet, got.format.element, 0, 1));
        expect(near).toBeGreaterThan(0);
        let max = 0;
        got.frames.forEach((fr, f) => fr.forEach((v, i) => (max = Math.max(max, Math.abs(v - want.frames[f]![i]!)))));
        expect(max).toBeGreaterThan(0);
        expect(max).toBeLessThanOrEqual(near);
      } else {
        // bit-exact; no one-pixel JPEG-lossless discrepancy shows on these files
        for (let f = 0; f < got.frames.length; f++) expect(got.frames[f]!.every((v, i) => v === want.frames[f]![i])).toBe(true);
      }
    });
  }
  it("JPEG lossless NM image decodes to its stated size with 16-bit values", async () => {
    const got = await readDicomPixels(join(DATA, "codecs/JPEG-LL.dcm"));
    expect([got.format.columns, got.format.rows, got.frames.length]).toEqual([256, 1024, 1]);
    expect(got.frames[0]!.reduce((m, v) => Math.max(m, v), 0)).toBeGreaterThan(255);
  });
  it("JPEG Baseline (.50), 8-bit: decodes exactly as libjpeg-turbo (sharp) decodes the same stream", async () => {
    // a real CT slice windowed to 8 bits, JPEG-encoded, wrapped as an encapsulated .50 file
    const ct = await readDicomPixels(join(DATA, "ct-liver-seg/01.dcm"));
    const px = Uint8Array.from(ct.frames[0]!, (v) => Math.max(0, Math.min(255, Math.round(((v - 1024 + 160) / 400) * 255))));
    const jpg = await sharp(Buffer.from(px), { raw: { width: 512, height: 512, channels: 1 } })
      .toColourspace("b-w")
      .jpeg({ quality: 85 })
      .toBuffer();
    const ref = await sharp(jpg).extractChannel(0).raw().toBuffer();
    const D = dcmjs.data.DicomMetaDictionary;
    const uid = D.uid();
    const meta = {
      FileMetaInformationVersion: [new Uint8Array([0, 1]).buffer],
      MediaStorageSOPClassUID: "1.2.840.10008.5.1.4.1.1.7",
      MediaStorageSOPInstanceUID: uid,
      TransferSyntaxUID: "1.2.840.10008.1.2.4.50",
      ImplementationClassUID: "2.25.1",
    };
    const body = {
      SOPClassUID: "1.2.840.10008.5.1.4.1.1.7",
      SOPInstanceUID: uid,
      Modality: "OT",
      SamplesPerPixel: 1,
      PhotometricInterpretation: "MONOCHROME2",
      Rows: 512,
      Columns: 512,
      BitsAllocated: 8,
      BitsStored: 8,
      HighBit: 7,
      PixelRepresentation: 0,
      PixelData: [jpg.buffer.slice(jpg.byteOffset, jpg.byteOffset + jpg.length)],
      _vrMap: { PixelData: "OB" },
    };
    const dict = new dcmjs.data.DicomDict(D.denaturalizeDataset(meta));
    dict.dict = D.denaturalizeDataset(body);
    const p = join(tmpDir(), "baseline.dcm");
    writeFileSync(p, Buffer.from(dict.write()));
    const got = await readDicomPixels(p);
    expect(got.file.transferSyntax.uid).toBe("1.2.840.10008.1.2.4.50");
    expect(got.format.element.encapsulatedPixelData).toBe(true);
    // the encoder was lossy (so the comparison is with a decoder, not with the original pixels)
    expect(px.some((v, i) => v !== ref[i])).toBe(true);
    expect(got.frames[0]!.every((v, i) => v === ref[i])).toBe(true);
  });
  it("Deflated Explicit VR Little Endian (.1.2.1.99) reads as its explicit little-endian original", async () => {
    // rebuild liver.dcm with its data set deflated and the transfer syntax in the meta group changed
    const orig = new Uint8Array(readFileSync(join(DATA, "codecs/liver.dcm")));
    const ds = dicomParser.parseDicom(orig);
    const meta = Object.values(ds.elements).filter((e) => e.tag.startsWith("x0002"));
    const metaEnd = Math.max(...meta.map((e) => e.dataOffset + e.length));
    const ts = ds.elements.x00020010!;
    const uid = Buffer.from("1.2.840.10008.1.2.1.99");
    const tsElement = Buffer.concat([Buffer.from([0x02, 0x00, 0x10, 0x00]), Buffer.from("UI"), Buffer.from([uid.length, 0]), uid]);
    const metaBody = Buffer.concat([
      Buffer.from(orig.subarray(144, ts.dataOffset - 8)),
      tsElement,
      Buffer.from(orig.subarray(ts.dataOffset + ts.length, metaEnd)),
    ]);
    const head = Buffer.from(orig.subarray(0, 144));
    head.writeUInt32LE(metaBody.length, 140);
    const p = join(tmpDir(), "deflated.dcm");
    writeFileSync(p, Buffer.concat([head, metaBody, deflateRawSync(orig.subarray(metaEnd))]));
    const got = await readDicomPixels(p);
    const want = await readDicomPixels(join(DATA, "codecs/liver.dcm"));
    expect(got.file.transferSyntax.uid).toBe("1.2.840.10008.1.2.1.99");
    expect(got.frames.length).toBe(3);
    for (let f = 0; f < 3; f++) expect(got.frames[f]!.every((v, i) => v === want.frames[f]![i])).toBe(true);
  });
  it("JPEG Extended (.51) is refused by name", async () => {
    const line = await refused(readDicomVolume(join(DATA, "multiframe/CT0012.fragmented_no_bot_jpeg_baseline.51.dcm")));
    expect(line).toContain("JPEG Extended (Process 2 & 4) 1.2.840.10008.1.2.4.51 is not supported");
    expect(transferSyntax("1.2.840.10008.1.2.4.51").codec).toBeUndefined();
  });
  it("the float Parametric Map reads its Float Pixel Data", async () => {
    const v = await readDicomVolume(join(DATA, "codecs/parametric_map_float.dcm"));
    expect(v.dims).toEqual([128, 128, 1]);
    expect(v.data.some((x) => !Number.isInteger(x))).toBe(true);
  });
});

describe.skipIf(!have)("DICOM series", () => {
  for (const study of ["study1", "study2", "study3"]) {
    it(`mr-hippocrop/${study}: slices ordered by position, not by (shuffled) file name`, async () => {
      const src = join(DATA, "mr-hippocrop", study);
      const files = readdirSync(src).sort();
      const entry = index.find((e) => e.file === `mr-hippocrop/${study}/1.dcm`)!;
      // random names: the order of names says nothing about the order of slices
      const dir = tmpDir();
      const shuffled = files.map((f, i) => ({ f, key: (i * 7919 + 13) % 1009 }));
      for (const { f, key } of shuffled) copyFileSync(join(src, f), join(dir, `x${key.toString(36)}${f.length}.dcm`));
      const v = await readDicomVolume(dir);
      expect(v.dims).toEqual([entry.size[0], entry.size[1], files.length]);
      expect(v.spacing).toEqual([1, 1, 1]);
      const [nx, ny] = v.dims;
      const zs = files.map((f) => tagsOf(join(src, f)).z);
      const z0 = Math.min(...zs);
      // LPS (0,0,z0) → RAS (0,0,z0); rows and columns run along -x and -y in RAS
      expect(v.affine).toEqual([-1, 0, 0, 0, 0, -1, 0, 0, 0, 0, 1, z0, 0, 0, 0, 1]);
      for (const f of files) {
        const { z, uid } = tagsOf(join(src, f));
        const k = z - z0;
        const px = (await readDicomPixels(join(src, f))).frames[0]!;
        expect(v.source.kind === "dicom" && v.source.sopInstanceUids[k]).toBe(uid);
        expect(Array.from(v.data.subarray(k * nx * ny, (k + 1) * nx * ny))).toEqual(Array.from(px));
      }
    });
  }
  it("a folder with two series is refused, listing each with the fix; --series picks one", async () => {
    const dir = tmpDir();
    for (const s of ["study1", "study2"])
      for (const f of readdirSync(join(DATA, "mr-hippocrop", s))) copyFileSync(join(DATA, "mr-hippocrop", s, f), join(dir, `${s}-${f}`));
    const line = await refused(readDicomVolume(dir));
    const uid1 = tagsOf(join(DATA, "mr-hippocrop/study1/1.dcm")).ds.string("x0020000e")!;
    const uid2 = tagsOf(join(DATA, "mr-hippocrop/study2/1.dcm")).ds.string("x0020000e")!;
    expect(line).toContain("holds 2 series");
    expect(line).toContain(`${uid1} (`);
    expect(line).toContain(`${uid2} (`);
    expect(line).toContain("32 slices");
    expect(line).toContain("35 slices");
    expect(line).toContain("--series UID");
    const v = await readDicomVolume(dir, { seriesUid: uid2 });
    expect(v.dims).toEqual([36, 48, 35]);
    expect(await refused(readDicomVolume(dir, { seriesUid: "1.2.3" }))).toContain("has no series 1.2.3");
  });
  it("a missing middle slice is refused as a gap naming the positions", async () => {
    const dir = tmpDir();
    const src = join(DATA, "mr-hippocrop/study1");
    for (const f of readdirSync(src)) if (tagsOf(join(src, f)).z !== 16) copyFileSync(join(src, f), join(dir, f));
    const line = await refused(readDicomVolume(dir));
    expect(line).toContain("has a gap");
    expect(line).toContain("(0, 0, 15) and (0, 0, 17) are 2 mm apart, the usual step is 1 mm");
  });
  /** study1 copied, with one slice's element `tag` overwritten (same length) by `edit`. */
  function study1With(tag: string, edit: (b: Uint8Array, view: DataView, at: number) => void): string {
    const dir = tmpDir();
    const src = join(DATA, "mr-hippocrop/study1");
    for (const f of readdirSync(src)) {
      const b = new Uint8Array(readFileSync(join(src, f)));
      if (f === "7.dcm") edit(b, new DataView(b.buffer), dicomParser.parseDicom(b).elements[tag]!.dataOffset);
      writeFileSync(join(dir, f), b);
    }
    return dir;
  }
  it("a slice of another orientation in the series is refused", async () => {
    const dir = study1With("x00200037", (b, _, at) => b.set(Buffer.from("0\\1\\0\\1\\0\\0"), at));
    expect(await refused(readDicomVolume(dir))).toMatch(/mixes slice orientations: .* and .*7\.dcm differ/);
  });
  it("a slice of another size in the series is refused", async () => {
    const dir = study1With("x00280010", (_, v, at) => v.setUint16(at, 50, true));
    expect(await refused(readDicomVolume(dir))).toMatch(/mixes slice sizes: .* is 35x51, .*7\.dcm is 35x50/);
  });
  it("two slices at one position are refused", async () => {
    const dir = tmpDir();
    const src = join(DATA, "mr-hippocrop/study1");
    for (const f of readdirSync(src)) copyFileSync(join(src, f), join(dir, f));
    copyFileSync(join(src, "7.dcm"), join(dir, "7-copy.dcm"));
    expect(await refused(readDicomVolume(dir))).toContain("has two slices at one position (0, 0, 7)");
  });
  it("a multi-frame Enhanced CT is placed by its per-frame functional groups", async () => {
    const v = await readDicomVolume(join(DATA, "multiframe/CT0012.explicit_little_endian.dcm"));
    expect(v.dims).toEqual([512, 512, 2]);
    expect(v.spacing.map((s) => Number(s.toFixed(6)))).toEqual([0.388672, 0.388672, 10]);
    // orientation (-1,0,0 / 0,1,0): normal -z, so the frame with the larger z comes first
    expect(v.affine.map((a) => Number(a.toFixed(6)))).toEqual([0.388672, 0, 0, -99.5, 0, -0.388672, 0, 301.5, 0, 0, -10, -149, 0, 0, 0, 1]);
    // rescale from the shared functional groups: intercept -1024
    const raw = await readDicomPixels(join(DATA, "multiframe/CT0012.explicit_little_endian.dcm"));
    expect(v.data[0]).toBe(raw.frames[1]![0]! - 1024);
  });
  it("rescale slope/intercept and signed pixels: CT slices in Hounsfield units", async () => {
    const v = await readDicomVolume(join(DATA, "ct-liver-seg"));
    const raw = await readDicomPixels(join(DATA, "ct-liver-seg/03.dcm"));
    expect(v.dims).toEqual([512, 512, 3]);
    expect(v.data.subarray(0, 512 * 512).every((x, i) => x === raw.frames[0]![i]! - 1024)).toBe(true);
  });
});

describe.skipIf(!have)("DICOM SEG", () => {
  const ct = join(DATA, "ct-liver-seg");
  /** The same series with k running the other way (a valid geometry whose slice order differs from the SEG's frame order). */
  function flipK(v: Volume): Volume {
    const [nx, ny, nz] = v.dims;
    const plane = nx * ny;
    const data = new Float32Array(v.data.length);
    for (let k = 0; k < nz; k++) data.set(v.data.subarray(k * plane, (k + 1) * plane), (nz - 1 - k) * plane);
    const affine = [...v.affine];
    for (const r of [0, 1, 2]) {
      affine[r * 4 + 3]! += affine[r * 4 + 2]! * (nz - 1);
      affine[r * 4 + 2] = -affine[r * 4 + 2]!;
    }
    if (v.source.kind !== "dicom") throw new Error("not dicom");
    return { ...v, data, affine, source: { ...v.source, sopInstanceUids: [...v.source.sopInstanceUids].reverse() } };
  }
  for (const enc of ["liver", "liver_rle", "liver_j2k", "liver_deflate"]) {
    it(`${enc}: frames land on the slices they reference by SOP Instance UID, whatever the slice order`, async () => {
      const dir = tmpDir();
      ["03.dcm", "01.dcm", "02.dcm"].forEach((f, i) => copyFileSync(join(ct, f), join(dir, `s${2 - i}.dcm`)));
      const read = await readDicomVolume(dir);
      const segPx = await readDicomPixels(join(DATA, `codecs/${enc}.dcm`));
      const frames = segPx.file.dataSet.elements.x52009230!.items!;
      const refs = frames.map(
        (item) => item.dataSet!.elements.x00089124!.items![0]!.dataSet!.elements.x00082112!.items![0]!.dataSet!.string("x00081155")!,
      );
      const plane = 512 * 512;
      for (const [v, framesInSliceOrder] of [
        [read, true],
        [flipK(read), false],
      ] as const) {
        const seg = await readDicomSegMask(join(DATA, `codecs/${enc}.dcm`), v);
        expect(seg.segment).toEqual({ number: 1, label: "Liver" });
        expect(seg.frames).toBe(3);
        const uids = v.source.kind === "dicom" ? v.source.sopInstanceUids : [];
        refs.forEach((ref, f) => {
          const k = uids.indexOf(ref);
          expect(k).toBeGreaterThanOrEqual(0);
          expect(seg.mask.subarray(k * plane, (k + 1) * plane).every((m, i) => m === segPx.frames[f]![i])).toBe(true);
        });
        // with k reversed, frame order is not slice order: matching by order would put frames on the wrong slices
        expect(refs.every((ref, f) => uids.indexOf(ref) === f)).toBe(framesInSliceOrder);
      }
    });
  }
  it("a SEG over a multi-frame source lands by SOP Instance UID and Referenced Frame Number", async () => {
    const srcPath = join(DATA, "multiframe/CT0012.explicit_little_endian.dcm");
    const v = await readDicomVolume(srcPath);
    const src = dicomParser.parseDicom(new Uint8Array(readFileSync(srcPath)));
    const perFrame = src.elements.x52009230!.items!;
    const positions = perFrame.map((it) => [0, 1, 2].map((i) => it.dataSet!.elements.x00209113!.items![0]!.dataSet!.floatString("x00200032", i)!));
    // SEG frame 1 marks rows 0-9 of source frame 2, SEG frame 2 marks rows 0-19 of source frame 1
    const marks = [
      { frame: 2, rows: 10 },
      { frame: 1, rows: 20 },
    ];
    const plane = 512 * 512;
    const p = join(tmpDir(), "seg.dcm");
    writeBinarySeg(p, {
      seriesUid: src.string("x0020000e")!,
      rows: 512,
      columns: 512,
      segments: [{ number: 1, label: "Box" }],
      frames: marks.map((m) => ({
        sopClassUid: src.string("x00080016")!,
        sopInstanceUid: src.string("x00080018")!,
        frameNumber: m.frame,
        position: positions[m.frame - 1]!,
        segment: 1,
        rows: m.rows,
      })),
    });
    const seg = await readDicomSegMask(p, v);
    expect(seg.frames).toBe(2);
    // normal -z: source frame 2 (the larger z) is slice k = 0, source frame 1 is k = 1
    expect(positions[1]![2]! > positions[0]![2]!).toBe(true);
    const count = (k: number) => seg.mask.subarray(k * plane, (k + 1) * plane).reduce((a, b) => a + b, 0);
    expect([count(0), count(1)]).toEqual([10 * 512, 20 * 512]);
  });
  it("a SEG that references another series is refused", async () => {
    const v = await readDicomVolume(join(DATA, "mr-hippocrop/study1"));
    expect(await refused(readDicomSegMask(join(DATA, "codecs/liver.dcm"), v))).toMatch(/references series .* not the image series/);
  });
  it("a SEG frame whose slice is missing from the series is refused", async () => {
    const dir = tmpDir();
    for (const f of ["01.dcm", "03.dcm"]) copyFileSync(join(ct, f), join(dir, f));
    const v = await readDicomVolume(dir);
    expect(await refused(readDicomSegMask(join(DATA, "codecs/liver.dcm"), v))).toMatch(/references slice .* which is not in the image series/);
  });
  it("a segment that does not exist is refused listing the segments", async () => {
    const v = await readDicomVolume(ct);
    expect(await refused(readDicomSegMask(join(DATA, "codecs/liver.dcm"), v, { segment: 2 }))).toContain('has no segment 2; it holds 1 "Liver"');
    expect((await readDicomSegMask(join(DATA, "codecs/liver.dcm"), v, { segment: "liver" })).segment.number).toBe(1);
  });
  it("a SEG given as the image is refused", async () => {
    expect(await refused(readDicomVolume(join(DATA, "codecs/liver.dcm")))).toContain("is a DICOM SEG (a mask), not an image");
  });
});

describe.skipIf(!have)("bad and hostile DICOM files", () => {
  const bytes = () => new Uint8Array(readFileSync(join(DATA, "codecs/emri_small.dcm")));
  /** Overwrite the value of a top-level element (same length) in a copy of emri_small.dcm. */
  function patched(edits: Record<string, (view: DataView, at: number) => void>): string {
    const b = bytes();
    const ds = dicomParser.parseDicom(b);
    const view = new DataView(b.buffer);
    for (const [tag, edit] of Object.entries(edits)) edit(view, ds.elements[tag]!.dataOffset);
    const p = join(tmpDir(), "patched.dcm");
    writeFileSync(p, b);
    return p;
  }
  it("a header claiming 65535 x 65535 x 99 voxels is refused before allocation", async () => {
    const p = patched({
      x00280010: (v, at) => v.setUint16(at, 65535, true),
      x00280011: (v, at) => v.setUint16(at, 65535, true),
      x00280008: (v, at) => (v.setUint8(at, 0x39), v.setUint8(at + 1, 0x39)),
    });
    expect(await refused(readDicomPixels(p))).toContain("claims 65535x65535x99 voxels, more than segcause reads");
  });
  for (const [file, marker, offset] of [
    ["multiframe/CT0012.fragmented_no_bot_jpeg_lossless.57.dcm", [0xff, 0xc3], 5],
    ["codecs/693_J2KR.dcm", [0xff, 0x51], 6],
    ["multiframe/CT0012.not_fragmented_bot_jpeg_ls.80.dcm", [0xff, 0xf7], 5],
  ] as const) {
    it(`${file}: a frame whose stream claims a huge image is refused before it is decoded`, async () => {
      const b = new Uint8Array(readFileSync(join(DATA, file)));
      // the first frame header's size fields (JPEG SOF: Y, X at +5; JPEG 2000 SIZ: Xsiz, Ysiz at +6)
      let at = -1;
      for (let i = 0; i + 1 < b.length && at < 0; i++) if (b[i] === marker[0] && b[i + 1] === marker[1]) at = i + offset;
      if (marker[1] === 0x51) new DataView(b.buffer).setUint32(at, 60000), new DataView(b.buffer).setUint32(at + 4, 60000);
      else b.set([0xff, 0xf0, 0xff, 0xf0], at);
      const p = join(tmpDir(), "huge.dcm");
      writeFileSync(p, b);
      expect(await refused(readDicomPixels(p))).toMatch(/frame 1 holds a (65520x65520|60000x60000) image, not the 512x512 its DICOM header states/);
    });
  }
  it("a header claiming more voxels than the pixel data holds is refused", async () => {
    const p = patched({ x00280010: (v, at) => v.setUint16(at, 4096, true) });
    expect(await refused(readDicomPixels(p))).toMatch(/of pixel data, less than its 64x4096x10 voxels need/);
  });
  for (const [file, keep] of [
    ["codecs/693_UNCR.dcm", 300_000],
    ["codecs/693_J2KR.dcm", 20_000],
    ["multiframe/CT0012.fragmented_no_bot_jpeg_lossless.57.dcm", 120_000],
    ["multiframe/CT0012.not_fragmented_bot_rle.dcm", 100_000],
  ] as const) {
    it(`${file} cut to ${keep} bytes is refused in one line`, async () => {
      const full = readFileSync(join(DATA, file));
      expect(full.length).toBeGreaterThan(keep);
      const p = join(tmpDir(), "cut.dcm");
      writeFileSync(p, full.subarray(0, keep));
      expect(await refused(readDicomPixels(p))).toMatch(/cut\.dcm (is not a readable DICOM file \(buffer overrun\)|has .* less than)/);
    });
  }
  it("garbage after a valid preamble, and a file that is not DICOM, are refused", async () => {
    const g = new Uint8Array(4096);
    for (let i = 0; i < g.length; i++) g[i] = (i * 2654435761) >>> 24;
    g.set([0x44, 0x49, 0x43, 0x4d], 128);
    const p = join(tmpDir(), "garbage.dcm");
    writeFileSync(p, g);
    expect(await refused(readDicomVolume(p))).toContain("garbage.dcm");
    const q = join(tmpDir(), "notes.dcm");
    writeFileSync(q, "hello");
    expect(await refused(readDicomVolume(q))).toContain('is not a DICOM Part 10 file (no "DICM" marker at byte 128)');
    expect(await refused(readDicomVolume(tmpDir()))).toContain("holds no DICOM files");
  });
  it("a file without geometry cannot be a volume", async () => {
    expect(await refused(readDicomVolume(join(DATA, "codecs/JPEG-LL.dcm")))).toContain("has no Image Position");
  });
});

describe.skipIf(!have)("DICOM Parametric Map writer", () => {
  const dciodvfy = spawnSync("dciodvfy", ["-version"]).error === undefined;
  if (!dciodvfy) console.warn("Parametric Map IOD check skipped: dciodvfy (Debian dicom3tools) not installed");
  for (const src of ["mr-hippocrop/study1", "multiframe/CT0012.explicit_little_endian.dcm"]) {
    it(`${src}: a float map written as a Parametric Map reads back with the same values and geometry, referencing the source`, async () => {
      const v = await readDicomVolume(join(DATA, src));
      const map = new Float32Array(v.data.length).map((_, i) => Math.sin(i / 97) / 3);
      const out = join(tmpDir(), "map.dcm");
      await writeDicomParametricMap(out, map, v, { seriesDescription: "PdCR effect map", quantity: "effect on Dice" });
      const back = await readDicomVolume(out);
      expect(back.dims).toEqual(v.dims);
      expect(back.affine.map((x) => Number(x.toFixed(5)))).toEqual(v.affine.map((x) => Number(x.toFixed(5))));
      expect(back.data.every((x, i) => x === map[i])).toBe(true);
      const ds = dicomParser.parseDicom(new Uint8Array(readFileSync(out)));
      expect(ds.string("x00080016")).toBe(PARAMETRIC_MAP_SOP_CLASS);
      expect(ds.string("x00200052")).toBe(v.source.kind === "dicom" ? v.source.frameOfReferenceUid : "");
      const refSeries = ds.elements.x00081115!.items![0]!.dataSet!;
      expect(refSeries.string("x0020000e")).toBe(v.source.kind === "dicom" ? v.source.seriesInstanceUid : "");
      const refs = ds.elements.x00082112!.items!.map((it) => it.dataSet!.string("x00081155"));
      expect(refs.length).toBe(v.dims[2]);
      if (v.source.kind === "dicom" && v.source.sopInstanceUids.length === v.dims[2]) expect(refs).toEqual(v.source.sopInstanceUids);
      if (dciodvfy) {
        const r = spawnSync("dciodvfy", [out], { encoding: "utf8" });
        expect(`${r.stdout}${r.stderr}`.split("\n").filter((l) => l.startsWith("Error"))).toEqual([]);
      }
    });
  }
  it("a map with NaN, or of another size, is refused", async () => {
    const v = await readDicomVolume(join(DATA, "mr-hippocrop/study1"));
    const bad = new Float32Array(v.data.length);
    bad[5] = Number.NaN;
    expect(await refused(writeDicomParametricMap(join(tmpDir(), "m.dcm"), bad, v))).toContain("not a finite number");
    expect(await refused(writeDicomParametricMap(join(tmpDir(), "m.dcm"), new Float32Array(3), v))).toContain(
      "the map has 3 values but the series has",
    );
  });
});
