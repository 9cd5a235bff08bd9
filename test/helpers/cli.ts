/** Runs the built CLI as a user would, and the tiny causal fixture the CLI tests share. */
import { spawn, spawnSync } from "node:child_process";
import { join } from "node:path";
import { flatBank, regionMeanModel, tmp, writeImage, writeModel } from "./tiny.js";

const BIN = join(import.meta.dirname, "..", "..", "bin", "segcause.js");

/** A CLI call that hangs fails its test in minutes, not at the suite's limit (generous: CI shares 2 cores). */
const CLI_TIMEOUT_MS = 240_000;

export interface ChildRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * `node <args>` killed after `timeoutMs` (the CLI timeout unless given), so that a hang fails its test with a
 * line saying so instead of holding the suite until its limit.
 */
export function runNode(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; label?: string } = {}): ChildRun {
  const timeout = opts.timeoutMs ?? CLI_TIMEOUT_MS;
  const r = spawnSync(process.execPath, args, { cwd: opts.cwd, env: opts.env, encoding: "utf8", timeout, killSignal: "SIGKILL" });
  const timedOut = (r.error as NodeJS.ErrnoException | undefined)?.code === "ETIMEDOUT";
  const label = opts.label ?? `node ${args[0] ?? ""}`;
  return { code: r.status, stdout: r.stdout, stderr: timedOut ? `${r.stderr}\n[test harness: ${label} killed after ${timeout / 1000} s]` : r.stderr };
}

/** The built CLI, as a user runs it. */
export function segcause(...args: string[]): ChildRun {
  return runNode([BIN, ...args], { label: `segcause ${args[0] ?? ""}` });
}

/**
 * CLI processes at once in a test file (CI has 2 cores): a file's independent cases (`it.concurrent`, or
 * `Promise.all` inside one test) overlap their Node and ONNX Runtime start-ups instead of queueing.
 */
const AT_ONCE = 2;
let running = 0;
const waiting: (() => void)[] = [];

/** As runNode, without blocking the test file (or a server under test in it): the child runs when one of AT_ONCE slots is free. */
export async function runNodeAsync(
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; label?: string } = {},
): Promise<ChildRun> {
  if (running >= AT_ONCE) await new Promise<void>((go) => waiting.push(go));
  running++;
  try {
    const timeout = opts.timeoutMs ?? CLI_TIMEOUT_MS;
    const label = opts.label ?? `node ${args[0] ?? ""}`;
    const child = spawn(process.execPath, args, { cwd: opts.cwd, env: opts.env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "",
      stderr = "",
      timedOut = false;
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeout);
    // "close", not "exit": the last lines can arrive after the exit (processes.ts)
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once("error", reject);
      child.once("close", (c) => resolve(c));
    }).finally(() => clearTimeout(timer));
    return { code, stdout, stderr: timedOut ? `${stderr}\n[test harness: ${label} killed after ${timeout / 1000} s]` : stderr };
  } finally {
    running--;
    waiting.shift()?.();
  }
}

/** As segcause(), asynchronously (see runNodeAsync). */
export function segcauseAsync(...args: string[]): Promise<ChildRun> {
  return runNodeAsync([BIN, ...args], { label: `segcause ${args[0] ?? ""}` });
}

/**
 * A model whose RoI outcome depends only on the 16x16 region at (0,16) (weight 50), a bright image
 * and a bank of three flat patches: the correct map is known.
 */
export async function causalFixture(): Promise<{ dir: string; model: string; image: string; bank: string }> {
  const dir = tmp();
  const model = writeModel(dir, "causal.onnx", regionMeanModel([{ row: 0, col: 16, height: 16, width: 16, weight: 50 }], -40));
  const image = await writeImage(dir, "bright.png", () => 230);
  const bank = join(dir, "bank.scbank");
  await flatBank([20, 240, 20]).save(bank);
  return { dir, model, image, bank };
}

/** `segcause components` at the spatial level on the tensor `feat` (cells of 4) with zero ablation, RoI 8,4,4,4, into `out`. */
export function spatialComponents(model: string, image: string, out: string): ChildRun {
  const level = ["--level", "spatial", "--tensor", "feat", "--cell", "4", "--ablation", "zero"];
  return segcause("components", "--model", model, "--image", image, "--roi", "8,4,4,4", ...level, "--out", out, "--no-progress");
}
