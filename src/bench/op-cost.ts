/**
 * `npm run bench -- --op-cost`: measures the constants of the executor cost model (src/explain/executor-cost.ts).
 * On one model (one session, 1 and 2 threads), the CPU time of a call of the full graph, the RoI-cropped graph
 * (centre 32 px RoI), the changed-region graph (16 px blocks in reach) and a one-op graph, fitted by
 * least squares as a·MACs + b·ops + c; prints b/a (OP_MACS), c/a (RUN_MACS) and the changed-region
 * executor's opening time per op over a (OPEN_MACS_PER_OP). CPU time, not wall time: on a loaded machine it scatters less.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { ModelProtoSchema, NodeProtoSchema } from "onnx-buf";
import { ChangedPasses } from "../explain/changed-executor.js";
import { Model } from "../model/model.js";
import { Sessions, type TensorData } from "../model/runtime.js";
import { valueInfo } from "../onnx/builder.js";
import { changedGraph, planBox, type Win } from "../onnx/changed.js";
import { cropGraph } from "../onnx/crop.js";

export interface OpCostResult {
  model: string;
  threads: number;
  rows: { graph: string; macs: number; ops: number; cpuMs: number; firstMs?: number }[];
  usPerMac: number;
  usPerOp: number;
  usPerRun: number;
  openMs: number;
  opMacs: number;
  runMacs: number;
  openMacsPerOp: number;
}

const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/** Median CPU ms of `reps` calls of `f` (after one warm-up call). */
async function perCall(f: () => Promise<unknown>, reps: number): Promise<number> {
  await f();
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t = cpu();
    await f();
    ts.push(cpu() - t);
  }
  return ts.sort((a, b) => a - b)[Math.floor(reps / 2)];
}

function oneOpModel(): Uint8Array {
  return toBinary(
    ModelProtoSchema,
    create(ModelProtoSchema, {
      irVersion: 8n,
      opsetImport: [{ domain: "", version: 13n }],
      graph: {
        name: "one-op",
        node: [create(NodeProtoSchema, { opType: "Relu", input: ["x"], output: ["y"] })],
        input: [valueInfo("x", [1, 1, 1, 1])],
        output: [valueInfo("y", [1, 1, 1, 1])],
      },
    }),
  );
}

/** Least squares of t = a·m + b·n + c for c fixed (the one-op graph's time). */
function fit(rows: { macs: number; ops: number; cpuMs: number }[], c: number): [number, number] {
  let [smm, smn, snn, smt, snt] = [0, 0, 0, 0, 0];
  for (const r of rows) {
    const t = r.cpuMs - c;
    smm += r.macs * r.macs;
    smn += r.macs * r.ops;
    snn += r.ops * r.ops;
    smt += r.macs * t;
    snt += r.ops * t;
  }
  const det = smm * snn - smn * smn;
  return [(smt * snn - snt * smn) / det, (snt * smm - smt * smn) / det];
}

export async function opCostBench(path: string, threads: number, reps = 9, log: (s: string) => void = console.error): Promise<OpCostResult> {
  const model = await Model.load(path, { threads, workers: 1 });
  const cfg = { threads, workers: 1, device: model.device };
  const [C, H, W] = [model.channels, model.height, model.width];
  const input = new Float32Array(C * H * W).map((_, i) => Math.sin(i) * 0.5 + 0.5);
  const roi = { rows: [H / 2 - 16, H / 2 + 16] as [number, number], cols: [W / 2 - 16, W / 2 + 16] as [number, number] };
  const rows: OpCostResult["rows"] = [];
  const opened: Sessions[] = [];
  try {
    log(`op-cost: ${path}`);
    const one = await Sessions.open(oneOpModel(), cfg);
    opened.push(one);
    const usPerRun = 1000 * (await perCall(() => one.run(0, { x: { type: "float32", data: new Float32Array(1), dims: [1, 1, 1, 1] } }), 5 * reps));
    const full = await Sessions.open(model.bytes, cfg);
    opened.push(full);
    const fullOps = model.proto().graph!.node.length;
    const cg0 = changedGraph(model.proto(), roi);
    const feed: Record<string, TensorData> = { [model.inputName]: { type: "float32", data: input, dims: [1, C, H, W] } };
    rows.push({ graph: "full", macs: cg0.fullMacs, ops: fullOps, cpuMs: await perCall(() => full.run(0, feed), reps) });
    const cg = cropGraph(model.proto(), roi);
    const crop = await Sessions.open(cg.bytes, cfg);
    opened.push(crop);
    const [[r0, r1], [c0, c1]] = [cg.inputBox[2], cg.inputBox[3]];
    const cin = new Float32Array(C * (r1 - r0) * (c1 - c0));
    const cfeed: Record<string, TensorData> = { [model.inputName]: { type: "float32", data: cin, dims: [1, C, r1 - r0, c1 - c0] } };
    rows.push({ graph: "RoI-cropped", macs: cg.macs, ops: cg.nodes, cpuMs: await perCall(() => crop.run(0, cfeed), reps) });
    const t0 = cpu();
    const passes = await ChangedPasses.open(model, cg0, input);
    const openMs = cpu() - t0;
    try {
      // 16 px blocks in reach, spread over the input the RoI reads
      const boxes: Win[] = [];
      for (let y = Math.ceil(r0 / 16) * 16; y + 16 <= r1; y += 48)
        for (let x = Math.ceil(c0 / 16) * 16; x + 16 <= c1; x += 48)
          boxes.push([
            [y, y + 16],
            [x, x + 16],
          ]);
      for (const box of boxes.slice(0, 12)) {
        const tile = passes.tile(input, box);
        // the first call of a box: a new box means new window shapes, which ONNX Runtime plans again
        const t1 = cpu();
        await passes.run(box, [tile]);
        const firstMs = cpu() - t1;
        rows.push({
          firstMs,
          graph: `changed-region ${box[0][0]},${box[1][0]}`,
          macs: planBox(cg0, box).macs,
          ops: cg0.nodes,
          cpuMs: await perCall(() => passes.run(box, [tile]), Math.max(3, reps >> 1)),
        });
      }
    } finally {
      await passes.release();
    }
    const c = usPerRun / 1000;
    const [a, b] = fit(rows, c);
    const r: OpCostResult = {
      model: path.split("/").pop()!,
      threads,
      rows,
      usPerMac: 1000 * a,
      usPerOp: 1000 * b,
      usPerRun,
      openMs,
      opMacs: b / a,
      runMacs: c / a,
      openMacsPerOp: (openMs - rows[0].cpuMs) / (fullOps + cg0.nodes) / a,
    };
    console.log(`\n## Executor cost model (${r.model}, 1 session × ${threads} thread(s), median CPU ms per call)`);
    console.log("graph | MACs | ops | CPU ms | first call of a box");
    console.log("---|---|---|---|---");
    for (const x of rows)
      console.log(
        `${x.graph} | ${(x.macs / 1e6).toFixed(1)} M | ${x.ops} | ${x.cpuMs.toFixed(2)} | ${x.firstMs === undefined ? "–" : x.firstMs.toFixed(2)}`,
      );
    console.log(
      `\nfit: ${(1e6 * r.usPerMac).toFixed(3)} µs per MMAC, ${r.usPerOp.toFixed(1)} µs per op, ${r.usPerRun.toFixed(1)} µs per call; opening changed-region passes ${openMs.toFixed(0)} ms CPU`,
    );
    console.log(`OP_MACS = ${r.opMacs.toPrecision(2)}, RUN_MACS = ${r.runMacs.toPrecision(2)}, OPEN_MACS_PER_OP = ${r.openMacsPerOp.toPrecision(2)}`);
    return r;
  } finally {
    await Promise.all(opened.map((s) => s.release()));
    await model.release();
  }
}
