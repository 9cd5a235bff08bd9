/**
 * Bad input to explain, evaluate, strategies, components and bank build: one line
 * `segcause: error: <problem> (<fix>)`, exit status 1, nothing that looks like a result.
 * Tiny models only; most cases fail before any model runs.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Command } from "commander";
import sharp from "sharp";
import { beforeAll, describe, expect, it } from "vitest";
import { addCardFlags, CARD_FLAG_KEYS } from "../src/cli/options.js";
import { buildPatchBank } from "../src/data/patchbank.js";
import { parseRoiSpec } from "../src/evaluate/rois.js";
import { strategyStats } from "../src/evaluate/strategies/stats.js";
import { getMethod } from "../src/explain/catalog.js";
import { resolveOptions } from "../src/explain/methods.js";
import { decimal, decimalInteger } from "../src/util/decimal.js";
import { causalFixture, runNodeAsync, segcauseAsync } from "./helpers/cli.js";
import { regionMeanModel, writeImage, writeMask, writeModel } from "./helpers/tiny.js";

/** The project's standard for a user mistake. */
function expectOneLineError(r: { code: number | null; stderr: string }, pattern: RegExp): void {
  expect(r.code, r.stderr).toBe(1);
  expect(r.stderr).toMatch(/^segcause: error: /);
  expect(r.stderr.trim().split("\n")).toHaveLength(1);
  expect(r.stderr).toMatch(pattern);
}

let dir: string, model: string, image: string, bank: string, aFile: string;

beforeAll(async () => {
  ({ dir, model, image, bank } = await causalFixture());
  aFile = join(dir, "a-file");
  writeFileSync(aFile, "not a folder");
  await writeMask(dir, "small-mask.png", () => true, 16);
  await writeMask(dir, "roi-mask.png", (y, x) => y >= 16 && y < 24 && x < 8);
});

describe("numbers in flags and RoI lists: plain decimals only, one parser", () => {
  it.concurrent("reads decimal notation and refuses what Number() would also accept", async () => {
    expect(["12", " -0.5 ", ".5", "5.", "1e-3", "+2E2"].map(decimal)).toEqual([12, -0.5, 0.5, 5, 0.001, 200]);
    for (const bad of ["0x10", "0b11", "0o7", "Infinity", "NaN", "", " ", "1,5", "1e999", "--1", "1e"]) expect(decimal(bad), bad).toBeUndefined();
    expect(["16", "-3", "+0", "007"].map(decimalInteger)).toEqual([16, -3, 0, 7]);
    for (const bad of ["1e1", "16.0", "1.5", "0x10", "", "9007199254740993"]) expect(decimalInteger(bad), bad).toBeUndefined();
  });
});

describe("card flags", () => {
  it.concurrent("CARD_FLAG_KEYS lists exactly the options addCardFlags adds (explain tells them from method options by it)", async () => {
    const keys = addCardFlags(new Command()).options.map((o) => o.attributeName());
    expect([...keys].sort()).toEqual([...CARD_FLAG_KEYS].sort());
  });
});

describe("explain: bad values are refused before anything runs", () => {
  const cases: [string, string[], RegExp][] = [
    ["negative masks", ["--method", "rise", "--masks", "-1"], /--masks must be an integer >= 2, got -1/],
    ["fill outside 0..255", ["--method", "occlusion", "--fill", "300"], /--fill must be a number in \[0, 255\], got 300/],
    ["negative fill of the zero ablation", ["--method", "zero", "--fill", "-5"], /--fill must be a number in \[0, 255\]/],
    ["gradient baseline outside 0..255", ["--method", "ig", "--fill", "256", "--steps", "1"], /--fill must be a number in \[0, 255\]/],
    ["fast schedule with fewer samples than one round", ["--bank", "BANK", "--samples", "2"], /--samples must be >= 4, got 2 .*--schedule paper/],
    ["negative samples", ["--bank", "BANK", "--samples", "-1", "--schedule", "paper"], /--samples must be an integer >= 1, got -1/],
    [
      "no samples with the paper schedule (significant blocks would keep their screening draws)",
      ["--bank", "BANK", "--samples", "0", "--schedule", "paper"],
      /--samples must be an integer >= 1, got 0/,
    ],
    [
      "a batch too large for memory, refused before it is allocated",
      ["--method", "zero", "--batch-size", "200000"],
      /a batch of 200000 inputs of 3x32x32 needs 2\.3 GiB of input buffers \(lower --batch-size/,
    ],
    [
      "more threads than ONNX Runtime takes",
      ["--method", "zero", "--threads", "1000"],
      /threads must be an integer in 1\.\.256, got 1000 \(use --threads 1\.\.\d+ \(this machine's cores\)\)/,
    ],
    ["negative map noise", ["--bank", "BANK", "--map-noise", "-1"], /--map-noise must be a number >= 0/],
    [
      "blur sigma beyond sharp's 1000",
      ["--method", "occlusion", "--fill-kind", "blur", "--sigma", "5000"],
      /--sigma must be a number in \[0\.3, 1000\]/,
    ],
    [
      "MiSuRe mask finer than the input",
      ["--method", "misure", "--mask-size", "100000"],
      /--mask-size 100000 is larger than the model's 32x32 input/,
    ],
    ["keep probability 1", ["--method", "rise", "--keep-probability", "1"], /--keep-probability must be a number in \(0, 1\)/],
    ["RoI with empty fields", ["--roi", ",,,"], /cannot parse RoI ',,,'/],
    ["RoI in hexadecimal (Number() would read 16)", ["--roi", "0x10,0,8,8"], /cannot parse RoI '0x10,0,8,8'/],
    [
      "block size in hexadecimal (Number() would read 16)",
      ["--method", "occlusion", "--block", "0x10"],
      /--block must be a whole number written in digits, got '0x10'/,
    ],
    ["threshold in hexadecimal", ["--method", "zero", "--threshold", "0x1"], /--threshold must be a decimal number, got '0x1'/],
    ["seed as a fraction", ["--method", "zero", "--seed", "1.5"], /--seed must be an integer in 0\.\.4294967295, got '1\.5'/],
    ["a folder as --card", ["--method", "zero", "--card", "CARDDIR"], /model card .* is a folder, not a regular file \(give the card's JSON file/],
    ["both --roi and --roi-mask", ["--roi-mask", "ROIMASK"], /both --roi and --roi-mask are given/],
    [
      "ground-truth mask of another size",
      ["--method", "zero", "--mask", "SMALLMASK"],
      /mask .*small-mask.png is 16x16 pixels but the image .* is 32x32/,
    ],
    ["--out is a file", ["--method", "zero", "--out", "AFILE"], /--out .*a-file is a file, not a folder/],
    ["--out under a file", ["--method", "zero", "--out", "AFILE/sub"], /a-file is a file, not a folder/],
    ["--input-size with one number", ["--input-size", "32"], /--input-size must be two positive integers H,W/],
    [
      "zero --scale, named as the card's input.scale setting",
      ["--method", "zero", "--scale", "0"],
      /model input.scale setting is invalid.*check --scale or the model card/,
    ],
    [
      "negative --channel, named as the card's output.channel setting",
      ["--method", "zero", "--channel", "-1"],
      /model output.channel setting is invalid/,
    ],
    ["--threshold outside (0, 1)", ["--method", "zero", "--threshold", "5"], /model output.threshold setting is invalid/],
    [
      "--layout that contradicts the graph (the flag reaches the card, not the method options)",
      ["--method", "zero", "--layout", "nhwc"],
      /read as channels-last, but the model card or its flags say 3 \(the input reads correctly as channels-first: pass --layout nchw/,
    ],
    ["misspelt option", ["--bnak", "x"], /unknown option '--bnak' \(Did you mean --bank\?; see `segcause explain --help`\)/],
    [
      "--screen with the default (fast) schedule, which ignores it",
      ["--bank", "BANK", "--screen", "5"],
      /--screen applies only to --schedule paper; --schedule is fast by default, which ignores it \(add --schedule paper, or drop --screen\)/,
    ],
    [
      "--screen with --schedule fast",
      ["--bank", "BANK", "--schedule", "fast", "--screen", "3"],
      /--screen applies only to --schedule paper; --schedule is fast, which/,
    ],
    [
      "--map-noise with --schedule paper",
      ["--bank", "BANK", "--schedule", "paper", "--map-noise", "0.1"],
      /--map-noise applies only to --schedule fast; --schedule is paper/,
    ],
    ["negative --seed", ["--method", "zero", "--seed", "-1"], /--seed must be an integer in 0\.\.4294967295, got '-1' \(e\.g\. --seed 0\)/],
    ["non-integer --seed", ["--method", "zero", "--seed", "1.5"], /--seed must be an integer in 0\.\.4294967295, got '1\.5'/],
    ["--seed above 2^32-1", ["--method", "zero", "--seed", "4294967296"], /--seed must be an integer in 0\.\.4294967295, got '4294967296'/],
  ];
  for (const [name, extra, pattern] of cases) {
    it.concurrent(name, async () => {
      const out = join(dir, `bad-${name.replace(/\W+/g, "-")}`);
      const subst = (a: string) =>
        a
          .replace("BANK", bank)
          .replace("ROIMASK", join(dir, "roi-mask.png"))
          .replace("SMALLMASK", join(dir, "small-mask.png"))
          .replace("AFILE", aFile)
          .replace("CARDDIR", dir);
      const args = extra.map(subst);
      const r = await segcauseAsync(
        "explain",
        "--model",
        model,
        "--image",
        image,
        "--roi",
        "16,0,8,8",
        ...(args.includes("--out") ? [] : ["--out", out]),
        "--no-progress",
        "--batch-size",
        "4",
        "--threads",
        "1",
        "--workers",
        "1",
        ...args,
      );
      expectOneLineError(r, pattern);
      expect(existsSync(join(out, "manifest.json"))).toBe(false);
    });
  }

  it.concurrent("the demo refuses a block size its bundled bank cannot fill, and names the way out", async () => {
    expectOneLineError(
      await segcauseAsync("demo", "--block", "16", "--out", join(dir, "demo16"), "--no-progress"),
      /the demo's patch bank holds 8x8 patches, so its pdcr blocks are 8 px \(drop --block, or run `segcause explain` with a bank built with `segcause bank build --patch-size 16`\)/,
    );
  });

  it.concurrent("a missing required option is one line too", async () => {
    expectOneLineError(
      await segcauseAsync("explain", "--model", model),
      /required option '--image <file>' not specified \(see `segcause explain --help`\)/,
    );
  });

  it.concurrent("an RoI mask of neither the image's nor the model's size is refused; the image's size is accepted", async () => {
    const big = await writeImage(dir, "big.png", () => 230, 64);
    const bigRoi = await writeMask(dir, "big-roi.png", (y, x) => y >= 32 && y < 48 && x < 16, 64);
    const base = ["explain", "--method", "zero", "--model", model, "--no-progress", "--batch-size", "4", "--threads", "1", "--workers", "1"];
    expectOneLineError(
      await segcauseAsync(...base, "--image", image, "--roi-mask", join(dir, "small-mask.png"), "--out", join(dir, "rm1")),
      /is 16x16 pixels but the image .* is 32x32 and the model input is 32x32/,
    );
    const ok = await segcauseAsync(...base, "--image", big, "--roi-mask", bigRoi, "--out", join(dir, "rm2"));
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/RoI rows 16\.\.23, cols 0\.\.7/);
  });

  it.concurrent("an image whose channels differ from the model's is converted with a note, not silently", async () => {
    const gray = writeModel(dir, "gray.onnx", regionMeanModel([{ row: 0, col: 16, height: 16, width: 16, weight: 50 }], -40, { channels: 1 }));
    const r = await segcauseAsync(
      "explain",
      "--method",
      "zero",
      "--model",
      gray,
      "--image",
      image,
      "--roi",
      "16,0,8,8",
      "--out",
      join(dir, "gray"),
      "--no-progress",
      "--batch-size",
      "4",
      "--threads",
      "1",
      "--workers",
      "1",
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/note: the colour image was converted to grey \(luma\) for the model's 1-channel input/);
    const same = await segcauseAsync(
      "explain",
      "--method",
      "zero",
      "--model",
      model,
      "--image",
      image,
      "--roi",
      "16,0,8,8",
      "--out",
      join(dir, "rgb"),
      "--no-progress",
      "--batch-size",
      "4",
      "--threads",
      "1",
      "--workers",
      "1",
    );
    expect(same.stdout).not.toMatch(/was converted/);
    expect(same.stdout).not.toMatch(/was enlarged/);
  });

  it.concurrent("an image much smaller than the model input is enlarged with a note", async () => {
    const tiny = await writeImage(dir, "tiny8.png", () => 230, 8);
    const r = await segcauseAsync(
      "explain",
      "--method",
      "zero",
      "--model",
      model,
      "--image",
      tiny,
      "--roi",
      "16,0,8,8",
      "--out",
      join(dir, "tiny8"),
      "--no-progress",
      "--batch-size",
      "4",
      "--threads",
      "1",
      "--workers",
      "1",
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/note: the 8x8 image was enlarged 4\.0x to the model's 32x32 input/);
  });

  it.concurrent("an image with an EXIF orientation is read as stored, with a note saying so", async () => {
    const px = Buffer.alloc(32 * 32 * 3, 230);
    const rotated = join(dir, "exif6.jpg");
    await sharp(px, { raw: { width: 32, height: 32, channels: 3 } })
      .jpeg()
      .withMetadata({ orientation: 6 })
      .toFile(rotated);
    const r = await segcauseAsync(
      "explain",
      "--method",
      "zero",
      "--model",
      model,
      "--image",
      rotated,
      "--roi",
      "16,0,8,8",
      "--out",
      join(dir, "exif6"),
      "--no-progress",
      "--batch-size",
      "4",
      "--threads",
      "1",
      "--workers",
      "1",
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(
      /note: the image file carries EXIF orientation 6 \(viewers show it rotated\); segcause reads the stored pixels unrotated/,
    );
  });

  it.concurrent("option ranges are declared once and checked by resolveOptions (every caller)", async () => {
    expect(() => resolveOptions(getMethod("occlusion"), { stride: 0 })).toThrow(/--stride must be an integer >= 1, got 0/);
    expect(() => resolveOptions(getMethod("misure"), { sufficiency: 0 })).toThrow(/--sufficiency must be a number in \(0, 1\]/);
    expect(() => resolveOptions(getMethod("lime"), { kernelWidth: Number.NaN })).toThrow(/--kernel-width must be a number > 0/);
    expect(resolveOptions(getMethod("occlusion"), { fill: 255 })).toMatchObject({ fill: 255 });
  });

  it.concurrent("an option of one schedule is refused with the other only when given (defaults fill in silently)", async () => {
    const pdcr = getMethod("pdcr");
    expect(() => resolveOptions(pdcr, { screen: 3 })).toThrow(/--screen applies only to --schedule paper/);
    expect(resolveOptions(pdcr, { schedule: "paper", screen: 2 })).toMatchObject({ schedule: "paper", screen: 2 });
    expect(resolveOptions(pdcr, { schedule: "paper" })).toMatchObject({ screen: 3 });
    expect(resolveOptions(pdcr, { mapNoise: 0.1 })).toMatchObject({ schedule: "fast", mapNoise: 0.1 });
    expect(resolveOptions(getMethod("pdcr-superpixel"), { screen: 2 })).toMatchObject({ screen: 2 });
    // Partition and fill options that the chosen partition or fill would ignore.
    expect(() => resolveOptions(getMethod("lime"), { block: 16 })).toThrow(
      /--block applies only to --partition grid; --partition is superpixels by default/,
    );
    expect(() => resolveOptions(getMethod("kernelshap"), { partition: "grid", segments: 50 })).toThrow(
      /--segments applies only to --partition superpixels/,
    );
    expect(() => resolveOptions(getMethod("rise"), { fill: 10 })).toThrow(
      /--fill applies only to --fill-kind constant; --fill-kind is mean by default/,
    );
    expect(() => resolveOptions(getMethod("occlusion"), { sigma: 3 })).toThrow(/--sigma applies only to --fill-kind blur/);
    expect(resolveOptions(getMethod("ig"), { fillKind: "blur", sigma: 3 })).toMatchObject({ fillKind: "blur", sigma: 3 });
    expect((await segcauseAsync("methods", "--verbose")).stdout).toMatch(/--screen \(default 3\).*\[only with --schedule paper\]/);
  });

  it.concurrent("--seed is checked by one parser in every command", async () => {
    const runs: [string, string[]][] = [
      ["evaluate", ["evaluate", "--models", model, "--dataset", dir, "--out", join(dir, "seed-ev")]],
      ["bank build", ["bank", "build", "--images", dir, "--size", "32,32", "--out", join(dir, "seed.scbank")]],
      ["components", ["components", "--model", model, "--image", image, "--roi", "16,0,8,8", "--out", join(dir, "seed-c")]],
      ["demo", ["demo", "--out", join(dir, "seed-demo")]],
    ];
    for (const [name, args] of runs) {
      expectOneLineError(await segcauseAsync(...args, "--seed", "-3"), /--seed must be an integer in 0\.\.4294967295, got '-3'/);
      expect(existsSync(args[args.indexOf("--out") + 1]), name).toBe(false);
    }
  });
});

describe("evaluate: bad arguments fail before any cell", () => {
  const base = () => ["evaluate", "--models", model, "--dataset", join(dir, "no-such-dataset"), "--methods", "occlusion", "--no-progress"];
  const cases: [string, string[], RegExp][] = [
    ["RoI rule of size 0", ["--rois", "boundary:0"], /RoI rule 'boundary:0' asks for an empty RoI/],
    ["RoI rule with no RoI", ["--rois", "inside:32x0"], /RoI rule 'inside:32x0' asks for no RoI/],
    ["negative --images", ["--images", "-1"], /--images must be an integer >= 1, got '-1'/],
    ["--set out of range", ["--set", "occlusion.block=0"], /--set occlusion.block must be an integer >= 1, got 0/],
    [
      "--set twice with different values (neither wins silently)",
      ["--set", "occlusion.block=8", "--set", "occlusion.block=16"],
      /--set occlusion\.block is given twice, with different values/,
    ],
    [
      "--set on a method without options",
      ["--methods", "saliency", "--set", "saliency.foo=1"],
      /saliency has no option 'foo' \(saliency has no options\)/,
    ],
    ["--batch-size 0", ["--batch-size", "0"], /--batch-size must be an integer >= 1/],
    ["--min-range 0 (normalised AUCs would divide by a zero range)", ["--min-range", "0"], /--min-range must be > 0, got '0'/],
  ];
  for (const [name, extra, pattern] of cases) {
    it.concurrent(name, async () => {
      const out = join(dir, `ev-${name.replace(/\W+/g, "-")}`);
      expectOneLineError(await segcauseAsync(...base(), "--out", out, ...extra), pattern);
      expect(existsSync(out)).toBe(false);
    });
  }

  it.concurrent("--out that is a file", async () => {
    expectOneLineError(await segcauseAsync(...base(), "--out", aFile), /--out .*a-file is a file, not a folder/);
  });

  it.concurrent("an option that does not apply with the method's other options (--set pdcr.screen, fast schedule)", async () => {
    const out = join(dir, "ev-screen");
    expectOneLineError(
      await segcauseAsync(...base(), "--methods", "pdcr", "--set", "pdcr.screen=3", "--out", out),
      /--set pdcr.screen applies only to --set pdcr.schedule=paper; --set pdcr.schedule is fast by default.*\(add --set pdcr.schedule=paper, or drop --set pdcr.screen\)/,
    );
    expect(existsSync(out)).toBe(false);
  });

  describe("run.json is written only after the dataset, models and bank are checked", () => {
    let manifest: string;
    beforeAll(async () => {
      const data = join(dir, "ev-data");
      mkdirSync(data, { recursive: true });
      await writeImage(data, "a.png", () => 230);
      await writeMask(data, "a-mask.png", (y) => y >= 16);
      manifest = join(data, "manifest.json");
      writeFileSync(manifest, JSON.stringify({ name: "tiny", cases: [{ id: "a", image: "a.png", mask: "a-mask.png", split: "test" }] }));
    });
    const run = (out: string, ...extra: string[]) =>
      segcauseAsync(
        "evaluate",
        "--models",
        model,
        "--dataset",
        manifest,
        "--methods",
        "zero",
        "--rois",
        "inside:8",
        "--fills",
        "zero",
        "--no-progress",
        "--out",
        out,
        ...extra,
      );

    it.concurrent("a refused run creates no --out", async () => {
      for (const [name, extra, pattern] of [
        ["missing dataset", ["--dataset", join(dir, "no-such-dataset")], /dataset manifest .*no-such-dataset does not exist/],
        ["missing model", ["--models", join(dir, "nope.onnx")], /cannot read model .*nope.onnx/],
        ["missing bank", ["--fills", "patches", "--bank", join(dir, "nope.scbank")], /cannot read patch bank .*nope.scbank/],
        ["unknown bank split", ["--fills", "patches", "--bank-splits", "train"], /split 'train' is not in dataset tiny/],
      ] as [string, string[], RegExp][]) {
        const out = join(dir, `ev-late-${name.replace(/\W+/g, "-")}`);
        expectOneLineError(await run(out, ...extra), pattern);
        expect(existsSync(out), name).toBe(false);
      }
    });

    it.concurrent("an existing folder stays without run.json, so --report-only still finds no evaluation", async () => {
      const out = join(dir, "ev-existing");
      mkdirSync(out);
      expectOneLineError(await run(out, "--models", join(dir, "nope.onnx")), /cannot read model/);
      expect(existsSync(join(out, "run.json"))).toBe(false);
      expectOneLineError(await segcauseAsync("evaluate", "--report-only", "--out", out), /holds no evaluation \(no run.json\)/);
      const ok = await run(out);
      expect(ok.code, ok.stderr).toBe(0);
      expect(existsSync(join(out, "run.json"))).toBe(true);
      // explain and evaluate do not write into each other's folders
      const ex = [
        "explain",
        "--method",
        "zero",
        "--model",
        model,
        "--image",
        image,
        "--roi",
        "16,0,8,8",
        "--no-progress",
        "--batch-size",
        "4",
        "--threads",
        "1",
        "--workers",
        "1",
      ];
      expectOneLineError(
        await segcauseAsync(...ex, "--out", out),
        /holds the output of `segcause evaluate`, which `segcause explain` would mix with/,
      );
      const exOut = join(dir, "ex-folder");
      expect((await segcauseAsync(...ex, "--out", exOut)).code).toBe(0);
      expectOneLineError(await run(exOut), /holds the output of `segcause explain`, which `segcause evaluate` would mix with/);
      // a folder of images without a manifest names `segcause dataset init`
      expectOneLineError(await run(join(dir, "ev-x"), "--dataset", dir), /holds no manifest\.json \(write one with `segcause dataset init --images/);
    });
  });

  it.concurrent("--report-only on a folder without an evaluation", async () => {
    const out = join(dir, "ev-empty");
    expectOneLineError(await segcauseAsync("evaluate", "--report-only", "--out", out), /--report-only: .* holds no evaluation/);
    expect(existsSync(out)).toBe(false);
  });

  it.concurrent("RoI CSV without rows", async () => {
    const csv = join(dir, "rois.csv");
    writeFileSync(csv, "image,row,col,size\n");
    expect(() => parseRoiSpec(csv)).toThrow(/has a header but no RoI/);
  });
});

describe("strategies: bad settings and unreadable maps", () => {
  it.concurrent("--block 0 and other impossible settings are refused in one line before any map is read", async () => {
    const maps = join(dir, "no-maps");
    mkdirSync(maps, { recursive: true });
    for (const [flag, value, pattern] of [
      ["--block", "0", /--block must be an integer >= 1/],
      ["--radius", "-1", /--radius must be an integer >= 0/],
      ["--rel", "5", /--rel must be a fraction in \[0, 1\]/],
      ["--tau", "-1", /--tau must be >= 0/],
      ["--gallery", "-1", /--gallery must be an integer >= 0/],
    ] as const) {
      expectOneLineError(await segcauseAsync("strategies", "--maps", maps, "--out", join(dir, "st"), flag, value), pattern);
    }
    expectOneLineError(await segcauseAsync("strategies", "--maps", maps, "--out", aFile), /is a file, not a folder/);
    expect(() => strategyStats(new Float32Array(64), 8, 8, { row: 0, col: 0, height: 2, width: 2 }, { block: 0 })).toThrow(
      /--block must be an integer >= 1/,
    );
  });

  it.concurrent("a corrupt map.npy is named, not an internal error", async () => {
    const d = join(dir, "corrupt-map");
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, "map.npy"), "garbage");
    writeFileSync(
      join(d, "manifest.json"),
      JSON.stringify({ format: "segcause.attribution/1", method: "pdcr", provenance: { target: { roi: { row: 0, col: 0, height: 8, width: 8 } } } }),
    );
    expectOneLineError(
      await segcauseAsync("strategies", "--maps", d, "--out", join(dir, "st2")),
      /corrupt-map\/map.npy is not a readable attribution map/,
    );
  });
});

describe("components: bad arguments", () => {
  const base = () => ["components", "--model", model, "--image", image, "--roi", "16,0,8,8", "--ablation", "zero", "--no-progress"];
  it.concurrent("--batch-size 0 is refused in one line naming the flag", async () => {
    expectOneLineError(await segcauseAsync(...base(), "--out", join(dir, "c1"), "--batch-size", "0"), /--batch-size must be an integer >= 1/);
  });
  it.concurrent("--out that is a file is refused before the run", async () => {
    expectOneLineError(await segcauseAsync(...base(), "--out", aFile), /is a file, not a folder/);
  });
  it.concurrent("options of another level are refused", async () => {
    expectOneLineError(
      await segcauseAsync(...base(), "--out", join(dir, "c2"), "--channel-group", "4"),
      /--channel-group only applies to --level channel/,
    );
    expectOneLineError(await segcauseAsync(...base(), "--out", join(dir, "c3"), "--cell", "2"), /--cell only applies to --level spatial/);
  });
  it.concurrent("options the ablation would ignore are refused", async () => {
    expectOneLineError(
      await segcauseAsync(...base(), "--out", join(dir, "c5"), "--samples", "10"),
      /--samples only applies to --ablation resample \(zero ablation is deterministic/,
    );
    expectOneLineError(await segcauseAsync(...base(), "--out", join(dir, "c6"), "--screen", "2"), /--screen only applies to --ablation resample/);
    expectOneLineError(
      await segcauseAsync(...base(), "--out", join(dir, "c7"), "--donors", dir),
      /--donors only applies to --ablation resample or mean/,
    );
    expectOneLineError(
      await segcauseAsync(...base(), "--out", join(dir, "c8"), "--max-donors", "5"),
      /--max-donors only applies to --ablation resample or mean/,
    );
    const resample = base().map((a) => (a === "zero" ? "resample" : a));
    expectOneLineError(await segcauseAsync(...resample, "--out", join(dir, "c9"), "--splits", "train"), /--splits only applies with --donors/);
    expectOneLineError(await segcauseAsync(...resample, "--out", join(dir, "c10"), "--max-donors", "3"), /--max-donors only applies with --donors/);
    expectOneLineError(
      await segcauseAsync(...base(), "--out", join(dir, "c15"), "--donor-sampling", "exact"),
      /--donor-sampling only applies to --ablation resample/,
    );
    expectOneLineError(
      await segcauseAsync(...resample, "--out", join(dir, "c16"), "--donor-sampling", "exact", "--samples", "10"),
      /--samples does not apply to --donor-sampling exact/,
    );
  });
  it.concurrent("--max-donors 0 says so", async () => {
    expectOneLineError(await segcauseAsync(...base(), "--out", join(dir, "c4"), "--max-donors", "0"), /--max-donors must be an integer >= 1/);
  });
  it.concurrent("a donor folder without images, and the model's input named as --tensor, say what they are", async () => {
    const empty = join(dir, "no-images");
    mkdirSync(empty, { recursive: true });
    const resample = base().map((a) => (a === "zero" ? "resample" : a));
    expectOneLineError(await segcauseAsync(...resample, "--out", join(dir, "c11"), "--donors", empty), /donor folder .*no-images holds no image/);
    expectOneLineError(
      await segcauseAsync(...base(), "--out", join(dir, "c12"), "--level", "channel", "--tensor", "image"),
      /'image' is the model's input, not a tensor inside the network/,
    );
    // donors that are only the explained image, and --splits with a folder (it chooses from manifests)
    const self = join(dir, "only-self");
    mkdirSync(self, { recursive: true });
    copyFileSync(image, join(self, "same.png"));
    expectOneLineError(
      await segcauseAsync(...resample, "--out", join(dir, "c13"), "--donors", self),
      /every donor image in .*only-self is the explained image itself/,
    );
    expectOneLineError(
      await segcauseAsync(...resample, "--out", join(dir, "c14"), "--donors", self, "--splits", "train"),
      /--splits chooses donors from a dataset manifest, but .*only-self is a folder of images/,
    );
  });
  it.concurrent("--list with a missing model or a folder", async () => {
    expectOneLineError(await segcauseAsync("components", "--list", "--model", join(dir, "nope.onnx")), /cannot read model .*nope.onnx \(ENOENT\)/);
    expectOneLineError(await segcauseAsync("components", "--list", "--model", dir), /model .* is a folder, not a regular file/);
  });
});

describe("bank build: bad arguments", () => {
  const imgs = () => join(dir, "bank-images");
  beforeAll(async () => {
    mkdirSync(imgs(), { recursive: true });
    await writeImage(imgs(), "a.png", (_y, x) => (x * 8) % 256);
  });
  const cases: [string, string[], RegExp][] = [
    ["--per-image 0, which would make an empty bank", ["--size", "32,32", "--per-image", "0"], /--per-image must be an integer >= 1, got '0'/],
    ["negative --per-image", ["--size", "32,32", "--per-image", "-5"], /--per-image must be an integer >= 1/],
    ["--size 0,32", ["--size", "0,32"], /--size must be two positive integers H,W/],
    ["--size 32.5,32", ["--size", "32.5,32"], /--size must be two positive integers H,W/],
    ["--size and --model", ["--size", "16,16", "--model", "MODEL"], /--size and --model both give the input size/],
  ];
  for (const [name, extra, pattern] of cases) {
    it.concurrent(name, async () => {
      const out = join(dir, `bank-${name.replace(/\W+/g, "-")}.scbank`);
      expectOneLineError(
        await segcauseAsync("bank", "build", "--images", imgs(), "--out", out, "--no-progress", ...extra.map((a) => a.replace("MODEL", model))),
        pattern,
      );
      expect(existsSync(out)).toBe(false);
    });
  }
  it.concurrent("--out that is a folder, or under a file", async () => {
    expectOneLineError(
      await segcauseAsync("bank", "build", "--images", imgs(), "--size", "32,32", "--out", dir),
      /is a folder; it must be a file name/,
    );
    expectOneLineError(
      await segcauseAsync("bank", "build", "--images", imgs(), "--size", "32,32", "--out", join(aFile, "x.scbank")),
      /a-file is a file, not a folder/,
    );
  });
  it.concurrent("without --size or --model, the images' shared size is used (and said)", async () => {
    const out = join(dir, "bank-inferred.scbank");
    const r = await segcauseAsync("bank", "build", "--images", imgs(), "--out", out, "--no-progress", "--per-image", "4");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(
      /note: no --size or --model: the bank is cut at 32x32, the size every image has \(pass --size H,W or --model to cut it at a model's input size\)/,
    );
    expect(r.stdout).toMatch(/wrote 4 patches of 8x8 from 1 images of .* \(resized to 32x32\)/);
  });
  it.concurrent("without --size or --model, images of several sizes: one line saying which flag to add", async () => {
    const mixed = join(dir, "bank-mixed");
    mkdirSync(mixed, { recursive: true });
    await writeImage(mixed, "a.png", () => 10, 32);
    await writeImage(mixed, "b.png", () => 10, 16);
    const out = join(dir, "bank-mixed.scbank");
    expectOneLineError(
      await segcauseAsync("bank", "build", "--images", mixed, "--out", out, "--no-progress"),
      /the images have 2 sizes \(32x32 in a\.png, 16x16 in b\.png\), so the bank's size cannot be read from them \(add --size H,W \(the model's input size\) or --model m\.onnx\)/,
    );
    expect(existsSync(out)).toBe(false);
  });
  it.concurrent("the library refuses a non-positive per-image count too", async () => {
    await expect(buildPatchBank([image], { height: 32, width: 32, perImage: -5 })).rejects.toThrow(/patches per image must be a positive integer/);
  });
});

describe("input files: devices, pipes and secrets", () => {
  /** The CLI with a timeout, so that a read that blocks (a FIFO nobody writes) fails the test in seconds. */
  const run = (...args: string[]) =>
    runNodeAsync([join(import.meta.dirname, "..", "bin", "segcause.js"), ...args], { timeoutMs: 20_000, label: "segcause explain" });
  let fifo: string, secret: string;
  beforeAll(() => {
    fifo = join(dir, "fifo");
    spawnSync("mkfifo", [fifo]);
    secret = join(dir, "shadow");
    writeFileSync(secret, "root:*:20245:0:99999:7:::\n");
  });
  const explain = (...args: string[]) => [
    "explain",
    "--model",
    model,
    "--image",
    image,
    "--roi",
    "16,0,8,8",
    "--method",
    "zero",
    "--no-progress",
    "--threads",
    "1",
    "--out",
    join(dir, "dev-out"),
    ...args,
  ];
  const swap = (args: string[], flag: string, value: string) => args.map((a, i) => (args[i - 1] === flag ? value : a));
  for (const [flag, what] of [
    ["--image", "image"],
    ["--model", "model"],
    ["--card", "model card"],
    ["--bank", "patch bank"],
    ["--mask", "mask"],
  ] as const) {
    it.concurrent(`${flag} /dev/zero or a FIFO: refused at once, in one line`, async () => {
      for (const [path, kind] of [
        ["/dev/zero", "a device"],
        [fifo, "a named pipe \\(FIFO\\)"],
      ]) {
        const base = explain(
          ...(flag === "--card" || flag === "--mask" ? [flag, "X"] : []),
          ...(flag === "--bank" ? ["--method", "pdcr", "--bank", "X"] : []),
        );
        const r = await run(...swap(base, flag, path));
        expectOneLineError(r, new RegExp(`${what} ${path.replace(/[/.]/g, "\\$&")} is ${kind}, not a regular file`));
      }
    });
  }
  it.concurrent("--card naming a file that is not JSON: its contents are never shown", async () => {
    const r = await run(...explain("--card", secret));
    expectOneLineError(r, /model card .*shadow is not valid JSON \(a syntax error; its contents are not shown\)/);
    expect(r.stderr).not.toMatch(/root|20245/);
  });
  it.concurrent("--bank naming a file that is not a bank: not shown either", async () => {
    expectOneLineError(await run(...explain("--method", "pdcr", "--bank", secret)), /shadow is not a segcause patch bank/);
  });
});
