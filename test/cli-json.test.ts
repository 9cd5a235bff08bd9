/** --json prints one JSON document on stdout and nothing else; --quiet prints nothing; info reads as text by default. */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { causalFixture } from "./helpers/cli.js";

const BIN = join(import.meta.dirname, "..", "bin", "segcause.js");
const run = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8", timeout: 300_000, killSignal: "SIGKILL" });

let dir: string, model: string, image: string, bank: string;
beforeAll(async () => {
  ({ dir, model, image, bank } = await causalFixture());
});

describe("--json and --quiet", () => {
  it("explain --json: one JSON summary whose counts add up, notes on stderr", () => {
    const r = run("explain", "--model", model, "--image", image, "--roi", "16,0,8,8", "--bank", bank, "--out", join(dir, "j1"), "--json");
    expect(r.status, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.format).toBe("segcause.explain-summary/1");
    expect(s.method).toBe("pdcr");
    expect(s.units).toBe(15);
    const c = s.counts;
    expect(c.excludesZero.total + c.notDistinguishable.total + c.noInterval.total + c.belowTau + c.screenedAlone + c.screenedByGroup).toBe(15);
    expect(c.excludesZero.negative).toBeGreaterThan(0); // the causal region's blocks: effect about -50 Dice points
    expect(c.test).toMatch(/Benjamini–Hochberg/);
    expect(s.files).toContain("overlay.png");
    expect(r.stderr).toMatch(/note: .*assumed/); // the card's assumptions go to stderr, not stdout
  });

  it("explain --quiet prints nothing and still writes the outputs", () => {
    const out = join(dir, "q1");
    const r = run("explain", "--model", model, "--image", image, "--roi", "16,0,8,8", "--bank", bank, "--out", out, "--quiet");
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe("");
    const j = run(
      "explain",
      "--model",
      model,
      "--image",
      image,
      "--roi",
      "16,0,8,8",
      "--method",
      "zero",
      "--out",
      join(dir, "q2"),
      "--quiet",
      "--json",
    );
    expect(JSON.parse(j.stdout).method).toBe("zero");
    expect(j.stderr).toBe("");
  });

  it("components --json, with and without --list", () => {
    const r = run(
      "components",
      "--model",
      model,
      "--image",
      image,
      "--roi",
      "16,0,8,8",
      "--ablation",
      "zero",
      "--out",
      join(dir, "c1"),
      "--json",
      "--no-progress",
    );
    expect(r.status, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.format).toBe("segcause.components-summary/1");
    expect(s.units.length).toBeGreaterThan(0);
    expect(s.counts.units).toBe(s.units.length);
    // zero ablation is one deterministic pass per component: nothing is tested against zero
    expect(s.counts.excludesZero.total).toBe(0);
    const l = run("components", "--list", "--model", model, "--json");
    expect(JSON.parse(l.stdout).components.some((c: { name: string }) => /Conv/.test(c.name))).toBe(true);
  });

  it("info is readable text by default and JSON under --json", () => {
    const t = run("info", "--model", model);
    expect(t.status, t.stderr).toBe(0);
    expect(t.stdout).toMatch(/^.*causal\.onnx\n/);
    expect(t.stdout).toMatch(/input: {2}\S+ \[/);
    expect(t.stdout).toMatch(/assumed \(no card said otherwise\):\n {4}- /);
    expect(() => JSON.parse(t.stdout)).toThrow();
    const j = run("info", "--model", model, "--json");
    const s = JSON.parse(j.stdout);
    expect(s.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(s.assumptions.length).toBeGreaterThan(0);
  });

  it("demo --json on an unsigned method: JSON only, with no signed counts", () => {
    const r = run("demo", "--method", "saliency", "--out", join(dir, "d1"), "--json", "--no-progress");
    expect(r.status, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.format).toBe("segcause.demo-summary/1");
    expect(s.signed).toBe(false);
    expect(s.counts).toBeNull(); // a gradient map carries no per-pixel uncertainty
    expect(s.description).toMatch(/^saliency map/);
    expect(r.stderr).toMatch(/segcause demo: saliency map/);
  });

  it("demo's closing line fits an unsigned map", () => {
    const r = run("demo", "--method", "saliency", "--out", join(dir, "d2"), "--no-progress");
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/open .*overlay\.png: red marks where the map puts importance/);
    expect(r.stdout).not.toMatch(/blue worked against/);
    expect(r.stdout).toMatch(/no test \(gradient maps carry no per-pixel uncertainty\)/);
  });
});

describe("pictures", () => {
  it("overlay.png keeps the image's aspect ratio; overlay-input.png is the model's size", async () => {
    const sharp = (await import("sharp")).default;
    const wide = join(dir, "wide.png");
    await sharp({ create: { width: 64, height: 32, channels: 3, background: { r: 230, g: 230, b: 230 } } })
      .png()
      .toFile(wide);
    const out = join(dir, "wide");
    const r = run("explain", "--model", model, "--image", wide, "--roi", "16,0,8,8", "--bank", bank, "--out", out, "--quiet");
    expect(r.status, r.stderr).toBe(0);
    const input = await sharp(join(out, "overlay-input.png")).metadata();
    expect([input.width, input.height]).toEqual([32, 32]);
    const shown = await sharp(join(out, "overlay.png")).metadata();
    expect(shown.width! / shown.height!).toBeGreaterThan(1); // the picture is wider than tall (title and bar included)
    const map = JSON.parse((await import("node:fs")).readFileSync(join(out, "map.json"), "utf8"));
    expect(map.units[0]).toHaveProperty("evidence");
    expect(map.evidence.units).toBe(15);
  });
});

describe("--help", () => {
  it("shows two or three examples first, each a command of its own", () => {
    for (const cmd of [
      ["explain"],
      ["demo"],
      ["components"],
      ["evaluate"],
      ["info"],
      ["methods"],
      ["strategies"],
      ["bank", "build"],
      ["dataset", "init"],
      ["worker"],
      ["queue", "status"],
    ]) {
      const r = run(...cmd, "--help");
      expect(r.status, cmd.join(" ")).toBe(0);
      expect(r.stdout.startsWith(`Examples:\n  segcause ${cmd.join(" ")}`), cmd.join(" ")).toBe(true);
      const examples = r.stdout
        .split("\n\n")[0]
        .split("\n")
        .filter((l) => l.startsWith("  segcause "));
      expect(examples.length, cmd.join(" ")).toBeGreaterThanOrEqual(cmd[0] === "strategies" ? 1 : 2);
      expect(examples.length).toBeLessThanOrEqual(3);
      expect(r.stdout).toMatch(/\nUsage: segcause /);
    }
  });
});
