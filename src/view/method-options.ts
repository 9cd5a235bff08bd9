/**
 * Method options for the page's form, and the server's check of a run's options: both read the method
 * declarations the CLI reads (src/explain/options.ts via the catalogue), and a value is parsed and
 * checked as `segcause explain` parses and checks its flags, so a bad value gets the CLI's one line.
 */
import { methodOptionParser } from "../cli/options.js";
import { getMethod } from "../explain/catalog.js";
import { describeRange, kebab, type MethodDefinition, resolveOptions } from "../explain/methods.js";
import type { OptionField } from "./api-types.js";

export function optionFields(def: MethodDefinition): OptionField[] {
  return def.options.map((o) => ({
    name: kebab(o.name),
    type: o.type,
    ...(o.default === undefined ? {} : { default: Array.isArray(o.default) ? o.default.join(",") : String(o.default) }),
    ...(o.min === undefined ? {} : { min: o.min }),
    ...(o.max === undefined ? {} : { max: o.max }),
    ...(describeRange(o) ? { range: describeRange(o) } : {}),
    ...(o.choices ? { choices: o.choices } : {}),
    help: o.description,
    ...(o.appliesWhen ? { appliesWhen: { option: kebab(o.appliesWhen.option), values: o.appliesWhen.values } } : {}),
  }));
}

/** Parses a run's options (by flag name) as the CLI parses its flags and checks them as it does; fails with the CLI's line. */
export function checkRunOptions(method: string, options: Record<string, number | string>): void {
  const def = getMethod(method);
  const given: Record<string, unknown> = {};
  for (const [flag, v] of Object.entries(options)) {
    const o = def.options.find((x) => kebab(x.name) === flag);
    const name = flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    // an option of another method is left to resolveOptions, which names the methods that take it
    given[name] = o ? methodOptionParser(o, flag)(String(v)) : v;
  }
  resolveOptions(def, given);
}
