/**
 * A volume model: an ONNX network with a [N, C, D, H, W] input and a volume card. Like Model, its
 * input is checked against the card and its output layout is found by one pass at load, so every
 * user can rely on it before running anything. Batches go through the shared BatchRunner.
 */
import { availableParallelism } from "node:os";
import type { ModelProto } from "onnx-buf";
import { fail, SegcauseError } from "../errors.js";
import { type GraphSummary, parseModel, readModelFile, summarize } from "../onnx/graph.js";
import { BatchRunner } from "./batches.js";
import type { Device } from "./device.js";

import type { Differentiable, ProbabilityActivation } from "./differentiable.js";
import { Sessions, type TensorData } from "./runtime.js";
import { readVolumeCard, type VolumeCard } from "./volume-card.js";

export interface VolumeOutputLayout {
  channels: number;
  depth: number;
  height: number;
  width: number;
}

/**
 * What the volume engine (windows, Target, block methods, provenance) reads of a network that
 * explains volumes: a 3D VolumeModel, or a 2D model run slice by slice (SliceModel, slice-model.ts),
 * which looks to the engine like a 3D model whose box is one slice deep.
 */
export interface VolumeNet {
  readonly path: string;
  readonly sha256: string;
  readonly card: VolumeCard;
  readonly cardPath: string;
  readonly sessions: Sessions;
  readonly outputLayout: VolumeOutputLayout;
  readonly outputName: string;
  readonly threads: number;
  /** set when a 2D model runs slice by slice */
  readonly slicing?: SliceSetting;
  runner(batchSize: number): BatchRunner;
  runOne(input: Float32Array): Promise<TensorData>;
  release(): Promise<void>;
}

/** A 2D model on a volume: the voxel axis the slices are cut across and the per-volume window to pixels 0..255. */
export interface SliceSetting {
  axis: "i" | "j" | "k";
  window: { low: number; high: number };
}

export interface VolumeModelOptions {
  card?: string;
  threads?: number;
  /** execution provider (default "cpu"; see device.ts) */
  device?: Device;
}

export class VolumeModel implements Differentiable, VolumeNet {
  readonly outputLayout!: VolumeOutputLayout;

  private constructor(
    readonly path: string,
    readonly sha256: string,
    readonly graph: GraphSummary,
    readonly card: VolumeCard,
    readonly cardPath: string,
    readonly sessions: Sessions,
    /** the ONNX model as run (the file), for gradient graphs and feature-map scans */
    readonly bytes: Uint8Array,
  ) {}

  static async load(path: string, opts: VolumeModelOptions = {}): Promise<VolumeModel> {
    const { card, path: cardPath } = readVolumeCard(path, opts.card);
    const file = readModelFile(path);
    const graph = summarize(file.proto);
    checkVolumeInput(path, graph, card);
    const outName = card.output.name ?? graph.outputs[0].name;
    if (!graph.outputs.some((o) => o.name === outName))
      fail(
        `the model card names output '${outName}', but the graph's outputs are ${graph.outputs.map((o) => `'${o.name}'`).join(", ")}`,
        "set output.name in the card to one of them",
      );
    const threads = opts.threads ?? 2;
    if (!Number.isInteger(threads) || threads < 1 || threads > 256)
      fail(`threads must be an integer in 1..256, got ${threads}`, `use --threads 1..${availableParallelism()}`);
    let sessions: Sessions;
    try {
      sessions = await Sessions.open(file.bytes, { threads, workers: 1, device: opts.device });
    } catch (e) {
      if ((e as Error).name === "SegcauseError") throw e;
      fail(`ONNX Runtime cannot load ${path}: ${(e as Error).message.split("\n")[0]}`, "check that the file is a complete ONNX export (opset <= 21)");
    }
    const model = new VolumeModel(path, file.sha256, graph, card, cardPath, sessions, file.bytes);
    try {
      await model.probe();
    } catch (e) {
      await model.release();
      throw e;
    }
    return model;
  }

  get inputName(): string {
    return this.card.input.name ?? this.graph.inputs[0].name;
  }
  get outputName(): string {
    return this.card.output.name ?? this.graph.outputs[0].name;
  }
  /** the box, (D, H, W) */
  get box(): [number, number, number] {
    const { depth, height, width } = this.card.input;
    return [depth, height, width];
  }
  /** the batch size the graph fixes, if it does (cut graphs then run at it) */
  get fixedBatch(): number | undefined {
    const n = this.graph.inputs[0].dims[0];
    return typeof n === "number" ? n : undefined;
  }
  get inputSize(): number {
    const [d, h, w] = this.box;
    return d * h * w;
  }
  get threads(): number {
    return this.sessions.threads;
  }
  get device(): Device {
    return this.sessions.device;
  }

  // ---- Differentiable: what the gradient layer reads ----
  get inputDims(): number[] {
    return [1, ...this.box];
  }
  get outputDims(): number[] {
    return [this.outputLayout.channels, ...this.box];
  }
  get outputChannels(): number {
    return this.outputLayout.channels;
  }
  get classChannel(): number {
    return this.card.output.channel;
  }
  /** logits become probabilities as the card's output.activation says (as the Target reads them) */
  get activation(): ProbabilityActivation {
    return this.card.output.kind === "logits" ? this.card.output.activation : "none";
  }
  get gradientThreads(): number {
    return this.sessions.threads * this.sessions.workers;
  }
  proto(): ModelProto {
    return parseModel(this.bytes, this.path);
  }

  /** A batch runner of `batchSize` boxes (its input buffers are the only copies of the input it holds). */
  runner(batchSize: number): BatchRunner {
    return new BatchRunner(this.sessions, {
      feeds: [{ name: this.inputName, dims: [1, ...this.box] }],
      fetches: [this.outputName],
      batchSize,
      failed: (e, n) => this.runFailed(e, n),
    });
  }

  /** One pass of a zero box at load: the output must be [1, C, D, H, W] at the box's size. */
  private async probe(): Promise<void> {
    const out = await this.runOne(new Float32Array(this.inputSize));
    const d = out.dims;
    const [D, H, W] = this.box;
    if (d.length !== 5 || d[0] !== 1 || d[2] !== D || d[3] !== H || d[4] !== W) {
      fail(
        `model output '${this.outputName}' has shape [${d.join(", ")}] for one input, but the volume card's box needs [1, C, ${D}, ${H}, ${W}]`,
        "export the 3D model with an output at its input's size, channels first",
      );
    }
    if (this.card.output.channel >= d[1])
      fail(`model card asks for output channel ${this.card.output.channel} but the output has ${d[1]}`, `set output.channel to 0..${d[1] - 1}`);
    (this as { outputLayout: VolumeOutputLayout }).outputLayout = { channels: d[1], depth: D, height: H, width: W };
  }

  /** The raw output of one box (used at load and for the unperturbed pass). */
  async runOne(input: Float32Array): Promise<TensorData> {
    const feeds = { [this.inputName]: { type: "float32" as const, data: input, dims: [1, 1, ...this.box] } };
    try {
      const out = (await this.sessions.run(0, feeds, [this.outputName]))[this.outputName];
      if (out.type !== "float32") fail(`model output '${this.outputName}' is ${out.type}, segcause needs float32`, "export the output as float32");
      return out;
    } catch (e) {
      if (e instanceof SegcauseError) throw e;
      this.runFailed(e, 1);
    }
  }

  runFailed(e: unknown, n: number): never {
    const msg = (e as Error).message.split("\n")[0];
    fail(
      `ONNX Runtime failed to run ${this.path} on ${n} box(es) of ${this.box.join("x")}: ${msg}`,
      "check that the volume card's box matches the model (or lower --batch-size)",
    );
  }

  async release(): Promise<void> {
    await this.sessions.release();
  }
}

/** The graph's input against the card: rank 5, one channel, the card's box where the graph fixes it. */
function checkVolumeInput(path: string, graph: GraphSummary, card: VolumeCard): void {
  if (graph.inputs.length !== 1)
    fail(
      `${path} has ${graph.inputs.length} inputs; segcause needs exactly one volume input`,
      "export the model with a single [N, 1, D, H, W] input",
    );
  const { dims, name, elemType } = graph.inputs[0];
  if (elemType !== "FLOAT") fail(`model input '${name}' is ${elemType}, but segcause feeds float32 volumes`, "export the model with a float32 input");
  if (dims.length !== 5)
    fail(
      `${path}: input '${name}' has rank ${dims.length}, but its card declares a volume input [N, C, D, H, W]`,
      "give a 3D model, or a 2D model's own card",
    );
  const want = [1, card.input.depth, card.input.height, card.input.width];
  const names = ["channels", "depth", "height", "width"];
  for (let i = 0; i < 4; i++) {
    const d = dims[i + 1];
    if (typeof d === "number" && d !== want[i])
      fail(
        `model input ${names[i]} is ${d} in the graph [${dims.map((x) => x ?? "?").join(", ")}], but the volume card says ${want[i]}`,
        "fix the card's input box to match the ONNX graph",
      );
  }
}

/**
 * The 3D model a method needs when it reads the graph or the whole box's output (gradient methods,
 * RISE): a 2D model run slice by slice is refused in one line.
 */
export function threeDModel(model: VolumeNet, method: string): VolumeModel {
  if (model instanceof VolumeModel) return model;
  fail(
    `${method} does not run slice by slice (a 2D model on a volume): only the box methods do`,
    "use --method zero, occlusion or pdcr with a 2D model, or give a 3D model for this method",
  );
}
