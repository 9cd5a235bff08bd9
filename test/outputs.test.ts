/**
 * Output folders: one writer per folder, no file segcause did not write is replaced, a failed write
 * (disk full) never leaves a folder that looks complete, and no name sends a write outside --out.
 */
import { spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { hostname } from "node:os";
import { join, relative } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { cellDir, controlPath, listCells, safe } from "../src/evaluate/store.js";
import { causalFixture, segcause } from "./helpers/cli.js";
import { tmp, writeImage, writeMask } from "./helpers/tiny.js";

const ROOT = join(import.meta.dirname, "..");
const BIN = join(ROOT, "bin", "segcause.js");
const FULL_DISK = join(import.meta.dirname, "helpers", "full-disk.mjs");

function expectOneLineError(r: { code: number | null; stderr: string }, pattern: RegExp): void {
  expect(r.code, r.stderr).toBe(1);
  expect(r.stderr).toMatch(/^segcause: error: /);
  expect(r.stderr.trim().split("\n")).toHaveLength(1);
  expect(r.stderr).toMatch(pattern);
}

/** The CLI with writes of files matching `pattern` failing with ENOSPC (test/helpers/full-disk.mjs). */
function onFullDisk(pattern: string, ...args: string[]) {
  return withFaults({ SEGCAUSE_TEST_FULL_DISK: pattern }, args);
}

function withFaults(env: Record<string, string>, args: string[]) {
  const r = spawnSync(process.execPath, ["--import", FULL_DISK, BIN, ...args], {
    encoding: "utf8",
    timeout: 120_000,
    killSignal: "SIGKILL",
    env: { ...process.env, ...env },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The CLI in the background (several at once); resolves when it exits and its output is read. */
function background(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { timeout: 120_000 });
    let stdout = "",
      stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d));
    child.stderr.on("data", (d: Buffer) => (stderr += d));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

let dir: string, model: string, image: string, bank: string, manifest: string;
const explain = (out: string, ...extra: string[]) => [
  "explain",
  "--model",
  model,
  "--image",
  image,
  "--roi",
  "16,0,8,8",
  "--bank",
  bank,
  "--out",
  out,
  "--no-progress",
  "--batch-size",
  "4",
  "--threads",
  "1",
  "--workers",
  "1",
  ...extra,
];
const components = (out: string) => [
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
  out,
  "--no-progress",
];
const evaluate = (out: string, ...extra: string[]) => [
  "evaluate",
  "--models",
  model,
  "--dataset",
  manifest,
  "--methods",
  "zero",
  "--rois",
  "inside:8x2",
  "--fills",
  "zero",
  "--no-progress",
  "--out",
  out,
  ...extra,
];

beforeAll(async () => {
  ({ dir, model, image, bank } = await causalFixture());
  const data = join(dir, "data");
  mkdirSync(data);
  for (const id of ["a", "b"]) {
    await writeImage(data, `${id}.png`, () => 230);
    await writeMask(data, `${id}-mask.png`, (y) => y >= 16);
  }
  manifest = join(data, "manifest.json");
  writeFileSync(
    manifest,
    JSON.stringify({ name: "tiny", cases: ["a", "b"].map((id) => ({ id, image: `${id}.png`, mask: `${id}-mask.png`, split: "test" })) }),
  );
});

describe("one writer per output folder (explain, components)", () => {
  const lockOf = (out: string, rec: object) => {
    mkdirSync(out, { recursive: true });
    writeFileSync(
      join(out, ".segcause.lock"),
      JSON.stringify({ format: "segcause.lock/1", started: "2026-01-01T00:00:00.000Z", command: "segcause explain ...", ...rec }),
    );
  };

  it("a folder locked by a live run is refused, naming the run", () => {
    const out = join(dir, "locked-live");
    lockOf(out, { pid: process.pid, host: hostname() });
    expectOneLineError(
      segcause(...explain(out)),
      new RegExp(`--out .*locked-live is being written by another segcause run \\(pid ${process.pid}, started 2026-01-01`),
    );
    expect(existsSync(join(out, "manifest.json"))).toBe(false);
    expect(existsSync(join(out, ".segcause.lock"))).toBe(true); // not ours to remove
    expectOneLineError(segcause(...components(out)), /is being written by another segcause run/);
  });

  it("a lock of another host is refused, saying how to clear it", () => {
    const out = join(dir, "locked-remote");
    lockOf(out, { pid: 1234, host: "other-machine" });
    expectOneLineError(
      segcause(...explain(out)),
      /is being written by segcause on host other-machine \(pid 1234, .*if it no longer runs, delete .*locked-remote\/\.segcause\.lock/,
    );
    expect(existsSync(join(out, "manifest.json"))).toBe(false);
  });

  it("the lock of a run that died (same host, no such process) is taken over with a note, and released at the end", () => {
    const out = join(dir, "locked-stale");
    const dead = spawnSync(process.execPath, ["-e", ""], { timeout: 30_000 }).pid;
    lockOf(out, { pid: dead, host: hostname() });
    const r = segcause(...explain(out));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`note: took over the lock of a segcause process that no longer runs (pid ${dead}`);
    expect(existsSync(join(out, ".segcause.lock"))).toBe(false);
    expect(existsSync(join(out, "manifest.json"))).toBe(true);
  });

  it("two runs with different seeds started together into one folder: one writes, the other is refused; the folder is one seed's result", async () => {
    const out = join(dir, "two-seeds");
    const [a, b] = await Promise.all([background(...explain(out, "--seed", "1")), background(...explain(out, "--seed", "2"))]);
    for (const r of [a, b]) if (r.code !== 0) expectOneLineError(r, /is being written by another segcause run/);
    expect([a, b].some((r) => r.code === 0)).toBe(true);
    const seed = JSON.parse(readFileSync(join(out, "manifest.json"), "utf8")).provenance.seed as number;
    const alone = join(dir, `two-seeds-alone-${seed}`);
    expect(segcause(...explain(alone, "--seed", String(seed))).code).toBe(0);
    expect(readFileSync(join(out, "map.npy")).equals(readFileSync(join(alone, "map.npy")))).toBe(true);
    expect(readdirSync(out).filter((n) => n.startsWith(".") && n !== ".segcause-output.json")).toEqual([]); // no lock, temp or staging file left
  }, 240_000);
});

describe("never replacing files segcause did not write", () => {
  const foreign = (name: string) => {
    const out = join(dir, name);
    mkdirSync(out);
    writeFileSync(join(out, "manifest.json"), '{"name": "my dataset", "cases": []}');
    writeFileSync(join(out, "a.png"), "not really");
    writeFileSync(join(out, "report.md"), "# my notes");
    return out;
  };

  it("explain, components and evaluate refuse a non-empty folder that is not their output, and leave its files alone", () => {
    for (const [name, args] of [
      ["explain", explain],
      ["components", components],
      ["evaluate", evaluate],
    ] as const) {
      const out = foreign(`foreign-${name}`);
      expectOneLineError(
        segcause(...args(out)),
        new RegExp(
          `--out .*foreign-${name} is a folder of other files \\(a\\.png, manifest\\.json, report\\.md\\), not the output of an earlier \`segcause ${name}\` \\(give --out a new or empty folder`,
        ),
      );
      expect(readFileSync(join(out, "manifest.json"), "utf8")).toBe('{"name": "my dataset", "cases": []}');
      expect(readFileSync(join(out, "report.md"), "utf8")).toBe("# my notes");
      expect(readdirSync(out).sort()).toEqual(["a.png", "manifest.json", "report.md"]);
    }
  });

  it("strategies too: a folder of other files is refused, its own output is rewritten", () => {
    const maps = join(dir, "strategies-maps");
    expect(segcause(...explain(maps)).code).toBe(0);
    const out = foreign("foreign-strategies");
    expectOneLineError(
      segcause("strategies", "--maps", maps, "--out", out),
      /--out .*foreign-strategies is a folder of other files \(a\.png, manifest\.json, report\.md\), not the output of an earlier `segcause strategies`/,
    );
    expect(readdirSync(out).sort()).toEqual(["a.png", "manifest.json", "report.md"]);
    const own = join(dir, "strategies-own");
    for (let i = 0; i < 2; i++) {
      const r = segcause("strategies", "--maps", maps, "--out", own);
      expect(r.code, r.stderr).toBe(0);
    }
    expect(existsSync(join(own, "strategies.json"))).toBe(true);
  });

  it("an empty folder, and a folder of the same command's output, are written", () => {
    const out = join(dir, "empty-then-again");
    mkdirSync(out);
    expect(segcause(...explain(out)).code).toBe(0);
    const again = segcause(...explain(out, "--seed", "3"));
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(out, "manifest.json"), "utf8")).provenance.seed).toBe(3);
  });
});

describe("disk full: no folder that looks complete", () => {
  it("explain: a file failing midway leaves no manifest, and the line says what is missing (exit 1, not an internal error)", () => {
    const out = join(dir, "full-mid");
    const r = onFullDisk("heatmap\\.png", ...explain(out));
    expectOneLineError(
      r,
      /cannot write .*full-mid\/heatmap\.png: it has no space left on its device \(ENOSPC\); .*full-mid has no manifest\.json, so it is not a complete result \(not written: .*heatmap\.png.*manifest\.json\) \(free some space/,
    );
    expect(existsSync(join(out, "manifest.json"))).toBe(false);
    expect(readdirSync(out).filter((n) => n.startsWith(".staging") || n.endsWith(".tmp"))).toEqual([]);
  });

  it("explain: the manifest failing leaves every other file and no manifest", () => {
    const out = join(dir, "full-manifest");
    const r = onFullDisk("manifest\\.json", ...explain(out));
    expectOneLineError(
      r,
      /cannot write .*full-manifest\/manifest\.json: it has no space left on its device \(ENOSPC\); .* has no manifest\.json, so it is not a complete result \(every other file was written\)/,
    );
    for (const f of ["map.npy", "stderr.npy", "map.json", "heatmap.png", "overlay.png", "summary.png", "stats.json"])
      expect(existsSync(join(out, f)), f).toBe(true);
    expect(readdirSync(out).filter((n) => n.includes("manifest"))).toEqual([]);
    // a rerun after freeing space completes the folder
    const again = segcause(...explain(out));
    expect(again.code, again.stderr).toBe(0);
    expect(existsSync(join(out, "manifest.json"))).toBe(true);
  });

  it("a quota, a read-only remount or a permission change during the run: one line each, exit 1, no manifest", () => {
    for (const [code, said] of [
      ["EDQUOT", /cannot write .*manifest\.json: it is over its disk quota \(EDQUOT\); .* has no manifest\.json/],
      ["EROFS", /cannot write .*manifest\.json: it is on a read-only file system \(EROFS\); .* has no manifest\.json/],
      ["EACCES", /cannot access .*manifest\.json: permission denied \(EACCES\); .* has no manifest\.json/],
    ] as const) {
      const out = join(dir, `full-${code}`);
      expectOneLineError(withFaults({ SEGCAUSE_TEST_FULL_DISK: "manifest\\.json", SEGCAUSE_TEST_FULL_DISK_CODE: code }, explain(out)), said);
      expect(existsSync(join(out, "manifest.json"))).toBe(false);
    }
  });

  it("components: the same", () => {
    const out = join(dir, "full-components");
    expectOneLineError(onFullDisk("manifest\\.json", ...components(out)), /no space left on its device \(ENOSPC\); .* has no manifest\.json/);
    expect(existsSync(join(out, "manifest.json"))).toBe(false);
    expect(existsSync(join(out, "components.csv"))).toBe(true);
  });

  it("evaluate: a cell that cannot be written is one line, exit 1", () => {
    const out = join(dir, "full-evaluate");
    expectOneLineError(onFullDisk("cell\\.json", ...evaluate(out)), /cannot write .*cell\.json: it has no space left on its device \(ENOSPC\)/);
    expect(listCells(out)).toHaveLength(0);
  });
});

// Root writes into a 0555 folder anyway: the probe then succeeds and there is nothing to refuse.
const readOnlyProbe = (() => {
  const d = tmp("segcause-ro-");
  chmodSync(d, 0o555);
  try {
    writeFileSync(join(d, "probe"), "");
    return false;
  } catch {
    return true;
  } finally {
    chmodSync(d, 0o755);
  }
})();
if (!readOnlyProbe) console.warn("outputs.test.ts: running as root, which writes into read-only folders: the read-only --out test is skipped");

describe("read-only --out", () => {
  it("on a read-only file system (injected) is refused before the run, in one line", () => {
    for (const args of [explain, components, evaluate]) {
      const out = tmp("segcause-rofs-");
      const r = withFaults({ SEGCAUSE_TEST_READ_ONLY: `^${out}/` }, args(out));
      expectOneLineError(
        r,
        new RegExp(`cannot write to --out ${out}: it is on a read-only file system \\(EROFS\\) \\(give --out a folder you can write to\\)`),
      );
      expect(r.stdout).toBe("");
      expect(readdirSync(out)).toEqual([]);
    }
  });

  it.runIf(readOnlyProbe)("is refused before the run, in one line", () => {
    for (const args of [explain, components, evaluate]) {
      const out = tmp("segcause-ro-");
      chmodSync(out, 0o555);
      const r = segcause(...args(out));
      chmodSync(out, 0o755);
      expectOneLineError(r, /cannot write to --out .*: it is not writable: permission denied \(EACCES\)/);
      expect(readdirSync(out)).toEqual([]);
    }
  });
});

describe("evaluate: names never leave --out", () => {
  it("a dataset named '..', a case '..' and a model '...onnx' write their cells inside --out", () => {
    const base = join(dir, "escape");
    mkdirSync(join(base, "data"), { recursive: true });
    copyFileSync(join(dir, "data", "a.png"), join(base, "data", "a.png"));
    copyFileSync(join(dir, "data", "a-mask.png"), join(base, "data", "a-mask.png"));
    writeFileSync(
      join(base, "data", "manifest.json"),
      JSON.stringify({ name: "..", cases: [{ id: "..", image: "a.png", mask: "a-mask.png", split: "test" }] }),
    );
    const dots = join(base, "...onnx");
    copyFileSync(model, dots);
    const out = join(base, "deep", "out");
    const r = segcause(
      "evaluate",
      "--models",
      dots,
      "--dataset",
      join(base, "data"),
      "--methods",
      "zero",
      "--rois",
      "inside:8",
      "--fills",
      "zero",
      "--no-progress",
      "--out",
      out,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(readdirSync(join(base, "deep"))).toEqual(["out"]);
    expect(readdirSync(base).sort()).toEqual(["...onnx", "data", "deep"]);
    const cells = listCells(out);
    expect(cells).toHaveLength(1);
    expect(
      relative(out, cellDir(out, cells[0].id, "zero"))
        .split("/")
        .slice(0, 4),
    ).toEqual(["cells", "_..", "_..", "_.."]);
  });

  it("ordinary names keep their published paths; separators, NUL and dot-only names are replaced", () => {
    const id = { dataset: "ph2", model: "unet-ph2", image: "IMD002", roi: "boundary-32-r56c112" };
    expect(cellDir("/o", id, "pdcr")).toBe("/o/cells/ph2/unet-ph2/IMD002/boundary-32-r56c112/pdcr");
    expect(controlPath("/o", id)).toBe("/o/controls/ph2/unet-ph2/IMD002/boundary-32-r56c112.json");
    expect([safe("a b/c"), safe("x\0y"), safe(".."), safe("."), safe(""), safe("..."), safe(".hidden"), safe("v1.2")]).toEqual([
      "a_b_c",
      "x_y",
      "_..",
      "_.",
      "_",
      "_...",
      ".hidden",
      "v1.2",
    ]);
  });

  it("a symbolic link inside --out that points elsewhere is refused, not written through", () => {
    const out = join(dir, "linked-out"),
      elsewhere = join(dir, "elsewhere");
    mkdirSync(join(out, "cells"), { recursive: true });
    mkdirSync(elsewhere);
    symlinkSync(elsewhere, join(out, "cells", "tiny"));
    const id = { dataset: "tiny", model: "m", image: "a", roi: "r" };
    expect(() => cellDir(out, id, "zero")).toThrow(/refusing to write .*linked-out\/cells\/tiny\/m\/a\/r\/zero: it lies outside .*linked-out/);
    expect(() => cellDir(out, { ...id, dataset: "other" }, "zero")).not.toThrow();
  });
});

describe("evaluate: processes sharing a folder", () => {
  it("a run with another seed is refused when the folder's run.json has other settings, even before any cell exists", () => {
    const out = join(dir, "ev-seeds");
    expect(segcause(...evaluate(out)).code).toBe(0);
    // as if a process with seed 0 had just recorded its run and not finished a cell yet
    rmSync(join(out, "cells"), { recursive: true });
    rmSync(join(out, "controls"), { recursive: true });
    expectOneLineError(
      segcause(...evaluate(out, "--seed", "1")),
      /--out .*ev-seeds holds an evaluation with other settings \(--seed: 0 there, 1 here\), whose cells this run would mix with/,
    );
    expect(JSON.parse(readFileSync(join(out, "run.json"), "utf8")).protocol.seed).toBe(0);
    expect(existsSync(join(out, "cells"))).toBe(false);
  });

  it("identical runs started together share the folder", async () => {
    const out = join(dir, "ev-shared");
    const rs = await Promise.all([background(...evaluate(out)), background(...evaluate(out))]);
    for (const r of rs) expect(r.code, r.stderr).toBe(0);
    expect(listCells(out)).toHaveLength(4); // 2 images x 2 RoIs
  }, 240_000);

  it("--report-only refuses a folder with cells of another seed", () => {
    const a = join(dir, "ev-mixed-a"),
      b = join(dir, "ev-mixed-b");
    expect(segcause(...evaluate(a)).code).toBe(0);
    expect(segcause(...evaluate(b, "--seed", "1")).code).toBe(0);
    expect(segcause("evaluate", "--report-only", "--out", a).code).toBe(0);
    const n = listCells(a).length;
    const cell = listCells(b)[0];
    const from = cellDir(b, cell.id, "zero");
    cpSync(from, cellDir(a, { ...cell.id, roi: `${cell.id.roi}-other` }, "zero"), { recursive: true });
    expectOneLineError(
      segcause("evaluate", "--report-only", "--out", a),
      new RegExp(
        String.raw`--report-only: .*ev-mixed-a mixes cells of different runs: 1 of ${n + 1} cells differ from its run\.json \(e\.g\. .*: --seed 1 in the cell, 0 in run\.json\)`,
      ),
    );
    unlinkSync(join(cellDir(a, { ...cell.id, roi: `${cell.id.roi}-other` }, "zero"), "cell.json"));
    expect(segcause("evaluate", "--report-only", "--out", a).code).toBe(0);
  });
});
