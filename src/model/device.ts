/**
 * Where ONNX Runtime runs a graph: "cpu" (the default, and the only provider every onnxruntime-node
 * install has) or "cuda" (NVIDIA GPUs, linux-x64 and win32-x64 only). onnxruntime-node ships the CUDA
 * provider as separate libraries that its install script downloads only when asked
 * (ONNXRUNTIME_NODE_INSTALL=cuda12), so "cuda" is checked before any session is opened: a missing
 * provider or a missing GPU is one line naming the fix, not ORT's native log.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type ort from "onnxruntime-node";
import { fail } from "../errors.js";
import { findPackage } from "../util/installed-package.js";

export const DEVICES = ["cpu", "cuda"] as const;
export type Device = (typeof DEVICES)[number];

/** How to get GPU execution, for every refusal. */
export const CUDA_FIX =
  "on linux-x64 or win32-x64 with an NVIDIA GPU, CUDA 12 and cuDNN 9, run `ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node`; or use --device cpu";

/** The provider libraries the CUDA execution provider loads, by platform (onnxruntime-node's install metadata). */
const CUDA_LIBRARIES: Record<string, string[]> = {
  "linux/x64": ["libonnxruntime_providers_shared.so", "libonnxruntime_providers_cuda.so"],
  "win32/x64": ["onnxruntime_providers_shared.dll", "onnxruntime_providers_cuda.dll"],
};

/** Session options' providers: nothing for "cpu", so CPU sessions are exactly what they were before devices existed. */
export function executionProviders(device: Device): Pick<ort.InferenceSession.SessionOptions, "executionProviders"> {
  return device === "cpu" ? {} : { executionProviders: [{ name: "cuda" }] };
}

/** Refuses a device this installation cannot use (the GPU itself is only known when a session opens: see deviceFailed). */
export function checkDevice(device: Device, platform = `${process.platform}/${process.arch}`, ortRoot?: string): void {
  if (device === "cpu") return;
  ortRoot ??= findPackage("onnxruntime-node", import.meta.url)?.root;
  if (!(DEVICES as readonly string[]).includes(device)) fail(`unknown device '${device}'`, `use one of: ${DEVICES.join(", ")}`);
  const libs = CUDA_LIBRARIES[platform];
  if (!libs)
    fail(`--device cuda: onnxruntime-node has no CUDA provider on ${platform}`, "use --device cpu; CUDA runs on linux-x64 and win32-x64 only");
  const dir = join(ortRoot ?? "", "bin", "napi-v6", ...platform.split("/"));
  const missing = libs.filter((l) => !ortRoot || !existsSync(join(dir, l)));
  if (missing.length) fail(`--device cuda: onnxruntime-node was installed without its CUDA provider (${missing.join(", ")} not found)`, CUDA_FIX);
}

/** A session that did not open on `device`: for "cuda" one line (no GPU, or CUDA/cuDNN libraries missing); otherwise ORT's error as it was. */
export function deviceFailed(device: Device, e: unknown): never {
  if (device === "cpu") throw e;
  fail(`--device cuda: ONNX Runtime could not open a CUDA session (no usable NVIDIA GPU, or CUDA 12/cuDNN 9 not found): ${firstLine(e)}`, CUDA_FIX);
}

function firstLine(e: unknown): string {
  return String((e as Error)?.message ?? e).split("\n")[0];
}
