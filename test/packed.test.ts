/**
 * segcause as an npm user gets it: `npm pack`, the tarball installed into an empty project with the
 * dependency ranges of package.json (npm never ships the lockfile, so the newest versions in range are
 * resolved, as a user's install does) from the npm registry, then the library API, the CLI and the
 * model-zoo lookup run there. onnxruntime-node's install script is skipped (ONNXRUNTIME_NODE_INSTALL=skip,
 * as the README says): its CPU binaries ship in the package. Skipped with a message when the registry is
 * unreachable.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NPM, npm, run, userEnv } from "./helpers/npm.js";
import { tmp } from "./helpers/tiny.js";

const ROOT = join(import.meta.dirname, "..");
const demo = JSON.parse(readFileSync(join(ROOT, "samples", "demo.json"), "utf8")) as { model: string; image: string; mask: string; roi: number[] };
/** The zoo's model count, from the repository's models/ (the zoo package packs all of them). */
const zooModels = readdirSync(join(ROOT, "models")).filter((f) => f.endsWith(".onnx")).length;

/** `npm pack` of `dir` into `dest` (running its prepack), returning the tarball's path. */
function pack(dir: string, dest: string): string {
  const out = JSON.parse(npm(["pack", "--json", "--pack-destination", dest], dir)) as { filename: string }[];
  return join(dest, out[0].filename);
}

const registry = run(NPM, ["config", "get", "registry"], ROOT, 30_000).stdout.trim();
const ping = spawnSync(NPM, ["ping", "--fetch-retries=0", "--fetch-timeout=15000"], { cwd: ROOT, env: userEnv(), encoding: "utf8", timeout: 60_000 });
const reachable = ping.status === 0;
const why =
  ping.error?.message ??
  ping.stderr
    .split("\n")
    .find((l) => /^npm error (code|FetchError|network|request)/.test(l))
    ?.replace(/^npm error /, "");
if (!reachable)
  console.warn(
    `packed-install test skipped: the npm registry ${registry} is unreachable (${why || "npm ping failed"}); it needs network access to the registry npm is configured with`,
  );

describe.skipIf(!reachable)("segcause installed from its packed tarball into an empty project", () => {
  const work = tmp();
  const project = join(work, "consumer");
  const bin = join(project, "node_modules", ".bin", "segcause");
  const pkgDir = join(project, "node_modules", "segcause");
  let segcauseTgz = "";

  beforeAll(() => {
    segcauseTgz = pack(ROOT, work);
    mkdirSync(project);
    writeFileSync(join(project, "package.json"), JSON.stringify({ name: "consumer", version: "1.0.0", private: true, type: "module" }));
    npm(["install", "--no-audit", "--no-fund", segcauseTgz], project);
  });
  // the project holds a few hundred MB of dependencies
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("installs only the demo model and ships a built dist/ (no TypeScript at the user's install)", () => {
    const manifest = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { dependencies: Record<string, string> };
    // the dependencies come from the ranges: they are the project's own, not nested under segcause
    for (const dep of Object.keys(manifest.dependencies)) expect(existsSync(join(project, "node_modules", dep, "package.json")), dep).toBe(true);
    expect(existsSync(join(pkgDir, "node_modules"))).toBe(false);
    expect(existsSync(join(project, "node_modules", "typescript"))).toBe(false);
    expect(existsSync(join(pkgDir, "dist", "index.js"))).toBe(true);
    expect(existsSync(join(pkgDir, demo.model))).toBe(true);
    expect(existsSync(join(pkgDir, "models", "unet-hc18.onnx"))).toBe(false);
  });

  it("the library API explains a case and records the versions npm installed", () => {
    const script = join(project, "explain.mjs");
    writeFileSync(
      script,
      `import { Model, loadCase, explain, findModel, VERSION } from "segcause";
const [image, mask, row, col, size] = process.argv.slice(2);
const model = await Model.load(findModel("unet-ph2").path, { threads: 1 });
const kase = await loadCase(model, image, mask);
const a = await explain("occlusion", { model, case: kase, target: { roi: { row: +row, col: +col, height: +size, width: +size } }, options: { block: 32, stride: 32 } });
await model.release();
console.log(JSON.stringify({ version: VERSION, baseOutcome: a.baseOutcome, forwardPasses: a.forwardPasses, nonZero: a.units.filter((u) => u.effect !== 0).length, versions: a.provenance.versions }));
`,
    );
    const [row, col, size] = demo.roi;
    const r = run(
      process.execPath,
      [script, join(pkgDir, demo.image), join(pkgDir, demo.mask), String(row), String(col), String(size)],
      project,
      120_000,
    );
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as {
      version: string;
      baseOutcome: number;
      forwardPasses: number;
      nonZero: number;
      versions: Record<string, string>;
    };
    const installed = (name: string) =>
      (JSON.parse(readFileSync(join(project, "node_modules", name, "package.json"), "utf8")) as { version: string }).version;
    expect(out.version).toBe(installed("segcause"));
    expect(out.versions.onnxruntimeNode).toBe(installed("onnxruntime-node"));
    expect(out.versions.sharp).toBe(installed("sharp"));
    // 32 px windows at stride 32 on the 256x256 input: 64, less the 4 that overlap the RoI, and the unperturbed pass
    expect(out.forwardPasses).toBe(61);
    expect(out.baseOutcome).toBeGreaterThan(50);
    expect(out.nonZero).toBeGreaterThan(0);
  });

  it("the CLI runs the demo there", () => {
    const out = join(work, "demo-out");
    const r = run(
      bin,
      [
        "demo",
        "--method",
        "occlusion",
        "--block",
        "32",
        "--stride",
        "32",
        "--threads",
        "1",
        "--workers",
        "1",
        "--batch-size",
        "4",
        "--out",
        out,
        "--no-progress",
      ],
      project,
      120_000,
    );
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain("overlay.png");
    const manifest = JSON.parse(readFileSync(join(out, "manifest.json"), "utf8")) as {
      forwardPasses: number;
      provenance: { versions: Record<string, string> };
    };
    expect(manifest.forwardPasses).toBe(61);
    expect(manifest.provenance.versions.onnxruntimeNode).toMatch(/^1\.30\./);
  });

  // the data set is not in the package: the installed demo is pointed at the project's copy
  const hippocampus = join(ROOT, "..", "shared", "data", "hippocampus");
  it.skipIf(!existsSync(join(hippocampus, "manifest.json")))(
    "the CLI runs the volume demo there (the package holds the 3D model and the bank; --data gives the data set)",
    () => {
      const out = join(work, "demo-volume-out");
      const r = run(
        bin,
        ["demo", "--volume", "--data", hippocampus, "--method", "zero", "--threads", "1", "--out", out, "--no-progress"],
        project,
        240_000,
      );
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toContain("mosaic.png");
      const map = JSON.parse(readFileSync(join(out, "map.json"), "utf8")) as { forwardPasses: number; dims: number[] };
      // zero ablation: the unperturbed pass and one per box
      expect(map.forwardPasses).toBe(1 + 101);
      expect(map.dims).toEqual([34, 53, 24]);
      expect(existsSync(join(out, "map.nii.gz"))).toBe(true);
    },
  );

  it("without the zoo, `segcause zoo list` lists the demo model and says how to install the zoo; with it, every model of the zoo", () => {
    const before = run(bin, ["zoo", "list"], project, 60_000);
    expect(before.status, before.stderr).toBe(0);
    expect(before.stdout).toContain(join(pkgDir, demo.model));
    expect(before.stdout).toContain("1 model; the model zoo is not installed (npm i @segcause/zoo@0.1 adds it)");
    const missing = run(
      process.execPath,
      ["--input-type=module", "-e", `import { findModel } from "segcause"; try { findModel("unet-hc18"); } catch (e) { console.log(e.oneLine()); }`],
      project,
      60_000,
    );
    expect(missing.stdout.trim()).toBe(
      "unet-hc18 is not a bundled model (bundled: unet-ph2) (the model zoo is a separate package: npm i @segcause/zoo@0.1)",
    );

    npm(["install", "--no-audit", "--no-fund", segcauseTgz, pack(join(ROOT, "packages", "zoo"), work)], project);
    const after = run(bin, ["zoo", "list"], project, 60_000);
    expect(after.status, after.stderr).toBe(0);
    const zooDir = join(project, "node_modules", "@segcause", "zoo");
    expect(after.stdout).toContain(`${zooModels} models; @segcause/zoo 0.1.0 is installed at ${zooDir}`);
    expect(after.stdout).toContain(join(zooDir, "models", "unet-hc18.onnx"));
    // the packed zoo's files are the repository's, byte for byte
    const files = readdirSync(join(ROOT, "models")).filter((f) => f.endsWith(".onnx") || f.endsWith(".onnx.json"));
    expect(readdirSync(join(zooDir, "models")).sort()).toEqual(files.sort());
    for (const f of files) expect(readFileSync(join(zooDir, "models", f)).equals(readFileSync(join(ROOT, "models", f))), f).toBe(true);
  });
});
