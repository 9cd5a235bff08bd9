/**
 * What a benchmark run is asked to do: the models, dataset and methods (EvaluateConfig) and the
 * measurement protocol with its defaults, plus the parsers of the protocol's list flags. How these
 * settings key the cells is cell-key.ts's job.
 */

import { fail } from "../errors.js";
import type { IncrementalMode } from "../explain/roi-executor.js";
import type { OutcomeName } from "../target/outcome.js";
import type { FillName } from "./fills.js";
import { RANK_UNITS_DEFAULT, type RankUnits } from "./rank-units.js";
import type { RoiSpec } from "./rois.js";
import type { VolumeSettings } from "./volume-benchmark.js";

export const CONTROL_NAMES = ["random", "distance"] as const;
export type ControlName = (typeof CONTROL_NAMES)[number];

export interface MethodRun {
  /** registry name */
  name: string;
  /** given options (the rest take the method's defaults) */
  options: Record<string, unknown>;
}

export interface Protocol {
  /** steps of the curves, each removing round(k·U/K) units in all (default 20) */
  steps: number;
  /** units every map is ranked on (default 16 px blocks clipped to the domain; pixel = the published run's protocol) */
  rankUnits: RankUnits;
  fills: FillName[];
  /** natural-patch draws averaged per curve point (default 2) */
  patchDraws: number;
  blurSigma: number;
  /** fractions of the positive support mass for the top-k effects (default 0.01, 0.05, 0.1, 0.2) */
  topk: number[];
  /** fractions of the domain's area for the area-matched top-k effects (default 0.01, 0.05, 0.1, 0.2; empty = none) */
  topArea: number[];
  /** model-free orders measured beside the methods: the random order (always) and distance to the RoI (default both) */
  controls: ControlName[];
  /** leakage radius in pixels (default 32) */
  radius: number;
  /** normalised AUCs are undefined unless removing all of D lowers the outcome by at least this: m(X) − m(removed) ≥ minRange (default 5 outcome units) */
  minRange: number;
  /** run each method twice more (noisy input, seed + 1) for the stability metrics */
  stability: boolean;
  /** sd of the Gaussian pixel noise for stability, in 0..255 units (default 4) */
  noiseSigma: number;
  outcome: OutcomeName;
  reference: "auto" | "ground-truth" | "prediction";
}

export const PROTOCOL_DEFAULTS: Protocol = {
  steps: 20,
  rankUnits: RANK_UNITS_DEFAULT,
  fills: ["patches", "blur", "zero", "mean"],
  patchDraws: 2,
  blurSigma: 5,
  topk: [0.01, 0.05, 0.1, 0.2],
  topArea: [0.01, 0.05, 0.1, 0.2],
  controls: ["random", "distance"],
  radius: 32,
  minRange: 5,
  stability: false,
  noiseSigma: 4,
  outcome: "dice",
  reference: "auto",
};

export interface EvaluateConfig {
  models: string[];
  /** manifest.json or a dataset folder */
  dataset: string;
  split: string;
  /** first n cases of the split, in manifest order (default all) */
  images?: number;
  methods: MethodRun[];
  rois: RoiSpec;
  /** natural-patch bank; default: built per model input size from `bankSplits` of the dataset, cached in out/banks */
  bank?: string;
  bankSplits: string[];
  bankPatchSize: number;
  out: string;
  seed: number;
  protocol: Protocol;
  batchSize?: number;
  threads?: number;
  /** block-method cells (pdcr, pdcr-superpixel, zero, occlusion) on the RoI-cropped executor; undefined = off */
  incremental?: IncrementalMode;
  /** volume data sets: what --block, --rank-units and --bank-patch-size are in, and the structure's labels */
  volume?: VolumeSettings;
}

/** `random,distance`; the random control is always computed (the curves' end points come with it). */
export function parseControls(spec: string): ControlName[] {
  const names = [
    ...new Set(
      spec
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean),
    ),
  ];
  for (const n of names)
    if (!(CONTROL_NAMES as readonly string[]).includes(n)) fail(`unknown control '${n}'`, `choose from ${CONTROL_NAMES.join(", ")}`);
  if (!names.includes("random"))
    fail(`--controls ${spec} leaves out the random order`, "use --controls random,distance (or random alone: the published run's protocol)");
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
  if (ks.length === 0 || ks.some((k) => !(k > 0 && k <= 100)))
    fail(`--top-area '${spec}' must be percentages in (0, 100] or none`, "use --top-area 1,5,10,20");
  return [...new Set(ks)].sort((a, b) => a - b).map((k) => k / 100);
}
