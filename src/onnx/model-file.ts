/**
 * Reading ONNX model files: parsing, and weights kept as external data read into the model from files in
 * the model's own folder (links and paths that leave it are refused).
 */

import { realpathSync, statSync } from "node:fs";
import { basename, dirname, isAbsolute, relative, resolve, sep } from "node:path";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { type ModelProto, ModelProtoSchema, TensorProto_DataLocation } from "onnx-buf";
import { fail } from "../errors.js";
import { sha256 } from "../util/hash.js";
import { readFileBounded } from "../util/read.js";

/**
 * Reads and parses an ONNX file; an unreadable path or a non-ONNX file is a one-line error. Weights
 * saved as external data (files next to the model) are read into the model, so `bytes` is always the
 * complete model: what every session is built from, and what the model's hash covers.
 */
export function readModelFile(path: string): { bytes: Uint8Array; proto: ModelProto; sha256: string } {
  const bytes = readFileBounded(path, { what: "model", kind: "model", hint: "give the .onnx file of the model" });
  const proto = parseModel(bytes, path);
  const data = inlineExternalData(proto, path);
  if (data.length === 0) return { bytes, proto, sha256: sha256(bytes) };
  // The identity of the model is its file and its data files as stored, not a re-serialisation.
  return { bytes: toBinary(ModelProtoSchema, proto), proto, sha256: sha256(Buffer.concat([bytes, ...data])) };
}

/** Protobuf's limit on one message: a model whose weights exceed it cannot be inlined. */
const PROTOBUF_LIMIT = 2 ** 31 - 1;

/** Moves external tensor data into the tensors (in place); returns the data files read, in order. */
function inlineExternalData(model: ModelProto, path: string): Buffer[] {
  const tensors = [...model.graph!.initializer, ...model.graph!.node.flatMap((n) => n.attribute.flatMap((a) => (a.t ? [a.t] : [])))];
  const external = tensors.filter((t) => t.dataLocation === TensorProto_DataLocation.EXTERNAL);
  if (external.length === 0) {
    if (hasExternal(model))
      fail(
        `${path} keeps tensor data outside the file in a place segcause does not read (a sparse initializer, a tensor list or a subgraph)`,
        "save the model with its weights inside the .onnx file",
      );
    return [];
  }
  const files = new Map<string, Buffer>();
  for (const t of external) {
    const entry = Object.fromEntries(t.externalData.map((e) => [e.key, e.value]));
    const location = entry.location ?? "";
    const file = resolve(dirname(path), location);
    if (!location || isAbsolute(location) || !inside(dirname(path), file)) {
      fail(
        `${path}: tensor '${t.name}' names its external data file as '${location}'`,
        "external data must be a file in the model's folder (onnx.save(..., save_as_external_data=True) writes it so)",
      );
    }
    let data = files.get(file);
    if (!data) {
      const hint = `keep ${location} next to ${basename(path)}`;
      let real: string;
      try {
        real = realpathSync(file);
      } catch (e) {
        fail(
          `${path} keeps the weights of tensor '${t.name}' in ${location}, which cannot be read (${(e as NodeJS.ErrnoException).code ?? "read error"})`,
          hint,
        );
      }
      // A symbolic link in the folder may point anywhere: what is read must lie in the model's (real) folder.
      if (!inside(realpathSync(dirname(path)), real)) {
        fail(
          `${path} keeps the weights of tensor '${t.name}' in ${location}, a link to a file outside the model's folder`,
          "external data must be a file in the model's folder: copy the file there instead of linking it",
        );
      }
      // Several data files could add up to more than one model can hold: stop before reading the next.
      const read = [...files.values()].reduce((n, b) => n + b.length, 0);
      const size = statSync(real).size;
      if (read + size > PROTOBUF_LIMIT) tooLarge(path, read + size);
      data = readFileBounded(real, { what: `external data file of ${basename(path)}`, kind: "externalData", hint });
      files.set(file, data);
    }
    const offset = Number(entry.offset ?? 0);
    const length = entry.length !== undefined ? Number(entry.length) : data.length - offset;
    if (!(offset >= 0 && length >= 0 && offset + length <= data.length)) {
      fail(
        `${path}: tensor '${t.name}' reads bytes ${offset}..${offset + length} of ${location}, which holds ${data.length}`,
        `the external data file does not belong to this model: export it again`,
      );
    }
    t.rawData = Uint8Array.from(data.subarray(offset, offset + length));
    t.externalData = [];
    t.dataLocation = TensorProto_DataLocation.DEFAULT;
  }
  const total = tensors.reduce((n, t) => n + t.rawData.length, 0);
  if (total > PROTOBUF_LIMIT) tooLarge(path, total);
  if (hasExternal(model))
    fail(
      `${path} keeps tensor data outside the file in a place segcause does not read (a sparse initializer, a tensor list or a subgraph)`,
      "save the model with its weights inside the .onnx file",
    );
  return [...files.values()];
}

function tooLarge(path: string, bytes: number): never {
  fail(
    `${path} has ${(bytes / 2 ** 30).toFixed(1)} GiB of weights, more than one ONNX file can hold in memory (2 GiB)`,
    "segcause builds its sessions from one in-memory model; use a smaller model (or fp32 weights under 2 GiB)",
  );
}

/** Whether `file` lies in `folder` or below it (both resolved paths). */
function inside(folder: string, file: string): boolean {
  const rel = relative(folder, file);
  return rel !== "" && rel !== ".." && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
}

/** Whether any tensor anywhere in the model (subgraphs, tensor lists, sparse initializers) is still external. */
function hasExternal(model: ModelProto): boolean {
  const ext = (t: { dataLocation: number } | undefined) => t?.dataLocation === TensorProto_DataLocation.EXTERNAL;
  const graph = (g: NonNullable<ModelProto["graph"]>): boolean =>
    g.initializer.some(ext) ||
    g.sparseInitializer.some((s) => ext(s.values) || ext(s.indices)) ||
    g.node.some((n) => n.attribute.some((a) => ext(a.t) || a.tensors.some(ext) || (a.g !== undefined && graph(a.g)) || a.graphs.some(graph)));
  return graph(model.graph!);
}

export function parseModel(bytes: Uint8Array, path = "model"): ModelProto {
  let model: ModelProto;
  try {
    model = fromBinary(ModelProtoSchema, bytes);
  } catch (e) {
    fail(
      `${path} is not a readable ONNX file (${(e as Error).message})`,
      "the file is truncated or not an ONNX model: copy or export it again (torch.onnx.export)",
    );
  }
  if (!model.graph || model.graph.node.length === 0) {
    fail(`${path} is not an ONNX model: it has no graph nodes`, "pass the .onnx file written by torch.onnx.export");
  }
  return model;
}
