/**
 * Bounded gzip inflation. A few kilobytes of gzip can inflate to gigabytes (a decompression bomb), so
 * the output is never held before its size is known: the stream is read until its first `headBytes`
 * bytes are out, `keep(head)` says how many bytes the whole output may have (a NIfTI header states it),
 * one buffer of that size is filled, and a stream that runs on past it is stopped.
 */
import { createGunzip } from "node:zlib";

export interface GunzipPlan {
  /** bytes to inflate before asking `keep` (fewer when the whole output is shorter) */
  headBytes: number;
  /** how many output bytes to keep, from the first ones; may throw to refuse the file */
  keep: (head: Buffer) => number;
  /** output past `keep` that is read (and dropped) so the gzip checksum is verified; beyond it: "too-long" */
  slack: number;
  /** stop as soon as `keep` bytes are out, without reading the rest (for sniffing) */
  stopAtKeep?: boolean;
}

export interface GunzipResult {
  /**
   * complete: the stream ended cleanly (or, with stopAtKeep, the kept bytes are out);
   * truncated: the gzip stream ends early; corrupt: it is not valid gzip;
   * too-long: it inflates to more than keep + slack bytes.
   */
  status: "complete" | "truncated" | "corrupt" | "too-long";
  /** the kept output (up to `keep` bytes; what came out before a failure) */
  data: Buffer;
  /** zlib's reason when truncated or corrupt */
  reason?: string;
}

export function gunzipBounded(gz: Uint8Array, plan: GunzipPlan): Promise<GunzipResult> {
  return new Promise<GunzipResult>((resolve, reject) => {
    // Large output chunks: far fewer callbacks and copies than the 16 KiB default.
    const z = createGunzip({ chunkSize: 2 ** 20 });
    const head: Buffer[] = [];
    let headLength = 0;
    let out: Buffer | undefined;
    let filled = 0;
    let dropped = 0;
    let settled = false;

    const settle = (r: GunzipResult | Error): void => {
      if (settled) return;
      settled = true;
      z.destroy();
      if (r instanceof Error) reject(r);
      else resolve(r);
    };
    const data = (): Buffer => (out ? out.subarray(0, filled) : Buffer.concat(head, headLength));
    const take = (chunk: Buffer): void => {
      const room = out!.length - filled;
      chunk.copy(out!, filled, 0, Math.min(room, chunk.length));
      filled += Math.min(room, chunk.length);
      dropped += Math.max(0, chunk.length - room);
      if (dropped > plan.slack) settle({ status: "too-long", data: data() });
      else if (plan.stopAtKeep && filled === out!.length) settle({ status: "complete", data: data() });
    };
    const decide = (): void => {
      const first = Buffer.concat(head, headLength);
      head.length = 0;
      out = Buffer.allocUnsafe(plan.keep(first));
      take(first);
    };

    z.on("data", (chunk: Buffer) => {
      if (settled) return;
      try {
        if (out) return take(chunk);
        head.push(chunk);
        headLength += chunk.length;
        if (headLength >= plan.headBytes) decide();
      } catch (e) {
        settle(e as Error);
      }
    });
    z.on("end", () => {
      if (settled) return;
      try {
        if (!out) decide();
        settle({ status: "complete", data: data() });
      } catch (e) {
        settle(e as Error);
      }
    });
    z.on("error", (e: NodeJS.ErrnoException) => {
      if (settled) return;
      settle({ status: e.code === "Z_BUF_ERROR" ? "truncated" : "corrupt", data: data(), reason: e.message });
    });
    z.end(gz);
  });
}

export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}
