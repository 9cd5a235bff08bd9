/**
 * Output paths checked before any work is done: a long run must not end in an unwritable folder,
 * and a path that is a file (or lies under one) is the user's mistake, reported in one line. An
 * output folder belongs to one command (marked when first written) and never to someone else's files.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, statSync, unlinkSync } from "node:fs";
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { fail } from "../errors.js";
import { createExclusiveSync, IO_PROBLEMS, tempName } from "./atomic.js";
import { type FolderLock, lockFolder } from "./lock.js";

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

/** The manifest formats of a finished explain or components result (its manifest is written last). */
const RESULT_FORMATS = new Set(["segcause.attribution/1", "segcause.volume-result/1", "segcause.components/1"]);

/**
 * The note a run gives when `dir` holds a finished result that it will replace (segcause replaces
 * its own outputs on a rerun, but not without a word); undefined when there is none.
 */
export function replacedResultNote(dir: string, flag = "--out"): string | undefined {
  const path = join(dir, "manifest.json");
  if (kindOf(path) !== "file") return undefined;
  let m: { format?: unknown; method?: unknown; provenance?: { createdAt?: unknown } } | undefined;
  try {
    m = JSON.parse(readFileSync(path, "utf8"));
  } catch {
    return undefined;
  }
  if (!RESULT_FORMATS.has(String(m?.format))) return undefined;
  const created = m?.provenance?.createdAt;
  const when = typeof created === "string" ? created : statSync(path).mtime.toISOString();
  const what = m?.format === "segcause.components/1" ? "components result" : `${typeof m?.method === "string" ? `${m.method} ` : ""}result`;
  return `${flag} ${dir} holds a finished ${what} (written ${when.slice(0, 19).replace("T", " ")} UTC): this run replaces it`;
}

/** Fails when `dir` holds another command's output, which this one would mix with or overwrite. */
export function checkOutputKind(dir: string, mine: OutputKind, flag = "--out"): void {
  const kind = ownedKind(dir);
  if (kind && kind !== mine)
    fail(`${flag} ${dir} holds the output of \`segcause ${kind}\`, which \`segcause ${mine}\` would mix with`, `give ${flag} another folder`);
}

/** Written into an output folder when segcause first writes there: the folder is segcause's, of this kind. */
export const OUTPUT_MARKER = ".segcause-output.json";

/** The kind of output `dir` holds by its marker, or by the record a finished run leaves. */
function ownedKind(dir: string): OutputKind | undefined {
  try {
    const kind = JSON.parse(readFileSync(join(dir, OUTPUT_MARKER), "utf8"))?.kind;
    if (["explain", "components", "evaluate", "strategies"].includes(kind)) return kind as OutputKind;
  } catch {
    // no marker: an output of a segcause without markers, or not segcause's
  }
  return outputKind(dir);
}

/** segcause's own hidden files (lock, checkpoint, staging and temp files), which do not make a folder someone else's. */
const isOwnHidden = (name: string) =>
  name === OUTPUT_MARKER ||
  name.startsWith(".segcause") ||
  name.startsWith(".checkpoint.json") ||
  name.startsWith(".staging-") ||
  /^\..*\.tmp$/.test(name);

/**
 * Everything checked about an output folder before a run: a folder (or creatable as one), not
 * another command's output, not a non-empty folder of files segcause did not write (it would
 * replace them), and writable. Nothing is created.
 */
export function checkOutputFolder(dir: string, mine: OutputKind, flag = "--out"): void {
  checkOutputDir(dir, flag);
  checkOutputKind(dir, mine, flag);
  if (kindOf(dir) === "dir" && !ownedKind(dir)) {
    const others = readdirSync(dir)
      .filter((n) => !isOwnHidden(n))
      .sort();
    if (others.length) {
      const shown = others.slice(0, 3).join(", ") + (others.length > 3 ? `, ... (${others.length} entries)` : "");
      fail(
        `${flag} ${dir} is a folder of other files (${shown}), not the output of an earlier \`segcause ${mine}\``,
        `give ${flag} a new or empty folder: segcause does not overwrite files it did not write`,
      );
    }
  }
  checkWritable(dir, flag);
}

/**
 * Fails in one line unless a file can be created in `dir` (or in its nearest existing ancestor): a probe, since
 * permissions alone do not tell (root, read-only mounts).
 */
export function checkWritable(dir: string, flag = "--out"): void {
  let p = resolve(dir);
  while (kindOf(p) === "missing" && dirname(p) !== p) p = dirname(p);
  const probe = join(p, tempName(".segcause-probe"));
  try {
    createExclusiveSync(probe, "");
    unlinkSync(probe);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    fail(
      `cannot write to ${flag} ${dir}: ${p === resolve(dir) ? "it" : p} ${IO_PROBLEMS[code] ?? `cannot be written to (${code})`}`,
      `give ${flag} a folder you can write to`,
    );
  }
}

/** Creates the output folder and marks it as `kind`'s output (idempotent); fails in one line when it cannot. */
export function claimOutputDir(dir: string, kind: OutputKind, flag = "--out"): void {
  makeOutputDir(dir, flag);
  checkOutputKind(dir, kind, flag); // again: another command may have claimed the folder since the first check
  if (existsSync(join(dir, OUTPUT_MARKER))) return;
  try {
    createExclusiveSync(join(dir, OUTPUT_MARKER), `${JSON.stringify({ format: "segcause.output/1", kind })}\n`);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e; // another process of the same run marked it
  }
}

/**
 * Makes, locks and claims output folder `dir` for one writer (a command of kind `kind`): the lock comes
 * before the claim so the claim's second kind check sees no other writer's marker appear after it.
 */
export function takeOutputFolder(dir: string, kind: OutputKind): FolderLock {
  makeOutputDir(dir);
  const lock = lockFolder(dir, { what: `--out ${dir} is being written` });
  claimOutputDir(dir, kind);
  return lock;
}

/** Creates the output folder `dir` (and its parents), or fails in one line when it cannot exist. */
export function makeOutputDir(dir: string, flag = "--out"): void {
  checkOutputDir(dir, flag);
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    fail(
      `cannot create the output folder ${dir} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
      `give ${flag} a folder you can write to`,
    );
  }
}

/** Fails in one line unless the output file `path` can be written: not a folder, under folders only. */
export function checkOutputFile(path: string, flag = "--out"): void {
  if (kindOf(path) === "dir") fail(`${flag} ${path} is a folder; it must be a file name`, `give ${flag} the path of the file to write`);
  checkAncestors(path, flag);
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
  if (rel === "" || rel.startsWith(`..${sep}`) || rel === ".." || isAbsolute(rel))
    fail(
      `refusing to write ${path}: it lies outside ${root}`,
      `a symbolic link inside ${root} points elsewhere: remove it, or give --out another folder`,
    );
}
