/**
 * Colours of the page's map layer, as in the written pictures (src/report/colormap.ts): negative =
 * the block supported the RoI prediction (red), positive = it hurt (blue), white at 0; the standard
 * errors in one sequential hue. Alpha grows with |value| so the image shows through small values.
 */
export type Layer = "signed" | "abs" | "stderr";

export function colourOf(layer: Layer, v: number, max: number): [number, number, number, number] {
  if (!Number.isFinite(v) || max <= 0) return [0, 0, 0, 0];
  const t = Math.min(1, Math.abs(v) / max);
  if (layer === "stderr") return [Math.round(255 - 150 * t), Math.round(255 - 200 * t), 255, t];
  const support = layer === "abs" || v < 0;
  return support ? [255, Math.round(255 * (1 - t)), Math.round(255 * (1 - t)), t] : [Math.round(255 * (1 - t)), Math.round(255 * (1 - t)), 255, t];
}

/** The values a layer draws from the map and its standard errors. */
export function layerValues(layer: Layer, map: Float32Array, stderr: Float32Array): Float32Array {
  if (layer === "stderr") return stderr;
  return layer === "abs" ? map.map(Math.abs) : map;
}

/** The largest finite |value| (the "max" colour scale). */
export function maxAbs(values: Float32Array): number {
  let m = 0;
  for (const v of values) if (Number.isFinite(v) && Math.abs(v) > m) m = Math.abs(v);
  return m;
}

/**
 * A colour bar of `layer` from its low end to `max`, over white at full opacity: alpha √t as the page's maps are
 * drawn (mid values stay visible), or t as an evaluate cell's map is blended (`sqrt` false).
 */
export function drawBar(c: HTMLCanvasElement, layer: Layer, max: number, sqrt = true): void {
  const g = c.getContext("2d")!;
  for (let x = 0; x < c.width; x++) {
    const v = layer === "signed" ? ((x / (c.width - 1)) * 2 - 1) * max : (x / (c.width - 1)) * max;
    const [r, gr, b, t] = colourOf(layer, v, max);
    const a = sqrt ? Math.sqrt(t) : t;
    g.fillStyle = `rgb(${Math.round(255 - a * (255 - r))},${Math.round(255 - a * (255 - gr))},${Math.round(255 - a * (255 - b))})`;
    g.fillRect(x, 0, 1, c.height);
  }
}
