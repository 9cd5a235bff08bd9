/**
 * The batch runner (src/model/batches.ts) on a graph of two named inputs and two outputs:
 * y = a + b, z = a * k (k a constant feed). Its answers are known by hand.
 */
import { describe, expect, it } from "vitest";
import { type BatchPlan, BatchRunner } from "../src/model/batches.js";
import { Sessions, type TensorData } from "../src/model/runtime.js";
import { GraphBuilder } from "../src/onnx/builder.js";

function twoInputGraph(): Uint8Array {
  const g = new GraphBuilder("two-in");
  const a = g.input("a", ["N", 3]);
  const b = g.input("b", ["N", 3]);
  const k = g.input("k", ["N", 1]);
  g.output(g.node("Add", [a, b], {}, ["y"]), ["N", 3]);
  g.output(g.node("Mul", [a, k], {}, ["z"]), ["N", 3]);
  return g.toBytes();
}

/** Opens the graph and records the feeds of every call. */
async function recorded(workers = 1) {
  const sessions = await Sessions.open(twoInputGraph(), { threads: 1, workers });
  const calls: Record<string, { dims: number[]; data: number[] }>[] = [];
  const run = sessions.run.bind(sessions);
  sessions.run = (worker, feeds, fetches) => {
    calls.push(Object.fromEntries(Object.entries(feeds).map(([n, t]) => [n, { dims: [...t.dims], data: Array.from(t.data as Float32Array) }])));
    return run(worker, feeds, fetches);
  };
  return { sessions, calls };
}

const kOf = (B: number): TensorData => ({ type: "float32", dims: [B, 1], data: new Float32Array(B).fill(10) });
const failed: BatchPlan["failed"] = (e) => {
  throw new Error(`failed: ${(e as Error).message.split("\n")[0]}`);
};

describe("the batch runner", () => {
  it("runs fixed batches; the last is padded with copies of its last item, or with the feed's init value", async () => {
    const { sessions, calls } = await recorded();
    try {
      const runner = new BatchRunner(sessions, {
        feeds: [
          { name: "a", dims: [3] },
          { name: "b", dims: [3], init: "zero" },
        ],
        constants: { k: kOf(2) },
        fetches: ["y", "z"],
        batchSize: 2,
        failed,
      });
      const got: number[][] = [];
      await runner.run(
        [1, 2, 3],
        (v, [a, b], i) => (a.fill(v), b.fill(i === 2 ? 0 : 100)),
        (out, j, v) => got.push([v, out.y.data[j * 3] as number, out.z.data[j * 3] as number]),
      );
      expect(got).toEqual([
        [1, 101, 10],
        [2, 102, 20],
        [3, 3, 30],
      ]);
      expect([runner.items, runner.batches]).toEqual([3, 2]);
      expect(calls.map((c) => c.a.dims)).toEqual([
        [2, 3],
        [2, 3],
      ]);
      expect(calls[1].a.data).toEqual([3, 3, 3, 3, 3, 3]); // padding: a copy of item 3
      expect(calls[1].b.data).toEqual([0, 0, 0, 0, 0, 0]); // padding: the init value
    } finally {
      await sessions.release();
    }
  });

  it("a function init fills every slot, real or padding, before the writer", async () => {
    const { sessions, calls } = await recorded();
    try {
      const runner = new BatchRunner(sessions, {
        feeds: [
          { name: "a", dims: [3] },
          { name: "b", dims: [3], init: (j, dst) => dst.fill(j + 1) },
        ],
        constants: { k: kOf(3) },
        fetches: ["y"],
        batchSize: 3,
        failed,
      });
      await runner.run(
        [5],
        (v, [a, b]) => {
          a.fill(v);
          b[0] = 7;
        },
        () => undefined,
      );
      expect(calls[0].b.data).toEqual([7, 1, 1, 2, 2, 2, 3, 3, 3]);
    } finally {
      await sessions.release();
    }
  });

  it("with shrink, a call of fewer items than the batch runs at its own size", async () => {
    const { sessions, calls } = await recorded();
    try {
      const runner = new BatchRunner(sessions, {
        feeds: [
          { name: "a", dims: [3] },
          { name: "b", dims: [3] },
        ],
        constants: { k: kOf(2) },
        batchSize: 8,
        shrink: true,
        failed,
      });
      expect([runner.batchFor(2), runner.batchFor(20)]).toEqual([2, 8]);
      await runner.run(
        [1, 2],
        (v, [a, b]) => (a.fill(v), b.fill(0)),
        () => undefined,
      );
      expect(calls.map((c) => c.a.dims)).toEqual([[2, 3]]);
    } finally {
      await sessions.release();
    }
  });

  it("two worker threads give the same outputs as one in-thread session", async () => {
    const results: number[][] = [];
    for (const workers of [1, 2]) {
      const { sessions } = await recorded(workers);
      try {
        expect(sessions.threaded).toBe(workers > 1);
        const runner = new BatchRunner(sessions, {
          feeds: [
            { name: "a", dims: [3] },
            { name: "b", dims: [3] },
          ],
          constants: { k: kOf(2) },
          fetches: ["z"],
          batchSize: 2,
          failed,
        });
        const z = new Array<number>(7);
        await runner.run(
          [0, 1, 2, 3, 4, 5, 6],
          (v, [a, b]) => (a.fill(v / 3), b.fill(0)),
          (out, j, v) => (z[v] = out.z.data[j * 3] as number),
        );
        results.push(z);
      } finally {
        await sessions.release();
      }
    }
    expect(results[1]).toEqual(results[0]);
    expect(results[0][3]).toBe(10);
  });

  it("an ONNX Runtime error on a batch goes through the plan's failed()", async () => {
    const { sessions } = await recorded();
    try {
      // no constant k: the graph's input k is missing
      const runner = new BatchRunner(sessions, {
        feeds: [
          { name: "a", dims: [3] },
          { name: "b", dims: [3] },
        ],
        batchSize: 2,
        failed,
      });
      await expect(
        runner.run(
          [1],
          (v, [a, b]) => (a.fill(v), b.fill(0)),
          () => undefined,
        ),
      ).rejects.toThrow(/^failed: /);
    } finally {
      await sessions.release();
    }
  });
});
