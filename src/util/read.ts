/**
 * Bounded reads of the user's input files: only regular files (a device such as /dev/zero never ends,
 * a FIFO blocks the open), at most a stated size, read in chunks into one buffer of the file's size.
 * Every refusal is one line that names the file and never quotes its contents.
 */
import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from "node:fs";
import { open } from "node:fs/promises";
import { fail, SegcauseError } from "../errors.js";

const GiB = 2 ** 30;
const MiB = 2 ** 20;

/**
 * The largest file segcause reads of each kind. A model is one protobuf message (2 GiB at most), its
 * weights may sit beside it in external data files; images and masks are decoded by sharp, whose
 * pixel limit (16383 x 16383) is reached long before 1 GiB of compressed data.
 */
export const READ_LIMITS = {
  model: 2 * GiB - 1,
  externalData: 2 * GiB - 1,
  bank: 2 * GiB - 1,
  image: 1 * GiB,
  card: 16 * MiB,
  manifest: 256 * MiB,
  table: 256 * MiB,
  cache: 1 * MiB,
} as const;
export type ReadKind = keyof typeof READ_LIMITS;

/** What the file is, for the message (a model, a patch bank ...), and the fix to print with it. */
export interface ReadWhat {
  /** e.g. "model", "patch bank", "image" */
  what: string;
  kind: ReadKind;
  hint: string;
}

/** A size in the unit that reads best (bytes, KiB, MiB, GiB). */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} bytes`;
  const [unit, size]: [string, number] = n < MiB ? ["KiB", 1024] : n < GiB ? ["MiB", MiB] : ["GiB", GiB];
  const v = n / size;
  return `${Number.isInteger(v) ? v : v.toFixed(v < 10 ? 1 : 0)} ${unit}`;
}

function kindOfNode(st: Stats): string {
  if (st.isDirectory()) return "a folder";
  if (st.isCharacterDevice() || st.isBlockDevice()) return "a device";
  if (st.isFIFO()) return "a named pipe (FIFO)";
  if (st.isSocket()) return "a socket";
  return "not a regular file";
}

function checkStat(path: string, st: Stats, w: ReadWhat): number {
  if (!st.isFile()) fail(`${w.what} ${path} is ${kindOfNode(st)}, not a regular file`, w.hint);
  const cap = READ_LIMITS[w.kind];
  if (st.size > cap) fail(`${w.what} ${path} is ${st.size} bytes, more than segcause reads for a ${w.what} (${formatBytes(cap)})`, w.hint);
  return st.size;
}

function openFailed(path: string, e: unknown, w: ReadWhat): never {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === "EISDIR") fail(`${w.what} ${path} is a folder, not a regular file`, w.hint);
  fail(`cannot read ${w.what} ${path} (${code ?? "read error"})`, w.hint);
}

// O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused right after, by its stat).
const FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0);

/** The whole file, if it is a regular file within its kind's size limit. */
export function readFileBounded(path: string, w: ReadWhat): Buffer {
  let fd: number;
  try {
    fd = openSync(path, FLAGS);
  } catch (e) {
    openFailed(path, e, w);
  }
  try {
    const size = checkStat(path, fstatSync(fd), w);
    const buf = Buffer.allocUnsafe(size);
    let got = 0;
    for (let n = 1; got < size && n > 0; got += n) n = readSync(fd, buf, got, Math.min(size - got, 16 * MiB), got);
    return got === size ? buf : buf.subarray(0, got);
  } catch (e) {
    if (e instanceof SegcauseError) throw e;
    openFailed(path, e, w);
  } finally {
    closeSync(fd);
  }
}

/** `readFileBounded` without blocking the event loop (progress bars and worker threads keep running). */
export async function readFileBoundedAsync(path: string, w: ReadWhat): Promise<Buffer> {
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(path, FLAGS);
  } catch (e) {
    openFailed(path, e, w);
  }
  try {
    const size = checkStat(path, await fh.stat(), w);
    const buf = Buffer.allocUnsafe(size);
    let got = 0;
    for (let n = 1; got < size && n > 0; got += n) n = (await fh.read(buf, got, Math.min(size - got, 16 * MiB), got)).bytesRead;
    return got === size ? buf : buf.subarray(0, got);
  } catch (e) {
    if (e instanceof SegcauseError) throw e;
    openFailed(path, e, w);
  } finally {
    await fh.close();
  }
}

/**
 * A JSON file's value. A file that is not JSON is reported without its contents (it may be a secret
 * passed by mistake, such as --card /etc/shadow): only where parsing stopped.
 */
export function readJsonBounded(path: string, w: ReadWhat): unknown {
  const text = readFileBounded(path, w).toString("utf8");
  return parseJson(text, path, w);
}

export function parseJson(text: string, path: string, w: ReadWhat): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    fail(`${w.what} ${path} is not valid JSON (${jsonProblem(text, e as Error)})`, w.hint);
  }
}

/** Where JSON.parse stopped, as a line and column or "empty"/"ends early", never the text itself. */
function jsonProblem(text: string, e: Error): string {
  if (text.trim() === "") return "the file is empty";
  if (/end of (JSON )?input|Unterminated/i.test(e.message)) return "it ends early";
  const at = /position (\d+)/.exec(e.message);
  if (!at) return "a syntax error; its contents are not shown";
  if (Number(at[1]) >= text.length) return "it ends early";
  const before = text.slice(0, Number(at[1]));
  const line = before.split("\n").length;
  return `a syntax error at line ${line}, column ${before.length - before.lastIndexOf("\n")}`;
}
