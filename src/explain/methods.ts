/**
 * The method registry: every explanation method is a named recipe (Unit partition + Intervention +
 * Estimator) registered here with its options, defaults and cost. `segcause explain`, `segcause
 * methods`, the table in docs/methods.md and the faithfulness benchmark all read this one list, so a method
 * added here is available everywhere.
 */

import type { Case } from "../data/case.js";
import type { PatchBank } from "../data/patchbank.js";
import type { VolumeBank } from "../data/volume/volume-bank.js";
import type { VolumeCase } from "../data/volume/volume-case.js";
import { fail } from "../errors.js";
import type { Model } from "../model/model.js";
import type { VolumeNet } from "../model/volume-model.js";
import type { TargetSpec } from "../target/target.js";
import type { VolumeTarget } from "../target/volume-target.js";
import type { Attribution } from "./attribution.js";
import { type MethodOption, type OptionsDecl, type OptionValues, optionList } from "./options.js";
import type { RunOptions } from "./run.js";
import { blockFitProblem } from "./units.js";
import type { BoxUnitName } from "./volume/box-size.js";
import type { VolumeAttribution, VolumeBlockSpec } from "./volume/engine.js";
import type { VolumeRunOptions } from "./volume/gradients.js";

export type MethodFamily = "causal" | "perturbation" | "gradient";
export type { MethodOption, OptionType } from "./options.js";

/** What a method is asked to explain (the options come resolved: see `resolveOptions`). */
export interface MethodContext<O = Record<string, unknown>> {
  model: Model;
  kase: Case;
  target: TargetSpec;
  run: RunOptions;
  /** the natural-patch bank, for methods with `needsBank` */
  bank?: PatchBank;
  /** option values with every default filled in (see `resolveOptions`) */
  options: O;
}

/** A method as the registry holds it; made by `defineMethod` from one declaration. */
export interface MethodDefinition<O = Record<string, unknown>> {
  name: string;
  family: MethodFamily;
  /** one line for `segcause methods` */
  summary: string;
  /** forward/backward passes per map, as a formula of the options */
  cost: string;
  needsBank?: boolean;
  /**
   * Set (and changed) when the method's maps change for the same options, e.g. a new default
   * inside its schedule: evaluate's cell keys include it, so a folder never mixes cells of two
   * revisions under one setting. A function gives the revision of the maps these options make (a
   * change that affects one schedule only leaves the other's cells keyed as they were).
   */
  revision?: string | ((options: O) => string | undefined);
  /** the declared options, in declaration order */
  options: MethodOption[];
  /**
   * Checks the resolved options against a loaded model (and the patch size of the bank it will be
   * given) before any map is made: `explain` and evaluate call it before any tuning or map, so a
   * setting that can never work stops the run at once.
   */
  check?(ctx: CheckContext<O>): void;
  explain(ctx: MethodContext<O>): Promise<Attribution>;
  /** what the method does on volumes (3D models); absent = it does not run on volumes */
  volume?: VolumeForm<O>;
}

/** What a volume method is given: the loaded volume model (3D, or a 2D model slice by slice), the volume Case, the resolved Target, the bank if any. */
export interface VolumeMethodContext {
  model: VolumeNet;
  kase: VolumeCase;
  target: VolumeTarget;
  bank?: VolumeBank;
  /** what --block and --stride are given in (millimetres by default) */
  boxUnit?: BoxUnitName;
}

/** A planned volume run: everything that can fail on the inputs has been checked. */
export type VolumeRun = ((run: VolumeRunOptions) => Promise<VolumeAttribution>) & {
  /** the box methods' engine settings, from which the cost is said before the run */
  blockSpec?: VolumeBlockSpec;
};

/**
 * A method's form on volumes, declared with the method (same options, same defaults): `check` refuses
 * option values that have no volume form before any file is read; `plan` checks the options against
 * the model, the volume and the Target before the output folder is claimed, and returns the run.
 */
export interface VolumeForm<O = Record<string, unknown>> {
  /** one line for `segcause methods`: what the method does on a volume */
  summary: string;
  /** true when the method runs the model through sliding windows; the others need the volume in one box */
  windows?: boolean;
  /** why a method does not run through sliding windows, for its refusal */
  noWindows?: string;
  /** true when a 2D model can run it slice by slice (the box methods, through the windows' engine) */
  slices?: boolean;
  check?(o: O, has: { bank: boolean }): void;
  plan(ctx: VolumeMethodContext, o: O): VolumeRun | Promise<VolumeRun>;
}

export interface CheckContext<O = Record<string, unknown>> {
  model: Model;
  options: O;
  /** patch size of the bank, for methods with `needsBank` */
  bankPatchSize?: number;
  label: OptionLabel;
}

/** One method, declared once: its options' value type comes from the `options` declaration. */
export interface MethodSpec<D extends OptionsDecl> {
  name: string;
  family: MethodFamily;
  summary: string;
  cost: string;
  needsBank?: boolean;
  revision?: string | ((options: OptionValues<D>) => string | undefined);
  options: D;
  check?(ctx: CheckContext<OptionValues<D>>): void;
  /** the recipe: `o` holds every option, typed by the declaration */
  explain(ctx: MethodContext<OptionValues<D>>, o: OptionValues<D>): Promise<Attribution>;
  volume?: VolumeForm<OptionValues<D>>;
}

export function defineMethod<const D extends OptionsDecl>(spec: MethodSpec<D>): MethodDefinition<OptionValues<D>> {
  const { explain, options, ...rest } = spec;
  return { ...rest, options: optionList(options), explain: (ctx) => explain(ctx, ctx.options) };
}

/** Shared check of block-based methods: the block (and the stride, when the method has one) must fit the input. */
export function checkBlockFits(ctx: CheckContext<{ block: number; stride?: number }>): void {
  const b = ctx.options.block;
  const { height, width } = ctx.model;
  const hasStride = ctx.options.stride !== undefined;
  const s = ctx.options.stride ?? b;
  const problem = blockFitProblem(height, width, b, s);
  if (problem === "block")
    fail(
      `${ctx.label("block", String(b))}: the block does not fit the ${height}x${width} input of ${ctx.model.path}`,
      `use a block of at most ${Math.min(height, width)} px`,
    );
  if (problem === "stride")
    fail(
      `${ctx.label(hasStride ? "stride" : "block", String(s))} is larger than the block (${b} px): windows would leave gaps`,
      `use a stride of at most ${b}`,
    );
}

const registry = new Map<string, MethodDefinition>();

/** Registers a method; the registry holds it untyped (`resolveOptions` gives it the options it declares). */
export function registerMethod<O>(typed: MethodDefinition<O>): void {
  const def = typed as unknown as MethodDefinition;
  if (registry.has(def.name)) throw new Error(`method ${def.name} registered twice`);
  for (const o of def.options) {
    const w = o.appliesWhen;
    const on = w && def.options.find((x) => x.name === w.option);
    if (w && !(on?.choices && w.values.every((v) => on.choices!.includes(v))))
      throw new Error(`${def.name}.${o.name}: appliesWhen names no choice of a declared option`);
  }
  registry.set(def.name, def);
}

export function methodNames(): string[] {
  return [...registry.keys()];
}

/** The methods that run on volumes, in registry order. */
export function volumeMethodNames(): string[] {
  return allMethods()
    .filter((m) => m.volume)
    .map((m) => m.name);
}

/** The volume methods that run through sliding windows (the others need the volume in one model box): for refusals' hints. */
export function windowedMethodNames(): string[] {
  return allMethods()
    .filter((m) => m.volume?.windows)
    .map((m) => m.name);
}

export function allMethods(): MethodDefinition[] {
  return [...registry.values()];
}

export function getMethod(name: string): MethodDefinition {
  const def = registry.get(name);
  if (!def) fail(`unknown method '${name}'`, `choose one of: ${methodNames().join(", ")} (see \`segcause methods\`)`);
  return def;
}

export function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** How an option (and an option with a value) is spelt to the user: `--screen`, `--schedule paper`. */
export type OptionLabel = (name: string, value?: string) => string;
export const flagLabel: OptionLabel = (name, value) => `--${kebab(name)}${value === undefined ? "" : ` ${value}`}`;

/**
 * Fills in defaults and checks that every given option belongs to the method (and applies with the
 * other options' values), so that a flag the method ignores is an error rather than a silently
 * different result. `given` holds only the options the user gave (undefined = not given): the CLI's
 * method flags have no commander defaults, and evaluate's `--set` lists only what was set.
 */
export function resolveOptions(def: MethodDefinition, given: Record<string, unknown>, label: OptionLabel = flagLabel): Record<string, unknown> {
  const known = new Map(def.options.map((o) => [o.name, o]));
  for (const [k, v] of Object.entries(given)) {
    if (v === undefined) continue;
    const opt = known.get(k);
    if (!opt) {
      const takers = allMethods()
        .filter((m) => m.options.some((o) => o.name === k))
        .map((m) => m.name);
      fail(
        `${label(k)} is not an option of method ${def.name}`,
        takers.length ? `it belongs to: ${takers.join(", ")}` : `options of ${def.name}: ${def.options.map((o) => label(o.name)).join(" ")}`,
      );
    }
    if (opt.choices && !opt.choices.includes(String(v))) fail(`${label(k)} must be one of ${opt.choices.join(", ")}, got '${v}'`);
    checkOptionValue(opt, v, label(k));
  }
  const out: Record<string, unknown> = {};
  for (const o of def.options) out[o.name] = given[o.name] ?? o.default;
  for (const o of def.options) {
    const when = o.appliesWhen;
    if (!when || given[o.name] === undefined || when.values.includes(String(out[when.option]))) continue;
    const need = when.values.map((v) => label(when.option, v)).join(" or ");
    const now =
      given[when.option] === undefined
        ? `${label(when.option)} is ${String(out[when.option])} by default`
        : `${label(when.option)} is ${String(out[when.option])}`;
    fail(`${label(o.name)} applies only to ${need}; ${now}, which ignores it`, `add ${label(when.option, when.values[0])}, or drop ${label(o.name)}`);
  }
  return out;
}

/** The allowed range of a numeric option in words ("an integer >= 1", "a number in (0, 1)"), or undefined. */
export function describeRange(o: MethodOption): string | undefined {
  const kind = o.type === "int" ? "an integer" : "a number";
  const lo = o.min !== undefined,
    hi = o.max !== undefined;
  if (lo && hi) return `${kind} in ${o.minExclusive ? "(" : "["}${o.min}, ${o.max}${o.maxExclusive ? ")" : "]"}`;
  if (lo) return `${kind} ${o.minExclusive ? ">" : ">="} ${o.min}`;
  if (hi) return `${kind} ${o.maxExclusive ? "<" : "<="} ${o.max}`;
  return undefined;
}

/** Checks a numeric option value (each value of a list) against its declared type and range; `label` names it in the error. */
export function checkOptionValue(o: MethodOption, v: unknown, label = `--${kebab(o.name)}`): void {
  if (o.type === "string") return;
  const values = o.type === "numbers" && Array.isArray(v) ? v : [v];
  for (const x of values) {
    const ok =
      typeof x === "number" &&
      Number.isFinite(x) &&
      (o.type !== "int" || Number.isInteger(x)) &&
      (o.min === undefined || (o.minExclusive ? x > o.min : x >= o.min)) &&
      (o.max === undefined || (o.maxExclusive ? x < o.max : x <= o.max));
    if (!ok) {
      const d = Array.isArray(o.default) ? o.default.join(",") : String(o.default);
      fail(
        `${label} must be ${describeRange(o) ?? (o.type === "int" ? "an integer" : "a number")}, got ${Array.isArray(v) ? `'${v.join(",")}'` : String(x)}`,
        `its default is ${d}`,
      );
    }
  }
}
