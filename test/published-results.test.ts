/**
 * The published benchmark (docs/results) is re-derived from its own cells: every statistics table and
 * every generated sentence in the docs must equal what the code computes from docs/results/cells.csv
 * and strategies/maps.csv. After a statistics or prose-generator change, regenerate with
 * `UPDATE_PUBLISHED=1 npx vitest run test/published-results.test.ts` and review the diff.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import {
  budgetClaims,
  generatedBlocks,
  rankingClaims,
  replaceBlock,
  type StrategyMapRow,
  shortClaims,
  strategyClaims,
  strategyRowsFromCsv,
} from "../src/evaluate/claims.js";
import { type PublishedStatistics, publishedStatistics } from "../src/evaluate/published.js";
import { settingsDifference } from "../src/evaluate/run-record.js";
import { markdownPages } from "./helpers/docs.js";

const ROOT = join(import.meta.dirname, "..");
const DIR = join(ROOT, "docs", "results");
const UPDATE = process.env.UPDATE_PUBLISHED === "1";

describe("published benchmark", () => {
  let stats: PublishedStatistics, strategies: StrategyMapRow[], fills: string[], radius: number;
  beforeAll(() => {
    stats = publishedStatistics(DIR);
    strategies = strategyRowsFromCsv(readFileSync(join(DIR, "strategies", "maps.csv"), "utf8"));
    fills = (JSON.parse(readFileSync(join(DIR, "run.json"), "utf8")) as { protocol: { fills: string[] } }).protocol.fills;
    radius = (JSON.parse(readFileSync(join(DIR, "strategies", "strategies.json"), "utf8")) as { settings: { radius: number } }).settings.radius;
    if (UPDATE) for (const [name, text] of Object.entries(stats.files)) writeFileSync(join(DIR, name), text);
  });

  it("every statistics table equals what the code computes from cells.csv", () => {
    for (const [name, text] of Object.entries(stats.files)) {
      // compared as text: a difference shows the first differing line
      const published = readFileSync(join(DIR, name), "utf8").split("\n");
      const want = text.split("\n");
      const first = want.findIndex((l, i) => l !== published[i]);
      expect(first === -1 ? null : `line ${first + 1}: ${published[first]?.slice(0, 200)} ≠ ${want[first].slice(0, 200)}`, name).toBe(null);
      expect(published.length, name).toBe(want.length);
    }
  });

  it("every generated sentence in the docs equals its generator on the published numbers", () => {
    const generators: Record<string, () => string> = {
      "results-ranking": () => rankingClaims(stats.summary, fills),
      "results-strategies": () => strategyClaims(strategies, radius),
      "results-short": () => shortClaims(stats.summary, fills, strategies),
      "results-budgets": () => budgetClaims(stats.summary),
    };
    const seen = new Set<string>();
    for (const file of markdownPages(ROOT)) {
      let md = readFileSync(file, "utf8");
      // results-* blocks; architecture-* blocks are checked by test/architecture-doc.test.ts
      for (const b of generatedBlocks(md).filter((x) => x.name.startsWith("results-"))) {
        expect(generators[b.name], `${file}: unknown generated block ${b.name}`).toBeDefined();
        seen.add(b.name);
        const want = generators[b.name]();
        if (UPDATE) md = replaceBlock(md, b.name, want);
        else expect(b.body, `${file}: block ${b.name}`).toBe(want);
      }
      if (UPDATE) writeFileSync(file, md);
    }
    expect([...seen].sort()).toEqual(Object.keys(generators).sort());
  });

  it("the published run.json (no --rank-units recorded: pixel units) agrees with a rerun under its settings and names what another protocol changes", () => {
    const run = JSON.parse(readFileSync(join(DIR, "run.json"), "utf8")) as {
      protocol: Record<string, unknown>;
      methods: { name: string; options: Record<string, unknown> }[];
    };
    expect(run.protocol.rankUnits).toBeUndefined();
    const rerun = { protocol: { ...run.protocol, rankUnits: "pixel", topArea: [], controls: ["random"] }, methods: run.methods };
    expect(settingsDifference(run, rerun)).toEqual([]);
    expect(settingsDifference(run, { ...rerun, protocol: { ...rerun.protocol, rankUnits: "block:16" } })).toEqual([
      '--rank-units: "pixel" there, "block:16" here',
    ]);
  });
});
