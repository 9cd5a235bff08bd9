/**
 * The card of a volume model ([N, C, D, H, W] input): the box the network takes, how a volume's
 * intensities are normalised (per volume), how the volume is placed into the box, the spacing the
 * model was trained at, and how its output channels become probabilities. A card is a volume card
 * when its input layout is "ncdhw"; 2D cards are read by card.ts and are unchanged.
 */
import { existsSync } from "node:fs";
import { z } from "zod";
import { fail } from "../errors.js";
import { readModelFile, summarize } from "../onnx/graph.js";
import { readJsonBounded } from "../util/read.js";
import { sidecarPath } from "./card.js";

/**
 * Per-volume intensity normalisation, applied to the whole volume before placement:
 * zscore: (v - mean) / sd over every voxel; percentile: clip to the volume's [low, high]
 * percentiles, then map them to [0, 1]; ct-window: clip to centre ± width/2 (raw units, e.g. HU),
 * then map to [0, 1].
 */
export const VolumeNormalisation = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("zscore") }),
  z
    .object({ kind: z.literal("percentile"), low: z.number().min(0).max(100), high: z.number().min(0).max(100) })
    .refine((n) => n.low < n.high, "percentile low must be below high"),
  z.object({ kind: z.literal("ct-window"), centre: z.number(), width: z.number().positive() }),
]);
export type VolumeNormalisation = z.infer<typeof VolumeNormalisation>;

/**
 * How a volume enters the model's box: "centre" puts volume index 0 at box index
 * floor((box - n) / 2) per axis (an axis longer than the box is cropped by the same rule); the
 * rest of the box holds `fill` (in normalised units). "sliding" takes the box as the model's patch
 * and runs it over the whole volume in windows that overlap by at least `overlap` of the patch per
 * axis (an axis shorter than the patch is padded with `fill` about the centre, as "centre" does);
 * the windows' outputs are averaged with `weighting` (nnU-Net's Gaussian importance map, or equal
 * weights). See src/explain/volume/windows.ts.
 */
export const VolumePlacement = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("centre"), fill: z.number().default(0) }),
  z.object({
    kind: z.literal("sliding"),
    overlap: z.number().min(0).lt(1, "overlap is a fraction of the patch in [0, 1)").default(0.5),
    weighting: z.enum(["gaussian", "constant"]).default("gaussian"),
    fill: z.number().default(0),
  }),
]);
export type VolumePlacement = z.infer<typeof VolumePlacement>;

export const VolumeInputSpec = z.object({
  name: z.string().optional(),
  layout: z.literal("ncdhw"),
  /** the box, in the model's (D, H, W) order = the volume's (k, j, i) axes */
  depth: z.number().int().positive(),
  height: z.number().int().positive(),
  width: z.number().int().positive(),
  channels: z.literal("gray"),
  normalisation: VolumeNormalisation,
  placement: VolumePlacement,
  /** voxel size in mm along (i, j, k) the model was trained at */
  spacing: z.tuple([z.number().positive(), z.number().positive(), z.number().positive()]),
  /** in words, for people */
  orientation: z.string().optional(),
  /**
   * where the voxel axes i, j, k point, as NIfTI axis codes ("RAS": i toward the patient's right...,
   * one of R/L, A/P, S/I each): a volume whose axes differ is reoriented to them first (model-space.ts), since the model would see it mirrored
   */
  axes: z
    .string()
    .regex(/^(?=.*[RL])(?=.*[AP])(?=.*[SI])[RLAPSI]{3}$/, "axes are three NIfTI axis codes, one of R/L, A/P and S/I each (e.g. RAS)")
    .optional(),
});
export type VolumeInputSpec = z.infer<typeof VolumeInputSpec>;

export const VolumeOutputSpec = z.object({
  name: z.string().optional(),
  layout: z.literal("ncdhw"),
  kind: z.enum(["probabilities", "logits"]),
  /**
   * how logits become probabilities: sigmoid on each channel on its own (independent structures),
   * or softmax across channels (exclusive classes)
   */
  activation: z.enum(["sigmoid", "softmax"]),
  channel: z.number().int().nonnegative().default(0),
  /** on the class probability, strictly between 0 and 1 (0.5 = logit 0 for sigmoid channels) */
  threshold: z.number().gt(0).lt(1).default(0.5),
  /** what each channel holds, in order */
  channels: z.array(z.string()).optional(),
});
export type VolumeOutputSpec = z.infer<typeof VolumeOutputSpec>;

export const VolumeCardSchema = z
  .object({
    schema: z.literal("segcause.modelcard/1").default("segcause.modelcard/1"),
    name: z.string().optional(),
    architecture: z.string().optional(),
    dataset: z.string().optional(),
    description: z.string().optional(),
    input: VolumeInputSpec,
    output: VolumeOutputSpec,
    metrics: z.record(z.string(), z.unknown()).optional(),
    training: z.record(z.string(), z.unknown()).optional(),
  })
  .passthrough();
export type VolumeCard = z.infer<typeof VolumeCardSchema>;

/** true when the JSON of a card declares a volume input (layout "ncdhw"). */
export function declaresVolume(raw: unknown): boolean {
  return (raw as { input?: { layout?: unknown } } | null)?.input?.layout === "ncdhw";
}

/** true when the model's card (explicit, or the sidecar) is a volume card. */
export function isVolumeModel(modelPath: string, explicitCard?: string): boolean {
  const path = explicitCard ?? sidecarPath(modelPath);
  if (!existsSync(path)) return false;
  try {
    return declaresVolume(readJsonBounded(path, { what: "model card", kind: "card", hint: "fix or remove the card file" }));
  } catch {
    // An unreadable card is reported by the step that reads it, in its own words.
    return false;
  }
}

/**
 * A model with no readable volume card is taken for a 2D model run slice by slice; one whose graph
 * takes a rank-5 input is a 3D model that lacks its card, which is said in one line instead of the
 * slice path's refusals.
 */
export function refuseCardless3d(modelPath: string, explicitCard?: string): void {
  const input = summarize(readModelFile(modelPath).proto).inputs[0];
  if (input?.dims.length !== 5) return;
  const path = explicitCard ?? sidecarPath(modelPath);
  fail(
    `${modelPath} is a 3D model (input '${input.name}' of rank 5) without a volume card (expected at ${path}${existsSync(path) ? ", which is not a volume card" : ""})`,
    'write its volume card there (input.layout "ncdhw", box, normalisation, placement, spacing; see docs/model-cards.md), or pass --card',
  );
}

/** The volume card of a model, checked against the schema. */
export function readVolumeCard(modelPath: string, explicitCard?: string): { card: VolumeCard; path: string } {
  const path = explicitCard ?? sidecarPath(modelPath);
  if (!existsSync(path))
    fail(
      `volume model ${modelPath} has no card (${path})`,
      "a 3D model needs a card stating its box, normalisation, placement and spacing (see docs/model-cards.md)",
    );
  const raw = readJsonBounded(path, { what: "model card", kind: "card", hint: "give the card's JSON file, or fix the sidecar file" });
  const parsed = VolumeCardSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    fail(`model card ${path}: ${issue.path.join(".") || "(root)"}: ${issue.message}`, "see docs/model-cards.md for the volume card's fields");
  }
  return { card: parsed.data, path };
}
