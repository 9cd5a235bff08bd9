/**
 * Quadtree groups over a block grid, for hierarchical screening: a group of blocks is replaced all
 * at once; only when that changes the RoI outcome are its four quadrants (and finally its blocks)
 * tested. Blocks far outside the model's receptive field for the RoI are thus cleared in a few
 * passes per region instead of a few passes per block.
 */
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
  const groups: BlockGroup[] = [];
  const n = units.length;
  const cellOf = units.map((u) => [Math.floor(u.row / stride), Math.floor(u.col / stride)] as const);
  // Returns the keys (groups) or negative-encoded block indices (-1 - i) covering the members.
  const build = (members: number[], r0: number, c0: number, s: number): number[] => {
    if (members.length === 0) return [];
    if (members.length === 1 || s === 1) return members.map((i) => -1 - i);
    const h = s / 2;
    const parts: number[][] = [[], [], [], []];
    for (const i of members) {
      const [r, c] = cellOf[i];
      parts[(r >= r0 + h ? 2 : 0) + (c >= c0 + h ? 1 : 0)].push(i);
    }
    const key = n + groups.length;
    const g: BlockGroup = { key, members, children: [] };
    groups.push(g);
    const sub = [build(parts[0], r0, c0, h), build(parts[1], r0, c0 + h, h), build(parts[2], r0 + h, c0, h), build(parts[3], r0 + h, c0 + h, h)].flat();
    g.children = sub;
    return [key];
  };
  const byTop = new Map<string, number[]>();
  units.forEach((_, i) => {
    const [r, c] = cellOf[i];
    const k = `${Math.floor(r / size)},${Math.floor(c / size)}`;
    let arr = byTop.get(k);
    if (!arr) byTop.set(k, (arr = []));
    arr.push(i);
  });
  const top: number[] = [];
  for (const [k, members] of byTop) {
    const [tr, tc] = k.split(",").map(Number);
    top.push(...build(members, tr * size, tc * size, size));
  }
  return { top, groups, blockCount: n };
}

/** Decodes an entry of `top`/`children`: a group key (>= 0) or a block index. */
export function isBlockRef(ref: number): boolean {
  return ref < 0;
}

export function blockOf(ref: number): number {
  return -1 - ref;
}
