/**
 * The RoI-cropped executor (issue 24, phase 2): block-intervention passes run a derived graph that
 * computes every tensor only over what the RoI's outputs need (src/onnx/crop.ts), on the input cropped
 * to its needed box. The outcome reads only the RoI's cells, all inside the computed output box, so
 * the scores are the full model's up to float rounding (checked on the unperturbed input at open).
 * A block whose box misses the input's needed box cannot move the RoI: its passes are not run.
 */
import { fail } from "../errors.js";
import { type BatchPlan, BatchRunner } from "../model/batches.js";
import type { Model } from "../model/model.js";
import type { InputWriter, OutputReader } from "../model/runner.js";
import { Sessions, type TensorData } from "../model/runtime.js";
import { type ChangedGraph, changedGraph, type Win } from "../onnx/changed.js";
import { cropGraph } from "../onnx/crop.js";
import type { Box } from "../onnx/regions.js";
import { binarize } from "../target/outcome.js";
import type { Target } from "../target/target.js";
import { ChangedPasses } from "./changed-executor.js";
import { changedShare, type PassShape, type PixelBox, runCosts } from "./executor-choice.js";
import { type ExecutorCosts, type ExecutorPick, fallbackPick, incrementalPick } from "./executor-cost.js";

export type IncrementalMode = "auto" | "on" | "off";
export const INCREMENTAL_MODES: readonly IncrementalMode[] = ["auto", "on", "off"];

export type { PassShape, PixelBox } from "./executor-choice.js";

/** Which incremental executor to run: chosen by the cost model (./executor-cost.ts), or forced (tests, the bench). */
export type ExecutorChoice = "counts" | "roi-crop" | "changed-region";

/** Largest |difference| between the cropped and the full graph's RoI outputs on the unperturbed input that is accepted as float rounding. */
const TOLERANCE = 1e-4;

/** What the provenance records of the executor that ran the passes. */
export interface ExecutorRecord {
  executor: "roi-crop" | "changed-region";
  /** the input box read (rows, cols) and the share of the full pass's multiply-adds */
  inputBox: [number, number][];
  macShare: number;
  /** max |cropped − full| over the RoI's output cells of the unperturbed input */
  maxDiff: number;
  /** ops run whole (no windowed rule), counted */
  wholeOps: number;
  /** changed-region passes: the RoI-cropped pass's share (macShare is then the mean changed-region pass's over the run's blocks in reach) */
  cropMacShare?: number;
  /** changed-region passes: the block (row, col, height, width) checked against the cropped graph at open; maxDiff is its */
  checkBlock?: number[];
  /**
   * changed-region passes on a model where locality breaks: the first op computed whole (global pooling, tokens, ...), the share of
   * the network's multiply-adds computed by changed regions (upstream of it), and the part of macShare past it (computed whole or
   * over the RoI's needed boxes, the same for every block)
   */
  breaksAt?: string;
  localMacShare?: number;
  fixedMacShare?: number;
  /** the cost model's estimate of the run, and what it picked */
  cost?: CostRecord;
}

/**
 * The cost model's estimate of the run with full, RoI-cropped and changed-region passes, in full passes' multiply-adds (changed
 * absent without a changed-region graph), what `auto` picks (`on` runs the cheaper incremental one), and what it was given besides the
 * multiply-add shares: the passes in reach and every pass full passes make (one screen per block), items per call, the graphs'
 * ops (full, cropped, changed-region).
 */
export interface CostRecord {
  full: number;
  cropped: number;
  changed?: number;
  pick: ExecutorPick;
  passes: number;
  fullPasses: number;
  itemsPerBox: number;
  ops: number[];
}

/** What the provenance records when `auto`'s cost model (or its fallback) leaves full passes. */
export interface FullRecord {
  executor: "full";
  why: string;
  cost: CostRecord;
}

export class RoiExecutor {
  readonly notes: string[] = [];
  private readonly batches: BatchRunner;
  private readonly scratchIn: Float32Array;
  private readonly scratchOut: Float32Array;
  private readonly baseOutput: Float32Array;
  /** phase 3: changed-region passes, with the cropped pass's multiply-adds (a box costing more runs cropped) */
  private changed?: { passes: ChangedPasses; cropMacs: number };

  private constructor(
    private readonly model: Model,
    private readonly sessions: Sessions,
    readonly batchSize: number,
    readonly inputBox: Box,
    private readonly outputBox: Box,
    baseOutput: Float32Array,
    private readonly outputName: string,
    readonly record: ExecutorRecord,
  ) {
    const [C, h, w] = [model.channels, inputBox[2][1] - inputBox[2][0], inputBox[3][1] - inputBox[3][0]];
    this.batches = new BatchRunner(sessions, {
      feeds: [{ name: model.inputName, dims: [C, h, w] }],
      fetches: [outputName],
      batchSize,
      failed: (e, n) => model.runFailed(e, n),
    } satisfies BatchPlan);
    this.scratchIn = new Float32Array(model.inputSize);
    // Outside the RoI's box the outcome reads nothing; it holds the unperturbed output so a reader never sees garbage.
    this.scratchOut = Float32Array.from(baseOutput.subarray(0, model.outputLayout.channels * model.height * model.width));
    this.baseOutput = Float32Array.from(this.scratchOut);
  }

  /**
   * The executor for `target`'s RoI under `mode`, or undefined (full passes) with the reason in `why`, and, when `auto`'s cost
   * model (or its fallback) chose full passes, its record in `full`. `on` fails when the model has no cropped graph; `auto` falls back.
   */
  static async open(
    model: Model,
    target: Target,
    base: { input: Float32Array; output: Float32Array },
    mode: IncrementalMode,
    batchSize: number,
    opts: { units?: readonly PixelBox[]; executor?: ExecutorChoice; shape?: PassShape } = {},
  ): Promise<{ executor?: RoiExecutor; why: string; full?: FullRecord }> {
    if (mode === "off") return { why: "--incremental off" };
    if (model.card.output.layout === "nhwc" || model.outputDims.length !== 3) {
      const why = "the RoI-cropped graph needs an NCHW output with a channel axis";
      if (mode === "on") fail(why, "use --incremental auto or off (full passes)");
      return { why };
    }
    const b = target.region.bbox;
    const roi: Win = [
      [b.row, b.row + b.height],
      [b.col, b.col + b.width],
    ];
    let cg: ReturnType<typeof cropGraph>;
    try {
      cg = cropGraph(model.proto(), { rows: roi[0], cols: roi[1] });
    } catch (e) {
      // Any failure to derive it (a refused op, shapes the region rules cannot infer) leaves full passes, which always work.
      const why = `no RoI-cropped graph for this model: ${(e as Error).message.split("\n")[0]}`;
      if (mode === "on") fail(why, "use --incremental auto or off (full passes)");
      return { why };
    }
    const share = cg.macs / cg.fullMacs;
    // The choice, from counts alone: full passes are an option only under auto and when no executor is forced.
    const choice =
      opts.executor !== "roi-crop" && opts.units?.length
        ? choose(model, cg, roi, opts.units, opts.shape ?? { itemsPerBox: 1, passesPerBlock: 1 }, batchSize)
        : undefined;
    // auto takes the cost model's pick; on (and a forced executor) the cheaper incremental one
    const counted = mode === "auto" && !opts.executor;
    const pick = choice && (counted ? choice.cost.pick : incrementalPick(choice.costs));
    const fullWhy = (c: CostRecord, lead: string) =>
      `${lead}the cost model puts the run at ${c.full} full passes' worth with full passes, ${c.cropped} with RoI-cropped ones (${(100 * share).toFixed(0)}% of a full pass's multiply-adds each, ${c.ops[1]} ops against ${c.ops[0]})${c.changed === undefined ? "" : `, ${c.changed} with changed-region ones`} (${c.passes} passes in reach, ${c.fullPasses} with full passes)`;
    if (choice && pick === "full") {
      const why = fullWhy(choice.cost, "");
      return { why, full: { executor: "full", why, cost: choice.cost } };
    }
    let sessions: Sessions | undefined;
    let outputName: string;
    try {
      sessions = await Sessions.open(cg.bytes, { threads: model.threads, workers: model.workers, device: model.device });
      outputName = Object.keys(await sessions.run(0, probeFeed(model, cg.inputBox, base.input, 1)))[0];
    } catch (e) {
      await sessions?.release();
      const why = `ONNX Runtime cannot run the RoI-cropped graph: ${(e as Error).message.split("\n")[0]}`;
      if (mode === "on") fail(why, "use --incremental off, and report the model");
      return { why };
    }
    const ex = new RoiExecutor(model, sessions, batchSize, cg.inputBox, cg.outputBox, base.output, outputName, {
      executor: "roi-crop",
      inputBox: cg.inputBox.slice(2).map(([lo, hi]) => [lo, hi]),
      macShare: Number(share.toFixed(4)),
      maxDiff: 0,
      wholeOps: cg.whole.length,
      ...(choice ? { cost: choice.cost } : {}),
    });
    // The unperturbed input through both graphs: the RoI's outputs must agree to float rounding, and its mask exactly.
    let flips = 0;
    await ex.evaluate(
      [0],
      (_, dst) => dst.set(base.input),
      (d) => {
        ex.record.maxDiff = maxRoiDiff(d, base.output, target, model);
        const [a, b] = [binarize(model.card.output, model.outputLayout, d), binarize(model.card.output, model.outputLayout, base.output)];
        for (const p of target.region.pixels) if (a[p] !== b[p]) flips++;
        return 0;
      },
    );
    if (ex.record.maxDiff > TOLERANCE || flips > 0) {
      await ex.release();
      const why = `the RoI-cropped graph's outputs differ from the full graph's on the unperturbed input (max |difference| ${ex.record.maxDiff.toPrecision(2)}, ${flips} RoI mask cells flipped)`;
      if (mode === "on") fail(why, "use --incremental off, and report the model (the region rules missed an op)");
      return { why };
    }
    if (choice) {
      const forced = opts.executor === "changed-region";
      let why3 = choice.why3;
      if (!why3 && choice.changed && (forced || pick === "changed-region")) {
        why3 = await ex.openChanged(target, base, share, choice.changed);
        if (!why3) return { executor: ex, why: "" };
      }
      if (why3 && forced) {
        await ex.release();
        fail(why3, "use --incremental off, or the RoI-cropped executor");
      }
      if (!why3) {
        const c = choice.cost;
        why3 = `the cost model puts ${c.passes} changed-region passes (${(100 * choice.changed!.share).toFixed(1)}% of a full pass's multiply-adds each, ${c.ops[2]} ops, ${c.itemsPerBox} item${c.itemsPerBox === 1 ? "" : "s"} per call, plus opening them) at ${c.changed} full passes, the RoI-cropped ones (${(100 * share).toFixed(0)}%, ${c.ops[1]} ops, batch ${batchSize}) at ${c.cropped}, full passes at ${c.full}`;
      } else if (counted && fallbackPick(choice.costs) === "full") {
        // the changed-region passes were picked but failed: the cheaper of the other two runs
        await ex.release();
        const why = fullWhy(choice.cost, `changed-region passes cannot run (${why3}), and `);
        return { why, full: { executor: "full", why, cost: choice.cost } };
      }
      ex.notes.push(`RoI-cropped rather than changed-region passes: ${why3}`);
    }
    ex.notes.push(
      `incremental (RoI-cropped) passes: each pass reads input rows ${cg.inputBox[2][0]}..${cg.inputBox[2][1] - 1}, cols ${cg.inputBox[3][0]}..${cg.inputBox[3][1] - 1} and computes every tensor only where the RoI's outputs need it (${(100 * share).toFixed(0)}% of a full pass's multiply-adds${cg.whole.length ? `; ${cg.whole.length} ops without a windowed rule run whole, from ${cg.whole[0]}` : ""}); max |difference| from full inference on the RoI's outputs of the unperturbed image ${ex.record.maxDiff.toPrecision(2)}`,
    );
    return { executor: ex, why: "" };
  }

  /**
   * Phase 3: with the changed-region graph the cost model chose (or that is forced), checks one perturbed block against one full
   * pass. Returns why not, or "" when changed-region passes are on.
   */
  private async openChanged(
    target: Target,
    base: { input: Float32Array; output: Float32Array },
    cropShare: number,
    plan: ChangedPlan,
  ): Promise<string> {
    const { model } = this;
    const b = target.region.bbox;
    const { cg, share, fixedShare, inReach } = plan;
    const [[r0, r1], [c0, c1]] = [this.inputBox[2], this.inputBox[3]];
    // The check: the block in reach nearest the RoI's centre, every value moved by 0.5, through both graphs.
    const [cy, cx] = [b.row + b.height / 2, b.col + b.width / 2];
    const u = inReach.reduce((best, v) =>
      Math.hypot(v.row + v.height / 2 - cy, v.col + v.width / 2 - cx) < Math.hypot(best.row + best.height / 2 - cy, best.col + best.width / 2 - cx)
        ? v
        : best,
    );
    const check = Float32Array.from(base.input);
    const [C, H, W] = [model.channels, model.height, model.width];
    for (let c = 0; c < C; c++)
      for (let y = u.row; y < u.row + u.height; y++) for (let x = u.col; x < u.col + u.width; x++) check[(c * H + y) * W + x] += 0.5;
    // A second item, the same block moved by -0.5, runs in the same call: a graph that mixed a call's items (a batch read as a
    // constant past a token reshape) would pass a one-item check.
    const check2 = Float32Array.from(check, (v, i) => (v === base.input[i] ? v : v - 1));
    // The references are full passes: the cropped graph comes from the same needed-region rules, so it could share their error.
    const fulls = [await model.infer(check, 1), await model.infer(check2, 1)];
    let passes: ChangedPasses;
    try {
      passes = await ChangedPasses.open(model, cg, base.input);
    } catch (e) {
      return `ONNX Runtime cannot run the changed-region graph: ${(e as Error).message.split("\n")[0]}`;
    }
    const cropMacs = cropShare * cg.fullMacs;
    // The check must run the changed-region graph itself: a box it cannot plan would silently run cropped in evaluate.
    const checkBox = passes.diffBox(check);
    try {
      if (!checkBox) throw new Error("the check block changes nothing the RoI reads");
      passes.plan(checkBox);
    } catch (e) {
      await passes.release();
      return `the changed-region graph cannot plan the check block ${u.row},${u.col}: ${(e as Error).message.split("\n")[0]}`;
    }
    this.changed = { passes, cropMacs: Infinity };
    let maxDiff = 0;
    let flips = 0;
    try {
      await this.evaluate(
        [0, 1],
        (i, dst) => dst.set(i ? check2 : check),
        (d, _, i) => {
          const full = fulls[i];
          maxDiff = Math.max(maxDiff, maxRoiDiff(d, full, target, model));
          const [p, q] = [binarize(model.card.output, model.outputLayout, d), binarize(model.card.output, model.outputLayout, full)];
          for (const i of target.region.pixels) if (p[i] !== q[i]) flips++;
          return 0;
        },
      );
    } catch (e) {
      await passes.release();
      this.changed = undefined;
      return `ONNX Runtime cannot run the changed-region graph: ${(e as Error).message.split("\n")[0]}`;
    }
    if (maxDiff > TOLERANCE || flips > 0) {
      await passes.release();
      this.changed = undefined;
      return `the changed-region graph's outputs differ from full inference for block ${u.row},${u.col} (max |difference| ${maxDiff.toPrecision(2)}, ${flips} RoI mask cells flipped)`;
    }
    this.changed.cropMacs = cropMacs;
    Object.assign(this.record, {
      executor: "changed-region",
      macShare: Number(share.toFixed(4)),
      cropMacShare: this.record.macShare,
      maxDiff,
      checkBlock: [u.row, u.col, u.height, u.width],
      ...(cg.wholeOps.length
        ? {
            breaksAt: cg.wholeOps[0],
            localMacShare: Number((cg.localMacs / cg.fullMacs).toFixed(4)),
            fixedMacShare: Number(fixedShare.toFixed(4)),
          }
        : {}),
    } satisfies Partial<ExecutorRecord>);
    const breaks = cg.wholeOps.length
      ? `; locality breaks at ${cg.wholeOps[0]}: ${cg.wholeOps.length} op${cg.wholeOps.length === 1 ? "" : "s"} without a windowed rule run whole on their inputs (the changed tile pasted into the unperturbed tensor), and every op from there on runs over what the RoI needs (${(100 * fixedShare).toFixed(1)}% of a full pass's multiply-adds, the same for every block; ${(100 * (cg.localMacs / cg.fullMacs)).toFixed(1)}% of the network's multiply-adds lie upstream and run by changed regions)`
      : "";
    this.notes.push(
      `incremental (changed-region) passes: the unperturbed image's tensors are kept, and each pass recomputes every tensor only where the perturbation changes it and the RoI's outputs need it (input rows ${r0}..${r1 - 1}, cols ${c0}..${c1 - 1} can reach the RoI); ${(100 * share).toFixed(1)}% of a full pass's multiply-adds on average over the blocks (the RoI-cropped pass: ${(100 * cropShare).toFixed(0)}%; a box whose changed-region pass would cost more runs cropped); max |difference| from full inference on the RoI's outputs for block ${u.row},${u.col}: ${maxDiff.toPrecision(2)}${breaks}`,
    );
    return "";
  }

  /** Whether a pixel box (row, col, height, width) meets the input the RoI's outputs read. */
  reaches(row: number, col: number, height: number, width: number): boolean {
    const [[r0, r1], [c0, c1]] = [this.inputBox[2], this.inputBox[3]];
    return row < r1 && row + height > r0 && col < c1 && col + width > c0;
  }

  /** As Runner.evaluate: `write` fills a full model input, `read` sees a full-size output (batch slot 0) whose RoI cells are this pass's. */
  async evaluate<T>(items: readonly T[], write: InputWriter<T>, read: OutputReader<T>): Promise<Float64Array> {
    return this.changed ? this.evaluateChanged(items, write, read, this.changed) : this.evaluateCropped(items, write, read);
  }

  /**
   * Changed-region passes: each item's changed box (its input diffed against the unperturbed one), items
   * grouped by box and run as batches; an item that changes nothing the RoI reads scores the unperturbed
   * output, a box whose changed-region pass would cost more than the cropped pass runs cropped.
   */
  private async evaluateChanged<T>(
    items: readonly T[],
    write: InputWriter<T>,
    read: OutputReader<T>,
    changed: { passes: ChangedPasses; cropMacs: number },
  ): Promise<Float64Array> {
    const scores = new Float64Array(items.length);
    const { scratchIn, scratchOut, baseOutput, model } = this;
    const { passes } = changed;
    const groups = new Map<string, { box: [number, number][]; at: number[]; tiles: Float32Array[] }>();
    const cropped: number[] = [];
    scratchOut.set(baseOutput);
    for (let i = 0; i < items.length; i++) {
      write(items[i], scratchIn);
      const box = passes.diffBox(scratchIn);
      if (!box) {
        scores[i] = read(scratchOut, 0, items[i]);
        continue;
      }
      if (!(planMacs(passes, box) < changed.cropMacs)) {
        cropped.push(i);
        continue;
      }
      const key = box.flat().join(",");
      const grp = groups.get(key) ?? { box, at: [], tiles: [] };
      grp.at.push(i);
      grp.tiles.push(passes.tile(scratchIn, box));
      groups.set(key, grp);
    }
    if (cropped.length) {
      const s = await this.evaluateCropped(
        cropped.map((i) => items[i]),
        write,
        read,
      );
      cropped.forEach((i, k) => (scores[i] = s[k]));
      scratchOut.set(baseOutput);
    }
    const [H, W] = [model.height, model.width];
    const OC = model.outputLayout.channels;
    const [[o0, o1], [p0, p1]] = [this.outputBox[this.outputBox.length - 2], this.outputBox[this.outputBox.length - 1]];
    for (const grp of groups.values())
      for (let start = 0; start < grp.at.length; start += this.batchSize) {
        const at = grp.at.slice(start, start + this.batchSize);
        const { data, window } = await passes.run(grp.box, grp.tiles.slice(start, start + this.batchSize));
        const [[w0, w1], [v0, v1]] = window;
        const [oh, ow] = [w1 - w0, v1 - v0];
        // paste the tile's part inside the RoI's box, read, and put the unperturbed values back
        const [y0, y1, x0, x1] = [Math.max(w0, o0), Math.min(w1, o1), Math.max(v0, p0), Math.min(v1, p1)];
        at.forEach((i, slot) => {
          for (let c = 0; c < OC; c++)
            for (let y = y0; y < y1; y++) {
              const from = ((slot * OC + c) * oh + y - w0) * ow;
              scratchOut.set(data.subarray(from + x0 - v0, from + x1 - v0), (c * H + y) * W + x0);
            }
          scores[i] = read(scratchOut, 0, items[i]);
          for (let c = 0; c < OC; c++)
            for (let y = y0; y < y1; y++) scratchOut.set(baseOutput.subarray((c * H + y) * W + x0, (c * H + y) * W + x1), (c * H + y) * W + x0);
        });
      }
    return scores;
  }

  private async evaluateCropped<T>(items: readonly T[], write: InputWriter<T>, read: OutputReader<T>): Promise<Float64Array> {
    const scores = new Float64Array(items.length);
    const { model, scratchIn, scratchOut } = this;
    const [C, H, W] = [model.channels, model.height, model.width];
    const [[r0, r1], [c0, c1]] = [this.inputBox[2], this.inputBox[3]];
    const [[o0, o1], [p0, p1]] = [this.outputBox[this.outputBox.length - 2], this.outputBox[this.outputBox.length - 1]];
    const OC = model.outputLayout.channels;
    const [oh, ow] = [o1 - o0, p1 - p0];
    await this.batches.run(
      items,
      (item, [dst]) => {
        write(item, scratchIn);
        cropInto(scratchIn, dst, C, H, W, r0, r1, c0, c1);
      },
      (out, slot, item, i) => {
        const d = out[this.outputName].data as Float32Array;
        const base = slot * OC * oh * ow;
        for (let c = 0; c < OC; c++)
          for (let y = 0; y < oh; y++) {
            const from = base + (c * oh + y) * ow;
            scratchOut.set(d.subarray(from, from + ow), (c * H + o0 + y) * W + p0);
          }
        scores[i] = read(scratchOut, 0, item);
      },
    );
    return scores;
  }

  async release(): Promise<void> {
    await Promise.all([this.sessions.release(), this.changed?.passes.release()]);
  }
}

/** The changed-region graph of a run and its mean pass over (up to 32 of) the blocks in reach. */
interface ChangedPlan {
  cg: ChangedGraph;
  share: number;
  fixedShare: number;
  inReach: PixelBox[];
}

/**
 * Prices the run with full, RoI-cropped and changed-region passes (./executor-cost.ts). `why3` says why there are no
 * changed-region passes to price (the graph cannot be derived or planned, or no block reaches the RoI).
 */
function choose(
  model: Model,
  crop: ReturnType<typeof cropGraph>,
  roi: Win,
  units: readonly PixelBox[],
  shape: PassShape,
  batch: number,
): { cost: CostRecord; costs: ExecutorCosts; changed?: ChangedPlan; why3?: string } {
  let changed: ChangedPlan | undefined;
  let why3: string | undefined;
  try {
    const cg = changedGraph(model.proto(), { rows: roi[0], cols: roi[1] });
    try {
      changed = { cg, ...changedShare(cg, crop.inputBox, units) };
      if (changed.inReach.length === 0) [changed, why3] = [undefined, "no block reaches the RoI"];
    } catch (e) {
      why3 = `the changed-region graph cannot plan this model's windows: ${(e as Error).message.split("\n")[0]}`;
    }
  } catch (e) {
    why3 = `no changed-region graph for this model: ${(e as Error).message.split("\n")[0]}`;
  }
  const F = crop.fullMacs;
  const fullOps = model.proto().graph!.node.length;
  const costs = runCosts(
    {
      fullMacs: F,
      fullOps,
      crop: { macs: crop.macs, ops: crop.nodes },
      changed: changed && { macs: changed.share * F, ops: changed.cg.nodes },
    },
    units,
    crop.inputBox,
    shape,
    batch,
  );
  const r = (x: number) => Number((x / F).toFixed(2));
  const cost: CostRecord = {
    full: r(costs.full),
    cropped: r(costs.cropped),
    ...(Number.isFinite(costs.changed) ? { changed: r(costs.changed) } : {}),
    pick: costs.pick,
    passes: costs.passes,
    fullPasses: costs.fullPasses,
    itemsPerBox: shape.itemsPerBox,
    ops: [fullOps, crop.nodes, ...(changed ? [changed.cg.nodes] : [])],
  };
  return { cost, costs, changed, why3 };
}

/** A box's changed-region multiply-adds; NaN (so: run it cropped) when its windows cannot be planned, which the tests never met. */
function planMacs(passes: ChangedPasses, box: [number, number][]): number {
  try {
    return passes.plan(box).macs;
  } catch {
    return Number.NaN;
  }
}

/** rows r0..r1, cols c0..c1 of every channel of a CHW image, packed. */
function cropInto(src: Float32Array, dst: Float32Array, C: number, H: number, W: number, r0: number, r1: number, c0: number, c1: number): void {
  let k = 0;
  for (let c = 0; c < C; c++)
    for (let y = r0; y < r1; y++) {
      const at = (c * H + y) * W;
      dst.set(src.subarray(at + c0, at + c1), k);
      k += c1 - c0;
    }
}

function probeFeed(model: Model, box: Box, input: Float32Array, n: number): Record<string, TensorData> {
  const [C, H, W] = [model.channels, model.height, model.width];
  const [[r0, r1], [c0, c1]] = [box[2], box[3]];
  const data = new Float32Array(n * C * (r1 - r0) * (c1 - c0));
  cropInto(input, data, C, H, W, r0, r1, c0, c1);
  return { [model.inputName]: { type: "float32", data, dims: [n, C, r1 - r0, c1 - c0] } };
}

/** max |a − b| over the RoI's cells of every output channel (both full-size, slot 0). */
function maxRoiDiff(a: Float32Array, b: Float32Array, target: Target, model: Model): number {
  const plane = model.height * model.width;
  let m = 0;
  for (let c = 0; c < model.outputLayout.channels; c++)
    for (const p of target.region.pixels) m = Math.max(m, Math.abs(a[c * plane + p] - b[c * plane + p]));
  return m;
}
