/**
 * The colour scale of heatmap.png and overlay.png: which |value| is drawn at full colour. `max` is
 * the paper's (the largest |value| outside the RoI); `pNN` the NN-th percentile of |value| outside
 * the RoI, so that a few extreme pixels do not blank a gradient map; `fixed:V` a value chosen by
 * the user, so that maps can be compared and a small effect does not look strong.
 */
import { fail } from "../errors.js";
import type { Region } from "../target/roi.js";
import { maxAbsOutside } from "./colormap.js";

export type ScaleSpec = { kind: "max" } | { kind: "percentile"; p: number } | { kind: "fixed"; value: number };

export interface ColourScale {
  spec: string;
  /** |value| at full colour (0: the map is all zero outside the RoI) */
  maxAbs: number;
  /** how the scale was chosen, in words (printed on the bar) */
  label: string;
}

export const SCALE_HELP =
  "max (the largest |value| outside the RoI, the paper's), pNN (NN-th percentile of |value| outside the RoI, e.g. p99) or fixed:V";

export function parseScale(s: string): ScaleSpec {
  if (s === "max") return { kind: "max" };
  const p = /^p(\d+(?:\.\d+)?)$/.exec(s);
  if (p && Number(p[1]) > 0 && Number(p[1]) <= 100) return { kind: "percentile", p: Number(p[1]) };
  const f = /^fixed:(.+)$/.exec(s);
  if (f && Number(f[1]) > 0 && Number.isFinite(Number(f[1]))) return { kind: "fixed", value: Number(f[1]) };
  fail(`cannot parse --colour-scale '${s}'`, "use --colour-scale max, p99 (a percentile in (0, 100]) or fixed:V with V > 0 in the map's units");
}

/** The p-th percentile (nearest rank) of |value| over the pixels outside the RoI. */
function percentileOutside(map: Float32Array, roi: RoiInside | undefined, p: number): number {
  // A typed array sorts numerically without a comparator, in a fraction of a number[]'s memory (volumes).
  const abs = new Float32Array(map.length);
  let n = 0;
  for (let i = 0; i < map.length; i++) if (!roi?.inside[i]) abs[n++] = Math.abs(map[i]);
  if (n === 0) return 0;
  const sorted = abs.subarray(0, n).sort();
  return sorted[Math.min(n - 1, Math.max(0, Math.ceil((p / 100) * n) - 1))];
}

/** All the colour scale needs of a RoI: which pixels (voxels) it holds. */
export type RoiInside = Pick<Region, "inside">;

export function colourScale(map: Float32Array, roi: RoiInside | undefined, spec: ScaleSpec): ColourScale {
  const max = maxAbsOutside(map, roi);
  if (spec.kind === "fixed")
    return {
      spec: `fixed:${spec.value}`,
      maxAbs: spec.value,
      label: `fixed scale ${spec.value}${max > spec.value ? " (larger values saturate)" : ""}`,
    };
  if (spec.kind === "percentile") {
    const v = percentileOutside(map, roi, spec.p);
    if (v > 0)
      return {
        spec: `p${spec.p}`,
        maxAbs: v,
        label: `${spec.p}th percentile of |value| outside the RoI${max > v ? " (larger values saturate)" : ""}`,
      };
    return { spec: `p${spec.p}`, maxAbs: max, label: `largest |value| outside the RoI (its ${spec.p}th percentile is 0)` };
  }
  return { spec: "max", maxAbs: max, label: "largest |value| outside the RoI" };
}
