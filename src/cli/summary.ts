/** The JSON summaries of `explain`, `demo` and `components` (--json): what the human summary says, as data. */
import { basename } from "node:path";
import type { ComponentReport } from "../report/components.js";
import { unitEvidence } from "../report/counts.js";
import type { ExplainResult } from "./explain.js";

export function explainJson(r: ExplainResult): Record<string, unknown> {
  const a = r.attribution,
    s = r.written.stats;
  return {
    format: "segcause.explain-summary/1",
    method: a.method,
    model: a.provenance.model.path,
    image: r.kase.imagePath ?? r.kase.id,
    roi: a.roi,
    outcome: a.outcome,
    reference: a.reference,
    baseOutcome: a.baseOutcome,
    signed: a.signed,
    unitKind: a.unitKind,
    valueUnits: a.valueUnits,
    units: s.units,
    // what the counts rest on (null for pixel maps: no per-pixel uncertainty)
    counts: s.evidence ?? null,
    signs: { negative: s.negative, positive: s.positive, zero: s.zero },
    range: [s.minEffect, s.maxEffect],
    colourScale: { maxAbs: s.colourScaleMaxAbs, rule: s.colourScale },
    forwardPasses: a.forwardPasses,
    backwardPasses: a.backwardPasses,
    wallMs: a.wallMs,
    notes: a.notes,
    out: r.written.dir,
    files: Object.keys(r.written.files).map((f) => basename(f)),
  };
}

/** What a components summary reads, on images or volumes. */
export type ComponentSummary = ComponentReport & { reference: string; tau: number };

export function componentsJson(e: ComponentSummary, out: string, files: string[], donors: number): Record<string, unknown> {
  const { perUnit, counts } = unitEvidence(e.units);
  return {
    format: "segcause.components-summary/1",
    level: e.level,
    ablation: e.ablation,
    donors,
    outcome: e.outcome,
    reference: e.reference,
    baseOutcome: e.baseOutcome,
    counts,
    units: e.units.map((u, i) => ({
      name: u.name,
      order: u.order,
      effect: u.effect,
      stderr: Number.isFinite(u.stderr) ? u.stderr : null,
      samples: u.samples,
      status: u.status,
      ...perUnit[i],
    })),
    skipped: e.skipped,
    forwardPasses: e.forwardPasses,
    wallMs: e.wallMs,
    notes: e.notes,
    out,
    files,
  };
}
