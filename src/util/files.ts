/**
 * Output paths checked before any work is done: a long run must not end in an unwritable folder,
 * and a path that is a file (or lies under one) is the user's mistake, reported in one line.
 */
import { existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
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
  const kind = outputKind(dir);
  if (kind && kind !== mine) fail(`${flag} ${dir} holds the output of \`segcause ${kind}\`, which \`segcause ${mine}\` would mix with`, `give ${flag} another folder`);
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
