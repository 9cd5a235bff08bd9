/** Two or three examples shown first by `segcause <command> --help`, before the flag list. */
import type { Command } from "commander";

const EXAMPLES: Record<string, string[]> = {
  explain: [
    "segcause explain --model models/unet-ph2.onnx --image samples/lesion.png --mask samples/lesion_mask.png \\\n      --roi 56,112,32,32 --bank samples/lesion-bank.scbank --out out/",
    "segcause explain --method saliency --model m.onnx --image case.png --roi-mask roi.png --colour-scale p99 --out sal/",
    "segcause explain ... --json > summary.json        # one JSON summary on stdout, progress on stderr",
  ],
  demo: [
    "segcause demo                                      # PdCR on the bundled sample, into segcause-demo/",
    "segcause demo --volume                             # PdCR on the bundled hippocampus MRI volume, into segcause-demo-volume/",
    "segcause demo --method gradcam --out gradcam-demo/",
  ],
  methods: ["segcause methods", "segcause methods --verbose                         # every option with its default"],
  components: [
    "segcause components --list --model models/unet-ph2.onnx --level block",
    "segcause components --model models/unet-ph2.onnx --image samples/lesion.png --roi 56,112,32,32 --ablation zero --out comp/",
    "segcause components --model models/volumes/unet3d-hippocampus.onnx --image case.nii.gz --roi-mask labels.nii.gz --donors data/manifest.json --out comp3d/",
  ],
  bank: ["segcause bank build --images data/manifest.json --model m.onnx --out data.scbank"],
  "bank build": [
    "segcause bank build --images data/manifest.json --model m.onnx --out data.scbank",
    "segcause bank build --images my-train-images/ --size 256,256 --out my.scbank",
  ],
  dataset: ["segcause dataset init --images data/images --masks data/masks --splits train=70,val=15,test=15 --out data/manifest.json"],
  "dataset init": [
    "segcause dataset init --images data/images --masks data/masks --splits train=70,val=15,test=15 --out data/manifest.json",
    "segcause dataset init --images data/images --out data/manifest.json    # images only",
    "segcause dataset init --images ct/ --masks segs/ --out ct/manifest.json    # DICOM series, SEGs paired by UID",
  ],
  info: ["segcause info --model m.onnx", "segcause info --model m.onnx --json"],
  evaluate: [
    "segcause evaluate --models m.onnx --dataset data/manifest.json --images 10 --methods pdcr,occlusion,ig --bank data.scbank --out bench/",
    "segcause evaluate --out bench/ --report-only       # rewrite the report from the cells that exist",
    "segcause evaluate --models m.onnx --dataset data/manifest.json --out bench/ --queue redis://host:6379/0   # cells on `segcause worker`s",
  ],
  worker: [
    "segcause worker --queue redis://host:6379/0                    # compute evaluate --queue's cells; one per core",
    "segcause worker --queue rediss://:password@host:6380/0 --concurrency 2 --cache /var/cache/segcause",
  ],
  queue: ["segcause queue status --queue redis://host:6379/0", "segcause queue retry --queue redis://host:6379/0"],
  "queue status": ["segcause queue status --queue redis://host:6379/0", "segcause queue status --queue redis://host:6379/0 --json"],
  "queue retry": ["segcause queue retry --queue redis://host:6379/0      # failed jobs back in the queue (not refusals)"],
  "queue drain": ["segcause queue drain --queue redis://host:6379/0      # remove the waiting jobs"],
  zoo: ["segcause zoo list", "npm i @segcause/zoo && segcause zoo list   # every model of the zoo"],
  "zoo list": ["segcause zoo list"],
  view: [
    "segcause view                                     # the bundled models and samples; prints the address and opens it",
    "segcause view --model m.onnx --image case.png --no-open",
    "segcause view --results out/                      # open explain results folders",
  ],
  strategies: [
    "segcause strategies --maps bench/ --methods pdcr --out strategies/",
    "segcause strategies --maps bench/ --out strategies/          # every method found",
  ],
};

/** Adds the examples of `cmd` and its subcommands (keyed by their path below `segcause`). */
export function addExamples(cmd: Command, path = cmd.name()): void {
  const ex = EXAMPLES[path];
  if (ex) cmd.addHelpText("before", `Examples:\n${ex.map((e) => `  ${e}`).join("\n")}\n`);
  for (const c of cmd.commands) addExamples(c, `${path} ${c.name()}`);
}
