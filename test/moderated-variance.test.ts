import { describe, expect, it } from "vitest";
import { fitVariancePrior, moderate } from "../src/explain/moderated-variance.js";
import { digamma, tetragamma, trigamma, trigammaInverse } from "../src/util/polygamma.js";
import { Rng } from "../src/util/rng.js";

describe("polygamma functions", () => {
  it("match their closed forms", () => {
    expect(digamma(1)).toBeCloseTo(-0.5772156649015329, 12);
    expect(digamma(0.5)).toBeCloseTo(-0.5772156649015329 - 2 * Math.LN2, 12);
    expect(digamma(11) - digamma(10)).toBeCloseTo(0.1, 12);
    expect(trigamma(1)).toBeCloseTo(Math.PI ** 2 / 6, 12);
    expect(trigamma(0.5)).toBeCloseTo(Math.PI ** 2 / 2, 12);
    expect(tetragamma(1)).toBeCloseTo(-2 * 1.2020569031595942, 11);
    for (const x of [0.05, 0.7, 2, 15, 300]) expect(trigammaInverse(trigamma(x)) / x).toBeCloseTo(1, 8);
  });
});

describe("moderated variances", () => {
  it("recover the prior of variances drawn from it (scaled inverse chi-square, d0 = 6, s0² = 2)", () => {
    // σ² = d0·s0²/χ²(d0), then s² = σ²·χ²(d)/d with d = 3: the fit should give d0 and s0² back.
    const rng = new Rng(3);
    const normal = () => Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next());
    const chi2 = (k: number) => Array.from({ length: k }, normal).reduce((a, z) => a + z * z, 0);
    const est = Array.from({ length: 4000 }, () => ({ v: ((6 * 2) / chi2(6)) * (chi2(3) / 3), df: 3 }));
    const prior = fitVariancePrior(est);
    expect(prior.dof).toBeGreaterThan(4.5);
    expect(prior.dof).toBeLessThan(8);
    expect(prior.scale).toBeGreaterThan(1.8);
    expect(prior.scale).toBeLessThan(2.2);
  });

  it("a zero variance among positive ones gets the prior's share, and adds the prior's degrees of freedom", () => {
    const prior = fitVariancePrior([
      { v: 1, df: 3 },
      { v: 4, df: 3 },
      { v: 0, df: 3 },
      { v: 2, df: 3 },
    ]);
    const m = moderate({ v: 0, df: 3 }, prior, 9);
    expect(m.v).toBeCloseTo((Math.min(prior.dof, 9) * prior.scale) / (Math.min(prior.dof, 9) + 3), 12);
    expect(m.v).toBeGreaterThan(0);
    expect(m.df).toBeCloseTo(3 + Math.min(prior.dof, 9), 12);
  });

  it("all-zero variances stay 0 (a deterministic map); a single positive one is the prior itself", () => {
    const zero = fitVariancePrior([
      { v: 0, df: 3 },
      { v: 0, df: 3 },
    ]);
    expect(moderate({ v: 0, df: 3 }, zero, 3).v).toBe(0);
    const one = fitVariancePrior([
      { v: 0, df: 3 },
      { v: 5, df: 3 },
    ]);
    expect(one).toEqual({ scale: 5, dof: 3 });
    expect(moderate({ v: 0, df: 3 }, one, 3)).toEqual({ v: 2.5, df: 6 });
    // equal variances: no spread beyond sampling, every block gets the common value (prior dof capped by the pool)
    const same = fitVariancePrior([
      { v: 2, df: 3 },
      { v: 2, df: 3 },
      { v: 2, df: 3 },
    ]);
    expect(same.dof).toBe(Number.POSITIVE_INFINITY);
    expect(moderate({ v: 2, df: 3 }, same, 6)).toEqual({ v: same.scale * (6 / 9) + 2 * (3 / 9), df: 9 });
  });
});
