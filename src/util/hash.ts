import { createHash } from "node:crypto";
import { readFileBoundedAsync } from "./read.js";

export function sha256(data: Uint8Array | string): string {
  return createHash("sha256").update(data).digest("hex");
}

/** The hash of an input image file (read as every image is: a regular file within the image size limit). */
export async function sha256File(path: string): Promise<string> {
  return sha256(await readFileBoundedAsync(path, { what: "image", kind: "image", hint: "check the path" }));
}
