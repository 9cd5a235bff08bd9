/**
 * DICOM RLE Lossless (PS3.5 Annex G): no maintained npm decoder exists outside whole viewer
 * stacks, and the scheme is small. A frame is a 64-byte header (segment count, then up to 15 segment
 * offsets) and segments of PackBits runs; segment s holds byte s of every sample, most significant
 * byte first.
 */
import { fail } from "../../../errors.js";

/** Decode one frame into `bytesPerSample`-byte little-endian samples (`pixels` of them). */
export function decodeRleFrame(frame: Uint8Array, pixels: number, bytesPerSample: number, where: string): Uint8Array {
  if (frame.length < 64) fail(`${where}: RLE frame is shorter than its 64-byte header`, "the file is truncated or damaged");
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const segments = view.getUint32(0, true);
  if (segments !== bytesPerSample) fail(`${where}: RLE frame has ${segments} segments, expected ${bytesPerSample}`, "the file is damaged");
  const out = new Uint8Array(pixels * bytesPerSample);
  for (let s = 0; s < segments; s++) {
    const start = view.getUint32(4 + 4 * s, true);
    const end = s + 1 < segments ? view.getUint32(8 + 4 * s, true) : frame.length;
    if (!(start >= 64 && start <= end && end <= frame.length)) fail(`${where}: RLE segment ${s + 1} lies outside its frame`, "the file is damaged");
    // the most significant byte comes first; little-endian output puts it last in each sample
    const byte = bytesPerSample - 1 - s;
    let o = 0;
    let i = start;
    while (i < end && o < pixels) {
      const n = frame[i++]!;
      if (n < 128) {
        // n+1 literal bytes
        for (let k = 0; k <= n && i < end && o < pixels; k++) out[o++ * bytesPerSample + byte] = frame[i++]!;
      } else if (n > 128) {
        // the next byte repeated 257-n times
        if (i >= end) break;
        const v = frame[i++]!;
        for (let k = 0; k < 257 - n && o < pixels; k++) out[o++ * bytesPerSample + byte] = v;
      } // 128 is a no-op
    }
    if (o < pixels) fail(`${where}: RLE segment ${s + 1} decodes to ${o} of ${pixels} bytes`, "the file is truncated or damaged");
  }
  return out;
}
