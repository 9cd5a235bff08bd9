/** The provenance of a volume Attribution, the same for every method on volumes (boxes, voxels). */
import { modelSpaceRecord } from "../../data/volume/model-space.js";
import type { VolumeCase } from "../../data/volume/volume-case.js";
import type { VolumeNet } from "../../model/volume-model.js";
import type { VolumeTarget } from "../../target/volume-target.js";
import { VERSION } from "../../version.js";

export interface VolumeRunRecord {
  method: string;
  seed: number;
  /** every option and run-time setting that changes the map */
  settings: Record<string, unknown>;
  intervention: unknown;
  runner: { batchSize: number; threads: number; device?: string };
  /** samples scored and model passes run (with sliding windows, one per window) */
  passes?: Record<string, unknown>;
}

export function volumeProvenance(model: VolumeNet, kase: VolumeCase, target: VolumeTarget, r: VolumeRunRecord): Record<string, unknown> {
  const { dims, spacing, affine } = kase.volume;
  return {
    versions: { segcause: VERSION },
    createdAt: new Date().toISOString(),
    model: { path: model.path, sha256: model.sha256, card: model.card, cardPath: model.cardPath },
    case: {
      id: kase.id,
      imagePath: kase.imagePath,
      imageSha256: kase.imageSha256,
      source: kase.volume.source.kind,
      maskPath: kase.maskPath,
      maskSha256: kase.maskSha256,
      labels: kase.labels,
    },
    volume: { dims, spacing, affine, placement: kase.placement, modelSpace: modelSpaceRecord(kase.space) },
    target: {
      roi: target.describe,
      roiBounds: target.roiBounds,
      outcome: target.outcome,
      reference: target.referenceKind,
      channel: model.card.output.channel,
      threshold: model.card.output.threshold,
    },
    method: r.method,
    seed: r.seed,
    settings: r.settings,
    intervention: r.intervention,
    runner: r.runner,
    ...(r.passes ? { passes: r.passes } : {}),
  };
}
