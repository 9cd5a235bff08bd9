/**
 * Reads a NIfTI-1 or NIfTI-2 volume (.nii or .nii.gz) into a Volume: voxels as float32 after the
 * header's scaling, geometry from the sform/qform (see nifti-affine.ts). The file is read with a size
 * cap, gzip is inflated only up to what the header describes, and every refusal is one line naming
 * the file, the problem and the fix.
 */
import { fail } from "../../errors.js";
import { type ReadWhat, readFileBoundedAsync } from "../../util/read.js";
import { gunzipBounded, isGzip } from "./gunzip.js";
import { niftiAffine, spacingOfAffine } from "./nifti-affine.js";
import { NIFTI1_HEADER_BYTES, NIFTI2_HEADER_BYTES, type NiftiHeader, niftiVersion, parseNiftiHeader } from "./nifti-header.js";
import type { Volume } from "./volume.js";

export const NIFTI_READ: ReadWhat = {
  what: "NIfTI file",
  kind: "image",
  hint: "give a .nii or .nii.gz volume of at most 1 GiB (crop it first if it is larger)",
};

/** Output past the voxels that a .nii.gz may hold (dropped); more is not one NIfTI volume. */
const GZIP_SLACK = 2 ** 20;
const REDOWNLOAD = "the file is incomplete or damaged: copy it again from its source";

export async function readNifti(path: string): Promise<Volume> {
  return readNiftiBytes(await readFileBoundedAsync(path, NIFTI_READ), path);
}

/** A NIfTI file's bytes (as read from `path`, gzip-compressed or not) as a Volume. */
export async function readNiftiBytes(file: Uint8Array, path: string): Promise<Volume> {
  const gzip = isGzip(file);
  const bytes = gzip ? await inflate(file, path) : file;
  const h = parseNiftiHeader(bytes, path);
  if (bytes.length < h.end) {
    fail(
      `${path} is truncated: its header describes ${h.dims.join("x")} ${h.datatype.name} voxels (${h.voxelBytes} bytes) but it holds ${Math.max(0, bytes.length - h.voxOffset)}${gzip ? " (the gzip stream ends early)" : ""}`,
      REDOWNLOAD,
    );
  }
  const { affine } = niftiAffine(h, bytes, path);
  return {
    dims: h.dims,
    spacing: spacingOfAffine(affine),
    affine,
    data: voxels(h, bytes),
    source: { kind: "nifti", path, version: h.version, datatype: h.datatype.name },
  };
}

/** The uncompressed file, never more than its header's voxel bytes (plus a little slack). */
async function inflate(file: Uint8Array, path: string): Promise<Buffer> {
  const r = await gunzipBounded(file, { headBytes: NIFTI2_HEADER_BYTES, keep: (head) => parseNiftiHeader(head, path).end, slack: GZIP_SLACK });
  if (r.status === "corrupt") fail(`${path} is gzip-compressed but cannot be decompressed (${r.reason})`, REDOWNLOAD);
  if (r.status === "too-long")
    fail(
      `${path} decompresses to more data than its NIfTI header describes (over ${GZIP_SLACK} extra bytes), so it is not one NIfTI volume`,
      REDOWNLOAD,
    );
  // A stream that ends early still holds whatever came before; the caller names what is missing.
  if (r.status === "truncated" && r.data.length < (niftiVersion(r.data)?.version === 2 ? NIFTI2_HEADER_BYTES : NIFTI1_HEADER_BYTES)) {
    fail(`${path} is truncated: its gzip stream ends ${r.data.length ? "inside" : "before"} the NIfTI header`, REDOWNLOAD);
  }
  // Every voxel came out but the stream stops before its checksum: they cannot be trusted.
  if (r.status === "truncated" && r.data.length >= parseNiftiHeader(r.data, path).end)
    fail(`${path} is truncated: its gzip stream stops short of its end, so its checksum cannot be verified`, REDOWNLOAD);
  return r.data;
}

export const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

type NumberArray = ArrayLike<number>;
const ARRAYS: Record<string, new (b: ArrayBuffer) => NumberArray> = {
  uint8: Uint8Array,
  int8: Int8Array,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
  float32: Float32Array,
  float64: Float64Array,
};
const GETTERS: Record<string, (dv: DataView, at: number, le: boolean) => number> = {
  uint8: (dv, at) => dv.getUint8(at),
  int8: (dv, at) => dv.getInt8(at),
  int16: (dv, at, le) => dv.getInt16(at, le),
  uint16: (dv, at, le) => dv.getUint16(at, le),
  int32: (dv, at, le) => dv.getInt32(at, le),
  uint32: (dv, at, le) => dv.getUint32(at, le),
  float32: (dv, at, le) => dv.getFloat32(at, le),
  float64: (dv, at, le) => dv.getFloat64(at, le),
};

/** The voxels as float32, scaled by scl_slope/scl_inter (a slope of 0 or not finite means unscaled, as the standard says). */
function voxels(h: NiftiHeader, bytes: Uint8Array): Float32Array {
  const n = h.dims[0] * h.dims[1] * h.dims[2];
  const start = bytes.byteOffset + h.voxOffset;
  const slope = h.fields.scl_slope;
  const inter = Number.isFinite(h.fields.scl_inter) ? h.fields.scl_inter : 0;
  const scaled = Number.isFinite(slope) && slope !== 0 && !(slope === 1 && inter === 0);
  const out = new Float32Array(n);
  if (h.littleEndian === LITTLE_ENDIAN_HOST) {
    // A copy aligned for the typed array (the voxels may start at any byte offset).
    const raw = new ARRAYS[h.datatype.name](bytes.buffer.slice(start, start + h.voxelBytes) as ArrayBuffer);
    if (!scaled) out.set(raw);
    else for (let i = 0; i < n; i++) out[i] = raw[i] * slope + inter;
  } else {
    const dv = new DataView(bytes.buffer, start, h.voxelBytes);
    const get = GETTERS[h.datatype.name];
    const size = h.datatype.bytes;
    for (let i = 0; i < n; i++) {
      const v = get(dv, i * size, h.littleEndian);
      out[i] = scaled ? v * slope + inter : v;
    }
  }
  return out;
}
