/**
 * The library's one entry point to every method: `explain("pdcr", { model, case, target, options,
 * run, bank })`. Options are checked and completed as the CLI does (`resolveOptions`), and the
 * method's `check` runs before any pass, so a library caller gets the same refusals as a user.
 */

import type { Case } from "../data/case.js";
import type { PatchBank } from "../data/patchbank.js";
import { fail } from "../errors.js";
import type { Model } from "../model/model.js";
import type { TargetSpec } from "../target/target.js";
import type { Attribution } from "./attribution.js";
import { getMethod } from "./catalog.js";
import { type MethodDefinition, type OptionLabel, resolveOptions } from "./methods.js";
import type { RunOptions } from "./run.js";

export interface ExplainInput<O = Record<string, unknown>> {
  model: Model;
  case: Case;
  target: TargetSpec;
  /** the method's options by their declared names; the rest take their defaults */
  options?: Partial<O>;
  run?: RunOptions;
  /** the natural-patch bank, for methods that need one (pdcr, pdcr-superpixel) */
  bank?: PatchBank;
}

/** How an option is named to a library caller: `options.block`, `options.schedule=paper`. */
export const libraryLabel: OptionLabel = (name, value) => `options.${name}${value === undefined ? "" : `=${value}`}`;

/** Explains one case with a method of the registry (by name) or a definition made by `defineMethod`. */
export async function explain<O = Record<string, unknown>>(method: string | MethodDefinition<O>, input: ExplainInput<O>): Promise<Attribution> {
  const def = (typeof method === "string" ? getMethod(method) : method) as unknown as MethodDefinition;
  const options = resolveOptions(def, (input.options ?? {}) as Record<string, unknown>, libraryLabel);
  if (def.needsBank && !input.bank) fail(`${def.name} needs a patch bank of natural patches`, "pass `bank` (PatchBank.load or buildPatchBank)");
  def.check?.({ model: input.model, options, bankPatchSize: input.bank?.patchSize, label: libraryLabel });
  return def.explain({ model: input.model, kase: input.case, target: input.target, run: input.run ?? {}, bank: input.bank, options });
}
