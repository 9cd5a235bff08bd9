/**
 * Real redis-server instances for the queue tests: Debian's binary on 127.0.0.1 at a free port, with
 * no persistence, in a temporary folder. `.ci/run` starts one and exports its URL
 * (SEGCAUSE_TEST_REDIS); tests that stop or reconfigure Redis start their own.
 */
import { spawnSync } from "node:child_process";
import { type LocalRedis, startLocalRedis } from "../../src/queue/local-redis.js";
import { tmp } from "./tiny.js";

export type { LocalRedis as TestRedis } from "../../src/queue/local-redis.js";
export { freePort, redisMissing } from "../../src/queue/local-redis.js";

/** A redis-server of its own in a new temporary folder (see startLocalRedis). */
export function startRedis(opts: Parameters<typeof startLocalRedis>[1] = {}): Promise<LocalRedis> {
  return startLocalRedis(tmp("segcause-redis-"), opts);
}

/**
 * `url` with its database emptied first: the queue test files share the suite's Redis and reuse database
 * numbers, so a test must not count another file's finished jobs. (A database the server lacks stays an
 * error for the test to see.)
 */
export function emptyDb(url: string): string {
  spawnSync("redis-cli", ["-u", url, "flushdb"], { stdio: "ignore", timeout: 10_000 });
  return url;
}
