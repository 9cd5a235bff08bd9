import { readFileSync } from "node:fs";

const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
  version: string;
};

export const VERSION: string = pkg.version;

/** Versions that decide the numbers of a run, recorded in every provenance block. */
export function runtimeVersions(): Record<string, string> {
  const ortPkg = JSON.parse(
    readFileSync(new URL("../node_modules/onnxruntime-node/package.json", import.meta.url), "utf8"),
  ) as { version: string };
  return { segcause: VERSION, onnxruntimeNode: ortPkg.version, node: process.version };
}
