import { readFileSync } from "node:fs";
import { findPackage } from "./util/installed-package.js";

const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
  version: string;
};

export const VERSION: string = pkg.version;

/**
 * Versions that decide the numbers of a run (inference, image decoding and resizing), recorded in every
 * provenance block: the copies segcause itself imports, wherever npm placed them.
 */
export function runtimeVersions(): Record<string, string> {
  const version = (name: string) => findPackage(name, import.meta.url)?.version ?? "not found";
  return { segcause: VERSION, onnxruntimeNode: version("onnxruntime-node"), sharp: version("sharp"), node: process.version };
}
