/**
 * What `--incremental auto` would run for a 2D model and an RoI, from counts alone (no session): the
 * RoI-cropped graph's share of a full pass, the changed-region graph's mean share over the blocks in reach,
 * and the cost model's pick. The executor (./roi-executor.ts) decides with the same functions;
 * `segcause info` prints them for a centre 32 px RoI.
 */
import type { ModelProto } from "onnx-buf";
import { type ChangedGraph, changedGraph, planBox } from "../onnx/changed.js";
import { cropGraph } from "../onnx/crop.js";
import type { Box } from "../onnx/regions.js";
import { type ExecutorCosts, type ExecutorPick, executorCosts } from "./executor-cost.js";

/** A perturbation box of the input, as the block methods' units give it. */
export interface PixelBox {
  row: number;
  col: number;
  height: number;
  width: number;
}

/**
 * The blocks meeting the input box the RoI reads, and the mean changed-region multiply-adds of (up to 32 of) them as a share of a full
 * pass; `fixedShare` is the part of it past the op where locality breaks (computed whole or over needed boxes, the same for every block).
 */
export function changedShare(
  cg: ChangedGraph,
  inputBox: Box,
  units: readonly PixelBox[],
): { inReach: PixelBox[]; share: number; fixedShare: number } {
  const [[r0, r1], [c0, c1]] = [inputBox[2], inputBox[3]];
  const inReach = blocksInReach(inputBox, units);
  if (inReach.length === 0) return { inReach, share: Number.NaN, fixedShare: Number.NaN };
  const n = Math.min(32, inReach.length);
  const sample = Array.from({ length: n }, (_, i) => inReach[Math.floor((i * inReach.length) / n)]);
  const clip = (u: PixelBox): [number, number][] => [
    [Math.max(u.row, r0), Math.min(u.row + u.height, r1)],
    [Math.max(u.col, c0), Math.min(u.col + u.width, c1)],
  ];
  const plans = sample.map((u) => planBox(cg, clip(u)));
  return {
    inReach,
    share: plans.reduce((s, p) => s + p.macs, 0) / n / cg.fullMacs,
    fixedShare: plans.reduce((s, p) => s + p.fixedMacs, 0) / n / cg.fullMacs,
  };
}

/** The blocks (pixel boxes) meeting the input box (NCHW) the RoI reads. */
export function blocksInReach(inputBox: Box, units: readonly PixelBox[]): PixelBox[] {
  const [[r0, r1], [c0, c1]] = [inputBox[2], inputBox[3]];
  return units.filter((u) => u.row < r1 && u.row + u.height > r0 && u.col < c1 && u.col + u.width > c0);
}

/** What the cost model is given besides the run's shape: the graphs' multiply-adds per pass and op counts. */
export interface GraphCounts {
  fullMacs: number;
  fullOps: number;
  crop: { macs: number; ops: number };
  /** the changed-region graph's mean pass over the blocks in reach, when the model has one */
  changed?: { macs: number; ops: number };
}

/** How a run's passes come: items per call of one block, and passes per block (one screen). */
export interface PassShape {
  itemsPerBox: number;
  passesPerBlock: number;
}

/**
 * The cost model's estimate for a run over `units` (the blocks; those meeting the input box `inputBox` the RoI reads are in
 * reach, the executors skip the others), one screen each (`passesPerBlock` passes, `itemsPerBox` items per call), batch `batch`.
 */
export function runCosts(
  g: GraphCounts,
  units: readonly PixelBox[],
  inputBox: Box,
  shape: PassShape,
  batch: number,
): ExecutorCosts & { passes: number; fullPasses: number } {
  const n = { passes: blocksInReach(inputBox, units).length * shape.passesPerBlock, fullPasses: units.length * shape.passesPerBlock };
  const c = executorCosts({
    fullMacs: g.fullMacs,
    fullOps: g.fullOps,
    cropMacs: g.crop.macs,
    cropOps: g.crop.ops,
    changedMacs: g.changed?.macs,
    changedOps: g.changed?.ops,
    batch,
    itemsPerBox: shape.itemsPerBox,
    passes: n.passes,
    fullPasses: n.fullPasses,
  });
  return { ...c, ...n };
}

export interface AutoPreview {
  block: number;
  itemsPerBox: number;
  pick: ExecutorPick;
  cropShare?: number;
  changedShare?: number;
  /** of changedShare: the part past the op where locality breaks (the same for every block) */
  fixedShare?: number;
  /** the changed-region graph: the share of the network's multiply-adds it computes by changed regions, the first op it computes whole, and how many */
  localShare?: number;
  breaksAt?: string;
  wholeOps?: number;
  /** the run's cost in full passes (cost model): full, cropped and changed-region passes (changed absent without a changed-region graph) */
  cost?: { full: number; cropped: number; changed?: number };
  /** why an executor is not an option (no cropped or no changed-region graph) */
  why?: string;
}

/**
 * `auto`'s pick for a square RoI of `roi` px (at most the input's side) at the output's centre, blocks of each size in `blocks` on a
 * grid from 0 (the cells not overlapping the RoI), one pass per block in reach with `itemsPerBox` items per call (1: zero/occlusion;
 * 4: a PdCR round), batch 8.
 */
export function previewAuto(model: ModelProto, H: number, W: number, blocks: number[], itemsPerBox: number[], roi = 32): AutoPreview[] {
  roi = Math.min(roi, H, W);
  const r = { rows: [H / 2 - roi / 2, H / 2 + roi / 2] as [number, number], cols: [W / 2 - roi / 2, W / 2 + roi / 2] as [number, number] };
  let crop: ReturnType<typeof cropGraph>;
  try {
    crop = cropGraph(model, r);
  } catch (e) {
    const why = `no RoI-cropped graph: ${(e as Error).message.split("\n")[0]}`;
    return blocks.flatMap((block) => itemsPerBox.map((k) => ({ block, itemsPerBox: k, pick: "full" as const, why })));
  }
  const cropShare = crop.macs / crop.fullMacs;
  let cg: ChangedGraph | undefined;
  let why: string | undefined;
  try {
    cg = changedGraph(model, r);
  } catch (e) {
    why = `no changed-region graph: ${(e as Error).message.split("\n")[0]}`;
  }
  const out: AutoPreview[] = [];
  const F = crop.fullMacs;
  for (const block of blocks) {
    const units: PixelBox[] = [];
    // the grid's cells that do not overlap the RoI, as blockGrid makes them
    for (let y = 0; y < H; y += block)
      for (let x = 0; x < W; x += block)
        if (!(y < r.rows[1] && y + block > r.rows[0] && x < r.cols[1] && x + block > r.cols[0]))
          units.push({ row: y, col: x, height: block, width: block });
    const ch = cg ? changedShare(cg, crop.inputBox, units) : undefined;
    for (const k of itemsPerBox) {
      const c = runCosts(
        {
          fullMacs: F,
          fullOps: model.graph!.node.length,
          crop: { macs: crop.macs, ops: crop.nodes },
          changed: cg && ch ? { macs: ch.share * F, ops: cg.nodes } : undefined,
        },
        units,
        crop.inputBox,
        { itemsPerBox: k, passesPerBlock: k },
        8,
      );
      out.push({
        block,
        itemsPerBox: k,
        pick: c.pick,
        cropShare,
        cost: { full: c.full / F, cropped: c.cropped / F, ...(Number.isFinite(c.changed) ? { changed: c.changed / F } : {}) },
        ...(cg && ch
          ? {
              changedShare: ch.share,
              fixedShare: ch.fixedShare,
              localShare: cg.localMacs / cg.fullMacs,
              breaksAt: cg.wholeOps[0],
              wholeOps: cg.wholeOps.length,
            }
          : { why }),
      });
    }
  }
  return out;
}
