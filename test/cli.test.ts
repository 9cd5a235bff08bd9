import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { PatchBank } from "../src/data/patchbank.js";
import { methodNames } from "../src/explain/catalog.js";
import { decodeNpy } from "../src/util/npy.js";
import { causalFixture, segcause } from "./helpers/cli.js";
import { flatBank, nanModel, writeImage, writeMask, writeModel } from "./helpers/tiny.js";

let dir: string, model: string, image: string, bank: string;

beforeAll(async () => {
  ({ dir, model, image, bank } = await causalFixture());
});

describe("segcause explain (CLI)", () => {
  it("writes every output with provenance", () => {
    const out = join(dir, "ok");
    const r = segcause("explain", "--model", model, "--image", image, "--roi", "16,0,8,8", "--bank", bank, "--out", out, "--no-progress");
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("model's own unperturbed prediction");
    for (const f of [
      "map.npy",
      "stderr.npy",
      "map.json",
      "heatmap.png",
      "overlay.png",
      "heatmap-input.png",
      "overlay-input.png",
      "summary.png",
      "stats.json",
      "manifest.json",
    ]) {
      expect(existsSync(join(out, f)), f).toBe(true);
    }
    expect(existsSync(join(out, ".checkpoint.json"))).toBe(false);
    const npy = decodeNpy(readFileSync(join(out, "map.npy")));
    expect(npy.shape).toEqual([32, 32]);
    expect(npy.data[16]).toBeLessThan(-50);
    expect(npy.data[31 * 32]).toBe(0);
    const manifest = JSON.parse(readFileSync(join(out, "manifest.json"), "utf8"));
    expect(manifest.reference).toBe("prediction");
    expect(manifest.provenance.model.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(manifest.provenance.case.imageSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(manifest.provenance.seed).toBe(0);
    expect(manifest.provenance.settings).toMatchObject({
      blockSize: 8,
      schedule: "fast",
      strata: 3 /* the test bank has 3 patches: one stratum each */,
      maxSamples: 50,
      tau: 0.02,
    });
    expect(manifest.provenance.intervention.bankSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(manifest.provenance.versions.segcause).toBeDefined();
    expect(manifest.forwardPasses).toBeGreaterThan(1);
    expect(manifest.notes.some((n: string) => n.includes("assumed"))).toBe(true);
    const stats = JSON.parse(readFileSync(join(out, "stats.json"), "utf8"));
    expect(stats.units).toBe(15);
    expect(stats.negative).toBe(4);
    // the causal region's 4 blocks (about -67 Dice points each) differ from zero after the correction; the other 11 were cleared
    expect(stats.evidence.excludesZero).toEqual({ total: 4, negative: 4, positive: 0 });
    expect(stats.evidence.screenedAlone + stats.evidence.screenedByGroup).toBe(11);
    expect(stats.histogram.reduce((s: number, b: { blocks: number }) => s + b.blocks, 0)).toBe(16);
    const blocks = JSON.parse(readFileSync(join(out, "map.json"), "utf8")).units;
    expect(blocks).toHaveLength(15);
  });

  it("runs the zero ablation without a bank", () => {
    const out = join(dir, "zero");
    const r = segcause("explain", "--method", "zero", "--model", model, "--image", image, "--roi", "16,0,8,8", "--out", out, "--no-progress");
    expect(r.code).toBe(0);
    expect(JSON.parse(readFileSync(join(out, "manifest.json"), "utf8")).forwardPasses).toBe(16);
  });
});

describe("interruption (CLI)", () => {
  // The shipped U-Net with the paper's schedule runs for minutes: killed once its first progress line
  // is out, with two ONNX Runtime worker threads in flight (exiting under running threads aborts, exit 134).
  it("kill during a run with worker threads exits 143 with the message, not an abort", async () => {
    const root = join(import.meta.dirname, "..");
    const out = join(dir, "killed");
    const child = spawn(
      process.execPath,
      [
        join(root, "bin", "segcause.js"),
        "explain",
        "--model",
        join(root, "models/unet-ph2.onnx"),
        "--image",
        join(root, "samples/lesion.png"),
        "--roi",
        "56,112,32,32",
        "--bank",
        join(root, "samples/lesion-bank.scbank"),
        "--schedule",
        "paper",
        "--workers",
        "2",
        "--threads",
        "1",
        "--batch-size",
        "4",
        "--out",
        out,
      ],
      { timeout: 100_000, killSignal: "SIGKILL" },
    );
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
      if (/screening/.test(stderr) && !child.killed) child.kill("SIGTERM");
    });
    const code = await new Promise<number | null>((resolve) => child.on("close", (c) => resolve(c)));
    expect(stderr).not.toMatch(/terminate called|Napi::Error/);
    expect(stderr).toMatch(/segcause: interrupted \(SIGTERM\); (nothing had finished yet, so a rerun starts over|finished work is kept)/);
    expect(code).toBe(143);
    expect(existsSync(join(out, "map.npy"))).toBe(false); // no complete-looking output
  }, 120_000);
});

describe("segcause methods / occlusion (CLI)", () => {
  it("lists every method with one line each", () => {
    const r = segcause("methods");
    expect(r.code).toBe(0);
    const names = r.stdout
      .trim()
      .split("\n")
      .map((l) => l.split(" ")[0]);
    expect(names).toEqual(methodNames());
    expect(names.slice(0, 3)).toEqual(["pdcr", "zero", "occlusion"]);
  });

  it("runs occlusion with its own defaults and records them", () => {
    const out = join(dir, "occ");
    const r = segcause(
      "explain",
      "--method",
      "occlusion",
      "--fill-kind",
      "blur",
      "--model",
      model,
      "--image",
      image,
      "--roi",
      "16,0,8,8",
      "--out",
      out,
      "--no-progress",
    );
    expect(r.code, r.stderr).toBe(0);
    const m = JSON.parse(readFileSync(join(out, "manifest.json"), "utf8"));
    expect(m.provenance.settings).toMatchObject({ blockSize: 16, stride: 8, tau: 0, fill: "blur", sigma: 5 });
  });

  it("refuses --stride for block-partition methods", () => {
    const r = segcause(
      "explain",
      "--method",
      "zero",
      "--stride",
      "4",
      "--model",
      model,
      "--image",
      image,
      "--roi",
      "16,0,8,8",
      "--out",
      join(dir, "zs"),
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--stride is not an option of method zero \(it belongs to: occlusion\)/);
  });
});

describe("bad inputs give one clear line and no complete-looking output", () => {
  const cases: [string, () => string[], RegExp][] = [
    [
      "corrupt ONNX",
      () => {
        const p = join(dir, "corrupt.onnx");
        writeFileSync(p, Buffer.from([8, 7, 0x12, 0xff, 0xff, 0x01, 3, 4]));
        return ["--model", p];
      },
      /ONNX/,
    ],
    [
      "non-ONNX file",
      () => {
        const p = join(dir, "text.onnx");
        writeFileSync(p, "hello, I am not a model");
        return ["--model", p];
      },
      /ONNX/,
    ],
    ["missing model", () => ["--model", join(dir, "nope.onnx")], /cannot read model/],
    [
      "input size not matching the graph",
      () => ["--input-size", "64,64"],
      /height is 32 in the graph \[N, 3, 32, 32\] read as channels-first, but the model card or its flags say 64/,
    ],
    [
      "channels not matching the graph",
      () => ["--channels", "gray"],
      /channels is 3 in the graph \[N, 3, 32, 32\] read as channels-first, but the model card or its flags say 1/,
    ],
    ["RoI outside the image", () => ["--roi", "30,30,8,8"], /outside the 32x32 model input/],
    ["empty RoI", () => ["--roi", "4,4,0,0"], /RoI is empty/],
    ["unparsable RoI", () => ["--roi", "a,b"], /cannot parse RoI/],
    [
      "undecodable image",
      () => {
        const p = join(dir, "bad.png");
        writeFileSync(p, "not a png");
        return ["--image", p];
      },
      /cannot decode image/,
    ],
    [
      "bank with the wrong patch size",
      () => ["--bank", join(dir, "bank4.scbank"), "--block", "8"],
      /--block 8 does not match the bank's 4x4 patches/,
    ],
    ["block larger than the input", () => ["--block", "64"], /--block 64: the block does not fit the 32x32 input/],
    [
      "occlusion stride larger than its window",
      () => ["--method", "occlusion", "--block", "4", "--stride", "8", "--bank", ""],
      /--stride 8 is larger than the block \(4 px\)/,
    ],
    ["not a bank", () => ["--bank", image], /not a segcause patch bank/],
    ["pdcr without a bank", () => ["--bank", ""], /needs a patch bank/],
    ["model that outputs NaN", () => ["--model", writeModel(dir, "nan.onnx", nanModel())], /NaN/],
    ["empty ground-truth mask", () => ["--mask", join(dir, "empty-mask.png")], /mask .* is empty/],
    ["ground truth absent from the RoI", () => ["--mask", join(dir, "far-mask.png")], /empty inside the RoI/],
    ["bad number", () => ["--samples", "many"], /--samples must be a whole number written in digits, got 'many'/],
  ];

  beforeAll(async () => {
    await writeMask(dir, "empty-mask.png", () => false);
    await writeMask(dir, "far-mask.png", (y) => y < 4);
    await flatBank([1, 2], 4).save(join(dir, "bank4.scbank"));
  });

  for (const [name, args, pattern] of cases) {
    it(name, () => {
      const out = join(dir, `bad-${name.replace(/\W+/g, "-")}`);
      const base: Record<string, string> = { "--model": model, "--image": image, "--roi": "16,0,8,8", "--bank": bank, "--out": out };
      const extra = args();
      const merged: string[] = [];
      for (const [k, v] of Object.entries(base)) if (!extra.includes(k)) merged.push(k, v);
      for (let i = 0; i < extra.length; i += 2) if (extra[i + 1] !== "") merged.push(extra[i], extra[i + 1]);
      const r = segcause("explain", "--no-progress", ...merged);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/^segcause: error: /);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toMatch(pattern);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(existsSync(join(out, "manifest.json"))).toBe(false);
    });
  }
});

describe("segcause components (CLI)", () => {
  it("lists components and writes ranked effects with zero ablation", () => {
    const list = segcause("components", "--list", "--model", model);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/Conv/);
    const out = join(dir, "comp");
    const r = segcause("components", "--model", model, "--image", image, "--roi", "16,0,8,8", "--ablation", "zero", "--out", out, "--no-progress");
    expect(r.code, r.stderr).toBe(0);
    for (const f of ["components.json", "components.csv", "components.png", "depth-profile.png", "manifest.json"])
      expect(existsSync(join(out, f)), f).toBe(true);
    expect(existsSync(join(out, ".checkpoint.json"))).toBe(false); // removed once the results are written
    const csv = readFileSync(join(out, "components.csv"), "utf8").trim().split("\n");
    expect(csv[0]).toMatch(/^rank,unit,network_order,effect/);
    expect(csv.length).toBeGreaterThan(1);
  });

  it("an unknown tensor is one line that lists valid ones", () => {
    const r = segcause(
      "components",
      "--model",
      model,
      "--image",
      image,
      "--roi",
      "16,0,8,8",
      "--ablation",
      "zero",
      "--tensor",
      "nope",
      "--out",
      join(dir, "c2"),
    );
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/unknown tensor 'nope'; valid tensors include/);
  });

  it("resample without donors says what to pass", () => {
    const r = segcause("components", "--model", model, "--image", image, "--roi", "16,0,8,8", "--out", join(dir, "c3"));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/resample ablation needs donor images/);
  });
});

describe("segcause bank build", () => {
  it("builds a seeded bank from a folder and records its sources", async () => {
    const imgs = join(dir, "bank-images");
    mkdirSync(imgs);
    await writeImage(imgs, "a.png", (_y, x) => (x * 8) % 256);
    await writeImage(imgs, "b.png", (y) => (y * 8) % 256);
    const out1 = join(dir, "b1.scbank"),
      out2 = join(dir, "b2.scbank");
    for (const out of [out1, out2]) {
      const r = segcause("bank", "build", "--images", imgs, "--size", "32,32", "--per-image", "10", "--seed", "3", "--out", out, "--no-progress");
      expect(r.code, r.stderr).toBe(0);
    }
    const b = await PatchBank.load(out1);
    expect(b.count).toBe(20);
    expect(b.patchSize).toBe(8);
    expect(b.header.sources.map((s) => s.name)).toEqual(["a.png", "b.png"]);
    expect(b.header.seed).toBe(3);
    expect(readFileSync(out1).equals(readFileSync(out2))).toBe(true);
    // more patches per image than a 32x32 image has aligned 8x8 cells: said, not silently capped
    const r = segcause("bank", "build", "--images", imgs, "--size", "32,32", "--per-image", "100", "--out", join(dir, "b3.scbank"), "--no-progress");
    expect(r.stderr).toContain("a 32x32 image has 16 aligned cells of 8x8, so each image gives 16 patches, not --per-image 100");
    expect((await PatchBank.load(join(dir, "b3.scbank"))).count).toBe(32);
  });

  it("without --model or --size, cuts at the size the images share, and names the flags when they have several", async () => {
    const same = join(dir, "same-size");
    mkdirSync(same, { recursive: true });
    for (const n of ["a", "b"]) await writeImage(same, `${n}.png`, (_y, x) => (x * 8) % 256, 32);
    const ok = segcause("bank", "build", "--images", same, "--out", join(dir, "same.scbank"), "--no-progress");
    expect(ok.code, ok.stderr).toBe(0);
    expect((await PatchBank.load(join(dir, "same.scbank"))).header.resizedTo).toMatchObject({ height: 32, width: 32 });
    const mixed = join(dir, "mixed-size");
    mkdirSync(mixed, { recursive: true });
    await writeImage(mixed, "a.png", () => 100, 32);
    await writeImage(mixed, "b.png", () => 100, 16);
    const r = segcause("bank", "build", "--images", mixed, "--out", join(dir, "x.scbank"));
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/the images have 2 sizes .*add --size H,W \(the model's input size\) or --model m\.onnx/);
    expect(existsSync(join(dir, "x.scbank"))).toBe(false);
  });
});
