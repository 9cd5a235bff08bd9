/**
 * The forward passes a block schedule will run, as far as it is known when it reports (a WorkPlan
 * for the run's progress display). Both counts include the unperturbed pass.
 */
import type { WorkPlan } from "../util/progress.js";

/**
 * The paper schedule: 1 + S·blocks + N·(blocks passing the screen). Before the screen only the worst
 * case (every block passing) is known; once `passing` is known the total is exact.
 */
export function paperPlan(blocks: number, screen: number, samples: number, passing?: number): WorkPlan {
  const bound = 1 + screen * blocks + samples * blocks;
  if (samples === 0) return { total: bound, bound };
  if (passing === undefined) return { bound };
  const total = 1 + screen * blocks + samples * passing;
  return { total, bound: total };
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
