/**
 * Perceptual strategies of a model, read from one attribution map (PdCR's or any method's), with
 * defined statistics on a block grid (default 8×8 px, PdCR's blocks). Blocks overlapping the RoI
 * are not part of the grid; a block's value is the mean of the map over its pixels (for a PdCR map:
 * its ATE) and its weight a = |value|.
 *
 * - distance d(b): Chebyshev distance in blocks from block b to the RoI's blocks (1 = adjacent).
 * - local share: Σ_{d ≤ r} a / Σ a, r = 4 blocks by default.
 * - spread: (Σ a·d / Σ a) / max_b d(b) — mean distance of the |ATE| mass from the RoI, as a
 *   fraction of the farthest block of this image (0..1).
 * - entropy: −Σ q log q / log(#blocks), q = a / Σ a (0 = one block, 1 = uniform).
 * - significant blocks: a ≥ max(τ, rel·max a) (τ from the map's settings, 0 if none; rel 0.05).
 * - chain: the union of the 8-connected components of significant blocks that touch the RoI
 *   (contain a block with d = 1); its size (blocks), share of the grid, extent (max d, blocks),
 *   mean width (size / extent, blocks: ≈ 1 for a one-block-wide line, ≈ 4·radius for a blob around
 *   the RoI) and share of the mass.
 *
 * Classification (in this order):
 * - null: no mass at all;
 * - local: local share ≥ 0.7 (most of the effect within r blocks of the RoI);
 * - sequential: the chain reaches at least 2r blocks away, carries ≥ 50% of the mass, covers at
 *   most 25% of the grid and is thin (mean width ≤ 6 blocks): a structure leading away from the
 *   RoI, e.g. along a vessel, rather than a blob around it;
 * - global: otherwise (mass spread over the image, not along one chain).
 */
import { fail } from "../../errors.js";
import type { RoiRect } from "../../target/roi.js";

export interface StrategySettings {
  block: number;
  /** local radius r in blocks */
  radius: number;
  /** relative significance threshold (fraction of the largest |block value|) */
  rel: number;
  /** absolute significance threshold τ in map units */
  tau: number;
  localShare: number;
  chainMass: number;
  chainGridShare: number;
  chainWidth: number;
}

export const STRATEGY_DEFAULTS: StrategySettings = {
  block: 8,
  radius: 4,
  rel: 0.05,
  tau: 0,
  localShare: 0.7,
  chainMass: 0.5,
  chainGridShare: 0.25,
  chainWidth: 6,
};

export type StrategyClass = "local" | "global" | "sequential" | "null";
export const STRATEGY_CLASSES: readonly StrategyClass[] = ["local", "sequential", "global", "null"];

export interface StrategyStats {
  blocks: number;
  totalMass: number;
  localShare: number;
  spread: number;
  entropy: number;
  significantBlocks: number;
  significantShare: number;
  chainBlocks: number;
  chainGridShare: number;
  chainExtent: number;
  /** chainBlocks / chainExtent (blocks); 0 without a chain */
  chainWidth: number;
  chainMass: number;
  cls: StrategyClass;
}

interface GridBlock {
  gr: number;
  gc: number;
  d: number;
  a: number;
}

export function blockValues(
  map: Float32Array,
  height: number,
  width: number,
  roi: RoiRect,
  block: number,
): { blocks: GridBlock[]; rows: number; cols: number } {
  const rows = Math.ceil(height / block),
    cols = Math.ceil(width / block);
  const r0 = Math.floor(roi.row / block),
    r1 = Math.floor((roi.row + roi.height - 1) / block);
  const c0 = Math.floor(roi.col / block),
    c1 = Math.floor((roi.col + roi.width - 1) / block);
  const blocks: GridBlock[] = [];
  for (let gr = 0; gr < rows; gr++) {
    for (let gc = 0; gc < cols; gc++) {
      if (gr >= r0 && gr <= r1 && gc >= c0 && gc <= c1) continue;
      let s = 0,
        n = 0;
      for (let y = gr * block; y < Math.min(height, (gr + 1) * block); y++)
        for (let x = gc * block; x < Math.min(width, (gc + 1) * block); x++) {
          s += map[y * width + x];
          n++;
        }
      const dy = gr < r0 ? r0 - gr : gr > r1 ? gr - r1 : 0,
        dx = gc < c0 ? c0 - gc : gc > c1 ? gc - c1 : 0;
      blocks.push({ gr, gc, d: Math.max(dy, dx), a: Math.abs(s / n) });
    }
  }
  return { blocks, rows, cols };
}

/** Fails in one line on settings that would classify every map by a meaningless rule (or never finish). */
export function checkStrategySettings(st: StrategySettings): void {
  if (!Number.isInteger(st.block) || st.block < 1)
    fail(`--block must be an integer >= 1 (pixels), got ${st.block}`, `use --block ${STRATEGY_DEFAULTS.block}`);
  if (!Number.isInteger(st.radius) || st.radius < 0)
    fail(`--radius must be an integer >= 0 (blocks), got ${st.radius}`, `use --radius ${STRATEGY_DEFAULTS.radius}`);
  if (!(st.rel >= 0 && st.rel <= 1))
    fail(`--rel must be a fraction in [0, 1] of the largest block value, got ${st.rel}`, `use --rel ${STRATEGY_DEFAULTS.rel}`);
  if (!(st.tau >= 0)) fail(`--tau must be >= 0, got ${st.tau}`, "omit --tau to use each map's own tau");
}

export function strategyStats(
  map: Float32Array,
  height: number,
  width: number,
  roi: RoiRect,
  settings: Partial<StrategySettings> = {},
): StrategyStats {
  const st = { ...STRATEGY_DEFAULTS, ...settings };
  checkStrategySettings(st);
  const { blocks, rows, cols } = blockValues(map, height, width, roi, st.block);
  const n = blocks.length;
  let total = 0,
    local = 0,
    dist = 0,
    maxD = 0,
    maxA = 0;
  for (const b of blocks) {
    total += b.a;
    if (b.d <= st.radius) local += b.a;
    dist += b.a * b.d;
    maxD = Math.max(maxD, b.d);
    maxA = Math.max(maxA, b.a);
  }
  let entropy = 0;
  if (total > 0)
    for (const b of blocks)
      if (b.a > 0) {
        const q = b.a / total;
        entropy -= q * Math.log(q);
      }
  const cut = Math.max(st.tau, st.rel * maxA);
  const sig = new Int32Array(rows * cols).fill(-1);
  blocks.forEach((b, i) => {
    if (total > 0 && b.a > 0 && b.a >= cut) sig[b.gr * cols + b.gc] = i;
  });
  // Flood fill from every significant block adjacent to the RoI.
  const inChain = new Uint8Array(n);
  const stack: number[] = [];
  blocks.forEach((b, i) => {
    if (b.d === 1 && sig[b.gr * cols + b.gc] >= 0) {
      inChain[i] = 1;
      stack.push(i);
    }
  });
  while (stack.length) {
    const b = blocks[stack.pop()!];
    for (let dy = -1; dy <= 1; dy++) {
      for (let dx = -1; dx <= 1; dx++) {
        const r = b.gr + dy,
          c = b.gc + dx;
        if (r < 0 || c < 0 || r >= rows || c >= cols) continue;
        const j = sig[r * cols + c];
        if (j >= 0 && !inChain[j]) {
          inChain[j] = 1;
          stack.push(j);
        }
      }
    }
  }
  let chainBlocks = 0,
    chainExtent = 0,
    chainMass = 0,
    significant = 0;
  blocks.forEach((b, i) => {
    if (sig[b.gr * cols + b.gc] >= 0) significant++;
    if (inChain[i]) {
      chainBlocks++;
      chainExtent = Math.max(chainExtent, b.d);
      chainMass += b.a;
    }
  });
  const s: Omit<StrategyStats, "cls"> = {
    blocks: n,
    totalMass: total,
    localShare: total > 0 ? local / total : Number.NaN,
    spread: total > 0 && maxD > 0 ? dist / total / maxD : Number.NaN,
    entropy: total > 0 && n > 1 ? entropy / Math.log(n) : Number.NaN,
    significantBlocks: significant,
    significantShare: significant / n,
    chainBlocks,
    chainGridShare: chainBlocks / n,
    chainExtent,
    chainWidth: chainExtent > 0 ? chainBlocks / chainExtent : 0,
    chainMass: total > 0 ? chainMass / total : Number.NaN,
  };
  return { ...s, cls: classify(s, st) };
}

export function classify(s: Omit<StrategyStats, "cls">, st: StrategySettings = STRATEGY_DEFAULTS): StrategyClass {
  if (!(s.totalMass > 0)) return "null";
  if (s.localShare >= st.localShare) return "local";
  if (s.chainExtent >= 2 * st.radius && s.chainMass >= st.chainMass && s.chainGridShare <= st.chainGridShare && s.chainWidth <= st.chainWidth)
    return "sequential";
  return "global";
}
