/**
 * evaluate --incremental: the block methods' cells (zero, occlusion, pdcr, pdcr-superpixel) computed on
 * incremental passes (RoI-cropped or changed-region) equal those of full passes on a tiny local conv model; `off` (the default) keeps every
 * cell key as it was, `on` keys the block methods' cells only and records the executor in their provenance.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import "../src/explain/catalog.js";
import { runEvaluation } from "../src/evaluate/benchmark.js";
import { INCREMENTAL_METHODS, incrementalKey } from "../src/evaluate/cell-key.js";
import { type EvaluateConfig, PROTOCOL_DEFAULTS } from "../src/evaluate/protocol.js";
import { parseRoiSpec } from "../src/evaluate/rois.js";
import { cellDir, listCells } from "../src/evaluate/store.js";
import { getMethod } from "../src/explain/catalog.js";
import { segcause } from "./helpers/cli.js";
import { localConvModel, tmp, writeImage, writeMask, writeModel } from "./helpers/tiny.js";

const METHODS = ["zero", "occlusion", "pdcr", "pdcr-superpixel", "saliency"];
let dir: string, modelPath: string, manifest: string;

beforeAll(async () => {
  dir = tmp("segcause-eval-incr-");
  modelPath = writeModel(dir, "local.onnx", localConvModel());
  const cases = [];
  for (let i = 0; i < 4; i++) {
    await writeImage(dir, `img${i}.png`, (y, x) => (x < 14 + i ? 200 : 40) + ((x * 29 + y * 17 + 13 * i) % 50));
    await writeMask(dir, `img${i}_mask.png`, (_y, x) => x < 14 + i);
    cases.push({ id: `img${i}`, image: `img${i}.png`, mask: `img${i}_mask.png`, split: i < 2 ? "train" : "test" });
  }
  manifest = join(dir, "manifest.json");
  writeFileSync(manifest, JSON.stringify({ name: "tiny", cases }));
});

function config(out: string, extra: Partial<EvaluateConfig> = {}): EvaluateConfig {
  return {
    models: [modelPath],
    dataset: manifest,
    split: "test",
    methods: METHODS.map((name) => ({ name, options: name.startsWith("pdcr") ? { samples: 8 } : {} })),
    rois: parseRoiSpec("boundary:8x1"),
    bankSplits: ["train"],
    bankPatchSize: 8,
    out,
    seed: 0,
    protocol: { ...PROTOCOL_DEFAULTS, steps: 4, fills: ["zero"], radius: 8, rankUnits: { kind: "pixel" } },
    threads: 1,
    ...extra,
  };
}

const cellsOf = (out: string) => new Map(listCells(out).map((c) => [`${c.id.image}/${c.method}`, c]));
const file = (out: string, c: ReturnType<typeof listCells>[0], name: string) => readFileSync(join(cellDir(out, c.id, c.method), name));

describe("evaluate --incremental", () => {
  it("on: the block methods' cells equal full passes', keyed apart and with the executor in their provenance; off keeps the keys of a run without the setting", async () => {
    const [before, off, on] = ["before", "off", "on"].map((n) => join(dir, `out-${n}`));
    await runEvaluation(config(before));
    await runEvaluation(config(off, { incremental: "off" }));
    const s = await runEvaluation(config(on, { incremental: "on" }));
    expect(s.computed).toBe(2 * METHODS.length);
    const [b, f, n] = [before, off, on].map(cellsOf);
    expect(n.size).toBe(2 * METHODS.length);
    for (const [id, cell] of n) {
      const full = f.get(id)!;
      // off: the same key as a run that never heard of the setting
      expect(full.key, id).toBe(b.get(id)!.key);
      // identical maps and curve metrics (all but the wall time)
      expect(file(on, cell, "map.npy").equals(file(off, full, "map.npy")), id).toBe(true);
      const { wall_s: _w1, ...metrics } = cell.metrics;
      const { wall_s: _w2, ...fullMetrics } = full.metrics;
      expect(metrics, id).toEqual(fullMetrics);
      const meta = JSON.parse(file(on, cell, "attribution.json").toString()) as { provenance: { settings: Record<string, unknown> } };
      const offMeta = JSON.parse(file(off, full, "attribution.json").toString()) as { provenance: { settings: Record<string, unknown> } };
      expect(offMeta.provenance.settings.incremental, id).toBeUndefined();
      if (INCREMENTAL_METHODS.has(cell.method)) {
        expect(cell.key, id).not.toBe(full.key);
        expect(meta.provenance.settings.incremental, id).toMatchObject({ executor: expect.stringMatching(/^(roi-crop|changed-region)$/) });
      } else {
        expect(cell.key, id).toBe(full.key);
        expect(meta.provenance.settings.incremental, id).toBeUndefined();
      }
    }
  });

  it("keys only the block methods, and only when on or auto", () => {
    expect(incrementalKey(getMethod("pdcr"), "on")).toEqual({ incremental: "on" });
    expect(incrementalKey(getMethod("occlusion"), "auto")).toEqual({ incremental: "auto" });
    expect(incrementalKey(getMethod("zero"), "off")).toEqual({});
    expect(incrementalKey(getMethod("pdcr"), undefined)).toEqual({});
    expect(incrementalKey(getMethod("saliency"), "on")).toEqual({});
  });

  it("the CLI refuses an unknown mode in one line", () => {
    const r = segcause(
      "evaluate",
      "--models",
      modelPath,
      "--dataset",
      manifest,
      "--methods",
      "zero",
      "--incremental",
      "maybe",
      "--out",
      join(dir, "cli"),
    );
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/incremental/);
  });
});
