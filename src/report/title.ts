/** The title line of a map's pictures: method, model, image, RoI and the base outcome. */
import { basename } from "node:path";
import type { Case } from "../data/case.js";
import type { Attribution } from "../explain/attribution.js";

export function mapTitle(a: Attribution, kase: Case): { title: string; subtitle: string } {
  const model = basename(a.provenance.model.path);
  const r = a.roi;
  const outcome = a.outcome === "dice" ? "Dice" : a.outcome;
  const ref = a.reference === "ground-truth" ? "ground truth" : "the model's own prediction";
  return {
    title: `${a.method} · ${model} · ${kase.id}`,
    subtitle: `RoI rows ${r.row}..${r.row + r.height - 1}, cols ${r.col}..${r.col + r.width - 1} (model input ${a.height}x${a.width}) · base ${outcome} ${a.baseOutcome.toFixed(1)} vs ${ref}`,
  };
}
