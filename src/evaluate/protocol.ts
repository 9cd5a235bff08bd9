/**
 * The protocol settings that enter every cell's key. The published run's cells were keyed by the
 * settings it had (steps … reference, seed, in that order); a setting added since enters the key
 * only when it differs from what that protocol did (pixel rank units, no area-matched top-k, the
 * random control alone), so a folder computed with those settings keeps its keys and stays
 * resumable, and any other setting gets cells of its own.
 */
import { fail } from "../errors.js";
import { rankUnitsName, type RankUnits } from "./rank-units.js";

export const CONTROL_NAMES = ["random", "distance"] as const;
export type ControlName = (typeof CONTROL_NAMES)[number];

/** The settings a protocol key is made of (benchmark.ts's Protocol). */
export interface KeyedProtocol {
  steps: number;
  fills: string[];
  patchDraws: number;
  blurSigma: number;
  topk: number[];
  radius: number;
  minRange: number;
  stability: boolean;
  noiseSigma: number;
  outcome: string;
  reference: string;
  rankUnits: RankUnits;
  topArea: number[];
  controls: ControlName[];
}

/** How run.json records the settings added since the published run, for a run.json written before them. */
export const SETTINGS_BEFORE_UNITS: Record<string, unknown> = { rankUnits: "pixel", topArea: [], controls: ["random"] };

export function protocolKey(p: KeyedProtocol, seed: number): Record<string, unknown> {
  const { steps, fills, patchDraws, blurSigma, topk, radius, minRange, stability, noiseSigma, outcome, reference } = p;
  return {
    steps, fills, patchDraws, blurSigma, topk, radius, minRange, stability, noiseSigma, outcome, reference, seed,
    ...(p.rankUnits.kind !== "pixel" ? { rankUnits: rankUnitsName(p.rankUnits) } : {}),
    ...(p.topArea.length > 0 ? { topArea: p.topArea } : {}),
    ...(p.controls.includes("distance") ? { controls: p.controls } : {}),
  };
}

/** `random,distance`; the random control is always computed (the curves' end points come with it). */
export function parseControls(spec: string): ControlName[] {
  const names = [...new Set(spec.split(",").map((s) => s.trim()).filter(Boolean))];
  for (const n of names) if (!(CONTROL_NAMES as readonly string[]).includes(n)) fail(`unknown control '${n}'`, `choose from ${CONTROL_NAMES.join(", ")}`);
  if (!names.includes("random")) fail(`--controls ${spec} leaves out the random order`, "use --controls random,distance (or random alone: the published run's protocol)");
  return CONTROL_NAMES.filter((c) => names.includes(c));
}

/** The metric name of an area-matched top-k effect: toparea10 for k = 0.1 (toparea0.5 for half a percent), with `:<fill>` when given. */
export function topAreaMetric(k: number, fill?: string): string {
  return `toparea${Math.round(k * 1e6) / 1e4}${fill === undefined ? "" : `:${fill}`}`;
}

/** `--top-area 1,5,10,20` (percent of D) or `none`. */
export function parseTopArea(spec: string): number[] {
  if (spec.trim() === "none") return [];
  const ks = spec.split(",").map((s) => Number(s.trim()));
  if (ks.length === 0 || ks.some((k) => !(k > 0 && k <= 100))) fail(`--top-area '${spec}' must be percentages in (0, 100] or none`, "use --top-area 1,5,10,20");
  return [...new Set(ks)].sort((a, b) => a - b).map((k) => k / 100);
}
