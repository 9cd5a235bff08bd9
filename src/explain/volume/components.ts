/**
 * Components on volumes: the component engine (components.ts) on a 3D model's box. The unperturbed
 * input and every donor are volumes brought into model space and placed in the box exactly as explain
 * places them (loadVolumeCase); feature maps are [N, C, D, H, W], so channel units are channel groups
 * and spatial units are boxes of the feature map. The Target reads the suffix's [N, C, D, H, W] output
 * at the RoI's voxels; the provenance is a volume's (spacing, affine, model space).
 */
import type { VolumeCase } from "../../data/volume/volume-case.js";
import { fail } from "../../errors.js";
import type { VolumeModel } from "../../model/volume-model.js";
import { outcomeUnits } from "../../target/outcome.js";
import { resolveVolumeTarget, type VolumeTarget, type VolumeTargetSpec } from "../../target/volume-target.js";
import { type ComponentParts, type ComponentRunOptions, componentEngine } from "../components.js";
import { type KeyIdentity, RunCore } from "../run.js";
import { VOLUME_BATCH_SIZE } from "./engine.js";
import { volumeProvenance } from "./provenance.js";

/** The run of a volume: the shared RunCore with a volume's identity (voxels and grid, mask, RoI) in its checkpoint keys. */
class VolumeComponentRun extends RunCore {
  constructor(
    readonly model: VolumeModel,
    readonly kase: VolumeCase,
    readonly target: VolumeTarget,
    run: ComponentRunOptions,
    t0: number,
  ) {
    super(run, model.device, t0);
  }

  get identity(): Record<keyof KeyIdentity, unknown> {
    const { model, kase, target } = this;
    return {
      model: model.sha256,
      image: kase.imageSha256,
      // a label map's hash is the whole map's: the labels chosen from it (--label) decide the reference too
      mask: kase.maskSha256 === undefined ? null : kase.labels ? { sha256: kase.maskSha256, labels: kase.labels } : kase.maskSha256,
      card: model.card,
      seed: this.seed,
      target: { roi: target.describe, bounds: target.roiBounds, outcome: target.outcome, ref: target.referenceKind },
    };
  }
}

/** The components result on a volume: the shared parts, the outcome's fields and a volume's provenance. */
export interface VolumeComponentEffects extends ComponentParts {
  valueUnits: string;
  baseOutcome: number;
  outcome: VolumeTarget["outcome"];
  reference: VolumeTarget["referenceKind"];
  /** the RoI in words (a box of the input volume's voxels, or a structure) */
  roi: string;
  tau: number;
  forwardPasses: number;
  wallMs: number;
  notes: string[];
  provenance: Record<string, unknown>;
}

export interface VolumeComponentOptions extends ComponentRunOptions {
  /** donor volumes of the same data set, each loaded with the model's card (needed by resample and mean) */
  donors?: VolumeCase[];
}

/**
 * One line when the card's sliding windows would need more than one window for this volume: a
 * component's activations are those of one pass over one box, and stitching the suffix's windows is
 * not done. A volume that fits one window is one box (its output is that window's), as with "centre".
 */
export function checkComponentPlacement(kase: VolumeCase): void {
  const p = kase.placement;
  if (p.kind === "sliding" && p.box.some((b, a) => b > p.patch[a]))
    fail(
      `components do not run over sliding windows, and ${kase.id} (${[...p.box].reverse().join("x")} voxels DxHxW in the model's space, padded to at least one window) needs more than one ${[...p.patch].reverse().join("x")} window of this model's card`,
      'use a volume that fits one window (crop it about the structure), or a card with input.placement {"kind": "centre"}; `segcause explain --method pdcr` runs over windows',
    );
}

export async function explainVolumeComponents(
  model: VolumeModel,
  kase: VolumeCase,
  targetSpec: VolumeTargetSpec,
  opts: VolumeComponentOptions = {},
): Promise<VolumeComponentEffects> {
  const t0 = Date.now();
  checkComponentPlacement(kase);
  const { donors: donorCases = [], ...rest } = opts;
  // boxes of a volume's activations are large: volumes batch as `explain` batches them
  const run = { ...rest, batchSize: rest.batchSize ?? VOLUME_BATCH_SIZE };
  for (const d of donorCases) checkComponentPlacement(d);
  const r = await componentEngine(
    {
      model,
      input: kase.input,
      donors: donorCases.map((d) => d.input),
      donorNoun: "volume",
      open: (output) => new VolumeComponentRun(model, kase, resolveVolumeTarget(model, kase, targetSpec, output), run, t0),
      checkFeatureMap: (t, d, level) => {
        if (d.length !== 5)
          fail(
            `tensor ${t} has shape [${d.join(", ")}]; the ${level} level on a 3D model needs an [N, C, D, H, W] feature map`,
            "choose a 3D convolutional feature map (components --list --level layer)",
          );
      },
    },
    donorCases.map((d) => d.imageSha256),
    run,
  );
  const { ctx } = r;
  const { target } = ctx;
  return {
    ...r.parts,
    valueUnits: outcomeUnits(target.outcome),
    baseOutcome: target.base,
    outcome: target.outcome,
    reference: target.referenceKind,
    roi: target.describe,
    tau: r.tau,
    forwardPasses: r.forwardPasses,
    wallMs: Date.now() - t0,
    notes: [...kase.notes, ...r.notes, ...ctx.checkpointNotes],
    provenance: volumeProvenance(model, kase, target, {
      method: "components",
      seed: ctx.seed,
      settings: r.settings,
      intervention: {
        name: `${r.parts.ablation} ablation`,
        // each donor as the model saw it: its voxels' hash and the transform into model space
        donors: donorCases.map((d) => ({ id: d.id, path: d.imagePath, sha256: d.imageSha256, dims: d.volume.dims, spacing: d.volume.spacing })),
      },
      runner: { batchSize: r.batchSize, threads: model.threads, device: model.device },
    }),
  };
}
