/**
 * Raising a model's ONNX opset so segcause can append nodes that need a newer one (the gradient
 * graphs use opset 13's input-valued axes and opset 16's ScatterElements reduction). Only the ops
 * whose signature or semantics changed between opset 11 and 16 are rewritten; every other op means
 * the same in both opsets. Models older than opset 11 (Upsample, attribute-valued Slice) are refused.
 */
import { clone, create } from "@bufbuild/protobuf";
import { type ModelProto, ModelProtoSchema, type NodeProto, NodeProtoSchema, type TensorProto } from "onnx-buf";
import { fail } from "../errors.js";
import { attr, attrInt, attrInts, describeNode, opsetOf } from "./attributes.js";
import { attribute, int64Tensor } from "./builder.js";
import { normAxis } from "./op-params.js";
import { inferStatic } from "./shapes.js";

// Defined with the other readers of model fields, which shape inference imports without a cycle through here.
export { opsetOf };

/** Ops whose axes (or split sizes) moved from an attribute to an input in opset 13. */
const AXES_TO_INPUT: Record<string, string> = { Squeeze: "axes", Unsqueeze: "axes", ReduceSum: "axes", Split: "split" };
const SOFTMAX_FAMILY = new Set(["Softmax", "LogSoftmax", "Hardmax"]);

/**
 * A copy of `model` importing opset `target` (at least 13) with the same function, or the model
 * itself when it is already at `target` or newer.
 */
export function upgradeOpset(model: ModelProto, target: number): ModelProto {
  const from = opsetOf(model);
  if (from >= target) return model;
  if (from < 11) {
    fail(
      `the model uses ONNX opset ${from}; segcause can analyse opset 11 and newer`,
      "re-export the model with opset_version >= 11 (17 recommended)",
    );
  }
  const m = clone(ModelProtoSchema, model);
  const graph = m.graph!;
  // Ranks for the opset-11 Softmax semantics (flatten at `axis`), computed on the original graph.
  const infos = from < 13 && graph.node.some((n) => SOFTMAX_FAMILY.has(n.opType)) ? inferStatic(model, 1) : undefined;
  const inits: TensorProto[] = [];
  const nodes: NodeProto[] = [];
  let k = 0;
  const fresh = (n: NodeProto, hint: string): string => `${n.output[0]}/segcause_opset${target}_${hint}_${k++}`;
  for (const n of graph.node) {
    if (n.domain !== "" && n.domain !== "ai.onnx") {
      nodes.push(n);
      continue;
    }
    if (from < 13 && n.opType in AXES_TO_INPUT) {
      const name = AXES_TO_INPUT[n.opType];
      const values = attrInts(n, name);
      n.attribute = n.attribute.filter((a) => a.name !== name);
      if (values) {
        const t = fresh(n, name);
        inits.push(int64Tensor(t, [values.length], values));
        n.input = [n.input[0] ?? "", t];
      }
      nodes.push(n);
      continue;
    }
    if (from < 12 && n.opType === "Dropout") {
      // Dropout-12 takes its ratio as an input; at inference it is the identity whatever the ratio.
      n.attribute = n.attribute.filter((a) => a.name !== "ratio");
      nodes.push(n);
      continue;
    }
    if (from < 13 && SOFTMAX_FAMILY.has(n.opType)) {
      const x = n.input[0];
      const info = infos?.get(x);
      if (!info || info.unknown)
        fail(
          `${describeNode(n)}: the rank of its input is not computable, so its opset-${from} axis cannot be converted`,
          "re-export the model with opset_version >= 13",
        );
      const rank = info.dims.length;
      const axis = normAxis(attrInt(n, "axis", 1), rank);
      n.attribute = n.attribute.filter((a) => a.name !== "axis");
      if (axis === rank - 1) {
        n.attribute.push(attribute("axis", axis));
        nodes.push(n);
        continue;
      }
      // Before opset 13 the op ran over the input flattened to 2-D at `axis`: Flatten, op, Reshape back.
      const flat = fresh(n, "flat");
      const soft = fresh(n, n.opType);
      const shape = fresh(n, "shape");
      nodes.push(
        create(NodeProtoSchema, {
          name: `${n.name}/segcause_flatten`,
          opType: "Flatten",
          input: [x],
          output: [flat],
          attribute: [attribute("axis", axis)],
        }),
        create(NodeProtoSchema, { name: n.name, opType: n.opType, input: [flat], output: [soft], attribute: [attribute("axis", 1)] }),
        create(NodeProtoSchema, { name: `${n.name}/segcause_shape`, opType: "Shape", input: [x], output: [shape] }),
        create(NodeProtoSchema, { name: `${n.name}/segcause_reshape`, opType: "Reshape", input: [soft, shape], output: [n.output[0]] }),
      );
      continue;
    }
    if (n.opType === "RoiAlign" && !attr(n, "coordinate_transformation_mode")) {
      // RoiAlign-16's default became half_pixel; the older op had no pixel shift.
      n.attribute.push(attribute("coordinate_transformation_mode", "output_half_pixel"));
    }
    nodes.push(n);
  }
  graph.node = nodes;
  graph.initializer.push(...inits);
  for (const o of m.opsetImport) if (o.domain === "" || o.domain === "ai.onnx") o.version = BigInt(target);
  // Opset 16 belongs to IR version 8.
  if (m.irVersion < 8n) m.irVersion = 8n;
  return m;
}
