/**
 * The grey window of a volume drawn under a map: intensities from the low to the high percentile of the
 * image map to black..white, so a few extreme voxels (metal in CT, bright vessels in MRI) do not leave
 * the anatomy in one flat grey. The percentiles are taken near the RoI (the caller's box), where the reader
 * looks: over a whole CT the air outside the body would set the window's low end. They come from an
 * evenly strided sample of the box's voxels, so the memory used does not grow with the volume.
 */

/** At most this many voxels are sorted to find the percentiles. */
const SAMPLE = 1 << 18;

export interface GreyWindow {
  low: number;
  high: number;
  /** the percentiles the window rests on */
  lowPercentile: number;
  highPercentile: number;
}

/**
 * Nearest-rank percentiles `lowP`, `highP` of the finite voxels of `image` in `box` (inclusive voxel
 * bounds [i, j, k] of a volume of `dims`, i fastest); undefined when none is finite.
 */
export function greyWindow(
  image: Float32Array,
  dims: [number, number, number],
  box: [number, number][],
  lowP = 1,
  highP = 99,
): GreyWindow | undefined {
  const [nx, ny] = dims;
  const [[i0, i1], [j0, j1], [k0, k1]] = box;
  const bx = i1 - i0 + 1,
    by = j1 - j0 + 1;
  const count = bx * by * (k1 - k0 + 1);
  const stride = Math.max(1, Math.ceil(count / SAMPLE));
  const sample = new Float32Array(Math.ceil(count / stride));
  let n = 0;
  for (let t = 0; t < count; t += stride) {
    const i = i0 + (t % bx),
      j = j0 + (Math.floor(t / bx) % by),
      k = k0 + Math.floor(t / (bx * by));
    const v = image[(k * ny + j) * nx + i];
    if (Number.isFinite(v)) sample[n++] = v;
  }
  if (n === 0) return undefined;
  const sorted = sample.subarray(0, n).sort();
  const rank = (p: number) => sorted[Math.min(n - 1, Math.max(0, Math.ceil((p / 100) * n) - 1))];
  return { low: rank(lowP), high: rank(highP), lowPercentile: lowP, highPercentile: highP };
}

/** 0..255 for a voxel value; a window of zero width draws everything mid-grey, a non-finite voxel black. */
export function greyLevel(value: number, w: GreyWindow | undefined): number {
  if (!w || !Number.isFinite(value)) return 0;
  if (w.high <= w.low) return 128;
  return Math.round(255 * Math.min(1, Math.max(0, (value - w.low) / (w.high - w.low))));
}
