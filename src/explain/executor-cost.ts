/**
 * Which incremental executor a run should use (issue 24): a cost model in multiply-add equivalents, so the
 * choice is a count and never a timing (the map must not depend on the machine's load). A pass costs its
 * multiply-adds, plus a fixed cost per op of its graph and per session call (ONNX Runtime's per-kernel and
 * per-run overhead), shared by the items of one call; changed-region passes also pay once for opening them
 * (one full pass that keeps every tensor, and a second session), amortised over the run's passes.
 */

/**
 * Overheads in multiply-adds of the model's own convolutions, measured by `npm run bench -- --op-cost`
 * (src/bench/op-cost.ts): one session, one thread, median CPU time per call fitted as a·MACs + b·ops + c
 * over the full, RoI-cropped and changed-region graphs (16 px blocks, centre 32 px RoI), c from a one-op
 * graph; OP_MACS = b/a, RUN_MACS = c/a, OPEN_MACS_PER_OP = (CPU time of opening changed-region passes,
 * less its full pass) / (ops of the full and the changed-region graph) / a. Medians of ten fits, on
 * unet-ph2 (7) and segnet-ph2 (3), 1 and 2 threads, 2026-12-07, 2-core AMD EPYC under load: b/a 0.85–1.7e6,
 * c/a 1.4–7.9e6, opening 1.1–2.3e8 per op (about 1 s of CPU, 26 full passes of unet-ph2). Two threads
 * gave the same per-op share as one. Not modelled: a box's first call (new window shapes) costing about a
 * third more, and the JavaScript side (diffing the input, planning a box's windows).
 */
export const OP_MACS = 1.25e6;
export const RUN_MACS = 2.3e6;
export const OPEN_MACS_PER_OP = 1.9e8;

/** The passes a run can make: the model as it is, the RoI-cropped graph, the changed-region graph. */
export type ExecutorPick = "full" | "roi-crop" | "changed-region";

/** What the model's graphs cost per pass and how the run's passes are shaped. */
export interface RunShape {
  fullMacs: number;
  fullOps: number;
  cropMacs: number;
  cropOps: number;
  /** mean multiply-adds of a changed-region pass over the run's blocks in reach (absent: the model has no changed-region graph) */
  changedMacs?: number;
  changedOps?: number;
  /** items per call of the full and the RoI-cropped graph (the batch size) */
  batch: number;
  /** items per call of the changed-region graph: the draws of one block in one round (1 for a deterministic fill) */
  itemsPerBox: number;
  /** passes the run makes in reach of the RoI (one screen per block in reach: see block-effects.ts passShape) */
  passes: number;
  /** every pass full passes make, out of reach included (default: passes): the executors skip those out of reach */
  fullPasses?: number;
}

export interface ExecutorCosts {
  /** the whole run's cost, in multiply-add equivalents (changed: Infinity without a changed-region graph) */
  full: number;
  cropped: number;
  changed: number;
  pick: ExecutorPick;
}

/** The cost of a call of `ops` ops computing `macs` multiply-adds per item, per item when `items` share it. */
const perPass = (macs: number, ops: number, items: number) => macs + (OP_MACS * ops + RUN_MACS) / Math.max(1, items);

/**
 * The run's cost with full, RoI-cropped and changed-region passes. Opening: the cropped passes pay their check pass (the
 * session of the cropped graph is not charged: on unext-ph2, 1,514 ops, the whole cropped run took less CPU than
 * OPEN_MACS_PER_OP per op would charge); the changed-region passes open the cropped ones first (checked first, they run the
 * boxes that cost more) and then pay their own opening as measured (a full pass keeping every tensor, two sessions). The pick
 * is the cheapest; on a tie the simpler executor (full, then cropped).
 */
export function executorCosts(s: RunShape): ExecutorCosts {
  const full = (s.fullPasses ?? s.passes) * perPass(s.fullMacs, s.fullOps, s.batch);
  const openCrop = perPass(s.cropMacs, s.cropOps, 1);
  const cropped = openCrop + s.passes * perPass(s.cropMacs, s.cropOps, s.batch);
  const changed =
    s.changedMacs === undefined || s.changedOps === undefined
      ? Infinity
      : openCrop +
        perPass(s.fullMacs, s.fullOps, 1) +
        OPEN_MACS_PER_OP * (s.fullOps + s.changedOps) +
        s.passes * perPass(s.changedMacs, s.changedOps, Math.min(s.itemsPerBox, s.batch));
  const ranked: [ExecutorPick, number][] = [
    ["full", full],
    ["roi-crop", cropped],
    ["changed-region", changed],
  ];
  const pick = ranked.reduce((best, c) => (c[1] < best[1] ? c : best))[0];
  return { full, cropped, changed, pick };
}

/** `--incremental on`'s pick: the cheaper incremental executor (changed-region only when strictly cheaper). */
export function incrementalPick(c: ExecutorCosts): "roi-crop" | "changed-region" {
  return c.changed < c.cropped ? "changed-region" : "roi-crop";
}

/** The cheaper of full and RoI-cropped passes (auto's fallback when the changed-region graph fails its check at open). */
export function fallbackPick(c: ExecutorCosts): "full" | "roi-crop" {
  return c.cropped < c.full ? "roi-crop" : "full";
}
