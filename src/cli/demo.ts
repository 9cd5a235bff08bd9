/** `segcause demo`: the main job on the bundled default (a shipped model, a shippable sample). */
import { Command } from "commander";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { fail } from "../errors.js";
import { PDCR_DEFAULTS } from "../explain/pdcr.js";
import { describeResult, runExplain, METHODS, type MethodName } from "./explain.js";
import { int, num, oneOf } from "./options.js";

export const PACKAGE_ROOT = fileURLToPath(new URL("../../", import.meta.url));

interface DemoConfig {
  description: string;
  model: string;
  image: string;
  mask?: string;
  bank: string;
  roi: [number, number, number, number];
}

export function demoConfig(): DemoConfig {
  const path = join(PACKAGE_ROOT, "samples", "demo.json");
  try {
    return JSON.parse(readFileSync(path, "utf8")) as DemoConfig;
  } catch {
    fail(`the bundled demo configuration ${path} is missing`, "reinstall segcause");
  }
}

export function demoCommand(): Command {
  return new Command("demo")
    .description("explain the bundled sample with the bundled model (no arguments needed)")
    .option("--out <dir>", "output folder", "segcause-demo")
    .option("--method <name>", `method: ${METHODS.join(", ")}`, oneOf("method", METHODS), "pdcr")
    .option("--block <px>", "block size", int("block"))
    .option("--screen <n>", "screening draws per block", int("screen"), PDCR_DEFAULTS.screen)
    .option("--samples <n>", "draws per block passing the screen", int("samples"), PDCR_DEFAULTS.samples)
    .option("--seed <n>", "random seed", int("seed"), PDCR_DEFAULTS.seed)
    .option("--tau <t>", "tau in Dice points", num("tau"))
    .option("--batch-size <n>", "inputs per forward call", int("batch-size"))
    .option("--no-progress", "no progress bar on stderr")
    .action(async (f: { out: string; method: MethodName; block?: number; screen: number; samples: number; seed: number; tau?: number; batchSize?: number; progress: boolean }) => {
      const cfg = demoConfig();
      const at = (p: string) => join(PACKAGE_ROOT, p);
      process.stdout.write(`segcause demo: ${cfg.description}\n`);
      const r = await runExplain({
        model: at(cfg.model),
        image: at(cfg.image),
        mask: cfg.mask ? at(cfg.mask) : undefined,
        roi: cfg.roi.join(","),
        bank: at(cfg.bank),
        out: f.out,
        method: f.method,
        block: f.block,
        screen: f.screen,
        samples: f.samples,
        tau: f.tau,
        seed: f.seed,
        outcome: "dice",
        reference: "auto",
        batchSize: f.batchSize,
        progress: f.progress,
      });
      process.stdout.write(describeResult(r) + "\n");
      process.stdout.write(
        `  open ${join(f.out, "overlay.png")}: red blocks held up the segmentation of the green RoI, blue blocks worked against it\n`,
      );
    });
}
