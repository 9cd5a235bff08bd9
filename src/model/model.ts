/**
 * Model: an ONNX segmentation network with its ModelCard, its ONNX Runtime sessions (runtime.ts),
 * its output layout, and the conversions between 8-bit pixels and the network's input tensor.
 * Several sessions ("workers") with one thread each can keep both cores of a small machine busy
 * with less synchronisation than one session with two threads; `configure` changes that layout
 * without reading the file again (tuning tries several).
 */
import { availableParallelism } from "node:os";
import { toBinary } from "@bufbuild/protobuf";
import { type ModelProto, ModelProtoSchema } from "onnx-buf";
import type { RasterImage } from "../data/image.js";
import { fail } from "../errors.js";
import { adaptLayout, chwOf, type Layout } from "../onnx/adapt.js";
import { type GraphSummary, parseModel, readModelFile, summarize } from "../onnx/graph.js";
import { widenFloat16 } from "../onnx/widen.js";
import { type CardOverrides, type ModelCard, type ResolvedCard, resolveCard } from "./card.js";
import type { Device } from "./device.js";

import type { Differentiable, ProbabilityActivation } from "./differentiable.js";
import { Sessions, type TensorData } from "./runtime.js";

export interface ModelLoadOptions {
  /** explicit model-card path; default `<model>.onnx.json` when it exists */
  card?: string;
  overrides?: CardOverrides;
  /** intra-op threads of each session (default 2 with one worker: this tool targets small CPU machines) */
  threads?: number;
  /** ONNX Runtime sessions run concurrently (default 1); each gets `threads` threads */
  workers?: number;
  /** execution provider of every session opened for this model (default "cpu"; see device.ts) */
  device?: Device;
}

export interface OutputLayout {
  channels: number;
  height: number;
  width: number;
}

export class Model implements Differentiable {
  /** batch dimension fixed in the graph (e.g. 1), or undefined when dynamic */
  readonly fixedBatch: number | undefined;
  readonly channels: number;
  readonly height: number;
  readonly width: number;
  /** the output's channels and size, known from the probe pass at load */
  readonly outputLayout!: OutputLayout;

  private constructor(
    readonly path: string,
    /** of the file as given (the model's identity in provenance) */
    readonly sha256: string,
    /** the ONNX model as run: the file, or its float32 widening (src/onnx/widen.ts) and NCHW/full-resolution adaptation (src/onnx/adapt.ts) */
    readonly bytes: Uint8Array,
    readonly graph: GraphSummary,
    readonly resolved: ResolvedCard,
    /** the model's sessions: one in-thread, or one per worker thread (see configure) */
    private live: Sessions,
    /** the graph as the file has it (differs from `graph` when it was widened to float32 or a layout adapter rewrote it) */
    readonly fileGraph: GraphSummary,
  ) {
    const inp = graph.inputs[0];
    this.fixedBatch = typeof inp.dims[0] === "number" ? inp.dims[0] : undefined;
    this.channels = this.card.input.channels === "rgb" ? 3 : 1;
    this.height = this.card.input.height;
    this.width = this.card.input.width;
  }

  /** the sessions at the current layout (a Runner drives them) */
  get sessions(): Sessions {
    return this.live;
  }
  get workers(): number {
    return this.sessions.workers;
  }
  /** where every session of this model runs (gradient graphs and component cuts too) */
  get device(): Device {
    return this.sessions.device;
  }
  /** intra-op threads of each session */
  get threads(): number {
    return this.sessions.threads;
  }

  get card(): ModelCard {
    return this.resolved.card;
  }
  get inputName(): string {
    return this.graph.inputs[0].name;
  }
  get outputName(): string {
    return outputNameOf(this.card, this.graph);
  }

  /** A fresh parse of the model as run, for graph surgery (gradients, feature maps, components). */
  proto(): ModelProto {
    return parseModel(this.bytes, this.path);
  }
  get inputSize(): number {
    return this.channels * this.height * this.width;
  }

  // ---- Differentiable: what the gradient layer reads ----
  get inputDims(): number[] {
    return [this.channels, this.height, this.width];
  }
  get outputDims(): number[] {
    const { channels, height, width } = this.outputLayout;
    return this.graph.outputs.find((o) => o.name === this.outputName)?.dims.length === 3 ? [height, width] : [channels, height, width];
  }
  get outputChannels(): number {
    return this.outputLayout.channels;
  }
  get classChannel(): number {
    return this.card.output.channel;
  }
  /** logits: the card's activation, else a sigmoid for one channel and a softmax across several (as the Target reads them) */
  get activation(): ProbabilityActivation {
    const o = this.card.output;
    if (o.kind !== "logits") return "none";
    return this.outputLayout.channels === 1 || o.activation === "sigmoid" ? "sigmoid" : "softmax";
  }
  get gradientThreads(): number {
    return this.threads * this.workers;
  }

  /**
   * The model file's card, checked against its graph, without starting ONNX Runtime: all a step
   * needs that only cuts images at the model's size (a patch bank).
   */
  static readCard(path: string, opts: Pick<ModelLoadOptions, "card" | "overrides"> = {}): ResolvedCard {
    return readChecked(path, opts).resolved;
  }

  static async load(path: string, opts: ModelLoadOptions = {}): Promise<Model> {
    const { file, fileGraph, resolved } = readChecked(path, opts);
    const { card } = resolved;
    const outputName = outputNameOf(card, fileGraph);
    const outType = fileGraph.outputs.find((o) => o.name === outputName)!.elemType;
    if (!FLOAT_TYPES.has(outType))
      fail(
        `model output '${outputName}' is ${outType}, segcause needs float32 scores or probabilities`,
        "export the output as float32 (before any ArgMax or Cast)",
      );
    // A half-precision export becomes float32 first (the CPU provider lacks most float16 kernels), so
    // the adapter's float32 nodes and every method see one float32 graph.
    const widened = widenFloat16(file.proto);
    if (widened) resolved.assumptions.push(...widened.notes);
    const source = widened?.proto ?? file.proto;
    // Channels-last or low-resolution exports become NCHW at the input size, in the graph itself.
    const adapted = adaptLayout(source, {
      input: {
        name: fileGraph.inputs[0].name,
        layout: card.input.layout ?? "nchw",
        channels: card.input.channels === "rgb" ? 3 : 1,
        height: card.input.height,
        width: card.input.width,
      },
      output: { name: outputName, layout: card.output.layout },
    });
    resolved.assumptions.push(...adapted.notes);
    if (adapted.outputLayout === "nhwc") card.output.layout = "nhwc";
    if (resolved.source === "inferred" && opts.overrides?.channel === undefined) inferClassChannel(resolved, outputName, adapted.classes);
    // A card's default channel 0 is the background class of a background/foreground softmax.
    if (resolved.channelUnstated && (adapted.classes ?? 1) >= 2)
      resolved.assumptions.push(
        `the card gives no output.channel: channel 0 of the ${adapted.classes} channels of output '${outputName}' is explained (of a background/foreground output, the background); set "channel" in the card's output, or --channel, to choose`,
      );
    const run = adapted.proto ?? widened?.proto;
    const bytes = run ? toBinary(ModelProtoSchema, run) : file.bytes;
    const graph = run ? summarize(run) : fileGraph;
    const workers = opts.workers ?? 1;
    const sessions = await openSessions(path, bytes, opts.threads ?? (workers > 1 ? 1 : 2), workers, opts.device ?? "cpu", () =>
      adapted.proto
        ? `segcause rewrote the model's layout at load (${adapted.notes.join("; ")}); if that reading is wrong, pass --layout/--output-layout (or set them in the card)`
        : widened
          ? "segcause widened the model's half-precision tensors to float32 at load; if an op still refuses, export the model in float32 (model.float() before torch.onnx.export)"
          : "check that the file is a complete ONNX export (opset <= 21)",
    );
    const model = new Model(path, file.sha256, bytes, graph, resolved, sessions, fileGraph);
    try {
      await model.probe();
    } catch (e) {
      await model.release();
      throw e;
    }
    return model;
  }

  /**
   * Reopens the sessions with another layout (threads per session, workers), from the bytes already
   * in memory. Runners made before must not be used after: their slots belong to the old layout.
   */
  async configure(opts: { threads: number; workers: number }): Promise<void> {
    if (opts.threads === this.threads && opts.workers === this.workers) return;
    const next = await openSessions(
      this.path,
      this.bytes,
      opts.threads,
      opts.workers,
      this.device,
      () => "check that the file is a complete ONNX export (opset <= 21)",
    );
    const old = this.live;
    this.live = next;
    await old.release();
  }

  /**
   * One pass of a zero input at load: the output layout (channels, size) is checked against the
   * card once, here, so every user of the model can rely on it before running anything.
   */
  private async probe(): Promise<void> {
    const n = this.fixedBatch ?? 1;
    const out = await this.run(this.batchBuffer(n * this.inputSize), n, 0);
    this.outputOf(out, n);
    (this as { outputLayout: OutputLayout }).outputLayout = this.checkOutput(out.dims, n);
  }

  /** HWC 8-bit image at the model's size → CHW float32 input, as the card says. */
  preprocess(img: RasterImage, dst: Float32Array = new Float32Array(this.inputSize)): Float32Array {
    if (img.width !== this.width || img.height !== this.height || img.channels !== this.channels) {
      fail(
        `image is ${img.width}x${img.height}x${img.channels} but the model takes ${this.width}x${this.height}x${this.channels}`,
        "load the image with the model's input size and channels",
      );
    }
    const plane = this.height * this.width;
    for (let c = 0; c < this.channels; c++) {
      const [a, b] = this.affine(c);
      for (let i = 0; i < plane; i++) dst[c * plane + i] = img.data[i * this.channels + c] * a + b;
    }
    return dst;
  }

  /** input = pixel * a + b for channel c (pixel in 0..255 units of the card's scale). */
  affine(c: number): [number, number] {
    const { scale, mean, std } = this.card.input;
    const m = mean.length === 1 ? mean[0] : mean[c];
    const s = std.length === 1 ? std[0] : std[c];
    return [1 / (scale * s), -m / s];
  }

  /** true when the workers are threads (workers > 1): the Runner then queues two batches per worker */
  get threaded(): boolean {
    return this.sessions.threaded;
  }

  /**
   * A batch buffer: on a SharedArrayBuffer when the workers are threads, so handing it over shares
   * the memory instead of copying it. The caller must not write it while a run is in flight.
   */
  batchBuffer(length: number): Float32Array {
    return this.sessions.buffer(length);
  }

  /** Runs one batch of `n` inputs laid out contiguously on session `worker`; returns the raw output tensor data. */
  async infer(batch: Float32Array, n: number, worker = 0): Promise<Float32Array> {
    return this.outputOf(await this.run(batch, n, worker), n);
  }

  /** The raw output of `n` inputs on session `worker`; ORT's failure as one line with its likely cause. */
  private async run(batch: Float32Array, n: number, worker: number): Promise<TensorData> {
    const dims = [n, this.channels, this.height, this.width];
    const feeds = { [this.inputName]: { type: "float32" as const, data: batch.subarray(0, n * this.inputSize), dims } };
    try {
      return (await this.sessions.run(worker, feeds, [this.outputName]))[this.outputName];
    } catch (e) {
      this.runFailed(e, n);
    }
  }

  /** ORT's failure to run a batch of `n` inputs of this model, as one line with its likely cause. */
  runFailed(e: unknown, n: number): never {
    const msg = (e as Error).message.split("\n")[0];
    // An allocation failure is memory, not a mismatched card: say which knob lowers it.
    const hint = /fail(ed)? to allocate|bad_alloc|out of memory/i.test(msg)
      ? `a batch of ${n} inputs of ${this.channels}x${this.height}x${this.width} does not fit in memory: lower --batch-size (or use --batch-size auto)`
      : "check that the model card's input size and channels match the model";
    fail(`ONNX Runtime failed to run ${this.path}: ${msg}`, hint);
  }

  /** The output data of a batch of `n`, checked: float32, in the layout found at load. */
  outputOf(out: TensorData, n: number): Float32Array {
    if (out.type !== "float32") fail(`model output '${this.outputName}' is ${out.type}, segcause needs float32`, "export the output as float32");
    // Known at load; a graph whose output shape changes with the batch fails here, not silently.
    if (this.outputLayout) {
      const { channels, height, width } = this.outputLayout;
      const want = out.dims.length === 3 ? [n, height, width] : [n, channels, height, width];
      if (out.dims.length !== want.length || out.dims.some((d, i) => d !== want[i])) {
        fail(
          `model output has shape [${out.dims.join(", ")}] for a batch of ${n}, but [${want.join(", ")}] was expected from the pass at load`,
          "export the model with an output whose shape follows the batch size only",
        );
      }
    }
    return out.data as Float32Array;
  }

  private checkOutput(dims: readonly number[], n: number): OutputLayout {
    let layout: OutputLayout;
    if (dims.length === 4 && dims[0] === n) layout = { channels: dims[1], height: dims[2], width: dims[3] };
    else if (dims.length === 3 && dims[0] === n) layout = { channels: 1, height: dims[1], width: dims[2] };
    else fail(`model output has shape [${dims.join(", ")}]; segcause needs [N, C, H, W] or [N, H, W]`, "export a per-pixel segmentation output");
    if (layout.height !== this.height || layout.width !== this.width) {
      fail(
        `model output is ${layout.width}x${layout.height} but its input is ${this.width}x${this.height}`,
        layout.height < this.height && layout.width < this.width
          ? "segcause upsamples a smaller output when the graph tells its size, and this one's could not be computed: export the model with its final upsampling, or with a fixed output size"
          : "segcause compares masks at the input size: export the model with an output at the input's size",
      );
    }
    if (this.card.output.channel >= layout.channels) {
      fail(
        `model card asks for output channel ${this.card.output.channel} but the output has ${layout.channels}`,
        `use --channel 0..${layout.channels - 1}`,
      );
    }
    return layout;
  }

  async release(): Promise<void> {
    await this.sessions.release();
  }
}

/** The model's sessions at a layout, checked; ORT's refusal as one line with `hint()`. */
async function openSessions(
  path: string,
  bytes: Uint8Array,
  threads: number,
  workers: number,
  device: Device,
  hint: () => string,
): Promise<Sessions> {
  if (!Number.isInteger(workers) || workers < 1 || workers > 64) fail(`workers must be an integer in 1..64, got ${workers}`, "use --workers 1 or 2");
  if (!Number.isInteger(threads) || threads < 1 || threads > 256)
    fail(`threads must be an integer in 1..256, got ${threads}`, `use --threads 1..${availableParallelism()} (this machine's cores)`);
  try {
    return await Sessions.open(bytes, { threads, workers, device });
  } catch (e) {
    if ((e as Error).name === "SegcauseError") throw e;
    fail(`ONNX Runtime cannot load ${path}: ${(e as Error).message.split("\n")[0]}`, hint());
  }
}

/** Element types of the image input and output that run as float32: (b)float16 ones are widened at load (src/onnx/widen.ts). */
const FLOAT_TYPES = new Set(["FLOAT", "FLOAT16", "BFLOAT16"]);

/** The file, its graph and its card, the file's input checked against the card. */
function readChecked(path: string, opts: Pick<ModelLoadOptions, "card" | "overrides">) {
  const file = readModelFile(path);
  const fileGraph = summarize(file.proto);
  const resolved = resolveCard(path, fileGraph, opts.overrides, opts.card);
  checkInputMatchesCard(path, fileGraph, resolved.card);
  return { file, fileGraph, resolved };
}

/** The file's input against the card, in the card's layout, before any adaptation. */
function checkInputMatchesCard(path: string, graph: GraphSummary, card: ModelCard): void {
  if (graph.inputs.length !== 1) {
    fail(`${path} has ${graph.inputs.length} inputs; segcause needs exactly one image input`, "export the model with a single NCHW image input");
  }
  const { dims, elemType, name } = graph.inputs[0];
  if (!FLOAT_TYPES.has(elemType))
    fail(
      `model input '${name}' is ${elemType}, but segcause feeds float32 images`,
      "export the model with a float32 image input (cast inside the model if it needs integers)",
    );
  if (dims.length !== 4)
    fail(
      `${path}: input '${name}' has rank ${dims.length}, expected an image of rank 4 ([N, C, H, W] or [N, H, W, C])`,
      "export with input shape [N, C, H, W]",
    );
  const layout = card.input.layout ?? "nchw";
  const want = [card.input.channels === "rgb" ? 3 : 1, card.input.height, card.input.width];
  // The other layout is the likely fix when it gives the card's channel count (a card inferred under the
  // wrong layout has its height and width from the wrong axes too).
  const fits = (l: Layout) => chwOf(dims, l)[0] === want[0];
  const names = ["channels", "height", "width"];
  const got = chwOf(dims, layout);
  for (let i = 0; i < 3; i++) {
    const d = got[i];
    if (typeof d === "number" && d !== want[i]) {
      const other: Layout = layout === "nhwc" ? "nchw" : "nhwc";
      fail(
        `model input ${names[i]} is ${d} in the graph [${dims.map((x) => x ?? "?").join(", ")}] read as ${layout === "nhwc" ? "channels-last" : "channels-first"}, but the model card or its flags say ${want[i]}`,
        fits(other)
          ? `the input reads correctly as ${other === "nhwc" ? "channels-last" : "channels-first"}: pass --layout ${other} (or set input.layout "${other}" in the card)`
          : "fix the model card (or the --input-size/--channels flags) to match the ONNX graph",
      );
    }
  }
}

/**
 * The default class channel of an inferred card, from the output's class count at the card's input
 * size (computed while adapting): the graph's declared dims may not tell it (symbolic or absent).
 */
function inferClassChannel(resolved: ResolvedCard, outputName: string, classes: number | undefined): void {
  if (classes === undefined) return;
  const channel = classes >= 2 ? 1 : 0;
  const out = resolved.card.output;
  const stated = `output '${outputName}' has ${classes} channel(s) at the input size`;
  const assumed = resolved.assumed.classChannel;
  if (out.channel === channel && assumed === undefined) return;
  out.channel = channel;
  const note = `${stated}: class channel ${channel}${classes > 2 ? " assumed (set --channel or output.channel to choose another)" : ""}`;
  const i = assumed === undefined ? -1 : resolved.assumptions.indexOf(assumed);
  if (i >= 0) resolved.assumptions.splice(i, 1, note);
  else resolved.assumptions.push(note);
  // With 1 or 2 classes the channel is read from the shape, not assumed.
  if (classes > 2) resolved.assumed.classChannel = note;
  else delete resolved.assumed.classChannel;
}

/** The output the card names when the graph has it, else the graph's first. */
function outputNameOf(card: ModelCard, graph: GraphSummary): string {
  return card.output.name && graph.outputs.some((o) => o.name === card.output.name) ? card.output.name : graph.outputs[0].name;
}
