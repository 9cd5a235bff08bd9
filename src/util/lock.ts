/**
 * One writer per output folder: a lock file holding the owner's pid, host and start time, created
 * atomically (the record is written to a temp file of its own, then hard-linked to the lock's name,
 * which fails when the name exists). A lock left by a process of this host that is no longer
 * alive is taken over; a lock of another host cannot be checked from here and is refused.
 */
import { linkSync, readFileSync, renameSync, unlinkSync } from "node:fs";
import { hostname } from "node:os";
import { dirname, join } from "node:path";
import { fail } from "../errors.js";
import { createExclusiveSync, tempName } from "./atomic.js";
import { redactCommand } from "./redact.js";

export interface LockRecord {
  format: "segcause.lock/1";
  pid: number;
  host: string;
  started: string;
  command: string;
}

export interface FolderLock {
  path: string;
  /** what the caller should tell the user (a stale lock taken over), if anything */
  note?: string;
  release(): void;
}

export const LOCK_FILE = ".segcause.lock";

function readLock(path: string): { text: string; rec?: LockRecord } | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return undefined; // released meanwhile
  }
  try {
    const rec = JSON.parse(text) as LockRecord;
    return { text, rec: rec?.format === "segcause.lock/1" && Number.isInteger(rec.pid) ? rec : undefined };
  } catch {
    return { text };
  }
}

/** True unless the process `pid` of this host certainly no longer exists. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== "ESRCH"; // EPERM: alive, another user's
  }
}

const held = new Map<string, string>(); // lock path → our record
let exitHook = false;

/**
 * Takes the lock of folder `dir` (which must exist) or fails in one line naming its holder.
 * `wait` > 0: a lock held by a live process is retried for that many ms first (short critical
 * sections, e.g. comparing run settings), instead of failing at once.
 */
export function lockFolder(dir: string, opts: { name?: string; what?: string; wait?: number } = {}): FolderLock {
  const path = join(dir, opts.name ?? LOCK_FILE);
  const rec: LockRecord = {
    format: "segcause.lock/1",
    pid: process.pid,
    host: hostname(),
    started: new Date().toISOString(),
    // the lock is readable by every local user and printed by a second run: no password in it
    command: ["segcause", ...redactCommand(process.argv.slice(2))].join(" "),
  };
  const mine = JSON.stringify(rec, null, 1);
  const tmp = join(dir, tempName(opts.name ?? LOCK_FILE));
  createExclusiveSync(tmp, mine);
  const deadline = Date.now() + (opts.wait ?? 0);
  let note: string | undefined;
  try {
    for (;;) {
      try {
        try {
          linkSync(tmp, path);
        } catch (e) {
          // A file system without hard links: exclusive create (the record is written just after).
          if (!["EPERM", "ENOTSUP", "ENOSYS", "EOPNOTSUPP"].includes((e as NodeJS.ErrnoException).code ?? "")) throw e;
          createExclusiveSync(path, mine);
        }
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      }
      const other = readLock(path);
      if (!other) continue;
      const o = other.rec;
      if (o && o.host === rec.host && !alive(o.pid)) {
        if (removeStale(path, other.text)) note = `took over the lock of a segcause process that no longer runs (pid ${o.pid}, started ${o.started})`;
        continue;
      }
      if (Date.now() < deadline) {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
        continue;
      }
      const what = opts.what ?? `${dir} is in use`;
      if (!o) fail(`${what}: it holds a lock file ${path} that is not segcause's`, `if no segcause run uses ${dir}, delete ${path}`);
      if (o.host !== rec.host)
        fail(
          `${what} by segcause on host ${o.host} (pid ${o.pid}, started ${o.started})`,
          `wait for that run to finish, or, if it no longer runs, delete ${path}; or give --out another folder`,
        );
      fail(
        `${what} by another segcause run (pid ${o.pid}, started ${o.started}: ${o.command})`,
        "wait for it to finish, or give --out another folder",
      );
    }
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      // already gone
    }
  }
  held.set(path, mine);
  if (!exitHook) {
    exitHook = true;
    // Ctrl-C exits through process.exit: the locks still held are released then.
    process.on("exit", () => {
      for (const [p, m] of held) releaseIfMine(p, m);
    });
  }
  const release = () => {
    releaseIfMine(path, mine);
    held.delete(path);
  };
  return { path, note, release };
}

/**
 * Removes the lock at `path` if it still holds `staleText`. Checking and then unlinking would let two
 * processes taking over together remove the lock the faster one has just taken; instead the lock is
 * moved aside under a unique name (one atomic step) and inspected there: a lock that turns out to be
 * live is linked back (never over another one).
 */
export function removeStale(path: string, staleText: string): boolean {
  const aside = join(dirname(path), tempName(path));
  try {
    renameSync(path, aside);
  } catch {
    return false; // moved or removed by another process taking over: the link decides who owns it
  }
  let text: string | undefined;
  try {
    text = readFileSync(aside, "utf8");
  } catch {
    text = undefined;
  }
  if (text !== staleText) {
    try {
      linkSync(aside, path);
    } catch {
      // another process holds the lock now; the one moved aside was taken over after all
    }
  }
  try {
    unlinkSync(aside);
  } catch {
    // already gone
  }
  return text === staleText;
}

function releaseIfMine(path: string, mine: string): void {
  if (readLock(path)?.text !== mine) return;
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}
