/**
 * The files the viewer may touch: only under the folders the server was given (its --model, --image,
 * --bank and --results, the runs folder, the package's models and samples). Paths are compared after
 * resolving symbolic links, so neither `../` nor a link leads out.
 */
import { existsSync, realpathSync } from "node:fs";
import { dirname, isAbsolute, relative, resolve, sep } from "node:path";
import { fail } from "../errors.js";

export class AllowedPaths {
  private readonly roots: string[] = [];

  /** Allows everything under `dir` (a folder that exists). */
  addFolder(dir: string): void {
    const real = realpathSync(resolve(dir));
    if (!this.roots.includes(real)) this.roots.push(real);
  }

  /** Allows the folder holding `file`. */
  addFileFolder(file: string): void {
    this.addFolder(dirname(resolve(file)));
  }

  get folders(): readonly string[] {
    return this.roots;
  }

  /** The real path of `p` when it exists under an allowed folder; otherwise a SegcauseError. */
  check(p: string, what: string): string {
    const abs = resolve(p);
    if (!existsSync(abs)) fail(`${what} ${p} does not exist`, "pick a file the viewer lists");
    const real = realpathSync(abs);
    const inside = this.roots.some((root) => {
      const rel = relative(root, real);
      return rel === "" || (!rel.startsWith(`..${sep}`) && rel !== ".." && !isAbsolute(rel));
    });
    if (!inside)
      fail(
        `${what} ${p} is outside the folders this viewer was started with`,
        "restart `segcause view` with that file's --model, --image or --results",
      );
    return real;
  }
}
