/**
 * The differentiated path: the tensors a gradient flows along from the wrt tensors to the output, and
 * the check that every node on it has a rule.
 */
import { TensorProto_DataType as DT, type NodeProto } from "onnx-buf";
import { fail } from "../../errors.js";
import { describeNode } from "../attributes.js";
import type { StaticInfo } from "../shapes.js";
import { RULES, SUPPORTED_OPS } from "./registry.js";

/** Types a gradient flows along. Models reach here as float32 (Model.load widens (b)float16, src/onnx/widen.ts); others are refused by checkSupported. */
export const FLOAT_TYPES = new Set<number>([DT.FLOAT, DT.DOUBLE, DT.FLOAT16, DT.BFLOAT16]);

/**
 * Tensors that depend on `sources` through floating-point tensors (the only ones a gradient flows along).
 * A dependent tensor of unknown type counts as one: if it reaches the output, the build is refused.
 */
export function taintedFrom(nodes: NodeProto[], sources: Iterable<string>, infos: Map<string, StaticInfo>): Set<string> {
  const tainted = new Set(sources);
  for (const n of nodes) {
    if (!n.input.some((t) => tainted.has(t))) continue;
    for (const o of n.output) {
      const i = infos.get(o);
      if (o && (i?.unknown || FLOAT_TYPES.has(i?.dtype ?? -1))) tainted.add(o);
    }
  }
  return tainted;
}

/** Tainted tensors from which the output is reachable through tainted tensors. */
export function relevantTensors(nodes: NodeProto[], output: string, tainted: Set<string>): Set<string> {
  const relevant = new Set<string>(tainted.has(output) ? [output] : []);
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i];
    if (!n.output.some((o) => relevant.has(o))) continue;
    for (const t of n.input) if (tainted.has(t)) relevant.add(t);
  }
  return relevant;
}

/** Refuses, by name, any node on the differentiated path that has no rule or is not float32. */
export function checkSupported(active: NodeProto[], relevant: Set<string>, info: (t: string) => StaticInfo, output: string): void {
  for (const n of active) {
    const standard = n.domain === "" || n.domain === "ai.onnx" || (n.domain === "com.microsoft" && n.opType === "Gelu");
    if (!RULES[n.opType] || !standard) {
      fail(
        `no gradient rule for ${describeNode(n)} (op type ${n.domain ? `${n.domain}.` : ""}${n.opType}) on the path to '${output}'`,
        `gradient graphs support ${SUPPORTED_OPS.join(", ")}`,
      );
    }
    for (const t of [...n.input, ...n.output]) {
      if (relevant.has(t) && info(t).dtype !== DT.FLOAT) {
        fail(
          `${describeNode(n)}: tensor '${t}' is ${DT[info(t).dtype]}; gradient graphs are built for float32 models`,
          "export the model in float32",
        );
      }
    }
  }
}
