/** `segcause demo`: the main job on the bundled default (a shipped model, a shippable sample). */

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Command } from "commander";
import { PatchBank } from "../data/patchbank.js";
import { fail } from "../errors.js";
import { allMethods, methodNames, volumeMethodNames } from "../explain/catalog.js";
import { readingLine } from "../report/counts.js";
import { SCALE_HELP } from "../report/scale.js";
import { addIncrementalFlag, addMethodFlags, COMMON, describeResult, runExplain } from "./explain.js";
import { checkNoImageFlags, emitVolume, runVolumeExplain } from "./explain-volume.js";
import { addDeviceFlag, intOrAuto, oneOf, seed } from "./options.js";
import { addOutputFlags, emit, humanLine, type OutputFlags, showProgress } from "./output.js";
import { explainJson } from "./summary.js";

export const PACKAGE_ROOT = fileURLToPath(new URL("../../", import.meta.url));

interface DemoConfig {
  description: string;
  model: string;
  image: string;
  mask?: string;
  bank: string;
  roi: [number, number, number, number];
}

/** The volume demo's case: a label map as the reference (its labels), a box RoI and the bank's block. */
interface VolumeDemoConfig extends Omit<DemoConfig, "roi"> {
  /** the data set's folder name under the data root; `image` and `mask` are relative to that folder */
  dataset: string;
  label: string;
  block: number;
  roi: [number, number, number, number, number, number];
}

export function demoConfig(): DemoConfig {
  return readDemoConfig("demo.json");
}

export function volumeDemoConfig(): VolumeDemoConfig {
  return readDemoConfig("demo-volume.json");
}

function readDemoConfig<T>(name: string): T {
  const path = join(PACKAGE_ROOT, "samples", name);
  try {
    return JSON.parse(readFileSync(path, "utf8")) as T;
  } catch {
    fail(`the bundled demo configuration ${path} is missing`, "reinstall segcause");
  }
}

/** The demo's flags that are not method options (the rest are checked against the method's). */
const DEMO_FLAGS = new Set([...COMMON, "threads", "volume", "data"]);

type DemoFlags = OutputFlags & {
  out?: string;
  method: string;
  seed: number;
  batchSize?: number | "auto";
  threads?: number | "auto";
  workers?: number | "auto";
  progress: boolean;
  volume?: boolean;
  [k: string]: unknown;
};

/**
 * The folder of the volume demo's data set. Its volumes are not shipped (the data set's files stay
 * outside the package): `--data`, else `$SEGCAUSE_DATA/<dataset>`, else `../shared/data/<dataset>` beside
 * the package, as the tests find it.
 */
export function volumeDemoData(cfg: VolumeDemoConfig, data?: string): string {
  const dir = data ?? join(process.env.SEGCAUSE_DATA ?? join(PACKAGE_ROOT, "..", "shared", "data"), cfg.dataset);
  if (!existsSync(join(dir, cfg.image)))
    fail(
      `the volume demo reads ${cfg.image} of the ${cfg.dataset} data set (Medical Segmentation Decathlon Task04), which segcause does not ship, and ${dir} does not hold it`,
      `pass --data <folder with images/ and labels/ of Task04 Hippocampus> (or set SEGCAUSE_DATA to the folder holding ${cfg.dataset}/); see samples/volume/README.md`,
    );
  return dir;
}

/** `demo --volume`: the shipped 3D model on a hippocampus test case of the data set, through `explain`'s volume path. */
async function volumeDemo(f: DemoFlags): Promise<void> {
  const cfg = volumeDemoConfig();
  const at = (p: string) => join(PACKAGE_ROOT, p);
  const data = volumeDemoData(cfg, f.data as string | undefined);
  if (!volumeMethodNames().includes(f.method))
    fail(`method ${f.method} does not run on volumes yet`, `use --method ${volumeMethodNames().join(", ")} with --volume (see \`segcause methods\`)`);
  if (f.method === "pdcr" && f.block !== undefined && f.block !== cfg.block)
    fail(
      `the volume demo's bank holds ${cfg.block}³-voxel boxes, so its pdcr blocks are ${cfg.block} voxels`,
      "drop --block, or run `segcause explain` with a bank built with `segcause bank build --patch-size <n>`",
    );
  checkNoImageFlags(f);
  const out = f.out ?? "segcause-demo-volume";
  // The description names PdCR, its schedule and its bank; another method gets the same case without them.
  const description =
    f.method === "pdcr"
      ? cfg.description.replace("(fast schedule,", `(${f.schedule === "paper" ? "paper" : "fast"} schedule,`)
      : `${f.method} map${cfg.description.replace(/^PdCR map \([^)]*\)/, "").replace(/, with natural boxes.*$/, "")}`;
  humanLine(f, `segcause demo --volume: ${description}`);
  const r = await runVolumeExplain(
    {
      ...f,
      out,
      progress: showProgress(f),
      model: at(cfg.model),
      image: join(data, cfg.image),
      mask: join(data, cfg.mask!),
      label: cfg.label,
      roi: cfg.roi.join(","),
      bank: f.method === "pdcr" ? at(cfg.bank) : undefined,
      // the box methods' blocks match the bank's boxes; the other methods take no --block
      block: ["pdcr", "zero", "occlusion"].includes(f.method) ? (f.block ?? cfg.block) : f.block,
      outcome: "dice",
      reference: "auto",
    },
    DEMO_FLAGS,
  );
  emitVolume(f, r, { format: "segcause.demo-summary/1", description });
  if (!("stopped" in r) && !f.quiet && !f.json) {
    // a box map is signed (red held the RoI's segmentation up, blue worked against it); a voxel map may be a magnitude
    const a = r.attribution;
    const reads =
      a.unitKind === "box"
        ? "red boxes held its segmentation up, blue ones worked against it"
        : a.signed
          ? "red voxels held its segmentation up, blue ones worked against it"
          : "warmer voxels matter more to its segmentation (a magnitude, no sign)";
    process.stdout.write(
      `  open ${join(out, "mosaic.png")} (slices through the RoI, ${reads}), or load ${join(out, "map.nii.gz")} over ${join(data, cfg.image)} in ITK-SNAP, 3D Slicer or NiiVue\n`,
    );
  }
}

export function demoCommand(): Command {
  const cmd = new Command("demo")
    .description("explain the bundled sample with the bundled model (no arguments needed)")
    .option(
      "--volume",
      "explain a hippocampus MRI test case with the shipped 3D model instead (the methods `segcause methods` marks for volumes); the data set is not shipped: see --data",
    )
    .option(
      "--data <dir>",
      "with --volume: the Task04 Hippocampus folder (images/, labels/); default $SEGCAUSE_DATA/hippocampus or ../shared/data/hippocampus",
    )
    .option("--out <dir>", "output folder (default segcause-demo, or segcause-demo-volume with --volume)")
    .option("--method <name>", `method: ${methodNames().join(", ")}`, oneOf("method", methodNames()), "pdcr")
    .option("--seed <n>", "random seed", seed(), 0)
    .option("--batch-size <n|auto>", "inputs per forward call (default auto)", intOrAuto("batch-size"))
    .option("--threads <n|auto>", "ONNX Runtime intra-op threads per session (default auto)", intOrAuto("threads"))
    .option("--workers <n|auto>", "concurrent ONNX Runtime sessions (default auto)", intOrAuto("workers"))
    .option("--colour-scale <rule>", `colour scale of heatmap.png and overlay.png: ${SCALE_HELP}`, "max")
    .option("--no-progress", "no progress bar on stderr");
  addIncrementalFlag(cmd);
  addDeviceFlag(cmd);
  addOutputFlags(cmd);
  addMethodFlags(cmd, allMethods());
  return cmd.action(async (f: DemoFlags) => {
    if (f.volume) return volumeDemo(f);
    const out = f.out ?? "segcause-demo";
    const cfg = demoConfig();
    const at = (p: string) => join(PACKAGE_ROOT, p);
    // The description names PdCR and its bank; another method gets the same case without them.
    const def = allMethods().find((m) => m.name === f.method);
    const rest = cfg.description.replace(/^PdCR map/, "");
    const description =
      f.method === "pdcr" ? cfg.description : `${f.method} map${def?.needsBank ? rest : rest.replace(/, with natural patches.*$/, "")}`;
    if (def?.needsBank && def.options.some((o) => o.name === "block") && f.block !== undefined) {
      const P = (await PatchBank.load(at(cfg.bank))).patchSize;
      if (f.block !== P)
        fail(
          `the demo's patch bank holds ${P}x${P} patches, so its ${f.method} blocks are ${P} px`,
          `drop --block, or run \`segcause explain\` with a bank built with \`segcause bank build --patch-size ${String(f.block)}\``,
        );
    }
    humanLine(f, `segcause demo: ${description}`);
    const r = await runExplain({
      ...f,
      out,
      progress: showProgress(f),
      model: at(cfg.model),
      image: at(cfg.image),
      mask: cfg.mask ? at(cfg.mask) : undefined,
      roi: cfg.roi.join(","),
      bank: at(cfg.bank),
      outcome: "dice",
      reference: "auto",
    });
    emit(
      f,
      () => `${describeResult(r)}\n  ${readingLine(r.attribution.signed, join(out, "overlay.png"), r.attribution.units.length > 0)}`,
      () => ({ ...explainJson(r), format: "segcause.demo-summary/1", description }),
      r.attribution.notes,
    );
  });
}
