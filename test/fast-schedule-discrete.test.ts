/**
 * The fast schedule's uncertainty on a model whose outcome is discrete: the RoI's Dice is 100 or 0,
 * so a block's Δ over the bank is −100 with a known probability p and 0 otherwise, and its exact
 * ATE is −100·p. Equal draws are common (four draws of a p = 0.9 block are all −100 two times in
 * three), which is where a per-block variance gives a standard error of 0.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { pearson } from "../src/bench/fidelity.js";
import { type Case, loadCase } from "../src/data/case.js";
import { PatchBank, type PatchBankHeader } from "../src/data/patchbank.js";
import { explainPdcr } from "../src/explain/pdcr.js";
import { Model } from "../src/model/model.js";
import { sha256 } from "../src/util/hash.js";
import { Rng } from "../src/util/rng.js";
import { t975 } from "../src/util/tdist.js";
import { regionMeanModel, tmp, writeImage, writeModel } from "./helpers/tiny.js";

const S = 64;
const ROI = { row: 56, col: 0, height: 8, width: 8 };
const K = 40;
// Patch k: its top-left 4x4 pixels are a_k (a grid over 0..255), the rest c_k (a shuffled grid). The
// model reads only the top-left 4x4 pixels of the causal blocks, while the schedule's brightness
// strata sort patches by their mean (mostly c_k): the strata leave most of each block's variance.
const A = Array.from({ length: K }, (_, k) => Math.round(((k + 0.5) * 255) / K));
const C = new Rng(7).sampleWithoutReplacement(K, K).map((k) => A[k]);
// Block b (its top-left 4x4 pixels weighted w_b) flips the prediction when a_k < t_b: with the base
// logit at 1, w_b·(a − 230)/255 < −1, i.e. t_b = 230 − 255/w_b. Thresholds sit between grid values.
const THRESH = [96, 128, 160, 192, 211, 224];
const BLOCKS = [
  [0, 0],
  [0, 8],
  [0, 16],
  [8, 0],
  [8, 8],
  [8, 16],
];
const P = THRESH.map((t) => A.filter((a) => a < t).length / K);
const TRUE_ATE = P.map((p) => -100 * p);
const VALUE = 230;

function textureBank(): PatchBank {
  const px = new Uint8Array(K * 8 * 8 * 3);
  for (let k = 0; k < K; k++)
    for (let y = 0; y < 8; y++)
      for (let x = 0; x < 8; x++) px.fill(y < 4 && x < 4 ? A[k] : C[k], ((k * 8 + y) * 8 + x) * 3, ((k * 8 + y) * 8 + x) * 3 + 3);
  const header: PatchBankHeader = {
    format: "segcause.patchbank/1",
    patchSize: 8,
    count: K,
    perImage: K,
    seed: 0,
    resizedTo: { height: S, width: S, filter: "bilinear" },
    sources: [{ name: "synthetic-texture", sha256: sha256(px), patches: K }],
    createdWith: "test",
  };
  return new PatchBank(header, px, sha256(px));
}

let model: Model, kase: Case;
const bank = textureBank();

beforeAll(async () => {
  const dir = tmp();
  const w = THRESH.map((t) => 255 / (VALUE - t));
  const bias = 1 - w.reduce((s, wb) => s + (wb * VALUE) / 255, 0);
  const path = writeModel(
    dir,
    "discrete.onnx",
    regionMeanModel(
      BLOCKS.map(([row, col], b) => ({ row, col, height: 4, width: 4, weight: w[b] })),
      bias,
      { size: S },
    ),
  );
  model = await Model.load(path, { threads: 1 });
  kase = await loadCase(model, await writeImage(dir, "bright.png", () => VALUE, S));
});

const exactMap = (units: { row: number; col: number }[]) => units.map((u) => TRUE_ATE[BLOCKS.findIndex(([r, c]) => r === u.row && c === u.col)] ?? 0);

describe("fast schedule on a model with a discrete outcome", () => {
  it("the closed form holds: every draw is 0 or -100 and the paper schedule's means agree with -100·p", async () => {
    expect(P).toEqual([0.375, 0.5, 0.625, 0.75, 0.825, 0.875]);
    const a = await explainPdcr(model, kase, { roi: ROI }, { bank, schedule: "paper", tau: 0, samples: 400, seed: 1 });
    expect(a.baseOutcome).toBeCloseTo(100, 6);
    for (const u of a.units) {
      const b = BLOCKS.findIndex(([r, c]) => r === u.row && c === u.col);
      if (b < 0) expect(u.rawEffect).toBeCloseTo(0, 6);
      // 400 Bernoulli draws: the mean is within 4 sd (100·sqrt(p(1−p)/400) <= 2.5) of -100·p
      else expect(Math.abs(u.rawEffect - TRUE_ATE[b])).toBeLessThan(4 * 2.5);
    }
  });

  // One run per seed; each gives six intervals.
  const SEEDS = 150;
  interface SeedRun {
    /** the map's block means (0 where screened out) and the exact map, every block */
    raw: number[];
    exact: number[];
    /** the six causal blocks */
    causal: { raw: number; se: number; dof: number; passing: boolean; exact: number }[];
  }
  async function runs(mapNoise: number): Promise<SeedRun[]> {
    const out: SeedRun[] = [];
    for (let seed = 0; seed < SEEDS; seed++) {
      const a = await explainPdcr(model, kase, { roi: ROI }, { bank, seed, fast: { fidelity: mapNoise } });
      const exact = exactMap(a.units);
      out.push({
        raw: a.units.map((u) => (u.status === "screened-out" ? 0 : u.rawEffect)),
        exact,
        causal: a.units.flatMap((u, i) =>
          BLOCKS.some(([r, c]) => r === u.row && c === u.col)
            ? [{ raw: u.rawEffect, se: u.stderr, dof: u.dof!, passing: u.status !== "screened-out", exact: exact[i] }]
            : [],
        ),
      });
    }
    return out;
  }
  /** Share of the causal blocks' 95% intervals (blocks passing the screen) that hold the exact ATE. */
  function coverage(rs: SeedRun[]): { rate: number; n: number; sd: number } {
    let covered = 0,
      n = 0;
    for (const r of rs) for (const c of r.causal) if (c.passing) n++, Math.abs(c.raw - c.exact) <= t975(c.dof) * c.se && covered++;
    // n Bernoulli(0.95) trials: the rate's sd is sqrt(0.95·0.05/n), 0.0074 at n = 860; a rate from
    // honest intervals lies within 3 sd of 0.95 with probability 0.997.
    return { rate: covered / n, n, sd: Math.sqrt((0.95 * 0.05) / n) };
  }
  let fast: SeedRun[], precise: SeedRun[];
  beforeAll(async () => {
    fast = await runs(0.3);
    precise = await runs(0.15);
  });

  it("no block with a non-degenerate effect distribution reports a standard error of 0", () => {
    for (const rs of [fast, precise]) {
      const passing = rs.flatMap((r) => r.causal.filter((c) => c.passing));
      // A block is screened out when its first four draws are all 0: (1 − p)^4, at most 0.15 here.
      expect(passing.length).toBeGreaterThan(SEEDS * 6 * 0.9);
      expect(passing.filter((c) => c.se === 0)).toHaveLength(0);
    }
  });

  it("its 95% intervals cover the exact ATE at least at the nominal rate, and at it once blocks have several rounds", () => {
    // At the default --map-noise most blocks stop after one or two rounds, where the first round's
    // SE includes the spread between strata and the t quantile has few degrees of freedom: conservative.
    const c3 = coverage(fast);
    expect(c3.rate).toBeGreaterThanOrEqual(0.95 - 3 * c3.sd);
    const cPrecise = coverage(precise);
    expect(cPrecise.rate).toBeGreaterThanOrEqual(0.95 - 3 * cPrecise.sd);
    expect(cPrecise.rate).toBeLessThanOrEqual(0.95 + 3 * cPrecise.sd);
  });

  it("the stopping rule delivers the Pearson it promises with the exact map", () => {
    const meets = (rs: SeedRun[], f: number) => {
      const p = rs.map((r) => pearson(r.raw, r.exact));
      const mean = p.reduce((a, b) => a + b, 0) / p.length;
      const sd = Math.sqrt(p.reduce((a, b) => a + (b - mean) ** 2, 0) / (p.length - 1));
      // The mean over the seeds estimates the expected Pearson with a standard error of sd/sqrt(runs).
      expect(mean).toBeGreaterThanOrEqual(1 / Math.sqrt(1 + f * f) - 3 * (sd / Math.sqrt(p.length)));
    };
    meets(fast, 0.3);
    // The rule bounds the noise of the blocks passing the screen; a causal block the screen drops
    // (its four first draws all 0) is a loss it does not count (reported as the screen's bound). At
    // --map-noise 0.15 that loss outweighs the noise, so the rule itself is checked on the runs that kept all six.
    const kept = precise.filter((r) => r.causal.every((c) => c.passing));
    expect(kept.length).toBeGreaterThan(SEEDS / 2);
    meets(kept, 0.15);
  });
});
