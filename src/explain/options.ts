/**
 * Declarations of method options. A method declares each option once (`block: int({...})`); the
 * type of the values its recipe receives is derived from the declaration (`OptionValues`), and the
 * CLI flags, `segcause methods`, evaluate's `--set` and cell keys all read the same declarations.
 */

import type { FillKind } from "./interventions.js";
import { MAX_BLUR_SIGMA, MIN_BLUR_SIGMA, PIXEL_VALUE } from "./interventions.js";

export type OptionType = "int" | "number" | "string" | "numbers";

interface Range {
  /** smallest allowed value of a numeric option (of every value of a "numbers" option) */
  min?: number;
  /** largest allowed value */
  max?: number;
  /** true when `min` itself is not allowed (the value must be greater) */
  minExclusive?: boolean;
  /** true when `max` itself is not allowed */
  maxExclusive?: boolean;
}

interface Common<T> {
  description: string;
  default: T;
  /**
   * The option only has an effect when another option of the method has one of these values
   * (pdcr's `screen` only with `schedule` paper): giving it otherwise is refused by `resolveOptions`.
   */
  appliesWhen?: { option: string; values: readonly string[] };
  /**
   * The option came after evaluate folders were published and its default keeps the old behaviour:
   * it enters evaluate's cell key only when set to another value, so those folders stay valid.
   */
  addedLater?: boolean;
}

/** One option, declared; `T` is the type of its value. */
export interface OptionDecl<T = unknown> extends Range, Common<T> {
  type: OptionType;
  /** allowed values for a string option */
  choices?: readonly string[];
}

/**
 * One option of a method as the registry lists it. The same name means the same thing in every
 * method that takes it (Captum's rule): `block` is always a unit size in pixels, `tau` always an
 * effect threshold.
 */
export interface MethodOption extends OptionDecl {
  /** camelCase key; the CLI flag is its kebab-case form (`noiseSamples` → `--noise-samples`) */
  name: string;
}

// `any`: a record of declarations of different value types (each keeps its own in OptionValues).
// biome-ignore lint/suspicious/noExplicitAny: each declaration keeps its own value type; unknown would erase them
export type OptionsDecl = Record<string, OptionDecl<any>>;

/** The values a recipe receives for a declaration: every option resolved, defaults filled in. */
export type OptionValues<D extends OptionsDecl> = { [K in keyof D]: D[K] extends OptionDecl<infer T> ? T : never };

export const int = (o: Common<number> & Range): OptionDecl<number> => ({ type: "int", ...o });
export const num = (o: Common<number> & Range): OptionDecl<number> => ({ type: "number", ...o });
export const numbers = (o: Common<number[]> & Range): OptionDecl<number[]> => ({ type: "numbers", ...o });
export const text = (o: Common<string>): OptionDecl<string> => ({ type: "string", ...o });
export function choice<const C extends readonly string[]>(choices: C, o: Common<C[number]>): OptionDecl<C[number]> {
  return { type: "string", choices, ...o };
}

/** An integer option whose default is decided at run time (undefined until given). */
export const optionalInt = (o: Omit<Common<number>, "default"> & Range): OptionDecl<number | undefined> => ({
  type: "int",
  default: undefined,
  ...o,
});
export function optionalChoice<const C extends readonly string[]>(
  choices: C,
  o: Omit<Common<C[number]>, "default">,
): OptionDecl<C[number] | undefined> {
  return { type: "string", choices, default: undefined, ...o };
}

/** Every option of a declaration at its default. */
export function optionDefaults<D extends OptionsDecl>(d: D): OptionValues<D> {
  return Object.fromEntries(Object.entries(d).map(([k, o]) => [k, o.default])) as OptionValues<D>;
}

/** The registry's list of a declaration, in declaration order (the order of resolved options and cell keys). */
export function optionList(d: OptionsDecl): MethodOption[] {
  return Object.entries(d).map(([name, o]) => ({ name, ...o }));
}

export const FILL_KINDS = ["constant", "mean", "blur"] as const satisfies readonly FillKind[];

/**
 * The three options of a fill (what replaces removed content: occlusion windows, RISE/LIME/SHAP
 * coalitions, gradient baselines), declared once so they mean the same everywhere.
 */
export function fillOptions(role: string, defaults: { fillKind: FillKind; fill: number; sigma: number }) {
  return {
    fillKind: choice(FILL_KINDS, { description: `${role}: a constant, the image's mean colour, or a Gaussian blur`, default: defaults.fillKind }),
    fill: num({
      description: "pixel value of the constant fill (0..255 image units; 0 = black)",
      default: defaults.fill,
      ...PIXEL_VALUE,
      appliesWhen: { option: "fillKind", values: ["constant"] },
    }),
    sigma: num({
      description: "Gaussian sigma of the blur fill in pixels",
      default: defaults.sigma,
      min: MIN_BLUR_SIGMA,
      max: MAX_BLUR_SIGMA,
      appliesWhen: { option: "fillKind", values: ["blur"] },
    }),
  };
}

/** A fill's option values as the FillIntervention takes them. */
export function fillOf(o: { fillKind: FillKind; fill: number; sigma: number }): { kind: FillKind; value: number; sigma: number } {
  return { kind: o.fillKind, value: o.fill, sigma: o.sigma };
}
