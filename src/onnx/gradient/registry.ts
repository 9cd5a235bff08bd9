/** The backward rule of every supported op type, from the rule families. */
import type { Rule } from "./context.js";
import { ACTIVATION_RULES } from "./rules/activations.js";
import { ARITHMETIC_RULES } from "./rules/arithmetic.js";
import { CONV_RULES } from "./rules/conv.js";
import { LAYOUT_RULES } from "./rules/layout.js";
import { NORMALIZATION_RULES } from "./rules/normalization.js";
import { POOLING_RULES } from "./rules/pooling.js";
import { PRODUCT_RULES } from "./rules/products.js";
import { REDUCTION_RULES } from "./rules/reductions.js";
import { RESIZE_RULES } from "./rules/resize.js";

const FAMILIES = [
  ACTIVATION_RULES,
  ARITHMETIC_RULES,
  CONV_RULES,
  POOLING_RULES,
  REDUCTION_RULES,
  NORMALIZATION_RULES,
  PRODUCT_RULES,
  LAYOUT_RULES,
  RESIZE_RULES,
];

/** Every op type belongs to one family: a second rule for it would silently replace the first. */
function merge(families: Record<string, Rule>[]): Record<string, Rule> {
  const rules: Record<string, Rule> = {};
  for (const family of families) {
    for (const [op, rule] of Object.entries(family)) {
      if (Object.hasOwn(rules, op)) throw new Error(`internal: two backward rules for ${op}`);
      rules[op] = rule;
    }
  }
  return rules;
}

export const RULES: Readonly<Record<string, Rule>> = merge(FAMILIES);

/** Op types with a backward rule. */
export const SUPPORTED_OPS: readonly string[] = Object.keys(RULES).sort();
