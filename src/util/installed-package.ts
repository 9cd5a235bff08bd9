/**
 * An installed package's folder and package.json, found the way Node resolves the package from a given
 * module: hoisted or nested, and whether or not its `exports` map exposes `package.json`.
 */
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

export interface InstalledPackage {
  name: string;
  version: string;
  /** the package's folder */
  root: string;
}

/** `name` as `import` would find it from the module at `from` (a file URL or path); undefined when it is not installed. */
export function findPackage(name: string, from: string | URL): InstalledPackage | undefined {
  const require = createRequire(from);
  try {
    return readPackage(require.resolve(`${name}/package.json`), name);
  } catch {
    // `exports` hides package.json (sharp), or the package is absent: look where Node looks, in order.
  }
  for (const dir of require.resolve.paths(name) ?? []) {
    const found = readPackage(join(dir, name, "package.json"), name);
    if (found) return found;
  }
  return undefined;
}

function readPackage(path: string, name: string): InstalledPackage | undefined {
  if (!existsSync(path)) return undefined;
  const pkg = JSON.parse(readFileSync(path, "utf8")) as { name?: string; version?: string };
  if (pkg.name !== name || typeof pkg.version !== "string") return undefined;
  return { name, version: pkg.version, root: dirname(path) };
}
