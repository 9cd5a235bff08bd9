/**
 * RISE and the gradient methods through sliding windows, against independent computations: the
 * stitched outcome computed naively here (every window of the whole volume run, weighted, summed,
 * divided, then the card's activation), its finite-difference gradient, and RISE's scores of it.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { toBinary } from "@bufbuild/protobuf";
import { ModelProtoSchema } from "onnx-buf";
import { beforeAll, describe, expect, it } from "vitest";
import { writeNifti } from "../src/data/volume/nifti-write.js";
import { buildVolumeBank } from "../src/data/volume/volume-bank.js";
import { loadVolumeCase, type VolumeCase } from "../src/data/volume/volume-case.js";
import { FAST_SCHEDULE } from "../src/explain/adaptive.js";
import { getMethod } from "../src/explain/catalog.js";
import { inputGradientMap } from "../src/explain/gradients.js";
import { resolveOptions } from "../src/explain/methods.js";
import { riseMask3d } from "../src/explain/rise-masks.js";
import { MaskAverage } from "../src/explain/surrogates.js";
import { costLine, plannedCost } from "../src/explain/volume/cost.js";
import {
  explainVolumeBlocks,
  type ResolvedVolumeTarget,
  type VolumeAttribution,
  type VolumeBlockSpec,
  volumeTarget,
} from "../src/explain/volume/engine.js";
import { explainVolumeGradient } from "../src/explain/volume/gradients.js";
import { RunBound, RunStopped } from "../src/explain/volume/run-bound.js";
import { importanceMap, slidingWindows } from "../src/explain/volume/windows.js";
import { VolumeModel } from "../src/model/volume-model.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import { readModelFile } from "../src/onnx/model-file.js";
import type { VolumeRoiBox } from "../src/target/volume-roi.js";
import { type ProgressEvent, RunProgress, type RunStatus } from "../src/util/progress.js";
import { segcause } from "./helpers/cli.js";
import { tmp, writeModel } from "./helpers/tiny.js";

const PATCH = 8;
// The volume: 16 (x) by 12 (y) by 12 (z): windows at 0 and 4 along z and y, 0, 4 and 8 along x (12 in all).
const [SX, SY, SZ] = [16, 12, 12];
const CELLS = SX * SY * SZ;
// z 3..5, y 3..5, x 2..4: the 8 windows starting at x 0 or 4 overlap it, the 4 at x 8 do not
const ROI: VolumeRoiBox = { z: 3, y: 3, x: 2, depth: 3, height: 3, width: 3 };
const AFFINE = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];

type Head = "sigmoid" | "softmax" | "probabilities";

function card(placement: unknown, box: [number, number, number], head: Head) {
  const output =
    head === "probabilities"
      ? { kind: "probabilities", activation: "sigmoid", channel: 0 }
      : head === "sigmoid"
        ? { kind: "logits", activation: "sigmoid", channel: 0 }
        : { kind: "logits", activation: "softmax", channel: 1 };
  return {
    input: {
      name: "image",
      layout: "ncdhw",
      depth: box[0],
      height: box[1],
      width: box[2],
      channels: "gray",
      normalisation: { kind: "zscore" },
      placement,
      spacing: [1, 1, 1],
    },
    output: { name: "mask", layout: "ncdhw", threshold: 0.5, ...output },
  };
}
const SLIDING = { kind: "sliding", overlap: 0.5, weighting: "gaussian", fill: 0 };

/** A 3x3x3 conv with zero padding (so a window's border reads zeros: the stitch matters), `channels` outputs. */
function convModel(channels: number, sigmoid: boolean): Uint8Array {
  const g = new GraphBuilder("conv-3d");
  const x = g.input("image", ["N", 1, "D", "H", "W"]);
  const w = Float32Array.from({ length: channels * 27 }, (_, i) => 0.6 * Math.sin(2.3 * i + 0.7));
  const b = Float32Array.from({ length: channels }, (_, c) => 0.2 - 0.3 * c);
  const conv = g.node("Conv", [x, g.constant([channels, 1, 3, 3, 3], w), g.constant([channels], b)], {
    kernel_shape: [3, 3, 3],
    pads: [1, 1, 1, 1, 1, 1],
  });
  g.output(g.node(sigmoid ? "Sigmoid" : "Identity", [conv], {}, ["mask"]), ["N", channels, "D", "H", "W"]);
  return g.toBytes();
}

let dir: string;
let image: string;
const models: Record<Head, string> = {} as Record<Head, string>;

beforeAll(async () => {
  dir = tmp();
  models.sigmoid = writeModel(dir, "sig.onnx", convModel(1, false), card(SLIDING, [PATCH, PATCH, PATCH], "sigmoid"));
  models.softmax = writeModel(dir, "soft.onnx", convModel(2, false), card(SLIDING, [PATCH, PATCH, PATCH], "softmax"));
  models.probabilities = writeModel(dir, "prob.onnx", convModel(1, true), card(SLIDING, [PATCH, PATCH, PATCH], "probabilities"));
  image = join(dir, "v.nii.gz");
  await writeNifti(image, {
    dims: [SX, SY, SZ],
    affine: AFFINE,
    data: Float32Array.from({ length: CELLS }, (_, i) => Math.sin(i * 0.37) * 5 + (i % 5)),
  });
});

async function withCase<T>(
  modelPath: string,
  fn: (m: VolumeModel, k: VolumeCase, t: ResolvedVolumeTarget) => Promise<T>,
  roi: VolumeRoiBox = ROI,
): Promise<T> {
  const m = await VolumeModel.load(modelPath);
  try {
    const k = await loadVolumeCase(m, image);
    const t = await volumeTarget(m, k, { roi, outcome: "mean-prob", reference: "prediction" }, 3);
    return await fn(m, k, t);
  } finally {
    await m.release();
  }
}

/**
 * The stitched outcome computed naively: every window of the whole padded volume run, weighted by
 * the Gaussian importance map, summed and divided per voxel; the card's activation; S = the
 * class probability summed over the RoI's voxels. Returns S and the stitched outputs (before the activation).
 */
async function naive(m: VolumeModel, k: VolumeCase, x: Float32Array, roiCells: Uint32Array): Promise<{ S: number; stitched: Float64Array[] }> {
  const [bx, by] = k.placement.box;
  const C = m.outputLayout.channels;
  const weights = importanceMap([PATCH, PATCH, PATCH], "gaussian");
  const P = PATCH ** 3;
  const acc = new Float64Array(C * x.length);
  const wsum = new Float64Array(x.length);
  for (const w of slidingWindows(k.placement as never)) {
    const patch = new Float32Array(P);
    const at = (z: number, y: number, xx: number) => ((w.z + z) * by + w.y + y) * bx + w.x + xx;
    for (let z = 0; z < PATCH; z++)
      for (let y = 0; y < PATCH; y++) for (let xx = 0; xx < PATCH; xx++) patch[(z * PATCH + y) * PATCH + xx] = x[at(z, y, xx)];
    const out = (await m.runOne(patch)).data as Float32Array;
    for (let z = 0; z < PATCH; z++)
      for (let y = 0; y < PATCH; y++)
        for (let xx = 0; xx < PATCH; xx++) {
          const l = (z * PATCH + y) * PATCH + xx;
          wsum[at(z, y, xx)] += weights[l];
          for (let c = 0; c < C; c++) acc[c * x.length + at(z, y, xx)] += weights[l] * out[c * P + l];
        }
  }
  const ch = m.card.output.channel;
  const stitched = Array.from({ length: C }, () => new Float64Array(x.length));
  let S = 0;
  for (const v of roiCells) {
    const z = Array.from({ length: C }, (_, c) => (stitched[c][v] = acc[c * x.length + v] / wsum[v]));
    let p: number;
    if (m.card.output.kind === "probabilities") p = z[ch];
    else if (C === 1) p = 1 / (1 + Math.exp(-z[0]));
    else p = Math.exp(z[ch]) / z.reduce((s, zc) => s + Math.exp(zc), 0);
    S += p;
  }
  return { S, stitched };
}

/** dS/dx of the model input on the volume's grid, through the gradient layer (the box is the volume: no padding here). */
async function gradient(m: VolumeModel, k: VolumeCase, t: ResolvedVolumeTarget): Promise<VolumeAttribution> {
  return explainVolumeGradient(m, k, t, { batchSize: 3 }, "gradient", {}, async (env) => ({
    map: await inputGradientMap(env, (g) => Float32Array.from(g)),
    signed: true,
    valueUnits: "dS/dx",
  }));
}

describe("gradients through sliding windows", () => {
  for (const head of ["sigmoid", "softmax", "probabilities"] as Head[])
    it(`equal the finite-difference gradient of the naively stitched outcome (${head})`, async () => {
      await withCase(models[head], async (m, k, t) => {
        expect(k.placement.box).toEqual([SX, SY, SZ]);
        const a = await gradient(m, k, t);
        // voxels in the RoI, on window borders, in overlaps, and beyond every window over the RoI
        const probes = [
          [4, 4, 3],
          [3, 3, 2],
          [5, 5, 4],
          [2, 4, 1],
          [6, 3, 5],
          [4, 7, 4],
          [4, 4, 8],
          [7, 2, 3],
          [0, 0, 0],
          [4, 4, 14],
        ].map(([z, y, x]) => (z * SY + y) * SX + x);
        let max = 0;
        for (const v of a.map) max = Math.max(max, Math.abs(v));
        const h = 0.01;
        let worst = 0;
        for (const c of probes) {
          const up = Float32Array.from(k.input),
            down = Float32Array.from(k.input);
          up[c] += h;
          down[c] -= h;
          const fd = ((await naive(m, k, up, t.roiCells)).S - (await naive(m, k, down, t.roiCells)).S) / (up[c] - down[c]);
          worst = Math.max(worst, Math.abs(fd - a.map[c]) / max);
          expect(Math.abs(fd - a.map[c]), `voxel ${c}: finite difference ${fd}, gradient ${a.map[c]}`).toBeLessThan(2e-4 * max);
        }
        console.log(
          `${head}: largest |finite difference − gradient| over the probes = ${worst.toExponential(2)} of max |gradient| ${max.toPrecision(3)}`,
        );
        // the voxel beyond every window over the RoI has no gradient at all; the gradient is not trivially 0
        expect(a.map[(4 * SY + 4) * SX + 14]).toBe(0);
        expect(max).toBeGreaterThan(1e-3);
        // S(x) is the naive one; passes: 8 unperturbed windows, 8 to stitch the input, 8 forward/backward
        const gradNote = a.notes.find((n) => n.startsWith("gradient target"))!;
        expect(Number(/S\(x\) = ([\d.e+-]+)\)/.exec(gradNote)![1])).toBeCloseTo((await naive(m, k, k.input, t.roiCells)).S, 4);
        expect([a.forwardPasses, a.backwardPasses]).toEqual([24, 8]);
        expect(a.windows).toEqual({ patch: [8, 8, 8], overlap: 0.5, weighting: "gaussian", total: 12, overRoi: 8 });
      });
    });

  it("IG through windows is complete: its sum is S(baseline) − S(x) of the naive stitch, within the quadrature error", async () => {
    await withCase(models.sigmoid, async (m, k, t) => {
      const def = getMethod("ig");
      const o = resolveOptions(def, { steps: 16 });
      const a = await (await def.volume!.plan({ model: m, kase: k, target: t }, o))({ batchSize: 4 });
      let sum = 0;
      for (const v of a.map) sum += v;
      const baseline = new Float32Array(k.input.length).fill(k.normalise(0));
      const diff = (await naive(m, k, baseline, t.roiCells)).S - (await naive(m, k, k.input, t.roiCells)).S;
      expect(Math.abs(diff)).toBeGreaterThan(0.05);
      expect(Math.abs(sum - diff)).toBeLessThan(0.01 * Math.abs(diff));
      // the unperturbed windows, then per step 8 to stitch and 8 forward/backward, then the baseline's 8
      expect([a.forwardPasses, a.backwardPasses]).toEqual([8 + 16 * 16 + 8, 16 * 8]);
    });
  });

  it("saliency and SmoothGrad without noise give |dS/dx|; Grad-CAM is refused in one line", async () => {
    await withCase(models.softmax, async (m, k, t) => {
      const g = await gradient(m, k, t);
      for (const [method, given] of [
        ["saliency", {}],
        ["smoothgrad", { samples: 2, noise: 0 }],
      ] as const) {
        const def = getMethod(method);
        const a = await (await def.volume!.plan({ model: m, kase: k, target: t }, resolveOptions(def, given)))({ batchSize: 4 });
        expect(Array.from(a.map), method).toEqual(Array.from(g.map, Math.abs));
      }
    });
    expect(getMethod("gradcam").volume!.windows).toBeUndefined();
    expect(getMethod("gradcam").volume!.noWindows).toMatch(/each window has its own feature map/);
  });
});

describe("RISE through sliding windows", () => {
  it("equals RISE on the naively stitched outcome, mask for mask, for a fixed seed", async () => {
    await withCase(models.sigmoid, async (m, k, t) => {
      const masks = 10,
        cells = 3,
        p = 0.5,
        seed = 7;
      const def = getMethod("rise");
      const o = resolveOptions(def, { masks, cells, keepProbability: p });
      const a = await (await def.volume!.plan({ model: m, kase: k, target: t }, o))({ seed, batchSize: 5 });
      // the naive run: each mask blends the volume with its mean (0 after z-scoring) outside the RoI
      const inRoi = new Uint8Array(CELLS);
      for (const c of t.roiCells) inRoi[c] = 1;
      const mask = new Float32Array(CELLS);
      const fill = k.normalise(k.volume.data.reduce((s, v) => s + v, 0) / CELLS);
      const scores: number[] = [];
      for (let i = 0; i < masks; i++) {
        riseMask3d(seed, i, [SZ, SY, SX], cells, p, mask);
        const x = Float32Array.from(k.input, (v, c) => (inRoi[c] ? v : fill + mask[c] * (v - fill)));
        // the outcome (mean probability in the RoI, %) of the stitched logits, read by the run's Target
        const { stitched } = await naive(m, k, x, t.roiCells);
        scores.push(
          t.score(
            Float32Array.from(t.roiCells, (c) => stitched[0][c]),
            0,
          ),
        );
      }
      const mean = scores.reduce((s, v) => s + v, 0) / masks;
      const acc = new MaskAverage(CELLS, p, mean);
      for (let i = 0; i < masks; i++) {
        riseMask3d(seed, i, [SZ, SY, SX], cells, p, mask);
        acc.add(scores[i], mask);
      }
      const { effect } = acc.result();
      // the same scores give the same map, bit for bit
      let differ = 0;
      for (let c = 0; c < CELLS; c++) if (!Object.is(a.map[c], inRoi[c] ? 0 : Math.fround(effect[c]))) differ++;
      expect(differ).toBe(0);
      expect(a.map.some((v) => v !== 0)).toBe(true);
      // 8 windows over the RoI: the unperturbed ones and 8 per mask
      expect(a.forwardPasses).toBe(8 * (1 + masks));
      expect(a.windows).toMatchObject({ total: 12, overRoi: 8 });
      expect((a.provenance.passes as { model: number }).model).toBe(8 * (1 + masks));
    });
  });
});

describe("a volume that fits one window", () => {
  it("gives the same saliency and RISE maps, bit for bit, as a centre card with the same box", async () => {
    const box: [number, number, number] = [SZ, SY, SX];
    const one = writeModel(dir, "one.onnx", convModel(1, false), card(SLIDING, box, "sigmoid"));
    const centre = writeModel(dir, "centre.onnx", convModel(1, false), card({ kind: "centre", fill: 0 }, box, "sigmoid"));
    const maps = async (path: string) =>
      withCase(path, async (m, k, t) => {
        const out: Record<string, VolumeAttribution> = {};
        for (const [method, given] of [
          ["saliency", {}],
          ["rise", { masks: 6, cells: 2 }],
        ] as const) {
          const def = getMethod(method);
          out[method] = await (await def.volume!.plan({ model: m, kase: k, target: t }, resolveOptions(def, given)))({ seed: 2, batchSize: 2 });
        }
        return out;
      });
    const [a, b] = [await maps(one), await maps(centre)];
    for (const method of ["saliency", "rise"]) {
      expect(Array.from(a[method].map), method).toEqual(Array.from(b[method].map));
      expect(a[method].forwardPasses, method).toBe(b[method].forwardPasses);
    }
    expect(Array.from(a.rise.stderrMap)).toEqual(Array.from(b.rise.stderrMap));
  });
});

describe("the progress of RISE and the gradient methods", () => {
  it("ends at the model passes run, through windows and in one box, its plan never below them", async () => {
    const centre = writeModel(dir, "centre-progress.onnx", convModel(1, false), card({ kind: "centre", fill: 0 }, [SZ, SY, SX], "sigmoid"));
    for (const path of [models.sigmoid, centre])
      await withCase(path, async (m, k, t) => {
        for (const [method, given] of [
          ["saliency", {}],
          ["ig", { steps: 3 }],
          ["smoothgrad", { samples: 2 }],
          ["rise", { masks: 5, cells: 2 }],
        ] as const) {
          const statuses: RunStatus[] = [];
          let now = 0;
          const overall = new RunProgress((st) => statuses.push(st), { now: () => (now += 1000) });
          const def = getMethod(method);
          const run = await def.volume!.plan({ model: m, kase: k, target: t }, resolveOptions(def, given));
          const a = await run({ seed: 1, batchSize: 2, onProgress: overall.listener });
          const label = `${method} ${path === centre ? "in one box" : "through windows"}`;
          expect(statuses.at(-1), label).toMatchObject({ done: a.forwardPasses, total: a.forwardPasses, exact: true });
          for (const st of statuses) if (st.bound !== undefined) expect(st.bound, label).toBeGreaterThanOrEqual(a.forwardPasses);
        }
      });
  });
});

describe("box methods through sliding windows count window runs", () => {
  it("--max-passes, the cost line and the progress count model passes (window runs), not samples", async () => {
    await withCase(models.sigmoid, async (m, k, t) => {
      // batch size 1: every session call is one window run
      let calls = 0;
      const run = m.sessions.run.bind(m.sessions);
      m.sessions.run = ((...args: Parameters<typeof run>) => {
        calls++;
        return run(...args);
      }) as typeof run;
      const spec: VolumeBlockSpec = {
        method: "zero",
        block: [4, 4, 4],
        estimator: { screen: 1, samples: 0, tau: 0 },
        intervention: { kind: "constant", value: 0, describe: {} },
        settings: {},
        batchSize: 1,
        checkpointPath: join(dir, "zero-bound.checkpoint.json"),
      };
      const planned = plannedCost(k, t, spec);
      const e = await explainVolumeBlocks(m, k, t, { ...spec, bound: new RunBound({ maxPasses: 20, maxSeconds: 0 }) }).catch((x) => x);
      expect(e).toBeInstanceOf(RunStopped);
      const stopped = e as RunStopped;
      // at most 20 window runs, all of them real; a sample runs at most the 8 windows over the RoI
      expect(stopped.ranPasses).toBe(calls);
      expect(stopped.ranPasses).toBeLessThanOrEqual(20);
      expect(stopped.ranPasses).toBeGreaterThan(20 - 8);
      expect(stopped.keptSamples).toBeLessThan(stopped.ranPasses);
      // stopped because the next sample's windows did not fit in the 20: the pass bound refused, not a time bound
      expect(stopped.bound).toBe("--max-passes 20");
      expect(stopped.describe()).toMatch(/^stopped at --max-passes 20 after/);
      expect(stopped.donePasses).toBe(8 + stopped.ranPasses);
      expect(stopped.describe()).toContain(`${8 + stopped.ranPasses} of ${planned.exact} passes of the map are done`);
      // the rest of the run: its progress plan, stages and passes in window runs
      const events: ProgressEvent[] = [];
      calls = 0;
      const a = await explainVolumeBlocks(m, k, t, { ...spec, onProgress: (ev) => events.push(ev) });
      // counted from the geometry: 8 windows over the RoI, and per box those of them it touches
      const used = slidingWindows(k.placement as never).filter((w) => overlaps(w, ROI));
      const expected = used.length + a.units.reduce((n, u) => n + used.filter((w) => overlaps(w, u)).length, 0);
      expect(used).toHaveLength(8);
      expect(a.forwardPasses).toBe(expected);
      expect(planned.exact).toBe(expected);
      expect(calls).toBe(expected - 8 - stopped.ranPasses);
      expect(costLine(planned, 10)).toContain(`${expected} passes`);
      expect(costLine(planned, 10)).toContain("a pass is one window run: 8 windows over the RoI");
      expect(events.at(-1)!.plan).toEqual({ total: expected, bound: expected });
      const screening = events.filter((ev) => ev.stage === "screening").at(-1)!;
      expect([screening.done, screening.total, screening.resumed]).toEqual([expected - 8, expected - 8, stopped.ranPasses]);
      // a pass bound below the costliest sample's window runs would stop every rerun at once: refused before any sample
      const most = Math.max(...a.units.map((u) => used.filter((w) => overlaps(w, u)).length));
      calls = 0;
      const small = { ...spec, checkpointPath: join(dir, "zero-small.checkpoint.json"), bound: new RunBound({ maxPasses: most - 1, maxSeconds: 0 }) };
      await expect(explainVolumeBlocks(m, k, t, small)).rejects.toThrow(
        `--max-passes ${most - 1} is below the ${most} passes (window runs) one sample of this run needs`,
      );
      expect(calls).toBe(0);
    });
  });
});

describe("the fast schedule through sliding windows", () => {
  it("takes --max-passes in window runs: the map stops within the budget, every window run counted", async () => {
    // a "data set" of two noise volumes for the bank of natural boxes
    const cases = [];
    for (let v = 0; v < 2; v++) {
      const data = Float32Array.from({ length: CELLS }, (_, i) => Math.sin(i * 1.7 + v) * 3);
      await writeNifti(join(dir, `noise${v}.nii.gz`), { dims: [SX, SY, SZ], affine: AFFINE, data });
      cases.push({ id: `noise${v}`, image: `noise${v}.nii.gz`, split: "train" });
    }
    const manifest = join(dir, "noise.json");
    writeFileSync(manifest, JSON.stringify({ name: "noise3d", cases }));
    await withCase(
      models.sigmoid,
      async (m, k, t) => {
        const bank = await buildVolumeBank(manifest, m.card, { box: [4, 4, 4], perVolume: 4, seed: 0, splits: ["train"] });
        let calls = 0;
        const run = m.sessions.run.bind(m.sessions);
        m.sessions.run = ((...args: Parameters<typeof run>) => {
          calls++;
          return run(...args);
        }) as typeof run;
        const spec = (maxPasses: number): VolumeBlockSpec => ({
          method: "pdcr",
          block: [4, 4, 4],
          estimator: { screen: 3, samples: 8, tau: 0.001 },
          // a very close map wanted: rounds go on after the screen until the budget
          adaptive: { ...FAST_SCHEDULE, tau: 0.001, maxSamples: 48, fidelity: 0.001, maxPasses },
          intervention: { kind: "bank", bank },
          settings: {},
          seed: 1,
          batchSize: 1,
        });
        // the screen always completes: its passes are the window runs
        const screen = await explainVolumeBlocks(m, k, t, spec(1));
        expect(screen.forwardPasses).toBe(8 + calls);
        expect(screen.notes).toContain(
          `budget exceeded: the screen alone needed ${screen.forwardPasses} passes (budget 1); it always completes, so every box has an estimate`,
        );
        expect(screen.samples).toBeLessThan(screen.forwardPasses);
        const full = await explainVolumeBlocks(m, k, t, spec(0));
        expect(full.forwardPasses).toBeGreaterThan(screen.forwardPasses + 40);
        // a budget between the two: the rounds stop within it, counted in window runs
        const budget = Math.floor((screen.forwardPasses + full.forwardPasses) / 2);
        calls = 0;
        const a = await explainVolumeBlocks(m, k, t, spec(budget));
        expect(a.forwardPasses).toBe(8 + calls);
        expect(a.forwardPasses).toBeGreaterThan(screen.forwardPasses);
        expect(a.forwardPasses).toBeLessThanOrEqual(budget);
        expect(a.notes.join(" ")).toContain(`pass budget reached: ${a.forwardPasses} of ${budget} passes`);
      }, // a RoI on a box border, so that boxes next to it reach it through the 3x3x3 conv
      { z: 4, y: 4, x: 4, depth: 2, height: 2, width: 2 },
    );
  });
});

/** Whether a window (patch 8) and a box overlap, from the geometry alone. */
function overlaps(
  w: { z: number; y: number; x: number },
  b: { z: number; y: number; x: number; depth: number; height: number; width: number },
): boolean {
  const hit = (lo: number, n: number, at: number) => lo < at + PATCH && lo + n > at;
  return hit(b.z, b.depth, w.z) && hit(b.y, b.height, w.y) && hit(b.x, b.width, w.x);
}

describe("segcause explain through sliding windows", () => {
  it("writes a saliency map with its window passes, and refuses Grad-CAM in one line with the reason", () => {
    const out = join(dir, "cli-saliency");
    const r = segcause("explain", "--model", models.sigmoid, "--image", image, "--roi", "3,3,2,3,3,3", "--method", "saliency", "--out", out);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("24 forward + 8 backward passes");
    const json = JSON.parse(readFileSync(join(out, "map.json"), "utf8"));
    expect(json.windows).toEqual({ patch: [8, 8, 8], overlap: 0.5, weighting: "gaussian", total: 12, overRoi: 8 });
    expect(json.provenance.passes.model).toBe(24);
    const gc = segcause(
      "explain",
      "--model",
      models.sigmoid,
      "--image",
      image,
      "--roi",
      "3,3,2,3,3,3",
      "--method",
      "gradcam",
      "--out",
      join(dir, "cli-gc"),
    );
    expect(gc.code).toBe(1);
    expect(gc.stderr.trim().split("\n")).toHaveLength(1);
    expect(gc.stderr).toMatch(/gradcam does not run over sliding windows \(Grad-CAM weights one feature map's channels.*use --method .*saliency/);
    expect(existsSync(join(dir, "cli-gc", "manifest.json"))).toBe(false);
    // segcause methods says it
    const lines = segcause("methods").stdout.split("\n");
    const line = (m: string) => lines.find((l) => l.startsWith(`${m} `)) ?? "";
    expect(line("gradcam")).toMatch(/volumes: yes \(.*; not through sliding windows\); 2D model slice by slice: no$/);
    for (const m of ["zero", "rise", "saliency", "gradxinput", "ig", "smoothgrad"]) expect(line(m)).not.toContain("not through sliding windows");
  });
});

const HIPPO = resolve("../shared/data/hippocampus");
const MODEL3D = join("models", "volumes", "unet3d-hippocampus.onnx");
const haveData = existsSync(join(HIPPO, "manifest.json"));
if (!haveData) console.log(`skipped: the shipped 3D model through windows needs the hippocampus data set at ${HIPPO}`);

describe.skipIf(!haveData)("the shipped 3D model in 32x48x32 sliding windows on hippocampus_008", () => {
  it("its saliency through 4 windows matches finite differences of the stitched outcome at its strongest voxels; RISE runs, its passes counted", async () => {
    // the shipped network with its input and output declared at a smaller patch (it is fully convolutional)
    const file = readModelFile(MODEL3D);
    const patch = [32, 48, 32];
    for (const v of [file.proto.graph!.input[0], file.proto.graph!.output[0]]) {
      const dims = (v.type!.value.value as { shape: { dim: { value: { case: string; value: unknown } }[] } }).shape.dim;
      patch.forEach((n, a) => (dims[2 + a].value = { case: "dimValue", value: BigInt(n) }));
    }
    const shipped = JSON.parse(readFileSync(`${MODEL3D}.json`, "utf8"));
    const c = { ...shipped, input: { ...shipped.input, depth: 32, height: 48, width: 32, placement: SLIDING } };
    const path = writeModel(tmp(), "unet3d-sliding.onnx", toBinary(ModelProtoSchema, file.proto), c);
    const m = await VolumeModel.load(path);
    try {
      const k = await loadVolumeCase(m, join(HIPPO, "images", "hippocampus_008.nii.gz"));
      const t = await volumeTarget(m, k, { roi: { z: 12, y: 16, x: 14, depth: 6, height: 8, width: 6 }, reference: "prediction" });
      const f = t.forward!;
      expect(f.used.length).toBe(4);
      const g = await gradient(m, k, t);
      expect([g.forwardPasses, g.backwardPasses]).toEqual([12, 4]);
      // S by the windows' own stitch (the naive stitch is checked on the tiny models above)
      const S = async (x: Float32Array) => {
        const st = await f.stitchOf(m.runner(4), x);
        let s = 0;
        for (const v of st.data) s += 1 / (1 + Math.exp(-v));
        return s;
      };
      // the model input is the box; the map is on the volume's grid: the strongest voxels, by their box cell
      const box = Float32Array.from(k.input);
      const [bx, by] = k.placement.box;
      const [ox, oy, oz] = k.placement.offset;
      const [nx, ny] = k.volume.dims;
      const top = Array.from(g.map.keys())
        .sort((a, b) => Math.abs(g.map[b]) - Math.abs(g.map[a]))
        .slice(0, 3);
      const h = 0.005;
      let close = 0;
      for (const v of top) {
        const cell = ((Math.floor(v / (nx * ny)) + oz) * by + (Math.floor(v / nx) % ny) + oy) * bx + (v % nx) + ox;
        const up = Float32Array.from(box),
          down = Float32Array.from(box);
        up[cell] += h;
        down[cell] -= h;
        const fd = ((await S(up)) - (await S(down))) / (up[cell] - down[cell]);
        console.log(`voxel ${v}: gradient ${g.map[v].toPrecision(5)}, central difference ${fd.toPrecision(5)}`);
        if (Math.abs(fd - g.map[v]) <= 0.01 * Math.abs(g.map[v])) close++;
      }
      // a ReLU or MaxPool switch within ±h can move one voxel's difference (docs/volumes.md)
      expect(close).toBeGreaterThanOrEqual(2);
      const def = getMethod("rise");
      const a = await (await def.volume!.plan({ model: m, kase: k, target: t }, resolveOptions(def, { masks: 8, cells: 4 })))({ seed: 1 });
      expect(a.forwardPasses).toBe(4 * 9);
      expect(a.map.some((v) => Number.isFinite(v) && v !== 0)).toBe(true);
    } finally {
      await m.release();
    }
  });
});
