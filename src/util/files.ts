/**
 * Output paths checked before any work is done: a long run must not end in an unwritable folder,
 * and a path that is a file (or lies under one) is the user's mistake, reported in one line.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, realpathSync, renameSync, statSync, unlinkSync, writeSync } from "node:fs";
import { mkdir, open, rename, rm, unlink } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { fail, SegcauseError } from "../errors.js";

function kindOf(path: string): "dir" | "file" | "missing" {
  try {
    return statSync(path).isDirectory() ? "dir" : "file";
  } catch {
    return "missing";
  }
}

/** Fails unless every existing ancestor of `path` is a folder. */
function checkAncestors(path: string, flag: string): void {
  let p = dirname(resolve(path));
  for (;;) {
    const k = kindOf(p);
    if (k === "file") fail(`cannot write ${path}: ${p} is a file, not a folder`, `give ${flag} a path in a folder`);
    if (k === "dir") return;
    const up = dirname(p);
    if (up === p) return;
    p = up;
  }
}

/** Fails in one line unless `dir` is an existing folder or can be created as one (nothing is created). */
export function checkOutputDir(dir: string, flag = "--out"): void {
  if (kindOf(dir) === "file") fail(`${flag} ${dir} is a file, not a folder`, `give ${flag} a new or existing folder`);
  checkAncestors(dir, flag);
}

export type OutputKind = "explain" | "components" | "evaluate" | "strategies";

/** Which segcause command wrote the folder `dir`, from the record it leaves (undefined: none). */
export function outputKind(dir: string): OutputKind | undefined {
  if (existsSync(join(dir, "run.json")) && existsSync(join(dir, "cells"))) return "evaluate";
  if (existsSync(join(dir, "strategies.json"))) return "strategies";
  try {
    const format = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8"))?.format;
    if (format === "segcause.attribution/1") return "explain";
    if (format === "segcause.components/1") return "components";
  } catch {
    // no manifest (or not ours): not a segcause output
  }
  return undefined;
}

/** Fails when `dir` holds another command's output, which this one would mix with or overwrite. */
export function checkOutputKind(dir: string, mine: OutputKind, flag = "--out"): void {
  const kind = ownedKind(dir);
  if (kind && kind !== mine) fail(`${flag} ${dir} holds the output of \`segcause ${kind}\`, which \`segcause ${mine}\` would mix with`, `give ${flag} another folder`);
}

/** Written into an output folder when segcause first writes there: the folder is segcause's, of this kind. */
export const OUTPUT_MARKER = ".segcause-output.json";

/** The kind of output `dir` holds by its marker, or by the record a finished run leaves. */
function ownedKind(dir: string): OutputKind | undefined {
  try {
    const kind = JSON.parse(readFileSync(join(dir, OUTPUT_MARKER), "utf8"))?.kind;
    if (["explain", "components", "evaluate", "strategies"].includes(kind)) return kind as OutputKind;
  } catch {
    // no marker: a folder written before markers, or not segcause's
  }
  return outputKind(dir);
}

/** segcause's own hidden files (lock, checkpoint, staging and temp files), which do not make a folder someone else's. */
const isOwnHidden = (name: string) => name === OUTPUT_MARKER || name.startsWith(".segcause") || name.startsWith(".checkpoint.json") || name.startsWith(".staging-") || /^\..*\.tmp$/.test(name);

/**
 * Everything checked about an output folder before a run: a folder (or creatable as one), not
 * another command's output, not a non-empty folder of files segcause did not write (it would
 * replace them), and writable. Nothing is created.
 */
export function checkOutputFolder(dir: string, mine: OutputKind, flag = "--out"): void {
  checkOutputDir(dir, flag);
  checkOutputKind(dir, mine, flag);
  if (kindOf(dir) === "dir" && !ownedKind(dir)) {
    const others = readdirSync(dir).filter((n) => !isOwnHidden(n)).sort();
    if (others.length) {
      const shown = others.slice(0, 3).join(", ") + (others.length > 3 ? `, ... (${others.length} entries)` : "");
      fail(`${flag} ${dir} is a folder of other files (${shown}), not the output of an earlier \`segcause ${mine}\``, `give ${flag} a new or empty folder: segcause does not overwrite files it did not write`);
    }
  }
  checkWritable(dir, flag);
}

/** Fails in one line unless a file can be created in `dir` (or in its nearest existing ancestor): a probe, since permissions alone do not tell (root, read-only mounts). */
export function checkWritable(dir: string, flag = "--out"): void {
  let p = resolve(dir);
  while (kindOf(p) === "missing" && dirname(p) !== p) p = dirname(p);
  const probe = join(p, tempName(".segcause-probe"));
  try {
    createExclusiveSync(probe, "");
    unlinkSync(probe);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    fail(`cannot write to ${flag} ${dir}: ${p === resolve(dir) ? "it" : p} ${IO_PROBLEMS[code] ?? `cannot be written to (${code})`}`, `give ${flag} a folder you can write to`);
  }
}

/** Creates the output folder and marks it as `kind`'s output (idempotent); fails in one line when it cannot. */
export function claimOutputDir(dir: string, kind: OutputKind, flag = "--out"): void {
  makeOutputDir(dir, flag);
  checkOutputKind(dir, kind, flag); // again: another command may have claimed the folder since the first check
  if (existsSync(join(dir, OUTPUT_MARKER))) return;
  try {
    createExclusiveSync(join(dir, OUTPUT_MARKER), JSON.stringify({ format: "segcause.output/1", kind }) + "\n");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e; // another process of the same run marked it
  }
}

/** Creates the output folder `dir` (and its parents), or fails in one line when it cannot exist. */
export function makeOutputDir(dir: string, flag = "--out"): void {
  checkOutputDir(dir, flag);
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    fail(`cannot create the output folder ${dir} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, `give ${flag} a folder you can write to`);
  }
}

/** Fails in one line unless the output file `path` can be written: not a folder, under folders only. */
export function checkOutputFile(path: string, flag = "--out"): void {
  if (kindOf(path) === "dir") fail(`${flag} ${path} is a folder; it must be a file name`, `give ${flag} the path of the file to write`);
  checkAncestors(path, flag);
}

/** A temp file name next to `final`, unique to this process and call. */
export function tempName(final: string): string {
  return `.${basename(final).replace(/^\./, "")}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
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
  try {
    const h = await open(tmp, "wx", 0o644);
    try {
      await h.writeFile(data);
      await h.sync();
    } finally {
      await h.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw withPath(e, path);
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
const IO_PROBLEMS: Record<string, string> = {
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
  if (err.code === "EACCES" || err.code === "EPERM") return new SegcauseError(`cannot access ${where}: permission denied (${err.code})${missing ? `; ${missing}` : ""}`, "check its permissions, or give --out a folder you can write to, and rerun");
  return new SegcauseError(`cannot write ${where}: it ${problem}${missing ? `; ${missing}` : ""}`, err.code === "EROFS" ? "give --out a folder you can write to and rerun" : "free some space (or give --out a folder on another disk) and rerun the same command");
}

/** Fails unless `path` lies inside the folder `root`, links resolved (names are sanitised: only a link can point elsewhere). */
export function assertInside(root: string, path: string): void {
  const real = (p: string): string => {
    try {
      return realpathSync(p);
    } catch {
      const up = dirname(p);
      return up === p ? p : join(real(up), basename(p));
    }
  };
  const rel = relative(real(resolve(root)), real(resolve(path)));
  if (rel === "" || rel.startsWith(`..${sep}`) || rel === ".." || isAbsolute(rel)) fail(`refusing to write ${path}: it lies outside ${root}`, `a symbolic link inside ${root} points elsewhere: remove it, or give --out another folder`);
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
