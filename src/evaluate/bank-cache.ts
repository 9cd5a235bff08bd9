/**
 * The natural-patch bank of a run: the given --bank, or one built per model input size from the
 * dataset's bank splits and cached in out/banks, so reruns and models of one size share it.
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { casesInSplits, type Dataset } from "../data/manifest.js";
import { buildPatchBank, PatchBank } from "../data/patchbank.js";
import { fail } from "../errors.js";
import type { Model } from "../model/model.js";
import { assertInside } from "../util/files.js";
import { sha256, sha256File } from "../util/hash.js";
import type { EvaluateConfig } from "./protocol.js";
import { readJson, safe, writeAtomic } from "./store.js";

/** The file each bank was loaded from (a queued run sends it to the workers). */
export const bankFile = new WeakMap<PatchBank, string>();

/** The bank for `model`'s cells, loaded or built once per path (`cache`). */
export async function bankFor(
  cfg: EvaluateConfig,
  ds: Dataset,
  model: Model,
  cache: Map<string, PatchBank>,
  log: (s: string) => void,
): Promise<PatchBank> {
  if (cfg.bank) {
    if (!cache.has(cfg.bank)) cache.set(cfg.bank, await PatchBank.load(cfg.bank));
    bankFile.set(cache.get(cfg.bank)!, cfg.bank);
    return cache.get(cfg.bank)!;
  }
  const filter = model.card.input.resize;
  const name = `${safe(ds.name)}-${cfg.bankSplits.join("+")}-${model.height}x${model.width}-${filter}-p${cfg.bankPatchSize}-s${cfg.seed}.scbank`;
  // The dataset's name comes from its manifest: one safe path component, checked to stay inside --out.
  const path = join(cfg.out, "banks", name);
  assertInside(cfg.out, path);
  if (cache.has(path)) return cache.get(path)!;
  const images = casesInSplits(ds, cfg.bankSplits).map((c) => c.image);
  // The images' content, not their names: another dataset under the same manifest name (or a
  // re-split one) must not reuse this bank, nor mix its cells with this folder's.
  const sources = sha256((await Promise.all(images.map((f) => sha256File(f)))).join("\n"));
  let bank: PatchBank | undefined;
  const ok = readJson<{ sourcesSha256?: string }>(`${path}.ok`);
  if (ok?.sourcesSha256 !== undefined && ok.sourcesSha256 !== sources) {
    fail(
      `${cfg.out} was evaluated on another dataset named '${ds.name}' (its ${cfg.bankSplits.join("+")} images differ from those of ${ds.root})`,
      'use a new --out folder for this dataset, or give its manifest another "name"',
    );
  }
  if (ok) bank = await PatchBank.load(path);
  if (!bank) {
    log(`building a patch bank from ${images.length} ${cfg.bankSplits.join("+")} images of ${ds.name} at ${model.height}x${model.width}`);
    bank = await buildPatchBank(images, { height: model.height, width: model.width, filter, patchSize: cfg.bankPatchSize, seed: cfg.seed });
    await mkdir(join(cfg.out, "banks"), { recursive: true });
    await bank.save(path);
    await writeAtomic(`${path}.ok`, JSON.stringify({ source: "built by segcause evaluate", images: images.length, sourcesSha256: sources }));
    // Reload: a bank's identity (sha256) is that of its file, the same on every rerun.
    bank = await PatchBank.load(path);
  }
  cache.set(path, bank);
  bankFile.set(bank, path);
  return bank;
}
