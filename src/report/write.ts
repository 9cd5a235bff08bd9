/**
 * Writes an Attribution to a folder: map.npy, stderr.npy, map.json, heatmap.png, overlay.png (titled,
 * at the image's aspect ratio), heatmap-input.png, overlay-input.png (model input size, aligned with
 * map.npy), summary.png, stats.json and manifest.json. Files go to a staging folder first and the
 * manifest is written last (atomically, flushed to disk), so a folder with a manifest is always complete.
 */
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { Case } from "../data/case.js";
import { encodePng } from "../data/image.js";
import type { Attribution, UnitResult } from "../explain/attribution.js";
import { writeManifest, writeStaged } from "../util/atomic.js";
import { encodeNpy } from "../util/npy.js";
import { t975 } from "../util/tdist.js";
import { summarySvg, svgToPng } from "./charts.js";
import { heatRgb, overlayRgb } from "./colormap.js";
import { unitEvidence } from "./counts.js";
import { annotatedPng, displaySize } from "./picture.js";
import { colourScale, type ScaleSpec } from "./scale.js";
import { type MapStats, mapStats } from "./stats.js";
import { mapTitle } from "./title.js";

export const OUTPUT_FILES = [
  "map.npy",
  "stderr.npy",
  "map.json",
  "heatmap.png",
  "overlay.png",
  "heatmap-input.png",
  "overlay-input.png",
  "summary.png",
  "stats.json",
  "manifest.json",
] as const;

export interface WriteOptions {
  /** colour scale of the pictures (default the paper's: the largest |value| outside the RoI) */
  scale?: ScaleSpec;
}

export interface WrittenOutputs {
  dir: string;
  files: Record<string, string>;
  stats: MapStats;
}

/** Half-width of the unit's 95% confidence interval (Student t on the estimator's degrees of freedom). */
function ci95(u: { stderr: number; samples: number; dof?: number }): number | null {
  const half = t975(u.dof ?? u.samples - 1) * u.stderr;
  return Number.isFinite(half) ? half : null;
}

/** A unit as map.json lists it (also the viewer's partial maps): its box, estimate, standard error and 95% interval. */
export function unitRecord(u: UnitResult) {
  return {
    row: u.row,
    col: u.col,
    height: u.height,
    width: u.width,
    pixels: u.pixels?.length,
    effect: u.effect,
    rawEffect: u.rawEffect,
    stderr: Number.isNaN(u.stderr) ? null : u.stderr,
    ci95: ci95(u),
    samples: u.samples,
    status: u.status,
    // with --prior / --sampling importance only (absent otherwise, so other maps are unchanged)
    ...(u.drawMean !== undefined ? { drawMean: u.drawMean } : {}),
    ...(u.priorValue !== undefined ? { priorValue: u.priorValue } : {}),
    ...(u.ess !== undefined ? { ess: u.ess, weights: u.weights } : {}),
  };
}

export async function writeAttribution(a: Attribution, kase: Case, dir: string, opts: WriteOptions = {}): Promise<WrittenOutputs> {
  await mkdir(dir, { recursive: true });
  // Remove a previous complete result first so that a failure below never leaves a stale manifest.
  await rm(join(dir, "manifest.json"), { force: true });
  const { tau, region } = a;
  const evidence = a.units.length > 0 ? unitEvidence(a.units) : undefined;
  const scale = colourScale(a.map, region, opts.scale ?? { kind: "max" });
  const stats: MapStats = { ...mapStats(a, tau, region, evidence?.counts), colourScaleMaxAbs: scale.maxAbs, colourScale: scale.label };
  // Unsigned maps hold importance >= 0: draw it as support (red), like a signed map's negative side.
  const heat = heatRgb(a.signed ? a.map : a.map.map((v) => -v), a.height, a.width, region, scale.maxAbs);
  const overlay = overlayRgb(heat, kase.image);
  const { title, subtitle } = mapTitle(a, kase);
  const picture = (rgb: Uint8Array) =>
    annotatedPng({
      rgb,
      height: a.height,
      width: a.width,
      display: displaySize(kase.source, a),
      title,
      subtitle,
      roi: a.roi,
      roiKind: region.kind,
      markers: evidence ? a.units.filter((_, i) => evidence.perUnit[i].evidence === "excludes-zero") : [],
      signed: a.signed,
      scale,
      valueUnits: a.valueUnits,
    });
  const overlayInput = await encodePng({ width: a.width, height: a.height, channels: 3, data: overlay });
  const contents: Record<string, Buffer | string> = {
    "map.npy": encodeNpy(a.map, [a.height, a.width]),
    "stderr.npy": encodeNpy(a.stderrMap, [a.height, a.width]),
    "map.json": JSON.stringify(
      {
        method: a.method,
        unitKind: a.unitKind,
        effectUnits: a.valueUnits,
        signed: a.signed,
        sign: a.signed
          ? "negative = the unit's content supported the RoI prediction (red); positive = it hurt (blue)"
          : "unsigned importance >= 0 (red): larger = the unit mattered more, without a direction",
        // heatmap.png/overlay.png: full colour at this |value|, white at 0
        colourScaleMaxAbs: stats.colourScaleMaxAbs,
        colourScale: scale.label,
        evidence: evidence?.counts,
        height: a.height,
        width: a.width,
        roi: a.roi,
        // the fast schedule's screen: Σ of the largest |Δ| of the groups and blocks it set to 0 (see the notes)
        ...(a.screenLoss ? { screenLoss: a.screenLoss } : {}),
        units: a.units.map((u, i) => ({ ...unitRecord(u), ...(evidence ? evidence.perUnit[i] : {}) })),
      },
      null,
      1,
    ),
    "heatmap.png": await picture(heat),
    "overlay.png": await picture(overlay),
    "heatmap-input.png": await encodePng({ width: a.width, height: a.height, channels: 3, data: heat }),
    "overlay-input.png": overlayInput,
    "summary.png": await svgToPng(summarySvg(stats, `${title} · ${subtitle}`, overlayInput)),
    "stats.json": JSON.stringify(stats, (_, v) => (v === Infinity ? "inf" : v === -Infinity ? "-inf" : v), 2),
  };
  const files: Record<string, string> = {};
  await writeStaged(dir, contents, "manifest.json");
  for (const name of Object.keys(contents)) files[name] = join(dir, name);
  const manifest = {
    format: "segcause.attribution/1",
    method: a.method,
    reference: a.reference,
    referenceExplained:
      a.reference === "ground-truth"
        ? "Dice inside the RoI is measured against the ground-truth mask"
        : "no mask given: Dice inside the RoI is measured against the model's own unperturbed prediction",
    baseOutcome: a.baseOutcome,
    forwardPasses: a.forwardPasses,
    backwardPasses: a.backwardPasses,
    wallMs: a.wallMs,
    notes: a.notes,
    files: Object.keys(contents),
    provenance: a.provenance,
  };
  await writeManifest(dir, JSON.stringify(manifest, null, 2));
  files["manifest.json"] = join(dir, "manifest.json");
  return { dir, files, stats };
}
