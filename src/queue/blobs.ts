/**
 * Inputs travel through Redis as content-addressed blobs: the enqueuer stores a file's bytes under
 * their sha256 (once), a worker fetches each blob once into its cache and checks the hash, so no
 * shared filesystem is needed and a changed or corrupted input can never be used under an old name.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { basename, join } from "node:path";
import type { Redis } from "ioredis";
import { fail } from "../errors.js";
import { writeFileAtomic } from "../util/atomic.js";
import { assertInside } from "../util/files.js";
import { sha256 } from "../util/hash.js";

/** A file as a job names it: the sha256 of its bytes and the file name it is read under. */
export interface BlobRef {
  sha256: string;
  name: string;
}

const blobKey = (sha: string) => `segcause:blob:${sha}`;

/** A file name a worker may create: one path component, as the readers expect it (its extension kept). */
export const blobName = (s: string) =>
  basename(s)
    .replace(/[^A-Za-z0-9._-]+/g, "_")
    .replace(/^\.+/, "_") || "_";

/** Stores the file's bytes in Redis (unless already there) and names them. */
export async function putBlob(redis: Redis, path: string): Promise<BlobRef> {
  const bytes = readFileSync(path);
  const sha = sha256(bytes);
  await redis.set(blobKey(sha), bytes, "NX");
  return { sha256: sha, name: blobName(path) };
}

/** Cache files this process has hashed, by path, size and mtime: each is read once, not once per job. */
const verified = new Map<string, string>();

/** Whether the cached file still has its sha256 (a changed or corrupted one is fetched again). */
function cachedIsIntact(path: string, sha: string): boolean {
  const st = statSync(path);
  const stamp = `${sha} ${st.size} ${st.mtimeMs}`;
  if (verified.get(path) === stamp) return true;
  if (sha256(readFileSync(path)) !== sha) return false;
  verified.set(path, stamp);
  return true;
}

/**
 * The blob as a file of the worker's cache, `<cache>/blobs/<sha256>/<name>` (fetched and verified on
 * first use). Files of one sha256 under two names are two copies: readers that look beside a file
 * (a model's card) find the name they expect.
 */
export async function fetchBlob(redis: Redis, ref: BlobRef, cache: string): Promise<string> {
  const dir = join(cache, "blobs", ref.sha256);
  const path = join(dir, blobName(ref.name));
  assertInside(cache, path);
  if (existsSync(path) && cachedIsIntact(path, ref.sha256)) return path;
  const bytes = await redis.getBuffer(blobKey(ref.sha256));
  if (!bytes) fail(`the queue holds no input of sha256 ${ref.sha256.slice(0, 12)}… (${ref.name})`, "rerun the enqueuing `segcause evaluate --queue`");
  if (sha256(bytes) !== ref.sha256)
    fail(`the queue's input ${ref.name} does not match its sha256 ${ref.sha256.slice(0, 12)}…`, "rerun the enqueuing command");
  await mkdir(dir, { recursive: true });
  await writeFileAtomic(path, bytes);
  return path;
}
