/**
 * A NIfTI-1 or NIfTI-2 header as segcause uses it: which version and byte order, the voxel grid, the
 * datatype and where the voxels lie — checked so that every later step can trust it. Fields are read
 * by nifti-reader-js; this module decides what segcause accepts, and how many bytes the file must
 * hold, before any voxel buffer is allocated.
 */
import { type NIFTI1, type NIFTI2, readHeader } from "nifti-reader-js";
import { fail } from "../../errors.js";
import { MAX_VOLUME_VOXELS } from "./volume.js";

export const NIFTI1_HEADER_BYTES = 348;
export const NIFTI2_HEADER_BYTES = 540;

/** Header extensions end where the voxels start; more than this before them is a damaged header. */
const MAX_VOX_OFFSET = 64 * 2 ** 20;

export interface NiftiDatatype {
  code: number;
  name: string;
  bytes: number;
}

/** The scalar datatypes segcause reads, by NIfTI datatype code. */
export const NIFTI_DATATYPES: Record<number, NiftiDatatype> = Object.fromEntries(
  (
    [
      [2, "uint8", 1],
      [4, "int16", 2],
      [8, "int32", 4],
      [16, "float32", 4],
      [64, "float64", 8],
      [256, "int8", 1],
      [512, "uint16", 2],
      [768, "uint32", 4],
    ] as const
  ).map(([code, name, bytes]) => [code, { code, name, bytes }]),
);

/** Names of the datatypes segcause refuses, for the message. */
const OTHER_DATATYPES: Record<number, string> = {
  1: "binary (1 bit)",
  32: "complex64",
  128: "rgb24",
  1024: "int64",
  1280: "uint64",
  1536: "float128",
  1792: "complex128",
  2048: "complex256",
  2304: "rgba32",
};

export function datatypeName(code: number): string {
  return NIFTI_DATATYPES[code]?.name ?? OTHER_DATATYPES[code] ?? `datatype code ${code}`;
}

export interface NiftiHeader {
  version: 1 | 2;
  littleEndian: boolean;
  /** the fields as nifti-reader-js reads them */
  fields: NIFTI1 | NIFTI2;
  /** [nx, ny, nz] (a 2D file has nz = 1) */
  dims: [number, number, number];
  datatype: NiftiDatatype;
  /** byte offset of the first voxel */
  voxOffset: number;
  /** voxel bytes the header describes */
  voxelBytes: number;
  /** voxOffset + voxelBytes: the bytes the (uncompressed) file must hold */
  end: number;
}

const HINT = "give a .nii or .nii.gz volume (NIfTI-1 or NIfTI-2)";
const REDOWNLOAD = "the file is incomplete or damaged: copy it again from its source";

/** Version and byte order from sizeof_hdr (348 or 540, in either byte order), else undefined. */
export function niftiVersion(bytes: Uint8Array): { version: 1 | 2; littleEndian: boolean } | undefined {
  if (bytes.length < 4) return undefined;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, 4);
  for (const littleEndian of [true, false]) {
    const size = dv.getInt32(0, littleEndian);
    if (size === NIFTI1_HEADER_BYTES) return { version: 1, littleEndian };
    if (size === NIFTI2_HEADER_BYTES) return { version: 2, littleEndian };
  }
  return undefined;
}

/** The magic string at its place for the version ("n+1", "ni1" for a .hdr/.img pair, "n+2"), or "" when the bytes are too short. */
export function niftiMagic(bytes: Uint8Array, version: 1 | 2): string {
  const at = version === 1 ? 344 : 4;
  if (bytes.length < at + 4) return "";
  return Buffer.from(bytes.buffer, bytes.byteOffset + at, 4).toString("latin1");
}

/**
 * The checked header of `bytes` (the start of an uncompressed NIfTI file, at least its header).
 * Refuses, in one line naming `path`: not NIfTI, a .hdr/.img pair, a damaged header, 4D or more,
 * an unsupported datatype, too many voxels.
 */
export function parseNiftiHeader(bytes: Uint8Array, path: string): NiftiHeader {
  const v = niftiVersion(bytes);
  if (!v) fail(`${path} is not a NIfTI file (it does not start with a NIfTI-1 or NIfTI-2 header)`, HINT);
  const size = v.version === 1 ? NIFTI1_HEADER_BYTES : NIFTI2_HEADER_BYTES;
  if (bytes.length < size) fail(`${path} is truncated: it ends inside its NIfTI-${v.version} header (${bytes.length} of ${size} bytes)`, REDOWNLOAD);
  const magic = niftiMagic(bytes, v.version);
  if (magic === (v.version === 1 ? "ni1\0" : "ni2\0")) {
    fail(
      `${path} is the header of a NIfTI .hdr/.img pair; segcause reads single-file NIfTI`,
      "convert the pair to one .nii.gz (e.g. nibabel: nib.save(nib.load('x.hdr'), 'x.nii.gz'))",
    );
  }
  if (magic !== (v.version === 1 ? "n+1\0" : "n+2\0"))
    fail(`${path} is not a NIfTI file (its header size says NIfTI-${v.version} but the magic string is missing)`, HINT);

  let fields: NIFTI1 | NIFTI2;
  try {
    fields = readHeader(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + size) as ArrayBuffer);
  } catch (e) {
    fail(`${path} has a NIfTI header that cannot be read (${(e as Error).message})`, REDOWNLOAD);
  }
  const d = fields.dims;
  const rank = d[0];
  if (!Number.isInteger(rank) || rank < 1 || rank > 7) fail(`${path} has a damaged NIfTI header (dim[0] = ${rank}, not 1 to 7)`, REDOWNLOAD);
  const sizes = Array.from({ length: rank }, (_, i) => d[i + 1]);
  if (sizes.some((n) => !Number.isSafeInteger(n) || n < 1)) fail(`${path} has a damaged NIfTI header (dims ${sizes.join("x")})`, REDOWNLOAD);
  const dims: [number, number, number] = [sizes[0], sizes[1] ?? 1, sizes[2] ?? 1];
  if (sizes.slice(3).some((n) => n > 1)) {
    fail(
      `${path} is a ${rank}D NIfTI image (${sizes.join("x")}); segcause explains one 3D volume at a time`,
      "extract one volume first, e.g. fslroi in.nii.gz vol0.nii.gz 0 1, or nibabel: img.slicer[..., 0]",
    );
  }
  const datatype = NIFTI_DATATYPES[fields.datatypeCode];
  if (!datatype) {
    fail(
      `${path} stores its voxels as ${datatypeName(fields.datatypeCode)}, which segcause does not read`,
      "convert it to a scalar type (uint8, int8, int16, uint16, int32, uint32, float32 or float64), e.g. fslmaths in.nii.gz out.nii.gz -odt float",
    );
  }
  const voxels = dims[0] * dims[1] * dims[2];
  if (voxels > MAX_VOLUME_VOXELS)
    fail(
      `${path} has ${dims.join("x")} voxels, more than segcause reads in one volume (${MAX_VOLUME_VOXELS})`,
      "crop the volume around the structure, or resample it to a coarser spacing",
    );
  const voxOffset = fields.vox_offset;
  if (!Number.isSafeInteger(voxOffset) || voxOffset < size || voxOffset > MAX_VOX_OFFSET)
    fail(`${path} has a damaged NIfTI header (vox_offset ${voxOffset})`, REDOWNLOAD);
  const voxelBytes = voxels * datatype.bytes;
  return { version: v.version, littleEndian: v.littleEndian, fields, dims, datatype, voxOffset, voxelBytes, end: voxOffset + voxelBytes };
}
