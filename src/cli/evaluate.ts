/** `segcause evaluate`: the faithfulness benchmark over models × images × RoIs × methods. */

import { existsSync } from "node:fs";
import { join } from "node:path";
import { Command } from "commander";
import { readManifest } from "../data/manifest.js";
import { fail, SegcauseError } from "../errors.js";
import { runEvaluation } from "../evaluate/benchmark.js";
import { recordedProtocol } from "../evaluate/cell-key.js";
import { parseFills } from "../evaluate/fills.js";
import { type MethodRun, PROTOCOL_DEFAULTS, parseControls, parseTopArea } from "../evaluate/protocol.js";
import { parseRankUnits, rankUnitsName } from "../evaluate/rank-units.js";
import { writeEvaluationReport } from "../evaluate/report.js";
import { parseRoiSpec } from "../evaluate/rois.js";
import { checkCellsMatchRun, recordRun, recordRunQueue } from "../evaluate/run-record.js";
import type { VolumeSettings } from "../evaluate/volume-benchmark.js";
import { allMethods, getMethod, methodNames, volumeMethodNames } from "../explain/catalog.js";
import { MAX_BLUR_SIGMA, MIN_BLUR_SIGMA } from "../explain/interventions.js";
import { checkOptionValue, kebab, resolveOptions } from "../explain/methods.js";
import { INCREMENTAL_MODES, type IncrementalMode } from "../explain/roi-executor.js";
import { BOX_UNITS, type BoxUnitName } from "../explain/volume/box-size.js";
import { redactCommand, redactUrl } from "../queue/connection.js";
import { RemoteCells } from "../queue/remote-cells.js";
import { OUTCOMES, type OutcomeName } from "../target/outcome.js";
import { checkOutputFolder, claimOutputDir } from "../util/files.js";
import { markResumable } from "../util/interrupt.js";
import { stderrDisplay } from "../util/progress.js";
import { intAtLeast, methodOptionParser, numIn, numList, oneOf, positive, seed } from "./options.js";
import { addOutputFlags, emit, type OutputFlags, showProgress } from "./output.js";

interface EvaluateFlags {
  models: string[];
  dataset: string;
  split: string;
  images?: number;
  methods: string;
  set: string[];
  rois: string;
  roiAlign: number;
  bank?: string;
  bankSplits: string;
  bankPatchSize: number;
  out: string;
  seed: number;
  steps: number;
  rankUnits: string;
  topArea: string;
  controls: string;
  fills: string;
  patchDraws: number;
  blurSigma: number;
  topk: number[];
  radius: number;
  minRange: number;
  stability?: boolean;
  noiseSigma: number;
  outcome: OutcomeName;
  reference: "auto" | "ground-truth" | "prediction";
  batchSize?: number;
  threads?: number;
  incremental: IncrementalMode;
  maxCells?: number;
  reportOnly?: boolean;
  progress: boolean;
  label?: string;
  boxUnit?: BoxUnitName;
  queue?: string;
}

const camel = (s: string) => s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/** `--set pdcr.samples=10` (option names in camelCase or kebab-case), checked against the method's declared options. */
export function parseMethodRuns(methods: string, sets: readonly string[]): MethodRun[] {
  const names = methods
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  if (names.length === 0) fail("no method given", `use --methods ${methodNames().join(",")}`);
  const runs = new Map(names.map((n) => [n, { name: getMethod(n).name, options: {} as Record<string, unknown> }]));
  for (const s of sets) {
    const m = /^([^.=]+)\.([^=]+)=(.*)$/.exec(s);
    if (!m) fail(`cannot parse --set '${s}'`, "use --set method.option=value, e.g. --set pdcr.samples=10");
    const run = runs.get(m[1]);
    if (!run) fail(`--set ${s}: method ${m[1]} is not in --methods`, `--methods is ${names.join(",")}`);
    const def = getMethod(m[1]);
    const o = def.options.find((x) => x.name === camel(m[2]));
    if (!o)
      fail(
        `--set ${s}: ${m[1]} has no option '${m[2]}'`,
        def.options.length ? `its options: ${def.options.map((x) => kebab(x.name)).join(", ")}` : `${m[1]} has no options`,
      );
    const value = methodOptionParser(o, `set ${m[1]}.${m[2]}`)(m[3]);
    if (o.name in run.options && JSON.stringify(run.options[o.name]) !== JSON.stringify(value))
      fail(`--set ${m[1]}.${m[2]} is given twice, with different values`, "give each option once");
    run.options[o.name] = value;
    // Ranges are checked now, not cell by cell after hours of other methods.
    checkOptionValue(o, run.options[o.name], `--set ${m[1]}.${m[2]}`);
  }
  // ... and so are options that do not apply with the others (pdcr's screen with the fast schedule).
  for (const run of runs.values())
    resolveOptions(getMethod(run.name), run.options, (o, v) => `--set ${run.name}.${kebab(o)}${v === undefined ? "" : `=${v}`}`);
  return [...runs.values()];
}

/**
 * A volume data set's settings, and its defaults where the 2D ones do not apply: boxes of 8 mm as rank
 * units, the methods that run on volumes. The 2D RoI rules are refused (a volume's RoI is its label map's structure); --label and
 * --box-unit are refused on 2D data sets.
 */
function volumeDefaults(f: EvaluateFlags, source: (name: string) => string | undefined): VolumeSettings | undefined {
  // an unreadable manifest is refused where the data set is loaded, after the flags' own checks
  let kind: string | undefined;
  try {
    kind = readManifest(f.dataset).kind;
  } catch (e) {
    if (e instanceof SegcauseError) return undefined;
    throw e;
  }
  if (kind !== "volume") {
    if (f.label !== undefined || f.boxUnit !== undefined)
      fail(`--${f.label !== undefined ? "label" : "box-unit"} applies to volume data sets, and ${f.dataset} holds 2D images`, "drop it");
    return undefined;
  }
  if (source("rois") !== "default")
    fail(
      "--rois places 2D RoIs; on a volume data set the RoI is the structure of each case's label map",
      "drop --rois (choose the structure with --label)",
    );
  if (source("rankUnits") === "default") f.rankUnits = VOLUME_RANK_UNITS;
  // every method that runs on volumes, as every method is the default on images
  if (source("methods") === "default") f.methods = volumeMethodNames().join(",");
  return { boxUnit: f.boxUnit ?? "mm", ...(f.label !== undefined ? { label: f.label } : {}) };
}

/** RoIs handed to the queue at once (each is its control and its methods' cells): enough to keep a fleet busy. */
const QUEUED_ROIS = 256;

/** Rank units on volumes unless --rank-units is given: boxes of 8 mm (8 voxels with --box-unit vox). */
const VOLUME_RANK_UNITS = "block:8";

export function evaluateCommand(): Command {
  const d = PROTOCOL_DEFAULTS;
  const cmd = new Command("evaluate")
    .description(
      "faithfulness benchmark: deletion/insertion curves, top-k effects, leakage, sparsity, stability and cost of every method on models × images × RoIs (resumable)",
    )
    .option("--models <files...>", "ONNX models (each with its model card); required unless --report-only")
    .option("--dataset <path>", "dataset manifest.json or the folder holding it; required unless --report-only")
    .option("--split <name>", "split whose images are explained", "test")
    .option("--images <n>", "first n images of the split, in manifest order (default all)", intAtLeast("images"))
    .option(
      "--methods <list>",
      `comma-separated methods (${methodNames().join(", ")})`,
      allMethods()
        .map((m) => m.name)
        .join(","),
    )
    .option(
      "--set <method.option=value>",
      "a method option, repeatable (e.g. --set pdcr.samples=10)",
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .option(
      "--rois <spec|file.csv>",
      "RoI rule kind:size[xcount] for kind boundary|inside|outside (seeded), or a CSV image,row,col,size",
      "boundary:32",
    )
    .option("--roi-align <px>", "RoI top-left snapped to multiples of this", intAtLeast("roi-align"), 8)
    .option("--bank <file>", "natural-patch bank; default: built from --bank-splits of the dataset at each model's input size (cached in out/banks)")
    .option("--bank-splits <list>", "splits the bank is built from", "train")
    .option("--bank-patch-size <px>", "patch size of a bank built here", intAtLeast("bank-patch-size"), 8)
    .requiredOption("--out <dir>", "output folder (rerun with the same folder to resume)")
    .option("--seed <n>", "seed of every random choice (RoIs, ties, fills, methods)", seed(), 0)
    .option(
      "--rank-units <units>",
      "units every map is ranked on and the curves remove: block:N (N px grid cells clipped to the domain; on volumes boxes of N mm, default block:8), superpixel:N (SLIC) or pixel (the published run's protocol)",
      rankUnitsName(d.rankUnits),
    )
    .option("--steps <K>", "steps of the deletion/insertion curves (step k removes round(k·U/K) of the U units)", intAtLeast("steps", 2), d.steps)
    .option("--fills <list>", "fills of the curves: patches,blur,zero,mean", d.fills.join(","))
    .option("--patch-draws <n>", "natural-patch draws averaged per curve point", intAtLeast("patch-draws"), d.patchDraws)
    .option("--blur-sigma <px>", "sigma of the blur fill (mm on volumes)", numIn("blur-sigma", MIN_BLUR_SIGMA, MAX_BLUR_SIGMA), d.blurSigma)
    .option(
      "--topk <list>",
      "top-k% of the attribution mass (metrics top<k>)",
      numList("topk"),
      d.topk.map((k) => k * 100),
    )
    .option("--top-area <list>", "top-k% of the domain's area in each order (metrics toparea<k>), or none", d.topArea.map((k) => k * 100).join(","))
    .option(
      "--controls <list>",
      "model-free orders measured beside the methods: random,distance (distance = units nearest the RoI first)",
      d.controls.join(","),
    )
    .option("--radius <px>", "leakage radius around the RoI", numIn("radius", 0), d.radius)
    .option("--min-range <d>", "normalised AUCs need m(X) − m(removed) >= this (outcome units)", positive("min-range"), d.minRange)
    .option("--stability", "also run each method on a noisy copy and with seed+1 (triples the method cost)")
    .option("--noise-sigma <g>", "pixel noise sd for --stability (0..255 units)", numIn("noise-sigma", 0), d.noiseSigma)
    .option("--outcome <name>", `RoI outcome: ${OUTCOMES.join(", ")}`, oneOf("outcome", OUTCOMES), d.outcome)
    .option(
      "--reference <kind>",
      "auto, ground-truth or prediction",
      oneOf("reference", ["auto", "ground-truth", "prediction"] as const),
      d.reference,
    )
    .option("--batch-size <n>", "inputs per forward call", intAtLeast("batch-size"))
    .option("--threads <n>", "ONNX Runtime intra-op threads", intAtLeast("threads"))
    .option(
      "--incremental <auto|on|off>",
      "pdcr, pdcr-superpixel, zero and occlusion cells on 2D models: each pass only on what the RoI's outputs need (see explain --incremental); auto/on enter the cell keys, off keeps published keys",
      oneOf("incremental", INCREMENTAL_MODES),
      "off",
    )
    .option("--max-cells <n>", "stop after computing n new cells (rerun to continue)", intAtLeast("max-cells"))
    .option("--report-only", "only (re)write the tables, plots and HTML from the cells that exist")
    .option(
      "--label <n[,m]>",
      "volume data sets: the label map's labels that make the RoI's structure (default: the case's labels, else every label > 0)",
    )
    .option(
      "--box-unit <unit>",
      "volume data sets: --rank-units block:N, --bank-patch-size and the methods' --set <m>.block in mm (default) or vox",
      oneOf("box-unit", BOX_UNITS),
    )
    .option(
      "--queue <url>",
      "compute the cells on `segcause worker`s pulling from this Redis (redis://host:6379/0, rediss:// for TLS); default: here",
    )
    .option("--no-progress", "no progress lines on stderr");
  return addOutputFlags(cmd).action(async (f: EvaluateFlags & OutputFlags) => {
    const human: string[] = [];
    let run: Record<string, unknown> | undefined;
    const notes: string[] = [];
    checkOutputFolder(f.out, "evaluate");
    markResumable("outputs");
    if (f.reportOnly && !existsSync(join(f.out, "run.json")))
      fail(`--report-only: ${f.out} holds no evaluation (no run.json)`, "give --out the folder of an earlier `segcause evaluate` run");
    if (f.reportOnly) checkCellsMatchRun(f.out);
    if (!f.reportOnly) {
      if (!f.models?.length || !f.dataset)
        fail(
          "--models and --dataset are required",
          "give the ONNX models and the dataset manifest (or use --report-only to rewrite the results of --out)",
        );
      const volume = volumeDefaults(f, (name) => cmd.getOptionValueSource(name));
      const protocol = {
        steps: f.steps,
        rankUnits: parseRankUnits(f.rankUnits),
        topArea: parseTopArea(f.topArea),
        controls: parseControls(f.controls),
        fills: parseFills(f.fills),
        patchDraws: f.patchDraws,
        blurSigma: f.blurSigma,
        topk: f.topk.map((k) => k / 100),
        radius: f.radius,
        minRange: f.minRange,
        stability: !!f.stability,
        noiseSigma: f.noiseSigma,
        outcome: f.outcome,
        reference: f.reference,
      };
      if (protocol.topk.some((k) => !(k > 0 && k <= 1))) fail("--topk values must be percentages in (0, 100]");
      const methods = parseMethodRuns(f.methods, f.set);
      const rois = parseRoiSpec(f.rois, f.roiAlign);
      // run.json marks --out as an evaluation: written only once the models, dataset and bank are
      // checked, and refused (under a lock) when the folder holds an evaluation with other settings.
      // the Redis password never reaches the folder (run.json, runs/, reports): it changes no result
      const command = ["segcause", ...redactCommand(process.argv.slice(2))].join(" ");
      const recorded = { ...recordedProtocol(protocol, f.seed), ...(volume ? { volume } : {}) };
      const recordRunSettings = () => recordRun(f.out, { protocol: recorded, methods }, command);
      const t0 = Date.now();
      // One progress display for the whole run, in cells (see util/progress.ts).
      const display = showProgress(f) ? stderrDisplay() : undefined;
      // --queue: connect (one line when Redis is unreachable) before anything is written to --out
      const remote = f.queue ? await RemoteCells.open(f.queue) : undefined;
      const s = await runEvaluation(
        {
          models: f.models,
          dataset: f.dataset,
          split: f.split,
          images: f.images,
          methods,
          rois,
          bank: f.bank,
          bankSplits: f.bankSplits.split(","),
          bankPatchSize: f.bankPatchSize,
          out: f.out,
          seed: f.seed,
          protocol,
          batchSize: f.batchSize,
          threads: f.threads,
          incremental: f.incremental,
          ...(volume ? { volume } : {}),
        },
        {
          onValidated: recordRunSettings,
          beforeWrite: () => claimOutputDir(f.out, "evaluate"),
          maxCells: f.maxCells,
          onStatus: display,
          log: display && ((l) => display.line(`[${((Date.now() - t0) / 1000).toFixed(0)} s] ${l}`)),
          ...(remote ? { remote: { cells: remote, roisAtOnce: QUEUED_ROIS } } : {}),
        },
      )
        .catch((e) => {
          throw remote ? remote.problem(e) : e;
        })
        .finally(async () => {
          display?.end();
          try {
            // the workers of the results this run accepted, also when it stopped: their cells are in the folder
            const workers = remote?.workers();
            if (workers) await recordRunQueue(f.out, redactUrl(f.queue!), workers);
          } finally {
            await remote?.close();
          }
        });
      human.push(
        `${s.computed} cells computed, ${s.resumed} already finished, ${s.skipped} skipped, ${s.failed} refused by their method${s.stoppedEarly ? " (stopped early: rerun to continue)" : ""}`,
      );
      for (const n of s.notes) human.push(`  note: ${n}`);
      run = { computed: s.computed, resumed: s.resumed, skipped: s.skipped, failed: s.failed, stoppedEarly: s.stoppedEarly };
      notes.push(...s.notes);
    }
    const r = await writeEvaluationReport(f.out);
    notes.push(...r.notes);
    for (const n of r.notes) human.push(`  note: ${n}`);
    human.push(`wrote ${r.files.length} files to ${f.out} (report.html, summary.csv, cells.csv, ...) from ${r.summary.cells} cells`);
    emit(
      f,
      () => human.join("\n"),
      () => ({ format: "segcause.evaluate-summary/1", run: run ?? null, notes, out: f.out, cells: r.summary.cells, files: r.files }),
      notes,
    );
  });
}
