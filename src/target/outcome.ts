/**
 * Outcome metrics: one number per model output, measured on the RoI only.
 * `dice` is the paper's m(X) = 100 * Dice((f(X) > t)[R], G[R]) with 2Σpg / (Σp + Σg + 1e-10).
 */
import { fail } from "../errors.js";
import type { OutputSpec } from "../model/card.js";
import type { OutputLayout } from "../model/model.js";
import type { Region } from "./roi.js";

export type OutcomeName = "dice" | "soft-dice" | "mean-prob";
export const OUTCOMES: readonly OutcomeName[] = ["dice", "soft-dice", "mean-prob"];

/** What reading one output channel as probabilities needs (a 2D card's output, or a volume card's). */
export type ProbabilitySpec = Pick<OutputSpec, "kind" | "channel" | "threshold" | "activation">;

/**
 * Class probability of cell p of batch slot `slot`, following the card's output semantics. A
 * volume's output is read as a plane of D*H by W cells (`layout.height` = D*H).
 */
export function makeProbability(
  spec: ProbabilitySpec,
  layout: Pick<OutputLayout, "channels" | "height" | "width">,
): (data: Float32Array, slot: number, p: number) => number {
  const plane = layout.height * layout.width;
  const C = layout.channels;
  const ch = spec.channel;
  if (spec.kind === "probabilities") return (d, s, p) => d[(s * C + ch) * plane + p];
  // Independent sigmoid channels (stated in the card); without it one channel is a sigmoid, several a softmax.
  if (C === 1 || spec.activation === "sigmoid") return (d, s, p) => 1 / (1 + Math.exp(-d[(s * C + ch) * plane + p]));
  return (d, s, p) => {
    const base = s * C * plane + p;
    let max = -Infinity;
    for (let c = 0; c < C; c++) max = Math.max(max, d[base + c * plane]);
    let sum = 0;
    for (let c = 0; c < C; c++) sum += Math.exp(d[base + c * plane] - max);
    return Math.exp(d[base + ch * plane] - max) / sum;
  };
}

export function nanError(): never {
  fail("the model produced NaN in its output", "check the model export and the input normalisation in the model card");
}

export type OutcomeFn = (data: Float32Array, slot: number) => number;

/**
 * Builds the outcome function for a region and reference mask (full-image, 0/1). Scoring touches
 * only the RoI's pixels, so its cost is independent of the image size.
 */
export function makeOutcome(name: OutcomeName, spec: OutputSpec, layout: OutputLayout, region: Region, reference: Uint8Array): OutcomeFn {
  return makeCellOutcome(name, spec, layout, region.pixels, reference);
}

/** The outcome on a list of cells (a region's pixels, or a volume RoI's voxels, as flat indices). */
export function makeCellOutcome(
  name: OutcomeName,
  spec: ProbabilitySpec,
  layout: Pick<OutputLayout, "channels" | "height" | "width">,
  px: ArrayLike<number>,
  reference: Uint8Array,
): OutcomeFn {
  const prob = makeProbability(spec, layout);
  const g = Uint8Array.from(px, (p) => reference[p]);
  let sumG = 0;
  for (const v of g) sumG += v;
  const t = spec.threshold;
  switch (name) {
    case "dice":
      return (d, s) => {
        let inter = 0,
          sumP = 0;
        for (let i = 0; i < px.length; i++) {
          const v = prob(d, s, px[i]);
          if (Number.isNaN(v)) nanError();
          if (v > t) {
            sumP++;
            inter += g[i];
          }
        }
        return (100 * 2 * inter) / (sumP + sumG + 1e-10);
      };
    case "soft-dice":
      return (d, s) => {
        let inter = 0,
          sumP = 0;
        for (let i = 0; i < px.length; i++) {
          const v = prob(d, s, px[i]);
          if (Number.isNaN(v)) nanError();
          sumP += v;
          inter += v * g[i];
        }
        return (100 * 2 * inter) / (sumP + sumG + 1e-10);
      };
    case "mean-prob":
      return (d, s) => {
        let sum = 0;
        for (let i = 0; i < px.length; i++) {
          const v = prob(d, s, px[i]);
          if (Number.isNaN(v)) nanError();
          sum += v;
        }
        return (100 * sum) / px.length;
      };
  }
}

/** The binarised prediction over the whole image (used as reference when no mask is given). */
export function binarize(
  spec: ProbabilitySpec,
  layout: Pick<OutputLayout, "channels" | "height" | "width">,
  data: Float32Array,
  slot = 0,
): Uint8Array {
  const prob = makeProbability(spec, layout);
  const n = layout.height * layout.width;
  const out = new Uint8Array(n);
  for (let p = 0; p < n; p++) {
    const v = prob(data, slot, p);
    if (Number.isNaN(v)) nanError();
    out[p] = v > spec.threshold ? 1 : 0;
  }
  return out;
}

/** What a difference of outcomes means, for labels and map metadata. */
export function outcomeUnits(outcome: OutcomeName): string {
  return outcome === "dice" ? "Dice points (Dice × 100)" : `${outcome} points (× 100)`;
}
