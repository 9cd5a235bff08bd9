/**
 * A DICOM series folder as one content-addressed blob: its top-level DICOM files (those the series
 * reader reads, in its order) packed into one file, and unpacked on a worker into a folder the same
 * reader reads. The files travel as they are, not converted: a series re-written as NIfTI would store
 * its affine in float32, so the volume's identity (imageSha256: the checkpoint key, the bank's
 * leave-one-out) and its model-space geometry would not be the local run's.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { mkdir, mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { z } from "zod";
import { dicomFolderFiles, MAX_FOLDER_FILES } from "../data/volume/dicom/series.js";
import { fail } from "../errors.js";
import { blobName } from "./blobs.js";

const FORMAT = "segcause.folder/1";

/** A pack's header, checked before anything is unpacked: as many files as the series reader reads, at most. */
const Header = z
  .object({
    format: z.literal(FORMAT),
    files: z.array(z.object({ name: z.string().min(1).max(255), size: z.number().int().min(0) }).strict()).max(MAX_FOLDER_FILES),
  })
  .strict();

/** The folder's DICOM files packed: a JSON line (format, names, sizes), then their bytes in order. */
export function packFolder(dir: string): Buffer {
  const paths = dicomFolderFiles(dir, "DICOM series");
  const names = paths.map((p) => basename(p));
  const bytes = paths.map((p) => readFileSync(p));
  const head = JSON.stringify({ format: FORMAT, files: names.map((n, i) => ({ name: n, size: bytes[i].length })) });
  return Buffer.concat([Buffer.from(`${head}\n`), ...bytes]);
}

/**
 * The packed folder `file` (a verified blob) unpacked as `<into>/<name>` (once: a finished folder is
 * kept). Files are numbered in their packed order, so the reader's sorted listing is the sender's.
 */
export async function unpackFolder(file: string, into: string, name: string): Promise<string> {
  const dest = join(into, blobName(name));
  if (existsSync(dest)) return dest;
  const all = readFileSync(file);
  const nl = all.indexOf(10);
  let files: z.infer<typeof Header>["files"] = [];
  try {
    const head = Header.safeParse(JSON.parse(all.subarray(0, Math.max(nl, 0)).toString("utf8")));
    if (!head.success) throw new Error("format");
    files = head.data.files;
  } catch {
    fail(`the queue's input ${name} is not a packed DICOM folder`, "rerun the enqueuing command with this segcause version");
  }
  const total = files.reduce((a, f) => a + f.size, 0);
  if (nl < 0 || nl + 1 + total !== all.length) fail(`the queue's input ${name} is a truncated packed DICOM folder`, "rerun the enqueuing command");
  await mkdir(into, { recursive: true });
  const tmp = await mkdtemp(join(into, ".unpack-"));
  try {
    let at = nl + 1;
    const width = String(files.length).length;
    for (const [i, f] of files.entries()) {
      await writeFile(join(tmp, `${String(i).padStart(width, "0")}-${blobName(f.name)}`), all.subarray(at, at + f.size));
      at += f.size;
    }
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
  // appears complete or not at all (another job of this worker may have unpacked it meanwhile)
  await rename(tmp, dest).catch(() => rm(tmp, { recursive: true, force: true }));
  return dest;
}

/** The files an enqueuer sends for volume inputs: a file as it is, a series folder packed (once) into a temporary file. */
export class PackedInputs {
  private dir?: string;
  private readonly packed = new Map<string, string>();

  /** Whether `path` is a folder (sent packed). */
  static isFolder(path: string): boolean {
    return statSync(path).isDirectory();
  }

  /** The file that carries `path`. */
  async file(path: string): Promise<string> {
    if (!PackedInputs.isFolder(path)) return path;
    const known = this.packed.get(path);
    if (known) return known;
    this.dir ??= await mkdtemp(join(tmpdir(), "segcause-series-"));
    const sub = await mkdtemp(join(this.dir, "s-"));
    const file = join(sub, basename(path));
    await writeFile(file, packFolder(path));
    this.packed.set(path, file);
    return file;
  }

  async dispose(): Promise<void> {
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }
}
