import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { findMaps } from "../src/evaluate/strategies/maps.js";
import { writeStrategyReport } from "../src/evaluate/strategies/report.js";
import { strategyStats } from "../src/evaluate/strategies/stats.js";
import { encodeNpy } from "../src/util/npy.js";
import { segcause } from "./helpers/cli.js";
import { tmp } from "./helpers/tiny.js";

// A 256x256 map on the 8x8 block grid (32x32 blocks) with a 32x32 RoI at rows/cols 112..143
// (grid blocks 14..17), written block by block like a PdCR map.
const N = 256,
  B = 8;
const ROI = { row: 112, col: 112, height: 32, width: 32 };
function blockMap(value: (gr: number, gc: number) => number): Float32Array {
  const m = new Float32Array(N * N);
  for (let y = 0; y < N; y++)
    for (let x = 0; x < N; x++) {
      const inRoi = y >= ROI.row && y < ROI.row + ROI.height && x >= ROI.col && x < ROI.col + ROI.width;
      m[y * N + x] = inRoi ? 0 : value(Math.floor(y / B), Math.floor(x / B));
    }
  return m;
}

const localBlob = blockMap((r, c) => (Math.max(Math.abs(r - 15.5), Math.abs(c - 15.5)) <= 3.5 ? -1.5 : 0));
const uniform = blockMap(() => -0.4);
// a one-block-wide chain leaving the RoI to the right edge, plus weak noise-free background
const chain = blockMap((r, c) => (r === 15 && c >= 18 ? -2 : 0));
// a bent chain (down then right) with a few isolated weak blocks elsewhere
const bent = blockMap((r, c) => ((c === 16 && r >= 18 && r <= 25) || (r === 25 && c >= 16 && c <= 30) ? -1 : (r * 7 + c * 3) % 97 === 0 ? -0.05 : 0));

describe("strategy statistics and classification", () => {
  it("a blob at the RoI is local", () => {
    const s = strategyStats(localBlob, N, N, ROI);
    expect(s.cls).toBe("local");
    expect(s.localShare).toBeCloseTo(1, 12);
    expect(s.chainExtent).toBe(2); // blocks 12..19 around the RoI's 14..17
    expect(s.blocks).toBe(1024 - 16);
  });

  it("uniform spread is global, with entropy 1", () => {
    const s = strategyStats(uniform, N, N, ROI);
    expect(s.cls).toBe("global");
    expect(s.entropy).toBeCloseTo(1, 6);
    expect(s.localShare).toBeCloseTo(128 / 1008, 6); // 12x12 - 16 blocks within 4 of the RoI
    expect(s.chainGridShare).toBeCloseTo(1, 12);
  });

  it("a chain of blocks from the RoI is sequential, straight or bent", () => {
    const s = strategyStats(chain, N, N, ROI);
    expect(s.cls).toBe("sequential");
    expect(s.chainBlocks).toBe(14);
    expect(s.chainExtent).toBe(14);
    expect(s.chainMass).toBeCloseTo(1, 12);
    expect(s.spread).toBeGreaterThan(0.3);
    const t = strategyStats(bent, N, N, ROI);
    expect(t.cls).toBe("sequential");
    expect(t.chainBlocks).toBe(8 + 14);
    expect(t.chainExtent).toBe(13);
    expect(t.chainWidth).toBeCloseTo(22 / 13, 12);
    expect(t.chainMass).toBeGreaterThan(0.9);
  });

  it("a large blob reaching far from the RoI is not a chain: global", () => {
    const blob = blockMap((r, c) => (r >= 10 && r <= 24 && c >= 12 && c <= 26 ? -1 : 0));
    const s = strategyStats(blob, N, N, ROI);
    expect(s.chainExtent).toBeGreaterThanOrEqual(8);
    expect(s.chainWidth).toBeGreaterThan(6);
    expect(s.chainGridShare).toBeLessThan(0.25); // only its width keeps it from being a chain
    expect(s.localShare).toBeLessThan(0.7);
    expect(s.cls).toBe("global");
  });

  it("a chain that does not touch the RoI is not sequential, and an empty map is null", () => {
    const far = blockMap((r, c) => (r === 2 && c >= 2 ? -2 : 0));
    const s = strategyStats(far, N, N, ROI);
    expect(s.chainBlocks).toBe(0);
    expect(s.cls).toBe("global");
    expect(
      strategyStats(
        blockMap(() => 0),
        N,
        N,
        ROI,
      ).cls,
    ).toBe("null");
  });

  it("significance uses the map's tau and the relative threshold", () => {
    const weak = blockMap((r, c) => (r === 15 && c >= 18 ? -0.01 : 0));
    expect(strategyStats(weak, N, N, ROI, { tau: 0.02 }).chainBlocks).toBe(0);
    expect(strategyStats(weak, N, N, ROI, { tau: 0 }).chainBlocks).toBe(14);
  });
});

describe("strategies report", () => {
  it("reads evaluate cells and explain outputs, classifies them and writes tables, plots and HTML", async () => {
    const root = tmp("segcause-strat-");
    const maps = { "local-blob": localBlob, uniform, chain };
    for (const [model, map] of Object.entries(maps)) {
      for (const image of ["a", "b"]) {
        // evaluate layout
        const d = join(root, "eval", "cells", "synth", model, image, "boundary32-0", "pdcr");
        mkdirSync(d, { recursive: true });
        writeFileSync(join(d, "map.npy"), encodeNpy(map, [N, N]));
        writeFileSync(join(d, "attribution.json"), JSON.stringify({ height: N, width: N, provenance: { model: { sha256: `sha-${model}` } } }));
        writeFileSync(
          join(d, "cell.json"),
          JSON.stringify({
            format: "segcause.evalcell/1",
            key: `key-${model}-${image}`,
            seed: 3,
            id: { dataset: "synth", model, image, roi: "boundary32-0" },
            method: "pdcr",
            options: { tau: 0.02 },
            roiRect: ROI,
          }),
        );
      }
    }
    // explain layout
    const e = join(root, "explain-out");
    mkdirSync(e, { recursive: true });
    writeFileSync(join(e, "map.npy"), encodeNpy(chain, [N, N]));
    writeFileSync(
      join(e, "manifest.json"),
      JSON.stringify({
        format: "segcause.attribution/1",
        method: "pdcr",
        provenance: {
          seed: 5,
          model: { path: "models/unet-vessels.onnx", sha256: "sha-explained" },
          case: { id: "fundus", imagePath: "/x/data/vessels/images/fundus.png" },
          target: { roi: ROI },
          settings: { tau: 0.02 },
        },
      }),
    );
    expect(findMaps([root])).toHaveLength(7);
    const out = join(root, "report");
    const r = await writeStrategyReport([join(root, "eval"), e], out, { gallery: 2 });
    const cls = Object.fromEntries(r.results.map((m) => [`${m.model}/${m.image}`, m.stats.cls]));
    expect(cls).toEqual({
      "local-blob/a": "local",
      "local-blob/b": "local",
      "uniform/a": "global",
      "uniform/b": "global",
      "chain/a": "sequential",
      "chain/b": "sequential",
      "unet-vessels/fundus": "sequential",
    });
    for (const f of [
      "maps.csv",
      "models.csv",
      "model-pairs.csv",
      "strategies.json",
      "report.html",
      "plots/gallery-pdcr.png",
      "plots/classes-pdcr.png",
      "plots/stats-pdcr.png",
    ])
      expect(r.files).toContain(f);
    const models = readFileSync(join(out, "models.csv"), "utf8");
    expect(models).toMatch(/synth,chain,pdcr,2,0,2,0,0/);
    const html = readFileSync(join(out, "report.html"), "utf8");
    expect(html).toContain("data:image/png;base64,");
    expect(html).not.toMatch(/<script|https?:\/\//);
    const json = JSON.parse(readFileSync(join(out, "strategies.json"), "utf8"));
    expect(json.pairs.length).toBeGreaterThan(0);
    // provenance: the run's, and each map's own (model hash, seed, cell key, hash of the map read)
    expect(json.provenance).toMatchObject({ versions: { segcause: expect.any(String) }, inputs: [join(root, "eval"), e], methods: null });
    const byId = Object.fromEntries(json.maps.map((m: { model: string; image: string }) => [`${m.model}/${m.image}`, m]));
    expect(byId["chain/b"].source).toEqual({ modelSha256: "sha-chain", seed: 3, cellKey: "key-chain-b" });
    expect(byId["unet-vessels/fundus"].source).toEqual({ modelSha256: "sha-explained", seed: 5 });
    expect(byId["chain/a"].mapSha256).toBe(
      createHash("sha256")
        .update(encodeNpy(chain, [N, N]))
        .digest("hex"),
    );
    // without --tau every map used its own tau: settings.tau must not claim the default 0
    expect(json.settings).toMatchObject({ tau: null, tauFrom: "each map's own (maps[].tau)" });
    expect(byId["chain/a"].tau).toBe(0.02);
    await writeStrategyReport([e], join(root, "report-tau"), { settings: { tau: 0.5 }, gallery: 0 });
    const forced = JSON.parse(readFileSync(join(root, "report-tau", "strategies.json"), "utf8"));
    expect(forced.settings).toMatchObject({ tau: 0.5, tauFrom: "--tau, for every map" });
    expect(forced.maps[0].tau).toBe(0.5); // the tau its statistics used, not the map's own 0.02
  });

  it("reads each map on its own block grid (a pixel map on its model's), unless --block is given", async () => {
    const root = tmp("segcause-strat-block-");
    const cell = (method: string, options: Record<string, unknown>) => {
      const d = join(root, "cells", "synth", "m", "a", "boundary32-0", method);
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, "map.npy"), encodeNpy(localBlob, [N, N]));
      writeFileSync(join(d, "attribution.json"), JSON.stringify({ height: N, width: N }));
      writeFileSync(
        join(d, "cell.json"),
        JSON.stringify({
          format: "segcause.evalcell/1",
          key: `k-${method}`,
          id: { dataset: "synth", model: "m", image: "a", roi: "boundary32-0" },
          method,
          options,
          roiRect: ROI,
        }),
      );
    };
    cell("pdcr", { block: 16, tau: 0.02 });
    cell("saliency", {});
    const own = await writeStrategyReport([root], join(root, "o1"), { gallery: 0 });
    expect(Object.fromEntries(own.results.map((r) => [r.method, r.block]))).toEqual({ pdcr: 16, saliency: 16 });
    const json = JSON.parse(readFileSync(join(root, "o1", "strategies.json"), "utf8"));
    expect(json.settings).toMatchObject({ block: null, blockFrom: expect.stringMatching(/each map's own block size/) });
    const forced = await writeStrategyReport([root], join(root, "o2"), { gallery: 0, settings: { block: 8 } });
    expect(forced.results.every((r) => r.block === 8)).toBe(true);
    // the statistics follow the grid: 16 px blocks are coarser than 8 px ones
    expect(own.results[0].stats.blocks).toBeLessThan(forced.results[0].stats.blocks);
  });

  it("counts each map once (overlapping folders, copies) and refuses two different maps of one cell", async () => {
    const root = tmp("segcause-strat-dup-");
    const cell = (folder: string, image: string, key: string, map: Float32Array) => {
      const d = join(root, folder, "cells", "synth", "m", image, "boundary32-0", "pdcr");
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, "map.npy"), encodeNpy(map, [N, N]));
      writeFileSync(join(d, "attribution.json"), JSON.stringify({ height: N, width: N }));
      writeFileSync(
        join(d, "cell.json"),
        JSON.stringify({
          format: "segcause.evalcell/1",
          key,
          id: { dataset: "synth", model: "m", image, roi: "boundary32-0" },
          method: "pdcr",
          options: {},
          roiRect: ROI,
        }),
      );
    };
    for (const image of ["a", "b", "c"]) cell("run", image, `key-${image}`, localBlob);
    cell("copy", "a", "key-a", localBlob); // a copy of run's cell a
    const overlapping = await writeStrategyReport([join(root, "run"), join(root, "run", "cells"), join(root, "copy")], join(root, "o1"), {
      gallery: 0,
    });
    expect(overlapping.results).toHaveLength(3);
    expect(overlapping.duplicates).toHaveLength(4);
    cell("other", "b", "key-b-seed1", uniform); // the same cell under another protocol
    await expect(writeStrategyReport([join(root, "run"), join(root, "other")], join(root, "o2"))).rejects.toThrow(
      /two different pdcr maps for model m, image b, RoI boundary32-0: .*other.* and .*run/,
    );
    await expect(writeStrategyReport([join(root, "run")], join(root, "o3"), { methods: ["foo"] })).rejects.toMatchObject({
      message: expect.stringMatching(/^no maps of method foo in /),
      hint: "the folders hold maps of: pdcr",
    });
  });

  it("refuses a map with NaN, a map unlike its record, a block larger than the map, and an --out that holds evaluate's files", async () => {
    const root = tmp("segcause-strat-bad-");
    const cell = (name: string, map: Float32Array, shape: number[], recorded = N) => {
      const d = join(root, name, "cells", "synth", "m", "a", "boundary32-0", "pdcr");
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, "map.npy"), encodeNpy(map, shape));
      writeFileSync(join(d, "attribution.json"), JSON.stringify({ height: recorded, width: recorded }));
      writeFileSync(
        join(d, "cell.json"),
        JSON.stringify({
          format: "segcause.evalcell/1",
          id: { dataset: "synth", model: "m", image: "a", roi: "boundary32-0" },
          method: "pdcr",
          options: {},
          roiRect: ROI,
        }),
      );
      return join(root, name);
    };
    const withNan = Float32Array.from(localBlob);
    withNan[N + 3] = Number.NaN;
    await expect(writeStrategyReport([cell("nan", withNan, [N, N])], join(root, "o1"))).rejects.toThrow(
      /holds a non-finite value \(NaN\) at row 1, col 3/,
    );
    await expect(writeStrategyReport([cell("shape", localBlob, [N, N], 2 * N)], join(root, "o2"))).rejects.toThrow(
      new RegExp(`is ${N}x${N} but its cell records a ${2 * N}x${2 * N} map`),
    );
    const ok = cell("ok", localBlob, [N, N]);
    await expect(writeStrategyReport([ok], join(root, "o3"), { settings: { block: N + 8 } })).rejects.toThrow(
      new RegExp(`--block ${N + 8} is larger than the ${N}x${N} map`),
    );
    const broken = join(root, "broken-explain");
    mkdirSync(broken, { recursive: true });
    writeFileSync(join(broken, "map.npy"), encodeNpy(localBlob, [N, N]));
    writeFileSync(join(broken, "manifest.json"), "{ not json");
    await expect(writeStrategyReport([broken], join(root, "o4"))).rejects.toThrow(
      /no attribution maps found .*; 1 map\.npy had an unreadable record beside it \(.*broken-explain\/manifest\.json\)/,
    );
    writeFileSync(join(ok, "report.html"), "<p>evaluate's report</p>");
    const cli = segcause("strategies", "--maps", ok, "--out", ok);
    expect(cli.code).not.toBe(0);
    expect(cli.stderr).toMatch(/holds the output of `segcause evaluate`: the strategy report would overwrite its report\.html/);
    expect(readFileSync(join(ok, "report.html"), "utf8")).toBe("<p>evaluate's report</p>");
  });
});
