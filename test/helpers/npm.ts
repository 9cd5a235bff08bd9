/** Runs npm as a user's shell would, also under `npm test`. */
import { type SpawnSyncReturns, spawnSync } from "node:child_process";

export const NPM = process.platform === "win32" ? "npm.cmd" : "npm";

/**
 * The environment of a user's shell: `npm run` exports the repository's own package and prefix
 * settings as npm_* variables, which would make a child npm act on the repository. onnxruntime-node's
 * install script is skipped as the README says (its CPU binaries ship in its package).
 */
export function userEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ONNXRUNTIME_NODE_INSTALL: "skip" };
  for (const k of Object.keys(env)) {
    const key = k.toLowerCase();
    const fromNpmRun =
      key.startsWith("npm_") && !/^npm_config_(registry|cache|userconfig|globalconfig|cafile|proxy|https_proxy|noproxy|strict_ssl)$/.test(key);
    if (fromNpmRun || key === "init_cwd") delete env[k];
  }
  return env;
}

export function run(cmd: string, args: string[], cwd: string, timeoutMs: number): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, { cwd, env: userEnv(), encoding: "utf8", timeout: timeoutMs, maxBuffer: 64 * 2 ** 20 });
  if (r.error) throw new Error(`${cmd} ${args.join(" ")} in ${cwd}: ${r.error.message}`);
  return r;
}

/** npm's stdout; a failure throws with npm's stderr. */
export function npm(args: string[], cwd: string, timeoutMs = 300_000): string {
  const r = run(NPM, args, cwd, timeoutMs);
  if (r.status !== 0) throw new Error(`npm ${args.join(" ")} in ${cwd} exited ${String(r.status)}:\n${r.stderr}`);
  return r.stdout;
}

/** The files `npm pack` would put in the package of `dir`, without running its scripts. */
export function packedFiles(dir: string): string[] {
  const out = JSON.parse(npm(["pack", "--dry-run", "--json", "--ignore-scripts"], dir, 60_000)) as { files: { path: string }[] }[];
  return out[0].files.map((f) => f.path);
}
