/**
 * Summary statistics of a map, as the paper's code writes them: positive / negative / zero unit
 * counts (RoI units excluded) and a histogram in units over fixed bins, whose [-τ, τ) bin also
 * holds the RoI units; plus what the counts rest on (src/report/counts.ts). Pixel-level maps (no
 * units) count pixels outside the RoI, binned relative to the map's largest magnitude. Unsigned
 * maps get bins over [0, ∞) only.
 */
import type { Attribution } from "../explain/attribution.js";
import type { Region } from "../target/roi.js";
import { type EvidenceCounts, unitEvidence } from "./counts.js";

export interface HistogramBin {
  label: string;
  lo: number;
  hi: number;
  blocks: number;
}

export interface MapStats {
  method: string;
  /** false: importance >= 0 without a direction (saliency, Grad-CAM...): `positive` counts important units */
  signed: boolean;
  /** what a unit is (block, superpixel, pixel...) */
  unitKind: string;
  /** what the values are */
  valueUnits: string;
  outcome: string;
  reference: string;
  baseOutcome: number;
  /** τ of the method (0 when it has none) */
  tau: number;
  units: number;
  /** what the counts rest on: tested against zero, above τ, cleared by screening (absent for pixel maps, which carry no per-unit uncertainty) */
  evidence?: EvidenceCounts;
  positive: number;
  negative: number;
  zero: number;
  positiveShare: number;
  negativeShare: number;
  zeroShare: number;
  minEffect: number;
  maxEffect: number;
  sumAbsEffect: number;
  /** the |value| heatmap.png and overlay.png draw at full colour: the largest outside the RoI */
  colourScaleMaxAbs: number;
  /** how the colour scale was chosen (set by the writer; see src/report/scale.ts) */
  colourScale?: string;
  histogram: HistogramBin[];
  forwardPasses: number;
  backwardPasses: number;
  wallMs: number;
}

export function histogramEdges(tau: number, signed = true): number[] {
  return signed ? [-Infinity, -3, -1, -0.3, -tau, tau, 0.3, 1, 3, Infinity] : [0, tau, 0.3, 1, 3, Infinity];
}

function fmt(x: number): string {
  return Number.isFinite(x) ? String(Number(x.toPrecision(3))) : x > 0 ? "inf" : "-inf";
}

/** Bin edges of a pixel map relative to its largest magnitude m. */
function relativeEdges(m: number, signed: boolean): number[] {
  return signed
    ? [-Infinity, -0.5 * m, -0.1 * m, -0.01 * m, -1e-6 * m, 1e-6 * m, 0.01 * m, 0.1 * m, 0.5 * m, Infinity]
    : [0, 1e-6 * m, 0.01 * m, 0.1 * m, 0.5 * m, Infinity];
}

export function mapStats(
  a: Attribution,
  tau: number,
  roi?: Region,
  evidence: EvidenceCounts | undefined = a.units.length > 0 ? unitEvidence(a.units).counts : undefined,
): MapStats {
  const signed = a.signed;
  let values: ArrayLike<number>;
  let roiUnits: number;
  let edges: number[];
  if (a.units.length > 0) {
    values = a.units.map((u) => u.effect);
    roiUnits = a.roiCells;
    edges = histogramEdges(tau, signed);
  } else {
    const outside: number[] = [];
    for (let i = 0; i < a.map.length; i++) if (!roi?.inside[i]) outside.push(a.map[i]);
    values = outside;
    roiUnits = a.map.length - outside.length;
    edges = relativeEdges(outside.reduce((m, v) => Math.max(m, Math.abs(v)), 0) || 1, signed);
  }
  const histogram: HistogramBin[] = edges.slice(0, -1).map((lo, i) => ({
    label: `[${fmt(lo)}, ${fmt(edges[i + 1])}${i === edges.length - 2 ? "]" : ")"}`,
    lo,
    hi: edges[i + 1],
    blocks: 0,
  }));
  let pos = 0,
    neg = 0,
    zero = 0,
    min = 0,
    max = 0,
    sumAbs = 0;
  for (let i = 0; i < values.length; i++) {
    const e = values[i];
    if (e > 0) pos++;
    else if (e < 0) neg++;
    else zero++;
    min = Math.min(min, e);
    max = Math.max(max, e);
    sumAbs += Math.abs(e);
    const k = Math.max(
      0,
      histogram.findIndex((b, i) => (i === histogram.length - 1 ? e >= b.lo : e >= b.lo && e < b.hi)),
    );
    histogram[k].blocks++;
  }
  // The zero bin ([-τ, τ), or [0, τ) unsigned) also holds the RoI's units.
  histogram[signed ? 4 : 0].blocks += roiUnits;
  const n = values.length;
  return {
    method: a.method,
    signed: a.signed,
    unitKind: a.unitKind,
    valueUnits: a.valueUnits,
    outcome: a.outcome,
    reference: a.reference,
    baseOutcome: a.baseOutcome,
    tau,
    units: n,
    evidence,
    positive: pos,
    negative: neg,
    zero,
    positiveShare: pos / n,
    negativeShare: neg / n,
    zeroShare: zero / n,
    minEffect: min,
    maxEffect: max,
    sumAbsEffect: sumAbs,
    colourScaleMaxAbs: Math.max(Math.abs(min), Math.abs(max)),
    histogram,
    forwardPasses: a.forwardPasses,
    backwardPasses: a.backwardPasses,
    wallMs: a.wallMs,
  };
}
