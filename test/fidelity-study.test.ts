import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  estimatesOf,
  executorOf,
  type ReferenceMap,
  referenceFiles,
  referenceMismatch,
  scoreAgainst,
  studyReference,
} from "../src/bench/fidelity-study.js";
import { loadCase } from "../src/data/case.js";
import { Model } from "../src/model/model.js";
import { t975 } from "../src/util/tdist.js";
import { flatBank, regionMeanModel, tmp, writeImage, writeModel } from "./helpers/tiny.js";

describe("fidelity study scoring", () => {
  // Four blocks: the reference's interval excludes 0 for blocks 0 and 2 only (|mean| > t975(99)·SE).
  const ref: ReferenceMap = {
    model: "m",
    caseId: "c",
    roi: { row: 0, col: 0, height: 8, width: 8 },
    samples: 100,
    seed: 1000,
    forwardPasses: 400,
    mean: [5, 0.1, -3, 0.5],
    se: [1, 1, 1, 1],
    dof: [99, 99, 99, 99],
  };

  it("the reference's own interval decides which blocks have a sign to get right, not τ", () => {
    expect(t975(99)).toBeLessThan(3);
    // right on block 0, wrong on block 2; blocks 1 and 3 do not count whatever their sign
    const s = scoreAgainst(ref, [4, -1, 2, -7]);
    expect(s.signBlocks).toBe(2);
    expect(s.sign).toBe(0.5);
    // a 0 (screened out) is not the right sign
    expect(scoreAgainst(ref, [4, 0, 0, 0]).sign).toBe(0.5);
    expect(scoreAgainst(ref, ref.mean).pearson).toBeCloseTo(1, 12);
    expect(scoreAgainst(ref, ref.mean).spearman).toBeCloseTo(1, 12);
    // ranks only: a monotone transform keeps Spearman at 1
    expect(
      scoreAgainst(
        ref,
        ref.mean.map((x) => x ** 3),
      ).spearman,
    ).toBeCloseTo(1, 12);
  });

  it("a map's estimates are its block means, 0 where the schedule screened a block out", () => {
    const units = [
      { status: "above-tau" as const, rawEffect: 2 },
      { status: "screened-out" as const, rawEffect: 0.7 },
      { status: "below-tau" as const, rawEffect: 0.01 },
    ];
    expect(estimatesOf({ units } as never)).toEqual([2, 0, 0.01]);
  });

  describe("reusing a published reference", () => {
    const want = {
      model: "m",
      caseId: "c",
      roi: { row: 0, col: 0, height: 8, width: 8 },
      samples: 100,
      seed: 1000,
      modelSha256: "aa",
      bankSha256: "bb",
    };

    it("a reference of the same model, case, RoI, draws and seed stands for the run; hashes count only where recorded", () => {
      expect(referenceMismatch(ref, want)).toBeUndefined();
      expect(referenceMismatch({ ...ref, modelSha256: "aa", bankSha256: "bb" }, want)).toBeUndefined();
    });

    it("each difference is named", () => {
      expect(referenceMismatch({ ...ref, samples: 50 }, want)).toBe("samples 50 (this run: 100)");
      expect(referenceMismatch({ ...ref, caseId: "d" }, want)).toBe("caseId d (this run: c)");
      expect(referenceMismatch({ ...ref, roi: { row: 8, col: 0, height: 8, width: 8 } }, want)).toBe("RoI 8,0 8x8 (this run: 0,0 8x8)");
      expect(referenceMismatch({ ...ref, modelSha256: "zz" }, want)).toBe("model sha256 (the model file changed)");
      expect(referenceMismatch({ ...ref, bankSha256: "zz" }, want)).toBe("bank sha256 (the patch bank changed)");
      expect(referenceMismatch({ ...ref, se: [1] }, want)).toBe("its block arrays are missing or of unequal length");
      expect(referenceMismatch({ ...ref, seed: 1, model: "n" }, want)).toBe("model n (this run: m); seed 1 (this run: 1000)");
    });

    it("the published references are whole and name themselves as the study names their files", () => {
      const dir = join(__dirname, "..", "docs", "fidelity-study");
      const files = readdirSync(dir).filter((f) => f.startsWith("study-ref-") && f.endsWith(".json"));
      expect(files.length).toBeGreaterThanOrEqual(2);
      for (const f of files) {
        const r = JSON.parse(readFileSync(join(dir, f), "utf8")) as ReferenceMap;
        expect(referenceMismatch(r, { ...r, modelSha256: r.modelSha256 ?? "", bankSha256: r.bankSha256 ?? "" })).toBeUndefined();
        const named = referenceFiles({ cacheDir: "/c", publishDir: dir, refSamples: r.samples }, `${r.model}-${r.caseId}`);
        expect(named.published).toBe(join(dir, f));
        expect(named.checkpoint).toBe(join("/c", f.replace(/\.json$/, ".ckpt.json")));
      }
    });
  });

  it("the executor a map ran on comes from its provenance, full passes without a record", () => {
    expect(executorOf({ provenance: { settings: {} } } as never)).toBe("full");
    expect(executorOf({ provenance: { settings: { incremental: { executor: "changed-region" } } } } as never)).toBe("changed-region");
  });

  it("a reference is computed once (recording its hashes and executor), then reused; a published one that does not match is refused, not overwritten", async () => {
    const dir = tmp();
    const model = await Model.load(
      writeModel(dir, "m.onnx", regionMeanModel([{ row: 0, col: 0, height: 8, width: 8, weight: 2 }], 0, { size: 32 })),
      {
        threads: 1,
      },
    );
    try {
      const kase = await loadCase(model, await writeImage(dir, "i.png", () => 120, 32));
      const bank = flatBank([0, 60, 120, 180, 240]);
      const roi = { row: 24, col: 24, height: 8, width: 8 };
      const logs: string[] = [];
      const o = {
        dataRoot: dir,
        cacheDir: join(dir, "cache"),
        publishDir: join(dir, "pub"),
        refSamples: 6,
        cases: 1,
        log: (l: string) => logs.push(l),
      };
      const files = referenceFiles(o, `m-${kase.id}`);
      // --study-cached-only runs no pass: without a cached or published reference the case is skipped
      expect(await studyReference(model, "m", bank, kase, roi, { ...o, cachedOnly: true })).toBe("its reference is not finished yet");
      expect(existsSync(files.checkpoint)).toBe(false);
      const first = await studyReference(model, "m", bank, kase, roi, o);
      if (typeof first === "string") throw new Error(first);
      expect(first).toMatchObject({ model: "m", caseId: kase.id, roi, samples: 6, seed: 1000, modelSha256: model.sha256, bankSha256: bank.sha256 });
      expect(["full", "roi-crop", "changed-region"]).toContain(first.executor);
      expect(first.mean).toHaveLength(15);
      expect(JSON.parse(readFileSync(files.published, "utf8"))).toEqual(first);
      expect(existsSync(files.checkpoint)).toBe(true);
      // reused: no run (the log says when one starts)
      const n = logs.length;
      expect(await studyReference(model, "m", bank, kase, roi, o)).toEqual(first);
      expect(logs.length).toBe(n);
      // a published reference of another RoI is refused for the case, and left as it is
      const other = { ...first, roi: { ...roi, row: 16 } };
      writeFileSync(files.published, JSON.stringify(other));
      const refused = await studyReference(model, "m", bank, kase, roi, o);
      expect(refused).toBe(`${files.published} does not match this run (RoI 16,24 8x8 (this run: 24,24 8x8)): delete it to recompute the reference`);
      expect(JSON.parse(readFileSync(files.published, "utf8"))).toEqual(other);
    } finally {
      await model.release();
    }
  });
});
