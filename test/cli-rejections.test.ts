/**
 * A promise rejection nobody awaits, in the CLI's process: before any failure was reported it is one line
 * (a SegcauseError as the CLI's own error, exit 1; anything else an internal error, exit 2), never a
 * stack trace; after a failure was reported (a lost Redis connection's pending commands) it is silent.
 */
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { runNode } from "./helpers/cli.js";

const dist = (p: string) => pathToFileURL(join(import.meta.dirname, "..", "dist", p)).href;

/** Runs main() on `--version`, then `after` (module code with `SegcauseError` in scope). */
function withMain(after: string) {
  const code = `const { main } = await import(${JSON.stringify(dist("cli/index.js"))});
const { SegcauseError } = await import(${JSON.stringify(dist("errors.js"))});
await main(["node", "segcause", "--version"]);
${after}`;
  return runNode(["--input-type=module", "-e", code], { label: "main with a stray rejection" });
}

describe("unhandled rejections in the CLI", () => {
  it("are one line and exit 2 when nothing was reported", () => {
    const r = withMain(`Promise.reject(new Error("boom"));`);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split("\n")).toEqual([
      expect.stringMatching(/^segcause: internal error: boom \(this is a bug; rerun with SEGCAUSE_DEBUG=1/),
    ]);
  });

  it("are the CLI's one-line error, exit 1, for a SegcauseError", () => {
    const r = withMain(`Promise.reject(new SegcauseError("lost the connection to Redis at redis://h", "rerun"));`);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n")).toEqual([expect.stringMatching(/^segcause: error: lost the connection to Redis at redis:\/\/h/)]);
  });

  it("are silent once a failure was reported", () => {
    const r = withMain(
      `process.stderr.write("segcause: error: lost the connection\\n"); process.exitCode = 1; Promise.reject(new Error("Connection is closed."));`,
    );
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n")).toEqual(["segcause: error: lost the connection"]);
  });
});
