/**
 * `npm run bench`: throughput of the Runner against a bare onnxruntime-node loop on the same model,
 * batch size and thread settings, measured side by side (interleaved rounds) in one run, then the
 * forward passes and wall time of one PdCR map on the bundled demo.
 */
import { readdirSync } from "node:fs";
import { join } from "node:path";
import ort from "onnxruntime-node";
import { Model } from "../model/model.js";
import { Runner } from "../model/runner.js";
import { loadCase } from "../data/case.js";
import { PatchBank } from "../data/patchbank.js";
import { explainPdcr } from "../explain/pdcr.js";
import { PatchIntervention } from "../explain/interventions.js";
import { makeOutcome } from "../target/outcome.js";
import { Region } from "../target/roi.js";
import { demoConfig, PACKAGE_ROOT } from "../cli/demo.js";
import { Rng } from "../util/rng.js";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SECONDS_PER_ROUND = Number(process.env.BENCH_SECONDS ?? 4);

async function bareLoop(model: Model, batch: number, seconds: number): Promise<number> {
  const session = await ort.InferenceSession.create(model.path, {
    intraOpNumThreads: model.threads,
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: "all",
    extra: { session: { intra_op: { allow_spinning: "0" }, inter_op: { allow_spinning: "0" } } },
  });
  const data = new Float32Array(batch * model.inputSize);
  const rng = new Rng(1);
  for (let i = 0; i < data.length; i++) data[i] = rng.next();
  const feeds = { [model.inputName]: new ort.Tensor("float32", data, [batch, model.channels, model.height, model.width]) };
  await session.run(feeds); // warm-up
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    await session.run(feeds);
    n += batch;
  }
  const rate = n / ((performance.now() - t0) / 1000);
  await session.release();
  return rate;
}

async function runnerLoop(model: Model, batch: number, seconds: number, base: Float32Array, bank: PatchBank | undefined): Promise<number> {
  const runner = new Runner(model, { batchSize: batch });
  const region = Region.rect({ row: Math.floor(model.height / 2) - 16, col: Math.floor(model.width / 2) - 16, height: 32, width: 32 }, model.height, model.width);
  const reference = new Uint8Array(model.height * model.width).fill(1);
  // Same per-input work as a PdCR run: copy the image, paste a bank patch, score Dice on the RoI.
  const patch = bank ? new PatchIntervention(bank, model, bank.patchSize) : undefined;
  const block = { index: 0, row: 0, col: 0, height: bank?.patchSize ?? 0, width: bank?.patchSize ?? 0 };
  const items = Array.from({ length: batch * 16 }, (_, i) => i);
  await runner.evaluate(items.slice(0, batch), (_, dst) => dst.set(base), () => 0); // warm-up, learns the output layout
  const score = makeOutcome("dice", model.card.output, model.outputLayout!, region, reference);
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    await runner.evaluate(
      items,
      (i, dst) => {
        dst.set(base);
        patch?.apply(dst, block, i % patch.draws);
      },
      (d, slot) => score(d, slot),
    );
    n += items.length;
  }
  return n / ((performance.now() - t0) / 1000);
}

function shippedModels(): string[] {
  const dir = join(PACKAGE_ROOT, "models");
  try {
    return readdirSync(dir).filter((f) => f.endsWith(".onnx")).sort().map((f) => join(dir, f));
  } catch {
    return [];
  }
}

async function main(): Promise<void> {
  const cfg = demoConfig();
  const demoModel = join(PACKAGE_ROOT, cfg.model);
  const only = process.env.BENCH_MODELS === "all" ? shippedModels() : [demoModel];
  const bank = await PatchBank.load(join(PACKAGE_ROOT, cfg.bank));
  const batch = Number(process.env.BENCH_BATCH ?? 8);
  console.log(`segcause bench · ${process.arch} ${(await import("node:os")).cpus().length} cores · node ${process.version} · batch ${batch} · ${ROUNDS} interleaved rounds of ${SECONDS_PER_ROUND}s`);
  console.log("model | bare ORT img/s | segcause Runner img/s | ratio");
  for (const path of only) {
    const model = await Model.load(path);
    const kase = await loadCase(model, join(PACKAGE_ROOT, cfg.image));
    const base = model.preprocess(kase.image);
    const bare: number[] = [], ours: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      bare.push(await bareLoop(model, batch, SECONDS_PER_ROUND));
      ours.push(await runnerLoop(model, batch, SECONDS_PER_ROUND, base, bank));
    }
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    console.log(`${path.split("/").pop()} | ${med(bare).toFixed(1)} | ${med(ours).toFixed(1)} | ${(med(ours) / med(bare)).toFixed(3)}`);
    await model.release();
  }
  // One PdCR map with the paper's schedule on the bundled demo.
  const model = await Model.load(demoModel);
  const kase = await loadCase(model, join(PACKAGE_ROOT, cfg.image), cfg.mask ? join(PACKAGE_ROOT, cfg.mask) : undefined);
  const [row, col, height, width] = cfg.roi;
  const a = await explainPdcr(model, kase, { roi: { row, col, height, width } }, { bank, batchSize: batch });
  const significant = a.units.filter((u) => u.status === "significant").length;
  console.log(
    `PdCR map (paper schedule) on the demo: ${a.forwardPasses} forward passes, ${(a.wallMs / 1000).toFixed(1)} s wall, ${(a.forwardPasses / (a.wallMs / 1000)).toFixed(1)} passes/s, ${significant}/${a.units.length} blocks significant`,
  );
  await model.release();
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
