/** The CLI's one progress display per run: plain lines without a terminal, nothing under --quiet. */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { causalFixture, segcause } from "./helpers/cli.js";

let dir: string, model: string, image: string, bank: string;
beforeAll(async () => {
  ({ dir, model, image, bank } = await causalFixture());
});

describe("progress on stderr", () => {
  it("explain without a terminal: a first and a last line for a short run, whose count is the run's passes (1 + 3·15 + 50·4)", () => {
    const r = segcause(
      "explain",
      "--model",
      model,
      "--image",
      image,
      "--roi",
      "16,0,8,8",
      "--bank",
      bank,
      "--schedule",
      "paper",
      "--threads",
      "1",
      "--workers",
      "1",
      "--batch-size",
      "4",
      "--out",
      join(dir, "p1"),
    );
    expect(r.code, r.stderr).toBe(0);
    const progress = r.stderr.split("\n").filter((l) => / passes .*· elapsed /.test(l));
    expect(progress.length).toBeGreaterThanOrEqual(1);
    expect(progress.length).toBeLessThanOrEqual(2); // lines at most every 30 s, and the last
    expect(r.stderr).not.toContain("\r");
    expect(progress.at(-1)).toMatch(/^100% 246\/246 passes · estimating · elapsed \d+:\d\d · ETA 0:00$/);
  });

  it("components and bank build print nothing under --quiet", () => {
    const c = segcause(
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
      "--quiet",
    );
    expect(c.code, c.stderr).toBe(0);
    expect(c.stdout + c.stderr).toBe("");
    const out = join(dir, "quiet.scbank");
    const b = segcause("bank", "build", "--images", dir, "--out", out, "--size", "32,32", "--per-image", "4", "--quiet");
    expect(b.code, b.stderr).toBe(0);
    expect(b.stdout + b.stderr).toBe("");
    expect(existsSync(out)).toBe(true);
  });

  it("bank build shows its images as the run's work", () => {
    const b = segcause("bank", "build", "--images", dir, "--out", join(dir, "shown.scbank"), "--size", "32,32", "--per-image", "4");
    expect(b.code, b.stderr).toBe(0);
    expect(b.stderr.split("\n").filter(Boolean).at(-1)).toMatch(/^100% 1\/1 images · cutting patches · elapsed \d+:\d\d · ETA 0:00$/);
  });
});
