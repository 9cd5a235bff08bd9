/**
 * docs/architecture.md must say what the code does. Its table of engines is a generated block
 * (`<!-- generated: architecture-engines -->`, the mechanism of src/evaluate/claims.ts), derived here
 * from the registry (`allMethods()`) and the sources: an engine is an exported function of
 * src/explain that opens a RunContext, and a method runs on the engine its declaring file calls.
 * Every path, file name, capitalised name and `name()` the page cites must occur in the repository.
 * After adding a method or an engine, regenerate with
 * `UPDATE_DOCS=1 npx vitest run test/architecture-doc.test.ts` and review the diff.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { generatedBlocks, replaceBlock } from "../src/evaluate/claims.js";
import { allMethods } from "../src/explain/catalog.js";
import { markdownPages } from "./helpers/docs.js";

const ROOT = join(import.meta.dirname, "..");
const DOC = join(ROOT, "docs", "architecture.md");
const EXPLAIN = "src/explain";
const UPDATE = process.env.UPDATE_DOCS === "1";

const sources = readdirSync(join(ROOT, EXPLAIN))
  .filter((f) => f.endsWith(".ts"))
  .sort()
  .map((f) => ({ file: `${EXPLAIN}/${f}`, text: readFileSync(join(ROOT, EXPLAIN, f), "utf8") }));

/** Engine entries: the exported function around each `RunContext.open(` / `RunContext.fromBase(` call. */
function engines(): { name: string; file: string }[] {
  const out: { name: string; file: string }[] = [];
  for (const { file, text } of sources) {
    for (const call of text.matchAll(/RunContext\.(open|fromBase)\(/g)) {
      const before = [...text.slice(0, call.index).matchAll(/export (?:async )?function (\w+)/g)];
      const name = before.at(-1)?.[1];
      if (!name) throw new Error(`${file}: a RunContext is opened outside an exported function`);
      if (!out.some((e) => e.name === name)) out.push({ name, file });
    }
  }
  return out;
}

/** The file that declares each method (`defineMethod({ name: "..." ...`). */
function declaringFiles(): Map<string, string> {
  const out = new Map<string, string>();
  for (const { file, text } of sources) for (const m of text.matchAll(/defineMethod\(\{\s*name:\s*"([^"]+)"/g)) out.set(m[1], file);
  return out;
}

/** The body of the generated block: one row per registered method, in registry order. */
function enginesTable(): string {
  const es = engines();
  const declared = declaringFiles();
  const used = new Set<string>();
  const rows = allMethods().map((def) => {
    const file = declared.get(def.name);
    if (!file) throw new Error(`method ${def.name}: no defineMethod({ name: "${def.name}" ... }) in ${EXPLAIN}`);
    const text = sources.find((s) => s.file === file)!.text;
    const calls = es.filter((e) => new RegExp(`\\b${e.name}\\(`).test(text));
    if (calls.length !== 1)
      throw new Error(
        `${file} (method ${def.name}) calls ${calls.length} engine entries (${calls.map((e) => e.name).join(", ") || "none"}); expected one`,
      );
    used.add(calls[0].name);
    return `| \`${def.name}\` | ${def.family} | \`${file}\` | \`${calls[0].name}()\` in \`${calls[0].file}\` |`;
  });
  const others = es.filter((e) => !used.has(e.name)).map((e) => `\`${e.name}()\` in \`${e.file}\``);
  return [
    "| method | family | declared in | engine |",
    "|---|---|---|---|",
    ...rows,
    "",
    `Engines no registered method runs on: ${others.length ? others.join(", ") : "none"}.`,
  ].join("\n");
}

/** Every source file under src/: its base name and text. */
function srcFiles(): { name: string; text: string }[] {
  const out: { name: string; text: string }[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else if (e.name.endsWith(".ts")) out.push({ name: e.name, text: readFileSync(join(d, e.name), "utf8") });
    }
  };
  walk(join(ROOT, "src"));
  return out;
}

describe("docs/architecture.md", () => {
  it("its table of engines equals the registry and the sources", () => {
    const md = readFileSync(DOC, "utf8");
    const blocks = generatedBlocks(md).filter((b) => b.name.startsWith("architecture-"));
    expect(blocks.map((b) => b.name)).toEqual(["architecture-engines"]);
    const want = enginesTable();
    if (UPDATE) writeFileSync(DOC, replaceBlock(md, "architecture-engines", want));
    else expect(blocks[0].body).toBe(want);
  });

  it("every generated block in the docs has a test that checks it (this page's here, results-* in published-results)", () => {
    for (const file of markdownPages(ROOT)) {
      for (const b of generatedBlocks(readFileSync(file, "utf8"))) {
        if (b.name.startsWith("results-")) continue;
        expect(`${file}: ${b.name}`).toBe(`${DOC}: architecture-engines`);
      }
    }
  });

  it("every file it cites exists (a bare `name.ts` somewhere under src/)", () => {
    const md = readFileSync(DOC, "utf8");
    const paths = [...new Set([...md.matchAll(/\b((?:src|test|docs|bin|models)\/[\w./-]*[\w/])/g)].map((m) => m[1]))];
    expect(paths.length).toBeGreaterThan(20);
    expect(paths.filter((p) => !existsSync(join(ROOT, p)))).toEqual([]);
    const names = new Set(srcFiles().map((f) => f.name));
    const bare = [...new Set([...md.matchAll(/`([\w.-]+\.ts)`/g)].map((m) => m[1]))];
    expect(bare.length).toBeGreaterThan(20);
    expect(bare.filter((n) => !names.has(n))).toEqual([]);
  });

  it("every capitalised name (class, type, constant) it cites occurs in src", () => {
    const src = srcFiles()
      .map((f) => f.text)
      .join("\n");
    const md = readFileSync(DOC, "utf8");
    const names = [...new Set([...md.matchAll(/`([A-Z][A-Za-z0-9_]+)`/g)].map((m) => m[1]))];
    expect(names.length).toBeGreaterThan(10);
    expect(names.filter((n) => !new RegExp(`\\b${n}\\b`).test(src))).toEqual([]);
  });

  it("every `name()` it cites is called or defined in src", () => {
    const src = srcFiles()
      .map((f) => f.text)
      .join("\n");
    const md = readFileSync(DOC, "utf8");
    const names = [...new Set([...md.matchAll(/`(?:[A-Za-z_]\w*\.)?([A-Za-z_]\w*)\(\)`/g)].map((m) => m[1]))];
    expect(names.length).toBeGreaterThan(20);
    // `function name`, `name(` (a call or a method), or `name: (` (a property holding a function)
    const defined = (n: string) =>
      new RegExp(`(function\\s+${n}\\b|\\b(?:static\\s+|async\\s+|get\\s+)*${n}\\s*(?:<[^>]*>)?\\(|\\b${n}:\\s*\\(?)`).test(src);
    expect(names.filter((n) => !defined(n))).toEqual([]);
  });
});
