/** End to end: the CLI on the bundled default (shipped model, shipped sample, shipped bank). */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { decodeNpy } from "../src/util/npy.js";
import { runNode } from "./helpers/cli.js";
import { tmp } from "./helpers/tiny.js";

const BIN = join(import.meta.dirname, "..", "bin", "segcause.js");

describe("segcause demo", () => {
  it("explains the bundled sample with the bundled model and says what it wrote", () => {
    const out = join(tmp(), "demo");
    // The default (fast) schedule: a few hundred passes of the shipped U-Net.
    // Killed below the suite's limit so that a hang is reported as one.
    const r = runNode([BIN, "demo", "--out", out, "--no-progress"], { timeoutMs: 500_000, label: "segcause demo" });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("ground-truth mask");
    expect(r.stdout).toContain("overlay.png");
    const manifest = JSON.parse(readFileSync(join(out, "manifest.json"), "utf8"));
    expect(manifest.provenance.model.cardSource).toBe("sidecar");
    expect(manifest.provenance.model.assumptions).toEqual([]);
    expect(manifest.provenance.settings.schedule).toBe("fast");
    expect(manifest.forwardPasses).toBeLessThan(8475 / 4); // the paper schedule takes 8,475 here
    const stats = JSON.parse(readFileSync(join(out, "stats.json"), "utf8"));
    // A real model on a lesion: its own RoI is segmented well and some blocks matter.
    expect(stats.baseOutcome).toBeGreaterThan(50);
    expect(stats.negative + stats.positive).toBeGreaterThan(0);
    // The headline counts rest on a stated test: every block is in exactly one of them, and stdout says which.
    const e = stats.evidence;
    expect(e.excludesZero.total + e.notDistinguishable.total + e.noInterval.total + e.belowTau + e.screenedAlone + e.screenedByGroup).toBe(
      stats.units,
    );
    expect(r.stdout).toContain(
      `${e.excludesZero.total} blocks differ from zero (Benjamini–Hochberg, 5% false discovery rate across all ${stats.units}`,
    );
    expect(r.stdout).toContain(`${e.notDistinguishable.total} blocks above τ = 0.02 but not distinguishable from zero`);
    expect(r.stdout).toContain(`${e.screenedByGroup} with their group, never estimated alone`);
    expect(r.stdout).not.toMatch(/had no effect/);
    const map = decodeNpy(readFileSync(join(out, "map.npy")));
    expect(map.shape).toEqual([256, 256]);
    expect(map.data.some((v) => v !== 0)).toBe(true);
    for (const f of ["heatmap.png", "overlay.png", "heatmap-input.png", "overlay-input.png", "summary.png"])
      expect(existsSync(join(out, f))).toBe(true);
  });
});
