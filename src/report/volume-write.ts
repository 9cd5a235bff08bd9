/**
 * Writes a volume Attribution: map.nii.gz and stderr.nii.gz on the input volume's grid with its
 * affine (so they overlay the input in any viewer), map.json (effects per box, notes, provenance
 * with spacing, affine and placement), for a DICOM input a Parametric Map referencing the source
 * series, then manifest.json last: a folder with a manifest is complete.
 */
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { niftiBytes } from "../data/volume/nifti-write.js";
import { parametricMapBytes, parametricMapDataset } from "../data/volume/dicom/index.js";
import type { VolumeCase } from "../data/volume/volume-case.js";
import type { VolumeAttribution } from "../explain/volume/engine.js";
import { writeManifest, writeStaged } from "../util/atomic.js";

/**
 * PNG views of a volume map (e.g. a mosaic of slices through the RoI): given the volume's dims, the
 * image, the map and the RoI mask on the volume grid, the files to add by name.
 */
export type VolumeViews = (v: {
  dims: [number, number, number];
  image: Float32Array;
  map: Float32Array;
  roiMask: Uint8Array;
  signed: boolean;
}) => Promise<Record<string, Uint8Array>>;

export interface WrittenVolume {
  dir: string;
  files: Record<string, string>;
}

export async function writeVolumeAttribution(
  a: VolumeAttribution,
  kase: VolumeCase,
  dir: string,
  o: { views?: VolumeViews } = {},
): Promise<WrittenVolume> {
  await rm(join(dir, "manifest.json"), { force: true });
  const grid = { dims: a.dims, affine: a.affine };
  const contents: Record<string, string | Uint8Array> = {
    "map.nii.gz": gzipSync(niftiBytes({ ...grid, data: a.map }, { description: `segcause ${a.method} effect (${a.valueUnits})` })),
    "stderr.nii.gz": gzipSync(niftiBytes({ ...grid, data: a.stderrMap }, { description: `segcause ${a.method} standard error` })),
  };
  const notes = [...a.notes];
  if (kase.volume.source.kind === "dicom") {
    // Viewers of a DICOM series read maps as DICOM objects on the same frame of reference.
    const finite = a.map.map((v) => (Number.isFinite(v) ? v : 0));
    contents["map-parametric.dcm"] = parametricMapBytes(
      parametricMapDataset(finite, kase.volume, {
        seriesDescription: `segcause ${a.method} effect map`,
        contentLabel: "SEGCAUSE_MAP",
        quantity: `causal effect on the RoI (${a.valueUnits})`,
      }),
    );
  }
  if (o.views) Object.assign(contents, await o.views({ dims: a.dims, image: kase.volume.data, map: a.map, roiMask: a.roiMask, signed: true }));
  else notes.push("no PNG views for volumes yet: open map.nii.gz over the input volume in a viewer (ITK-SNAP, 3D Slicer, NiiVue)");
  const { map: _m, stderrMap: _s, roiMask: _r, ...rest } = a;
  contents["map.json"] = JSON.stringify({ ...rest, notes }, (_, v) => (typeof v === "number" && !Number.isFinite(v) ? null : v), 2);
  await writeStaged(dir, contents, "manifest.json");
  const files = Object.fromEntries(Object.keys(contents).map((n) => [n, join(dir, n)]));
  await writeManifest(dir, JSON.stringify({ format: "segcause.volume-result/1", method: a.method, files: Object.keys(contents) }, null, 2));
  files["manifest.json"] = join(dir, "manifest.json");
  a.notes = notes;
  return { dir, files };
}
