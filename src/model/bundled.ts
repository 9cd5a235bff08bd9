/**
 * The models segcause ships: the demo model inside the segcause package (`models/`), the model zoo in
 * the separate package @segcause/zoo (`models/` too) when it is installed next to segcause.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { fail } from "../errors.js";
import { findPackage, type InstalledPackage } from "../util/installed-package.js";
import { VERSION } from "../version.js";
import { type ModelCard, ModelCardSchema, sidecarPath } from "./card.js";

export const ZOO_PACKAGE = "@segcause/zoo";
/** The command that installs the zoo matching this segcause (its models' cards follow this card schema). */
export const ZOO_INSTALL = `npm i ${ZOO_PACKAGE}@${VERSION.split(".").slice(0, 2).join(".")}`;

const SEGCAUSE_ROOT = fileURLToPath(new URL("../../", import.meta.url));

export interface BundledModel {
  /** the file name without `.onnx`, e.g. `unet-ph2` */
  name: string;
  /** absolute path of the ONNX file; its card is `${path}.json` */
  path: string;
  card: ModelCard;
  /** the package that holds it: `segcause` or `@segcause/zoo` */
  package: string;
}

/** @segcause/zoo as segcause resolves it (from its own folder, else from the working directory), or undefined. */
export function findZoo(): InstalledPackage | undefined {
  return findPackage(ZOO_PACKAGE, import.meta.url) ?? findPackage(ZOO_PACKAGE, join(process.cwd(), "noop.js"));
}

/** Every bundled model with its card, by name; a model in both packages is listed once, from segcause. */
export function models(): BundledModel[] {
  const zoo = findZoo();
  const found = new Map<string, BundledModel>();
  for (const [pkg, root] of [["segcause", SEGCAUSE_ROOT], ...(zoo ? [[zoo.name, zoo.root]] : [])] as const) {
    for (const m of modelsIn(join(root, "models"), pkg)) if (!found.has(m.name)) found.set(m.name, m);
  }
  return [...found.values()].sort((a, b) => a.name.localeCompare(b.name));
}

/** The bundled model `name`; a clear error (with the install command while the zoo is absent) when there is none. */
export function findModel(name: string): BundledModel {
  const all = models();
  const m = all.find((x) => x.name === name || `${x.name}.onnx` === name);
  if (m) return m;
  const names = all.map((x) => x.name).join(", ");
  if (!findZoo()) fail(`${name} is not a bundled model (bundled: ${names})`, `the model zoo is a separate package: ${ZOO_INSTALL}`);
  fail(`${name} is not a bundled model`, `bundled: ${names}`);
}

function modelsIn(dir: string, pkg: string): BundledModel[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith(".onnx") && existsSync(sidecarPath(join(dir, f))))
    .map((f) => {
      const path = join(dir, f);
      const card = ModelCardSchema.parse(JSON.parse(readFileSync(sidecarPath(path), "utf8")));
      return { name: f.slice(0, -".onnx".length), path, card, package: pkg };
    });
}
