/** Einsum equations: parsed into one letter per axis, and the size of each label. */
import type { NodeProto } from "onnx-buf";
import { fail } from "../errors.js";
import { attrString, describeNode } from "./attributes.js";

/** Einsum subscripts with one letter per axis: of each operand, and of the output. */
export interface EinsumSubscripts {
  inputs: string[];
  output: string;
}

/** Lowercase first: ONNX Runtime mishandles uppercase labels in some implicit equations. */
const LABELS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/**
 * Parses an Einsum equation for operands of the given ranks. An ellipsis becomes letters the equation does
 * not use, right-aligned across operands as numpy broadcasts them, so that every axis has a one-letter
 * label and the gradient can write plain equations. Without "->", the output is the ellipsis followed by
 * the labels that appear once, in ASCII order (numpy's, which the ONNX spec follows).
 */
export function einsumSubscripts(node: NodeProto, ranks: number[]): EinsumSubscripts {
  const eq = attrString(node, "equation", "").replace(/\s/g, "");
  const bad = (why: string): never => fail(`${describeNode(node)}: equation '${eq}' ${why}`);
  const [lhs, rhs, ...more] = eq.split("->");
  if (more.length > 0) bad("has more than one '->'");
  // [before, after] an ellipsis, or [letters] without one
  const parts = (term: string): string[] => {
    const p = term.split("...");
    if (p.length > 2 || p.some((s) => !/^[A-Za-z]*$/.test(s))) bad(`has a term '${term}' that is not letters around at most one '...'`);
    return p;
  };
  const terms = lhs.split(",").map(parts);
  if (terms.length !== ranks.length) bad(`has ${terms.length} operand terms for ${ranks.length} inputs`);
  const spans = terms.map((p, k) => {
    const span = ranks[k] - p.join("").length;
    if (span < 0 || (p.length === 1 && span !== 0)) bad(`does not match the rank ${ranks[k]} of input ${k}`);
    return span;
  });
  const width = Math.max(0, ...spans);
  const ellipsis = [...LABELS].filter((l) => !eq.includes(l)).join("");
  if (ellipsis.length < width) bad("leaves too few unused letters for its ellipsis");
  const expand = (p: string[], span: number): string => (p.length === 1 ? p[0] : p[0] + ellipsis.slice(width - span, width) + p[1]);
  const inputs = terms.map((p, k) => expand(p, spans[k]));
  let output: string;
  if (rhs === undefined) {
    const letters = terms.flatMap((p) => [...p.join("")]);
    const once = [...new Set(letters)].filter((l) => letters.indexOf(l) === letters.lastIndexOf(l)).sort();
    output = ellipsis.slice(0, width) + once.join("");
  } else {
    output = expand(parts(rhs), width);
    const seen = new Set<string>();
    for (const l of output) {
      if (seen.has(l) || !inputs.some((s) => s.includes(l))) bad(`has an output label '${l}' that repeats or is in no input`);
      seen.add(l);
    }
  }
  return { inputs, output };
}

/** Each label's size over the subscripted dims; a size 1 broadcasts, as in ONNX Runtime's Einsum. */
export function einsumSizes(node: NodeProto, subscripts: string[], dims: number[][]): Map<string, number> {
  const sizes = new Map<string, number>();
  subscripts.forEach((s, k) =>
    [...s].forEach((l, a) => {
      const had = sizes.get(l);
      const d = dims[k][a];
      if (had === undefined || had === 1) sizes.set(l, d);
      else if (d !== 1 && d !== had) fail(`${describeNode(node)}: label '${l}' has sizes ${had} and ${d}`);
    }),
  );
  return sizes;
}
