/**
 * Writing output files so that a folder never looks more complete than it is: temp files with
 * unique names, created exclusively (a planted file or link is never written through), flushed and
 * renamed; results staged and their manifest written last; and a full disk, a quota, a read-only
 * folder or a permission error turned into one line for the user.
 */

import { randomBytes } from "node:crypto";
import { closeSync, fsyncSync, openSync, renameSync, rmSync, unlinkSync, writeSync } from "node:fs";
import { mkdir, open, rename, rm, unlink } from "node:fs/promises";
import { basename, dirname, join, relative } from "node:path";
import { SegcauseError } from "../errors.js";

/** A temp file name next to `final`, unique to this process and call. */
export function tempName(final: string): string {
  return `.${basename(final).replace(/^\./, "")}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
}

/** Temp files and staging folders of asynchronous writes still in flight: an exit cannot wait for them, so it removes them. */
const inFlight = new Set<string>();

/**
 * Removes the temp files and staging folders of writes still in flight (for the interrupt handler, just before
 * process.exit: the write never completes, and its half file must not be left next to the real one).
 */
export function removeInFlightTemps(): void {
  for (const p of inFlight) rmSync(p, { recursive: true, force: true });
  inFlight.clear();
}

/** Creates `path` (which must not exist: a planted file or symlink is never followed) and writes `data` durably. */
export function createExclusiveSync(path: string, data: string | Uint8Array): void {
  const fd = openSync(path, "wx", 0o644);
  try {
    writeSync(fd, typeof data === "string" ? Buffer.from(data) : data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes `path` atomically: a fresh temp file in the same folder (exclusive create, so a symlink
 * planted at a temp name is never followed), flushed to disk, then renamed over `path`. On failure
 * the temp file is removed and `path` is as it was.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = join(dirname(path), tempName(path));
  inFlight.add(tmp);
  try {
    await writeNew(tmp, data);
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    // The message names the file being written, not its temp name.
    const err = e as NodeJS.ErrnoException;
    if (err?.path === tmp) err.path = path;
    throw withPath(e, path);
  } finally {
    inFlight.delete(tmp);
  }
}

/** writeFileAtomic, synchronously (for the interrupt handler, which cannot wait). */
export function writeFileAtomicSync(path: string, data: string | Uint8Array): void {
  const tmp = join(dirname(path), tempName(path));
  try {
    createExclusiveSync(tmp, data);
    renameSync(tmp, path);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      // never created
    }
    throw withPath(e, path);
  }
}

/** Conditions of the user's disk or permissions (not bugs), by error code. */
export const IO_PROBLEMS: Record<string, string> = {
  ENOSPC: "has no space left on its device (ENOSPC)",
  EDQUOT: "is over its disk quota (EDQUOT)",
  EROFS: "is on a read-only file system (EROFS)",
  EACCES: "is not writable: permission denied (EACCES)",
  EPERM: "is not writable: operation not permitted (EPERM)",
};

/** A disk-full, quota, read-only or permission error as one line for the user; undefined for anything else. */
export function ioProblem(e: unknown, missing?: string): SegcauseError | undefined {
  const err = e as NodeJS.ErrnoException;
  const problem = err?.code ? IO_PROBLEMS[err.code] : undefined;
  if (!problem) return undefined;
  const where = err.path ?? (err as { dest?: string }).dest ?? "the output";
  // A permission error may come from reading an input as well: it says "access", not "write".
  if (err.code === "EACCES" || err.code === "EPERM")
    return new SegcauseError(
      `cannot access ${where}: permission denied (${err.code})${missing ? `; ${missing}` : ""}`,
      "check its permissions, or give --out a folder you can write to, and rerun",
    );
  return new SegcauseError(
    `cannot write ${where}: it ${problem}${missing ? `; ${missing}` : ""}`,
    err.code === "EROFS"
      ? "give --out a folder you can write to and rerun"
      : "free some space (or give --out a folder on another disk) and rerun the same command",
  );
}

/** Creates `path` (exclusive: never through a planted file or link) with `data`, flushed to disk. */
async function writeNew(path: string, data: string | Uint8Array): Promise<void> {
  try {
    const h = await open(path, "wx", 0o644);
    try {
      await h.writeFile(data);
      await h.sync();
    } finally {
      await h.close();
    }
  } catch (e) {
    throw withPath(e, path);
  }
}

/** A write error names no file (it names the descriptor): the file is added for the message. */
function withPath(e: unknown, path: string): unknown {
  const err = e as NodeJS.ErrnoException;
  if (err && typeof err === "object" && err.code && !err.path) err.path = path;
  return e;
}

/**
 * Writes the files of a result into `dir` through a private staging folder, each complete on disk
 * before any is moved in. A failure leaves the folder without its manifest (the caller writes it
 * last) and says what is missing.
 */
export async function writeStaged(dir: string, contents: Record<string, string | Uint8Array>, manifest = "manifest.json"): Promise<void> {
  const stage = join(dir, tempName(".staging"));
  const names = Object.keys(contents);
  const moved = new Set<string>();
  inFlight.add(stage);
  try {
    await mkdir(stage);
    for (const name of names) await writeNew(join(stage, name), contents[name]);
    for (const name of names) {
      await rename(join(stage, name), join(dir, name));
      moved.add(name);
    }
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err?.path?.startsWith(stage)) err.path = join(dir, relative(stage, err.path)); // the user knows the folder, not the staging area
    const missing = [...names.filter((n) => !moved.has(n)), manifest];
    throw ioProblem(e, `${dir} has no ${manifest}, so it is not a complete result (not written: ${missing.join(", ")})`) ?? e;
  } finally {
    await rm(stage, { recursive: true, force: true });
    inFlight.delete(stage);
  }
}

/** Writes the manifest of a result, last and atomically: on failure the folder has none, and the message says so. */
export async function writeManifest(dir: string, text: string, name = "manifest.json"): Promise<void> {
  try {
    await writeFileAtomic(join(dir, name), text);
  } catch (e) {
    throw ioProblem(e, `${dir} has no ${name}, so it is not a complete result (every other file was written)`) ?? e;
  }
}
