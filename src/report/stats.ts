/**
 * Summary statistics of a block map, as the paper's code writes them: positive / negative / zero
 * block counts (RoI blocks excluded) and a histogram in blocks over fixed bins, whose [-τ, τ) bin
 * also holds the RoI blocks.
 */
import type { Attribution } from "../explain/attribution.js";

export interface HistogramBin {
  label: string;
  lo: number;
  hi: number;
  blocks: number;
}

export interface MapStats {
  method: string;
  outcome: string;
  reference: string;
  baseOutcome: number;
  units: number;
  positive: number;
  negative: number;
  zero: number;
  positiveShare: number;
  negativeShare: number;
  zeroShare: number;
  minEffect: number;
  maxEffect: number;
  sumAbsEffect: number;
  histogram: HistogramBin[];
  forwardPasses: number;
  wallMs: number;
}

export function histogramEdges(tau: number): number[] {
  return [-Infinity, -3, -1, -0.3, -tau, tau, 0.3, 1, 3, Infinity];
}

function fmt(x: number): string {
  return Number.isFinite(x) ? String(x) : x > 0 ? "inf" : "-inf";
}

export function mapStats(a: Attribution, tau: number): MapStats {
  const edges = histogramEdges(tau);
  const histogram: HistogramBin[] = edges.slice(0, -1).map((lo, i) => ({
    label: `[${fmt(lo)}, ${fmt(edges[i + 1])}${i === edges.length - 2 ? "]" : ")"}`,
    lo,
    hi: edges[i + 1],
    blocks: 0,
  }));
  let pos = 0, neg = 0, zero = 0, min = 0, max = 0, sumAbs = 0;
  for (const u of a.units) {
    const e = u.effect;
    if (e > 0) pos++;
    else if (e < 0) neg++;
    else zero++;
    min = Math.min(min, e);
    max = Math.max(max, e);
    sumAbs += Math.abs(e);
    const k = histogram.findIndex((b, i) => (i === histogram.length - 1 ? e >= b.lo : e >= b.lo && e < b.hi));
    histogram[k].blocks++;
  }
  histogram[4].blocks += a.roiCells;
  const n = a.units.length;
  return {
    method: a.method,
    outcome: a.outcome,
    reference: a.reference,
    baseOutcome: a.baseOutcome,
    units: n,
    positive: pos,
    negative: neg,
    zero,
    positiveShare: pos / n,
    negativeShare: neg / n,
    zeroShare: zero / n,
    minEffect: min,
    maxEffect: max,
    sumAbsEffect: sumAbs,
    histogram,
    forwardPasses: a.forwardPasses,
    wallMs: a.wallMs,
  };
}
