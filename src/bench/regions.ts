/**
 * `npm run bench -- --regions`: multiply-adds per perturbed pass counted from the region rules
 * (src/onnx/regions.ts), per shipped model (zoo and volumes): full inference, the part before the
 * first global op, an RoI-cropped pass (only what the RoI's outputs need), and an incremental pass
 * (only what a block changes and the RoI needs), over every block of the grid. 2D: 8 and 16 px blocks,
 * a 32 px RoI at the output's centre; 3D: 8-voxel boxes, a 16-voxel RoI. Counts, not timings.
 */
import { readdirSync } from "node:fs";
import { join, relative } from "node:path";
import { PACKAGE_ROOT } from "../cli/demo.js";
import { readModelFile } from "../onnx/graph.js";
import { incrementalMacs, neededMacs, networkMacs } from "../onnx/region-flops.js";
import { type Box, boxVolume, intersect, neededRegions, type RegionGraph, regionGraph } from "../onnx/regions.js";

export interface RegionsRow {
  model: string;
  /** spatial input size */
  input: number[];
  block: number;
  roi: number;
  fullMacs: number;
  /** share of the full MACs before the first global op */
  localShare: number;
  firstGlobal?: string;
  /** share of the input the RoI's outputs need */
  neededInputShare: number;
  /** MACs of an RoI-cropped pass, as a share of full */
  neededShare: number;
  blocks: number;
  /** blocks whose box meets the needed input region (the others cannot move the RoI: no pass) */
  blocksToRun: number;
  /** mean MACs of an incremental pass over the blocks to run, as a share of full */
  incrementalShare: number;
  /** mean over all blocks (skipped ones at 0), as a share of full: 1 / the bound on the speed-up */
  perBlockShare: number;
}

function shippedModels(): string[] {
  const list = (dir: string) =>
    readdirSync(dir)
      .filter((f) => f.endsWith(".onnx"))
      .sort()
      .map((f) => join(dir, f));
  return [...list(join(PACKAGE_ROOT, "models")), ...list(join(PACKAGE_ROOT, "models", "volumes"))];
}

/** Every block of side `b` of the grid from 0 over the spatial axes (batch and channel axes whole). */
function blockGrid(dims: number[], b: number): Box[] {
  let boxes: Box = [];
  const out: Box[] = [];
  const walk = (axis: number) => {
    if (axis === dims.length) return out.push(boxes.map((x) => [...x]) as Box);
    if (axis < 2) {
      boxes[axis] = [0, dims[axis]];
      return walk(axis + 1);
    }
    for (let lo = 0; lo < dims[axis]; lo += b) {
      boxes[axis] = [lo, Math.min(lo + b, dims[axis])];
      walk(axis + 1);
    }
  };
  walk(0);
  boxes = [];
  return out;
}

/** The RoI: a cube of side `side` at the output's centre, every channel. */
function centreBox(dims: number[], side: number): Box {
  return dims.map((d, i): [number, number] => {
    if (i < 2) return [0, d];
    const s = Math.min(side, d);
    const lo = Math.floor((d - s) / 2);
    return [lo, lo + s];
  });
}

export function regionsForModel(path: string, g: RegionGraph, block: number, roi: number): RegionsRow {
  const inDims = g.dims.get(g.input)!;
  const net = networkMacs(g);
  const needed = neededRegions(g, centreBox(g.dims.get(g.output)!, roi));
  const neededIn = needed.get(g.input)!.box;
  const blocks = blockGrid(inDims, block);
  let toRun = 0;
  let sum = 0;
  for (const b of blocks) {
    if (boxVolume(intersect(b, neededIn)) === 0) continue;
    toRun++;
    sum += incrementalMacs(g, b, needed);
  }
  return {
    model: relative(PACKAGE_ROOT, path),
    input: inDims.slice(2),
    block,
    roi,
    fullMacs: net.full,
    localShare: net.local / net.full,
    firstGlobal: net.firstGlobal,
    neededInputShare: boxVolume(neededIn.slice(2)) / boxVolume(inDims.slice(2).map((d) => [0, d])),
    neededShare: neededMacs(g, needed) / net.full,
    blocks: blocks.length,
    blocksToRun: toRun,
    incrementalShare: toRun ? sum / toRun / net.full : 0,
    perBlockShare: sum / blocks.length / net.full,
  };
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

export function regionsBench(): RegionsRow[] {
  const rows: RegionsRow[] = [];
  console.log("\n## Multiply-adds per pass from the region rules (batch 1; shares of full inference)");
  console.log(
    "\nmodel | input | block / RoI | full GMAC | before first global op | first global op | input the RoI needs | RoI-cropped pass | blocks to run / all | incremental pass (mean over blocks to run) | mean per block, skipped = 0 | bound on speed-up",
  );
  console.log("---|---|---|---|---|---|---|---|---|---|---|---");
  for (const path of shippedModels()) {
    const g = regionGraph(readModelFile(path).proto);
    const is3d = g.dims.get(g.input)!.length === 5;
    for (const block of is3d ? [8] : [8, 16]) {
      const r = regionsForModel(path, g, block, is3d ? 16 : 32);
      rows.push(r);
      console.log(
        [
          r.model,
          r.input.join("×"),
          `${r.block} / ${r.roi}`,
          (r.fullMacs / 1e9).toFixed(2),
          pct(r.localShare),
          r.firstGlobal ?? "none",
          pct(r.neededInputShare),
          pct(r.neededShare),
          `${r.blocksToRun} / ${r.blocks}`,
          pct(r.incrementalShare),
          pct(r.perBlockShare),
          `${(1 / r.perBlockShare).toFixed(1)}×`,
        ].join(" | "),
      );
    }
  }
  return rows;
}
