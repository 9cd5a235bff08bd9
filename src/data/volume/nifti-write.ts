/**
 * Writes a volume (a map, its standard errors, a mask) as a NIfTI-1 float32 file whose sform and qform
 * are the given affine, so it overlays its input in any viewer. The header comes from nifti-reader-js
 * (`toArrayBuffer`); gzip when the name ends in .gz; the file appears complete or not at all.
 */
import { promisify } from "node:util";
import { gzip as gzipCallback } from "node:zlib";
import { NIFTI1 } from "nifti-reader-js";
import { writeFileAtomic } from "../../util/atomic.js";
import { LITTLE_ENDIAN_HOST } from "./nifti.js";
import { qformOfAffine } from "./nifti-affine.js";
import { NIFTI1_HEADER_BYTES } from "./nifti-header.js";
import type { Volume } from "./volume.js";

const gzip = promisify(gzipCallback);

export interface NiftiWriteOptions {
  /** the header's description (descrip, at most 79 ASCII characters are kept) */
  description?: string;
  /** NIfTI xform code for sform and qform: 1 scanner anatomical (default), 2 aligned, 3 Talairach, 4 MNI */
  xformCode?: number;
}

/** 348 header bytes + 4 extension-flag bytes (no extensions): where the voxels start. */
const VOX_OFFSET = NIFTI1_HEADER_BYTES + 4;

/** The complete file: header then little-endian float32 voxels (gzipped for a .gz name by writeNifti). */
export function niftiBytes(volume: Pick<Volume, "dims" | "affine" | "data">, opts: NiftiWriteOptions = {}): Uint8Array {
  const [nx, ny, nz] = volume.dims;
  if (volume.data.length !== nx * ny * nz) throw new Error(`writeNifti: ${volume.data.length} voxels for dims ${volume.dims.join("x")}`);
  if (volume.affine.length !== 16) throw new Error(`writeNifti: the affine has ${volume.affine.length} numbers, not 16`);
  const code = opts.xformCode ?? 1;
  const h = new NIFTI1();
  h.littleEndian = true;
  h.magic = "n+1";
  h.dims = [3, nx, ny, nz, 1, 1, 1, 1];
  h.datatypeCode = NIFTI1.TYPE_FLOAT32;
  h.numBitsPerVoxel = 32;
  h.vox_offset = VOX_OFFSET;
  h.scl_slope = 1;
  h.scl_inter = 0;
  h.xyzt_units = NIFTI1.UNITS_MM;
  h.description = (opts.description ?? "segcause").replace(/[^\x20-\x7e]/g, "?").slice(0, 79);
  h.affine = [0, 1, 2, 3].map((r) => volume.affine.slice(4 * r, 4 * r + 4));
  h.sform_code = code;
  const q = qformOfAffine(volume.affine);
  const pixdim = q?.pixdim ?? [0, 1, 2].map((c) => Math.hypot(volume.affine[c], volume.affine[4 + c], volume.affine[8 + c]));
  h.pixDims = [q?.qfac ?? 1, ...pixdim, 0, 0, 0, 0];
  if (q) {
    // A sheared affine has no qform: it is in the sform only (qform_code 0).
    h.qform_code = code;
    [h.quatern_b, h.quatern_c, h.quatern_d] = [q.b, q.c, q.d];
    [h.qoffset_x, h.qoffset_y, h.qoffset_z] = q.offset;
  }
  const header = new Uint8Array(h.toArrayBuffer());
  const out = new Uint8Array(VOX_OFFSET + 4 * volume.data.length);
  out.set(header.subarray(0, VOX_OFFSET));
  if (LITTLE_ENDIAN_HOST) new Float32Array(out.buffer, VOX_OFFSET, volume.data.length).set(volume.data);
  else {
    const dv = new DataView(out.buffer, VOX_OFFSET);
    for (let i = 0; i < volume.data.length; i++) dv.setFloat32(4 * i, volume.data[i], true);
  }
  return out;
}

/** Writes `volume` to `path` (.nii, or gzip-compressed .nii.gz) atomically. */
export async function writeNifti(path: string, volume: Pick<Volume, "dims" | "affine" | "data">, opts: NiftiWriteOptions = {}): Promise<void> {
  const bytes = niftiBytes(volume, opts);
  await writeFileAtomic(path, /\.gz$/i.test(path) ? await gzip(bytes) : bytes);
}
