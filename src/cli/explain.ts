/** `segcause explain`: a causal map for one image, model and RoI. */
import { Command } from "commander";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { fail } from "../errors.js";
import { loadCase, type Case } from "../data/case.js";
import { loadMask } from "../data/image.js";
import { PatchBank } from "../data/patchbank.js";
import { Model } from "../model/model.js";
import { explainPdcr, explainZero, PDCR_DEFAULTS } from "../explain/pdcr.js";
import { explainOcclusion, OCCLUSION_DEFAULTS } from "../explain/occlusion.js";
import type { FillKind } from "../explain/interventions.js";
import type { Attribution } from "../explain/attribution.js";
import { Region, parseRoi } from "../target/roi.js";
import { OUTCOMES, type OutcomeName } from "../target/outcome.js";
import type { TargetSpec } from "../target/target.js";
import { writeAttribution, type WrittenOutputs } from "../report/write.js";
import { stderrProgress } from "../util/progress.js";
import { Checkpoint } from "../explain/checkpoint.js";
import { addCardFlags, cardOverrides, int, num, oneOf, type CardFlags } from "./options.js";

export const METHODS = ["pdcr", "zero", "occlusion"] as const;
export type MethodName = (typeof METHODS)[number];

/** One line per method for `segcause methods` and the help text. */
export const METHOD_SUMMARIES: Record<MethodName, string> = {
  pdcr: "PdCR (paper): 8x8 blocks replaced by natural patches from a bank, screened ATE (S=3, N=50, tau=0.02); 1 + 3*blocks + 50*passing passes",
  zero: "paper's ablation: each 8x8 block set to black once, tau=0.02; 1 + blocks passes",
  occlusion: "occlusion: 16x16 window every 8 px filled with a constant (--fill-kind mean|blur too), overlaps averaged; 1 + windows passes",
};

export interface ExplainFlags extends CardFlags {
  model: string;
  image: string;
  mask?: string;
  roi?: string;
  roiMask?: string;
  bank?: string;
  out: string;
  method: MethodName;
  block?: number;
  stride?: number;
  screen: number;
  samples: number;
  tau?: number;
  seed: number;
  outcome: OutcomeName;
  reference: "auto" | "ground-truth" | "prediction";
  batchSize?: number;
  progress: boolean;
  fill?: number;
  fillKind?: FillKind;
  sigma?: number;
}

export interface ExplainResult {
  attribution: Attribution;
  written: WrittenOutputs;
  kase: Case;
}

/** Runs one explanation from flag values; shared by `explain` and `demo`. */
export async function runExplain(f: ExplainFlags): Promise<ExplainResult> {
  if (!f.roi && !f.roiMask) fail("no RoI given", "pass --roi row,col,height,width (model-input pixels) or --roi-mask mask.png");
  if (f.method === "pdcr" && !f.bank) fail("PdCR needs a patch bank of natural patches", "build one with `segcause bank build --images <dir> --model <model> --out bank.scbank`, then pass --bank");
  const model = await Model.load(f.model, { card: f.card, overrides: cardOverrides(f), threads: f.threads });
  try {
    const kase = await loadCase(model, f.image, f.mask);
    const roi: TargetSpec["roi"] = f.roiMask ? { mask: await loadMask(f.roiMask, model.height, model.width) } : parseRoi(f.roi!);
    const target: TargetSpec = { roi, outcome: f.outcome, reference: f.reference };
    const bank = f.method === "pdcr" ? await PatchBank.load(f.bank!) : undefined;
    const run = {
      seed: f.seed,
      batchSize: f.batchSize,
      onProgress: f.progress ? stderrProgress() : undefined,
      checkpointPath: join(f.out, ".checkpoint.json"),
    };
    await mkdir(f.out, { recursive: true });
    if (f.method !== "occlusion" && f.stride !== undefined) fail(`--stride is only for --method occlusion`, "PdCR and zero use a partition into blocks");
    let attribution: Attribution;
    if (f.method === "pdcr") attribution = await explainPdcr(model, kase, target, { ...run, bank: bank!, blockSize: f.block, screen: f.screen, samples: f.samples, tau: f.tau });
    else if (f.method === "zero") attribution = await explainZero(model, kase, target, { ...run, blockSize: f.block, tau: f.tau, fill: f.fill });
    else attribution = await explainOcclusion(model, kase, target, { ...run, window: f.block, stride: f.stride, tau: f.tau, fill: f.fillKind, value: f.fill, sigma: f.sigma });
    const region = "mask" in roi ? Region.mask(roi.mask, model.height, model.width) : undefined;
    const written = await writeAttribution(attribution, kase, f.out, region);
    await Checkpoint.open(run.checkpointPath, null).remove();
    return { attribution, written, kase };
  } finally {
    await model.release();
  }
}

export function describeResult(r: ExplainResult): string {
  const s = r.written.stats;
  const a = r.attribution;
  const top = [...a.units].filter((u) => u.effect < 0).sort((x, y) => x.effect - y.effect).slice(0, 3);
  const lines = [
    `${a.method} map of ${r.kase.id}: RoI rows ${a.roi.row}..${a.roi.row + a.roi.height - 1}, cols ${a.roi.col}..${a.roi.col + a.roi.width - 1}`,
    `  outcome: ${a.outcome} inside the RoI vs the ${a.reference === "ground-truth" ? "ground-truth mask" : "model's own unperturbed prediction"}; base = ${a.baseOutcome.toFixed(3)}`,
    `  ${s.units} blocks: ${s.negative} supported the RoI prediction (red, ATE<0), ${s.positive} hurt it (blue, ATE>0), ${s.zero} had no effect`,
    `  effects range ${s.minEffect.toFixed(3)} .. ${s.maxEffect.toFixed(3)} Dice points; ${a.forwardPasses} forward passes in ${(a.wallMs / 1000).toFixed(1)} s`,
  ];
  if (top.length) lines.push(`  strongest support: ${top.map((u) => `block (${u.row},${u.col}) ${u.effect.toFixed(2)}±${(1.96 * u.stderr).toFixed(2)}`).join(", ")}`);
  for (const n of a.notes) lines.push(`  note: ${n}`);
  lines.push(`  wrote ${Object.keys(r.written.files).join(", ")} to ${r.written.dir}`);
  return lines.join("\n");
}

export function explainCommand(): Command {
  const cmd = new Command("explain")
    .description("causal map of which image blocks drive the model's segmentation inside a region of interest")
    .requiredOption("--model <file>", "ONNX segmentation model")
    .requiredOption("--image <file>", "image to explain (PNG/JPEG)")
    .option("--mask <file>", "ground-truth mask (0/255 or 0/1 PNG); without it Dice is measured against the model's own prediction")
    .option("--roi <r,c,h,w>", "RoI rectangle in model-input pixels: row,col,height,width (or row,col,size)")
    .option("--roi-mask <file>", "RoI as a mask image instead of a rectangle")
    .option("--bank <file>", "patch bank built with `segcause bank build` (needed by pdcr)")
    .requiredOption("--out <dir>", "output folder")
    .option("--method <name>", `method: ${METHODS.join(", ")} (see \`segcause methods\`)`, oneOf("method", METHODS), "pdcr")
    .option("--block <px>", `block (window) size (default ${PDCR_DEFAULTS.blockSize}; occlusion ${OCCLUSION_DEFAULTS.window})`, int("block"))
    .option("--stride <px>", `occlusion window step (default ${OCCLUSION_DEFAULTS.stride})`, int("stride"))
    .option("--screen <n>", "screening draws S per block", int("screen"), PDCR_DEFAULTS.screen)
    .option("--samples <n>", "fresh draws N per block passing the screen", int("samples"), PDCR_DEFAULTS.samples)
    .option("--tau <t>", `effects with |ATE| below tau (outcome units) are set to 0 (default ${PDCR_DEFAULTS.tau}; occlusion ${OCCLUSION_DEFAULTS.tau})`, num("tau"))
    .option("--seed <n>", "random seed", int("seed"), PDCR_DEFAULTS.seed)
    .option("--outcome <name>", `RoI outcome: ${OUTCOMES.join(", ")}`, oneOf("outcome", OUTCOMES), "dice")
    .option("--reference <kind>", "auto, ground-truth or prediction", oneOf("reference", ["auto", "ground-truth", "prediction"] as const), "auto")
    .option("--fill <v>", "pixel value for --method zero and the constant occlusion fill (default 0, black)", num("fill"))
    .option("--fill-kind <kind>", "occlusion fill: constant, mean (image mean) or blur", oneOf("fill-kind", ["constant", "mean", "blur"] as const))
    .option("--sigma <px>", `Gaussian sigma of the blur fill (default ${OCCLUSION_DEFAULTS.sigma})`, num("sigma"))
    .option("--batch-size <n>", "inputs per forward call", int("batch-size"))
    .option("--no-progress", "no progress bar on stderr");
  addCardFlags(cmd);
  return cmd.action(async (opts: ExplainFlags) => {
    const r = await runExplain(opts);
    process.stdout.write(describeResult(r) + "\n");
  });
}

export function methodsCommand(): Command {
  return new Command("methods").description("list the explanation methods").action(() => {
    for (const m of METHODS) process.stdout.write(`${m.padEnd(10)} ${METHOD_SUMMARIES[m]}\n`);
  });
}
