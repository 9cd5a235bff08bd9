/**
 * What a volume run will cost, said before it starts: its forward passes (exact for zero and
 * occlusion, a worst case for the paper schedule, an estimate and a worst case for the fast one)
 * and the time they take at a measured pass rate.
 */
import type { VolumeCase } from "../../data/volume/volume-case.js";
import type { VolumeNet } from "../../model/volume-model.js";
import type { VolumeTarget } from "../../target/volume-target.js";
import { fmtDuration } from "../../util/progress.js";
import { paperPlan } from "../work-plan.js";
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
 * The passes of `spec` on this case and RoI (checks the boxes as the engine does). With sliding windows
 * or slices (`target.forward`) a sample costs the windows over the RoI that its boxes touch, and the
 * unperturbed pass one per window over the RoI: the sample counts are turned into those passes.
 */
export function plannedCost(kase: VolumeCase, target: ResolvedVolumeTarget, spec: VolumeBlockSpec): PlannedCost {
  const c = sampleCost(kase, target, spec);
  const fw = target.forward;
  if (!fw) return c;
  const { grid } = planBoxes(kase, target, spec);
  const per = grid.units.map((u) => fw.passesFor([u]));
  const mean = per.reduce((a, b) => a + b, 0) / Math.max(1, per.length);
  const passes = (samples: number) => fw.used.length + Math.ceil((samples - 1) * mean);
  const sum = per.reduce((a, b) => a + b, 0);
  const what = fw.model.slicing ? "slices" : "windows";
  return {
    units: c.units,
    ...(c.exact !== undefined ? { exact: fw.used.length + Math.round((sum * (c.exact - 1)) / Math.max(1, per.length)) } : {}),
    ...(c.estimate !== undefined ? { estimate: passes(c.estimate) } : {}),
    bound: passes(c.bound),
    rule: `${c.rule}; in model passes: ${fw.used.length} ${what} over the RoI unperturbed, then per sample the ${what} over the RoI its boxes touch (${mean.toFixed(2)} per box on average)`,
  };
}

/** The samples of `spec` (one pass each without windows), the unperturbed one included. */
function sampleCost(kase: VolumeCase, target: VolumeTarget, spec: VolumeBlockSpec): PlannedCost {
  const { grid, ad } = planBoxes(kase, target, spec);
  const n = grid.units.length;
  if (ad) {
    const G = boxTree(grid, spec.block, ad.groupSize).groups.length;
    const R = ad.strata;
    const screen = 1 + ad.groupDraws * G + R * n;
    let bound = screen + R * n * (Math.floor(ad.maxSamples / R) - 1);
    if (ad.maxPasses > 0) bound = Math.min(bound, Math.max(ad.maxPasses, screen));
    return {
      units: n,
      estimate: Math.min(screen, bound),
      bound,
      rule: `fast schedule: the screen takes at most 1 + ${ad.groupDraws}·${G} octree groups + ${R}·${n} boxes = ${screen}, then rounds until the map is precise enough (estimate: the screen's worst case)`,
    };
  }
  const { screen, samples } = spec.estimator;
  const p = paperPlan(n, screen, samples);
  if (p.total !== undefined)
    return {
      units: n,
      exact: p.total,
      bound: p.bound,
      rule: `1 + ${screen} per box${spec.stride?.some((v, a) => v < spec.block[a]) ? " (window)" : ""}`,
    };
  return { units: n, bound: p.bound, rule: `at most 1 + ${screen}·${n} screening + ${samples} per box that passes the screen` };
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
