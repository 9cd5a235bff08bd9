/** `segcause strategies`: local / global / sequential perceptual strategies from attribution maps. */

import { existsSync } from "node:fs";
import { join } from "node:path";
import { Command } from "commander";
import { fail } from "../errors.js";
import { writeStrategyReport } from "../evaluate/strategies/report.js";
import { STRATEGY_DEFAULTS } from "../evaluate/strategies/stats.js";
import { checkOutputDir, checkOutputFolder, claimOutputDir } from "../util/files.js";
import { int, num } from "./options.js";

interface StrategyFlags {
  maps: string[];
  out: string;
  methods?: string;
  block?: number;
  radius: number;
  rel: number;
  tau?: number;
  gallery: number;
}

export function strategiesCommand(): Command {
  const d = STRATEGY_DEFAULTS;
  return new Command("strategies")
    .description("classify attribution maps (PdCR or any method) as local / global / sequential perceptual strategies and compare models")
    .requiredOption("--maps <dirs...>", "folders written by `segcause evaluate` (their cells/) or `segcause explain`")
    .requiredOption("--out <dir>", "output folder")
    .option("--methods <list>", "only these methods (default: every method found)")
    .option(
      "--block <px>",
      `block grid size (default: each map's own block size; pixel maps take their model's block maps', else ${d.block})`,
      int("block"),
    )
    .option("--radius <blocks>", "local radius r in blocks", int("radius"), d.radius)
    .option("--rel <f>", "blocks with |value| >= rel x the largest are significant (with tau)", num("rel"), d.rel)
    .option("--tau <t>", "absolute significance threshold (default: each map's own tau, 0 if none)", num("tau"))
    .option("--gallery <n>", "example maps per model in the gallery", int("gallery"), 6)
    .action(async (f: StrategyFlags) => {
      checkOutputDir(f.out);
      // evaluate writes a report.html of its own there
      if (existsSync(join(f.out, "cells")) && existsSync(join(f.out, "report.html"))) {
        fail(
          `--out ${f.out} holds the output of \`segcause evaluate\`: the strategy report would overwrite its report.html`,
          `use --out ${join(f.out, "strategies")}`,
        );
      }
      checkOutputFolder(f.out, "strategies");
      const r = await writeStrategyReport(f.maps, f.out, {
        beforeWrite: () => claimOutputDir(f.out, "strategies"),
        methods: f.methods?.split(",").map((s) => s.trim()),
        settings: {
          radius: f.radius,
          rel: f.rel,
          ...(f.block !== undefined ? { block: f.block } : {}),
          ...(f.tau !== undefined ? { tau: f.tau } : {}),
        },
        gallery: f.gallery,
      });
      const counts: Record<string, number> = {};
      for (const m of r.results) counts[m.stats.cls] = (counts[m.stats.cls] ?? 0) + 1;
      if (r.duplicates.length)
        process.stdout.write(
          `note: ${r.duplicates.length} map(s) reached twice (overlapping --maps folders or copies of a cell) counted once, e.g. ${r.duplicates[0]}\n`,
        );
      process.stdout.write(
        `${r.results.length} maps: ${Object.entries(counts)
          .map(([k, v]) => `${v} ${k}`)
          .join(", ")}\nwrote ${r.files.length} files to ${f.out} (report.html, maps.csv, models.csv, model-pairs.csv, strategies.json, plots/)\n`,
      );
    });
}
