/**
 * The keys of evaluate's cells and the rules that keep them compatible. A cell (model × image ×
 * RoI × method) is stored with the sha256 of its key; a rerun whose key differs is refused, so a
 * folder never mixes cells of two settings, and a rerun with the same settings resumes.
 *
 * A key that was published never changes: when a setting or a fix is added, it enters the key only
 * where it changes the result, so every earlier folder keeps its keys and stays resumable. The rules
 * (CELL_KEY_VERSION counts them; it is not hashed, since hashing it would change every key):
 * 1. Protocol: steps, fills, patchDraws, blurSigma, topk, radius, minRange, stability, noiseSigma,
 *    outcome, reference and seed, always, in this order.
 * 2. Later protocol settings (rankUnits, topArea, controls) enter only when they differ from the
 *    behaviour before them (pixel units, no area-matched top-k, the random control alone); a
 *    run.json that lacks one ran with that behaviour.
 * 3. Method options: every resolved option, except an option declared `addedLater` left at its
 *    default (whose default keeps the old maps).
 * 4. Method revision: a method's `revision` for these options, when it declares one (its maps
 *    changed for the same options).
 * 5. Model fixes: key parts for fixes that changed maps only on some models (gradient methods on
 *    multi-class logits below opset 13; Grad-CAM's automatic layer on models with a second head).
 * 6. Own patches: a bank built from the explained image adds `bankOwnPatches` (they are left out).
 * 7. Refusals: a refusal (failed.json) holds only if recorded under REFUSALS_REVISION or later.
 * 8. Volumes: a volume's group names the 3D model, the volume and its label map (with the labels),
 *    the model space it was brought into (spacing, axes, placement), the RoI, the rank units' box in
 *    voxels and the unit the sizes were given in (millimetres or voxels), and the volume bank. 2D keys
 *    never hold these, so they are as they were.
 * 9. Incremental: a block method's cell (INCREMENTAL_METHODS) run with `--incremental on|auto` adds
 *    `incremental` (the mode): the RoI-cropped passes equal full ones up to float rounding, so the last
 *    bits of a map may differ. `off` (the default) adds nothing, and other methods never run on it.
 * The random control of a (model, image, RoI) is keyed by rules 1, 2, 6 (and 8) alone (no method).
 */
import type { Case } from "../data/case.js";
import type { PatchBank } from "../data/patchbank.js";
import { modelSpaceRecord } from "../data/volume/model-space.js";
import type { VolumeCase } from "../data/volume/volume-case.js";
import { autoLayerMovedByOutputPath } from "../explain/gradcam.js";
import type { MethodDefinition } from "../explain/methods.js";
import type { IncrementalMode } from "../explain/roi-executor.js";
import type { BoxUnitName } from "../explain/volume/box-size.js";
import type { Model } from "../model/model.js";
import type { VolumeModel } from "../model/volume-model.js";
import { opsetOf } from "../onnx/opset.js";
import type { RoiRect } from "../target/roi.js";
import { sha256 } from "../util/hash.js";
import type { Protocol } from "./protocol.js";
import { rankUnitsName } from "./rank-units.js";
import type { FailedRecord } from "./store.js";

export const CELL_KEY_VERSION = 9;

/** The methods whose passes run on the RoI-cropped executor under --incremental (the block-intervention engine's). */
export const INCREMENTAL_METHODS: ReadonlySet<string> = new Set(["pdcr", "pdcr-superpixel", "zero", "occlusion"]);

/** Rule 9: the key part of --incremental for this method (none when off or when the method does not use it). */
export function incrementalKey(def: MethodDefinition, mode: IncrementalMode | undefined): { incremental?: IncrementalMode } {
  return mode && mode !== "off" && INCREMENTAL_METHODS.has(def.name) ? { incremental: mode } : {};
}

/** Rule 2: each later protocol setting, as run.json records it before it existed, and its key part (undefined: the earlier behaviour). */
const LATER_SETTINGS: { name: string; before: unknown; keyed: (p: Protocol) => unknown }[] = [
  { name: "rankUnits", before: "pixel", keyed: (p) => (p.rankUnits.kind !== "pixel" ? rankUnitsName(p.rankUnits) : undefined) },
  { name: "topArea", before: [], keyed: (p) => (p.topArea.length > 0 ? p.topArea : undefined) },
  { name: "controls", before: ["random"], keyed: (p) => (p.controls.includes("distance") ? p.controls : undefined) },
];

/** Rules 1 and 2: the protocol part of every key of a run. */
export function protocolKey(p: Protocol, seed: number): Record<string, unknown> {
  const { steps, fills, patchDraws, blurSigma, topk, radius, minRange, stability, noiseSigma, outcome, reference } = p;
  const key: Record<string, unknown> = {
    steps,
    fills,
    patchDraws,
    blurSigma,
    topk,
    radius,
    minRange,
    stability,
    noiseSigma,
    outcome,
    reference,
    seed,
  };
  for (const s of LATER_SETTINGS) {
    const v = s.keyed(p);
    if (v !== undefined) key[s.name] = v;
  }
  return key;
}

/** True when the protocol keys its cells as the published run did (no later setting enters the key). */
export function keyedAsPublished(p: Protocol): boolean {
  return LATER_SETTINGS.every((s) => s.keyed(p) === undefined);
}

/** The protocol as run.json records it: every setting (rank units by name) and the seed. */
export function recordedProtocol(p: Protocol, seed: number): Record<string, unknown> {
  return { ...p, rankUnits: rankUnitsName(p.rankUnits), seed };
}

/** Rule 2 for run.json: setting `name` of a recorded protocol, the earlier behaviour when the record predates it. */
export function recordedSetting(protocol: Record<string, unknown>, name: string): unknown {
  return name in protocol ? protocol[name] : LATER_SETTINGS.find((s) => s.name === name)?.before;
}

/** Rule 3: the options that identify a cell: all of them, except later additions left at their default. */
export function keyedOptions(def: MethodDefinition, options: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(options)) {
    const o = def.options.find((x) => x.name === k);
    if (!(o?.addedLater && JSON.stringify(v) === JSON.stringify(o.default))) out[k] = v;
  }
  return out;
}

/** Rule 4: the key part of a method's revision for these options (none when the method has none). */
function revisionKey(def: MethodDefinition, options: Record<string, unknown>): { revision?: string } {
  const r = typeof def.revision === "function" ? def.revision(options) : def.revision;
  return r ? { revision: r } : {};
}

/** Rule 5: what a model needs of each fix, worked out once per model. */
const fixKeys = new WeakMap<Model, { gradient: object; gradcam: object }>();
function modelFixKey(def: MethodDefinition, options: Record<string, unknown>, model: Model): object {
  let k = fixKeys.get(model);
  if (!k) {
    // A one-channel output gets a Sigmoid, which the softmax fix did not change.
    const dims = model.graph.outputs.find((o) => o.name === model.outputName)?.dims ?? [];
    const oneChannel = dims.length === 4 && dims[1] === 1;
    const softmaxFix = opsetOf(model.proto()) < 13 && model.card.output.kind === "logits" && !oneChannel;
    k = {
      gradient: softmaxFix ? { probabilities: "softmax over channels (opset >= 13)" } : {},
      gradcam: autoLayerMovedByOutputPath(model) ? { autoLayer: "on the explained output's path" } : {},
    };
    fixKeys.set(model, k);
  }
  if (def.family !== "gradient") return {};
  return { ...k.gradient, ...(def.name === "gradcam" && options.layer === "auto" ? k.gradcam : {}) };
}

/** What the cells of one (model, image, RoI) share: the protocol key and the identity of every input. */
export type GroupKey = Record<string, unknown>;

/** Rules 1, 2 and 6: the shared part of the keys of one (model, image, RoI). */
export function groupKey(protocol: Record<string, unknown>, model: Model, kase: Case, roi: RoiRect, bank: PatchBank | undefined): GroupKey {
  const ownPatches = bank?.sourcesOf(kase).some(Boolean) ? { bankOwnPatches: "left out" } : {};
  return {
    protocol,
    model: model.sha256,
    card: model.card,
    image: kase.imageSha256,
    mask: kase.maskSha256 ?? null,
    roi,
    bank: bank?.sha256 ?? null,
    ...ownPatches,
  };
}

/** What rule 8 keys a volume's group on. */
export interface VolumeGroup {
  model: VolumeModel;
  kase: VolumeCase;
  /** the RoI as the Target describes it, and its bounds in the model's box */
  roi: { describe: string; bounds: readonly number[] };
  /** the rank units' box, voxels (D, H, W) of the model's space */
  rankBox: readonly number[];
  boxUnit: BoxUnitName;
  /** the sha256 of the volume bank's file, when a fill or a method uses one */
  bank: string | null;
  /** the bank holds boxes of this volume (they are left out) */
  ownPatches: boolean;
}

/** Rules 1, 2, 6 and 8: the shared part of the keys of one (model, volume, RoI). */
export function volumeGroupKey(protocol: Record<string, unknown>, g: VolumeGroup): GroupKey {
  const { kase } = g;
  return {
    protocol,
    model: g.model.sha256,
    card: g.model.card,
    image: kase.imageSha256,
    mask: kase.maskSha256 ?? null,
    labels: kase.labels ?? null,
    modelSpace: modelSpaceRecord(kase.space),
    placement: kase.placement,
    roi: g.roi,
    rankBox: g.rankBox,
    boxUnit: g.boxUnit,
    bank: g.bank,
    ...(g.ownPatches ? { bankOwnPatches: "left out" } : {}),
  };
}

/** The key of the random (and distance) control of one (model, image, RoI). */
export function controlKey(group: GroupKey): string {
  return sha256(JSON.stringify(group));
}

/** The key of one cell: its group and rules 3 to 5 and 9 for the method (rules 5 and 9 concern 2D models only). */
export function cellKey(
  group: GroupKey,
  def: MethodDefinition,
  options: Record<string, unknown>,
  model?: Model,
  incremental?: IncrementalMode,
): string {
  return sha256(
    JSON.stringify({
      ...group,
      method: def.name,
      options: keyedOptions(def, options),
      ...revisionKey(def, options),
      ...(model ? modelFixKey(def, options, model) : {}),
      ...incrementalKey(def, incremental),
    }),
  );
}

/**
 * Rule 7: raised when segcause learns to handle inputs it refused (operators, formats), so a refusal
 * recorded under an older revision is retried once. (2: reflect/edge/wrap Pad, LogSoftmax,
 * GroupNormalization, F.pad's computed pads.)
 */
export const REFUSALS_REVISION = 2;

/** Whether a recorded refusal still holds for a cell of this key (it is not retried). */
export function refusalHolds(f: FailedRecord | undefined, key: string): boolean {
  return f?.key === key && (f.refusals ?? 1) >= REFUSALS_REVISION;
}
