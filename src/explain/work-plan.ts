/**
 * The forward passes a block schedule will run, as far as it is known when it reports (a WorkPlan
 * for the run's progress display). Both counts include the unperturbed pass.
 */
import type { WorkPlan } from "../util/progress.js";

/**
 * Model passes of a schedule's evaluations: the unperturbed input's, and one sample's of a unit
 * (a block, or a group of blocks). One each, except through sliding windows (one per window run).
 */
export interface PassCost {
  base: number;
  of(unit: number): number;
}

export const ONE_PASS: PassCost = { base: 1, of: () => 1 };

/** The paper schedule's plan in model passes: `paperPlan` with each block's own cost. */
export function paperPlanOf(cost: PassCost, blocks: number, screen: number, samples: number, passing?: readonly number[]): WorkPlan {
  let all = 0;
  for (let u = 0; u < blocks; u++) all += cost.of(u);
  const bound = cost.base + screen * all + samples * all;
  if (samples === 0) return { total: bound, bound };
  if (passing === undefined) return { bound };
  let some = 0;
  for (const u of passing) some += cost.of(u);
  const total = cost.base + screen * all + samples * some;
  return { total, bound: total };
}

/**
 * The paper schedule: 1 + S·blocks + N·(blocks passing the screen). Before the screen only the worst
 * case (every block passing) is known; once `passing` is known the total is exact.
 */
export function paperPlan(blocks: number, screen: number, samples: number, passing?: number): WorkPlan {
  return paperPlanOf(ONE_PASS, blocks, screen, samples, passing === undefined ? undefined : Array.from({ length: passing }, (_, u) => u));
}

/**
 * The fast schedule after `spent` passes: at most `more` further passes (every block still open
 * taking rounds up to the sample cap), and no more than a pass budget allows past the screen.
 * `decided`, once the sequential rounds begin, is the passes of the round under way: the estimate
 * is what the schedule has decided on so far (the rounds stop when the map is precise enough, which
 * is not known in advance).
 */
export function fastPlan(spent: number, more: number, budget: number, screenLeft = 0, decided?: number): WorkPlan {
  let bound = spent + more;
  if (budget > 0) bound = Math.min(bound, Math.max(budget, spent + screenLeft));
  if (decided === undefined) return { bound };
  const total = Math.min(spent + decided, bound);
  return { total, bound };
}
