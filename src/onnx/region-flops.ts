/**
 * Multiply-adds of a network counted from its region graph (issue 24): for full inference, for the
 * outputs the RoI needs, and for a perturbed pass that recomputes only the changed and needed part of
 * every tensor (the halo is in the changed region already: it grows by each window), plus how much of
 * the network runs before the first op that mixes all positions.
 */
import { type Box, boxVolume, changedRegions, intersect, nodeMacs, type Region, type RegionGraph, type RegionNode } from "./regions.js";

export interface NetworkMacs {
  /** multiply-adds of one full inference (batch 1) */
  full: number;
  /** of which in nodes before (not downstream of) the first global op: where the region rules hold */
  local: number;
  /** the first node that mixes all positions, as "OpType 'name'" */
  firstGlobal?: string;
}

/** The nodes downstream of (or at) a global node. */
function globalNodes(g: RegionGraph): Set<RegionNode> {
  const tainted = new Set<string>();
  const out = new Set<RegionNode>();
  for (const n of g.nodes) {
    if (n.global || n.node.input.some((t) => tainted.has(t))) {
      out.add(n);
      for (const t of n.node.output) tainted.add(t);
    }
  }
  return out;
}

export function networkMacs(g: RegionGraph): NetworkMacs {
  const after = globalNodes(g);
  let full = 0;
  let local = 0;
  for (const n of g.nodes) {
    const m = nodeMacs(g, n);
    full += m;
    if (!after.has(n)) local += m;
  }
  const first = g.nodes.find((n) => n.global)?.node;
  return { full, local, firstGlobal: first ? `${first.opType} '${first.name || first.output[0]}'` : undefined };
}

/** Multiply-adds of computing only the needed part of every node's output (an RoI-cropped pass). */
export function neededMacs(g: RegionGraph, needed: Map<string, Region>): number {
  let sum = 0;
  for (const n of g.nodes) {
    const r = needed.get(n.node.output[0]);
    if (r) sum += nodeMacs(g, n, r.box);
  }
  return sum;
}

/**
 * Multiply-adds of a pass that perturbs the input inside `box` and recomputes, per node, only the
 * outputs that both change and are needed (the rest read from the unperturbed pass's tensors).
 */
export function incrementalMacs(g: RegionGraph, box: Box, needed: Map<string, Region>): number {
  const changed = changedRegions(g, box);
  let sum = 0;
  for (const n of g.nodes) {
    const t = n.node.output[0];
    const c = changed.get(t);
    const r = needed.get(t);
    if (c && r) {
      const both = intersect(c.box, r.box);
      if (boxVolume(both) > 0) sum += nodeMacs(g, n, both);
    }
  }
  return sum;
}
