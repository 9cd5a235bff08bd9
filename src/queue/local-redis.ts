/**
 * A redis-server of one's own on 127.0.0.1 at a free port, without persistence, in a given folder:
 * what the scale bench and the queue tests run against (Debian's binary; nothing is downloaded).
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { connect, createServer } from "node:net";

/** Why no local redis-server can be started here, or undefined. */
export function redisMissing(): string | undefined {
  const r = spawnSync("redis-server", ["--version"], { encoding: "utf8" });
  return r.status === 0 ? undefined : "redis-server is not installed (apt-get install redis-server; .ci/run installs it)";
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface LocalRedis {
  port: number;
  url: string;
  stop(): Promise<void>;
  /** starts the same server again (empty: nothing is persisted) */
  start(): Promise<void>;
}

/** Starts a redis-server in `dir`; `args` adds settings (a password, a TLS port), `url` is how clients reach it. */
export async function startLocalRedis(
  dir: string,
  opts: { args?: (port: number, dir: string) => string[]; url?: (port: number) => string } = {},
): Promise<LocalRedis> {
  const port = await freePort();
  const args = opts.args?.(port, dir) ?? ["--port", String(port)];
  let child: ChildProcess | undefined;
  const r: LocalRedis = {
    port,
    url: opts.url?.(port) ?? `redis://127.0.0.1:${port}/0`,
    async start() {
      child = spawn("redis-server", [...args, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir], { stdio: "ignore" });
      await waitForPort(port);
    },
    async stop() {
      if (!child || child.exitCode !== null) return;
      const exited = new Promise((resolve) => child!.once("exit", resolve));
      child.kill("SIGKILL");
      await exited;
    },
  };
  await r.start();
  return r;
}

/** Waits until the server accepts TCP connections (plain or TLS: no Redis command is sent). */
async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = connect(port, "127.0.0.1");
      c.once("connect", () => (c.destroy(), resolve(true)));
      c.once("error", () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`redis-server did not listen on port ${port}`);
}
