/**
 * The published benchmark stays reproducible: a few of its cells are recomputed from the shipped
 * model and the real image with today's code, and must have the published cell key and every
 * published number (curves, AUCs, top-k effects, pass counts) — only wall times may differ. The
 * shipped models and cards are pinned by hash (models/SHA256SUMS), since every published key and
 * every map depends on them.
 */
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { segcause } from "./helpers/cli.js";
import { tmp } from "./helpers/tiny.js";

const ROOT = join(import.meta.dirname, "..");
const PH2 = join(process.env.SEGCAUSE_DATA ?? join(ROOT, "..", "shared", "data"), "ph2");
const havePh2 = existsSync(join(PH2, "manifest.json"));
if (!havePh2) console.warn(`published-cell recomputation skipped: ${PH2}/manifest.json not found (set SEGCAUSE_DATA to the shared data folder)`);

type Json = Record<string, unknown>;

/** The cell with every wall-clock field removed: the rest is a pure function of model, image and settings. */
function withoutWallTimes(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutWallTimes);
  if (v && typeof v === "object")
    return Object.fromEntries(
      Object.entries(v)
        .filter(([k]) => k !== "wallMs" && k !== "wall_s")
        .map(([k, x]) => [k, withoutWallTimes(x)]),
    );
  return v;
}

describe("shipped models", () => {
  it("every zoo model and card has the hash in models/SHA256SUMS", () => {
    const lines = readFileSync(join(ROOT, "models", "SHA256SUMS"), "utf8")
      .trim()
      .split("\n");
    // one line per model and per card in models/ (the 3D model in models/volumes/ has its own)
    const shipped = readdirSync(join(ROOT, "models"))
      .filter((f) => f.endsWith(".onnx") || f.endsWith(".onnx.json"))
      .sort();
    expect(lines.map((l) => l.split(/\s+/)[1]).sort()).toEqual(shipped);
    for (const line of lines) {
      const [hash, file] = line.split(/\s+/);
      const actual = createHash("sha256")
        .update(readFileSync(join(ROOT, "models", file!)))
        .digest("hex");
      expect(actual, file).toBe(hash);
    }
  });
});

describe.skipIf(!havePh2)("published benchmark cells", () => {
  it("recomputes three published unet-ph2 cells (zero, saliency, deeplift) with the published key and numbers", () => {
    const out = join(tmp(), "bench");
    // The published run's protocol (docs/results/run.json, first command) restricted to one model and three methods.
    const r = segcause(
      "evaluate",
      "--models",
      join(ROOT, "models", "unet-ph2.onnx"),
      "--dataset",
      PH2,
      "--images",
      "1",
      "--split",
      "test",
      "--rois",
      "boundary:32",
      "--steps",
      "8",
      "--patch-draws",
      "1",
      "--fills",
      "patches,blur,zero,mean",
      "--threads",
      "1",
      "--seed",
      "0",
      "--no-progress",
      "--methods",
      "zero,saliency,deeplift",
      "--bank-patch-size",
      "16",
      "--set",
      "zero.block=16",
      "--rank-units",
      "pixel",
      "--top-area",
      "none",
      "--controls",
      "random",
      "--out",
      out,
    );
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const published = new Map<string, Json>();
    for (const line of gunzipSync(readFileSync(join(ROOT, "docs", "results", "cells.jsonl.gz")))
      .toString("utf8")
      .trim()
      .split("\n")) {
      const c = JSON.parse(line) as Json;
      published.set(c.key as string, c);
    }
    const mine = readFileSync(join(out, "cells.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Json);
    expect(mine.map((c) => c.method).sort()).toEqual(["deeplift", "saliency", "zero"]);
    for (const cell of mine) {
      const pub = published.get(cell.key as string);
      expect(pub, `${cell.method}: cell key ${cell.key} is not in docs/results`).toBeDefined();
      expect(withoutWallTimes(cell)).toEqual(withoutWallTimes(pub));
    }
  }, 400_000);
});
