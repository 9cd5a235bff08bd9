/**
 * The Redis behind a queue: a `redis://` or `rediss://` (TLS) URL with an optional user, password and
 * database number, checked before anything is enqueued or pulled, so a typo or an unreachable server
 * is one line, not a process waiting forever.
 */
import { isIP } from "node:net";
import { Redis, type RedisOptions } from "ioredis";
import { fail } from "../errors.js";
import { redactUrl } from "../util/redact.js";

// the redaction lives in util (the folder lock records command lines too); re-exported for the queue's callers
export { redactCommand, redactUrl } from "../util/redact.js";

/** The BullMQ queue of evaluate's cells. */
export const CELLS_QUEUE = "segcause-cells";

/** Where a password is read from when the URL has none: argv is visible to every local user (`ps`). */
export const PASSWORD_ENV = "SEGCAUSE_REDIS_PASSWORD";

function decoded(part: string, url: string, what: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return fail(`the ${what} in --queue ${redactUrl(url)} is not percent-encoded`, "encode % as %25, @ as %40, / as %2F, : as %3A");
  }
}

/** ioredis options from a queue URL; refuses anything but redis:// and rediss:// with a host. */
export function redisOptions(url: string): RedisOptions {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    fail(
      `--queue ${redactUrl(url)} is not a URL`,
      `give redis://host:6379/0 (or rediss:// for TLS; a password in $${PASSWORD_ENV}, or percent-encoded: redis://:password@host:6379/0)`,
    );
  }
  if (u.protocol !== "redis:" && u.protocol !== "rediss:")
    fail(`--queue ${redactUrl(url)} is not a Redis URL (${u.protocol})`, "give redis://host:6379/0, or rediss:// for TLS");
  if (!u.hostname) fail(`--queue ${redactUrl(url)} names no host`, "give redis://host:6379/0");
  const db = u.pathname.replace(/^\//, "");
  if (db !== "" && !/^\d+$/.test(db)) fail(`--queue ${redactUrl(url)}: the path must be a database number, not '${db}'`, "e.g. redis://host:6379/0");
  const host = u.hostname.replace(/^\[(.*)\]$/, "$1");
  return {
    host,
    port: u.port ? Number(u.port) : 6379,
    db: db ? Number(db) : 0,
    ...(u.username ? { username: decoded(u.username, url, "user name") } : {}),
    ...(u.password ? { password: decoded(u.password, url, "password") } : process.env[PASSWORD_ENV] ? { password: process.env[PASSWORD_ENV] } : {}),
    // rediss://: TLS; a self-signed server certificate is trusted through NODE_EXTRA_CA_CERTS, as for any Node client
    ...(u.protocol === "rediss:" ? { tls: isIP(host) ? {} : { servername: host } } : {}),
    // BullMQ's workers block on Redis: its commands must wait for a reconnect, not fail after N tries
    maxRetriesPerRequest: null,
    lazyConnect: true,
  };
}

/**
 * A connected client, or one line naming the server and the problem (refused, wrong password, TLS).
 * Reconnects stop being tried after `giveUpMs` without a connection; `onLost` is then called once.
 */
export async function connectRedis(url: string, onLost?: (problem: string) => void, giveUpMs = 5000): Promise<Redis> {
  const opts = redisOptions(url);
  let lastError = "";
  let downSince: number | undefined;
  let lost = false;
  let connected = false;
  const client = new Redis({
    ...opts,
    retryStrategy: () => {
      if (!connected) return null; // the first connection is not retried: an unreachable server is one line now
      downSince ??= Date.now();
      if (Date.now() - downSince > giveUpMs) {
        if (!lost && onLost) (lost = true), onLost(`lost the connection to Redis at ${redactUrl(url)} (${lastError || "closed"})`);
        return null;
      }
      return 250;
    },
  });
  client.on("error", (e: Error) => {
    lastError = e.message;
  });
  client.on("ready", () => {
    connected = true;
    downSince = undefined;
  });
  try {
    await client.connect();
    await client.ping();
  } catch (e) {
    client.disconnect();
    fail(
      `cannot reach Redis at ${redactUrl(url)}: ${lastError || (e as Error).message}`,
      "start redis-server there, check host, port and password (rediss:// for a TLS port)",
    );
  }
  // a database the server does not have fails ioredis' SELECT only as an event, and db 0 is used instead
  try {
    if (opts.db) await client.select(opts.db);
  } catch (e) {
    client.disconnect();
    fail(
      `--queue ${redactUrl(url)}: the server has no database ${opts.db} (${(e as Error).message})`,
      "give a database number below the server's `databases` setting (16 by default)",
    );
  }
  return client;
}
