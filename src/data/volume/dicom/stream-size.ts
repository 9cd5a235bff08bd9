/**
 * The image size a compressed frame declares, read from its frame header before a decoder allocates
 * anything: a hostile stream claiming 65535 x 65535 pixels inside a 512 x 512 DICOM frame is refused
 * instead of decoded. Only the size fields are read (JPEG/JPEG-LS SOF, JPEG 2000 SIZ); decoding stays
 * with the libraries.
 */

export interface StreamSize {
  width: number;
  height: number;
}

/** JPEG (ITU T.81) and JPEG-LS (T.87): markers from SOI to the first SOFn, whose header is P, Y, X. */
function jpegSize(b: Uint8Array): StreamSize | undefined {
  let i = 2;
  while (i + 9 <= b.length) {
    if (b[i] !== 0xff) return undefined;
    const m = b[i + 1]!;
    if (m === 0xff) {
      i++; // fill byte
      continue;
    }
    // SOF0-SOF15 except DHT (C4), JPG (C8), DAC (CC); SOF55 (F7) is JPEG-LS
    if ((m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) || m === 0xf7)
      return { height: (b[i + 5]! << 8) | b[i + 6]!, width: (b[i + 7]! << 8) | b[i + 8]! };
    i += 2 + ((b[i + 2]! << 8) | b[i + 3]!);
  }
  return undefined;
}

/** JPEG 2000 codestream (T.800): SOC then SIZ; the image is Xsiz - XOsiz by Ysiz - YOsiz. */
function j2kSize(b: Uint8Array): StreamSize | undefined {
  if (b.length < 24 || b[2] !== 0xff || b[3] !== 0x51) return undefined;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return { width: v.getUint32(8) - v.getUint32(16), height: v.getUint32(12) - v.getUint32(20) };
}

/** The declared size, or undefined when the stream does not start as its codec's streams do. */
export function streamSize(b: Uint8Array): StreamSize | undefined {
  if (b.length < 4 || b[0] !== 0xff) return undefined;
  if (b[1] === 0xd8) return jpegSize(b);
  if (b[1] === 0x4f) return j2kSize(b);
  return undefined;
}
