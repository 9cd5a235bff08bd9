/** `segcause info`: what segcause reads from a model, and what it had to assume. */
import { Command } from "commander";
import { type AutoPreview, previewAuto } from "../explain/executor-choice.js";
import type { CardField } from "../model/card.js";
import { Model } from "../model/model.js";
import { type TensorInfo, withInputSize } from "../onnx/graph.js";
import { type NetworkMacs, networkMacs } from "../onnx/region-flops.js";
import { regionGraph } from "../onnx/regions.js";
import { addCardFlags, type CardFlags, cardOverrides } from "./options.js";
import { addOutputFlags, emit, type OutputFlags } from "./output.js";

/** A card field the card leaves out, the value segcause uses for it, and where that value comes from. */
export interface CardDefault {
  field: CardField;
  value: unknown;
  from: string;
}

const show = (v: unknown) => (Array.isArray(v) ? `[${v.join(", ")}]` : String(v));

/** The fields the model's card file leaves out (and no flag sets), with the values the loaded model uses. */
export function cardDefaults(model: Model): CardDefault[] {
  const { input, output } = model.card;
  const of: Record<CardField, Omit<CardDefault, "field"> | undefined> = {
    "input.layout": { value: input.layout ?? "nchw", from: "read from the graph's input shape" },
    "input.scale": { value: input.scale, from: "default" },
    "input.mean": { value: input.mean, from: "default" },
    "input.std": { value: input.std, from: "default" },
    "input.resize": { value: input.resize, from: "default" },
    "output.name": { value: model.outputName, from: "the graph's first output" },
    "output.layout": { value: output.layout ?? input.layout ?? "nchw", from: "read from the output's shape" },
    // only logits are squashed; probabilities have no activation to choose
    "output.activation":
      output.kind === "logits"
        ? { value: model.outputLayout.channels === 1 ? "sigmoid" : "softmax", from: "sigmoid for one channel, softmax for several" }
        : undefined,
    "output.channel": { value: output.channel, from: "default" },
    "output.threshold": { value: output.threshold, from: "default" },
  };
  return model.resolved.unstated.flatMap((field) => (of[field] ? [{ field, ...of[field] }] : []));
}

/** Region analysis for incremental inference (issue 24), or why the model's graph has none. */
export type RegionInfo = NetworkMacs | { error: string };

export function regionInfo(model: Model): RegionInfo {
  try {
    const proto = withInputSize(model.proto(), model.inputName, [model.channels, model.height, model.width]);
    return networkMacs(regionGraph(proto, { input: model.inputName, output: model.outputName }));
  } catch (e) {
    return { error: (e as Error).message };
  }
}

/** `--incremental auto`'s pick for a centre 32 px RoI, 8 and 16 px blocks, one and four items per call (zero ablation, a PdCR round). */
export function executorInfo(model: Model): AutoPreview[] | { error: string } {
  if (model.inputDims.length !== 3 || model.card.output.layout === "nhwc") return { error: "the incremental executors are 2D (NCHW) only" };
  try {
    const proto = withInputSize(model.proto(), model.inputName, [model.channels, model.height, model.width]);
    return previewAuto(proto, model.height, model.width, [8, 16], [1, 4]);
  } catch (e) {
    return { error: (e as Error).message.split("\n")[0] };
  }
}

export function describeExecutors(p: AutoPreview[] | { error: string }): string[] {
  if ("error" in p) return [`  --incremental auto: not analysed (${p.error})`];
  const first = p[0];
  if (first.cropShare === undefined) return [`  --incremental auto, centre 32 px RoI: full passes (${first.why})`];
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const scope =
    first.changedShare === undefined
      ? `${first.why}`
      : first.breaksAt
        ? `changed-region passes compute ${pct(first.localShare!)} of the network's multiply-adds by changed regions; locality breaks at ${first.breaksAt} (${first.wholeOps} op${first.wholeOps === 1 ? "" : "s"} run whole), and from there on every op runs over what the RoI needs`
        : "the whole network it needs can run changed-region";
  const cost = (c: NonNullable<AutoPreview["cost"]>) =>
    `${c.full.toFixed(0)} full, ${c.cropped.toFixed(0)} cropped${c.changed === undefined ? "" : `, ${c.changed.toFixed(0)} changed-region`}`;
  return [
    `  --incremental auto, centre 32 px RoI (RoI-cropped pass ${(100 * first.cropShare).toFixed(0)}% of a full pass's multiply-adds; ${scope}); the cost model's estimate of a run of one screen per block in reach, in full passes' worth:`,
    ...p.map(
      (x) =>
        `    ${x.block} px blocks, ${x.itemsPerBox === 1 ? "1 item per call (zero, occlusion)" : `${x.itemsPerBox} items per call (a PdCR round)`}: ${x.pick} (${cost(x.cost!)}${x.changedShare === undefined ? "" : `; changed-region pass ${pct(x.changedShare)}${x.breaksAt ? `, of which ${pct(x.fixedShare!)} past the break, the same for every block` : ""}`})`,
    ),
  ];
}

function describeRegions(r: RegionInfo): string {
  if ("error" in r) return `  incremental inference: not analysed (${r.error})`;
  const share = `${((100 * r.local) / r.full).toFixed(1)}% of the network's ${(r.full / 1e9).toFixed(2)} GMAC per pass is local`;
  return r.firstGlobal
    ? `  incremental inference: ${share}; the rest lies downstream of an op that mixes all positions (the first: ${r.firstGlobal}) and is recomputed by every pass (whole, or where the RoI needs it)`
    : `  incremental inference: ${share} (no op mixes all positions): a block changes, and the RoI needs, only part of every tensor`;
}

const tensor = (t: TensorInfo) => `${t.name} [${t.dims.join(", ")}] ${t.elemType.toLowerCase()}`;

/** The card as a person reads it: input size and normalisation, output semantics, provenance lines. */
export function describeInfo(out: {
  model: string;
  sha256: string;
  opset: number;
  producer: string;
  inputs: TensorInfo[];
  outputs: TensorInfo[];
  batch: string;
  cardSource: string;
  card: Model["card"];
  assumptions: string[];
  defaults: CardDefault[];
  regions: RegionInfo;
  executors?: AutoPreview[] | { error: string };
}): string {
  const c = out.card as unknown as {
    name?: string;
    description?: string;
    input: { height: number; width: number; channels: string; scale?: number; mean?: number[]; std?: number[]; resize?: string };
    output: { name?: string; kind: string; channel: number; threshold: number };
    metrics?: { split?: string; n?: number; dice_mean?: number };
  };
  const lines = [
    `${out.model}${c.name ? ` (${c.name})` : ""}`,
    ...(c.description ? [`  ${c.description}`] : []),
    `  sha256 ${out.sha256} · opset ${out.opset} · ${out.producer || "unknown producer"} · batch ${out.batch}`,
    ...out.inputs.map((t) => `  input:  ${tensor(t)}`),
    ...out.outputs.map((t) => `  output: ${tensor(t)}`),
    describeRegions(out.regions),
    ...(out.executors ? describeExecutors(out.executors) : []),
    `  card (${out.cardSource}):`,
    `    input ${c.input.height}x${c.input.width} ${c.input.channels}, resized ${c.input.resize ?? "bilinear"}; pixel / ${c.input.scale ?? 1}, then (x − mean [${(c.input.mean ?? []).join(", ")}]) / std [${(c.input.std ?? []).join(", ")}]`,
    `    output ${c.output.name ?? ""} ${c.output.kind}, channel ${c.output.channel}, threshold ${c.output.threshold}`.replace("output  ", "output "),
    ...(c.metrics?.dice_mean !== undefined
      ? [`    test Dice ${c.metrics.dice_mean.toFixed(3)} on ${c.metrics.n ?? "?"} ${c.metrics.split ?? "test"} images`]
      : []),
    out.assumptions.length
      ? `  assumed (no card said otherwise):`
      : out.defaults.length
        ? `  nothing assumed beyond the card's defaults (below)`
        : `  nothing assumed: the card gives every setting`,
    ...out.assumptions.map((a) => `    - ${a}`),
    ...(out.defaults.length
      ? [`  card fields left out of the card (values used):`, ...out.defaults.map((d) => `    - ${d.field} = ${show(d.value)} (${d.from})`)]
      : []),
    `  (--json prints everything, the whole card included)`,
  ];
  return lines.join("\n");
}

export function infoCommand(): Command {
  const cmd = new Command("info").description("show a model's card, inputs/outputs and assumptions").requiredOption("--model <file>", "ONNX model");
  addOutputFlags(cmd);
  addCardFlags(cmd);
  return cmd.action(async (f: CardFlags & OutputFlags & { model: string }) => {
    const model = await Model.load(f.model, { card: f.card, overrides: cardOverrides(f) });
    const g = model.graph;
    const out = {
      model: model.path,
      sha256: model.sha256,
      opset: g.opset,
      producer: g.producer,
      inputs: g.inputs,
      outputs: g.outputs,
      // what the file declares, when segcause adapted it (see the assumptions)
      ...(model.fileGraph !== g ? { fileInputs: model.fileGraph.inputs, fileOutputs: model.fileGraph.outputs } : {}),
      batch: model.fixedBatch === undefined ? "dynamic" : `fixed at ${model.fixedBatch}`,
      cardSource: model.resolved.source === "sidecar" ? model.resolved.sidecarPath : "inferred from the graph",
      card: model.card,
      assumptions: model.resolved.assumptions,
      defaults: cardDefaults(model),
      regions: regionInfo(model),
      executors: executorInfo(model),
    };
    await model.release();
    emit(
      f,
      () => describeInfo(out as Parameters<typeof describeInfo>[0]),
      () => out,
    );
  });
}
