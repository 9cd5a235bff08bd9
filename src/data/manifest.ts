/** Dataset manifests (../shared/data/<name>/manifest.json): cases with image, mask and split. */
import { readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { z } from "zod";
import { fail } from "../errors.js";

const CaseEntry = z
  .object({ id: z.string(), image: z.string(), mask: z.string().optional(), split: z.string() })
  .passthrough();
const Manifest = z.object({ name: z.string(), cases: z.array(CaseEntry) }).passthrough();

export interface ManifestCase {
  id: string;
  image: string;
  mask?: string;
  split: string;
}

export interface Dataset {
  name: string;
  root: string;
  cases: ManifestCase[];
}

/** Accepts a manifest file or a folder containing manifest.json. */
export function readManifest(path: string): Dataset {
  let file = path;
  try {
    if (statSync(path).isDirectory()) file = join(path, "manifest.json");
  } catch {
    fail(`dataset manifest ${path} does not exist`, "pass a manifest.json or the dataset folder holding it");
  }
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    fail(`cannot read dataset manifest ${file} (${(e as Error).message})`, "pass a manifest.json");
  }
  const parsed = Manifest.safeParse(raw);
  if (!parsed.success) fail(`${file} is not a dataset manifest: ${parsed.error.issues[0].path.join(".")}: ${parsed.error.issues[0].message}`, "see ../shared/data/README.md for the format");
  const root = resolve(dirname(file));
  // Case ids name the cells of a benchmark: two cases with one id would share (and skip) cells.
  const ids = new Set<string>();
  for (const c of parsed.data.cases) {
    if (ids.has(c.id)) fail(`${file} lists case id '${c.id}' twice`, "give every case its own id");
    ids.add(c.id);
  }
  if (parsed.data.cases.length === 0) fail(`${file} lists no cases`, "add the dataset's cases (id, image, mask, split) to the manifest");
  return {
    name: parsed.data.name,
    root,
    cases: parsed.data.cases.map((c) => ({ id: c.id, split: c.split, image: join(root, c.image), mask: c.mask ? join(root, c.mask) : undefined })),
  };
}

export function casesInSplits(ds: Dataset, splits: string[]): ManifestCase[] {
  const known = new Set(ds.cases.map((c) => c.split));
  for (const s of splits) if (!known.has(s)) fail(`split '${s}' is not in dataset ${ds.name}`, `choose from ${[...known].join(", ")}`);
  return ds.cases.filter((c) => splits.includes(c.split));
}
