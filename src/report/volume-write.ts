/**
 * Writes a volume Attribution: map.nii.gz and stderr.nii.gz on the input volume's grid with its
 * affine (so they overlay the input in any viewer), map.json (effects per box, or no units for a
 * voxel map; notes, provenance with spacing, affine and placement), for a DICOM input a Parametric Map referencing the source
 * series, then manifest.json last: a folder with a manifest is complete.
 */
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { parametricMapBytes, parametricMapDataset } from "../data/volume/dicom/index.js";
import { niftiBytes } from "../data/volume/nifti-write.js";
import type { VolumeCase } from "../data/volume/volume-case.js";
import type { VolumeAttribution } from "../explain/volume/engine.js";
import { writeManifest, writeStaged } from "../util/atomic.js";
import { volumeMosaic } from "./mosaic.js";
import type { ScaleSpec } from "./scale.js";

export interface WrittenVolume {
  dir: string;
  files: Record<string, string>;
}

export async function writeVolumeAttribution(
  a: VolumeAttribution,
  kase: VolumeCase,
  dir: string,
  o: { scale?: ScaleSpec } = {},
): Promise<WrittenVolume> {
  await rm(join(dir, "manifest.json"), { force: true });
  const grid = { dims: a.dims, affine: a.affine };
  // Box methods give causal effects of boxes; gradient methods and RISE a value per voxel, in their own units.
  const boxes = a.unitKind === "box";
  const what = boxes ? "effect" : "map";
  const contents: Record<string, string | Uint8Array> = {
    "map.nii.gz": gzipSync(niftiBytes({ ...grid, data: a.map }, { description: `segcause ${a.method} ${what} (${a.valueUnits})` })),
    "stderr.nii.gz": gzipSync(niftiBytes({ ...grid, data: a.stderrMap }, { description: `segcause ${a.method} standard error` })),
  };
  const notes = [...a.notes];
  // Voxels the model's box does not see are NaN in the NIfTI maps, 0 (no effect) in the DICOM map and the picture.
  const seen = a.map.map((v) => (Number.isFinite(v) ? v : 0));
  if (kase.volume.source.kind === "dicom") {
    // Viewers of a DICOM series read maps as DICOM objects on the same frame of reference.
    contents["map-parametric.dcm"] = parametricMapBytes(
      parametricMapDataset(seen, kase.volume, {
        seriesDescription: `segcause ${a.method} ${boxes ? "effect map" : "map"}`,
        contentLabel: "SEGCAUSE_MAP",
        quantity: boxes ? `causal effect on the RoI (${a.valueUnits})` : a.valueUnits,
      }),
    );
  }
  contents["mosaic.png"] = await volumeMosaic({
    dims: a.dims,
    spacing: a.spacing,
    affine: a.affine,
    image: kase.volume.data,
    map: seen,
    roi: a.roiMask,
    signed: a.signed,
    scale: o.scale,
    valueUnits: a.valueUnits,
    title: boxes ? `${a.method}: effect of each box on the RoI's ${a.outcome} (${kase.id})` : `${a.method}: map per voxel for the RoI (${kase.id})`,
  });
  const { map: _m, stderrMap: _s, roiMask: _r, ...rest } = a;
  contents["map.json"] = JSON.stringify({ ...rest, notes }, (_, v) => (typeof v === "number" && !Number.isFinite(v) ? null : v), 2);
  await writeStaged(dir, contents, "manifest.json");
  const files = Object.fromEntries(Object.keys(contents).map((n) => [n, join(dir, n)]));
  await writeManifest(dir, JSON.stringify({ format: "segcause.volume-result/1", method: a.method, files: Object.keys(contents) }, null, 2));
  files["manifest.json"] = join(dir, "manifest.json");
  a.notes = notes;
  return { dir, files };
}
