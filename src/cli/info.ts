/** `segcause info`: what segcause reads from a model, and what it had to assume. */
import { Command } from "commander";
import { Model } from "../model/model.js";
import { addCardFlags, cardOverrides, type CardFlags } from "./options.js";

export function infoCommand(): Command {
  const cmd = new Command("info").description("show a model's card, inputs/outputs and assumptions").requiredOption("--model <file>", "ONNX model");
  addCardFlags(cmd);
  return cmd.action(async (f: CardFlags & { model: string }) => {
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
    process.stdout.write(JSON.stringify(out, null, 2) + "\n");
    await model.release();
  });
}
