/**
 * Quadtree groups over a block grid, for hierarchical screening: a group of blocks is replaced all
 * at once; only when that changes the RoI outcome are its four quadrants (and finally its blocks)
 * tested. Blocks far outside the model's receptive field for the RoI are thus cleared in a few
 * passes per region instead of a few passes per block.
 */

import { getOrInsert } from "../util/maps.js";
import type { Block } from "./units.js";

export interface BlockGroup {
  /** key in the outcome store: blockCount + position in `groups` */
  key: number;
  /** indices of the member blocks (units) */
  members: number[];
  /** child groups (keys), or empty when the children are the member blocks themselves */
  children: number[];
}

export interface Quadtree {
  /** groups at the top level (keys) */
  top: number[];
  /** every group, indexed by key − blockCount */
  groups: BlockGroup[];
  blockCount: number;
}

/**
 * Groups grid blocks (non-overlapping, same stride) into squares of `size` x `size` blocks
 * (`size` a power of two), halving down to 2x2 groups whose children are single blocks. Groups
 * with a single member are not formed: the block is tested directly.
 */
export function buildQuadtree(units: readonly Block[], stride: number, size: number): Quadtree {
  return buildTree(
    units.map((u) => [Math.floor(u.row / stride), Math.floor(u.col / stride)]),
    size,
  );
}

/**
 * The same tree over grid cells of any dimension (a cell is its index along each axis): cubes of
 * `size` cells per axis, each split into 2^d parts (the first axis the most significant bit) down to
 * single cells. In 3D it is an octree over boxes.
 */
export function buildTree(cellOf: readonly (readonly number[])[], size: number): Quadtree {
  const groups: BlockGroup[] = [];
  const n = cellOf.length;
  const dims = cellOf[0]?.length ?? 0;
  // Returns the keys (groups) or negative-encoded block indices (-1 - i) covering the members.
  const build = (members: number[], origin: readonly number[], s: number): number[] => {
    if (members.length === 0) return [];
    if (members.length === 1 || s === 1) return members.map((i) => -1 - i);
    const h = s / 2;
    const parts: number[][] = Array.from({ length: 2 ** dims }, () => []);
    for (const i of members) {
      let part = 0;
      for (let a = 0; a < dims; a++) part = part * 2 + (cellOf[i][a] >= origin[a] + h ? 1 : 0);
      parts[part].push(i);
    }
    const key = n + groups.length;
    const g: BlockGroup = { key, members, children: [] };
    groups.push(g);
    g.children = parts.flatMap((members, part) =>
      build(
        members,
        origin.map((o, a) => o + ((part >> (dims - 1 - a)) & 1) * h),
        h,
      ),
    );
    return [key];
  };
  const byTop = new Map<string, number[]>();
  cellOf.forEach((cell, i) => {
    const k = cell.map((c) => Math.floor(c / size)).join(",");
    getOrInsert(byTop, k, () => []).push(i);
  });
  const top: number[] = [];
  for (const [k, members] of byTop)
    top.push(
      ...build(
        members,
        k.split(",").map((t) => Number(t) * size),
        size,
      ),
    );
  return { top, groups, blockCount: n };
}

/** Decodes an entry of `top`/`children`: a group key (>= 0) or a block index. */
export function isBlockRef(ref: number): boolean {
  return ref < 0;
}

export function blockOf(ref: number): number {
  return -1 - ref;
}
