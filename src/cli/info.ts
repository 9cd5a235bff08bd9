/** `segcause info`: what segcause reads from a model, and what it had to assume. */
import { Command } from "commander";
import { Model } from "../model/model.js";
import type { TensorInfo } from "../onnx/graph.js";
import { addCardFlags, type CardFlags, cardOverrides } from "./options.js";
import { addOutputFlags, emit, type OutputFlags } from "./output.js";

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
    `  card (${out.cardSource}):`,
    `    input ${c.input.height}x${c.input.width} ${c.input.channels}, resized ${c.input.resize ?? "bilinear"}; pixel / ${c.input.scale ?? 1}, then (x − mean [${(c.input.mean ?? []).join(", ")}]) / std [${(c.input.std ?? []).join(", ")}]`,
    `    output ${c.output.name ?? ""} ${c.output.kind}, channel ${c.output.channel}, threshold ${c.output.threshold}`.replace("output  ", "output "),
    ...(c.metrics?.dice_mean !== undefined
      ? [`    test Dice ${c.metrics.dice_mean.toFixed(3)} on ${c.metrics.n ?? "?"} ${c.metrics.split ?? "test"} images`]
      : []),
    out.assumptions.length ? `  assumed (no card said otherwise):` : `  nothing assumed: the card gives every setting`,
    ...out.assumptions.map((a) => `    - ${a}`),
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
    };
    await model.release();
    emit(
      f,
      () => describeInfo(out as Parameters<typeof describeInfo>[0]),
      () => out,
    );
  });
}
