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
  // A port free a moment ago can be taken before redis-server binds it (then it exits, and another
  // program answers on that port): a few fresh ports are tried.
  for (let attempt = 1; ; attempt++) {
    const r = localRedis(dir, await freePort(), opts);
    try {
      await r.start();
      return r;
    } catch (e) {
      await r.stop();
      if (attempt === 3) throw e;
    }
  }
}

function localRedis(dir: string, port: number, opts: { args?: (port: number, dir: string) => string[]; url?: (port: number) => string }): LocalRedis {
  const args = opts.args?.(port, dir) ?? ["--port", String(port)];
  let child: ChildProcess | undefined;
  return {
    port,
    url: opts.url?.(port) ?? `redis://127.0.0.1:${port}/0`,
    async start() {
      const c = spawn("redis-server", [...args, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir], { stdio: "ignore" });
      child = c;
      await waitForPort(port, () => c.exitCode !== null || c.signalCode !== null);
    },
    async stop() {
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child!.once("exit", resolve));
      child.kill("SIGKILL");
      await exited;
    },
  };
}

/**
 * Waits until the server accepts TCP connections (plain or TLS: no Redis command is sent); fails when
 * it exited first (someone else may be listening on the port).
 */
async function waitForPort(port: number, exited: () => boolean): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (exited()) throw new Error(`redis-server exited before listening on port ${port}`);
    const ok = await new Promise<boolean>((resolve) => {
      const c = connect(port, "127.0.0.1");
      c.once("connect", () => (c.destroy(), resolve(true)));
      c.once("error", () => resolve(false));
    });
    // a connection right after the child exited is another program's
    if (ok && !exited()) return;
    if (ok) throw new Error(`redis-server exited before listening on port ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`redis-server did not listen on port ${port}`);
}
