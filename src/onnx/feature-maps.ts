/**
 * The spatial feature maps of a model, found with static shape inference: node outputs of shape
 * [1, K, h, w] with K >= 2, 2 <= h <= H, 2 <= w <= W and the same downsampling factor on both axes (so
 * token tensors of transformers and globally pooled 1x1 maps are not candidates); for a volume model,
 * [1, K, d, h, w] by the same rules on three axes. Grad-CAM chooses its layer among them; the
 * bottleneck is the smallest, deepest one.
 */
import { TensorProto_DataType as DT, type ModelProto, type NodeProto } from "onnx-buf";
import { isAdapterTensor } from "./adapt.js";
import { inferStatic } from "./shapes.js";

export interface FeatureMap {
  name: string;
  /** node position in the graph */
  order: number;
  op: string;
  channels: number;
  /** volume models only */
  depth?: number;
  height: number;
  width: number;
}

/** A feature map's spatial sizes, [h, w] or [d, h, w]. */
export function spatialOf(m: FeatureMap): number[] {
  return m.depth === undefined ? [m.height, m.width] : [m.depth, m.height, m.width];
}

/** Cells of a feature map per channel. */
export function cellsOf(m: FeatureMap): number {
  return spatialOf(m).reduce((a, b) => a * b, 1);
}

/**
 * The spatial feature maps of a model (Grad-CAM layer candidates), in graph order; with `output`,
 * only those it depends on (an auxiliary head's features would give an all-zero map).
 */
export function featureMaps(proto: ModelProto, inputHeight: number, inputWidth: number, output?: string): FeatureMap[] {
  return scanFeatureMaps(proto, inputHeight, inputWidth, output).maps;
}

/**
 * featureMaps, every feature map whether `output` depends on it or not (`all`, graph order), and why
 * shape inference stopped early if it did (its candidates past that point are unknown); one inference
 * serves all.
 */
export function scanFeatureMaps(
  proto: ModelProto,
  inputHeight: number,
  inputWidth: number,
  output?: string,
): { maps: FeatureMap[]; all: FeatureMap[]; unknown?: string } {
  return scanSpatialFeatureMaps(proto, [inputHeight, inputWidth], output);
}

/** scanFeatureMaps for an input of spatial sizes `input` ([H, W] or [D, H, W]). */
export function scanSpatialFeatureMaps(
  proto: ModelProto,
  input: number[],
  output?: string,
): { maps: FeatureMap[]; all: FeatureMap[]; unknown?: string } {
  const r = input.length;
  const infos = inferStatic(proto, 1);
  const graph = proto.graph!;
  const outputs = new Set(graph.output.map((o) => o.name));
  const feeds = output === undefined ? undefined : ancestors(proto, output);
  const out: FeatureMap[] = [];
  const all: FeatureMap[] = [];
  let unknown: string | undefined;
  graph.node.forEach((n, order) => {
    if (n.opType === "Constant") return;
    for (const t of n.output) {
      const info = t ? infos.get(t) : undefined;
      if (info?.unknown && !unknown && (!feeds || feeds.has(t))) unknown = info.unknown;
      // The model's output, also when the layout adapter renamed it (src/onnx/adapt.ts), is no feature map.
      if (!info || info.dtype !== DT.FLOAT || info.dims.length !== r + 2 || outputs.has(t) || isAdapterTensor(t)) continue;
      const [b, k, ...sp] = info.dims;
      if (b !== 1 || k < 2 || sp.some((v, a) => v < 2 || v > input[a])) continue;
      // the same downsampling factor on every pair of axes
      if (sp.some((v, a) => sp.some((u, c) => c > a && Math.abs(v / input[a] - u / input[c]) > 0.5 / Math.min(v, u)))) continue;
      const [h, w] = sp.slice(-2);
      const map: FeatureMap = { name: t, order, op: n.opType, channels: k, ...(r === 3 ? { depth: sp[0] } : {}), height: h, width: w };
      all.push(map);
      if (!feeds || feeds.has(t)) out.push(map);
    }
  });
  return { maps: out, all, unknown };
}

/** Every tensor `output` is computed from (itself included), through the graph's top-level nodes. */
function ancestors(proto: ModelProto, output: string): Set<string> {
  const producer = new Map<string, NodeProto>();
  for (const n of proto.graph!.node) for (const t of n.output) if (t) producer.set(t, n);
  const seen = new Set<string>([output]);
  const stack = [output];
  while (stack.length > 0) {
    for (const t of producer.get(stack.pop()!)?.input ?? []) {
      if (t && !seen.has(t)) seen.add(t), stack.push(t);
    }
  }
  return seen;
}

/** The default layer: smallest spatial size, then deepest. */
export function bottleneck(maps: readonly FeatureMap[]): FeatureMap | undefined {
  let best: FeatureMap | undefined;
  for (const m of maps) {
    if (!best || cellsOf(m) < cellsOf(best) || (cellsOf(m) === cellsOf(best) && m.order > best.order)) best = m;
  }
  return best;
}
