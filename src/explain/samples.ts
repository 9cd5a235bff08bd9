/**
 * Outcome samples per unit, keyed by draw number. Draws are a pure function of (seed, unit, j),
 * so a store saved mid-run lets an interrupted run resume and give the identical map.
 */
import { getOrInsert } from "../util/maps.js";
export interface SampleRequest {
  unit: number;
  /** the j-th draw of this unit's intervention distribution */
  draw: number;
}

/** Scores requests (RoI outcome of the model on the intervened input), in order. */
export type Evaluate = (requests: SampleRequest[], stage: string) => Promise<Float64Array>;

export class OutcomeStore {
  private readonly byUnit = new Map<number, number[]>();

  get(unit: number, draw: number): number | undefined {
    return this.byUnit.get(unit)?.[draw];
  }

  set(unit: number, draw: number, value: number): void {
    getOrInsert(this.byUnit, unit, () => [])[draw] = value;
  }

  get size(): number {
    let n = 0;
    for (const a of this.byUnit.values()) for (const v of a) if (v !== undefined) n++;
    return n;
  }

  /** Σ over the samples held of `weight(unit)` (e.g. the model passes each took). */
  weighted(weight: (unit: number) => number): number {
    let n = 0;
    for (const [u, a] of this.byUnit) for (const v of a) if (v !== undefined) n += weight(u);
    return n;
  }

  toJSON(): Record<string, (number | null)[]> {
    const out: Record<string, (number | null)[]> = {};
    for (const [u, a] of this.byUnit) out[u] = Array.from(a, (v) => (v === undefined ? null : v));
    return out;
  }

  static fromJSON(obj: Record<string, (number | null)[]>): OutcomeStore {
    const s = new OutcomeStore();
    for (const [u, a] of Object.entries(obj)) a.forEach((v, j) => v !== null && s.set(Number(u), j, v));
    return s;
  }
}

/**
 * Wraps an evaluator so that samples already in the store are not recomputed and new ones are
 * recorded; `chunk` bounds how much work can be lost between checkpoints.
 */
export function cachedEvaluate(inner: Evaluate, store: OutcomeStore, chunk: number, afterChunk?: () => Promise<void>): Evaluate {
  return async (requests, stage) => {
    const out = new Float64Array(requests.length);
    const missing: number[] = [];
    requests.forEach((r, i) => {
      const v = store.get(r.unit, r.draw);
      if (v === undefined) missing.push(i);
      else out[i] = v;
    });
    for (let s = 0; s < missing.length; s += chunk) {
      const idx = missing.slice(s, s + chunk);
      const vals = await inner(
        idx.map((i) => requests[i]),
        stage,
      );
      idx.forEach((i, k) => {
        out[i] = vals[k];
        store.set(requests[i].unit, requests[i].draw, vals[k]);
      });
      await afterChunk?.();
    }
    return out;
  };
}
