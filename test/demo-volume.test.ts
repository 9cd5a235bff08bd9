/**
 * End to end: `segcause demo --volume` on a hippocampus test case of ../shared/data (shipped 3D model,
 * the data set's test volume and label map, bundled bank of boxes from training volumes). The full demo (fast
 * schedule, about 280 passes) takes under a minute on 2 cores; the paper schedule is tested bounded.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readNifti } from "../src/data/volume/nifti.js";
import { runNode } from "./helpers/cli.js";
import { tmp } from "./helpers/tiny.js";

const BIN = join(import.meta.dirname, "..", "bin", "segcause.js");
const ROOT = join(import.meta.dirname, "..");
const cfg = JSON.parse(readFileSync(join(ROOT, "samples", "demo-volume.json"), "utf8")) as { dataset: string; image: string; roi: number[] };
// the demo's default data folder (the data set's files are not shipped)
const DATA = join(ROOT, "..", "shared", "data", cfg.dataset);
const haveData = existsSync(join(DATA, cfg.image));
if (!haveData) console.warn(`demo-volume.test.ts: ${DATA} is absent, so the volume demo's runs are skipped (CI has the data)`);

describe("segcause demo --volume", () => {
  it("without the data set, says in one line where to point it", () => {
    const r = runNode([BIN, "demo", "--volume", "--data", join(tmp(), "nowhere"), "--out", join(tmp(), "x")]);
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^segcause: error: the volume demo reads images\/hippocampus_243\.nii\.gz of the hippocampus data set .* \(pass --data /,
    );
  });
});

describe.skipIf(!haveData)("segcause demo --volume on the data set", () => {
  it("explains the bundled volume, says its cost first, shows one progress display, writes the explain outputs and says what to open", async () => {
    const out = join(tmp(), "demo-volume");
    const r = runNode([BIN, "demo", "--volume", "--out", out], { timeoutMs: 500_000, label: "segcause demo --volume" });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^segcause demo --volume: PdCR map \(fast schedule/);
    expect(r.stdout).toContain(`open ${join(out, "mosaic.png")}`);
    const m = JSON.parse(readFileSync(join(out, "map.json"), "utf8"));
    expect(m).toMatchObject({ method: "pdcr", dims: [34, 53, 24], outcome: "dice", reference: "ground-truth" });
    // the RoI is on the border of the labelled hippocampus: the model segments it, and some boxes move it
    expect(m.baseOutcome).toBeGreaterThan(50);
    expect(m.units.some((u: { effect: number }) => u.effect < 0)).toBe(true);
    expect(r.stdout).toContain(`${m.forwardPasses} forward passes`);
    // stderr: the cost line, then one progress display (non-terminal: plain lines) ending at the passes run
    const lines = r.stderr.trim().split("\n");
    expect(lines[0]).toMatch(
      /^planned: \d+ boxes, ≈\d+ passes \(≈\d+:\d\d\), at most \d+ \(\d+:\d\d\) at \d+ ms per pass \(measured\); fast schedule/,
    );
    expect(lines.slice(1).every((l) => / passes · /.test(l))).toBe(true);
    expect(lines.at(-1)).toMatch(new RegExp(`^100% ${m.forwardPasses}/≈${m.forwardPasses} `));
    for (const f of ["map.nii.gz", "stderr.nii.gz", "mosaic.png", "map.json", "manifest.json"]) expect(existsSync(join(out, f)), f).toBe(true);
    expect(existsSync(join(out, ".checkpoint.json"))).toBe(false);
    // the map lies on the input volume's grid, with its affine
    const [map, image] = await Promise.all([readNifti(join(out, "map.nii.gz")), readNifti(join(DATA, cfg.image))]);
    expect(map.dims).toEqual(image.dims);
    expect(map.affine).toEqual(image.affine);
  });

  it("the paper schedule bounded by --max-passes stops with only its checkpoint written (--json says so)", () => {
    const out = join(tmp(), "demo-volume-paper");
    const r = runNode([BIN, "demo", "--volume", "--schedule", "paper", "--max-passes", "40", "--out", out, "--json"], {
      label: "segcause demo --volume --schedule paper",
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^planned: \d+ boxes, at most \d+ passes .*at most 1 \+ 3·\d+ screening \+ 50 per box that passes the screen$/m);
    expect(JSON.parse(r.stdout)).toMatchObject({
      format: "segcause.demo-summary/1",
      complete: false,
      stoppedAt: "--max-passes 40",
      ranPasses: 40,
      keptSamples: 40,
      checkpoint: join(out, ".checkpoint.json"),
    });
    expect(existsSync(join(out, ".checkpoint.json"))).toBe(true);
    expect(existsSync(join(out, "manifest.json"))).toBe(false);
  });

  it("a method without a volume form is refused in one line", () => {
    const r = runNode([BIN, "demo", "--volume", "--method", "lime", "--out", join(tmp(), "x")]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n")).toEqual([
      "segcause: error: method lime does not run on volumes yet (use --method pdcr, zero, occlusion, rise, saliency, gradxinput, ig, smoothgrad, gradcam with --volume (see `segcause methods`))",
    ]);
  });
});
