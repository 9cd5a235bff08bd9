/**
 * Checkpoints keep every finished batch (not only whole chunks of samples), an interrupted run
 * resumes to the identical map, and checkpoint temp files never follow a planted link.
 */

import { createHash } from "node:crypto";
import { existsSync, lstatSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { loadCase } from "../src/data/case.js";
import { Checkpoint } from "../src/explain/checkpoint.js";
import { explainLime } from "../src/explain/lime.js";
import { explainPdcr, explainZero } from "../src/explain/pdcr.js";
import { Model } from "../src/model/model.js";
import type { Sessions } from "../src/model/runtime.js";
import { saveInterruptedWork } from "../src/util/interrupt.js";
import type { ProgressEvent } from "../src/util/progress.js";
import { flatBank, regionMeanModel, tmp, writeImage, writeModel } from "./helpers/tiny.js";

let dir: string, image: string, modelPath: string;
const ROI = { row: 16, col: 0, height: 8, width: 8 };
const BANK = [20, 240, 20, 20];

beforeAll(async () => {
  dir = tmp();
  image = await writeImage(dir, "bright.png", () => 230);
  modelPath = writeModel(dir, "causal.onnx", regionMeanModel([{ row: 0, col: 16, height: 16, width: 16, weight: 50 }], -40));
});

const samplesIn = (path: string) =>
  Object.values(JSON.parse(readFileSync(path, "utf8")).samples as Record<string, (number | null)[]>).reduce(
    (n, a) => n + a.filter((v) => v !== null).length,
    0,
  );
const bytes = (m: Float32Array) => Buffer.from(m.buffer, m.byteOffset, m.byteLength);

describe("interrupted runs keep every finished batch", () => {
  it("Ctrl-C after 3 batches of 4 (all in one chunk) checkpoints their 12 samples; the rerun resumes to the byte-identical map", async () => {
    const full = await (async () => {
      const model = await Model.load(modelPath, { threads: 1 });
      try {
        return await explainPdcr(model, await loadCase(model, image), { roi: ROI }, { bank: flatBank(BANK), schedule: "paper", batchSize: 4 });
      } finally {
        await model.release();
      }
    })();
    const ck = join(dir, "interrupted", ".checkpoint.json");
    const model = await Model.load(modelPath, { threads: 1 });
    const events: ProgressEvent[] = [];
    try {
      const kase = await loadCase(model, image);
      // Call 1 is the unperturbed pass; calls 2-4 are the first three batches of samples. When the
      // fifth starts, the earlier ones have been scored: the signal arrives, and the run stops.
      const sessions = model.sessions;
      const infer = sessions.run.bind(sessions);
      const started: Promise<unknown>[] = [];
      sessions.run = (async (...args: Parameters<Sessions["run"]>) => {
        if (started.length === 4) {
          await Promise.allSettled(started);
          saveInterruptedWork(); // what the SIGINT handler does
          throw new Error("interrupted");
        }
        // Slower than the progress interval (200 ms), so that the bar can move between batches.
        const p = infer(...args).then(async (r) => (await new Promise((res) => setTimeout(res, 250)), r));
        started.push(p);
        return p;
      }) as Sessions["run"];
      await expect(
        explainPdcr(
          model,
          kase,
          { roi: ROI },
          { bank: flatBank(BANK), schedule: "paper", batchSize: 4, checkpointPath: ck, onProgress: (e) => events.push({ ...e }) },
        ),
      ).rejects.toThrow("interrupted");
    } finally {
      await model.release();
    }
    // All 45 screening samples (15 blocks x 3 draws) are one chunk: the 12 finished ones are kept.
    expect(existsSync(ck)).toBe(true);
    expect(samplesIn(ck)).toBe(12);
    // The progress bar moved within the chunk, before it ended.
    const screening = events.filter((e) => e.stage.includes("screen"));
    expect(screening.some((e) => e.done > 0 && e.done < e.total)).toBe(true);
    const again = await Model.load(modelPath, { threads: 1 });
    try {
      const resumed = await explainPdcr(
        again,
        await loadCase(again, image),
        { roi: ROI },
        { bank: flatBank(BANK), schedule: "paper", batchSize: 4, checkpointPath: ck },
      );
      expect(resumed.notes).toContain("resumed from checkpoint: 12 samples reused");
      expect(bytes(resumed.map).equals(bytes(full.map))).toBe(true);
      expect(bytes(resumed.stderrMap).equals(bytes(full.stderrMap))).toBe(true);
    } finally {
      await again.release();
    }
  });
});

describe("checkpoint temp files", () => {
  it("a symlink planted at a temp name is not followed: the file it points to stays as it was", async () => {
    const victim = join(dir, "victim.txt");
    writeFileSync(victim, "precious");
    const ck = join(dir, "planted", ".checkpoint.json");
    const c = Checkpoint.open(ck, { k: 1 }, 0);
    c.store.set(0, 0, 0.5);
    await c.save(); // creates the folder
    for (const name of [".checkpoint.json.tmp", `.checkpoint.json.${process.pid}.int.tmp`]) symlinkSync(victim, join(dir, "planted", name));
    c.store.set(0, 1, 0.25);
    await c.save();
    c.store.set(0, 2, 0.125);
    expect(c.saveIfDirty()).toBe(true);
    expect(readFileSync(victim, "utf8")).toBe("precious");
    expect(lstatSync(ck).isFile()).toBe(true);
    expect(Checkpoint.open(ck, { k: 1 }).resumedSamples).toBe(3);
  });
});

describe("checkpoint keys stay those of earlier versions, so their checkpoints still resume", () => {
  // The key is the sha256 of its material as JSON: field order is part of it, and each engine keeps its own.
  const keyOf = (path: string) => (JSON.parse(readFileSync(path, "utf8")) as { key: string }).key;
  const hash = (material: unknown) => createHash("sha256").update(JSON.stringify(material)).digest("hex");

  it("block engine (zero ablation) and coalition engine (LIME on a grid)", async () => {
    const model = await Model.load(modelPath, { threads: 1 });
    try {
      const kase = await loadCase(model, image);
      const target = { roi: ROI, kind: "rect", outcome: "dice", ref: "prediction" };
      const zeroCk = join(dir, "keys", "zero.json");
      const zero = await explainZero(model, kase, { roi: ROI }, { seed: 5, checkpointPath: zeroCk });
      expect(keyOf(zeroCk)).toBe(
        hash({
          model: model.sha256,
          image: kase.imageSha256,
          mask: null,
          target,
          card: model.card,
          method: "zero",
          block: 8,
          stride: 8,
          seed: 5,
          intervention: zero.provenance.intervention,
          draws: { kind: "uniform" },
        }),
      );
      const limeCk = join(dir, "keys", "lime.json");
      const lime = await explainLime(model, kase, { roi: ROI }, { seed: 5, partition: "grid", block: 16, coalitions: 20, checkpointPath: limeCk });
      expect(keyOf(limeCk)).toBe(
        hash({
          model: model.sha256,
          image: kase.imageSha256,
          mask: null,
          card: model.card,
          seed: 5,
          target,
          method: "lime",
          settings: lime.provenance.settings,
          units: lime.units.length,
          intervention: lime.provenance.intervention,
        }),
      );
    } finally {
      await model.release();
    }
  });
});
