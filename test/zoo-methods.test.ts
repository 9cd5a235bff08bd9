/**
 * Every registered method runs on every shipped model (cheap settings: this checks that each
 * method works end to end on real graphs — every op, input size and channel count of the zoo —
 * not the quality of the maps). Uses the first test image of each model's dataset; skipped with a
 * message when ../shared/data is absent.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { boundaryRoi } from "../src/bench/fidelity.js";
import { type Case, loadCase } from "../src/data/case.js";
import { casesInSplits, readManifest } from "../src/data/manifest.js";
import { buildPatchBank } from "../src/data/patchbank.js";
import { allMethods } from "../src/explain/catalog.js";
import { resolveOptions } from "../src/explain/methods.js";
import { Model } from "../src/model/model.js";
import type { RoiRect } from "../src/target/roi.js";

const ROOT = join(import.meta.dirname, "..");
const DATA = process.env.SEGCAUSE_DATA ?? join(ROOT, "..", "shared", "data");
const MODELS = readdirSync(join(ROOT, "models"))
  .filter((f) => f.endsWith(".onnx"))
  .sort();

/**
 * The cheapest settings that still exercise every part of each method. The block methods' blocks are
 * a quarter of the input side (16 blocks: PdCR's one round of 4 draws each is 64 passes), with a bank
 * of that patch size cut from the model's own training split: at the default 8 px a 512 px model has
 * 4,096 blocks, far too many passes for a test (an eighth of the side for PdCR, and 64 px blocks for
 * occlusion and zero, made a 512 px model's three block maps most of this file's time).
 */
const cheap = (side: number): Record<string, Record<string, unknown>> => ({
  pdcr: { block: side / 4, samples: 4, mapNoise: 100 },
  occlusion: { block: side / 4, stride: side / 4 },
  zero: { block: side / 4 },
  rise: { masks: 8 },
  lime: { segments: 12, coalitions: 16 },
  kernelshap: { segments: 12, coalitions: 40 },
  "pdcr-superpixel": { segments: 12, samples: 4 },
  ig: { steps: 2 },
  smoothgrad: { samples: 2 },
  misure: { iterations: 2 },
});

const haveData = existsSync(join(DATA, "ph2", "manifest.json"));
if (!haveData) console.warn(`zoo-methods: skipped, the shared datasets are not in ${DATA} (set SEGCAUSE_DATA)`);

describe.skipIf(!haveData)("every method on every shipped model", () => {
  for (const file of MODELS) {
    it(file, { timeout: 600_000 }, async () => {
      const dataset = (JSON.parse(readFileSync(join(ROOT, "models", `${file}.json`), "utf8")) as { dataset: string }).dataset;
      const model = await Model.load(join(ROOT, "models", file), { threads: 2 });
      try {
        let kase: Case | undefined;
        let roi: RoiRect | undefined;
        for (const c of casesInSplits(readManifest(join(DATA, dataset)), ["test"])) {
          kase = await loadCase(model, c.image, c.mask);
          roi = boundaryRoi(kase, model.height, model.width, Math.round(model.height / 8));
          if (roi) break;
        }
        expect(roi).toBeDefined();
        const block = model.height / 4;
        const donors = casesInSplits(readManifest(join(DATA, dataset)), ["train"])
          .slice(0, 4)
          .map((c) => c.image);
        const bank = await buildPatchBank(donors, {
          height: model.height,
          width: model.width,
          filter: model.card.input.resize,
          patchSize: block,
          perImage: 8,
        });
        for (const def of allMethods()) {
          const options = resolveOptions(def, cheap(model.height)[def.name] ?? {});
          const a = await def.explain({
            model,
            kase: kase!,
            target: { roi: roi! },
            run: { seed: 0, batchSize: 2 },
            bank: def.needsBank ? bank : undefined,
            options,
          });
          expect(a.method, def.name).toBe(def.name);
          expect(a.map.length, def.name).toBe(model.height * model.width);
          expect(
            a.map.every((v) => Number.isFinite(v)),
            `${def.name}: finite map`,
          ).toBe(true);
          expect(a.forwardPasses, def.name).toBeGreaterThan(0);
        }
      } finally {
        await model.release();
      }
    });
  }
});
