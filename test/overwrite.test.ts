/**
 * Reruns replace segcause's own outputs, as output folders always did, but never without a word; a
 * file segcause did not write is refused, as a folder of other files is.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { causalFixture, segcause } from "./helpers/cli.js";
import { writeImage } from "./helpers/tiny.js";

let fx: Awaited<ReturnType<typeof causalFixture>>;
let images: string;
beforeAll(async () => {
  fx = await causalFixture();
  images = join(fx.dir, "images");
  mkdirSync(images);
  for (const n of ["a", "b"]) await writeImage(images, `${n}.png`, (y, x) => (y * 7 + x * 3) % 256);
});

describe("bank build --out", () => {
  const build = (out: string, ...more: string[]) =>
    segcause("bank", "build", "--images", images, "--out", out, "--per-image", "4", "--no-progress", ...more);

  it("replaces an existing bank with a note (none under --quiet, none for a new file)", () => {
    const out = join(fx.dir, "again.scbank");
    const first = build(out);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).not.toMatch(/replaces/);
    const second = build(out, "--seed", "3");
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).toContain(`note: --out ${out} is an existing patch bank: this build replaces it\n`);
    const quiet = build(out, "--quiet");
    expect(quiet.code, quiet.stderr).toBe(0);
    expect(quiet.stderr).toBe("");
  });

  it("refuses a file that is not a segcause bank, and leaves it as it was", () => {
    const out = join(fx.dir, "notes.txt");
    writeFileSync(out, "my notes\n");
    const r = build(out);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(
      /^segcause: error: --out .*notes\.txt exists and is not a segcause bank \(give --out a new file name: segcause does not overwrite files it did not write\)/,
    );
    expect(readFileSync(out, "utf8")).toBe("my notes\n");
  });
});

describe("explain --out", () => {
  it("a rerun into a finished result says it replaces it (method and time), before it runs", () => {
    const out = join(fx.dir, "result");
    const args = ["explain", "--method", "zero", "--model", fx.model, "--image", fx.image, "--roi", "16,0,8,8", "--out", out, "--no-progress"];
    const first = segcause(...args);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).not.toMatch(/replaces/);
    const created = JSON.parse(readFileSync(join(out, "manifest.json"), "utf8")).provenance.createdAt as string;
    const second = segcause(...args);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr.split("\n")[0]).toBe(
      `note: --out ${out} holds a finished zero result (written ${created.slice(0, 19).replace("T", " ")} UTC): this run replaces it`,
    );
    const quiet = segcause(...args, "--quiet");
    expect(quiet.code, quiet.stderr).toBe(0);
    expect(quiet.stderr).toBe("");
  });
});
