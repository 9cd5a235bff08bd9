/**
 * The ModelCard: everything needed to feed a model and read its output. It comes from a JSON
 * sidecar (`model.onnx.json`), from explicit overrides, or, for what neither gives, from the ONNX
 * graph plus stated assumptions — every assumption is recorded so the user can see it.
 */
import { existsSync } from "node:fs";
import { z } from "zod";
import { fail } from "../errors.js";
import { chwOf, type Layout, outputLayoutOf } from "../onnx/adapt.js";
import type { GraphSummary } from "../onnx/graph.js";
import { readJsonBounded } from "../util/read.js";

export const ResizeFilter = z.enum(["nearest", "bilinear", "bicubic", "lanczos"]);
export type ResizeFilter = z.infer<typeof ResizeFilter>;

/** Axis order of a tensor: channels first (PyTorch) or last (Keras/TensorFlow). */
const LayoutSpec = z.enum(["nchw", "nhwc"]) satisfies z.ZodType<Layout>;

export const InputSpec = z.object({
  name: z.string().optional(),
  /** default: read from the graph's input shape (nhwc when its last axis is 1 or 3 and its second cannot be channels) */
  layout: LayoutSpec.optional(),
  height: z.number().int().positive(),
  width: z.number().int().positive(),
  channels: z.enum(["rgb", "gray"]),
  /** pixel values are divided by this (255 maps 8-bit images to [0,1]) */
  scale: z.number().positive().default(255),
  mean: z.array(z.number()).default([0, 0, 0]),
  std: z.array(z.number().positive()).default([1, 1, 1]),
  resize: ResizeFilter.default("bilinear"),
  /** how the model explains a volume slice by slice (src/model/slice-model.ts); only used with a volume input */
  slices: z
    .object({
      /** the volume's voxel axis the slices are cut across (RAS volumes: k = axial, j = coronal, i = sagittal) */
      axis: z.enum(["i", "j", "k"]).default("k"),
      /** per-volume window: these percentiles of the volume's intensities become pixels 0 and 255 */
      window: z
        .object({ low: z.number().min(0).max(100), high: z.number().min(0).max(100) })
        .refine((w) => w.low < w.high, "window low must be below high")
        .default({ low: 0.5, high: 99.5 }),
    })
    .optional(),
});
export type InputSpec = z.infer<typeof InputSpec>;

export const OutputSpec = z.object({
  name: z.string().optional(),
  /** default: read from the output's shape (the input's layout when the shape cannot tell) */
  layout: LayoutSpec.optional(),
  /** probabilities are thresholded as exported; logits get sigmoid (1 channel) or softmax first */
  kind: z.enum(["probabilities", "logits"]),
  /**
   * how logits become probabilities: sigmoid on each channel on its own, or softmax across
   * channels; unstated (every shipped 2D card): sigmoid for one channel, softmax for several
   */
  activation: z.enum(["sigmoid", "softmax"]).optional(),
  channel: z.number().int().nonnegative().default(0),
  /** on the class probability (after sigmoid/softmax for logits), so strictly between 0 and 1 */
  threshold: z.number().gt(0).lt(1).default(0.5),
  /**
   * true: these logits may lie entirely within [0, 1]. Without it, a logits output that does so on
   * the unperturbed image is refused: it most likely holds probabilities already (squashing them
   * again would put every pixel above the threshold).
   */
  logitsInUnitRange: z.boolean().optional(),
});
export type OutputSpec = z.infer<typeof OutputSpec>;

export const ModelCardSchema = z
  .object({
    schema: z
      .literal("segcause.modelcard/1", { error: () => 'schema must be "segcause.modelcard/1" (the only card version)' })
      .default("segcause.modelcard/1"),
    name: z.string().optional(),
    architecture: z.string().optional(),
    dataset: z.string().optional(),
    description: z.string().optional(),
    input: InputSpec,
    output: OutputSpec,
    metrics: z.record(z.string(), z.unknown()).optional(),
    training: z.record(z.string(), z.unknown()).optional(),
  })
  .passthrough();
export type ModelCard = z.infer<typeof ModelCardSchema>;

/** Partial settings from flags; each one given wins over the sidecar and over inference. */
export interface CardOverrides {
  height?: number;
  width?: number;
  channels?: "rgb" | "gray";
  scale?: number;
  mean?: number[];
  std?: number[];
  resize?: ResizeFilter;
  /** the input's axis order */
  layout?: Layout;
  /** the output's axis order */
  outputLayout?: Layout;
  outputKind?: "probabilities" | "logits";
  channel?: number;
  threshold?: number;
}

export interface ResolvedCard {
  card: ModelCard;
  source: "sidecar" | "inferred";
  sidecarPath?: string;
  /** what was not stated anywhere and had to be assumed, in words */
  assumptions: string[];
  /** the assumptions about settings other steps act on (also in `assumptions`), by setting */
  assumed: Partial<Record<AssumedSetting, string>>;
  /** a sidecar that leaves out output.channel (default 0), with no --channel: said at load when the output has 2+ channels */
  channelUnstated?: boolean;
  /** the card fields a sidecar leaves out and no flag sets (they take defaults, or are read from the graph), e.g. "input.scale" */
  unstated: CardField[];
}

/** Card fields with a default or a value read from the graph when a card leaves them out. */
export const DEFAULTED_FIELDS = [
  "input.layout",
  "input.scale",
  "input.mean",
  "input.std",
  "input.resize",
  "output.name",
  "output.layout",
  "output.activation",
  "output.channel",
  "output.threshold",
] as const;
export type CardField = (typeof DEFAULTED_FIELDS)[number];

/** The flag that sets each defaulted field (a field a flag sets is stated, not defaulted). */
const FIELD_OVERRIDE: Partial<Record<CardField, keyof CardOverrides>> = {
  "input.layout": "layout",
  "input.scale": "scale",
  "input.mean": "mean",
  "input.std": "std",
  "input.resize": "resize",
  "output.layout": "outputLayout",
  "output.channel": "channel",
  "output.threshold": "threshold",
};

/** Settings whose assumption a later step reads: a patch bank inherits the size and filter; the class channel is revised at load. */
export type AssumedSetting = "size" | "resize" | "classChannel";

export function sidecarPath(modelPath: string): string {
  return `${modelPath}.json`;
}

function readSidecar(path: string): { card: ModelCard; channelStated: boolean; unstated: CardField[] } {
  const raw = readJsonBounded(path, {
    what: "model card",
    kind: "card",
    hint: "give the card's JSON file (--card m.onnx.json), or fix or remove the sidecar file",
  });
  // A volume card (src/model/volume-card.ts) is read by the volume path; here it is one clear line.
  if ((raw as { input?: { layout?: unknown } } | null)?.input?.layout === "ncdhw") {
    fail(
      `${path} is the card of a 3D model (input [N, C, D, H, W]); this step takes 2D image models`,
      "explain volumes with `segcause explain --model <3D model> --image <volume.nii.gz or DICOM folder>`",
    );
  }
  const parsed = ModelCardSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    fail(`model card ${path}: ${issue.path.join(".") || "(root)"}: ${issue.message}`, "see docs/model-cards.md for the schema");
  }
  const output = (raw as { output?: { channel?: unknown } }).output;
  const stated = (field: CardField) => {
    const [part, key] = field.split(".");
    return (raw as Record<string, Record<string, unknown> | undefined>)[part]?.[key] !== undefined;
  };
  return { card: parsed.data, channelStated: output?.channel !== undefined, unstated: DEFAULTED_FIELDS.filter((f) => !stated(f)) };
}

/** Builds the card: sidecar (if present) < graph inference for gaps < explicit overrides. */
export function resolveCard(modelPath: string, graph: GraphSummary, overrides: CardOverrides = {}, explicitCard?: string): ResolvedCard {
  const assumptions: string[] = [];
  const assumed: ResolvedCard["assumed"] = {};
  const side = explicitCard ?? sidecarPath(modelPath);
  if (explicitCard && !existsSync(explicitCard)) fail(`model card ${explicitCard} does not exist`, "check the --card path");
  let card: ModelCard;
  let source: ResolvedCard["source"];
  let channelUnstated = false;
  let unstated: CardField[] = [];
  if (existsSync(side)) {
    const read = readSidecar(side);
    card = read.card;
    unstated = read.unstated.filter((f) => FIELD_OVERRIDE[f] === undefined || overrides[FIELD_OVERRIDE[f]] === undefined);
    channelUnstated = !read.channelStated && overrides.channel === undefined;
    source = "sidecar";
  } else {
    card = inferCard(graph, overrides, (text, setting) => {
      assumptions.push(text);
      if (setting) assumed[setting] = text;
    });
    source = "inferred";
  }
  const inp = { ...card.input };
  const out = { ...card.output };
  // Set only when stated or channels-last: a channels-first card stays as it was, and so do the cell
  // keys of evaluate runs that include the card.
  if (overrides.layout !== undefined) inp.layout = overrides.layout;
  else if (inputLayout(card, graph, assumptions) === "nhwc") inp.layout = "nhwc";
  if (overrides.outputLayout !== undefined) out.layout = overrides.outputLayout;
  if (overrides.height !== undefined) inp.height = overrides.height;
  if (overrides.width !== undefined) inp.width = overrides.width;
  if (overrides.channels !== undefined) inp.channels = overrides.channels;
  if (overrides.scale !== undefined) inp.scale = overrides.scale;
  if (overrides.mean !== undefined) inp.mean = overrides.mean;
  if (overrides.std !== undefined) inp.std = overrides.std;
  if (overrides.resize !== undefined) inp.resize = overrides.resize;
  if (overrides.outputKind !== undefined) out.kind = overrides.outputKind;
  if (overrides.channel !== undefined) out.channel = overrides.channel;
  if (overrides.threshold !== undefined) out.threshold = overrides.threshold;
  // Overrides get the same checks as a card file: a zero scale or std, a negative channel or a
  // threshold outside (0, 1) would otherwise surface later as a misleading NaN or empty prediction.
  checkedCard(InputSpec, inp, "input");
  checkedCard(OutputSpec, out, "output");
  // A card naming an output the graph lacks would otherwise fall back to the first output, silently.
  const outputNames = graph.outputs.map((o) => o.name);
  if (out.name !== undefined && !outputNames.includes(out.name)) {
    fail(
      `the model card names output '${out.name}', but the graph's outputs are ${outputNames.map((n) => `'${n}'`).join(", ")}`,
      "set output.name in the card to one of them",
    );
  }
  if (outputNames.length > 1 && (source === "inferred" || card.output.name === undefined)) {
    assumptions.push(
      `the model has ${outputNames.length} outputs (${outputNames.join(", ")}); '${out.name ?? outputNames[0]}' is the one explained (set output.name in the card to choose another)`,
    );
  }
  // Logits read from a Sigmoid/Softmax output would be squashed twice (a sigmoid of a probability
  // lies in 0.5..0.73, so the 0.5 threshold marks nearly every pixel as foreground).
  const outName = out.name ?? graph.outputs[0]?.name;
  const lastOp = outName !== undefined ? graph.outputOps[outName] : undefined;
  if (out.kind === "logits" && (lastOp === "Sigmoid" || lastOp === "Softmax")) {
    fail(
      `the model card reads output '${outName}' as logits, but the graph produces it with ${endsIn(graph, outName!)}: it already holds probabilities`,
      'set output.kind to "probabilities" in the card (or pass --output-kind probabilities)',
    );
  }
  const nc = inp.channels === "rgb" ? 3 : 1;
  for (const k of ["mean", "std"] as const) {
    const v = inp[k];
    // Equal values are one value for every channel: the defaults (and [0, 0, 0] stated for a grey
    // input) fit any channel count, while an RGB card's keys keep their stored form.
    if (v.length > 0 && v.length !== nc && v.every((x) => x === v[0])) {
      inp[k] = [v[0]];
      continue;
    }
    if (v.length !== 1 && v.length !== nc) {
      fail(`model card ${k} has ${v.length} values but the input has ${nc} channel(s)`, nc === 1 ? "give 1 value" : `give 1 or ${nc} values`);
    }
  }
  return {
    card: { ...card, input: inp, output: out },
    source,
    sidecarPath: source === "sidecar" ? side : undefined,
    assumptions,
    assumed,
    channelUnstated,
    unstated,
  };
}

/**
 * An input [N, H, W, 1|3] whose second axis cannot be a channel count is a channels-last (NHWC)
 * export (Keras, TensorFlow); it is adapted in the graph (src/onnx/adapt.ts), not read as an image
 * with hundreds of channels.
 */
export function looksChannelsLast(dims: readonly (number | string | undefined)[]): boolean {
  const [, c, h, w] = dims;
  if (dims.length !== 4 || (w !== 1 && w !== 3)) return false;
  // [N, 256, 256, 3], or [N, H, W, 3] with symbolic sizes (tf2onnx's usual export)
  return typeof c === "number" ? c > 4 && (typeof h !== "number" || h > 4) : typeof h !== "number";
}

/** The op that computes an output's values, with the ops after it that only move, broadcast or average them. */
function endsIn(graph: GraphSummary, output: string): string {
  const op = graph.outputOps[output] ?? "?";
  const after = graph.outputLayoutOps?.[output] ?? [];
  return after.length > 0 ? `${op} (then ${after.join(", ")})` : op;
}

/** The input's layout: the card's, else the graph's shape says (recorded as an assumption when channels-last). */
function inputLayout(card: ModelCard, graph: GraphSummary, assumptions: string[]): Layout {
  if (card.input.layout) return card.input.layout;
  const input = graph.inputs[0];
  if (input && looksChannelsLast(input.dims)) {
    assumptions.push(
      `input '${input.name}' is [${input.dims.map((d) => d ?? "?").join(", ")}]: read as channels-last (NHWC); if it is not, pass --layout nchw (or set input.layout in the card)`,
    );
    return "nhwc";
  }
  return "nchw";
}

const FLAG_OF: Record<string, string> = {
  scale: "--scale",
  mean: "--mean",
  std: "--std",
  height: "--input-size",
  width: "--input-size",
  channel: "--channel",
  threshold: "--threshold",
};

/** Parses card settings (from a file, the graph or flags) with the schema; an invalid one is a one-line error naming its flag. */
function checkedCard<T>(schema: z.ZodType<T>, value: unknown, part: string): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const path = [part, ...issue.path.map(String)].filter((p, i) => i > 0 || p !== "card");
  const flag = FLAG_OF[path.find((p) => p in FLAG_OF) ?? ""];
  fail(`model ${path.join(".")} setting is invalid: ${issue.message}`, flag ? `check ${flag} or the model card` : "check the model card");
}

/** What can be read from the graph, and explicit assumptions for the rest. */
function inferCard(graph: GraphSummary, o: CardOverrides, assume: (text: string, setting?: AssumedSetting) => void): ModelCard {
  if (graph.inputs.length !== 1) {
    fail(
      `the model has ${graph.inputs.length} inputs (${graph.inputs.map((i) => i.name).join(", ")}); segcause needs exactly one image input`,
      "export the model with a single NCHW image input",
    );
  }
  const input = graph.inputs[0];
  const output = graph.outputs[0];
  if (input.dims.length !== 4) {
    fail(
      `model input '${input.name}' has rank ${input.dims.length}; segcause needs an image input of rank 4 ([N, C, H, W] or [N, H, W, C])`,
      "export with input shape [N, C, H, W]",
    );
  }
  const inLayout = o.layout ?? (looksChannelsLast(input.dims) ? "nhwc" : "nchw");
  const [c, h, w] = chwOf(input.dims, inLayout);
  let channels: "rgb" | "gray";
  if (o.channels) channels = o.channels;
  else if (c === 3) channels = "rgb";
  else if (c === 1) channels = "gray";
  else {
    channels = "rgb";
    assume(`input channel count is not fixed in the graph (${String(c)}); assumed RGB (3 channels)`);
  }
  let height = typeof h === "number" ? h : undefined;
  let width = typeof w === "number" ? w : undefined;
  if (height === undefined || width === undefined) {
    // One axis may be fixed (an [N, 3, 512, W] export): the note gives the size actually used.
    const dynamic = height === undefined && width === undefined ? "height/width are" : height === undefined ? "height is" : "width is";
    height ??= 256;
    width ??= 256;
    if (o.height === undefined || o.width === undefined) {
      assume(
        `input ${dynamic} dynamic in the graph; assumed ${o.height ?? height}x${o.width ?? width} (set the size with --input-size H,W or in the model card)`,
        "size",
      );
    }
  }
  if (o.scale === undefined && o.mean === undefined && o.std === undefined) {
    assume("normalisation not stated: assumed pixel/255 with no mean/std (input in [0,1])");
  }
  if (o.resize === undefined) assume("resize filter not stated: assumed bilinear", "resize");
  const lastOp = graph.outputOps[output.name] ?? "?";
  // A Squeeze/Transpose/Expand/AveragePool after the Sigmoid does not make the output logits.
  const ends = endsIn(graph, output.name);
  const staticDims = graph.outputStaticDims?.[output.name];
  // The class axis: last for a channels-last output (src/onnx/adapt.ts decides the layout the same way).
  const outDims = output.dims.every((d) => typeof d === "number") || !staticDims ? output.dims : staticDims;
  const inNames = inLayout === "nhwc" ? input.dims.slice(1, 3) : input.dims.slice(2, 4);
  const cAxis = outputLayoutOf(outDims, o.height ?? height, o.width ?? width, inLayout, o.outputLayout, inNames) === "nhwc" ? 3 : 1;
  // An output without a declared shape leaves the class count open (Model reads it from the shapes).
  let outC = output.dims.length === 4 ? output.dims[cAxis] : output.dims.length === 3 ? 1 : undefined;
  if (typeof outC !== "number" && staticDims?.length === 4) {
    outC = staticDims[cAxis];
    assume(`output '${output.name}' has ${outC} channel(s), computed from the graph's shapes (the graph does not declare them)`);
  }
  let kind: "probabilities" | "logits";
  if (o.outputKind) kind = o.outputKind;
  else if (lastOp === "Sigmoid" || lastOp === "Softmax") {
    kind = "probabilities";
    assume(`output '${output.name}' ends in ${ends}: read as probabilities`);
  } else {
    kind = "logits";
    assume(
      `output '${output.name}' ends in ${ends}, not Sigmoid/Softmax: read as logits (sigmoid for 1 channel, softmax across channels) before the threshold`,
    );
  }
  let channel = o.channel;
  if (channel === undefined) {
    channel = typeof outC === "number" && outC >= 2 ? 1 : 0;
    if (typeof outC !== "number" || outC > 2) assume(`output class channel not stated: assumed channel ${channel}`, "classChannel");
  }
  return checkedCard(
    ModelCardSchema,
    {
      input: { name: input.name, height, width, channels, mean: channels === "rgb" ? [0, 0, 0] : [0], std: channels === "rgb" ? [1, 1, 1] : [1] },
      output: { name: output.name, kind, channel, threshold: o.threshold ?? 0.5 },
    },
    "card",
  );
}
