/**
 * The grey window of a volume drawn under a map: intensities from the low to the high percentile of the
 * image map to black..white, so a few extreme voxels (metal in CT, bright vessels in MRI) do not leave
 * the anatomy in one flat grey. Percentiles come from an evenly strided sample of the voxels, so the
 * memory used does not grow with the volume.
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

/** Nearest-rank percentiles `lowP`, `highP` of the finite values of `image` (undefined when none is finite). */
export function greyWindow(image: Float32Array, lowP = 1, highP = 99): GreyWindow | undefined {
  const stride = Math.max(1, Math.ceil(image.length / SAMPLE));
  const sample = new Float32Array(Math.ceil(image.length / stride));
  let n = 0;
  for (let v = 0; v < image.length; v += stride) if (Number.isFinite(image[v])) sample[n++] = image[v];
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
