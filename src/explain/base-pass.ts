/**
 * What every method does before and after its own estimator: the unperturbed forward pass that
 * resolves the Target (m(X), and the reference mask when the model's own prediction is explained),
 * and the provenance record of the Attribution. Shared so that every method reports the same base
 * outcome and the same provenance fields.
 */
import type { Case } from "../data/case.js";
import type { Model } from "../model/model.js";
import type { Runner } from "../model/runner.js";
import { resolveTarget, type Target, type TargetSpec } from "../target/target.js";
import { runtimeVersions } from "../version.js";
import type { Provenance } from "./attribution.js";

export interface BasePass {
  /** the unperturbed model input (CHW) */
  input: Float32Array;
  /** the model's raw output for it (one batch slot) */
  output: Float32Array;
  target: Target;
}

/** Runs the unperturbed input once through `runner` and resolves the Target from its output. */
export async function unperturbedPass(model: Model, kase: Case, spec: TargetSpec, runner: Runner): Promise<BasePass> {
  const input = model.preprocess(kase.image);
  let output: Float32Array | undefined;
  await runner.evaluate(
    [0],
    (_, dst) => dst.set(input),
    (data) => {
      output = data.slice(0, data.length / runner.batchSize);
      return 0;
    },
  );
  return { input, output: output!, target: resolveTarget(model, kase, spec, output!) };
}

export interface ProvenanceFields {
  method: string;
  seed: number;
  settings: Record<string, unknown>;
  intervention: Record<string, unknown>;
  batchSize: number;
}

export function buildProvenance(model: Model, kase: Case, target: Target, f: ProvenanceFields): Provenance {
  return {
    versions: runtimeVersions(),
    createdAt: new Date().toISOString(),
    model: { path: model.path, sha256: model.sha256, card: model.card, cardSource: model.resolved.source, assumptions: model.resolved.assumptions },
    case: { id: kase.id, imagePath: kase.imagePath, imageSha256: kase.imageSha256, maskPath: kase.maskPath, maskSha256: kase.maskSha256 },
    target: {
      roi: target.region.bbox,
      roiKind: target.region.kind,
      outcome: target.outcome,
      reference: target.referenceKind,
      channel: model.card.output.channel,
      threshold: model.card.output.threshold,
    },
    method: f.method,
    seed: f.seed,
    settings: f.settings,
    intervention: f.intervention,
    runner: { batchSize: f.batchSize, threads: model.threads, workers: model.workers, device: model.device },
  };
}
