/**
 * The fills used by the faithfulness curves: what a removed pixel becomes. They reuse the
 * explanation Interventions, so "natural patches" here is exactly PdCR's treatment (bank patches
 * tiled over the removed pixels) and blur/zero/mean are the occlusion fills.
 */

import type { Case } from "../data/case.js";
import type { PatchBank } from "../data/patchbank.js";
import { fail } from "../errors.js";
import { FillIntervention, type Intervention, PatchIntervention } from "../explain/interventions.js";
import type { Model } from "../model/model.js";
import { randomInt } from "../util/rng.js";
import { STREAM } from "../util/streams.js";

export const FILL_NAMES = ["patches", "blur", "zero", "mean"] as const;
export type FillName = (typeof FILL_NAMES)[number];

export interface CurveFill {
  name: FillName;
  intervention: Intervention;
  /** draw numbers averaged per point (one for deterministic fills) */
  draws: number[];
}

export interface FillSettings {
  /** natural-patch draws averaged per curve point (default 2) */
  patchDraws: number;
  /** Gaussian sigma of the blur fill in pixels (default 5) */
  blurSigma: number;
  seed: number;
}

export const FILL_DEFAULTS: Omit<FillSettings, "seed"> = { patchDraws: 2, blurSigma: 5 };

export function parseFills(spec: string): FillName[] {
  const names = spec
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  for (const n of names) if (!(FILL_NAMES as readonly string[]).includes(n)) fail(`unknown fill '${n}'`, `choose from ${FILL_NAMES.join(", ")}`);
  if (names.length === 0) fail("no fill given", `use --fills ${FILL_NAMES.join(",")}`);
  return [...new Set(names)] as FillName[];
}

/**
 * The draws are the same for every method and ordering of one (model, image, RoI): a curve point
 * of two methods differs only by which pixels were removed (common random numbers).
 */
export async function makeFills(model: Model, kase: Case, names: readonly FillName[], st: FillSettings, bank?: PatchBank): Promise<CurveFill[]> {
  const out: CurveFill[] = [];
  for (const name of names) {
    if (name === "patches") {
      if (!bank) fail("the natural-patch fill needs a patch bank", "pass --bank, or let evaluate build one from the dataset's train split");
      if (!Number.isInteger(st.patchDraws) || st.patchDraws < 1) fail(`--patch-draws must be a positive integer, got ${st.patchDraws}`);
      const intervention = new PatchIntervention(bank, model, undefined, kase);
      const draws = Array.from({ length: st.patchDraws }, (_, j) => randomInt(st.seed, STREAM.fillDraws, j, intervention.draws));
      out.push({ name, intervention, draws });
    } else {
      const opts =
        name === "blur"
          ? { kind: "blur" as const, sigma: st.blurSigma }
          : name === "zero"
            ? { kind: "constant" as const, value: 0 }
            : { kind: "mean" as const };
      out.push({ name, intervention: await FillIntervention.create(model, kase.image, opts), draws: [0] });
    }
  }
  return out;
}
