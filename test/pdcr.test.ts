import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { loadCase } from "../src/data/case.js";
import { buildPatchBank, PatchBank } from "../src/data/patchbank.js";
import type { Attribution } from "../src/explain/attribution.js";
import { Checkpoint } from "../src/explain/checkpoint.js";
import { explainPdcr, explainZero } from "../src/explain/pdcr.js";
import { Model } from "../src/model/model.js";
import { constantModel, flatBank, regionMeanModel, tmp, writeImage, writeMask, writeModel } from "./helpers/tiny.js";

// The prediction everywhere depends only on the mean of the 16x16 region rows 0-15, cols 16-31
// (four 8x8 blocks): it is foreground iff that mean > 0.8. The image is bright (230), so any dark
// patch in one of the four blocks flips the RoI prediction: ATE = -100 Dice points exactly there.
const CAUSAL = [
  { row: 0, col: 16 },
  { row: 0, col: 24 },
  { row: 8, col: 16 },
  { row: 8, col: 24 },
];
const ROI = { row: 16, col: 0, height: 8, width: 8 };
const isCausal = (u: { row: number; col: number }) => CAUSAL.some((c) => c.row === u.row && c.col === u.col);

let dir: string;
let image: string;
let causalModel: string;
let ignoreModel: string;
let screenModel: string;

beforeAll(async () => {
  dir = tmp();
  image = await writeImage(dir, "bright.png", () => 230);
  causalModel = writeModel(dir, "causal.onnx", regionMeanModel([{ row: 0, col: 16, height: 16, width: 16, weight: 50 }], -40));
  ignoreModel = writeModel(dir, "ignore.onnx", constantModel());
  // Block (0,24) has a large weight, block (24,24) a small one: its effect on mean-prob stays below τ.
  screenModel = writeModel(
    dir,
    "screen.onnx",
    regionMeanModel(
      [
        { row: 0, col: 24, height: 8, width: 8, weight: 50 },
        { row: 24, col: 24, height: 8, width: 8, weight: 0.01 },
      ],
      -40,
    ),
  );
});

async function pdcr(
  modelPath: string,
  bankValues: number[],
  extra: Partial<Parameters<typeof explainPdcr>[3]> = {},
  mask?: string,
  outcome: "dice" | "mean-prob" = "dice",
): Promise<Attribution> {
  const model = await Model.load(modelPath, { threads: 1 });
  try {
    const kase = await loadCase(model, image, mask);
    return await explainPdcr(model, kase, { roi: ROI, outcome }, { bank: flatBank(bankValues), schedule: "paper", ...extra });
  } finally {
    await model.release();
  }
}

describe("PdCR on models with known causal structure", () => {
  it("is -100 exactly on the blocks of the distant causal region and 0 elsewhere", async () => {
    const a = await pdcr(causalModel, [20, 30, 10]);
    expect(a.baseOutcome).toBeCloseTo(100, 6);
    expect(a.reference).toBe("prediction");
    expect(a.units).toHaveLength(15); // 16 blocks minus the RoI's one
    for (const u of a.units) {
      expect(u.effect).toBeCloseTo(isCausal(u) ? -100 : 0, 6);
      expect(u.status).toBe(isCausal(u) ? "above-tau" : "screened-out");
    }
    // map painted per pixel; the RoI stays 0
    expect(a.map[0 * 32 + 16]).toBe(-100);
    expect(a.map[15 * 32 + 31]).toBe(-100);
    expect(a.map[16 * 32 + 0]).toBe(0);
    expect(a.map[31 * 32 + 31]).toBe(0);
    // paper cost: 1 + 3 per block + 50 per block passing the screen
    expect(a.forwardPasses).toBe(1 + 3 * 15 + 50 * 4);
    expect(a.provenance.settings).toMatchObject({ blockSize: 8, screen: 3, samples: 50, tau: 0.02 });
  });

  it("estimates the ATE as the fraction of flipping patches, with a standard error", async () => {
    // 9 of 10 patches are dark: the true ATE of each causal block is -90.
    const a = await pdcr(causalModel, [20, 20, 20, 20, 20, 20, 20, 20, 20, 240], { samples: 400 });
    for (const u of a.units) {
      if (!isCausal(u)) {
        expect(u.effect).toBe(0);
        continue;
      }
      expect(u.stderr).toBeGreaterThan(0);
      expect(Math.abs(u.effect + 90)).toBeLessThan(4.5 * u.stderr);
      expect(u.samples).toBe(403);
    }
  });

  it("gives an all-zero map for a model that ignores its input, at 3 passes per block", async () => {
    const a = await pdcr(ignoreModel, [0, 128, 255]);
    expect(a.units.every((u) => u.effect === 0 && u.samples === 3 && u.status === "screened-out")).toBe(true);
    expect(a.map.every((v) => v === 0)).toBe(true);
    expect(a.forwardPasses).toBe(1 + 3 * 15);
    expect(a.notes.join(" ")).toMatch(
      /no block moved the RoI's dice by τ = 0\.02 on average, so the map is 0 everywhere .*try a RoI on the structure's border/,
    );
    // a map with an effect carries no such note
    expect((await pdcr(causalModel, [20, 30, 10])).notes.join(" ")).not.toMatch(/0 everywhere/);
  });

  it("screening: a block whose 3 draws all move the outcome by less than tau costs 3 passes and gets 0", async () => {
    const a = await pdcr(screenModel, [0], {}, undefined, "mean-prob");
    const strong = a.units.find((u) => u.row === 0 && u.col === 24)!;
    const weak = a.units.find((u) => u.row === 24 && u.col === 24)!;
    expect(strong.status).toBe("above-tau");
    expect(strong.samples).toBe(53);
    expect(strong.effect).toBeLessThan(-90);
    expect(weak.status).toBe("screened-out");
    expect(weak.samples).toBe(3);
    expect(weak.effect).toBe(0);
    expect(Math.abs(weak.rawEffect)).toBeGreaterThan(0); // it did move, just by less than tau
    expect(Math.abs(weak.rawEffect)).toBeLessThan(0.02);
  });

  it("does not depend on the batch size (bit for bit)", async () => {
    const bank = [20, 20, 240, 20, 240, 20, 20, 100];
    const maps = [];
    for (const batchSize of [1, 3, 8]) maps.push((await pdcr(causalModel, bank, { batchSize, samples: 20 })).map);
    expect(Buffer.from(maps[1].buffer).equals(Buffer.from(maps[0].buffer))).toBe(true);
    expect(Buffer.from(maps[2].buffer).equals(Buffer.from(maps[0].buffer))).toBe(true);
  });

  it("is reproducible with a seed and changes with another seed", async () => {
    const bank = [20, 240, 20, 240, 20, 240, 20, 240];
    const a = await pdcr(causalModel, bank, { seed: 7 });
    const b = await pdcr(causalModel, bank, { seed: 7 });
    const c = await pdcr(causalModel, bank, { seed: 8 });
    expect(Array.from(a.map)).toEqual(Array.from(b.map));
    expect(Array.from(a.map)).not.toEqual(Array.from(c.map));
  });

  it("refuses an empty mask, and says so when the structure only vanishes at the model's size", async () => {
    const model = await Model.load(causalModel, { threads: 1 });
    try {
      await expect(loadCase(model, image, await writeMask(dir, "empty.png", () => false))).rejects.toThrow(
        /empty\.png is empty \(no foreground pixel\)/,
      );
      // a 1-pixel structure in a 128 px image and mask, shrunk to the model's 32 px input
      const big = await writeImage(dir, "big.png", () => 230, 128);
      const dot = await writeMask(dir, "dot.png", (y, x) => y === 65 && x === 66, 128);
      await expect(loadCase(model, big, dot)).rejects.toThrow(
        /dot\.png: its structure \(1 pixels at 128x128\) vanishes when the mask is resized to the model's 32x32 input/,
      );
      // evaluate accepts it (its RoIs are then skipped with the reason)
      const kept = await loadCase(model, big, dot, { allowEmptyMask: true });
      expect(kept.mask!.some(Boolean)).toBe(false);
      expect(kept.emptyMask).toMatch(/vanishes when the mask is resized to the model's 32x32 input/);
    } finally {
      await model.release();
    }
  });

  it("measures Dice against the ground truth when a mask is given", async () => {
    // GT covers the left half of the RoI; the model predicts the whole RoI: Dice = 2*32/(64+32).
    const mask = await writeMask(dir, "half.png", (y, x) => y >= 16 && y < 24 && x < 4);
    const a = await pdcr(causalModel, [20], {}, mask);
    expect(a.reference).toBe("ground-truth");
    expect(a.baseOutcome).toBeCloseTo((100 * 64) / 96, 6);
    for (const u of a.units) expect(u.effect).toBeCloseTo(isCausal(u) ? -(100 * 64) / 96 : 0, 6);
  });

  it("resumes from a checkpoint with the identical map", async () => {
    const ck = join(dir, "ck.json");
    const bank = [20, 240, 20, 20];
    const full = await pdcr(causalModel, bank, { checkpointPath: ck });
    // Keep only the screening samples, as if the run had been killed during the estimation phase.
    const saved = JSON.parse(readFileSync(ck, "utf8"));
    for (const k of Object.keys(saved.samples)) saved.samples[k] = saved.samples[k].slice(0, 3);
    writeFileSync(ck, JSON.stringify(saved));
    const resumed = await pdcr(causalModel, bank, { checkpointPath: ck });
    expect(Array.from(resumed.map)).toEqual(Array.from(full.map));
    expect(resumed.notes.some((n) => n.startsWith("resumed from checkpoint: 45 samples"))).toBe(true);
    // another run (another seed) into the same checkpoint: not reused, and said
    writeFileSync(ck, JSON.stringify(saved));
    const other = await pdcr(causalModel, bank, { checkpointPath: ck, seed: 9 });
    expect(other.notes.join(" ")).toMatch(/ck\.json held 45 samples of a run with other settings .*not reused, and replaced/);
    expect(other.notes.join(" ")).not.toMatch(/resumed from checkpoint/);
  });
});

describe("the patch bank against the explained case", () => {
  it("leaves out the bank's patches of the explained image (the ATE is over other images' patches), and says so", async () => {
    const model = await Model.load(causalModel, { threads: 1 });
    try {
      const kase = await loadCase(model, image);
      // 5 patches cropped from the explained (bright) image, which flip nothing, and 5 dark ones
      // from another image, which flip the RoI: kept, the causal blocks' ATE would be -50.
      const P = 8;
      const px = new Uint8Array(10 * P * P * 3);
      px.fill(230, 0, 5 * P * P * 3);
      px.fill(20, 5 * P * P * 3);
      const sources = [
        { name: "bright.png", sha256: kase.imageSha256, patches: 5 },
        { name: "dark.png", sha256: "0".repeat(64), patches: 5 },
      ];
      const bank = new PatchBank({ ...flatBank([0]).header, count: 10, perImage: 5, sources }, px, "test-bank");
      const a = await explainPdcr(model, kase, { roi: ROI }, { bank, schedule: "paper", samples: 20 });
      for (const u of a.units) expect(u.effect).toBeCloseTo(isCausal(u) ? -100 : 0, 6);
      expect(a.notes.join("\n")).toMatch(/holds 5 patches of the explained image \(bright\.png\); they were left out/);
      expect(a.provenance.intervention).toMatchObject({ excluded: { image: "bright.png", patches: 5 } });
      // The explained image listed twice, in the middle and at the end: both copies are left out.
      const px3 = new Uint8Array(20 * P * P * 3);
      px3.fill(20, 0, 5 * P * P * 3);
      px3.fill(230, 5 * P * P * 3, 10 * P * P * 3);
      px3.fill(20, 10 * P * P * 3, 15 * P * P * 3);
      px3.fill(230, 15 * P * P * 3);
      const twice = new PatchBank(
        {
          ...bank.header,
          count: 20,
          sources: [sources[1], sources[0], { ...sources[1], sha256: "2".repeat(64) }, { ...sources[0], name: "bright-copy.png" }],
        },
        px3,
        "test-bank-4",
      );
      const t = await explainPdcr(model, kase, { roi: ROI }, { bank: twice, samples: 24 });
      for (const u of t.units) expect(u.effect).toBeCloseTo(isCausal(u) ? -100 : 0, 6);
      expect(t.notes.join("\n")).toMatch(/holds 10 patches of the explained image \(bright\.png, bright-copy\.png\)/);
      // A bank cropped at another size is used as given, with a note.
      const resized = new PatchBank(
        {
          ...bank.header,
          sources: [sources[1], { ...sources[0], sha256: "1".repeat(64) }],
          resizedTo: { height: 64, width: 64, filter: "bilinear" },
        },
        px,
        "test-bank-2",
      );
      const b = await explainPdcr(model, kase, { roi: ROI }, { bank: resized, schedule: "paper", samples: 4 });
      expect(b.notes.join("\n")).toMatch(/resized to 64x64, but the model input is 32x32/);
      expect(b.provenance.intervention.excluded).toBeUndefined();
      // Nothing but the explained image's patches: refused.
      const own = new PatchBank({ ...bank.header, count: 5, sources: [{ ...sources[0] }] }, px.subarray(0, 5 * P * P * 3), "test-bank-3");
      await expect(explainPdcr(model, kase, { roi: ROI }, { bank: own, schedule: "paper" })).rejects.toThrow(
        /every patch of the bank comes from the explained image bright\.png/,
      );
    } finally {
      await model.release();
    }
  });
});

describe("a bank of ready-cut patches", () => {
  it("built from image files of the patch size (bank build --size 8,8 --per-image 1), it gets no note about the images' size", async () => {
    const dir = tmp();
    const files = [];
    for (const [k, v] of [20, 240, 60].entries()) files.push(await writeImage(dir, `patch${k}.png`, () => v, 8));
    const bank = await buildPatchBank(files, { height: 8, width: 8, perImage: 1 });
    expect(bank.count).toBe(3);
    const model = await Model.load(causalModel, { threads: 1 });
    try {
      const kase = await loadCase(model, image);
      const a = await explainPdcr(model, kase, { roi: ROI }, { bank, schedule: "paper", samples: 4 });
      expect(a.notes.join("\n")).not.toMatch(/resized to/);
      // cropped from whole images of another size than the model's: the note stays
      const other = new PatchBank({ ...bank.header, resizedTo: { height: 16, width: 16, filter: "bilinear" } }, bank.pixels, "test-bank-16");
      const b = await explainPdcr(model, kase, { roi: ROI }, { bank: other, schedule: "paper", samples: 4 });
      expect(b.notes.join("\n")).toMatch(/resized to 16x16, but the model input is 32x32/);
    } finally {
      await model.release();
    }
  });
});

describe("checkpoint reuse across settings", () => {
  it("a rerun with more samples reuses the finished ones and equals a fresh run", async () => {
    const ck = join(dir, "ck-more.json");
    const bank = [20, 240, 20, 20, 240, 20];
    await pdcr(causalModel, bank, { checkpointPath: ck, samples: 10 });
    const more = await pdcr(causalModel, bank, { checkpointPath: ck, samples: 30 });
    const fresh = await pdcr(causalModel, bank, { samples: 30 });
    expect(Array.from(more.map)).toEqual(Array.from(fresh.map));
    expect(more.notes.some((n) => n.startsWith("resumed from checkpoint: 85 samples"))).toBe(true); // 15 blocks x 3 + 4 x 10
  });
});

describe("interruption", () => {
  it("writes the samples finished since the last save (Ctrl-C), once, and a reopened checkpoint has them", () => {
    const ck = join(dir, "ck-int.json");
    const c = Checkpoint.open(ck, { k: 1 }, 60_000);
    expect(c.saveIfDirty()).toBe(false); // nothing new
    c.store.set(3, 0, 0.5);
    c.store.set(3, 1, 0.25);
    expect(c.saveIfDirty()).toBe(true);
    expect(c.saveIfDirty()).toBe(false);
    const again = Checkpoint.open(ck, { k: 1 });
    expect(again.resumedSamples).toBe(2);
    expect(again.store.get(3, 1)).toBe(0.25);
    expect(Checkpoint.open(ck, { k: 2 }).resumedSamples).toBe(0); // other settings: not reused
  });
});

describe("zero ablation", () => {
  it("sets each block to black once and keeps the tau rule", async () => {
    const model = await Model.load(causalModel, { threads: 1 });
    const kase = await loadCase(model, image);
    const a = await explainZero(model, kase, { roi: ROI });
    await model.release();
    for (const u of a.units) {
      expect(u.effect).toBeCloseTo(isCausal(u) ? -100 : 0, 6);
      expect(u.samples).toBe(1);
    }
    expect(a.forwardPasses).toBe(16);
  });
});
