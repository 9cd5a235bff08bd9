import { readdirSync } from "node:fs";
import { join } from "node:path";

/**
 * README.md and every markdown page under docs/ of the repository at `root`, where a generated
 * block (`<!-- generated: NAME -->`) may live; the benchmark's report.md is written by code, not edited.
 */
export function markdownPages(root: string): string[] {
  const out = [join(root, "README.md")];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else if (e.name.endsWith(".md") && e.name !== "report.md") out.push(join(d, e.name));
    }
  };
  walk(join(root, "docs"));
  return out;
}
