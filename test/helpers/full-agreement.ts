/**
 * An incremental executor on a shipped model against full inference, pass by pass: the crop and
 * changed-region tests share it (each opens its own executor kind).
 */
import { loadCase } from "../../src/data/case.js";
import { type ExecutorChoice, type PixelBox, RoiExecutor } from "../../src/explain/roi-executor.js";
import { RunContext } from "../../src/explain/run.js";
import { Model } from "../../src/model/model.js";
import { binarize } from "../../src/target/outcome.js";

export interface Agreement {
  /** the executor's record (which kind ran) */
  record: RoiExecutor["record"];
  /** the boxes run, and the passes the executor's reader saw */
  boxes: PixelBox[];
  passes: number;
  /** largest |difference| of the RoI's outputs from full inference, and RoI pixels whose mask differs */
  diff: number;
  flips: number;
}

/**
 * Loads `model` (one thread) and `image`, opens the RoI executor (`--incremental on`, `executor` when
 * given, on the units `units` gives), zero-fills each box `choose` picks and compares the executor's
 * RoI outputs and mask with a full pass of the same input.
 */
export async function agreementWithFull(
  modelPath: string,
  image: string,
  roi: PixelBox,
  opts: { batchSize: number; executor?: ExecutorChoice; units?: (model: Model) => PixelBox[] },
  choose: (executor: RoiExecutor, model: Model) => PixelBox[],
): Promise<Agreement> {
  const model = await Model.load(modelPath, { threads: 1 });
  try {
    const kase = await loadCase(model, image);
    const ctx = await RunContext.open(model, kase, { roi, reference: "prediction", outcome: "mean-prob" }, { batchSize: opts.batchSize });
    const { executor } = await RoiExecutor.open(
      model,
      ctx.target,
      { input: ctx.base, output: ctx.baseOutput },
      "on",
      4,
      opts.units ? { units: opts.units(model), executor: opts.executor } : {},
    );
    try {
      const boxes = choose(executor!, model);
      // the unperturbed input with the box at each channel's zero (the affine offset, pixel value 0)
      const zeroBox = (u: PixelBox, dst: Float32Array) => {
        dst.set(ctx.base);
        for (let ch = 0; ch < model.channels; ch++) {
          const [, b] = model.affine(ch);
          for (let y = u.row; y < u.row + u.height; y++)
            dst.fill(b, (ch * model.height + y) * model.width + u.col, (ch * model.height + y) * model.width + u.col + u.width);
        }
      };
      const plane = model.height * model.width;
      const size = model.outputLayout.channels * plane;
      const fulls: Float32Array[] = [];
      await ctx.runner.evaluate(boxes, zeroBox, (d, slot) => {
        fulls.push(d.slice(slot * size, (slot + 1) * size));
        return 0;
      });
      let diff = 0;
      let flips = 0;
      let passes = 0;
      // the changed-region executor groups boxes by changed region, so its reads come in its own order
      await executor!.evaluate(boxes, zeroBox, (d, _, u) => {
        const f = fulls[boxes.indexOf(u)];
        passes++;
        for (let ch = 0; ch < model.outputLayout.channels; ch++)
          for (const p of ctx.target.region.pixels) diff = Math.max(diff, Math.abs(d[ch * plane + p] - f[ch * plane + p]));
        const [a, b] = [binarize(model.card.output, model.outputLayout, d), binarize(model.card.output, model.outputLayout, f)];
        for (const p of ctx.target.region.pixels) if (a[p] !== b[p]) flips++;
        return 0;
      });
      return { record: executor!.record, boxes, passes, diff, flips };
    } finally {
      await executor?.release();
    }
  } finally {
    await model.release();
  }
}
