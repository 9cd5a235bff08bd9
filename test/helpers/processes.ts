/**
 * Background segcause processes for the queue tests (workers, enqueuers that are stopped or killed)
 * and bounded waits, so a hung Redis call or process fails its test instead of stalling the suite.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { tmp } from "./tiny.js";

const BIN = join(import.meta.dirname, "..", "..", "bin", "segcause.js");

/** A CLI process running in the background. */
export interface Bg {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  done: Promise<number | null>;
}

export function bg(...args: string[]): Bg {
  return bgEnv({}, ...args);
}

/** As bg, with these variables added to the environment. */
export function bgEnv(env: Record<string, string>, ...args: string[]): Bg {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
  let out = "",
    err = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (err += d));
  // "close", not "exit": a process's last lines (a worker's log of its last job) can arrive after its exit
  const done = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
  return { child, out: () => out, err: () => err, done };
}

/** `segcause worker` on `url` with a cache of its own. */
export const worker = (url: string, ...more: string[]) => bg("worker", "--queue", url, "--cache", tmp("segcause-wcache-"), ...more);

/** SIGTERM to those still running, then wait for all. */
export async function stop(...ps: Bg[]): Promise<void> {
  for (const p of ps) if (p.child.exitCode === null) p.child.kill("SIGTERM");
  await Promise.all(ps.map((p) => p.done));
}

/** `p`, or a failure naming `what` after `ms`. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, ko) => {
    timer = setTimeout(() => ko(new Error(`timed out after ${ms} ms waiting until ${what}`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** Polls `f` until it holds; each call and the whole wait are bounded by `ms`. */
export async function until(what: string, f: () => Promise<boolean> | boolean, ms = 120_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await within(Promise.resolve(f()), Math.max(end - Date.now(), 1), what))) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
