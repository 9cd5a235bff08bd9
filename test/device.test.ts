/**
 * --device: CPU sessions are exactly what they were before devices existed, and a GPU that this
 * installation cannot use is refused in one line naming the fix (this machine has no CUDA provider
 * and no GPU, so the refusal is what can be run here).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { loadCase } from "../src/data/case.js";
import { SegcauseError } from "../src/errors.js";
import { RunContext } from "../src/explain/run.js";
import { CUDA_FIX, checkDevice, deviceFailed } from "../src/model/device.js";
import { Model } from "../src/model/model.js";
import { Sessions, sessionOptions } from "../src/model/runtime.js";
import { findPackage } from "../src/util/installed-package.js";
import { causalFixture, segcause } from "./helpers/cli.js";
import { tmp } from "./helpers/tiny.js";

const ortRoot = findPackage("onnxruntime-node", import.meta.url)!.root;
const cudaInstalled = existsSync(join(ortRoot, "bin", "napi-v6", process.platform, process.arch, "libonnxruntime_providers_cuda.so"));

let fx: Awaited<ReturnType<typeof causalFixture>>;
beforeAll(async () => {
  fx = await causalFixture();
});

function thrown(f: () => unknown): SegcauseError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(SegcauseError);
    return e as SegcauseError;
  }
  throw new Error("expected a refusal");
}

describe("cpu (the default) is unchanged", () => {
  it("CPU session options name no execution provider, as before devices existed; cuda's name the CUDA provider (worker threads get the same options)", () => {
    expect(sessionOptions(2)).not.toHaveProperty("executionProviders");
    expect(sessionOptions(2, "all", "cpu")).toEqual(sessionOptions(2));
    expect(sessionOptions(2, "extended", "cuda")).toEqual({ ...sessionOptions(2, "extended"), executionProviders: [{ name: "cuda" }] });
  });

  it("a CPU run's checkpoint key has no device field, and its provenance says cpu", async () => {
    const model = await Model.load(fx.model, { threads: 1 });
    try {
      expect(model.device).toBe("cpu");
      const kase = await loadCase(model, fx.image);
      const ctx = await RunContext.open(model, kase, { roi: { row: 16, col: 0, height: 8, width: 8 } });
      expect(ctx.checkpointKey(["model", { method: "zero" }])).toEqual({ model: model.sha256, method: "zero" });
      const a = ctx.finish({
        method: "zero",
        unitKind: "block",
        signed: true,
        map: new Float32Array(32 * 32),
        units: [],
        roiCells: 0,
        forwardPasses: 1,
        tau: 0,
        settings: {},
        intervention: {},
      });
      expect(a.provenance.runner).toMatchObject({ device: "cpu" });
    } finally {
      await model.release();
    }
  });

  it("`--device cpu` writes the same map as no --device", () => {
    const args = (out: string) => [
      "explain",
      "--method",
      "zero",
      "--model",
      fx.model,
      "--image",
      fx.image,
      "--roi",
      "16,0,8,8",
      "--out",
      out,
      "--quiet",
    ];
    const plain = join(fx.dir, "plain"),
      cpu = join(fx.dir, "cpu");
    expect(segcause(...args(plain)).code).toBe(0);
    const r = segcause(...args(cpu), "--device", "cpu");
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(cpu, "map.npy")).equals(readFileSync(join(plain, "map.npy")))).toBe(true);
    expect(JSON.parse(readFileSync(join(cpu, "manifest.json"), "utf8")).provenance.runner.device).toBe("cpu");
  });
});

describe("cuda is refused in one line when it cannot work", () => {
  it("names the provider libraries missing from onnxruntime-node's folder and the reinstall that brings them", () => {
    const root = tmp();
    const dir = join(root, "bin", "napi-v6", "linux", "x64");
    mkdirSync(dir, { recursive: true });
    const e = thrown(() => checkDevice("cuda", "linux/x64", root));
    expect(e.message).toMatch(
      /onnxruntime-node was installed without its CUDA provider \(libonnxruntime_providers_shared\.so, libonnxruntime_providers_cuda\.so not found\)/,
    );
    expect(e.hint).toBe(CUDA_FIX);
    expect(CUDA_FIX).toMatch(/ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node/);
    // with the provider's libraries in place, the installation passes (the GPU itself is checked when a session opens)
    for (const l of ["libonnxruntime_providers_shared.so", "libonnxruntime_providers_cuda.so"]) writeFileSync(join(dir, l), "");
    expect(() => checkDevice("cuda", "linux/x64", root)).not.toThrow();
    expect(thrown(() => checkDevice("cuda", "darwin/arm64", root)).message).toMatch(/no CUDA provider on darwin\/arm64/);
  });

  it("a session that ONNX Runtime cannot open on the GPU is one line naming the fix; on the CPU ORT's error is passed on as it was", () => {
    const ortError = new Error("CUDA failure 100: no CUDA-capable device is detected ; GPU=0 ; hostname=x\nstack line");
    const e = thrown(() => deviceFailed("cuda", ortError));
    expect(e.message).toBe(
      "--device cuda: ONNX Runtime could not open a CUDA session (no usable NVIDIA GPU, or CUDA 12/cuDNN 9 not found): CUDA failure 100: no CUDA-capable device is detected ; GPU=0 ; hostname=x",
    );
    expect(e.hint).toBe(CUDA_FIX);
    expect(() => deviceFailed("cpu", ortError)).toThrow(ortError);
  });

  it.skipIf(cudaInstalled)(
    "on this installation (no CUDA provider): the library refuses before opening a session, the CLI in one line with nothing written",
    async () => {
      await expect(Model.load(fx.model, { device: "cuda" })).rejects.toThrow(/installed without its CUDA provider/);
      await expect(Sessions.open(readFileSync(fx.model), { threads: 1, workers: 2, device: "cuda" })).rejects.toThrow(SegcauseError);
      const out = join(fx.dir, "gpu");
      for (const cmd of [
        ["explain", "--method", "zero", "--model", fx.model, "--image", fx.image, "--roi", "16,0,8,8", "--out", out],
        ["components", "--model", fx.model, "--image", fx.image, "--roi", "16,0,8,8", "--out", out],
        ["demo", "--out", out],
      ]) {
        const r = segcause(...cmd, "--device", "cuda");
        expect(r.code, r.stderr).toBe(1);
        expect(r.stderr.trim().split("\n"), cmd[0]).toHaveLength(1);
        expect(r.stderr).toMatch(
          /^segcause: error: --device cuda: onnxruntime-node was installed without its CUDA provider .*ONNXRUNTIME_NODE_INSTALL=cuda12/,
        );
        expect(existsSync(out), cmd[0]).toBe(false);
      }
      expect(segcause("explain", "--device", "gpu", "--model", fx.model, "--image", fx.image, "--roi", "16,0,8,8", "--out", out).stderr).toMatch(
        /--device must be one of cpu, cuda, got 'gpu'/,
      );
    },
  );
});
