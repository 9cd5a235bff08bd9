/** Attribution: the result of any method — per-unit effects with uncertainty, a map, provenance. */

import type { Device } from "../model/device.js";
import type { OutcomeName } from "../target/outcome.js";
import type { Region, RoiRect } from "../target/roi.js";
import type { ScreenLoss } from "./adaptive.js";
import type { UnitEstimate } from "./estimators.js";
import { forEachPixel, type Unit, type UnitKind } from "./units.js";

export type UnitResult = Unit & UnitEstimate;

export interface Provenance {
  versions: Record<string, string>;
  createdAt: string;
  model: { path: string; sha256: string; card: unknown; cardSource: string; assumptions: string[] };
  case: { id: string; imagePath?: string; imageSha256: string; maskPath?: string; maskSha256?: string };
  target: {
    roi: RoiRect;
    roiKind: "rect" | "mask";
    outcome: OutcomeName;
    reference: "ground-truth" | "prediction";
    channel: number;
    threshold: number;
  };
  method: string;
  seed: number;
  /** every setting of the method, defaults included */
  settings: Record<string, unknown>;
  intervention: Record<string, unknown>;
  /** `device`: where ONNX Runtime ran the passes (cpu or cuda; results may differ in the last digits between them) */
  runner: { batchSize: number; threads: number; workers?: number; device: Device };
  /** `explain --queue`: where the samples were computed (password redacted); the map is the local run's over them */
  queue?: {
    url: string;
    shards: number;
    samples: number;
    /** the version of segcause every shard was computed with (the enqueuer's: others are refused) */
    segcause: string;
    /** the distinct machines and ONNX Runtime versions that computed the shards */
    workers: { host: string; cpu: string; cores: number; onnxruntime: string }[];
    /** every worker had this machine's CPU model, core count and ONNX Runtime version (not a proof of identical numbers) */
    workersLikeThisMachine: boolean;
    how: string;
  };
}

/** The fields every result shares (maps and component effects), filled by `RunContext.finishCore`. */
export interface AttributionCore {
  method: string;
  /** what one unit of the result means, e.g. "Dice points (x100)" or "d(RoI score)/d(pixel)" */
  valueUnits: string;
  /** outcome of the unperturbed input, m(X) */
  baseOutcome: number;
  outcome: OutcomeName;
  reference: "ground-truth" | "prediction";
  roi: RoiRect;
  /** the resolved RoI (rectangle or mask) the result was computed for */
  region: Region;
  /** effects with |ATE| below τ were set to 0 (0: no threshold) */
  tau: number;
  forwardPasses: number;
  backwardPasses: number;
  wallMs: number;
  notes: string[];
  provenance: Provenance;
}

export interface Attribution extends AttributionCore {
  /** what the units are; "pixel" maps (gradient methods) have no unit list */
  unitKind: UnitKind;
  /**
   * Sign convention shared by every method: a signed map holds the (estimated) change of the RoI
   * outcome when the unit's content is removed — negative = the content supported the prediction
   * (red), positive = it worked against it (blue). Unsigned maps (saliency, SmoothGrad, Grad-CAM
   * magnitudes) hold importance >= 0 and are drawn as support.
   */
  signed: boolean;
  height: number;
  width: number;
  /** per-pixel effect (unit effect painted over the unit's pixels), row-major */
  map: Float32Array;
  /** per-pixel standard error, NaN where unknown */
  stderrMap: Float32Array;
  /** per-unit results; empty for pixel-level maps */
  units: UnitResult[];
  /** units overlapping the RoI, which are not explained (effect 0 by convention) */
  roiCells: number;
  /** the fast schedule's screen: how much effect the blocks it set to 0 may carry */
  screenLoss?: ScreenLoss;
}

/**
 * Paints unit values over their pixels; where units overlap (stride < block) a pixel gets the
 * mean of the units covering it. Pixels no unit covers (the RoI) get `fillValue`.
 */
export function paint(height: number, width: number, units: readonly Unit[], values: (i: number) => number, fillValue = 0): Float32Array {
  const sum = new Float64Array(height * width);
  const count = new Uint16Array(height * width);
  for (const u of units) {
    const v = values(u.index);
    forEachPixel(u, width, (i) => {
      sum[i] += v;
      count[i]++;
    });
  }
  return Float32Array.from(sum, (s, i) => (count[i] ? s / count[i] : fillValue));
}

/** Per-pixel support (larger = the pixel's content held the RoI prediction up more), for ranking. */
export function supportMap(a: Pick<Attribution, "map" | "signed">): Float32Array {
  return a.signed ? a.map.map((v) => -v) : a.map;
}
