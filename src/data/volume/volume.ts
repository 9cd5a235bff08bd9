/**
 * Volume: a 3D scalar image with its geometry, whatever file it came from (NIfTI, a DICOM series, a
 * multi-frame DICOM). One layout for every reader, so models, masks and writers never ask where a
 * volume came from.
 *
 * Layout: voxel (i, j, k) is `data[(k * ny + j) * nx + i]` — i fastest, as NIfTI stores it. A model's
 * [D, H, W] input axes are (k, j, i).
 * Geometry: `affine` maps (i, j, k, 1) to world millimetres in RAS+ (NIfTI's convention; DICOM's LPS
 * patient coordinates are converted by negating x and y), row-major 4x4.
 */
export interface Volume {
  /** voxels per axis [nx, ny, nz] */
  dims: [number, number, number];
  /** voxel size in mm along i, j, k (the lengths of the affine's first three columns) */
  spacing: [number, number, number];
  /** voxel → RAS+ mm, row-major 4x4 (16 numbers) */
  affine: number[];
  /** intensities after the file's scaling (NIfTI scl_slope/inter, DICOM rescale slope/intercept) */
  data: Float32Array;
  /** where the voxels came from, for provenance and for writers that reference the source */
  source: VolumeSource;
}

export type VolumeSource =
  | { kind: "nifti"; path: string; version: 1 | 2; datatype: string }
  | {
      kind: "dicom";
      path: string;
      transferSyntax: string;
      seriesInstanceUid: string;
      studyInstanceUid?: string;
      frameOfReferenceUid?: string;
      modality?: string;
      seriesDescription?: string;
      /** the SOP Instance UID of each slice k (one file per slice), or of the multi-frame file */
      sopInstanceUids: string[];
      sopClassUid?: string;
    };

/** The most voxels segcause holds in one volume, read or resampled, whatever the format (their float32 copy is 1 GiB). */
export const MAX_VOLUME_VOXELS = 2 ** 28;

export function voxelCount(v: Pick<Volume, "dims">): number {
  return v.dims[0] * v.dims[1] * v.dims[2];
}

/** "48x64x40 voxels, 1x1x1.5 mm" — how a geometry is named in messages. */
export function describeGeometry(v: Pick<Volume, "dims" | "spacing">): string {
  const mm = v.spacing.map((s) => Number(s.toPrecision(4))).join("x");
  return `${v.dims.join("x")} voxels, ${mm} mm`;
}

/**
 * The direction each voxel axis (i, j, k) points to most, as nibabel's axis codes: "RAS" means i runs
 * to the right, j to anterior, k to superior.
 */
export function axisCodes(affine: number[]): string {
  const names = [
    ["L", "R"],
    ["P", "A"],
    ["I", "S"],
  ];
  return [0, 1, 2]
    .map((c) => {
      const col = [affine[c], affine[4 + c], affine[8 + c]];
      const w = col.reduce((best, x, r) => (Math.abs(x) > Math.abs(col[best]) ? r : best), 0);
      return names[w][col[w] >= 0 ? 1 : 0];
    })
    .join("");
}

/** "origin (1, 1, 1) mm, axes RAS" — where a grid lies in the world, for messages next to describeGeometry. */
export function describePlacement(v: Pick<Volume, "affine">): string {
  const o = [3, 7, 11].map((n) => Number(v.affine[n].toPrecision(6))).join(", ");
  return `origin (${o}) mm, axes ${axisCodes(v.affine)}`;
}
