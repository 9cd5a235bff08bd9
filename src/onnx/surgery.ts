/**
 * Graph surgery on ONNX models: components grouped by module path, exposing intermediate
 * tensors as outputs, and cutting a graph at a set of tensors into a suffix model whose inputs are
 * every tensor crossing the cut (skip connections included).
 */
import { clone, create, toBinary } from "@bufbuild/protobuf";
import { type ModelProto, ModelProtoSchema, type NodeProto, NodeProtoSchema, ValueInfoProtoSchema } from "onnx-buf";
import { fail } from "../errors.js";
import { getOrInsert } from "../util/maps.js";
import { ADAPTER_NODE_PREFIX } from "./adapt.js";
import { valueInfo } from "./builder.js";
import { controlFlowNode, graphInputs } from "./graph.js";

export type ComponentLevel = "stage" | "block" | "layer";
const DEPTH: Record<ComponentLevel, number> = { stage: 1, block: 2, layer: 3 };

export interface Component {
  /** module path, e.g. "downs.0/downs.0.1" */
  name: string;
  /** position of its first node in the graph (network order) */
  order: number;
  /** depth of the path (1 = stage) */
  depth: number;
  nodes: string[];
  /** tensors it produces that are used outside it (what an intervention replaces) */
  outputs: string[];
}

function assertNoControlFlow(model: ModelProto): void {
  const cf = controlFlowNode(model);
  if (cf)
    fail(
      `the model contains control flow (${cf.opType} node '${cf.name}'), which segcause cannot cut`,
      "export the model without data-dependent control flow (trace it)",
    );
}

/** Module path of a node name ("/net/inc/inc.0/Conv" → ["net","inc","inc.0"]); unnamed nodes use their op. */
function modulePath(n: NodeProto, index: number): string[] {
  const parts = (n.name || `/${n.opType}_${index}`).split("/").filter((s) => s.length > 0);
  return parts.length > 1 ? parts.slice(0, -1) : [];
}

/** The graph's nodes grouped into components at a depth below the common root of all paths. */
/** Ops whose output describes a tensor's shape, not its values: they carry no activation. */
const SHAPE_OPS = new Set(["Shape", "Size"]);

/**
 * The nodes that compute activations: those whose values depend on the image input. Constants, the
 * Identity copies of weights that exporters insert and shape arithmetic (Shape → Gather → Concat ...)
 * are not computation on the image and cannot be intervened on.
 */
function activationNodes(model: ModelProto): Set<NodeProto> {
  const g = model.graph!;
  const live = new Set(graphInputs(model).map((i) => i.name));
  return new Set(
    g.node.filter((n) => {
      if (SHAPE_OPS.has(n.opType) || n.opType === "Constant" || !n.input.some((t) => live.has(t))) return false;
      for (const o of n.output) if (o) live.add(o);
      return true;
    }),
  );
}

export function listComponents(model: ModelProto, level: ComponentLevel): Component[] {
  assertNoControlFlow(model);
  const nodes = model.graph!.node;
  const active = activationNodes(model);
  const paths = nodes.map(modulePath);
  // Strip the root every module shares (e.g. "net" of a wrapper module).
  let root = 0;
  const nonEmpty = paths.filter((p, i) => p.length > 0 && active.has(nodes[i]));
  while (nonEmpty.length > 0 && nonEmpty.every((p) => p.length > root && p[root] === nonEmpty[0][root])) root++;
  const groups = new Map<string, Component>();
  const owner = new Map<string, string>();
  nodes.forEach((n, i) => {
    if (!active.has(n)) return; // parameters and shape arithmetic, not computation on the image
    if (n.name.startsWith(ADAPTER_NODE_PREFIX)) return; // layout glue added at load, not the network's
    const p = paths[i].slice(root);
    const key = p.length > 0 ? p.slice(0, DEPTH[level]).join("/") : n.name || `${n.opType}_${i}`;
    const g = getOrInsert(groups, key, () => ({
      name: key,
      order: i,
      depth: Math.min(p.length, DEPTH[level]) || 1,
      nodes: [] as string[],
      outputs: [] as string[],
    }));
    g.nodes.push(n.name || `${n.opType}_${i}`);
    for (const o of n.output) owner.set(o, key);
  });
  const graphOutputs = new Set(model.graph!.output.map((o) => o.name));
  const used = new Set<string>();
  // A tensor is a component output when a node of another component (or the graph output) reads it.
  nodes.forEach((n, i) => {
    if (!active.has(n)) return;
    const p = paths[i].slice(root);
    const me = p.length > 0 ? p.slice(0, DEPTH[level]).join("/") : n.name || `${n.opType}_${i}`;
    for (const t of n.input) {
      const from = owner.get(t);
      if (from && from !== me) used.add(`${from}\u0000${t}`);
    }
  });
  for (const t of graphOutputs) if (owner.has(t)) used.add(`${owner.get(t)}\u0000${t}`);
  for (const key of used) {
    const [comp, t] = key.split("\u0000");
    groups.get(comp)!.outputs.push(t);
  }
  return [...groups.values()].filter((g) => g.outputs.length > 0).sort((a, b) => a.order - b.order);
}

/** Every tensor produced by a node (candidates for exposing and cutting). */
export function tensorNames(model: ModelProto): string[] {
  return model.graph!.node.filter((n) => n.opType !== "Constant").flatMap((n) => n.output);
}

export function checkTensors(model: ModelProto, tensors: string[]): void {
  const known = new Set(tensorNames(model));
  // Only a true input is refused here, not a weight an older exporter lists among the graph inputs.
  const inputs = new Set(graphInputs(model).map((i) => i.name));
  for (const t of tensors) {
    if (inputs.has(t))
      fail(
        `'${t}' is the model's input, not a tensor inside the network`,
        "name a tensor a node produces (`segcause components --list --level layer`); the input itself is what `segcause explain` intervenes on",
      );
    if (!known.has(t)) {
      const list = [...known];
      fail(
        `unknown tensor '${t}'; valid tensors include ${list.slice(0, 8).join(", ")}${list.length > 8 ? ` … (${list.length} in all)` : ""}`,
        "`segcause components --list --level layer` lists the components and their tensors",
      );
    }
  }
}

/** A copy of the model whose outputs are the given tensors (and nothing else). */
export function exposeTensors(model: ModelProto, tensors: string[]): Uint8Array {
  checkTensors(model, tensors);
  const m = clone(ModelProtoSchema, model);
  m.graph!.output = tensors.map((t) => create(ValueInfoProtoSchema, { name: t }));
  return toBinary(ModelProtoSchema, m);
}

export interface CutPlan {
  /** tensors the suffix reads from the prefix: the cut tensors plus every other crossing tensor */
  suffixInputs: string[];
  /** node indices of the suffix, in graph order */
  suffixNodes: number[];
}

/**
 * Plans the suffix that recomputes the output from the cut tensors: the nodes downstream of the
 * cut that the output needs. Every other tensor those nodes read (skip connections, the input
 * itself) crosses the cut and is fed with its unperturbed value.
 */
export function planCut(model: ModelProto, cut: string[], outputs?: string[]): CutPlan {
  assertNoControlFlow(model);
  checkTensors(model, cut);
  const g = model.graph!;
  const targets = outputs ?? g.output.map((o) => o.name);
  const cutSet = new Set(cut);
  // Forward: nodes downstream of the cut.
  const tainted = new Set(cut);
  const downstream = new Set<number>();
  g.node.forEach((n, i) => {
    // ONNX graphs are topologically sorted, so one pass suffices.
    if (n.input.some((t) => tainted.has(t))) {
      downstream.add(i);
      n.output.forEach((o) => tainted.add(o));
    }
  });
  if (!targets.some((t) => tainted.has(t))) {
    fail(
      `the output does not depend on ${cut.join(", ")}: cutting there does not separate the input from the output`,
      "choose tensors on a path from the input to the output",
    );
  }
  // Backward from the outputs, within the downstream nodes.
  const producer = new Map<string, number>();
  g.node.forEach((n, i) => n.output.forEach((o) => producer.set(o, i)));
  const inSuffix = new Set<number>();
  const stack = [...targets];
  const seen = new Set<string>();
  while (stack.length) {
    const t = stack.pop()!;
    if (seen.has(t) || cutSet.has(t)) continue;
    seen.add(t);
    const p = producer.get(t);
    if (p === undefined || !downstream.has(p)) continue;
    inSuffix.add(p);
    for (const i of g.node[p].input) stack.push(i);
  }
  const suffixNodes = [...inSuffix].sort((a, b) => a - b);
  const produced = new Set(suffixNodes.flatMap((i) => g.node[i].output));
  const initializers = new Set(g.initializer.map((t) => t.name));
  const crossing: string[] = [];
  for (const i of suffixNodes) {
    for (const t of g.node[i].input) {
      if (t === "" || produced.has(t) || initializers.has(t) || crossing.includes(t)) continue;
      const p = producer.get(t);
      if (p !== undefined && g.node[p].opType === "Constant") continue; // copied into the suffix
      crossing.push(t);
    }
  }
  for (const o of targets) if (cutSet.has(o) && !crossing.includes(o)) crossing.push(o);
  const ordered = [...cut.filter((t) => crossing.includes(t)), ...crossing.filter((t) => !cutSet.has(t))];
  return { suffixInputs: ordered, suffixNodes };
}

export interface TensorType {
  elemType: number;
  dims: (number | string)[];
}

/**
 * Builds the suffix model of a plan with one output (`output`, read under the returned name);
 * input types come from a run of the exposed prefix.
 */
export function buildSuffix(
  model: ModelProto,
  plan: CutPlan,
  types: Map<string, TensorType>,
  output: string,
): { bytes: Uint8Array; outputName: string } {
  const g = model.graph!;
  const m = clone(ModelProtoSchema, model);
  const mg = m.graph!;
  const needed = new Set(plan.suffixNodes);
  // Constant nodes read by the suffix come along.
  const producer = new Map<string, number>();
  g.node.forEach((n, i) => n.output.forEach((o) => producer.set(o, i)));
  for (const i of plan.suffixNodes) {
    for (const t of g.node[i].input) {
      const p = producer.get(t);
      if (p !== undefined && g.node[p].opType === "Constant") needed.add(p);
    }
  }
  mg.node = [...needed].sort((a, b) => a - b).map((i) => clone(NodeProtoSchema, g.node[i]));
  mg.input = plan.suffixInputs.map((t) => {
    const ty = types.get(t);
    if (!ty) fail(`internal: no type for cut tensor ${t}`);
    return valueInfo(t, ty.dims, ty.elemType);
  });
  mg.output = mg.output.filter((o) => o.name === output);
  let outputName = output;
  // An output that is itself cut goes through an Identity: ONNX outputs must be produced by a node.
  if (plan.suffixInputs.includes(output)) {
    outputName = `${output}__segcause`;
    mg.output = [create(ValueInfoProtoSchema, { name: outputName })];
    mg.node.push(create(NodeProtoSchema, { name: "/segcause/Identity", opType: "Identity", input: [output], output: [outputName] }));
  }
  const usedInits = new Set(mg.node.flatMap((n) => n.input));
  mg.initializer = mg.initializer.filter((t) => usedInits.has(t.name));
  mg.valueInfo = [];
  return { bytes: toBinary(ModelProtoSchema, m), outputName };
}
