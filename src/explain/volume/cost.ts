/**
 * What a volume run will cost, said before it starts: its forward passes (exact for zero and
 * occlusion, a worst case for the paper schedule, an estimate and a worst case for the fast one)
 * and the time they take at a measured pass rate.
 */
import type { VolumeCase } from "../../data/volume/volume-case.js";
import type { VolumeNet } from "../../model/volume-model.js";
import { fmtDuration } from "../../util/progress.js";
import { paperPlanOf } from "../work-plan.js";
import type { BoxUnit } from "./boxes.js";
import { boxTree, planBoxes, type ResolvedVolumeTarget, type VolumeBlockSpec } from "./engine.js";

export interface PlannedCost {
  /** boxes (or windows) explained */
  units: number;
  /** passes when known in advance (zero, occlusion) */
  exact?: number;
  /** the fast schedule's estimate: its screen's worst case (the rounds after it depend on the map) */
  estimate?: number;
  /** the worst case, the unperturbed pass included */
  bound: number;
  /** how the count is made, for the line a user reads */
  rule: string;
}

/**
 * The passes of `spec` on this case and RoI (checks the boxes as the engine does). Through sliding
 * windows (a Target resolved with its windows) a pass is one window run: the unperturbed input runs
 * the windows over the RoI, a sample those of them its boxes touch.
 */
export function plannedCost(kase: VolumeCase, target: ResolvedVolumeTarget, spec: VolumeBlockSpec): PlannedCost {
  const { grid, ad } = planBoxes(kase, target, spec);
  const n = grid.units.length;
  const f = target.forward;
  const passesOf = (boxes: BoxUnit[]) => (f ? f.passesFor(boxes) : 1);
  const blockPasses = grid.units.map((u) => passesOf([u]));
  const cost = { base: f ? f.used.length : 1, of: (u: number) => blockPasses[u] };
  const B = blockPasses.reduce((a, b) => a + b, 0);
  const perBox = (B / Math.max(1, n)).toFixed(2);
  // a 2D model slice by slice: its windows are slices, each one 2D pass
  const windows = !f
    ? ""
    : f.model.slicing
      ? `; a pass is one 2D pass of a slice: ${cost.base} slices over the RoI unperturbed, ${perBox} per box sample on average`
      : `; a pass is one window run: ${cost.base} windows over the RoI, ${perBox} per box sample on average`;
  if (ad) {
    const groups = boxTree(grid, spec.block, ad.groupSize).groups;
    const G = groups.length;
    const GP = groups.reduce((a, g) => a + passesOf(g.members.map((i) => grid.units[i])), 0);
    const R = ad.strata;
    const screen = cost.base + ad.groupDraws * GP + R * B;
    let bound = screen + R * B * (Math.floor(ad.maxSamples / R) - 1);
    if (ad.maxPasses > 0) bound = Math.min(bound, Math.max(ad.maxPasses, screen));
    const terms = f
      ? `${cost.base} + ${ad.groupDraws}·${GP} (${G} octree groups) + ${R}·${B} (${n} boxes)`
      : `1 + ${ad.groupDraws}·${G} octree groups + ${R}·${n} boxes`;
    return {
      units: n,
      estimate: Math.min(screen, bound),
      bound,
      rule: `fast schedule: the screen takes at most ${terms} = ${screen}, then rounds until the map is precise enough (estimate: the screen's worst case)${windows}`,
    };
  }
  const { screen, samples } = spec.estimator;
  const p = paperPlanOf(cost, n, screen, samples);
  const base = f ? `${cost.base}` : "1";
  const per = f ? `·${B} ${f.model.slicing ? "slice" : "window"} passes of the ${n} boxes` : " per box";
  if (p.total !== undefined)
    return {
      units: n,
      exact: p.total,
      bound: p.bound,
      rule: `${base} + ${screen}${per}${spec.stride?.some((v, a) => v < spec.block[a]) ? " (window)" : ""}${windows}`,
    };
  return {
    units: n,
    bound: p.bound,
    rule: f
      ? `at most ${base} + ${screen}·${B} screening + ${samples}·${B} if every box passes the screen${windows}`
      : `at most 1 + ${screen}·${n} screening + ${samples} per box that passes the screen`,
  };
}

/**
 * Milliseconds per pass of a full batch of the unperturbed input at the run's batch size: the rate
 * the run will see. These passes are not part of the map.
 */
export async function measurePassMs(model: VolumeNet, input: Float32Array, batchSize: number): Promise<number> {
  const runner = model.runner(batchSize);
  const n = runner.plan.batchSize;
  const batch = () =>
    runner.run(
      Array.from({ length: n }, (_, draw) => ({ unit: 0, draw })),
      // with sliding windows the input is the padded volume: a window-sized part of it times a pass as well
      (_, [dst]) => dst.set(input.subarray(0, dst.length)),
      () => {},
    );
  // The first batch at this size also sets up its buffers: the second one is timed.
  await batch();
  const t = Date.now();
  await batch();
  return (Date.now() - t) / n;
}

/** One line before the run: the passes and the time at `msPerPass`. */
export function costLine(c: PlannedCost, msPerPass: number): string {
  const time = (p: number) => fmtDuration(p * msPerPass);
  const passes =
    c.exact !== undefined
      ? `${c.exact} passes (≈${time(c.exact)})`
      : c.estimate !== undefined
        ? `≈${c.estimate} passes (≈${time(c.estimate)}), at most ${c.bound} (${time(c.bound)})`
        : `at most ${c.bound} passes (${time(c.bound)})`;
  return `planned: ${c.units} boxes, ${passes} at ${msPerPass.toFixed(0)} ms per pass (measured); ${c.rule}`;
}
