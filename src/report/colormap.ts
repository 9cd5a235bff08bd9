/**
 * The paper's colour convention: h = H / max|H| (max outside the RoI); h ≤ 0 → (1, 1+h, 1+h) red (the block supported
 * the RoI prediction), h > 0 → (1−h, 1−h, 1) blue (it hurt); RoI green; overlay 0.7·heat + 0.3·image.
 */
import type { RasterImage } from "../data/image.js";
import type { Region } from "../target/roi.js";

/** The largest |value| outside the RoI: the paper's full-colour value. */
export function maxAbsOutside(map: Float32Array, roi?: Pick<Region, "inside">): number {
  let maxAbs = 0;
  for (let i = 0; i < map.length; i++) if (!roi?.inside[i] && Math.abs(map[i]) > maxAbs) maxAbs = Math.abs(map[i]);
  return maxAbs;
}

/** `scale`: the |value| drawn at full colour (default the paper's, the largest outside the RoI); values beyond it saturate. */
export function heatRgb(map: Float32Array, height: number, width: number, roi?: Region, scale?: number): Uint8Array {
  // Normalise over the visible pixels: the RoI is painted green, and pixel-level maps (gradients)
  // hold their largest values inside it, which would wash out everything around it.
  const maxAbs = scale ?? maxAbsOutside(map, roi);
  const out = new Uint8Array(height * width * 3);
  for (let i = 0; i < height * width; i++) {
    const h = Math.max(-1, Math.min(1, map[i] / (maxAbs + 1e-8)));
    let r: number, g: number, b: number;
    if (h <= 0) {
      r = 1;
      g = 1 + h;
      b = 1 + h;
    } else {
      r = 1 - h;
      g = 1 - h;
      b = 1;
    }
    if (roi?.inside[i]) {
      r = 0;
      g = 1;
      b = 0;
    }
    out[i * 3] = Math.round(r * 255);
    out[i * 3 + 1] = Math.round(g * 255);
    out[i * 3 + 2] = Math.round(b * 255);
  }
  return out;
}

export function overlayRgb(heat: Uint8Array, image: RasterImage, alpha = 0.7): Uint8Array {
  const n = image.width * image.height;
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 3; c++) {
      const px = image.data[i * image.channels + (image.channels === 3 ? c : 0)];
      out[i * 3 + c] = Math.round(alpha * heat[i * 3 + c] + (1 - alpha) * px);
    }
  }
  return out;
}
