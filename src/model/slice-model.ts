/**
 * A 2D model explaining a volume slice by slice. To the volume engine it is a 3D model whose box is
 * one slice deep, placed with sliding windows of depth 1 (no overlap, equal weights): VolumeForward
 * then runs every slice holding the RoI once, re-runs only the RoI slices a perturbation touches,
 * and stacks the slices' outputs on the RoI's cells, so the outcome (Dice, ...) is that of the
 * stacked 3D prediction. One window = one 2D pass.
 *
 * How a volume becomes the 2D model's input: the volume's voxel axes are permuted so the slice axis
 * comes last (sliceOrnt() in model-space.ts; nothing is resampled), each volume is windowed to its
 * own percentiles (card `input.slices.window`) and mapped to pixels 0..255 (as floats, not rounded to
 * 8 bits), and a slice goes through the 2D card's scale/mean/std (a grey slice is copied into every
 * channel of an RGB model). A slice smaller than the card's height × width is placed in its centre
 * (the rest black: pixel 0); a larger one is cut into card-sized tiles (the last flush with the
 * slice's end, overlaps averaged). Slices are not resized, so the model sees the volume's voxels at
 * their own size (a resize would blur the boxes the map is made of).
 */
import { BatchRunner, type SlotReader, type SlotWriter } from "./batches.js";
import type { CardOverrides } from "./card.js";
import type { Device } from "./device.js";
import { Model } from "./model.js";
import type { Sessions, TensorData } from "./runtime.js";
import type { VolumeCard } from "./volume-card.js";
import type { SliceSetting, VolumeNet, VolumeOutputLayout } from "./volume-model.js";

export interface SliceModelOptions {
  card?: string;
  /** the 2D card flags, as for images */
  overrides?: CardOverrides;
  threads?: number;
  device?: Device;
  /** --slice-axis: wins over the card's input.slices.axis */
  axis?: SliceSetting["axis"];
}

export const SLICE_AXES = ["i", "j", "k"] as const;

export class SliceModel implements VolumeNet {
  readonly card: VolumeCard;
  readonly outputLayout: VolumeOutputLayout;

  private constructor(
    /** the 2D model each slice goes through */
    readonly model2d: Model,
    readonly slicing: SliceSetting,
  ) {
    const c = model2d.card;
    const { channels, height, width } = model2d.outputLayout;
    this.outputLayout = { channels, depth: 1, height, width };
    // The volume card the engine reads: one slice deep, the window as a percentile normalisation (to 0..1,
    // times 255 in the runner), sliding windows of depth 1. The spacing is the volume's own (`bind`, called by loadVolumeCase).
    this.card = {
      schema: "segcause.modelcard/1",
      name: c.name,
      description: c.description,
      slicedFrom: { card: c, slices: slicing },
      input: {
        name: model2d.inputName,
        layout: "ncdhw",
        depth: 1,
        height: c.input.height,
        width: c.input.width,
        channels: "gray",
        normalisation: { kind: "percentile", ...slicing.window },
        placement: { kind: "sliding", overlap: 0, weighting: "constant", fill: 0 },
        spacing: [1, 1, 1],
      },
      output: {
        name: model2d.outputName,
        layout: "ncdhw",
        kind: c.output.kind,
        activation: model2d.activation === "softmax" ? "softmax" : "sigmoid",
        channel: c.output.channel,
        threshold: c.output.threshold,
      },
    };
  }

  static async load(path: string, o: SliceModelOptions = {}): Promise<SliceModel> {
    const model2d = await Model.load(path, { card: o.card, overrides: o.overrides, threads: o.threads, device: o.device });
    const stated = model2d.card.input.slices;
    const slicing: SliceSetting = {
      axis: o.axis ?? stated?.axis ?? "k",
      window: stated?.window ?? { low: 0.5, high: 99.5 },
    };
    return new SliceModel(model2d, slicing);
  }

  /** The volume's voxel size in the slice space (the card's spacing: boxes in mm and banks use it). */
  bind(spacing: [number, number, number]): void {
    this.card.input.spacing = [...spacing];
  }

  get path(): string {
    return this.model2d.path;
  }
  get sha256(): string {
    return this.model2d.sha256;
  }
  get cardPath(): string {
    return this.model2d.resolved.sidecarPath ?? "(inferred from the graph)";
  }
  get sessions(): Sessions {
    return this.model2d.sessions;
  }
  get threads(): number {
    return this.model2d.threads;
  }
  get outputName(): string {
    return this.model2d.outputName;
  }

  /** A runner of slices: the engine writes a window of normalised values; the 2D input is made from it here. */
  runner(batchSize: number): BatchRunner {
    const m = this.model2d;
    return new SliceRunner(
      m.sessions,
      {
        feeds: [{ name: m.inputName, dims: [m.channels, m.height, m.width] }],
        fetches: [m.outputName],
        // a graph with a fixed batch axis takes that many slices per call
        batchSize: m.fixedBatch ?? batchSize,
        failed: (e, n) => m.runFailed(e, n),
      },
      m,
    );
  }

  /** The raw output of one slice-sized window. */
  async runOne(input: Float32Array): Promise<TensorData> {
    let out: TensorData | undefined;
    await this.runner(1).run(
      [0],
      (_, [dst]) => dst.set(input.subarray(0, dst.length)),
      (o) => {
        const t = o[this.outputName];
        out = { ...t, data: Float32Array.from(t.data as Float32Array) };
      },
    );
    return out!;
  }

  async release(): Promise<void> {
    await this.model2d.release();
  }
}

/** A BatchRunner whose writers fill one plane of values in 0..1; each becomes the 2D input (pixel = 255·value) per channel. */
class SliceRunner extends BatchRunner {
  constructor(
    sessions: Sessions,
    plan: ConstructorParameters<typeof BatchRunner>[1],
    private readonly model: Model,
  ) {
    super(sessions, plan);
  }

  override run<T>(items: readonly T[], write: SlotWriter<T>, read: SlotReader<T>, onBatch?: (n: number) => void): Promise<void> {
    const m = this.model;
    const P = m.height * m.width;
    const affine = Array.from({ length: m.channels }, (_, c) => m.affine(c));
    return super.run(
      items,
      (item, [dst], index) => {
        write(item, [dst.subarray(0, P)], index);
        // the last channel first: channel 0's plane is the source of every channel
        for (let c = m.channels - 1; c >= 0; c--) {
          const [a, b] = affine[c];
          for (let i = 0; i < P; i++) dst[c * P + i] = dst[i] * 255 * a + b;
        }
      },
      read,
      onBatch,
    );
  }
}
