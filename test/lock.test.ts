import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { LOCK_FILE, lockFolder, removeStale } from "../src/util/lock.js";
import { tmp } from "./helpers/tiny.js";

/** The pid of a process that has exited (so certainly not alive, unless the pid is reused at once). */
function deadPid(): number {
  return Number(spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8", timeout: 30_000 }).stdout);
}

const record = (pid: number) =>
  JSON.stringify({ format: "segcause.lock/1", pid, host: hostname(), started: "2026-01-01T00:00:00.000Z", command: "segcause explain" }, null, 1);

describe("folder locks", () => {
  it("record the command line without a Redis password, for explain's and evaluate's locks alike", () => {
    const argv = process.argv;
    process.argv = [argv[0], "segcause.js", "evaluate", "--queue", "redis://u:s3cr%40t@127.0.0.1:6379/1", "--out", "x"];
    try {
      for (const name of [LOCK_FILE, ".segcause-run.lock"]) {
        const dir = tmp();
        const lock = lockFolder(dir, { name });
        const text = readFileSync(join(dir, name), "utf8");
        lock.release();
        expect(JSON.parse(text).command).toBe("segcause evaluate --queue redis://u:***@127.0.0.1:6379/1 --out x");
        expect(text).not.toMatch(/s3cr/);
      }
    } finally {
      process.argv = argv;
    }
  });

  it("a lock left by a process that no longer runs is taken over, with a note", () => {
    const dir = tmp();
    writeFileSync(join(dir, LOCK_FILE), record(deadPid()));
    const lock = lockFolder(dir);
    expect(lock.note).toMatch(/took over the lock of a segcause process that no longer runs/);
    expect(JSON.parse(readFileSync(join(dir, LOCK_FILE), "utf8")).pid).toBe(process.pid);
    lock.release();
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
  });

  it("a process that saw the stale lock late does not remove the lock another one has just taken over", () => {
    const dir = tmp();
    const path = join(dir, LOCK_FILE);
    const stale = record(deadPid());
    // A took over already: the lock now holds A's live record; B still acts on the stale text it read.
    const live = record(process.pid);
    writeFileSync(path, live);
    expect(removeStale(path, stale)).toBe(false);
    expect(readFileSync(path, "utf8")).toBe(live);
    expect(readdirSync(dir)).toEqual([LOCK_FILE]); // nothing left aside
    // and the stale one itself is removed
    writeFileSync(path, stale);
    expect(removeStale(path, stale)).toBe(true);
    expect(existsSync(path)).toBe(false);
  });
});
