/**
 * Seg-Grad-CAM (Vinogradova et al. 2020): Grad-CAM of the RoI score S (the class probability summed
 * over the RoI pixels, see gradients.ts) at an intermediate feature map A [K, h, w]:
 *
 *   w_k = mean_{u,v} ∂S/∂A_k(u,v);   cam = ReLU(Σ_k w_k A_k);   map = bilinear upsample of cam
 *
 * to the input size (half-pixel centres). Unsigned. The authors resize before the ReLU;
 * pytorch-grad-cam (and this) applies the ReLU first; with a bilinear upsample the two differ only
 * near sign changes.
 *
 * Layer (`--layer`, default "auto"): the network's bottleneck, found from the graph with static
 * shape inference — among the spatial feature maps (node outputs of shape [1, K, h, w] with K ≥ 2,
 * 2 ≤ h ≤ H, 2 ≤ w ≤ W and the same downsampling factor on both axes, so token tensors of
 * transformers and globally pooled 1x1 maps are not candidates) take those with the smallest h·w,
 * and of them the deepest (last in graph order). U-Net: the last ReLU of the deepest encoder
 * stage; DeepLab: the ASPP projection; SegFormer: the decoder's projection of the last stage.
 */
import type { ModelProto } from "onnx-buf";
import type { Case } from "../data/case.js";
import { fail } from "../errors.js";
import type { Differentiable } from "../model/differentiable.js";
import type { Model } from "../model/model.js";
import { threeDModel } from "../model/volume-model.js";
import { bottleneck, cellsOf, type FeatureMap, scanFeatureMaps, scanSpatialFeatureMaps, spatialOf } from "../onnx/feature-maps.js";
import { withInputSize } from "../onnx/graph.js";
import type { TargetSpec } from "../target/target.js";
import { resizeBilinear, resizeTrilinear } from "../util/bilinear.js";
import type { Attribution } from "./attribution.js";
import { explainGradient, type GradientCore, type GradientMap } from "./gradients.js";
import { defineMethod } from "./methods.js";
import { text } from "./options.js";
import type { RunOptions } from "./run.js";
import { explainVolumeGradient } from "./volume/gradients.js";

function describeMap(m: FeatureMap): string {
  return `${m.name} [${[m.channels, ...spatialOf(m)].join("x")}, ${m.op}]`;
}

/** The shape a Grad-CAM layer must have, in words. */
function mapShape(rank: number): string {
  return rank === 3 ? "[1, K>=2, d, h, w]" : "[1, K>=2, h, w]";
}

/** What choosing a layer reads of a model: its path, explained output and input's spatial sizes. */
export interface LayerSubject {
  path: string;
  outputName: string;
  /** [H, W] or [D, H, W] */
  spatial: number[];
}

function layerSubject(model: Differentiable): LayerSubject {
  return { path: model.path, outputName: model.outputName, spatial: model.inputDims.slice(1) };
}

/** The model's graph with its input fixed at the model's size (static shapes for the layer scan). */
function sizedProto(model: Differentiable) {
  return withInputSize(model.proto(), model.inputName, model.inputDims);
}

/** Deeper feature maps tried when the chosen layer's Grad-CAM is all zero. */
const ALTERNATIVES = 8;

/** ReLU(Σ_k w_k A_k) with w_k the mean of ∂S/∂A_k over the layer's positions. */
function camOf(g: Float32Array, a: Float32Array, L: FeatureMap): Float32Array {
  const hw = cellsOf(L);
  const acc = new Float64Array(hw);
  for (let k = 0; k < L.channels; k++) {
    let w = 0;
    for (let i = 0; i < hw; i++) w += g[k * hw + i];
    w /= hw;
    for (let i = 0; i < hw; i++) acc[i] += w * a[k * hw + i];
  }
  return Float32Array.from(acc, (v) => Math.max(v, 0));
}

/** Resolves `layer` ("auto" or a tensor name) to a feature map, or fails listing the candidates. */
export function chooseLayer(proto: ModelProto, model: LayerSubject, layer: string): { map: FeatureMap; rule: string } {
  const { maps, all, unknown } = scanSpatialFeatureMaps(proto, model.spatial, model.outputName);
  const why = unknown ? ` (shape inference stopped early: ${unknown})` : "";
  const shape = mapShape(model.spatial.length);
  if (maps.length === 0)
    fail(
      `${model.path} has no spatial feature map ${shape} for Grad-CAM that output '${model.outputName}' depends on${why}`,
      "use another gradient method (saliency, ig)",
    );
  if (layer === "auto" || layer === "") return { map: bottleneck(maps)!, rule: "auto: smallest spatial size, deepest" };
  const found = maps.find((m) => m.name === layer);
  if (found) return { map: found, rule: "given" };
  const shown = candidateList(maps);
  const known = proto.graph!.node.some((n) => n.output.includes(layer));
  const offPath = !maps.some((m) => m.name === layer) && all.some((m) => m.name === layer);
  fail(
    offPath
      ? `--layer '${layer}' does not feed the explained output '${model.outputName}' (it belongs to another head), so its Grad-CAM would be 0 everywhere`
      : known
        ? `--layer '${layer}' is not a spatial feature map ${shape} usable by Grad-CAM${why}`
        : `--layer '${layer}' is not a tensor of ${model.path}`,
    `choose one of the ${maps.length} feature maps (smallest first), or --layer auto:\n${shown}`,
  );
}

/**
 * The candidate layers for an error message: one per line, grouped by spatial size (smallest first,
 * deepest first within a size), at most `perGroup` per group.
 */
export function candidateList(maps: readonly FeatureMap[], perGroup = 6): string {
  const groups = new Map<string, FeatureMap[]>();
  for (const m of [...maps].sort((a, b) => cellsOf(a) - cellsOf(b) || b.order - a.order)) {
    const key = spatialOf(m).join("x");
    groups.set(key, [...(groups.get(key) ?? []), m]);
  }
  const lines: string[] = [];
  for (const [size, ms] of groups) {
    lines.push(`  ${size} (${ms.length}):`);
    for (const m of ms.slice(0, perGroup)) lines.push(`    ${m.name}  [${m.channels} channels, ${m.op}]`);
    if (ms.length > perGroup) lines.push(`    ... ${ms.length - perGroup} more of ${size}`);
  }
  return lines.join("\n");
}

/**
 * Whether `--layer auto` picks another layer than before it was restricted to the explained output's
 * ancestors (models with a second head): evaluate keys such cells apart from older ones.
 */
export function autoLayerMovedByOutputPath(model: Model): boolean {
  try {
    const proto = withInputSize(model.proto(), model.inputName, [model.channels, model.height, model.width]);
    const { maps, all } = scanFeatureMaps(proto, model.height, model.width, model.outputName);
    return bottleneck(all)?.name !== bottleneck(maps)?.name;
  } catch {
    return false; // no inferable feature map at all: the cells are refused either way
  }
}

export interface GradCamOptions extends RunOptions {
  /** tensor name, or "auto" (default) for the bottleneck */
  layer?: string;
}

/** The Grad-CAM map of an image or a volume (bilinear or trilinear upsampling to the input). */
export async function gradCamMap(env: GradientCore, model: Differentiable, layer: string): Promise<GradientMap> {
  const proto = sizedProto(model);
  const subject = layerSubject(model);
  const { map: L, rule } = chooseLayer(proto, subject, layer);
  const cams = async (layers: FeatureMap[]): Promise<Float32Array[]> => {
    const s = await env.session({ layers: layers.map((l) => l.name) });
    let out: Float32Array[] = [];
    await s.run(
      [0],
      (_, f) => (f.input.set(env.input), f.seed.set(env.roiSeed)),
      (slot) => {
        out = layers.map((l) => camOf(slot.layerGrad(l.name), slot.activation(l.name), l));
      },
    );
    return out;
  };
  // A map that is 0 everywhere costs one more pass (trying deeper layers): known after the first.
  env.plan(2, 3);
  const [cam] = await cams([L]);
  const sp = subject.spatial;
  const map = sp.length === 3 ? resizeTrilinear(cam, spatialOf(L), sp) : resizeBilinear(cam, L.height, L.width, sp[0], sp[1]);
  const notes = [`Grad-CAM layer: ${describeMap(L)} (${rule})`];
  const zero = !cam.some((v) => v > 0);
  // Name a layer that gives a map on this model and image: the coarsest deeper (decoder-side) feature maps, tried in one extra pass.
  const tried = zero
    ? scanSpatialFeatureMaps(proto, sp, model.outputName)
        .maps.filter((m) => m.order > L.order)
        .sort((a, b) => cellsOf(a) - cellsOf(b) || a.order - b.order)
        .slice(0, ALTERNATIVES)
    : [];
  env.plan(tried.length ? 3 : 2);
  if (zero) {
    const works = tried.length ? (await cams(tried)).findIndex((c) => c.some((v) => v > 0)) : -1;
    notes.push(
      `the Grad-CAM is 0 everywhere: sum_k w_k A_k <= 0 at every position of this layer (its features, weighted by the mean gradient, only lower the RoI score); ` +
        (works >= 0
          ? `--layer ${tried[works].name} gives a nonzero map for this image and RoI (checked with one extra pass)`
          : tried.length
            ? `none of the ${tried.length} deeper feature maps tried gives a nonzero map either; try saliency or ig`
            : "no deeper feature map to try; try saliency or ig"),
    );
  }
  return {
    map,
    signed: false,
    valueUnits: `Grad-CAM: ReLU(sum_k mean(dS/dA_k) A_k) at the layer, upsampled ${sp.length === 3 ? "trilinearly" : "bilinearly"} (S = RoI probability sum)`,
    notes,
    settings: { layerUsed: L.name, layerShape: [L.channels, ...spatialOf(L)], layerRule: rule },
  };
}

/** The layer check shared by images and volumes: the layer must be a feature map the explained output depends on. */
export function checkLayer(model: Differentiable, layer: string): void {
  chooseLayer(sizedProto(model), layerSubject(model), layer);
}

export function explainGradCam(model: Model, kase: Case, target: TargetSpec, opts: GradCamOptions = {}): Promise<Attribution> {
  const layer = opts.layer ?? "auto";

  return explainGradient(model, kase, target, opts, "gradcam", { layer }, (env) => gradCamMap(env, model, layer));
}

export const gradCamMethod = defineMethod({
  name: "gradcam",
  family: "gradient",
  summary:
    "Seg-Grad-CAM of the RoI probability sum at --layer (default: the bottleneck = smallest, deepest feature map), ReLU, bilinear upsampling (unsigned)",
  cost: "1 forward + 1 forward/backward",
  options: { layer: text({ description: "tensor of the Grad-CAM feature map, or auto (smallest spatial size, deepest)", default: "auto" }) },
  // The layer must be a feature map the explained output depends on (chooseLayer lists the candidates).
  check: (ctx) => checkLayer(ctx.model, ctx.options.layer),
  explain: (ctx, o) => explainGradCam(ctx.model, ctx.kase, ctx.target, { ...ctx.run, layer: o.layer }),
  volume: {
    summary: "Grad-CAM at a 3D feature map [K, d, h, w] (default the bottleneck), ReLU, trilinear upsampling (unsigned)",
    // Per window there is another feature map with its own channel weights: stitching those CAMs would be another method.
    noWindows: "Grad-CAM weights one feature map's channels by their mean gradient, and each window has its own feature map and weights",
    plan: (ctx, o) => {
      const model = threeDModel(ctx.model, "gradcam");
      checkLayer(model, o.layer);
      return (run) =>
        explainVolumeGradient(model, ctx.kase, ctx.target, run, "gradcam", { layer: o.layer }, (env) => gradCamMap(env, model, o.layer));
    },
  },
});
