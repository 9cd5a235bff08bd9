/**
 * What the npm package holds and how segcause finds installed packages and its bundled models
 * (the slow end-to-end check, installing the packed tarball, is test/packed.test.ts).
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, normalize } from "node:path";
import { describe, expect, it } from "vitest";
import { findModel, models, ZOO_INSTALL } from "../src/model/bundled.js";
import { findPackage } from "../src/util/installed-package.js";
import { runtimeVersions } from "../src/version.js";
import { runNode, segcause } from "./helpers/cli.js";
import { packedFiles } from "./helpers/npm.js";
import { tmp } from "./helpers/tiny.js";

const ROOT = join(import.meta.dirname, "..");
const json = (path: string) => JSON.parse(readFileSync(path, "utf8"));
const shippedModels = readdirSync(join(ROOT, "models"))
  .filter((f) => f.endsWith(".onnx"))
  .sort();

function write(path: string, content: unknown): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, typeof content === "string" ? content : JSON.stringify(content));
}

describe("findPackage", () => {
  it("finds a dependency hoisted above the package that imports it (npm's layout for a user's install)", () => {
    const project = tmp();
    write(join(project, "node_modules", "dep", "package.json"), { name: "dep", version: "1.2.3", main: "index.js" });
    write(join(project, "node_modules", "dep", "index.js"), "");
    const from = join(project, "node_modules", "host", "dist", "version.js");
    write(from, "");
    expect(findPackage("dep", from)).toEqual({ name: "dep", version: "1.2.3", root: join(project, "node_modules", "dep") });
  });

  it("finds a package whose exports map hides package.json and that has no main entry", () => {
    const project = tmp();
    write(join(project, "node_modules", "@s", "hidden", "package.json"), { name: "@s/hidden", version: "0.9.0", exports: { "./x": "./x.js" } });
    const from = join(project, "src", "a.js");
    write(from, "");
    expect(() => createRequire(from).resolve("@s/hidden/package.json")).toThrow(expect.objectContaining({ code: "ERR_PACKAGE_PATH_NOT_EXPORTED" }));
    expect(findPackage("@s/hidden", from)?.version).toBe("0.9.0");
  });

  it("nearest first, and undefined for a package that is not installed", () => {
    const project = tmp();
    write(join(project, "node_modules", "dep", "package.json"), { name: "dep", version: "1.0.0" });
    write(join(project, "node_modules", "host", "node_modules", "dep", "package.json"), { name: "dep", version: "2.0.0" });
    const from = join(project, "node_modules", "host", "index.js");
    write(from, "");
    expect(findPackage("dep", from)?.version).toBe("2.0.0");
    expect(findPackage("absent-package", from)).toBeUndefined();
  });

  it("runtimeVersions gives the versions of the onnxruntime-node and sharp that segcause imports", () => {
    const v = runtimeVersions();
    expect(v.onnxruntimeNode).toBe(json(join(ROOT, "node_modules", "onnxruntime-node", "package.json")).version);
    expect(v.sharp).toBe(json(join(ROOT, "node_modules", "sharp", "package.json")).version);
    expect(v.segcause).toBe(json(join(ROOT, "package.json")).version);
  });
});

describe("bundled models", () => {
  it("models() lists every model of models/ with its card (in the repository the whole zoo is there)", () => {
    const list = models();
    expect(list.map((m) => `${m.name}.onnx`)).toEqual(shippedModels);
    for (const m of list) {
      expect(m.path).toBe(join(ROOT, "models", `${m.name}.onnx`));
      expect(m.card.name).toBe(m.name);
      expect(m.package).toBe("segcause");
    }
  });

  it("findModel finds a model by name or file name, and a missing one names the bundled ones and the zoo's install command", () => {
    expect(findModel("unet-ph2").path).toBe(join(ROOT, "models", "unet-ph2.onnx"));
    expect(findModel("unet-hc18.onnx").card.dataset).toBe("hc18");
    const names = shippedModels.map((f) => f.slice(0, -".onnx".length)).join(", ");
    expect(() => findModel("resnet-x")).toThrow(`resnet-x is not a bundled model (bundled: ${names})`);
    expect(ZOO_INSTALL).toBe(`npm i @segcause/zoo@${(json(join(ROOT, "package.json")).version as string).split(".").slice(0, 2).join(".")}`);
  });

  it("`segcause zoo list` prints one row per model with its test Dice and path, then where the zoo is", () => {
    const r = segcause("zoo", "list");
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines).toHaveLength(shippedModels.length + 2);
    const card = json(join(ROOT, "models", "unet-hc18.onnx.json"));
    const row = lines.find((l) => l.startsWith("unet-hc18 "));
    expect(row).toContain(`${card.metrics.dice_mean.toFixed(3)} (mean over ${card.metrics.n} test images)`);
    expect(row).toContain(join(ROOT, "models", "unet-hc18.onnx"));
    expect(lines.at(-1)).toBe(`${shippedModels.length} models; the model zoo is not installed (${ZOO_INSTALL} adds it)`);
  });
});

describe("the npm packages", () => {
  it("segcause ships the demos' models, cards, samples and banks (2D and volume), and no other model nor any volume", () => {
    const files = packedFiles(ROOT);
    const demo = json(join(ROOT, "samples", "demo.json"));
    const volume = json(join(ROOT, "samples", "demo-volume.json"));
    for (const f of [demo.model, `${demo.model}.json`, demo.image, demo.mask, demo.bank, "LICENSE", "bin/segcause.js"]) expect(files, f).toContain(f);
    // the volume demo's case stays in its data set (read with --data); the model and the bank are shipped
    for (const f of [volume.model, `${volume.model}.json`, volume.bank]) expect(files, f).toContain(f);
    expect(files.filter((f) => /\.nii(\.gz)?$|\.dcm$/i.test(f))).toEqual([]);
    // the bank's source and licence (CC-BY-SA 4.0) travel with it
    expect(files).toContain("samples/volume/README.md");
    expect(files.filter((f) => f.endsWith(".onnx")).sort()).toEqual([demo.model, volume.model].sort());
  });

  it("every relative link of every Markdown page in the package points into the package, and every #anchor to a heading of its page", () => {
    const files = packedFiles(ROOT);
    // README.md, docs/*.md, docs/results/README.md and report.md, models/README.md: whatever npm ships
    const pages = files.filter((f) => f.endsWith(".md"));
    expect(pages).toEqual(expect.arrayContaining(["README.md", "docs/commands.md", "docs/results/README.md", "models/README.md"]));
    const text = (page: string) => readFileSync(join(ROOT, page), "utf8").replace(/```[\s\S]*?```/g, "");
    // GitHub's heading ids: lower case, punctuation dropped, spaces as hyphens
    const anchors = (page: string) =>
      new Set(
        [...text(page).matchAll(/^#+\s+(.*)$/gm)].map(([, h]) =>
          h
            .replace(/`/g, "")
            .trim()
            .toLowerCase()
            .replace(/[^\p{L}\p{N}_\- ]/gu, "")
            .replace(/ /g, "-"),
        ),
      );
    const broken: string[] = [];
    for (const page of pages) {
      for (const [, target, anchor] of text(page).matchAll(/\]\(([^)\s#]*)(?:#([^)\s]*))?\)/g)) {
        if (/^[a-z]+:/i.test(target)) continue;
        const path = target ? normalize(join(dirname(page), target)).replace(/\/$/, "") : page;
        if (!files.some((f) => f === path || f.startsWith(`${path}/`))) broken.push(`${page}: ${target}`);
        else if (anchor && path.endsWith(".md") && !anchors(path).has(anchor)) broken.push(`${page}: ${target}#${anchor}`);
      }
    }
    expect(broken).toEqual([]);
  });

  it("runs nothing at a user's install (dist/ is built at pack time), and a checkout without dist/ says how to build it", () => {
    const pkg = json(join(ROOT, "package.json"));
    for (const hook of ["preinstall", "install", "postinstall", "prepare"]) expect(pkg.scripts[hook], hook).toBeUndefined();
    expect(pkg.scripts.prepack).toContain("npm run build");
    const checkout = tmp();
    write(join(checkout, "bin", "segcause.js"), readFileSync(join(ROOT, "bin", "segcause.js"), "utf8"));
    const r = runNode([join(checkout, "bin", "segcause.js"), "demo"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("segcause: error: dist/ is not built (in a source checkout, run `npm run build` first)\n");
  });

  it("the exports map offers the library API only, the bin stays", () => {
    const pkg = json(join(ROOT, "package.json"));
    expect(Object.keys(pkg.exports)).toEqual([".", "./package.json"]);
    expect(pkg.exports["."].default).toBe("./dist/index.js");
    expect(pkg.bin).toEqual({ segcause: "bin/segcause.js" });
  });

  it("@segcause/zoo is versioned with segcause and packs every model of models/ with its card", () => {
    const zoo = join(ROOT, "packages", "zoo");
    expect(json(join(zoo, "package.json")).version).toBe(json(join(ROOT, "package.json")).version);
    // prepack copies the models in; --ignore-scripts lists what the package.json would take from them
    const r = runNode(["assemble.mjs"], { cwd: zoo });
    try {
      expect(r.code, r.stderr).toBe(0);
      const files = packedFiles(zoo);
      expect(files.filter((f) => f.endsWith(".onnx")).sort()).toEqual(shippedModels.map((f) => `models/${f}`));
      for (const f of shippedModels) expect(files).toContain(`models/${f}.json`);
      for (const f of ["README.md", "LICENSE", "package.json"]) expect(files).toContain(f);
    } finally {
      runNode(["assemble.mjs", "--clean"], { cwd: zoo });
    }
  });

  it("the README names the onnxruntime-node and sharp versions the lockfile tests, inside the ranges package.json gives", () => {
    const lock = json(join(ROOT, "package-lock.json"));
    const pkg = json(join(ROOT, "package.json"));
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    for (const dep of ["onnxruntime-node", "sharp"]) {
      const version: string = lock.packages[`node_modules/${dep}`].version;
      // ~x.y.z: patch releases only, as these two decide the numbers
      expect(pkg.dependencies[dep]).toMatch(/^~\d+\.\d+\.\d+$/);
      expect(
        version.startsWith(`${(pkg.dependencies[dep] as string).slice(1).split(".").slice(0, 2).join(".")}.`),
        `${dep} ${version} in ${pkg.dependencies[dep]}`,
      ).toBe(true);
      expect(readme).toContain(`${dep} ${version}`);
    }
  });
});
