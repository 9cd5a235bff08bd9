/**
 * The volume bank of a viewer's pdcr run on a volume: cut by `segcause bank build` from the `--dataset`
 * volume manifest's train split, at the run's box size, for the run's model. The file is named by what
 * decides its content (the manifest, the model's card input, the box, the build settings), so runs with
 * the same settings reuse it and a changed setting never reuses another's.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { getMethod } from "../explain/catalog.js";
import { resolveOptions } from "../explain/methods.js";
import { readVolumeCard } from "../model/volume-card.js";
import { sha256 } from "../util/hash.js";

/** boxes per training volume: the docs' `bank build` example for 16 mm boxes (195 hippocampus volumes give 780) */
export const VIEW_BANK_PER_VOLUME = 4;
export const VIEW_BANK_SPLITS = "train";

/** Why a page cannot run pdcr on a volume, in one line (undefined: it can). */
export function volumePdcrUnavailable(dataset: { kind?: "volume" } | undefined, bank: string | undefined): string | undefined {
  if (dataset?.kind === "volume" || bank?.endsWith(".scvbank")) return undefined;
  return "pdcr on a volume needs a volume bank: start segcause view with --dataset <volume manifest.json> (the bank is cut from its train split) or --bank <file.scvbank>";
}

/** The `segcause bank build` arguments of the bank a pdcr run with these method options needs, and its file under `<runs>/banks/`. */
export function volumeBankArgs(runsDir: string, manifest: string, datasetName: string, model: string, options: Record<string, unknown>) {
  // the bank's boxes must be the run's boxes: pdcr's --block (millimetres, as --patch-size)
  const block = options.block ?? resolveOptions(getMethod("pdcr"), {}).block;
  const seed = 0;
  const identity = {
    manifest: sha256(readFileSync(manifest)),
    card: readVolumeCard(model).card.input,
    splits: VIEW_BANK_SPLITS,
    block,
    perVolume: VIEW_BANK_PER_VOLUME,
    seed,
  };
  const out = join(
    runsDir,
    "banks",
    `${datasetName.replace(/[^\w.-]/g, "_")}-${VIEW_BANK_SPLITS}-b${block}-${sha256(JSON.stringify(identity)).slice(0, 16)}.scvbank`,
  );
  const args = ["--images", manifest, "--model", model, "--splits", VIEW_BANK_SPLITS, "--patch-size", String(block)];
  args.push("--per-image", String(VIEW_BANK_PER_VOLUME), "--seed", String(seed), "--out", out);
  return { out, args };
}
