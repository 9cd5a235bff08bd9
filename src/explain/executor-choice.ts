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
import { type ExecutorCosts, executorCosts } from "./executor-cost.js";

/** A perturbation box of the input, as the block methods' units give it. */
export interface PixelBox {
  row: number;
  col: number;
  height: number;
  width: number;
}

/** `auto` runs the cropped graph when one pass costs at most this share of the full pass's multiply-adds (see roi-executor.ts). */
export const AUTO_MAC_SHARE = 0.6;

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
  const inReach = units.filter((u) => u.row < r1 && u.row + u.height > r0 && u.col < c1 && u.col + u.width > c0);
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

/** The cost model's estimate for a run of `blocksInReach` blocks, `itemsPerBox` items per call each (one round), batch `batch`. */
export function runCosts(
  cg: ChangedGraph,
  fullOps: number,
  crop: { macs: number; ops: number },
  changedShare: number,
  blocksInReach: number,
  shape: { itemsPerBox: number; passesPerBlock: number },
  batch: number,
): ExecutorCosts & { passes: number } {
  const passes = blocksInReach * shape.passesPerBlock;
  const c = executorCosts({
    fullMacs: cg.fullMacs,
    fullOps,
    cropMacs: crop.macs,
    cropOps: crop.ops,
    changedMacs: changedShare * cg.fullMacs,
    changedOps: cg.nodes,
    batch,
    itemsPerBox: shape.itemsPerBox,
    passes,
  });
  return { ...c, passes };
}

export interface AutoPreview {
  block: number;
  itemsPerBox: number;
  pick: "full" | "roi-crop" | "changed-region";
  cropShare?: number;
  changedShare?: number;
  /** of changedShare: the part past the op where locality breaks (the same for every block) */
  fixedShare?: number;
  /** the changed-region graph: the share of the network's multiply-adds it computes by changed regions, the first op it computes whole, and how many */
  localShare?: number;
  breaksAt?: string;
  wholeOps?: number;
  /** the run's cost in full passes (cost model), cropped and changed-region */
  cost?: [number, number];
  why?: string;
}

/**
 * `auto`'s pick for a square RoI of `roi` px (at most the input's side) at the output's centre, blocks of each size in `blocks` on a
 * grid from 0, one pass per block in reach with `itemsPerBox` items per call (1: zero/occlusion; 4: a PdCR round), batch 8.
 */
export function previewAuto(model: ModelProto, H: number, W: number, blocks: number[], itemsPerBox: number[], roi = 32): AutoPreview[] {
  roi = Math.min(roi, H, W);
  const r = { rows: [H / 2 - roi / 2, H / 2 + roi / 2] as [number, number], cols: [W / 2 - roi / 2, W / 2 + roi / 2] as [number, number] };
  const out: AutoPreview[] = [];
  let crop: ReturnType<typeof cropGraph>;
  const all = (pick: AutoPreview["pick"], why: string, cropShare?: number) =>
    blocks.flatMap((block) => itemsPerBox.map((k) => ({ block, itemsPerBox: k, pick, why, cropShare })));
  try {
    crop = cropGraph(model, r);
  } catch (e) {
    return all("full", `no RoI-cropped graph: ${(e as Error).message.split("\n")[0]}`);
  }
  const cropShare = crop.macs / crop.fullMacs;
  if (cropShare > AUTO_MAC_SHARE) return all("full", `the RoI-cropped pass costs ${(100 * cropShare).toFixed(0)}% of a full pass`, cropShare);
  let cg: ChangedGraph;
  try {
    cg = changedGraph(model, r);
  } catch (e) {
    return all("roi-crop", `no changed-region graph: ${(e as Error).message.split("\n")[0]}`, cropShare);
  }
  for (const block of blocks) {
    const units: PixelBox[] = [];
    for (let y = 0; y < H; y += block) for (let x = 0; x < W; x += block) units.push({ row: y, col: x, height: block, width: block });
    const { inReach, share, fixedShare } = changedShare(cg, crop.inputBox, units);
    for (const k of itemsPerBox) {
      const c = runCosts(
        cg,
        model.graph!.node.length,
        { macs: crop.macs, ops: crop.nodes },
        share,
        inReach.length,
        { itemsPerBox: k, passesPerBlock: k },
        8,
      );
      out.push({
        block,
        itemsPerBox: k,
        pick: c.pick,
        cropShare,
        changedShare: share,
        fixedShare,
        localShare: cg.localMacs / cg.fullMacs,
        breaksAt: cg.wholeOps[0],
        wholeOps: cg.wholeOps.length,
        cost: [c.cropped / cg.fullMacs, c.changed / cg.fullMacs],
      });
    }
  }
  return out;
}
