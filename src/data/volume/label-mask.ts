/**
 * A label map (0 background, 1, 2 ... structures) as the mask of one structure: `--label 1` picks a
 * label, `--label 1,2` joins several into one structure.
 */
import { fail } from "../../errors.js";
import { decimalInteger } from "../../util/decimal.js";
import type { Volume } from "./volume.js";

const LABEL_HINT = "give --label N, or --label 1,2 for one structure made of several labels (positive whole numbers)";

/** "1" or "1,2" → [1] or [1, 2]: positive whole numbers, each once. */
export function parseLabels(spec: string): number[] {
  const parts = spec.split(",").map((s) => s.trim());
  const labels = parts.map(decimalInteger);
  if (parts.length === 0 || labels.some((n) => n === undefined)) fail(`cannot parse --label '${spec}'`, LABEL_HINT);
  const ok = labels as number[];
  if (ok.some((n) => n <= 0))
    fail(`--label '${spec}' names label ${ok.find((n) => n <= 0)}; 0 is the background and labels are positive`, LABEL_HINT);
  return [...new Set(ok)];
}

/** At most this many distinct values are named in a message; more means the file is not a label map. */
const MAX_NAMED = 32;

/** The distinct non-zero values of a label map, ascending; undefined when there are more than MAX_NAMED or one is not a whole number (not a label map). */
export function labelsPresent(volume: Pick<Volume, "data">): number[] | undefined {
  const seen = new Set<number>();
  for (const v of volume.data) {
    if (v !== 0 && !seen.has(v)) {
      if (!Number.isInteger(v)) return undefined;
      seen.add(v);
      if (seen.size > MAX_NAMED) return undefined;
    }
  }
  return [...seen].sort((a, b) => a - b);
}

/**
 * 1 where the voxel's value is one of `labels`, else 0 (same layout as the volume). A label the map
 * does not hold is refused, naming the labels it does hold; `name` is the file, for the message.
 */
export function labelMask(volume: Pick<Volume, "data">, labels: number[], name = "the label map"): Uint8Array {
  const wanted = new Set(labels);
  const out = new Uint8Array(volume.data.length);
  const found = new Set<number>();
  for (let i = 0; i < out.length; i++) {
    const v = volume.data[i];
    if (wanted.has(v)) {
      out[i] = 1;
      found.add(v);
    }
  }
  const missing = labels.filter((l) => !found.has(l));
  if (missing.length) {
    const present = labelsPresent(volume);
    const holds =
      present === undefined
        ? `it holds values that are not whole numbers, or more than ${MAX_NAMED} distinct values: it may be an image rather than a label map`
        : present.length
          ? `labels present: ${present.join(", ")}`
          : "it holds only 0: no labelled voxel";
    fail(`label ${missing.join(", ")} ${missing.length > 1 ? "are" : "is"} not in ${name} (${holds})`, LABEL_HINT);
  }
  return out;
}
