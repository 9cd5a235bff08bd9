/**
 * Target: what is explained — a region, the class channel and threshold (from the model card),
 * the reference mask (ground truth, or the model's own unperturbed prediction) and the outcome.
 */
import { fail } from "../errors.js";
import type { Case } from "../data/case.js";
import type { Model } from "../model/model.js";
import { binarize, makeOutcome, type OutcomeFn, type OutcomeName } from "./outcome.js";
import { Region, type RoiRect } from "./roi.js";

export interface TargetSpec {
  /** rectangle in model-input pixels, or a 0/1 mask at the model's input size */
  roi: RoiRect | { mask: Uint8Array };
  /** default "dice" (the paper's) */
  outcome?: OutcomeName;
  /** default "auto": ground truth when the case has a mask, else the prediction */
  reference?: "auto" | "ground-truth" | "prediction";
}

export interface Target {
  region: Region;
  outcome: OutcomeName;
  referenceKind: "ground-truth" | "prediction";
  /** full-image 0/1 reference mask */
  reference: Uint8Array;
  score: OutcomeFn;
  /** m(X): the outcome of the unperturbed input */
  base: number;
}

/** Resolves a spec against the model's unperturbed output (`baseOutput`, batch slot 0). */
export function resolveTarget(model: Model, kase: Case, spec: TargetSpec, baseOutput: Float32Array): Target {
  const H = model.height, W = model.width;
  const region = "mask" in spec.roi ? Region.mask(spec.roi.mask, H, W) : Region.rect(spec.roi, H, W);
  const outcome = spec.outcome ?? "dice";
  const wanted = spec.reference ?? "auto";
  if (wanted === "ground-truth" && !kase.mask) fail("reference 'ground-truth' needs a mask", "pass --mask, or use --reference prediction");
  const referenceKind = wanted === "auto" ? (kase.mask ? "ground-truth" : "prediction") : wanted;
  const layout = model.outputLayout!;
  const reference = referenceKind === "ground-truth" ? kase.mask! : binarize(model.card.output, layout, baseOutput);
  if (outcome !== "mean-prob") {
    let g = 0;
    for (const p of region.pixels) g += reference[p];
    if (g === 0) {
      fail(
        `the ${referenceKind === "ground-truth" ? "ground-truth mask" : "model's prediction"} is empty inside the RoI (${region.describe()}), so Dice is 0 whatever the input`,
        "move the RoI onto the structure, or use --outcome mean-prob",
      );
    }
  }
  const score = makeOutcome(outcome, model.card.output, layout, region, reference);
  return { region, outcome, referenceKind, reference, score, base: score(baseOutput, 0) };
}
