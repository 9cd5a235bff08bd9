/**
 * MiSuRe (Hasany et al. 2024, arXiv 2406.12173), adapted to a RoI of a binary segmentation as in
 * notes/pdcr-method-digest.md §4.2. The explained target is the model's own prediction inside the
 * RoI, T = (prob > threshold) ∩ RoI (MiSuRe explains predictions, whatever `--reference` says).
 * "Keeping" pixels under a mask M means x' = b + M·(x − b), with b the baseline image (default
 * black; `--fill-kind` as occlusion's).
 *
 * Stage 1 (sufficient region): M_0 = T; M_{k+1} = M_k dilated with OpenCV's 7x7 elliptical kernel,
 * until Dice((f(x') > t)[RoI], T[RoI]) ≥ `sufficiency` (0.9). Masks are evaluated in batches; the
 * first sufficient one is kept (the whole image if none is).
 *
 * Stage 2 (minimally sufficient region): a low-resolution mask m (`maskSize`², default 32x32),
 * initialised to the area average of 1 on T, 0.5 elsewhere inside M, 0 outside; u = bilinear
 * upsample of m; x' = b + M·u·(x − b). Loss, with p = f(x') on the RoI and soft Dice D(a, b) =
 * (2Σab + 1) / (Σa + Σb + 1):
 *
 *   L = l1 · mean(u) + (1 − D(p, T)) + (1 − D(1 − p, 1 − T))
 *
 * minimised by AdamW (β = 0.9, 0.999; weight decay 0.01, PyTorch's default; lr 0.01) for
 * `iterations` (100) steps, m clamped to [0, 1] after each. dL/dp is a nonlinear function of p, so
 * each step runs one forward pass (p, L) and then the gradient graph with seed dL/dp; dL/dm is
 * chained through the mask composition and the upsampling in JS. The map is M·u, an unsigned
 * importance in [0, 1].
 */
import type { Case } from "../data/case.js";
import { fail } from "../errors.js";
import type { Model } from "../model/model.js";
import type { TargetSpec } from "../target/target.js";
import { areaDownsample, resizeBilinear, resizeBilinearTranspose } from "../util/bilinear.js";
import type { Attribution } from "./attribution.js";
import { BASELINE_OPTIONS, type BaselineOptions, baselineInput, explainGradient, type GradientEnv } from "./gradients.js";
import { IG_DEFAULTS } from "./ig.js";
import { defineMethod } from "./methods.js";
import { fillOf, int, num } from "./options.js";
import type { RunOptions } from "./run.js";

export interface MisureOptions extends RunOptions {
  /** optimisation steps (default 100) */
  iterations?: number;
  /** AdamW learning rate (default 0.01) */
  lr?: number;
  /** weight of mean(mask) in the loss (default 0.1) */
  l1?: number;
  /** side of the optimised low-resolution mask (default 32) */
  maskSize?: number;
  /** Dice that makes the dilated region sufficient (default 0.9) */
  sufficiency?: number;
  baseline?: Partial<BaselineOptions>;
}

export const MISURE_DEFAULTS = { iterations: 100, lr: 0.01, l1: 0.1, maskSize: 32, sufficiency: 0.9, weightDecay: 0.01, init: 0.5 };

/** OpenCV getStructuringElement(MORPH_ELLIPSE, (7, 7)). */
const ELLIPSE7 = ["0001000", "0111110", "1111111", "1111111", "1111111", "0111110", "0001000"];
const OFFSETS: [number, number][] = ELLIPSE7.flatMap((row, dy) =>
  [...row].flatMap((c, dx) => (c === "1" ? [[dy - 3, dx - 3] as [number, number]] : [])),
);

export function dilate(mask: Uint8Array, H: number, W: number): Uint8Array {
  const out = new Uint8Array(mask.length);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      if (!mask[y * W + x]) continue;
      for (const [dy, dx] of OFFSETS) {
        const yy = y + dy,
          xx = x + dx;
        if (yy >= 0 && yy < H && xx >= 0 && xx < W) out[yy * W + xx] = 1;
      }
    }
  }
  return out;
}

/** The soft-Dice loss of the module docstring and its derivative w.r.t. each RoI probability. */
export function diceLoss(p: ArrayLike<number>, y: ArrayLike<number>): { loss: number; grad: Float64Array } {
  const n = p.length;
  let P = 0,
    I = 0,
    Y = 0;
  for (let i = 0; i < n; i++) {
    P += p[i];
    I += p[i] * y[i];
    Y += y[i];
  }
  const Q = n - P,
    Z = n - Y,
    J = Z - P + I;
  const df = P + Y + 1,
    db = Q + Z + 1;
  const loss = 1 - (2 * I + 1) / df + 1 - (2 * J + 1) / db;
  const grad = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const gf = -(2 * y[i] * df - (2 * I + 1)) / (df * df);
    const gb = -(-2 * (1 - y[i]) * db + (2 * J + 1)) / (db * db);
    grad[i] = gf + gb;
  }
  return { loss, grad };
}

export function explainMisure(model: Model, kase: Case, target: TargetSpec, opts: MisureOptions = {}): Promise<Attribution> {
  const o = { ...MISURE_DEFAULTS, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) } as typeof MISURE_DEFAULTS &
    MisureOptions;
  const b: BaselineOptions = { ...IG_DEFAULTS.baseline, ...opts.baseline };
  if (!Number.isInteger(o.iterations) || o.iterations < 0) fail(`--iterations must be a non-negative integer, got ${o.iterations}`);
  if (!Number.isInteger(o.maskSize) || o.maskSize < 1) fail(`--mask-size must be a positive integer, got ${o.maskSize}`);
  // The mask is upsampled to the input: a finer mask than the input has no meaning (and no memory).
  const largest = Math.max(model.height, model.width, MISURE_DEFAULTS.maskSize);
  if (o.maskSize > largest)
    fail(
      `--mask-size ${o.maskSize} is larger than the model's ${model.height}x${model.width} input`,
      `use at most ${largest} (default ${MISURE_DEFAULTS.maskSize})`,
    );
  if (!(o.lr > 0)) fail(`--lr must be positive, got ${o.lr}`, "use --lr 0.01");
  if (!(o.l1 >= 0)) fail(`--l1 must be >= 0, got ${o.l1}`, "use --l1 0.1");
  if (!(o.sufficiency > 0 && o.sufficiency <= 1)) fail(`--sufficiency must be a Dice in (0, 1], got ${o.sufficiency}`, "use --sufficiency 0.9");
  const settings = {
    iterations: o.iterations,
    lr: o.lr,
    l1: o.l1,
    maskSize: o.maskSize,
    sufficiency: o.sufficiency,
    weightDecay: o.weightDecay,
    init: o.init,
    kernel: "ellipse 7x7",
    fillKind: b.kind,
    fill: b.value,
    sigma: b.sigma,
  };
  return explainGradient(model, kase, target, opts, "misure", settings, (env) => misure(env, o, b));
}

async function misure(env: GradientEnv, o: typeof MISURE_DEFAULTS, b: BaselineOptions) {
  const { model } = env;
  const H = model.height,
    W = model.width,
    plane = H * W,
    C = model.channels;
  const t = model.card.output.threshold;
  const roi = env.target.region.pixels;
  const x = env.input;
  const { input: base, describe } = await baselineInput(model, env.kase, b);
  // The explained target: the model's own prediction inside the RoI.
  const T = new Uint8Array(plane);
  let tCount = 0;
  for (const p of roi) if (env.probAt(env.baseOutput, 0, p) > t) (T[p] = 1), tCount++;
  if (tCount === 0)
    fail(
      `the model predicts no foreground inside the RoI (${env.target.region.describe()}), and MiSuRe explains a predicted region`,
      "move the RoI onto the predicted structure",
    );
  const y = Float64Array.from(roi, (p) => T[p]);
  const compose = (mask: ArrayLike<number>, dst: Float32Array) => {
    for (let c = 0; c < C; c++)
      for (let p = 0; p < plane; p++) {
        const i = c * plane + p;
        dst[i] = base[i] + mask[p] * (x[i] - base[i]);
      }
  };
  const roiDice = (data: Float32Array, slot: number) => {
    let inter = 0,
      sp = 0;
    roi.forEach((p, i) => {
      if (env.probAt(data, slot, p) > t) {
        sp++;
        inter += y[i];
      }
    });
    return (2 * inter) / (sp + tCount + 1e-10);
  };

  // Stage 1: dilate until sufficient, evaluating a batch of successive dilations per call. Its
  // passes are not known in advance: at worst every mask up to the whole image (the kernel holds a
  // 5x5 square, so each dilation grows the mask by 2 px in every direction).
  const worstMasks = Math.ceil((Math.max(H, W) - 1) / 2) + 1;
  const stage2 = 2 * o.iterations + 1; // a forward and a forward/backward pass per step, and the final forward
  env.plan(undefined, 1 + worstMasks + stage2);
  env.stage("misure: sufficient region", worstMasks);
  let masks = 0;
  let support: Uint8Array | undefined;
  let dilations = 0,
    sufficientDice = NaN;
  let current: Uint8Array = T;
  let full = false;
  while (!support) {
    const batch: Uint8Array[] = [];
    while (batch.length < env.batchSize && !full) {
      batch.push(current);
      full = current.every((v) => v === 1);
      current = dilate(current, H, W);
    }
    const dice = await env.forward(batch, (m, dst) => compose(m, dst), roiDice);
    masks += batch.length;
    const k = dice.findIndex((d) => d >= o.sufficiency);
    if (k >= 0) {
      support = batch[k];
      dilations += k;
      sufficientDice = dice[k];
    } else if (full) {
      support = batch[batch.length - 1];
      dilations += batch.length - 1;
      sufficientDice = dice[batch.length - 1];
    } else dilations += batch.length;
  }
  env.plan(1 + masks + stage2);
  let supportArea = 0;
  for (const v of support) supportArea += v;

  // Stage 2: optimise the low-resolution mask.
  const s = o.maskSize;
  const init = new Float64Array(plane);
  for (let p = 0; p < plane; p++) init[p] = T[p] ? 1 : support[p] ? o.init : 0;
  const m = areaDownsample(init, H, W, s, s);
  const m1 = new Float64Array(s * s),
    m2 = new Float64Array(s * s);
  const session = await env.session({ batchSize: 1 });
  const xin = new Float32Array(C * plane);
  const effMask = new Float32Array(plane);
  const losses: number[] = [];
  const evaluate = async (): Promise<{ loss: number; dice: number; seed: Float64Array }> => {
    const u = resizeBilinear(m, s, s, H, W);
    for (let p = 0; p < plane; p++) effMask[p] = support![p] * u[p];
    compose(effMask, xin);
    let loss = 0,
      dice = 0;
    let seed: Float64Array = new Float64Array(0);
    await env.forward(
      [0],
      (_, dst) => dst.set(xin),
      (data, slot) => {
        const probs = Float64Array.from(roi, (p) => env.probAt(data, slot, p));
        const d = diceLoss(probs, y);
        let mean = 0;
        for (let p = 0; p < plane; p++) mean += u[p];
        loss = d.loss + (o.l1 * mean) / plane;
        dice = roiDice(data, slot);
        seed = d.grad;
        return 0;
      },
    );
    return { loss, dice, seed };
  };
  env.stage("misure: optimisation", stage2);
  const ch = model.card.output.channel;
  for (let it = 0; it < o.iterations; it++) {
    const { loss, seed } = await evaluate();
    losses.push(loss);
    const gradU = new Float64Array(plane).fill(o.l1 / plane);
    await session.run(
      [0],
      (_, f) => {
        f.input.set(xin);
        roi.forEach((p, i) => (f.seed[ch * plane + p] = seed[i]));
      },
      (slot) => {
        for (let c = 0; c < C; c++) {
          for (let p = 0; p < plane; p++) {
            if (!support![p]) continue;
            const i = c * plane + p;
            gradU[p] += slot.inputGrad[i] * (x[i] - base[i]);
          }
        }
      },
    );
    const g = resizeBilinearTranspose(gradU, s, s, H, W);
    // AdamW (PyTorch semantics): decoupled weight decay, bias-corrected moments.
    const step = it + 1;
    for (let i = 0; i < s * s; i++) {
      m[i] *= 1 - o.lr * o.weightDecay;
      m1[i] = 0.9 * m1[i] + 0.1 * g[i];
      m2[i] = 0.999 * m2[i] + 0.001 * g[i] * g[i];
      const mh = m1[i] / (1 - 0.9 ** step),
        vh = m2[i] / (1 - 0.999 ** step);
      m[i] = Math.min(1, Math.max(0, m[i] - (o.lr * mh) / (Math.sqrt(vh) + 1e-8)));
    }
  }
  const fin = await evaluate();
  losses.push(fin.loss);
  const map = Float32Array.from(effMask);
  let maskMean = 0;
  for (const v of map) maskMean += v;
  maskMean /= plane;
  return {
    map,
    signed: false,
    valueUnits: "MiSuRe mask in [0, 1]: how much of the pixel the minimally sufficient input keeps",
    notes: [
      `MiSuRe target: the model's prediction inside the RoI (${tCount} px); removed content = ${describe}`,
      `stage 1: ${dilations} dilation(s) (7x7 ellipse) to a sufficient region of ${supportArea} px, RoI Dice ${sufficientDice.toFixed(3)}${sufficientDice < o.sufficiency ? ` < ${o.sufficiency} even with the whole image` : ""}`,
      `stage 2: ${o.iterations} AdamW steps on a ${s}x${s} mask: loss ${losses[0].toFixed(4)} -> ${fin.loss.toFixed(4)}; RoI Dice of the masked input ${fin.dice.toFixed(3)}; mean mask ${maskMean.toFixed(4)}`,
    ],
    settings: { dilations, supportArea, lossHistory: losses, finalDice: fin.dice },
  };
}

export const misureMethod = defineMethod({
  name: "misure",
  family: "gradient",
  summary:
    "MiSuRe: dilate the predicted RoI region until sufficient (Dice >= 0.9), then optimise a 32x32 mask (100 AdamW steps, lr 0.01, L1 0.1) for a minimally sufficient input (unsigned)",
  cost: "1 + dilations + iterations + 1 forward, iterations forward/backward (100)",
  options: {
    iterations: int({ description: "optimisation steps of the mask", default: MISURE_DEFAULTS.iterations, min: 0 }),
    lr: num({ description: "AdamW learning rate of the mask", default: MISURE_DEFAULTS.lr, min: 0, minExclusive: true }),
    l1: num({ description: "weight of the mask's mean (sparsity) in the loss", default: MISURE_DEFAULTS.l1, min: 0 }),
    maskSize: int({ description: "side of the optimised low-resolution mask", default: MISURE_DEFAULTS.maskSize, min: 1 }),
    sufficiency: num({
      description: "RoI Dice (0..1) at which the dilated region is sufficient",
      default: MISURE_DEFAULTS.sufficiency,
      min: 0,
      max: 1,
      minExclusive: true,
    }),
    ...BASELINE_OPTIONS,
  },
  explain: (ctx, o) =>
    explainMisure(ctx.model, ctx.kase, ctx.target, {
      ...ctx.run,
      iterations: o.iterations,
      lr: o.lr,
      l1: o.l1,
      maskSize: o.maskSize,
      sufficiency: o.sufficiency,
      baseline: fillOf(o),
    }),
});
