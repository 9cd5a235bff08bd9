/**
 * The fast schedule with a zero-fill prior (--prior zero-fill) on a model whose effects are known in
 * closed form: sixteen blocks each move the logit of a sigmoid by w_b·(patch − 230)/255, the bank's
 * patches are flat, so both the exact ATE (mean over the bank) and the zero-fill Δ of every block
 * are exact, and the ATEs scatter around a line in the zero-fill Δ (the sigmoid bends it).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { pearson } from "../src/bench/fidelity.js";
import { type Case, loadCase } from "../src/data/case.js";
import { keyedOptions } from "../src/evaluate/cell-key.js";
import type { UnitResult } from "../src/explain/attribution.js";
import { IS_MIX } from "../src/explain/importance.js";
import { type MethodDefinition, resolveOptions } from "../src/explain/methods.js";
import { explainPdcr, pdcrMethod } from "../src/explain/pdcr.js";
import { pilotBlocks, splitPilotBlocks } from "../src/explain/prior-schedule.js";
import { fitAt, fitPrior, fitSplit, posterior } from "../src/explain/prior-shrinkage.js";
import type { PartialMap } from "../src/explain/run.js";
import { pdcrVolume } from "../src/explain/volume/block-methods.js";
import { Model } from "../src/model/model.js";
import { writeAttribution } from "../src/report/write.js";
import { getOrInsert } from "../src/util/maps.js";
import { Rng } from "../src/util/rng.js";
import { t975 } from "../src/util/tdist.js";
import { flatBank, regionMeanModel, tmp, writeImage, writeModel } from "./helpers/tiny.js";

const S = 64;
const ROI = { row: 56, col: 0, height: 8, width: 8 };
const BANK = Array.from({ length: 40 }, (_, k) => Math.round((k * 255) / 39));
// 32 blocks (rows 0-31) of grey c_b in 40..250 move the logit by w_b·(patch − c_b)/255, w_b in 0.5..4.5:
// zero-fill moves it by −w_b·c_b/255, the bank's mean patch by w_b·(127.5 − c_b)/255, so the ATE
// follows the zero-fill Δ only loosely (a mid-grey block barely moves on average but a lot when black).
const rng = new Rng(11);
const CAUSAL = Array.from({ length: 32 }, (_, b) => ({
  row: 8 * Math.floor(b / 8),
  col: 8 * (b % 8),
  weight: 0.5 + 4 * rng.next(),
  grey: Math.round(40 + 210 * rng.next()),
}));
const Z0 = 0.5;
const sig = (z: number) => 1 / (1 + Math.exp(-z));
const causalOf = (u: { row: number; col: number }) => CAUSAL.find((c) => c.row === u.row && c.col === u.col);
const delta = (u: { row: number; col: number }, v: number) => {
  const c = causalOf(u);
  return c ? 100 * (sig(Z0 + (c.weight * (v - c.grey)) / 255) - sig(Z0)) : 0;
};
const exactAte = (u: { row: number; col: number }) => BANK.reduce((s, v) => s + delta(u, v), 0) / BANK.length;

let model: Model, kase: Case;
beforeAll(async () => {
  const dir = tmp();
  const bias = Z0 - CAUSAL.reduce((s, c) => s + (c.weight * c.grey) / 255, 0);
  const path = writeModel(
    dir,
    "prior.onnx",
    regionMeanModel(
      CAUSAL.map((c) => ({ row: c.row, col: c.col, height: 8, width: 8, weight: c.weight })),
      bias,
      { size: S },
    ),
  );
  model = await Model.load(path, { threads: 1 });
  kase = await loadCase(model, await writeImage(dir, "grey.png", (y, x) => causalOf({ row: y - (y % 8), col: x - (x % 8) })?.grey ?? 230, S));
});

const run = (seed: number, fast: Record<string, unknown> = {}) =>
  explainPdcr(model, kase, { roi: ROI, outcome: "mean-prob" }, { bank: flatBank(BANK), seed, fast: { prior: "zero-fill", ...fast } });

/** How often the 95% intervals cover the exact ATEs: over all blocks, and over the blocks with an effect alone. */
class Coverage {
  private n = 0;
  private covered = 0;
  private nEffect = 0;
  private coveredEffect = 0;
  add(units: readonly UnitResult[]): void {
    for (const u of units) {
      const hit = Math.abs(u.rawEffect - exactAte(u)) <= t975(u.dof!) * u.stderr;
      this.n++;
      if (hit) this.covered++;
      if (exactAte(u) !== 0) {
        this.nEffect++;
        if (hit) this.coveredEffect++;
      }
    }
  }
  /**
   * n Bernoulli(0.95) trials (not independent within a run: the line is shared, so 4 sd rather than 3);
   * the blocks without an effect (about half) are covered by every interval, so the others alone too;
   * at most 99% (the floored τ² and the t quantile widen them, but not uselessly).
   */
  summary(): string {
    return `${((100 * this.covered) / this.n).toFixed(1)}% of ${this.n} (blocks with an effect ${((100 * this.coveredEffect) / this.nEffect).toFixed(1)}% of ${this.nEffect})`;
  }
  expectNominal(): void {
    const sd = (n: number) => Math.sqrt((0.95 * 0.05) / n);
    expect(this.coveredEffect / this.nEffect).toBeGreaterThanOrEqual(0.95 - 4 * sd(this.nEffect));
    expect(this.covered / this.n).toBeGreaterThanOrEqual(0.95 - 4 * sd(this.n));
    expect(this.covered / this.n).toBeLessThanOrEqual(0.99);
  }
}

describe("empirical-Bayes shrinkage toward a line", () => {
  it("recovers the line and the between-block variance, and its intervals cover at the nominal rate over the blocks", () => {
    // θ_i = 2 + 3·x_i + u_i (sd 1.5), y_i = θ_i + e_i (sd 0.5..2.5, known): 200 blocks, 200 replicates.
    const rng = new Rng(3);
    const normal = () => Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next());
    let covered = 0,
      n = 0,
      tau2 = 0,
      slope = 0;
    const reps = 200;
    for (let r = 0; r < reps; r++) {
      const x = Array.from({ length: 200 }, () => 4 * rng.next());
      const theta = x.map((xi) => 2 + 3 * xi + 1.5 * normal());
      const v = x.map((_, i) => (0.5 + (2 * i) / 199) ** 2);
      const y = theta.map((t, i) => t + Math.sqrt(v[i]) * normal());
      const fit = fitPrior(x, y, v);
      tau2 += fit.tau2 / reps;
      slope += fit.slope / reps;
      x.forEach((xi, i) => {
        const p = posterior(fit, xi, { y: y[i], v: v[i] });
        n++;
        if (Math.abs(p.mean - theta[i]) <= t975(fit.df) * Math.sqrt(p.variance)) covered++;
      });
    }
    expect(tau2).toBeGreaterThan(2.25 * 0.9);
    expect(tau2).toBeLessThan(2.25 * 1.1);
    expect(slope).toBeGreaterThan(2.95);
    expect(slope).toBeLessThan(3.05);
    // within a point of nominal (blocks of one replicate share the fitted line, so they are not independent)
    expect(Math.abs(covered / n - 0.95)).toBeLessThan(0.01);
  });

  it("a constant cheap map shrinks toward the blocks' mean; a block without draws gets the line and τ² + its variance", () => {
    const fit = fitPrior([1, 1, 1, 1], [0, 2, 4, 6], [1, 1, 1, 1]);
    expect(fit.slope).toBe(0);
    // RSS = 20 over 3 df, noise 3·(3/4)·... : τ² = (20 − 4·0.75)/3
    expect(fit.tau2).toBeCloseTo((20 - 3) / 3, 12);
    expect(fit.intercept).toBeCloseTo(3, 12);
    const p = posterior(fit, 1);
    expect(p.mean).toBeCloseTo(3, 12);
    expect(p.variance).toBeCloseTo(fit.tau2 + 1 / (4 / (1 + fit.tau2)), 12);
  });

  it("the pilot round spreads over the cheap map's range", () => {
    const x = Array.from({ length: 100 }, (_, b) => (b * 37) % 100);
    const p = pilotBlocks(x);
    expect(p).toHaveLength(40);
    const vals = p.map((b) => x[b]).sort((a, b) => a - b);
    expect(vals[0]).toBeLessThan(3);
    expect(vals[vals.length - 1]).toBeGreaterThan(96);
  });
});

describe("fast schedule with a zero-fill prior on a model with known effects", () => {
  it("the closed form holds: the paper schedule's means and the zero-fill map agree with it", async () => {
    const a = await explainPdcr(model, kase, { roi: ROI, outcome: "mean-prob" }, { bank: flatBank(BANK), schedule: "paper", tau: 0, samples: 200 });
    for (const u of a.units) expect(Math.abs(u.rawEffect - exactAte(u))).toBeLessThanOrEqual(4 * u.stderr + 1e-3);
    const r = await run(0);
    // the model computes in float32
    for (const u of r.units) expect(Math.abs(u.priorValue! - delta(u, 0))).toBeLessThan(1e-3 * Math.abs(delta(u, 0)) + 1e-3);
  });

  it("costs one zero-fill pass per block plus its rounds; its 95% intervals cover the exact ATEs at the nominal rate on average over the blocks", async () => {
    for (const f of [0.3, 0.1]) {
      const tally = new Coverage();
      const pearsons: number[] = [];
      const seeds = 30;
      for (let seed = 0; seed < seeds; seed++) {
        const a = await run(seed, { fidelity: f });
        expect(a.forwardPasses).toBe(1 + 63 + a.units.reduce((s, u) => s + u.samples, 0));
        pearsons.push(
          pearson(
            a.units.map((u) => u.rawEffect),
            a.units.map((u) => exactAte(u)),
          ),
        );
        tally.add(a.units);
      }
      tally.expectNominal();
      // the stopping rule's promise: expected Pearson with the exact map >= 1/sqrt(1 + f²)
      const mean = pearsons.reduce((a, b) => a + b, 0) / seeds;
      const psd = Math.sqrt(pearsons.reduce((a, b) => a + (b - mean) ** 2, 0) / (seeds - 1));
      expect(mean).toBeGreaterThanOrEqual(1 / Math.sqrt(1 + f * f) - 3 * (psd / Math.sqrt(seeds)));
    }
  });

  it("reports its map after the pilot and after every round without changing it: the last report is the result", async () => {
    const partials: PartialMap[] = [];
    const heard = await explainPdcr(
      model,
      kase,
      { roi: ROI, outcome: "mean-prob" },
      { bank: flatBank(BANK), seed: 4, fast: { prior: "zero-fill" }, onPartialMap: (p) => partials.push(p) },
    );
    const plain = await run(4);
    expect(Buffer.from(heard.map.buffer).equals(Buffer.from(plain.map.buffer))).toBe(true);
    expect(partials.length).toBeGreaterThanOrEqual(2);
    for (let i = 1; i < partials.length; i++) expect(partials[i].passes).toBeGreaterThan(partials[i - 1].passes);
    const last = partials.at(-1)!;
    expect(last.passes).toBe(heard.forwardPasses);
    expect(last.units).toEqual(heard.units);
  });

  it("records the prior in the provenance and the notes, keeps the unbiased draw means, and resumes to the identical map", async () => {
    const dir = tmp();
    const ck = join(dir, "ck.json");
    const a = await explainPdcr(
      model,
      kase,
      { roi: ROI, outcome: "mean-prob" },
      { bank: flatBank(BANK), seed: 4, fast: { prior: "zero-fill" }, checkpointPath: ck },
    );
    expect(a.provenance.settings).toMatchObject({ prior: "zero-fill" });
    expect(a.screenLoss).toBeUndefined();
    expect(a.notes.find((n) => n.startsWith("fast schedule with a zero-fill prior"))).toMatch(
      /63 zero-fill passes, two pilot rounds on 32 blocks, \d+ of 63 blocks drawn; block means shrunk toward ATE ≈ .* between-block sd/,
    );
    for (const u of a.units) {
      if (u.samples > 0) expect(u.drawMean).toBeTypeOf("number");
      else expect(u.drawMean).toBeUndefined();
    }
    // map.json carries them
    const out = join(dir, "out");
    await writeAttribution(a, kase, out);
    const written = JSON.parse(readFileSync(join(out, "map.json"), "utf8")).units as Record<string, unknown>[];
    expect(written.every((u) => typeof u.priorValue === "number")).toBe(true);
    expect(written.filter((u) => typeof u.drawMean === "number").length).toBe(a.units.filter((u) => u.samples > 0).length);
    // a plain fast run has neither the setting nor the fields
    const plain = await explainPdcr(model, kase, { roi: ROI, outcome: "mean-prob" }, { bank: flatBank(BANK), seed: 4 });
    expect(plain.provenance.settings).not.toHaveProperty("prior");
    expect(plain.units.every((u) => u.drawMean === undefined && u.priorValue === undefined)).toBe(true);
    // killed part-way: half of the units lost every sample, the others their later draws
    const saved = JSON.parse(readFileSync(ck, "utf8"));
    Object.keys(saved.samples).forEach((k, i) => {
      if (i % 2) delete saved.samples[k];
      else saved.samples[k] = saved.samples[k].slice(0, 4);
    });
    writeFileSync(ck, JSON.stringify(saved));
    const resumed = await explainPdcr(
      model,
      kase,
      { roi: ROI, outcome: "mean-prob" },
      { bank: flatBank(BANK), seed: 4, fast: { prior: "zero-fill" }, checkpointPath: ck },
    );
    expect(Array.from(resumed.map)).toEqual(Array.from(a.map));
    expect(resumed.notes.some((n) => n.startsWith("resumed from checkpoint"))).toBe(true);
  });

  it("enters evaluate's cell keys only when set, and applies only to the fast schedule", () => {
    const pdcr = pdcrMethod as unknown as MethodDefinition;
    expect(keyedOptions(pdcr, resolveOptions(pdcr, {}))).not.toHaveProperty("prior");
    expect(keyedOptions(pdcr, resolveOptions(pdcr, { prior: "zero-fill" }))).toMatchObject({ prior: "zero-fill" });
    expect(() => resolveOptions(pdcr, { schedule: "paper", prior: "zero-fill" })).toThrow(/--prior applies only to --schedule fast/);
    // volumes refuse it rather than ignore it
    const o = { ...resolveOptions(pdcr, { prior: "zero-fill" }) } as unknown as Parameters<NonNullable<typeof pdcrVolume.check>>[0];
    expect(() => pdcrVolume.check!(o, { bank: true } as never)).toThrow(/--prior zero-fill is not available for volumes yet/);
  });
});

describe("the zero-fill prior split at |zero-fill Δ| = τ (--prior zero-fill-split)", () => {
  it("each class is shrunk apart with its own variance; its intervals cover at the nominal rate over the blocks of each class", () => {
    // a third of the blocks have x = 0 and ATEs of sd 0.3 around 0.4; the others θ = 1 + 2·x + u (sd 1.5). 200 replicates.
    const rng = new Rng(5);
    const normal = () => Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next());
    const hits = [0, 0],
      n = [0, 0];
    let tauInert = 0;
    const reps = 200;
    for (let r = 0; r < reps; r++) {
      const x = Array.from({ length: 150 }, (_, i) => (i % 3 === 0 ? 0 : 0.5 + 4 * rng.next()));
      const theta = x.map((xi) => (xi === 0 ? 0.4 + 0.3 * normal() : 1 + 2 * xi + 1.5 * normal()));
      const v = x.map(() => 0.25);
      const y = theta.map((t) => t + 0.5 * normal());
      const f = fitSplit(x, y, v, 0.02);
      tauInert += f.inert!.tau2 / reps;
      x.forEach((xi, i) => {
        const { fit, x: at } = fitAt(f, xi);
        const p = posterior(fit, at, { y: y[i], v: v[i] });
        const k = xi === 0 ? 0 : 1;
        n[k]++;
        if (Math.abs(p.mean - theta[i]) <= t975(fit.df) * Math.sqrt(p.variance)) hits[k]++;
      });
    }
    expect(tauInert).toBeGreaterThan(0.09 * 0.8);
    expect(tauInert).toBeLessThan(0.09 * 1.3);
    // within a point and a half of nominal in each class (blocks of one replicate share their fit)
    for (const k of [0, 1]) expect(Math.abs(hits[k] / n[k] - 0.95)).toBeLessThan(0.015);
  });

  it("fits one line over all when a class has fewer than 3 blocks; the pilot takes a few blocks of each class", () => {
    const f = fitSplit([0, 0, 1, 2, 3, 4], [0, 0.1, 1, 2.2, 2.9, 4.1], [0.1, 0.1, 0.1, 0.1, 0.1, 0.1], 0.02);
    expect(f.inert).toBeUndefined();
    expect(f.active).toEqual(fitPrior([0, 0, 1, 2, 3, 4], [0, 0.1, 1, 2.2, 2.9, 4.1], [0.1, 0.1, 0.1, 0.1, 0.1, 0.1]));
    expect(fitAt(f, 0).fit).toBe(f.active);
    // 900 inert blocks and 100 others: max(12, ⌈2√n⌉) of each, 60 + 20
    const x = Array.from({ length: 1000 }, (_, b) => (b % 10 === 0 ? 1 + b / 1000 : 0));
    const p = splitPilotBlocks(x, 0.02);
    expect(p.filter((b) => x[b] === 0)).toHaveLength(60);
    expect(p.filter((b) => x[b] !== 0)).toHaveLength(20);
  });

  it("draws fewer of the inert blocks and fewer passes than the one-line prior; its 95% intervals cover the exact ATEs at the nominal rate", async () => {
    const inert = (u: { row: number; col: number }) => exactAte(u) === 0;
    for (const f of [0.3, 0.1]) {
      const tally = new Coverage();
      const pearsons: number[] = [];
      let passes = 0,
        passesOne = 0,
        inertDrawn = 0,
        inertDrawnOne = 0;
      const seeds = 30;
      for (let seed = 0; seed < seeds; seed++) {
        const a = await run(seed, { fidelity: f, prior: "zero-fill-split" });
        const b = await run(seed, { fidelity: f });
        passes += a.forwardPasses;
        passesOne += b.forwardPasses;
        inertDrawn += a.units.filter((u) => inert(u) && u.samples > 0).length;
        inertDrawnOne += b.units.filter((u) => inert(u) && u.samples > 0).length;
        pearsons.push(
          pearson(
            a.units.map((u) => u.rawEffect),
            a.units.map((u) => exactAte(u)),
          ),
        );
        tally.add(a.units);
      }
      tally.expectNominal();
      const mean = pearsons.reduce((a, b) => a + b, 0) / seeds;
      const psd = Math.sqrt(pearsons.reduce((a, b) => a + (b - mean) ** 2, 0) / (seeds - 1));
      expect(mean).toBeGreaterThanOrEqual(1 / Math.sqrt(1 + f * f) - 3 * (psd / Math.sqrt(seeds)));
      console.log(
        `zero-fill-split at map-noise ${f}: ${passes / seeds} passes (one line ${passesOne / seeds}), inert blocks drawn ${inertDrawn / seeds} (one line ${inertDrawnOne / seeds}) of 31, Pearson ${mean.toFixed(4)}, coverage ${tally.summary()}`,
      );
      expect(passes).toBeLessThan(passesOne);
      expect(inertDrawn).toBeLessThan(inertDrawnOne);
    }
  });

  it("enters the keys, the provenance and the note under its own name", async () => {
    const pdcr = pdcrMethod as unknown as MethodDefinition;
    expect(keyedOptions(pdcr, resolveOptions(pdcr, { prior: "zero-fill-split" }))).toMatchObject({ prior: "zero-fill-split" });
    const a = await run(4, { prior: "zero-fill-split" });
    expect(a.provenance.settings).toMatchObject({ prior: "zero-fill-split" });
    // with importance sampling: weights and effective sample sizes of the drawn blocks, as with the one-line prior
    const is = await run(4, { prior: "zero-fill-split", sampling: "importance" });
    expect(is.provenance.settings).toMatchObject({ prior: "zero-fill-split", sampling: "importance" });
    const drawn = is.units.filter((u) => u.samples > 0);
    expect(drawn.length).toBeGreaterThan(0);
    for (const u of drawn) expect(u.weights).toHaveLength(u.samples);
    expect(a.notes.find((n) => n.startsWith("fast schedule with a zero-fill prior"))).toMatch(
      /^fast schedule with a zero-fill prior split at \|zero-fill Δ\| = τ: 63 zero-fill passes, two pilot rounds on 24 blocks, \d+ of 63 blocks drawn; the 31 blocks with \|zero-fill Δ\| <= 0\.02 shrunk toward their own mean/,
    );
  });
});

describe("importance sampling of patches (with the zero-fill prior)", () => {
  it("its weighted block means are unbiased for the exact ATE, and its weights and effective sample sizes are recorded", async () => {
    // Every block gets exactly two rounds (8 draws; no stopping rule), so the mean over seeds of a
    // block's weighted mean estimates its expectation with a known standard error.
    const seeds = 40;
    const sums = new Map<number, number[]>();
    let nonUniform = 0;
    for (let seed = 0; seed < seeds; seed++) {
      const a = await run(seed, { sampling: "importance", fidelity: 0, absTol: 0, maxSamples: 8 });
      a.units.forEach((u, i) => {
        expect(u.samples).toBe(8);
        expect(u.weights).toHaveLength(8);
        for (const w of u.weights!) expect(w).toBeLessThanOrEqual(1 / IS_MIX + 1e-12);
        if (u.weights!.some((w) => Math.abs(w - 1) > 1e-9)) nonUniform++;
        expect(u.ess).toBeGreaterThan(0);
        expect(u.ess).toBeLessThanOrEqual(8 + 1e-9);
        getOrInsert(sums, i, () => []).push(u.drawMean!);
      });
      if (seed === 0) {
        const out = join(tmp(), "is");
        await writeAttribution(a, kase, out);
        const written = JSON.parse(readFileSync(join(out, "map.json"), "utf8")).units as { weights: number[]; ess: number }[];
        written.forEach((u, i) => {
          expect(u.weights).toEqual(a.units[i].weights);
          expect(u.ess).toBe(a.units[i].ess);
        });
      }
      if (seed === 0) expect(a.notes.find((n) => n.startsWith("importance sampling of patches"))).toMatch(/effective sample size \d+% of the draws/);
    }
    // the proposal learned something: most blocks drew from a non-uniform one
    expect(nonUniform).toBeGreaterThan(seeds * 32);
    const units = (await run(0, { sampling: "importance", fidelity: 0, absTol: 0, maxSamples: 8 })).units;
    for (const [i, xs] of sums) {
      const exact = exactAte(units[i]);
      const mean = xs.reduce((a, b) => a + b, 0) / seeds;
      const sd = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (seeds - 1));
      // 63 blocks: 4.5 sd leaves a chance of about 4e-4 of a false alarm; blocks without effect are exactly 0
      expect(Math.abs(mean - exact)).toBeLessThanOrEqual(4.5 * (sd / Math.sqrt(seeds)) + 1e-4);
    }
  });

  it("its intervals cover the exact ATEs at the nominal rate on average over the blocks", async () => {
    const tally = new Coverage();
    for (let seed = 0; seed < 30; seed++) tally.add((await run(seed, { sampling: "importance", fidelity: 0.3 })).units);
    tally.expectNominal();
  });

  it("needs a prior, enters the keys only when set, and is refused on volumes", async () => {
    const pdcr = pdcrMethod as unknown as MethodDefinition;
    expect(keyedOptions(pdcr, resolveOptions(pdcr, { prior: "zero-fill" }))).not.toHaveProperty("sampling");
    expect(keyedOptions(pdcr, resolveOptions(pdcr, { prior: "zero-fill", sampling: "importance" }))).toMatchObject({ sampling: "importance" });
    await expect(explainPdcr(model, kase, { roi: ROI }, { bank: flatBank(BANK), fast: { sampling: "importance" } })).rejects.toThrow(
      /importance sampling runs in the screen-free schedule of a prior/,
    );
    const o = { ...resolveOptions(pdcr, { prior: "zero-fill", sampling: "importance" }) } as unknown as Parameters<
      NonNullable<typeof pdcrVolume.check>
    >[0];
    expect(() => pdcrVolume.check!(o, { bank: true } as never)).toThrow(/--sampling importance is not available for volumes yet/);
  });
});
