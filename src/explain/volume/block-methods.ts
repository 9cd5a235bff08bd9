/**
 * The volume forms of the block-engine methods (zero ablation, occlusion, PdCR): each builds the block
 * engine's settings from the method's resolved 2D options (same flags, same defaults) and runs
 * `explainVolumeBlocks` on boxes.
 */
import { fail } from "../../errors.js";
import { FAST_SCHEDULE } from "../adaptive.js";
import type { FillKind } from "../interventions.js";
import type { VolumeForm, VolumeMethodContext, VolumeRun } from "../methods.js";
import { boxVoxels, describeSize, type Size3 } from "./box-size.js";
import { explainVolumeBlocks, planBoxes, type VolumeBlockSpec } from "./engine.js";
import { refuseBlur, volumeFill } from "./fills.js";

type BlockSpec = Omit<VolumeBlockSpec, "seed" | "batchSize" | "checkpointPath">;

/**
 * --block (and --stride) as voxels per model-space axis: in millimetres by default, so an anisotropic
 * model space gets physically even boxes; `sizes` records the millimetres given.
 */
function boxSizes(ctx: VolumeMethodContext, block: number, stride?: number): { block: Size3; stride?: Size3; sizes: Record<string, number> } {
  const unit = ctx.boxUnit ?? "mm";
  const spacing = ctx.kase.space.spacing;
  const voxels = boxVoxels(block, unit, spacing, "--block");
  if (unit === "mm" && voxels.some((n, a) => n * spacing[2 - a] !== block))
    ctx.kase.notes.push(`--block ${block} mm is ${describeSize(voxels)} voxels (DxHxW) of ${spacing.join("x")} mm in model space`);
  return {
    block: voxels,
    ...(stride !== undefined ? { stride: boxVoxels(stride, unit, spacing, "--stride") } : {}),
    sizes: unit === "mm" ? { blockMm: block } : {},
  };
}

/** Plans the boxes (their checks run before the output folder is claimed) and returns the run. */
function blockRun(ctx: VolumeMethodContext, spec: BlockSpec): VolumeRun {
  planBoxes(ctx.kase, ctx.target, spec);
  const run: VolumeRun = (o) => explainVolumeBlocks(ctx.model, ctx.kase, ctx.target, { ...spec, ...o, seed: o.seed ?? 0 });
  run.blockSpec = spec;
  return run;
}

export const zeroVolume: VolumeForm<{ block: number; tau: number; fill: number }> = {
  windows: true,
  slices: true,
  summary: "each box set to raw intensity --fill (default 0) once, normalised as the volume is",
  plan: (ctx, o) => {
    const f = volumeFill(ctx.kase, "constant", o.fill);
    const { block, sizes } = boxSizes(ctx, o.block);
    return blockRun(ctx, {
      method: "zero",
      block,
      estimator: { screen: 1, samples: 0, tau: o.tau },
      intervention: { kind: "constant", value: f.value, describe: { kind: "constant", raw: f.describe.raw, normalised: f.value } },
      settings: { fill: o.fill, ...sizes },
    });
  },
};

export const occlusionVolume: VolumeForm<{ block: number; stride: number; tau: number; fillKind: FillKind; fill: number }> = {
  windows: true,
  slices: true,
  summary: "sliding box (--block, --stride) filled with a constant raw intensity or the volume mean; overlaps averaged",
  check: (o) => refuseBlur("occlusion", o.fillKind),
  plan: (ctx, o) => {
    const f = volumeFill(ctx.kase, o.fillKind, o.fill);
    const { block, stride, sizes } = boxSizes(ctx, o.block, o.stride);
    return blockRun(ctx, {
      method: "occlusion",
      block,
      stride,
      estimator: { screen: 1, samples: 0, tau: o.tau },
      intervention: { kind: "constant", value: f.value, describe: f.describe },
      settings: { fillKind: o.fillKind, fill: f.describe.raw, ...sizes },
    });
  },
};

interface PdcrVolumeOptions {
  block: number;
  tau: number;
  screen: number;
  samples: number;
  schedule: string;
  mapNoise: number;
  maxPasses: number;
  maxTime: number;
  prior: string;
  sampling: string;
}

export const pdcrVolume: VolumeForm<PdcrVolumeOptions> = {
  windows: true,
  slices: true,
  summary:
    "boxes replaced by natural boxes of a volume bank; fast schedule (octree screening, stratified draws) or --schedule paper (S=3, N=50, tau)",
  check: (o, has) => {
    if (!has.bank)
      fail(
        "pdcr needs a volume bank of natural boxes",
        "build one with `segcause bank build --images <volume manifest.json> --model <3D model> --patch-size 8 --out bank.scvbank`, then pass --bank",
      );
    if (o.sampling !== "stratified")
      fail(`--sampling ${o.sampling} is not available for volumes yet (it is a 2D option of the fast schedule)`, "leave --sampling out for volumes");
    if (o.prior !== "none")
      fail(`--prior ${o.prior} is not available for volumes yet (it is a 2D option of the fast schedule)`, "leave --prior out for volumes");
    if (o.schedule === "fast" && !(o.samples >= FAST_SCHEDULE.strata))
      fail(
        `the fast schedule draws boxes in rounds of ${FAST_SCHEDULE.strata}, so --samples must be >= ${FAST_SCHEDULE.strata}, got ${o.samples}`,
        `use --samples ${FAST_SCHEDULE.strata} or more, or --schedule paper`,
      );
  },
  plan: (ctx, o) => {
    const { bank: used, removed } = ctx.bank!.without(ctx.kase.imageSha256);
    if (used.count === 0)
      fail("the bank holds only boxes of the volume explained", "build the bank from other volumes of the data set (e.g. --splits train)");
    const { block, sizes } = boxSizes(ctx, o.block);
    const run = blockRun(ctx, {
      method: "pdcr",
      block,
      estimator: { screen: o.screen, samples: o.samples, tau: o.tau },
      intervention: { kind: "bank", bank: used },
      adaptive:
        o.schedule === "fast"
          ? { ...FAST_SCHEDULE, tau: o.tau, maxSamples: o.samples, fidelity: o.mapNoise, maxPasses: o.maxPasses, maxSeconds: o.maxTime }
          : undefined,
      settings: { schedule: o.schedule, ...sizes },
    });
    if (removed > 0) ctx.kase.notes.push(`${removed} boxes of the bank came from the volume explained and were left out`);
    return run;
  },
};
