import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import { readHeader } from "nifti-reader-js";
import { beforeAll, describe, expect, it } from "vitest";
import { checkSameGeometry, sameGeometry } from "../src/data/volume/geometry.js";
import { labelMask, labelsPresent, parseLabels } from "../src/data/volume/label-mask.js";
import { readNifti, readNiftiBytes } from "../src/data/volume/nifti.js";
import { qformOfAffine } from "../src/data/volume/nifti-affine.js";
import { niftiBytes, writeNifti } from "../src/data/volume/nifti-write.js";
import { isNiftiPath, sniffBytes, sniffVolume } from "../src/data/volume/sniff.js";
import { axisCodes, describePlacement, type Volume } from "../src/data/volume/volume.js";
import { SegcauseError } from "../src/errors.js";
import { checkVolumeRoi, parseVolumeRoi, volumeRoiMask } from "../src/target/volume-roi.js";
import { tmp } from "./helpers/tiny.js";

// ---- hand-built NIfTI files, byte by byte at the offsets of the NIfTI-1 and NIfTI-2 standards ----

const TYPES: Record<string, { code: number; bytes: number; set: (dv: DataView, at: number, v: number, le: boolean) => void }> = {
  uint8: { code: 2, bytes: 1, set: (dv, at, v) => dv.setUint8(at, v) },
  int16: { code: 4, bytes: 2, set: (dv, at, v, le) => dv.setInt16(at, v, le) },
  int32: { code: 8, bytes: 4, set: (dv, at, v, le) => dv.setInt32(at, v, le) },
  float32: { code: 16, bytes: 4, set: (dv, at, v, le) => dv.setFloat32(at, v, le) },
  float64: { code: 64, bytes: 8, set: (dv, at, v, le) => dv.setFloat64(at, v, le) },
  int8: { code: 256, bytes: 1, set: (dv, at, v) => dv.setInt8(at, v) },
  uint16: { code: 512, bytes: 2, set: (dv, at, v, le) => dv.setUint16(at, v, le) },
  uint32: { code: 768, bytes: 4, set: (dv, at, v, le) => dv.setUint32(at, v, le) },
};

interface Spec {
  version?: 1 | 2;
  le?: boolean;
  /** the header's dim[0..] (dim[0] first) */
  dim: number[];
  type: keyof typeof TYPES;
  /** overrides the datatype code (for unsupported types) */
  code?: number;
  values: number[];
  pixdim?: number[];
  slope?: number;
  inter?: number;
  qform?: { code: number; b: number; c: number; d: number; offset: [number, number, number] };
  sform?: { code: number; rows: number[] };
  magic?: string;
  /** xyzt_units (default 2: mm) */
  units?: number;
  /** a 16-byte header extension before the voxels */
  extension?: boolean;
}

function build(s: Spec): Buffer {
  const v2 = s.version === 2;
  const le = s.le ?? true;
  const t = TYPES[s.type];
  const off = (v2 ? 544 : 352) + (s.extension ? 16 : 0);
  const buf = Buffer.alloc(off + s.values.length * t.bytes);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.length);
  const pixdim = s.pixdim ?? [1, 1, 1, 1, 0, 0, 0, 0];
  const dim = [...s.dim, ...new Array(8 - s.dim.length).fill(1)];
  if (!v2) {
    dv.setInt32(0, 348, le);
    dim.forEach((d, i) => dv.setInt16(40 + 2 * i, d, le));
    dv.setInt16(70, s.code ?? t.code, le);
    dv.setInt16(72, 8 * t.bytes, le);
    pixdim.forEach((p, i) => dv.setFloat32(76 + 4 * i, p, le));
    dv.setFloat32(108, off, le);
    dv.setFloat32(112, s.slope ?? 0, le);
    dv.setFloat32(116, s.inter ?? 0, le);
    dv.setUint8(123, s.units ?? 2);
    if (s.extension) {
      dv.setUint8(348, 1);
      dv.setInt32(352, 16, le);
      dv.setInt32(356, 6, le); // ecode 6: a comment
      buf.write("segcause", 360, "latin1");
    }
    if (s.qform) {
      dv.setInt16(252, s.qform.code, le);
      [s.qform.b, s.qform.c, s.qform.d, ...s.qform.offset].forEach((x, i) => dv.setFloat32(256 + 4 * i, x, le));
    }
    if (s.sform) {
      dv.setInt16(254, s.sform.code, le);
      s.sform.rows.forEach((x, i) => dv.setFloat32(280 + 4 * i, x, le));
    }
    buf.write(s.magic ?? "n+1\0", 344, "latin1");
  } else {
    dv.setInt32(0, 540, le);
    buf.write(s.magic ?? "n+2\0\r\n\x1a\n", 4, "latin1");
    dv.setInt16(12, s.code ?? t.code, le);
    dv.setInt16(14, 8 * t.bytes, le);
    dim.forEach((d, i) => dv.setBigInt64(16 + 8 * i, BigInt(d), le));
    pixdim.forEach((p, i) => dv.setFloat64(104 + 8 * i, p, le));
    dv.setBigInt64(168, BigInt(off), le);
    dv.setFloat64(176, s.slope ?? 0, le);
    dv.setFloat64(184, s.inter ?? 0, le);
    if (s.qform) {
      dv.setInt32(344, s.qform.code, le);
      [s.qform.b, s.qform.c, s.qform.d, ...s.qform.offset].forEach((x, i) => dv.setFloat64(352 + 8 * i, x, le));
    }
    if (s.sform) {
      dv.setInt32(348, s.sform.code, le);
      s.sform.rows.forEach((x, i) => dv.setFloat64(400 + 8 * i, x, le));
    }
    dv.setInt32(500, s.units ?? 2, le);
  }
  s.values.forEach((x, i) => t.set(dv, off + i * t.bytes, x, le));
  return buf;
}

/** voxel (i, j, k) = i + 10 j + 100 k, on a 2x3x4 grid */
const RAMP = Array.from({ length: 24 }, (_, n) => (n % 2) + 10 * (Math.floor(n / 2) % 3) + 100 * Math.floor(n / 6));
const SROWS = [-2, 0, 0, 10, 0, 3, 0, -20, 0, 0, 4, 30];

let dir: string;
beforeAll(() => {
  dir = tmp("segcause-nifti-");
});

function put(name: string, bytes: Uint8Array): string {
  const p = join(dir, name);
  writeFileSync(p, bytes);
  return p;
}

async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(SegcauseError);
    return (e as SegcauseError).oneLine();
  }
  throw new Error("expected a refusal");
}

function refusalSync(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(SegcauseError);
    return (e as SegcauseError).oneLine();
  }
  throw new Error("expected a refusal");
}

describe("NIfTI reader: hand-built files with known voxels and geometry", () => {
  it("NIfTI-1 with sform and qform: the sform is used (even when qform_code is larger), voxels scaled by slope and intercept", async () => {
    const p = put(
      "sform.nii",
      build({
        dim: [3, 2, 3, 4],
        type: "int16",
        values: RAMP,
        slope: 2,
        inter: 1,
        pixdim: [1, 2, 3, 4, 0, 0, 0, 0],
        sform: { code: 1, rows: SROWS },
        qform: { code: 2, b: 0, c: 0, d: 0, offset: [0, 0, 0] },
      }),
    );
    const v = await readNifti(p);
    expect(v.dims).toEqual([2, 3, 4]);
    expect(v.affine).toEqual([...SROWS, 0, 0, 0, 1]);
    expect(v.spacing).toEqual([2, 3, 4]);
    expect(Array.from(v.data)).toEqual(RAMP.map((x) => 2 * x + 1));
    expect(v.data[(3 * 3 + 2) * 2 + 1]).toBe(2 * (1 + 20 + 300) + 1); // voxel (i=1, j=2, k=3), i fastest
    expect(v.source).toEqual({ kind: "nifti", path: p, version: 1, datatype: "int16" });
    expect(axisCodes(v.affine)).toBe("LAS");
  });

  it("NIfTI-1 with a qform only: rotation from the quaternion, qfac from pixdim[0]", async () => {
    // quaternion (b, c, d) = (0, 0, 1): 180 degrees about z; qfac -1 flips k
    const p = put(
      "qform.nii.gz",
      gzipSync(
        build({
          dim: [3, 2, 3, 4],
          type: "uint8",
          values: RAMP.map((x) => x % 256),
          pixdim: [-1, 2, 3, 4, 0, 0, 0, 0],
          qform: { code: 1, b: 0, c: 0, d: 1, offset: [5, 6, 7] },
        }),
      ),
    );
    const v = await readNifti(p);
    expect(v.affine).toEqual([-2, 0, 0, 5, 0, -3, 0, 6, 0, 0, -4, 7, 0, 0, 0, 1]);
    expect(v.spacing).toEqual([2, 3, 4]);
    expect(Array.from(v.data)).toEqual(RAMP.map((x) => x % 256));
    expect(describePlacement(v)).toBe("origin (5, 6, 7) mm, axes LPI");
  });

  it("NIfTI-1 with neither transform: diag(pixdim) at the origin; a slope of 0 means unscaled", async () => {
    const v = await readNiftiBytes(
      build({ dim: [3, 2, 3, 4], type: "float32", values: RAMP.map((x) => x / 4), slope: 0, inter: 5, pixdim: [0, 0.5, 0.5, 2.5, 0, 0, 0, 0] }),
      "none.nii",
    );
    expect(v.affine).toEqual([0.5, 0, 0, 0, 0, 0.5, 0, 0, 0, 0, 2.5, 0, 0, 0, 0, 1]);
    expect(v.spacing).toEqual([0.5, 0.5, 2.5]);
    expect(Array.from(v.data)).toEqual(RAMP.map((x) => x / 4));
  });

  it("NIfTI-2 (little and big endian): 64-bit dims, float64 sform, float64 voxels", async () => {
    for (const le of [true, false]) {
      const v = await readNiftiBytes(
        build({
          version: 2,
          le,
          dim: [3, 2, 3, 4],
          type: "float64",
          values: RAMP.map((x) => x + 0.5),
          slope: 1,
          inter: -0.5,
          sform: { code: 2, rows: SROWS },
        }),
        "v2.nii",
      );
      expect(v.dims).toEqual([2, 3, 4]);
      expect(v.affine).toEqual([...SROWS, 0, 0, 0, 1]);
      expect(Array.from(v.data)).toEqual(RAMP);
      expect(v.source).toMatchObject({ version: 2, datatype: "float64" });
    }
  });

  it("NIfTI-2 with a qform only, and a 2D file (dim[0] = 2) as one slice", async () => {
    const v = await readNiftiBytes(
      build({
        version: 2,
        dim: [3, 2, 3, 4],
        type: "int16",
        values: RAMP,
        pixdim: [1, 1, 1, 2, 0, 0, 0, 0],
        qform: { code: 1, b: 0, c: 0, d: 0, offset: [-1, -2, -3] },
      }),
      "v2q.nii",
    );
    expect(v.affine).toEqual([1, 0, 0, -1, 0, 1, 0, -2, 0, 0, 2, -3, 0, 0, 0, 1]);
    const flat = await readNiftiBytes(build({ dim: [2, 2, 3], type: "uint8", values: [1, 2, 3, 4, 5, 6] }), "slice.nii");
    expect(flat.dims).toEqual([2, 3, 1]);
    expect(Array.from(flat.data)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it("spatial units other than mm are converted to mm; a header extension before the voxels is skipped", async () => {
    const micron = await readNiftiBytes(
      build({ dim: [3, 2, 3, 4], type: "uint8", values: RAMP, units: 3, pixdim: [1, 500, 500, 1000, 0, 0, 0, 0] }),
      "um.nii",
    );
    expect(micron.spacing).toEqual([0.5, 0.5, 1]);
    const metre = await readNiftiBytes(
      build({
        version: 2,
        dim: [3, 2, 3, 4],
        type: "uint8",
        values: RAMP,
        units: 1,
        sform: { code: 1, rows: [0.002, 0, 0, 0.1, 0, 0.001, 0, 0, 0, 0, 0.003, -0.05] },
      }),
      "m.nii",
    );
    expect(metre.affine).toEqual([2, 0, 0, 100, 0, 1, 0, 0, 0, 0, 3, -50, 0, 0, 0, 1]);
    const ext = await readNiftiBytes(
      build({ dim: [3, 2, 3, 4], type: "int16", values: RAMP, extension: true, sform: { code: 1, rows: SROWS } }),
      "ext.nii",
    );
    expect(Array.from(ext.data)).toEqual(RAMP);
    expect(ext.affine).toEqual([...SROWS, 0, 0, 0, 1]);
  });

  it("every supported datatype, in both byte orders, reads exactly", async () => {
    const values: Record<string, number[]> = {
      uint8: [0, 1, 128, 255],
      int8: [-128, -1, 0, 127],
      int16: [-32768, -1, 300, 32767],
      uint16: [0, 1, 40000, 65535],
      int32: [-(2 ** 24), -7, 0, 2 ** 24],
      uint32: [0, 7, 2 ** 24, 2 ** 31],
      float32: [-1.5, 0.25, 3e5, 0],
      float64: [-1.5, 0.25, 3e5, 2 ** -20],
    };
    for (const [type, vals] of Object.entries(values)) {
      for (const le of [true, false]) {
        const v = await readNiftiBytes(build({ le, dim: [3, 2, 2, 1], type: type as keyof typeof TYPES, values: vals }), `${type}.nii`);
        expect(Array.from(v.data), `${type} ${le ? "LE" : "BE"}`).toEqual(vals);
        expect(v.source).toMatchObject({ datatype: type });
      }
    }
  });
});

describe("NIfTI reader: bad inputs are refused in one line naming the problem and the fix", () => {
  const good = (): Buffer => build({ dim: [3, 2, 3, 4], type: "int16", values: RAMP });

  it("truncated .nii and .nii.gz", async () => {
    const cut = good().subarray(0, 352 + 40);
    expect(await refusal(readNifti(put("cut.nii", cut)))).toBe(
      `${join(dir, "cut.nii")} is truncated: its header describes 2x3x4 int16 voxels (48 bytes) but it holds 40 (the file is incomplete or damaged: copy it again from its source)`,
    );
    const gz = gzipSync(good());
    expect(await refusal(readNifti(put("cut.nii.gz", gzipSync(cut))))).toMatch(
      /cut\.nii\.gz is truncated: its header describes 2x3x4 int16 voxels \(48 bytes\) but it holds 40 \(/,
    );
    expect(await refusal(readNifti(put("cutgz.nii.gz", gz.subarray(0, gz.length - 12))))).toMatch(
      /cutgz\.nii\.gz is truncated: .* \(the gzip stream ends early\)/,
    );
    expect(await refusal(readNifti(put("nocrc.nii.gz", gz.subarray(0, gz.length - 4))))).toMatch(
      /nocrc\.nii\.gz is truncated: its gzip stream stops short of its end, so its checksum cannot be verified \(/,
    );
    const badCrc = Buffer.from(gz);
    badCrc[gz.length - 8] ^= 0xff;
    expect(await refusal(readNifti(put("crc.nii.gz", badCrc)))).toMatch(
      /crc\.nii\.gz is gzip-compressed but cannot be decompressed \(incorrect data check\)/,
    );
    expect(await refusal(readNifti(put("hdr.nii", good().subarray(0, 200))))).toMatch(
      /hdr\.nii is truncated: it ends inside its NIfTI-1 header \(200 of 348 bytes\)/,
    );
    expect(await refusal(readNifti(put("gzhdr.nii.gz", gz.subarray(0, 20))))).toMatch(
      /gzhdr\.nii\.gz is truncated: its gzip stream ends (before|inside) the NIfTI header/,
    );
  });

  it("wrong magic, not NIfTI at all, a .hdr/.img pair", async () => {
    expect(await refusal(readNiftiBytes(build({ dim: [3, 2, 3, 4], type: "int16", values: RAMP, magic: "xyz\0" }), "m.nii"))).toBe(
      "m.nii is not a NIfTI file (its header size says NIfTI-1 but the magic string is missing) (give a .nii or .nii.gz volume (NIfTI-1 or NIfTI-2))",
    );
    const png = readFileSync(new URL("../samples/" + "lesion.png", import.meta.url).pathname, { flag: "r" }).subarray(0, 600);
    expect(await refusal(readNiftiBytes(png, "p.nii"))).toBe(
      "p.nii is not a NIfTI file (it does not start with a NIfTI-1 or NIfTI-2 header) (give a .nii or .nii.gz volume (NIfTI-1 or NIfTI-2))",
    );
    expect(await refusal(readNiftiBytes(build({ dim: [3, 2, 3, 4], type: "int16", values: RAMP, magic: "ni1\0" }), "pair.hdr"))).toMatch(
      /pair\.hdr is the header of a NIfTI \.hdr\/\.img pair; segcause reads single-file NIfTI \(convert/,
    );
  });

  it("4D and 5D files name their dims and how to extract one volume", async () => {
    const four = await refusal(readNiftiBytes(build({ dim: [4, 2, 3, 4, 2], type: "int16", values: [...RAMP, ...RAMP] }), "fmri.nii"));
    expect(four).toBe(
      "fmri.nii is a 4D NIfTI image (2x3x4x2); segcause explains one 3D volume at a time (extract one volume first, e.g. fslroi in.nii.gz vol0.nii.gz 0 1, or nibabel: img.slicer[..., 0])",
    );
    expect(await refusal(readNiftiBytes(build({ dim: [5, 2, 3, 4, 1, 3], type: "int16", values: [...RAMP, ...RAMP, ...RAMP] }), "v.nii"))).toMatch(
      /^v\.nii is a 5D NIfTI image \(2x3x4x1x3\)/,
    );
    // a 4th dim of 1 is one volume
    expect((await readNiftiBytes(build({ dim: [4, 2, 3, 4, 1], type: "int16", values: RAMP }), "one.nii")).dims).toEqual([2, 3, 4]);
  });

  it("unsupported datatypes are named (complex64, rgb24, int64)", async () => {
    expect(await refusal(readNiftiBytes(build({ dim: [3, 2, 3, 2], type: "float64", code: 32, values: RAMP.slice(0, 12) }), "c.nii"))).toBe(
      "c.nii stores its voxels as complex64, which segcause does not read (convert it to a scalar type (uint8, int8, int16, uint16, int32, uint32, float32 or float64), e.g. fslmaths in.nii.gz out.nii.gz -odt float)",
    );
    expect(await refusal(readNiftiBytes(build({ dim: [3, 2, 3, 4], type: "uint8", code: 128, values: RAMP }), "rgb.nii"))).toMatch(
      /^rgb\.nii stores its voxels as rgb24, /,
    );
    expect(await refusal(readNiftiBytes(build({ dim: [3, 2, 3, 4], type: "float64", code: 1024, values: RAMP }), "i64.nii"))).toMatch(
      /^i64\.nii stores its voxels as int64, /,
    );
  });

  it("gzip garbage, a decompression bomb, and a header claiming too many voxels", async () => {
    const garbage = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0xfa, 0xf9, 0xf8, 1, 2, 3]);
    expect(await refusal(readNifti(put("garbage.nii.gz", garbage)))).toMatch(
      /garbage\.nii\.gz is gzip-compressed but cannot be decompressed \(.+\) \(the file is incomplete or damaged/,
    );
    // a valid 2x3x4 header followed by 8 MiB of zeros: refused once 1 MiB past the voxels, never held
    const bomb = gzipSync(Buffer.concat([good(), Buffer.alloc(8 * 2 ** 20)]));
    expect(bomb.length).toBeLessThan(2 ** 20);
    expect(await refusal(readNifti(put("bomb.nii.gz", bomb)))).toMatch(
      /bomb\.nii\.gz decompresses to more data than its NIfTI header describes \(over 1048576 extra bytes\)/,
    );
    const huge = build({ dim: [3, 30000, 30000, 30000], type: "float32", values: [] });
    expect(await refusal(readNifti(put("huge.nii.gz", gzipSync(huge))))).toMatch(
      /huge\.nii\.gz has 30000x30000x30000 voxels, more than segcause reads in one volume \(268435456\) \(crop/,
    );
    // a few trailing bytes after the voxels are dropped, as other readers do
    expect(Array.from((await readNiftiBytes(gzipSync(Buffer.concat([good(), Buffer.alloc(100)])), "t.nii.gz")).data)).toEqual(RAMP);
  });

  it("a sform that is singular is refused, naming it", async () => {
    expect(
      await refusal(
        readNiftiBytes(build({ dim: [3, 2, 3, 4], type: "int16", values: RAMP, sform: { code: 1, rows: new Array(12).fill(0) } }), "s.nii"),
      ),
    ).toMatch(/^s\.nii has an unusable sform \(sform_code 1\): its affine is singular or not finite/);
  });

  it("regular files only, within the size cap", async () => {
    expect(await refusal(readNifti(dir))).toMatch(/is a folder, not a regular file/);
    expect(await refusal(readNifti(join(dir, "missing.nii.gz")))).toMatch(/cannot read NIfTI file .*missing\.nii\.gz \(ENOENT\)/);
  });
});

describe("NIfTI writer", () => {
  it("writes NIfTI-1 float32 with sform and qform equal to the affine (an oblique, left-handed one)", async () => {
    const c = Math.cos(Math.PI / 6),
      s = Math.sin(Math.PI / 6);
    // rotation by 30 degrees about x, voxel sizes 0.8, 1.2, 3, k flipped
    const affine = [0.8, 0, 0, -10, 0, 1.2 * c, 3 * s, 20, 0, 1.2 * s, -3 * c, 5.5, 0, 0, 0, 1];
    const data = Float32Array.from(RAMP, (x) => x / 3);
    const bytes = niftiBytes({ dims: [2, 3, 4], affine, data });
    const h = readHeader(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) as ArrayBuffer);
    expect(h.sform_code).toBe(1);
    expect(h.qform_code).toBe(1);
    expect(h.datatypeCode).toBe(16);
    const q = h.getQformMat().flat();
    q.forEach((x, i) => expect(x).toBeCloseTo(affine[i], 5));
    const v = await readNiftiBytes(bytes, "w.nii");
    v.affine.forEach((x, i) => expect(x).toBeCloseTo(affine[i], 5));
    v.spacing.forEach((x, i) => expect(x).toBeCloseTo([0.8, 1.2, 3][i], 5));
    expect(v.data).toEqual(data);
  });

  it("a sheared affine has no qform: the sform alone carries it", () => {
    const affine = [1, 0.5, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
    expect(qformOfAffine(affine)).toBeUndefined();
    const bytes = niftiBytes({ dims: [1, 1, 1], affine, data: new Float32Array(1) });
    const h = readHeader(bytes.buffer.slice(0) as ArrayBuffer);
    expect([h.qform_code, h.sform_code]).toEqual([0, 1]);
  });

  it("qform parameters reproduce rotations in every branch of the quaternion formula", () => {
    const rotations = [
      [1, 0, 0, 0, 1, 0, 0, 0, 1], // identity (a > 0.5)
      [1, 0, 0, 0, -1, 0, 0, 0, -1], // 180 about x
      [-1, 0, 0, 0, 1, 0, 0, 0, -1], // 180 about y
      [-1, 0, 0, 0, -1, 0, 0, 0, 1], // 180 about z
      [0, 1, 0, 1, 0, 0, 0, 0, -1], // swap of i and j, right-handed after the k flip
    ];
    for (const r of rotations) {
      const affine = [r[0] * 2, r[1] * 3, r[2] * 4, 1, r[3] * 2, r[4] * 3, r[5] * 4, 2, r[6] * 2, r[7] * 3, r[8] * 4, 3, 0, 0, 0, 1];
      const bytes = niftiBytes({ dims: [1, 1, 1], affine, data: new Float32Array(1) });
      const h = readHeader(bytes.buffer.slice(0) as ArrayBuffer);
      h.getQformMat()
        .flat()
        .forEach((x, i) => expect(x, `rotation ${r}`).toBeCloseTo(affine[i], 6));
    }
  });

  it("writes atomically: .nii.gz is gzip, .nii is not, nothing else left in the folder", async () => {
    const vol = { dims: [2, 3, 4] as [number, number, number], affine: [...SROWS, 0, 0, 0, 1], data: Float32Array.from(RAMP) };
    const out = tmp("segcause-nifti-write-");
    await writeNifti(join(out, "m.nii.gz"), vol);
    await writeNifti(join(out, "m.nii"), vol);
    const gz = readFileSync(join(out, "m.nii.gz"));
    expect([gz[0], gz[1]]).toEqual([0x1f, 0x8b]);
    expect(gunzipSync(gz)).toEqual(readFileSync(join(out, "m.nii")));
    expect(readFileSync(join(out, "m.nii")).length).toBe(352 + 24 * 4);
    expect((await import("node:fs")).readdirSync(out).sort()).toEqual(["m.nii", "m.nii.gz"]);
  });
});

describe("label maps as masks, and the same-grid check", () => {
  const grid = (over: Partial<Volume> = {}): Volume => ({
    dims: [2, 3, 4],
    spacing: [1, 1, 1],
    affine: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1],
    data: new Float32Array(24),
    source: { kind: "nifti", path: "x", version: 1, datatype: "uint8" },
    ...over,
  });

  it("--label N and --label 1,2 pick voxels; an absent label names the labels present", () => {
    const labels = grid({ data: Float32Array.from([0, 1, 2, 2, 0, 1, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]) });
    expect(Array.from(labelMask(labels, [1])).join("")).toBe("010001000000000000000000");
    expect(Array.from(labelMask(labels, parseLabels("1,2"))).join("")).toBe("011101001000000000000000");
    expect(labelsPresent(labels)).toEqual([1, 2]);
    expect(refusalSync(() => labelMask(labels, [1, 3], "labels/x.nii.gz"))).toBe(
      "label 3 is not in labels/x.nii.gz (labels present: 1, 2) (give --label N, or --label 1,2 for one structure made of several labels (positive whole numbers))",
    );
    expect(refusalSync(() => labelMask(grid(), [1], "empty.nii"))).toMatch(/^label 1 is not in empty\.nii \(it holds only 0: no labelled voxel\)/);
    expect(refusalSync(() => labelMask(grid({ data: Float32Array.from({ length: 24 }, (_, i) => i + 0.5) }), [1], "img.nii"))).toMatch(
      /it holds values that are not whole numbers, or more than 32 distinct values: it may be an image rather than a label map/,
    );
  });

  it("--label parsing", () => {
    expect(parseLabels(" 2 ,1,2")).toEqual([2, 1]);
    expect(refusalSync(() => parseLabels("1,x"))).toMatch(/^cannot parse --label '1,x'/);
    expect(refusalSync(() => parseLabels("0"))).toMatch(/names label 0; 0 is the background/);
    expect(refusalSync(() => parseLabels("1.5"))).toMatch(/^cannot parse --label/);
  });

  it("a mask of another shape or another affine is refused naming both geometries", () => {
    const image = grid();
    expect(sameGeometry(image, grid({ affine: image.affine.map((x, i) => (i === 3 ? x + 5e-4 : x)) }))).toBe(true);
    expect(refusalSync(() => checkSameGeometry(image, grid({ dims: [2, 3, 5] }), ["image a.nii.gz", "mask b.nii.gz"]))).toBe(
      "mask b.nii.gz is not on the voxel grid of image a.nii.gz (different dims): image a.nii.gz is 2x3x4 voxels, 1x1x1 mm, origin (0, 0, 0) mm, axes RAS; mask b.nii.gz is 2x3x5 voxels, 1x1x1 mm, origin (0, 0, 0) mm, axes RAS (the mask must have the image's dims and affine: resample it onto the image (e.g. 3D Slicer's Resample Image (BRAINS), or nibabel.processing.resample_from_to with order=0))",
    );
    const moved = grid({ affine: [-1, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1] });
    expect(refusalSync(() => checkSameGeometry(image, moved, ["image a.nii.gz", "mask b.nii.gz"]))).toMatch(
      /^mask b\.nii\.gz is not on the voxel grid of image a\.nii\.gz \(different affine\): image a\.nii\.gz is 2x3x4 voxels, 1x1x1 mm, origin \(0, 0, 0\) mm, axes RAS; mask b\.nii\.gz is 2x3x4 voxels, 1x1x1 mm, origin \(1, 0, 0\) mm, axes LAS \(/,
    );
  });
});

describe("volume RoI --roi z,y,x,d,h,w", () => {
  it("parses six whole numbers and builds the box in the Volume layout", () => {
    const box = parseVolumeRoi("1, 2,0,2,1,2");
    expect(box).toEqual({ z: 1, y: 2, x: 0, depth: 2, height: 1, width: 2 });
    const m = volumeRoiMask(box, [2, 3, 4]); // nx=2, ny=3, nz=4
    const inside = Array.from(m).flatMap((v, n) => (v ? [n] : []));
    // (i, j, k) in {0,1} x {2} x {1,2} -> (k * 3 + j) * 2 + i
    expect(inside).toEqual([10, 11, 16, 17]);
  });

  it("refuses bad forms and boxes outside the volume", () => {
    expect(refusalSync(() => parseVolumeRoi("1,2,3,4"))).toMatch(/^cannot parse volume RoI '1,2,3,4' \(use --roi z,y,x,d,h,w/);
    expect(refusalSync(() => parseVolumeRoi("1,2,3,4,5,0x6"))).toMatch(/^cannot parse volume RoI/);
    expect(refusalSync(() => checkVolumeRoi(parseVolumeRoi("3,0,0,2,1,1"), [2, 3, 4]))).toMatch(
      /^volume RoI z 3\.\.4, y 0\.\.0, x 0\.\.0 \(2x1x1\) is outside the volume of 4x3x2 voxels \(DxHxW\)/,
    );
    expect(refusalSync(() => checkVolumeRoi(parseVolumeRoi("0,0,0,0,1,1"), [2, 3, 4]))).toMatch(/^volume RoI is empty \(0x1x1 voxels\)/);
  });
});

describe("sniffing: a volume or a 2D image, by name and by content", () => {
  it("tells NIfTI (plain, gzip, v1, v2) from other files, and refuses a NIfTI name on other content", async () => {
    const n1 = build({ dim: [3, 2, 3, 4], type: "int16", values: RAMP });
    expect(isNiftiPath("a/b.NII.GZ")).toBe(true);
    expect(isNiftiPath("a/b.png")).toBe(false);
    expect(await sniffBytes(n1)).toEqual({ kind: "nifti", version: 1, gzip: false });
    expect(await sniffBytes(gzipSync(build({ version: 2, dim: [3, 2, 3, 4], type: "int16", values: RAMP })))).toEqual({
      kind: "nifti",
      version: 2,
      gzip: true,
    });
    const png = readFileSync(new URL("../samples/lesion.png", import.meta.url).pathname);
    expect(await sniffVolume(put("lesion.png", png))).toBe("other");
    expect(await sniffVolume(put("volume.dat", gzipSync(n1)))).toBe("nifti");
    expect(await refusal(sniffVolume(put("fake.nii.gz", gzipSync(png))))).toMatch(
      /fake\.nii\.gz is named as a NIfTI volume but holds gzip-compressed data that is not NIfTI \(give a NIfTI-1/,
    );
    expect(await refusal(sniffVolume(put("png.nii", png)))).toMatch(/png\.nii is named as a NIfTI volume but holds a PNG image/);
    expect(await refusal(sniffVolume(Buffer.from([0x1f, 0x8b, 1, 2, 3]), "bad.nii.gz"))).toMatch(
      /bad\.nii\.gz is named as a NIfTI volume but holds damaged gzip data/,
    );
    expect(await refusal(sniffVolume(join(dir, "nothing.png")))).toMatch(/^cannot read input file .*nothing\.png \(ENOENT\) \(give an image/);
  });
});

// ---- the real hippocampus volumes (../shared/data/hippocampus), skipped with a message when absent ----

const HIPPO = new URL("../../shared/data/hippocampus/", import.meta.url).pathname;
const haveHippo = existsSync(join(HIPPO, "manifest.json"));
if (!haveHippo) console.warn(`skipping the hippocampus NIfTI tests: ${HIPPO} is absent (the shared data sets are not on this machine)`);

interface HippoCase {
  id: string;
  image: string;
  mask: string;
  shape: [number, number, number];
  spacing_mm: [number, number, number];
}

describe.skipIf(!haveHippo)("hippocampus volumes (Medical Segmentation Decathlon Task04)", () => {
  const cases = (): HippoCase[] => (JSON.parse(readFileSync(join(HIPPO, "manifest.json"), "utf8")) as { cases: HippoCase[] }).cases;

  it("dims and spacing of several volumes and their label maps match the manifest", async () => {
    for (const c of cases().slice(0, 6)) {
      for (const file of [c.image, c.mask]) {
        const v = await readNifti(join(HIPPO, file));
        expect(v.dims, file).toEqual(c.shape);
        expect(v.spacing, file).toEqual(c.spacing_mm);
        expect(v.data.length).toBe(c.shape[0] * c.shape[1] * c.shape[2]);
      }
    }
  });

  // Known answers counted by an independent reader (Python gzip + struct over the raw voxels).
  it("known voxels and label counts: hippocampus_001 (uint8) and _004 (float32)", async () => {
    const img1 = await readNifti(join(HIPPO, "images/hippocampus_001.nii.gz"));
    expect(img1.source).toMatchObject({ kind: "nifti", version: 1, datatype: "uint8" });
    expect(img1.data.reduce((a, b) => a + b, 0)).toBe(3968524);
    expect(img1.data[1234]).toBe(71);
    expect(img1.affine).toEqual([1, 0, 0, 1, 0, 1, 0, 1, 0, 0, 1, 1, 0, 0, 0, 1]);
    const lab1 = await readNifti(join(HIPPO, "labels/hippocampus_001.nii.gz"));
    expect(labelsPresent(lab1)).toEqual([1, 2]);
    const count = (m: Uint8Array): number => m.reduce((a, b) => a + b, 0);
    expect(count(labelMask(lab1, [1]))).toBe(1324);
    expect(count(labelMask(lab1, [2]))).toBe(1624);
    expect(count(labelMask(lab1, [1, 2]))).toBe(2948);
    checkSameGeometry(img1, lab1, ["image", "mask"]);
    const img4 = await readNifti(join(HIPPO, "images/hippocampus_004.nii.gz"));
    expect(img4.source).toMatchObject({ datatype: "float32" });
    expect(img4.data[1234]).toBe(Math.fround(220.4818878173828));
    const lab4 = await readNifti(join(HIPPO, "labels/hippocampus_004.nii.gz"));
    expect([count(labelMask(lab4, [1])), count(labelMask(lab4, [2]))]).toEqual([1832, 1866]);
    expect(refusalSync(() => checkSameGeometry(img1, lab4, ["image hippocampus_001", "mask hippocampus_004"]))).toMatch(
      /\(different dims\): image hippocampus_001 is 35x51x35 voxels, 1x1x1 mm, .*; mask hippocampus_004 is 36x52x38 voxels/,
    );
    expect(refusalSync(() => labelMask(lab1, [3], "labels/hippocampus_001.nii.gz"))).toMatch(
      /^label 3 is not in labels\/hippocampus_001\.nii\.gz \(labels present: 1, 2\)/,
    );
  });

  it("round trip: read, write (.nii.gz and .nii), read again: same dims, affine and voxels", async () => {
    const out = tmp("segcause-nifti-rt-");
    for (const id of ["hippocampus_001", "hippocampus_004"]) {
      const v = await readNifti(join(HIPPO, `images/${id}.nii.gz`));
      for (const name of [`${id}.nii.gz`, `${id}.nii`]) {
        await writeNifti(join(out, name), v);
        const back = await readNifti(join(out, name));
        expect(back.dims).toEqual(v.dims);
        expect(back.affine).toEqual(v.affine);
        expect(back.spacing).toEqual(v.spacing);
        expect(back.data).toEqual(v.data);
        expect(back.source).toMatchObject({ version: 1, datatype: "float32" });
      }
    }
  });

  it("sniffs the real files as NIfTI", async () => {
    expect(await sniffVolume(join(HIPPO, "images/hippocampus_001.nii.gz"))).toBe("nifti");
  });
});
