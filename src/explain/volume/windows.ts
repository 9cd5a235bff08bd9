/**
 * The volume forward under sliding windows: a volume larger than the model's patch is seen one
 * patch at a time and the windows' outputs are stitched, as the user's nnU-Net or MONAI pipeline
 * does. Only what the RoI needs is run: the outcome reads the stitched output on the RoI's cells,
 * so only windows overlapping the RoI run, and a perturbed sample re-runs only those of them that
 * contain a changed voxel; the others' outputs come from the unperturbed pass, kept for the RoI's
 * cells only (the channels the outcome reads). The runner's window-sized input buffers are the
 * only copies of the input.
 *
 * Rules (nnU-Net v2, nnunetv2/inference/sliding_window_prediction.py and predict_from_raw_data.py):
 * - windows per axis: n = ceil((size − patch) / (patch·(1 − overlap))) + 1, the first at 0, the
 *   last flush with the end, starts round(i·(size − patch)/(n − 1)) with numpy's round half to even
 *   (compute_steps_for_sliding_window; its tile_step_size is our 1 − overlap);
 * - an axis shorter than the patch is padded (pad_nd_image; here about the centre, slidingPlacement);
 * - weights: a Gaussian importance map centred at patch // 2 with sigma = patch / 8 per axis,
 *   truncated at 4 sigma like scipy's gaussian_filter, zeros replaced by the smallest non-zero
 *   weight (compute_gaussian; we keep it in float32, nnU-Net in float16), or equal weights;
 * - the network's output as exported (logits, or probabilities for a card whose output is
 *   probabilities) is weighted, summed and divided by the summed weights, and only then turned
 *   into probabilities by the card's activation and thresholded (nnU-Net averages logits and
 *   applies its inference nonlinearity afterwards; MONAI's sliding_window_inference likewise
 *   averages whatever the network returns).
 */

import type { Placement } from "../../data/volume/volume-case.js";
import type { BatchRunner } from "../../model/batches.js";
import type { VolumeNet } from "../../model/volume-model.js";
import type { ProbabilitySpec } from "../../target/outcome.js";

/** A window's corner in the padded volume, (D, H, W) order. */
export interface VolumeWindow {
  index: number;
  z: number;
  y: number;
  x: number;
}

/** A box of changed voxels in the padded volume (corner and size, (D, H, W) order). */
export interface ChangedBox {
  z: number;
  y: number;
  x: number;
  depth: number;
  height: number;
  width: number;
}

/** numpy's round: halves go to the even neighbour. */
function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** Window starts on one axis (nnU-Net's compute_steps_for_sliding_window). */
export function windowStarts(size: number, patch: number, overlap: number): number[] {
  if (size <= patch) return [0];
  const n = Math.ceil((size - patch) / (patch * (1 - overlap))) + 1;
  const step = (size - patch) / (n - 1);
  return Array.from({ length: n }, (_, i) => roundHalfEven(step * i));
}

/** Every window of a sliding placement, z slowest. */
export function slidingWindows(p: Placement & { kind: "sliding" }): VolumeWindow[] {
  // (D, H, W) = the placement's (k, j, i)
  const [zs, ys, xs] = [2, 1, 0].map((a) => windowStarts(p.box[a], p.patch[a], p.overlap));
  const out: VolumeWindow[] = [];
  for (const z of zs) for (const y of ys) for (const x of xs) out.push({ index: out.length, z, y, x });
  return out;
}

/** The weight of each cell of a window, (D, H, W) of the patch, W fastest. */
export function importanceMap(patch: [number, number, number], weighting: "gaussian" | "constant"): Float32Array {
  const [d, h, w] = patch;
  const out = new Float32Array(d * h * w);
  if (weighting === "constant") return out.fill(1);
  const axis = (n: number) => {
    const c = Math.floor(n / 2);
    const sigma = n / 8;
    const radius = Math.floor(4 * sigma + 0.5); // scipy's truncate = 4.0
    return Float64Array.from({ length: n }, (_, i) => (Math.abs(i - c) <= radius ? Math.exp(-((i - c) ** 2) / (2 * sigma * sigma)) : 0));
  };
  const [gz, gy, gx] = [axis(d), axis(h), axis(w)];
  let min = Infinity;
  for (let z = 0; z < d; z++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        const v = gz[z] * gy[y] * gx[x];
        out[(z * h + y) * w + x] = v;
        if (v > 0) min = Math.min(min, v);
      }
  for (let i = 0; i < out.length; i++) if (out[i] === 0) out[i] = min;
  return out;
}

/** The output as the stitch leaves it: `channels` planes of the RoI's cells (cell i = roiCells[i]). */
export interface StitchedRoi {
  data: Float32Array;
  channels: number;
  /** how the stitched planes become probabilities (the card's, with the channel counted among those kept) */
  spec: ProbabilitySpec;
}

export class VolumeForward {
  /** every window of the padded volume */
  readonly windows: VolumeWindow[];
  /** the windows that overlap the RoI, in window order: the only ones ever run */
  readonly used: VolumeWindow[] = [];
  /** output channels kept (one, unless a softmax needs them all) */
  readonly keep: number[];
  /** per used window: RoI cell numbers it covers and where they are in the window */
  private readonly winCells: Uint32Array[] = [];
  private readonly winLocal: Uint32Array[] = [];
  /** per RoI cell, its windows (slot into `used`), its place in that window's list, its weight */
  private readonly cellStart: Uint32Array;
  private readonly cellWin: Uint32Array;
  private readonly cellPos: Uint32Array;
  private readonly cellWeight: Float64Array;
  private readonly weightSum: Float64Array;
  /** the unperturbed output of each used window on its RoI cells, channel planes */
  private base: Float32Array[] = [];
  private readonly patch: [number, number, number];
  /** each window's weight per cell of the patch */
  private readonly weights: Float32Array;

  constructor(
    readonly model: VolumeNet,
    readonly placement: Placement & { kind: "sliding" },
    readonly input: Float32Array,
    readonly roiCells: Uint32Array,
  ) {
    const p = placement;
    this.patch = [p.patch[2], p.patch[1], p.patch[0]];
    const [pd, ph, pw] = this.patch;
    const [bx, by] = p.box;
    this.windows = slidingWindows(p);
    const weights = importanceMap(this.patch, p.weighting);
    this.weights = weights;
    const { channels } = model.outputLayout;
    const out = model.card.output;
    // A softmax reads every channel of a cell; a sigmoid or a probability output only its own.
    this.keep = out.kind === "logits" && out.activation === "softmax" && channels > 1 ? Array.from({ length: channels }, (_, c) => c) : [out.channel];
    const n = roiCells.length;
    const count = new Uint32Array(n);
    const zyx = (c: number) => [Math.floor(c / (bx * by)), Math.floor(c / bx) % by, c % bx];
    const coords = Array.from(roiCells, zyx);
    const inside: number[][] = [];
    for (const w of this.windows) {
      const cells: number[] = [];
      coords.forEach(([z, y, x], i) => {
        if (z >= w.z && z < w.z + pd && y >= w.y && y < w.y + ph && x >= w.x && x < w.x + pw) cells.push(i);
      });
      if (cells.length === 0) continue;
      this.used.push(w);
      inside.push(cells);
      this.winCells.push(Uint32Array.from(cells));
      this.winLocal.push(Uint32Array.from(cells, (i) => ((coords[i][0] - w.z) * ph + coords[i][1] - w.y) * pw + coords[i][2] - w.x));
      for (const i of cells) count[i]++;
    }
    this.cellStart = new Uint32Array(n + 1);
    for (let i = 0; i < n; i++) this.cellStart[i + 1] = this.cellStart[i] + count[i];
    const total = this.cellStart[n];
    this.cellWin = new Uint32Array(total);
    this.cellPos = new Uint32Array(total);
    this.cellWeight = new Float64Array(total);
    this.weightSum = new Float64Array(n);
    const fillAt = Uint32Array.from(this.cellStart.subarray(0, n));
    // Slots in window order, so every cell sums its windows in the same order whatever was re-run.
    inside.forEach((cells, slot) => {
      cells.forEach((i, pos) => {
        const k = fillAt[i]++;
        this.cellWin[k] = slot;
        this.cellPos[k] = pos;
        this.cellWeight[k] = weights[this.winLocal[slot][pos]];
        this.weightSum[i] += this.cellWeight[k];
      });
    });
  }

  /** How the stitched planes are read as probabilities. */
  get spec(): ProbabilitySpec {
    const o = this.model.card.output;
    return { kind: o.kind, activation: o.activation, threshold: o.threshold, channel: this.keep.length === 1 ? 0 : o.channel };
  }

  /** The used windows (slots) holding a voxel of one of these boxes. */
  touched(boxes: readonly ChangedBox[]): number[] {
    const [pd, ph, pw] = this.patch;
    const out: number[] = [];
    this.used.forEach((w, slot) => {
      const hit = boxes.some(
        (b) => b.z < w.z + pd && b.z + b.depth > w.z && b.y < w.y + ph && b.y + b.height > w.y && b.x < w.x + pw && b.x + b.width > w.x,
      );
      if (hit) out.push(slot);
    });
    return out;
  }

  /** Copies window `slot` of the padded volume `input` (default: the unperturbed one) into `dst` (patch-sized). */
  fillWindow(slot: number, dst: Float32Array, input: Float32Array = this.input): void {
    const w = this.used[slot];
    const [pd, ph, pw] = this.patch;
    const [bx, by] = this.placement.box;
    for (let z = 0; z < pd; z++)
      for (let y = 0; y < ph; y++) {
        const src = ((w.z + z) * by + w.y + y) * bx + w.x;
        dst.set(input.subarray(src, src + pw), (z * ph + y) * pw);
      }
  }

  /** Adds window `slot`'s patch-sized `src` into the padded volume `dst` at the window's place (fillWindow's adjoint). */
  addWindow(slot: number, src: Float32Array, dst: Float32Array): void {
    const w = this.used[slot];
    const [pd, ph, pw] = this.patch;
    const [bx, by] = this.placement.box;
    for (let z = 0; z < pd; z++)
      for (let y = 0; y < ph; y++) {
        const at = ((w.z + z) * by + w.y + y) * bx + w.x;
        const from = (z * ph + y) * pw;
        for (let x = 0; x < pw; x++) dst[at + x] += src[from + x];
      }
  }

  /**
   * The stitch's adjoint for window `slot`: given dS/d(stitched) on the RoI's cells (`upstream`, the
   * kept channels' planes as `stitch` gives them), writes dS/d(window output) into `dst` (one output,
   * [C, patch]): each RoI cell's upstream times the window's weight there over the cell's summed weights.
   */
  windowSeed(slot: number, upstream: Float32Array, dst: Float32Array): void {
    const n = this.roiCells.length;
    const P = this.patch[0] * this.patch[1] * this.patch[2];
    const cells = this.winCells[slot];
    const local = this.winLocal[slot];
    dst.fill(0);
    this.keep.forEach((c, k) => {
      for (let pos = 0; pos < cells.length; pos++) {
        const i = cells[pos];
        dst[c * P + local[pos]] = (this.weights[local[pos]] / this.weightSum[i]) * upstream[k * n + i];
      }
    });
  }

  /** The stitched RoI output of another padded volume (same geometry): every used window run on it once. */
  async stitchOf(runner: BatchRunner, input: Float32Array): Promise<StitchedRoi> {
    const fresh = new Map<number, Float32Array>();
    await runner.run(
      this.used.map((_, s) => s),
      (slot, [dst]) => this.fillWindow(slot, dst, input),
      (out, s, slot) => fresh.set(slot, this.keptOutput(out[this.model.outputName].data as Float32Array, s, slot)),
    );
    return this.stitch(fresh);
  }

  /** Sets padded-volume cell `cell` to `value` in window `slot`'s copy `dst`, when the window holds it. */
  putter(slot: number, dst: Float32Array): (cell: number, value: number) => void {
    const w = this.used[slot];
    const [pd, ph, pw] = this.patch;
    const [bx, by] = this.placement.box;
    return (cell, value) => {
      const z = Math.floor(cell / (bx * by)) - w.z;
      const y = (Math.floor(cell / bx) % by) - w.y;
      const x = (cell % bx) - w.x;
      if (z >= 0 && z < pd && y >= 0 && y < ph && x >= 0 && x < pw) dst[(z * ph + y) * pw + x] = value;
    };
  }

  /** The kept channels of window `slot`'s output (batch slot `s`) on its RoI cells. */
  private keptOutput(data: Float32Array, s: number, slot: number): Float32Array {
    const C = this.model.outputLayout.channels;
    const P = this.patch[0] * this.patch[1] * this.patch[2];
    const local = this.winLocal[slot];
    const out = new Float32Array(this.keep.length * local.length);
    this.keep.forEach((c, k) => {
      const plane = (s * C + c) * P;
      for (let i = 0; i < local.length; i++) out[k * local.length + i] = data[plane + local[i]];
    });
    return out;
  }

  /**
   * The weighted average on the RoI's cells, from the unperturbed windows except those in `fresh`.
   * Each cell sums its windows in window order, so re-running only some windows gives the same
   * bits as re-running all of them.
   */
  stitch(fresh?: ReadonlyMap<number, Float32Array>): StitchedRoi {
    const n = this.roiCells.length;
    const K = this.keep.length;
    const data = new Float32Array(K * n);
    for (let k = 0; k < K; k++)
      for (let i = 0; i < n; i++) {
        let acc = 0;
        for (let e = this.cellStart[i]; e < this.cellStart[i + 1]; e++) {
          const slot = this.cellWin[e];
          const out = fresh?.get(slot) ?? this.base[slot];
          acc += this.cellWeight[e] * out[k * this.winCells[slot].length + this.cellPos[e]];
        }
        data[k * n + i] = acc / this.weightSum[i];
      }
    return { data, channels: K, spec: this.spec };
  }

  /** The unperturbed pass: every used window once; returns the stitched RoI output. */
  async runBase(runner: BatchRunner): Promise<StitchedRoi> {
    const slots = this.used.map((_, s) => s);
    const base: Float32Array[] = new Array(slots.length);
    await runner.run(
      slots,
      (slot, [dst]) => this.fillWindow(slot, dst),
      (out, s, slot) => (base[slot] = this.keptOutput(out[this.model.outputName].data as Float32Array, s, slot)),
    );
    this.base = base;
    return this.stitch();
  }

  /** Model passes a sample costs: the used windows its changed boxes touch. */
  passesFor(boxes: readonly ChangedBox[]): number {
    return this.touched(boxes).length;
  }

  /**
   * Scores perturbed samples: items through the runner are (sample, window) pairs, a window's input
   * is its unperturbed copy with the sample's changes written in, and a sample is scored once its
   * last window has run (`done` at once). A sample that touches no used window scores as the base.
   */
  async evaluate<T>(
    runner: BatchRunner,
    samples: readonly T[],
    sample: {
      boxes: (s: T) => readonly ChangedBox[];
      /** writes every changed cell of the padded volume through `put` */
      perturb: (s: T, put: (cell: number, value: number) => void) => void;
    },
    score: (stitched: StitchedRoi) => number,
    done: (s: T, index: number, value: number) => void,
  ): Promise<Float64Array> {
    const scores = new Float64Array(samples.length);
    const items: { sample: number; slot: number }[] = [];
    const pending = new Uint32Array(samples.length);
    const fresh: (Map<number, Float32Array> | undefined)[] = new Array(samples.length);
    let base: number | undefined;
    samples.forEach((s, i) => {
      const slots = this.touched(sample.boxes(s));
      pending[i] = slots.length;
      if (slots.length === 0) {
        base ??= score(this.stitch());
        scores[i] = base;
        done(s, i, base);
        return;
      }
      fresh[i] = new Map();
      for (const slot of slots) items.push({ sample: i, slot });
    });
    await runner.run(
      items,
      (it, [dst]) => {
        this.fillWindow(it.slot, dst);
        sample.perturb(samples[it.sample], this.putter(it.slot, dst));
      },
      (out, s, it) => {
        const mine = fresh[it.sample]!;
        mine.set(it.slot, this.keptOutput(out[this.model.outputName].data as Float32Array, s, it.slot));
        if (--pending[it.sample] > 0) return;
        scores[it.sample] = score(this.stitch(mine));
        fresh[it.sample] = undefined;
        done(samples[it.sample], it.sample, scores[it.sample]);
      },
    );
    return scores;
  }
}
