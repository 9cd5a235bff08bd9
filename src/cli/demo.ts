/** `segcause demo`: the main job on the bundled default (a shipped model, a shippable sample). */

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Command } from "commander";
import { PatchBank } from "../data/patchbank.js";
import { fail } from "../errors.js";
import { allMethods, methodNames } from "../explain/catalog.js";
import { readingLine } from "../report/counts.js";
import { SCALE_HELP } from "../report/scale.js";
import { addMethodFlags, describeResult, runExplain } from "./explain.js";
import { addDeviceFlag, intOrAuto, oneOf, seed } from "./options.js";
import { addOutputFlags, emit, humanLine, type OutputFlags, showProgress } from "./output.js";
import { explainJson } from "./summary.js";

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
  const cmd = new Command("demo")
    .description("explain the bundled sample with the bundled model (no arguments needed)")
    .option("--out <dir>", "output folder", "segcause-demo")
    .option("--method <name>", `method: ${methodNames().join(", ")}`, oneOf("method", methodNames()), "pdcr")
    .option("--seed <n>", "random seed", seed(), 0)
    .option("--batch-size <n|auto>", "inputs per forward call (default auto)", intOrAuto("batch-size"))
    .option("--threads <n|auto>", "ONNX Runtime intra-op threads per session (default auto)", intOrAuto("threads"))
    .option("--workers <n|auto>", "concurrent ONNX Runtime sessions (default auto)", intOrAuto("workers"))
    .option("--colour-scale <rule>", `colour scale of heatmap.png and overlay.png: ${SCALE_HELP}`, "max")
    .option("--no-progress", "no progress bar on stderr");
  addDeviceFlag(cmd);
  addOutputFlags(cmd);
  addMethodFlags(cmd, allMethods());
  return cmd.action(
    async (
      f: OutputFlags & {
        out: string;
        method: string;
        seed: number;
        batchSize?: number | "auto";
        threads?: number | "auto";
        workers?: number | "auto";
        progress: boolean;
        [k: string]: unknown;
      },
    ) => {
      const cfg = demoConfig();
      const at = (p: string) => join(PACKAGE_ROOT, p);
      // The description names PdCR and its bank; another method gets the same case without them.
      const def = allMethods().find((m) => m.name === f.method);
      const rest = cfg.description.replace(/^PdCR map/, "");
      const description =
        f.method === "pdcr" ? cfg.description : `${f.method} map${def?.needsBank ? rest : rest.replace(/, with natural patches.*$/, "")}`;
      if (def?.needsBank && def.options.some((o) => o.name === "block") && f.block !== undefined) {
        const P = (await PatchBank.load(at(cfg.bank))).patchSize;
        if (f.block !== P)
          fail(
            `the demo's patch bank holds ${P}x${P} patches, so its ${f.method} blocks are ${P} px`,
            `drop --block, or run \`segcause explain\` with a bank built with \`segcause bank build --patch-size ${String(f.block)}\``,
          );
      }
      humanLine(f, `segcause demo: ${description}`);
      const r = await runExplain({
        ...f,
        progress: showProgress(f),
        model: at(cfg.model),
        image: at(cfg.image),
        mask: cfg.mask ? at(cfg.mask) : undefined,
        roi: cfg.roi.join(","),
        bank: at(cfg.bank),
        outcome: "dice",
        reference: "auto",
      });
      emit(
        f,
        () => `${describeResult(r)}\n  ${readingLine(r.attribution.signed, join(f.out, "overlay.png"), r.attribution.units.length > 0)}`,
        () => ({ ...explainJson(r), format: "segcause.demo-summary/1", description }),
        r.attribution.notes,
      );
    },
  );
}
