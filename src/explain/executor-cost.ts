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

/** What the model's graphs cost per pass and how the run's passes are shaped. */
export interface RunShape {
  fullMacs: number;
  fullOps: number;
  cropMacs: number;
  cropOps: number;
  /** mean multiply-adds of a changed-region pass over the run's blocks in reach */
  changedMacs: number;
  changedOps: number;
  /** items per call of the RoI-cropped graph (the batch size) */
  batch: number;
  /** items per call of the changed-region graph: the draws of one block in one round (1 for a deterministic fill) */
  itemsPerBox: number;
  /** passes the run makes in reach of the RoI (known, or the schedule's first round: a lower bound) */
  passes: number;
}

export interface ExecutorCosts {
  /** the whole run's cost, in multiply-add equivalents */
  cropped: number;
  changed: number;
  pick: "roi-crop" | "changed-region";
}

/** The run's cost with RoI-cropped and with changed-region passes; changed-region wins only when strictly cheaper. */
export function executorCosts(s: RunShape): ExecutorCosts {
  const cropped = s.passes * (s.cropMacs + (OP_MACS * s.cropOps + RUN_MACS) / Math.max(1, s.batch));
  const open = s.fullMacs + OP_MACS * s.fullOps + RUN_MACS + OPEN_MACS_PER_OP * (s.fullOps + s.changedOps);
  const changed = open + s.passes * (s.changedMacs + (OP_MACS * s.changedOps + RUN_MACS) / Math.max(1, Math.min(s.itemsPerBox, s.batch)));
  return { cropped, changed, pick: changed < cropped ? "changed-region" : "roi-crop" };
}
