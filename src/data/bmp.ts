/**
 * BMP decoding: libvips (inside sharp) has no BMP loader, and the small decoders on npm (bmp-ts, the
 * one jimp uses; bmp-js) get palette colours, RLE and 16-bit scaling wrong, silently. PH2's originals
 * and many clinical exports are BMP, so segcause reads them here.
 */

export function isBmp(bytes: Buffer): boolean {
  return bytes.length >= 2 && bytes[0] === 0x42 && bytes[1] === 0x4d; // "BM"
}

/** biCompression codes. */
const BI_RGB = 0,
  BI_RLE8 = 1,
  BI_RLE4 = 2,
  BI_BITFIELDS = 3,
  BI_JPEG = 4,
  BI_PNG = 5,
  BI_ALPHABITFIELDS = 6;
/** The header sizes writers use: OS/2 1.x (12), BITMAPINFOHEADER (40), its V2/V3 (52/56), OS/2 2.x (64), V4 (108), V5 (124). */
const BMP_HEADERS = new Set([12, 40, 52, 56, 64, 108, 124]);
/** sharp's default pixel limit (limitInputPixels, 16383 x 16383) for the other formats: a header cannot make segcause allocate more. */
const MAX_PIXELS = 0x3fff * 0x3fff;
/**
 * RLE data can declare pixels it never writes (end of line, delta, end of bitmap), so a file of a few
 * bytes could make segcause allocate gigabytes. Past 4096 x 4096 pixels, the data must hold at least
 * one byte per 1032 pixels: deflate's maximum ratio, so no BMP is a cheaper bomb than a PNG.
 */
const RLE_FREE_PIXELS = 4096 * 4096;
const RLE_MAX_RATIO = 1032;

/**
 * A BMP's pixels as RGB, top row first. Every header above; 1/2/4/8-bit
 * palettes, RLE8/RLE4, 16/24/32 bits with or without bit-field masks (scaled to 0..255); bottom-up or
 * top-down; pixels where the file's offset says. A declared alpha mask is kept (RGBA) so that alpha is
 * flattened on black as for a PNG, unless every alpha is 0 (writers that leave it unset). `grey` is
 * true for a palette file with a grey palette (PH2's masks), so it is reported as one channel like a
 * grey PNG. A header that promises more pixels than the file holds is an error before anything is
 * allocated.
 */
export function decodeBmp(bytes: Buffer): { width: number; height: number; channels: 3 | 4; pixels: Buffer; grey: boolean } {
  const headerSize = bytes.length >= 18 ? bytes.readUInt32LE(14) : 0;
  if (bytes.length < 14 + Math.max(headerSize, 12)) throw new Error(`BMP of ${bytes.length} bytes is shorter than its headers`);
  if (!BMP_HEADERS.has(headerSize)) throw new Error(`BMP header of ${headerSize} bytes is of no known kind`);
  const core = headerSize === 12;
  const offset = bytes.readUInt32LE(10);
  const width = core ? bytes.readUInt16LE(18) : bytes.readInt32LE(18);
  const signedHeight = core ? bytes.readUInt16LE(20) : bytes.readInt32LE(22);
  const bits = bytes.readUInt16LE(core ? 24 : 28);
  const compression = core ? BI_RGB : bytes.readUInt32LE(30);
  // A negative height is a top-down file; 2^31 has no positive counterpart.
  const height = Math.abs(signedHeight);
  if (!(width > 0 && height > 0 && height < 2 ** 31)) throw new Error(`BMP size ${width}x${signedHeight} is invalid`);
  if (width * height > MAX_PIXELS) throw new Error(`BMP of ${width}x${height} pixels is larger than segcause reads (${MAX_PIXELS} pixels)`);
  if ((compression === BI_JPEG || compression === BI_PNG) && headerSize !== 64)
    throw new Error(`BMP holding a ${compression === BI_JPEG ? "JPEG" : "PNG"} stream`);
  if (![1, 2, 4, 8, 16, 24, 32].includes(bits)) throw new Error(`BMP of ${bits} bits per pixel`);
  const masked = compression === BI_BITFIELDS || compression === BI_ALPHABITFIELDS;
  const fits =
    compression === BI_RGB ||
    (compression === BI_RLE8 && bits === 8) ||
    (compression === BI_RLE4 && bits === 4) ||
    (masked && (bits === 16 || bits === 32) && headerSize !== 64); // 3 is Huffman in OS/2 2.x
  if (!fits) throw new Error(`BMP compression ${compression} with ${bits} bits per pixel`);
  if (offset < 14 + headerSize || offset >= bytes.length)
    throw new Error(`BMP pixel offset ${offset} is outside the file's ${bytes.length} bytes after its headers`);
  const rle = compression === BI_RLE8 || compression === BI_RLE4;
  if (rle && width * height > RLE_FREE_PIXELS && width * height > RLE_MAX_RATIO * (bytes.length - offset)) {
    throw new Error(
      `BMP declares ${width}x${height} pixels in ${bytes.length - offset} bytes of RLE data, more than ${RLE_MAX_RATIO} pixels per byte (a decompression bomb)`,
    );
  }
  // the output index of file row r (rows are stored bottom-up unless the height is negative)
  const rowAt = (r: number) => (signedHeight < 0 ? r : height - 1 - r) * width;

  if (bits <= 8) {
    // The palette: BGR (OS/2 1.x) or BGR0 entries after the header, as many as biClrUsed says (0: all)
    // and the pixel offset leaves room for.
    const entry = core ? 3 : 4;
    const at = 14 + headerSize;
    const declared = core ? 0 : bytes.readUInt32LE(46);
    const n = Math.min(declared || 1 << bits, 1 << bits, Math.floor((offset - at) / entry));
    if (n < 1) throw new Error(`BMP of ${bits} bits per pixel has no colour palette`);
    // Indices past the palette are black, as in PIL.
    const palette = new Uint8Array(256 * 3);
    for (let i = 0; i < n; i++) palette.set([bytes[at + i * entry + 2], bytes[at + i * entry + 1], bytes[at + i * entry]], i * 3);
    const stride = Math.ceil((width * bits) / 32) * 4;
    if (compression === BI_RGB) checkPixelBytes(bytes, offset, stride, Math.ceil((width * bits) / 8), height);
    const index = new Uint8Array(width * height);
    if (compression === BI_RGB) {
      const max = (1 << bits) - 1;
      for (let r = 0; r < height; r++) {
        const row = offset + r * stride;
        const out = rowAt(r);
        for (let x = 0; x < width; x++) {
          const bit = x * bits;
          index[out + x] = (bytes[row + (bit >> 3)] >> (8 - bits - (bit & 7))) & max;
        }
      }
    } else decodeRle(bytes, offset, compression === BI_RLE4, width, height, (x, r, v) => (index[rowAt(r) + x] = v));
    const rgb = Buffer.alloc(width * height * 3);
    for (let i = 0; i < index.length; i++) for (let c = 0; c < 3; c++) rgb[i * 3 + c] = palette[index[i] * 3 + c];
    let grey = true;
    for (let i = 0; i < n; i++) grey &&= palette[i * 3] === palette[i * 3 + 1] && palette[i * 3 + 1] === palette[i * 3 + 2];
    return { width, height, channels: 3, pixels: rgb, grey };
  }

  const bytesPerPixel = bits / 8;
  const stride = Math.ceil((width * bits) / 32) * 4;
  checkPixelBytes(bytes, offset, stride, width * bytesPerPixel, height);
  // Channel masks: the file's (right after the 40-byte header, where V2 and later headers hold them
  // too; alpha from V3 on or with BI_ALPHABITFIELDS), else the defaults: 5-5-5 for 16 bits, 8-8-8
  // for 24 and 32, no alpha.
  const alphaMasked = masked && (compression === BI_ALPHABITFIELDS || headerSize >= 56);
  if (bytes.length < (alphaMasked ? 70 : masked ? 66 : 0)) throw new Error(`BMP of ${bytes.length} bytes is shorter than its colour masks`);
  const masks = masked
    ? [bytes.readUInt32LE(54), bytes.readUInt32LE(58), bytes.readUInt32LE(62)]
    : bits === 16
      ? [0x7c00, 0x03e0, 0x001f]
      : [0xff0000, 0x00ff00, 0x0000ff];
  masks.push(alphaMasked ? bytes.readUInt32LE(66) : 0);
  const channels = masks.map(maskChannel);
  const rgba = Buffer.alloc(width * height * 4);
  for (let r = 0; r < height; r++) {
    const row = offset + r * stride;
    const out = rowAt(r) * 4;
    if (bits === 24) {
      // BGR bytes, the common case (PH2's originals): no masks to apply
      for (let x = 0, p = row, o = out; x < width; x++, p += 3, o += 4) [rgba[o], rgba[o + 1], rgba[o + 2]] = [bytes[p + 2], bytes[p + 1], bytes[p]];
      continue;
    }
    for (let x = 0; x < width; x++) {
      const p = row + x * bytesPerPixel;
      const px = bits === 16 ? bytes.readUInt16LE(p) : bytes.readUInt32LE(p);
      for (let c = 0; c < 4; c++) rgba[out + x * 4 + c] = channels[c](px);
    }
  }
  let alpha = false;
  if (masks[3] !== 0) for (let i = 3; i < rgba.length && !alpha; i += 4) alpha = rgba[i] !== 0;
  if (alpha) return { width, height, channels: 4, pixels: rgba, grey: false };
  const rgb = Buffer.alloc(width * height * 3);
  for (let i = 0, n = width * height; i < n; i++) for (let c = 0; c < 3; c++) rgb[i * 3 + c] = rgba[i * 4 + c];
  return { width, height, channels: 3, pixels: rgb, grey: false };
}

/** A bit-field mask as a function from the pixel to 0..255 (a 5-bit 31 is 255, not 248). */
function maskChannel(mask: number): (px: number) => number {
  if (mask === 0) return () => 0;
  let shift = 0;
  while (((mask >>> shift) & 1) === 0) shift++;
  const max = mask >>> shift;
  return (px) => Math.round((((px & mask) >>> shift) * 255) / max);
}

/** Uncompressed pixel rows must all be in the file (the last one's padding may be missing). */
function checkPixelBytes(bytes: Buffer, offset: number, stride: number, rowBytes: number, height: number): void {
  const need = stride * (height - 1) + rowBytes;
  if (offset + need > bytes.length)
    throw new Error(`BMP is truncated: its pixels need ${need} bytes, the file holds ${bytes.length - offset} after its headers`);
}

/**
 * RLE8/RLE4 pixel data (runs, literal runs padded to 16 bits, end of line, delta, end of bitmap) as
 * palette indices through `set(x, fileRow, index)`; pixels it skips keep index 0, as in PIL.
 */
function decodeRle(
  bytes: Buffer,
  offset: number,
  four: boolean,
  width: number,
  height: number,
  set: (x: number, r: number, v: number) => void,
): void {
  let x = 0;
  let r = 0;
  let p = offset;
  const put = (v: number) => {
    if (x < width && r < height) set(x, r, v);
    x++;
  };
  for (;;) {
    if (p + 2 > bytes.length) {
      if (r >= height) return; // every row closed, the end-of-bitmap mark left out
      throw new Error(`BMP is truncated: its RLE pixel data ends at row ${r} of ${height}`);
    }
    const n = bytes[p];
    const c = bytes[p + 1];
    p += 2;
    if (n > 0) for (let i = 0; i < n; i++) put(four ? (i & 1 ? c & 15 : c >> 4) : c);
    else if (c === 0) [x, r] = [0, r + 1];
    else if (c === 1) return;
    else if (c === 2) {
      if (p + 2 > bytes.length) throw new Error("BMP is truncated inside its RLE pixel data");
      x += bytes[p];
      r += bytes[p + 1];
      p += 2;
    } else {
      const len = four ? (c + 1) >> 1 : c;
      if (p + len > bytes.length) throw new Error("BMP is truncated inside its RLE pixel data");
      for (let i = 0; i < c; i++) put(four ? (i & 1 ? bytes[p + (i >> 1)] & 15 : bytes[p + (i >> 1)] >> 4) : bytes[p + i]);
      p += len + (len & 1);
    }
  }
}
