import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { loadCase } from "../src/data/case.js";
import type { RasterImage } from "../src/data/image.js";
import type { Attribution } from "../src/explain/attribution.js";
import { getMethod, methodNames } from "../src/explain/catalog.js";
import { enumeratedCoalition, shapleyCoalition } from "../src/explain/coalitions.js";
import { explainKernelShap } from "../src/explain/kernelshap.js";
import { explainLime } from "../src/explain/lime.js";
import { cholesky, choleskyInverse, choleskySolve } from "../src/explain/linalg.js";
import { resolveOptions } from "../src/explain/methods.js";
import { slic, superpixelPartition } from "../src/explain/partition.js";
import { explainPdcrSuperpixel } from "../src/explain/pdcr-superpixel.js";
import { explainRise, riseMask } from "../src/explain/rise.js";
import { Model } from "../src/model/model.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import { Region } from "../src/target/roi.js";
import type { TargetSpec } from "../src/target/target.js";
import { flatBank, regionMeanModel, SIZE, tmp, writeImage, writeModel } from "./helpers/tiny.js";

// Known structure (as in the PdCR tests): the prediction everywhere is foreground iff the mean of
// rows 0-15, cols 16-31 (four 8x8 blocks) exceeds 0.8; the image is a flat 230. Blacking out any
// one of the four blocks flips the RoI: removal effect -100 exactly there, 0 elsewhere.
const CAUSAL = [
  { row: 0, col: 16 },
  { row: 0, col: 24 },
  { row: 8, col: 16 },
  { row: 8, col: 24 },
];
const isCausal = (u: { row: number; col: number }) => CAUSAL.some((c) => c.row === u.row && c.col === u.col);
const ROI = { row: 16, col: 0, height: 8, width: 8 };
const BLACK = { partition: "grid" as const, block: 8, fillKind: "constant" as const, fill: 0 };

/** 100·(Σ_j w_j mean(block_j) + bias) everywhere, no sigmoid: the mean-prob outcome is linear in the blocks kept. */
function linearBlockModel(weights: number[], bias: number): Uint8Array {
  const g = new GraphBuilder("linear-blocks");
  const x = g.input("image", ["N", 3, SIZE, SIZE]);
  const w = new Float32Array(3 * SIZE * SIZE);
  weights.forEach((wt, j) => {
    const r = Math.floor(j / 4) * 8,
      c = (j % 4) * 8;
    for (let y = r; y < r + 8; y++) for (let xx = c; xx < c + 8; xx++) w[y * SIZE + xx] = wt / 64;
  });
  const conv = g.node("Conv", [x, g.constant([1, 3, SIZE, SIZE], w), g.constant([1], [bias])], { kernel_shape: [SIZE, SIZE] });
  const out = g.node("Add", [conv, g.constant([1, 1, SIZE, SIZE], new Float32Array(SIZE * SIZE))], {}, ["mask"]);
  g.output(out, ["N", 1, SIZE, SIZE]);
  return g.toBytes();
}
// one weight per 8x8 block in raster order (block 8 is the RoI's and is never removed)
const LIN_W = [0.02, -0.01, 0.03, 0.015, 0.0, 0.025, -0.02, 0.01, 0.05, 0.005, -0.015, 0.012, 0.018, -0.006, 0.009, 0.001];

let dir: string, image: string, causalModel: string, softModel: string, linearModel: string;

beforeAll(async () => {
  dir = tmp();
  image = await writeImage(dir, "flat.png", () => 230);
  causalModel = writeModel(dir, "causal.onnx", regionMeanModel([{ row: 0, col: 16, height: 16, width: 16, weight: 50 }], -40));
  // foreground iff the causal region's mean exceeds 0.4: RISE's half-kept masks flip it about half the time
  softModel = writeModel(dir, "soft.onnx", regionMeanModel([{ row: 0, col: 16, height: 16, width: 16, weight: 50 }], -20));
  linearModel = writeModel(dir, "linear.onnx", linearBlockModel(LIN_W, 0.3));
});

async function withModel<T>(path: string, fn: (m: Model, k: Awaited<ReturnType<typeof loadCase>>) => Promise<T>, linear = false): Promise<T> {
  const m = await Model.load(path, { threads: 1, overrides: linear ? { outputKind: "probabilities" } : {} });
  try {
    return await fn(m, await loadCase(m, image));
  } finally {
    await m.release();
  }
}

const target: TargetSpec = { roi: ROI };
const linTarget: TargetSpec = { roi: ROI, outcome: "mean-prob" };
/** the linear model's coefficient of "block j kept" on the mean-prob outcome (x100, input 230/255) */
const linCoef = (u: { row: number; col: number }) => 100 * LIN_W[(u.row / 8) * 4 + u.col / 8] * (230 / 255);

describe("linear algebra", () => {
  it("Cholesky solves and inverts a symmetric positive definite system", () => {
    const A = Float64Array.from([4, 2, 0.6, 2, 5, 1, 0.6, 1, 3]);
    const L = cholesky(A, 3)!;
    const x = choleskySolve(L, 3, [1, 2, 3]);
    for (let i = 0; i < 3; i++) expect(A[i * 3] * x[0] + A[i * 3 + 1] * x[1] + A[i * 3 + 2] * x[2]).toBeCloseTo([1, 2, 3][i], 12);
    const inv = choleskyInverse(L, 3);
    for (let i = 0; i < 3; i++)
      for (let j = 0; j < 3; j++) {
        let s = 0;
        for (let k = 0; k < 3; k++) s += A[i * 3 + k] * inv[k * 3 + j];
        expect(s).toBeCloseTo(i === j ? 1 : 0, 12);
      }
    expect(cholesky(Float64Array.from([1, 2, 2, 1]), 2)).toBeUndefined();
  });
});

describe("SLIC superpixels", () => {
  // two flat halves (dark left, bright right) with a deterministic texture
  const img: RasterImage = { width: 48, height: 40, channels: 3, data: new Uint8Array(48 * 40 * 3) };
  for (let y = 0; y < 40; y++)
    for (let x = 0; x < 48; x++) for (let c = 0; c < 3; c++) img.data[(y * 48 + x) * 3 + c] = (x < 20 ? 40 : 200) + ((x * 7 + y * 13 + c * 5) % 11);

  it("is a partition: every pixel in exactly one superpixel, labels 0..count-1, deterministic", () => {
    for (const colorSpace of ["lab", "rgb"] as const) {
      const a = slic(img, { segments: 20, compactness: 10, colorSpace });
      const b = slic(img, { segments: 20, compactness: 10, colorSpace });
      expect(Array.from(a.labels)).toEqual(Array.from(b.labels));
      const seen = new Set(a.labels);
      expect(seen.size).toBe(a.count);
      expect(Math.min(...seen)).toBe(0);
      expect(Math.max(...seen)).toBe(a.count - 1);
      expect(a.count).toBeGreaterThanOrEqual(10);
      expect(a.count).toBeLessThanOrEqual(40);
      // superpixels follow the colour edge at x = 20
      for (let y = 0; y < 40; y++)
        for (let x = 0; x < 48; x++)
          if (x !== 19 && x !== 20) {
            const l = a.labels[y * 48 + x];
            const other = x < 20 ? a.labels.findIndex((v, p) => v === l && p % 48 >= 20) : a.labels.findIndex((v, p) => v === l && p % 48 < 20);
            expect(other, `label ${l} straddles the edge`).toBe(-1);
          }
    }
  });

  it("units cut the RoI out and cover every other pixel exactly once", () => {
    const region = Region.rect({ row: 10, col: 15, height: 12, width: 10 }, 40, 48);
    const p = superpixelPartition(img, region, { segments: 30, compactness: 10 });
    const hits = new Uint8Array(40 * 48);
    for (const u of p.units) {
      for (const px of u.pixels!) {
        hits[px]++;
        const y = Math.floor(px / 48),
          x = px % 48;
        expect(y >= u.row && y < u.row + u.height && x >= u.col && x < u.col + u.width).toBe(true);
      }
    }
    for (let i = 0; i < hits.length; i++) expect(hits[i]).toBe(region.inside[i] ? 0 : 1);
    expect(p.units.map((u) => u.index)).toEqual(p.units.map((_, i) => i));
  });

  it("a flat image gives the grid cells", () => {
    const flat: RasterImage = { width: 32, height: 32, channels: 3, data: new Uint8Array(32 * 32 * 3).fill(230) };
    const { labels, count } = slic(flat, { segments: 16, compactness: 10 });
    expect(count).toBe(16);
    for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) expect(labels[y * 32 + x]).toBe(Math.floor(y / 8) * 4 + Math.floor(x / 8));
  });

  it("rejects bad settings", () => {
    expect(() => slic(img, { segments: 1, compactness: 10 })).toThrow(/segments must be an integer in 2\.\./);
    expect(() => slic(img, { segments: 20, compactness: 0 })).toThrow(/compactness must be a positive number/);
  });
});

describe("coalition samplers", () => {
  it("KernelSHAP pairs are complements; enumeration lists every proper coalition once", () => {
    for (let i = 0; i < 20; i += 2) {
      const a = shapleyCoalition(3, i, 9),
        b = shapleyCoalition(3, i + 1, 9);
      const k = a.reduce((s, v) => s + v, 0);
      expect(k).toBeGreaterThanOrEqual(1);
      expect(k).toBeLessThanOrEqual(8);
      for (let j = 0; j < 9; j++) expect(a[j] + b[j]).toBe(1);
    }
    const all = new Set(Array.from({ length: 14 }, (_, i) => enumeratedCoalition(i, 4).join("")));
    expect(all.size).toBe(14);
    expect(all.has("0000") || all.has("1111")).toBe(false);
  });

  it("RISE masks are smooth, in [0,1], and a pure function of (seed, index)", () => {
    const a = new Float32Array(32 * 32),
      b = new Float32Array(32 * 32);
    riseMask(1, 5, 32, 32, 4, 0.5, a);
    riseMask(1, 5, 32, 32, 4, 0.5, b);
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Math.min(...a)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...a)).toBeLessThanOrEqual(1);
    for (let y = 0; y < 32; y++) for (let x = 1; x < 32; x++) expect(Math.abs(a[y * 32 + x] - a[y * 32 + x - 1])).toBeLessThanOrEqual(0.126);
    // mean over many masks ≈ p
    let s = 0;
    for (let i = 0; i < 400; i++) {
      riseMask(2, i, 32, 32, 4, 0.5, a);
      s += a.reduce((t, v) => t + v, 0) / a.length;
    }
    expect(s / 400).toBeGreaterThan(0.45);
    expect(s / 400).toBeLessThan(0.55);
  });
});

describe("KernelSHAP", () => {
  it("exact Shapley values when every coalition fits the budget: the causal cell gets -100", async () => {
    const a = await withModel(causalModel, (m, k) => explainKernelShap(m, k, target, { ...BLACK, block: 16 }));
    expect(a.units).toHaveLength(3); // the 16x16 cell holding the RoI is not explained
    expect(a.roiCells).toBe(1);
    for (const u of a.units) expect(u.effect).toBeCloseTo(u.row === 0 && u.col === 16 ? -100 : 0, 6);
    expect(a.forwardPasses).toBe(1 + 1 + 6);
    expect(a.notes.some((n) => n.startsWith("exact Shapley values: all 6 coalitions"))).toBe(true);
  });

  it("sampled: efficiency holds exactly and the four causal blocks share the effect", async () => {
    const a = await withModel(causalModel, (m, k) => explainKernelShap(m, k, target, { ...BLACK, coalitions: 2000 }));
    expect(a.units).toHaveLength(15);
    // f(all) = 100, f(none) = 0 (every block black): Σ effect = f(none) − f(all)
    expect(a.units.reduce((s, u) => s + u.effect, 0)).toBeCloseTo(-100, 9);
    // exact Shapley values: -25 for each of the four interchangeable causal blocks, 0 for the others
    for (const u of a.units) {
      expect(u.stderr).toBeGreaterThan(0);
      expect(u.stderr).toBeLessThan(4);
      expect(Math.abs(u.effect - (isCausal(u) ? -25 : 0)), `${u.row},${u.col}: ${u.effect} ± ${u.stderr}`).toBeLessThan(4 * u.stderr);
    }
    expect(a.forwardPasses).toBe(2 + 2000);
    expect(a.signed).toBe(true);
  });

  it("recovers the coefficients of a model linear in the units, exactly", async () => {
    const a = await withModel(linearModel, (m, k) => explainKernelShap(m, k, linTarget, { ...BLACK, coalitions: 300 }), true);
    for (const u of a.units) expect(-u.effect).toBeCloseTo(linCoef(u), 3);
  });
});

describe("LIME", () => {
  it("recovers the coefficients of a model linear in the units (ridge 0 exactly, ridge 1 closely)", async () => {
    const exact = await withModel(linearModel, (m, k) => explainLime(m, k, linTarget, { ...BLACK, coalitions: 300, ridge: 0 }), true);
    for (const u of exact.units) expect(-u.effect).toBeCloseTo(linCoef(u), 3);
    const shrunk = await withModel(linearModel, (m, k) => explainLime(m, k, linTarget, { ...BLACK, coalitions: 1000 }), true);
    for (const u of shrunk.units) expect(Math.abs(-u.effect - linCoef(u))).toBeLessThan(0.02 * Math.abs(linCoef(u)) + 0.01);
    // the first coalition is the image itself: no forward pass for it
    expect(shrunk.forwardPasses).toBe(1000);
  });

  it("the causal blocks get the strongest support, the others about 0", async () => {
    const a = await withModel(causalModel, (m, k) => explainLime(m, k, target, BLACK));
    const causal = a.units.filter(isCausal),
      other = a.units.filter((u) => !isCausal(u));
    expect(Math.max(...causal.map((u) => u.effect))).toBeLessThan(-3);
    for (const u of other) expect(Math.abs(u.effect), `null ${u.row},${u.col}`).toBeLessThan(Math.min(...causal.map((c) => Math.abs(c.effect))) / 2);
    expect(a.units.every((u) => u.stderr > 0)).toBe(true);
  });
});

describe("RISE", () => {
  it("supports the causal region and leaves distant pixels near 0", async () => {
    const a = await withModel(softModel, (m, k) => explainRise(m, k, target, { masks: 1500, cells: 4, fillKind: "constant" }));
    expect(a.unitKind).toBe("pixel");
    expect(a.forwardPasses).toBe(1501);
    const mean = (pred: (y: number, x: number) => boolean) => {
      let s = 0,
        n = 0;
      for (let y = 0; y < 32; y++)
        for (let x = 0; x < 32; x++)
          if (pred(y, x)) {
            s += a.map[y * 32 + x];
            n++;
          }
      return s / n;
    };
    const causal = mean((y, x) => y < 16 && x >= 16);
    const far = mean((y, x) => y >= 26 && x >= 8);
    expect(causal).toBeLessThan(-15);
    expect(Math.abs(far)).toBeLessThan(Math.abs(causal) / 5);
    expect(a.map[ROI.row * 32 + ROI.col]).toBe(0);
    expect(Number.isNaN(a.stderrMap[ROI.row * 32 + ROI.col])).toBe(true);
  });

  it("resumes from a checkpoint with the identical map", async () => {
    const ck = join(dir, "rise-ck.json");
    const opts = { masks: 300, cells: 4, checkpointPath: ck };
    const full = await withModel(softModel, (m, k) => explainRise(m, k, target, opts));
    const saved = JSON.parse(readFileSync(ck, "utf8"));
    saved.samples["0"] = saved.samples["0"].slice(0, 120);
    writeFileSync(ck, JSON.stringify(saved));
    const resumed = await withModel(softModel, (m, k) => explainRise(m, k, target, opts));
    expect(Array.from(resumed.map)).toEqual(Array.from(full.map));
    expect(resumed.notes.some((n) => n.startsWith("resumed from checkpoint: 120 samples"))).toBe(true);
  });
});

describe("PdCR on superpixels", () => {
  it("on a flat image the superpixels are the 8x8 blocks and the map is PdCR's known answer", async () => {
    const bank = flatBank([20, 30, 10]);
    const sp = await withModel(causalModel, (m, k) => explainPdcrSuperpixel(m, k, target, { bank, segments: 16 }));
    expect(sp.unitKind).toBe("superpixel");
    expect(sp.units).toHaveLength(15);
    expect(sp.roiCells).toBe(1);
    for (const u of sp.units) {
      expect(u.pixels).toHaveLength(64);
      expect(u.effect).toBeCloseTo(isCausal(u) ? -100 : 0, 6);
    }
    for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) expect(sp.map[y * 32 + x]).toBe(y < 16 && x >= 16 ? -100 : 0);
    expect(sp.forwardPasses).toBe(1 + 3 * 15 + 50 * 4);
    expect(sp.provenance.settings).toMatchObject({ partition: "superpixels", segments: 16, screen: 3, samples: 50, tau: 0.02 });
  });
});

describe("every perturbation method", () => {
  const runs: Record<string, (m: Model, k: Awaited<ReturnType<typeof loadCase>>, batchSize: number) => Promise<Attribution>> = {
    rise: (m, k, batchSize) => explainRise(m, k, target, { masks: 60, cells: 4, batchSize, seed: 3 }),
    lime: (m, k, batchSize) => explainLime(m, k, target, { ...BLACK, coalitions: 60, batchSize, seed: 3 }),
    kernelshap: (m, k, batchSize) => explainKernelShap(m, k, target, { ...BLACK, coalitions: 60, batchSize, seed: 3 }),
    "pdcr-superpixel": (m, k, batchSize) =>
      explainPdcrSuperpixel(m, k, target, { bank: flatBank([20, 240, 20, 100]), segments: 16, samples: 10, batchSize, seed: 3 }),
  };
  for (const [name, run] of Object.entries(runs)) {
    it(`${name}: batch size 1 and 8 give the same map bit for bit`, async () => {
      const [a, b] = await withModel(softModel, async (m, k) => [await run(m, k, 1), await run(m, k, 8)]);
      expect(Buffer.from(a.map.buffer).equals(Buffer.from(b.map.buffer))).toBe(true);
      expect(a.provenance.runner.batchSize).toBe(1);
      expect(b.provenance.runner.batchSize).toBe(8);
      expect(a.provenance.seed).toBe(3);
    });
  }

  it("run through the registry with their declared options (what the CLI does)", async () => {
    const given: Record<string, Record<string, unknown>> = {
      rise: { masks: 20, cells: 4 },
      lime: { coalitions: 20, segments: 8, fillKind: "blur", sigma: 2 },
      kernelshap: { coalitions: 40, partition: "grid", block: 8, fillKind: "constant", fill: 10 },
      "pdcr-superpixel": { segments: 16, screen: 2, samples: 5, tau: 0.5 },
    };
    await withModel(softModel, async (model, kase) => {
      for (const [name, g] of Object.entries(given)) {
        const def = getMethod(name);
        const options = resolveOptions(def, g);
        const a = await def.explain({ model, kase, target, run: { seed: 1 }, bank: flatBank([20, 240]), options });
        expect(a.method).toBe(name);
        expect(a.map).toHaveLength(32 * 32);
        expect(a.signed).toBe(true);
        for (const [k, v] of Object.entries(g))
          if (k !== "fillKind" && k !== "fill" && k !== "sigma" && k !== "partition")
            expect(JSON.stringify(a.provenance.settings), `${name} ${k}`).toContain(`"${k}":${JSON.stringify(v)}`);
      }
    });
  });

  it("are registered with declared options, and bad options give clear errors", async () => {
    for (const n of ["rise", "lime", "kernelshap", "pdcr-superpixel"]) expect(methodNames()).toContain(n);
    expect(resolveOptions(getMethod("rise"), {})).toMatchObject({ masks: 4000, cells: 8, keepProbability: 0.5, fillKind: "mean" });
    expect(resolveOptions(getMethod("lime"), {})).toMatchObject({ segments: 100, coalitions: 1000, kernelWidth: 0.25, ridge: 1, fillKind: "mean" });
    expect(() => resolveOptions(getMethod("lime"), { masks: 10 })).toThrow(/--masks is not an option of method lime/);
    await withModel(softModel, async (m, k) => {
      await expect(explainRise(m, k, target, { masks: 0 })).rejects.toThrow(/masks must be an integer >= 2/);
      await expect(explainRise(m, k, target, { keepProbability: 1 })).rejects.toThrow(/keep probability must be in \(0, 1\)/);
      await expect(explainRise(m, k, target, { cells: 1 })).rejects.toThrow(/cells must be an integer >= 2/);
      await expect(explainLime(m, k, target, { segments: 1 })).rejects.toThrow(/segments must be an integer in 2\.\./);
      await expect(explainLime(m, k, target, { coalitions: 0 })).rejects.toThrow(/coalitions must be an integer >= 2/);
      await expect(explainLime(m, k, target, { kernelWidth: 0 })).rejects.toThrow(/kernel width must be > 0/);
      await expect(explainKernelShap(m, k, target, { ...BLACK, coalitions: 20 })).rejects.toThrow(/20 coalitions are too few for 15 units/);
      await expect(explainPdcrSuperpixel(m, k, target, { bank: flatBank([20]), segments: 1 })).rejects.toThrow(
        /segments must be an integer in 2\.\./,
      );
    });
  });
});
