/**
 * Output paths checked before any work is done: a long run must not end in an unwritable folder,
 * and a path that is a file (or lies under one) is the user's mistake, reported in one line.
 */
import { mkdirSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fail } from "../errors.js";

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
