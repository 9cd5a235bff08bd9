/**
 * Zoo check: every shipped model is run with onnxruntime-node on its dataset's test split and its
 * Dice must match the model card (and so the table in models/README.md) within 0.01.
 * Needs ../shared/data (or SEGCAUSE_DATA); skipped with a message when it is absent.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadCase } from "../src/data/case.js";
import { casesInSplits, readManifest } from "../src/data/manifest.js";
import { Model } from "../src/model/model.js";
import { Runner } from "../src/model/runner.js";
import { binarize } from "../src/target/outcome.js";

const ROOT = join(import.meta.dirname, "..");
const DATA = process.env.SEGCAUSE_DATA ?? join(ROOT, "..", "shared", "data");
const MODELS = join(ROOT, "models");
const models = existsSync(MODELS)
  ? readdirSync(MODELS)
      .filter((f) => f.endsWith(".onnx"))
      .sort()
  : [];

function dice(p: Uint8Array, g: Uint8Array): number {
  let inter = 0,
    sp = 0,
    sg = 0;
  for (let i = 0; i < p.length; i++) {
    sp += p[i];
    sg += g[i];
    inter += p[i] & g[i];
  }
  return sp + sg === 0 ? 1 : (2 * inter) / (sp + sg + 1e-10);
}

describe("model zoo", () => {
  it("ships at least one model, each with a model card", () => {
    expect(models.length).toBeGreaterThan(0);
    for (const m of models) expect(existsSync(join(MODELS, `${m}.json`)), `${m}.json`).toBe(true);
  });

  for (const file of models) {
    const card = JSON.parse(readFileSync(join(MODELS, `${file}.json`), "utf8"));
    const manifest = join(DATA, card.dataset, "manifest.json");
    const haveData = existsSync(manifest);
    if (!haveData) console.warn(`zoo check of ${file} skipped: ${manifest} not found (set SEGCAUSE_DATA to the shared data folder)`);
    it.skipIf(!haveData)(`${file}: test Dice matches its card within 0.01`, async () => {
      const model = await Model.load(join(MODELS, file));
      const runner = new Runner(model, { batchSize: 4 });
      const cases = casesInSplits(readManifest(manifest), ["test"]);
      const dices: number[] = [];
      for (const c of cases) {
        const kase = await loadCase(model, c.image, c.mask);
        let pred: Uint8Array | undefined;
        await runner.evaluate(
          [0],
          (_, dst) => model.preprocess(kase.image, dst),
          (d) => {
            pred = binarize(model.card.output, model.outputLayout!, d, 0);
            return 0;
          },
        );
        dices.push(dice(pred!, kase.mask!));
      }
      await model.release();
      const mean = dices.reduce((s, v) => s + v, 0) / dices.length;
      expect(dices.length).toBe(card.metrics.n);
      expect(Math.abs(mean - card.metrics.dice_mean), `measured ${mean.toFixed(4)} vs card ${card.metrics.dice_mean}`).toBeLessThan(0.01);
      const table = readFileSync(join(MODELS, "README.md"), "utf8");
      const row = table.split("\n").find((l) => l.includes(`\`${file}\``));
      expect(row, `models/README.md has a row for ${file}`).toBeDefined();
      expect(row).toContain(card.metrics.dice_mean.toFixed(3));
    });
  }
});
