/**
 * Telling a volume from a 2D image: by name (.nii, .nii.gz) and by content (the NIfTI header, inside
 * gzip or not). A file whose name says NIfTI but whose content is not is refused, naming what it holds.
 */
import { fail } from "../../errors.js";
import { readFileBoundedAsync } from "../../util/read.js";
import { gunzipBounded, isGzip } from "./gunzip.js";
import { NIFTI_READ } from "./nifti.js";
import { NIFTI2_HEADER_BYTES, niftiMagic, niftiVersion } from "./nifti-header.js";

export function isNiftiPath(path: string): boolean {
  return /\.nii(\.gz)?$/i.test(path);
}

export type VolumeSniff = { kind: "nifti"; version: 1 | 2; gzip: boolean } | { kind: "other"; gzip: boolean; holds: string };

/** What the bytes hold, from their first bytes (a gzip file is inflated only as far as a NIfTI header). */
export async function sniffBytes(bytes: Uint8Array): Promise<VolumeSniff> {
  const gzip = isGzip(bytes);
  let head: Uint8Array = bytes;
  if (gzip) {
    const r = await gunzipBounded(bytes, {
      headBytes: NIFTI2_HEADER_BYTES,
      keep: (h) => Math.min(h.length, NIFTI2_HEADER_BYTES),
      slack: Infinity,
      stopAtKeep: true,
    });
    if (r.status !== "complete" && r.data.length === 0) return { kind: "other", gzip, holds: "damaged gzip data" };
    head = r.data;
  }
  const v = niftiVersion(head);
  if (v && niftiMagic(head, v.version) === (v.version === 1 ? "n+1\0" : "n+2\0")) return { kind: "nifti", version: v.version, gzip };
  if (v && niftiMagic(head, v.version) === (v.version === 1 ? "ni1\0" : "ni2\0"))
    return { kind: "other", gzip, holds: "the header of a NIfTI .hdr/.img pair" };
  return { kind: "other", gzip, holds: gzip ? "gzip-compressed data that is not NIfTI" : describeContent(head) };
}

/**
 * "nifti" or "other" for the file at `path` (or its bytes, already read), refusing a file named
 * .nii/.nii.gz that does not hold a NIfTI volume.
 */
export async function sniffVolume(input: string | Uint8Array, name = typeof input === "string" ? input : "the input"): Promise<"nifti" | "other"> {
  const bytes =
    typeof input === "string"
      ? await readFileBoundedAsync(
          input,
          isNiftiPath(input)
            ? NIFTI_READ
            : { ...NIFTI_READ, what: "input file", hint: "give an image (PNG, JPEG, TIFF) or a volume (.nii, .nii.gz)" },
        )
      : input;
  const s = await sniffBytes(bytes);
  if (s.kind === "nifti") return "nifti";
  if (isNiftiPath(name))
    fail(
      `${name} is named as a NIfTI volume but holds ${s.holds}`,
      "give a NIfTI-1 or NIfTI-2 .nii/.nii.gz file, or rename the file to match what it holds",
    );
  return "other";
}

const SIGNATURES: [string, (b: Uint8Array) => boolean][] = [
  ["a PNG image", (b) => b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47],
  ["a JPEG image", (b) => b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff],
  ["a TIFF image", (b) => (b[0] === 0x49 && b[1] === 0x49 && b[2] === 0x2a) || (b[0] === 0x4d && b[1] === 0x4d && b[3] === 0x2a)],
  ["a DICOM file", (b) => b.length >= 132 && Buffer.from(b.buffer, b.byteOffset + 128, 4).toString("latin1") === "DICM"],
];

function describeContent(b: Uint8Array): string {
  if (b.length === 0) return "nothing (it is empty)";
  return SIGNATURES.find(([, test]) => test(b))?.[0] ?? "no NIfTI header";
}
