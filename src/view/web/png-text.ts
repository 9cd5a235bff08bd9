/** A text chunk in a PNG (no DOM: the page's Save PNG uses it, and a test reads it back with sharp). */

const CRC = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

/**
 * The PNG with a text chunk after its header (IHDR is always 33 bytes in): tEXt when the text is ASCII, else
 * iTXt (UTF-8), so a path in any script is kept as it is (tEXt is Latin-1, which readers such as libvips take
 * for UTF-8).
 */
export function withText(png: Uint8Array, keyword: string, text: string): Uint8Array<ArrayBuffer> {
  const ascii = [...text].every((ch) => ch.charCodeAt(0) < 128);
  const body = ascii
    ? Uint8Array.from(`${keyword}\0${text}`, (ch) => ch.charCodeAt(0))
    : new Uint8Array([...new TextEncoder().encode(`${keyword}\0`), 0, 0, 0, 0, ...new TextEncoder().encode(text)]);
  const chunk = new Uint8Array(12 + body.length);
  const dv = new DataView(chunk.buffer);
  dv.setUint32(0, body.length);
  chunk.set(
    Uint8Array.from(ascii ? "tEXt" : "iTXt", (ch) => ch.charCodeAt(0)),
    4,
  );
  chunk.set(body, 8);
  let c = 0xffffffff;
  for (const b of chunk.subarray(4, 8 + body.length)) c = CRC[(c ^ b) & 0xff] ^ (c >>> 8);
  dv.setUint32(8 + body.length, (c ^ 0xffffffff) >>> 0);
  const out = new Uint8Array(png.length + chunk.length);
  out.set(png.subarray(0, 33));
  out.set(chunk, 33);
  out.set(png.subarray(33), 33 + chunk.length);
  return out;
}
