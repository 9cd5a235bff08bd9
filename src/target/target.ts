/**
 * Target: what is explained — a region, the class channel and threshold (from the model card),
 * the reference mask (ground truth, or the model's own unperturbed prediction) and the outcome.
 */

import type { Case } from "../data/case.js";
import { fail } from "../errors.js";
import type { ModelCard } from "../model/card.js";
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
  checkBaseOutput(model, baseOutput);
  const H = model.height,
    W = model.width;
  const region = "mask" in spec.roi ? Region.mask(spec.roi.mask, H, W) : Region.rect(spec.roi, H, W);
  const outcome = spec.outcome ?? "dice";
  const wanted = spec.reference ?? "auto";
  if (wanted === "ground-truth" && !kase.mask) fail("reference 'ground-truth' needs a mask", "pass --mask, or use --reference prediction");
  const referenceKind = wanted === "auto" ? (kase.mask ? "ground-truth" : "prediction") : wanted;
  const layout = model.outputLayout;
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

/**
 * The unperturbed output must be usable as the card says: finite everywhere (a NaN or Inf outside
 * the RoI still means a broken export or normalisation), and within [0, 1] when the card reads it
 * as probabilities (raw scores thresholded at 0.5 would give a meaningless mask).
 */
export function checkBaseOutput(model: Model, output: Float32Array): void {
  checkUnperturbedOutput(output, model.card.output, model.outputName, "image");
}

/**
 * checkBaseOutput's checks on any unperturbed output of a 2D model read by `card` (the slice path
 * passes its slices' outputs on the RoI's cells); `input` names what was run ("image", ...).
 */
export function checkUnperturbedOutput(
  output: ArrayLike<number>,
  card: Pick<ModelCard["output"], "kind" | "logitsInUnitRange" | "name">,
  outputName: string,
  input: string,
): void {
  let min = Infinity,
    max = -Infinity,
    bad = 0;
  for (let i = 0; i < output.length; i++) {
    const v = output[i];
    if (!Number.isFinite(v)) bad++;
    else {
      if (v < min) min = v;
      if (v > max) max = v;
    }
  }
  if (bad > 0) {
    fail(
      `the model produced NaN or Inf at ${bad} of ${output.length} output values for the unperturbed ${input}`,
      "check the model export and the input normalisation in the model card (scale, mean, std)",
    );
  }
  // Logits that never leave [0, 1] are most likely probabilities from a graph whose Sigmoid/Softmax
  // segcause could not see (a sigmoid of them lies in 0.5..0.73: every pixel would be foreground).
  const { kind, logitsInUnitRange, name } = card;
  if (kind === "logits" && !logitsInUnitRange && min >= 0 && max <= 1) {
    fail(
      `the model card reads output '${name ?? outputName}' as logits, but on the unperturbed ${input} every value lies within [0, 1] (${min.toPrecision(4)} to ${max.toPrecision(4)}): it looks like probabilities`,
      'if it holds probabilities, set output.kind "probabilities" in the card (or pass --output-kind probabilities); if these really are logits, set output.logitsInUnitRange true in the card',
    );
  }
  // Loose: a Sigmoid followed by a bicubic Resize overshoots [0, 1] a little; raw scores do by far more.
  const tol = 0.1;
  if (kind === "probabilities" && (min < -tol || max > 1 + tol)) {
    fail(
      `the model card reads the output as probabilities, but its values range from ${min.toPrecision(4)} to ${max.toPrecision(4)}, outside [0, 1]`,
      'if the model outputs raw scores, set output.kind to "logits" in the card (or pass --output-kind logits)',
    );
  }
}
