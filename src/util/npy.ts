/** NumPy .npy (format 1.0) for float32 arrays, so maps open with `numpy.load`. */
export function encodeNpy(data: Float32Array, shape: number[]): Buffer {
  const dict = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(", ")}${shape.length === 1 ? "," : ""}), }`;
  // Header (magic 6 + version 2 + length 2 + dict + newline) must be a multiple of 64 bytes.
  const unpadded = 10 + dict.length + 1;
  const header = `${dict}${" ".repeat((64 - (unpadded % 64)) % 64)}\n`;
  const out = Buffer.alloc(10 + header.length + data.byteLength);
  out.write("\x93NUMPY", 0, "latin1");
  out[6] = 1;
  out[7] = 0;
  out.writeUInt16LE(header.length, 8);
  out.write(header, 10, "latin1");
  Buffer.from(data.buffer, data.byteOffset, data.byteLength).copy(out, 10 + header.length);
  return out;
}

export function decodeNpy(buf: Buffer): { data: Float32Array; shape: number[] } {
  if (buf.toString("latin1", 0, 6) !== "\x93NUMPY") throw new Error("not an .npy file");
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.toString("latin1", start, start + headerLen);
  if (!header.includes("'<f4'")) throw new Error("only little-endian float32 .npy is supported");
  const shape = (/\(([^)]*)\)/.exec(header)?.[1] ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map(Number);
  const bytes = buf.subarray(start + headerLen);
  const data = new Float32Array(bytes.byteLength / 4);
  Buffer.from(data.buffer).set(bytes);
  return { data, shape };
}
