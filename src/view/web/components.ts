/**
 * The components view's own drawings: the ranked effects as a bar chart with their 95% interval whiskers
 * (from components.json, as the table), and at the spatial level each tensor's map of cell effects over
 * the image the result was made from.
 */

import type { ComponentsFolder } from "../api-types.js";

/** bars drawn at most (the table lists them all) */
const MAX_BARS = 40;

/** Horizontal bars of the effects (largest |effect| first), whiskers at effect ± 1.96 SE, a line at zero. */
export function drawBars(canvas: HTMLCanvasElement, units: ComponentsFolder["units"], valueUnits: string): void {
  const shown = units.slice(0, MAX_BARS);
  const rowH = 18,
    label = 200,
    pad = 30;
  canvas.width = 720;
  canvas.height = pad + shown.length * rowH + 10;
  const g = canvas.getContext("2d")!;
  g.fillStyle = "#fff";
  g.fillRect(0, 0, canvas.width, canvas.height);
  const ci = (u: (typeof shown)[number]) => (u.stderr === null ? 0 : 1.96 * u.stderr);
  const reach = Math.max(1e-12, ...shown.map((u) => Math.abs(u.effect) + ci(u)));
  const plotW = canvas.width - label - 20;
  const x = (v: number) => label + plotW / 2 + (v / reach) * (plotW / 2);
  g.font = "11px sans-serif";
  g.fillStyle = "#333";
  g.textAlign = "center";
  g.fillText(`ATE (${valueUnits}), whiskers: 95% interval`, label + plotW / 2, 12);
  g.fillText((-reach).toPrecision(2), label + 10, 24);
  g.fillText(reach.toPrecision(2), label + plotW - 10, 24);
  shown.forEach((u, i) => {
    const y = pad + i * rowH;
    g.fillStyle = u.effect < 0 ? "#b71c1c" : "#0d47a1"; // as the table: negative supports the RoI's outcome
    g.fillRect(Math.min(x(0), x(u.effect)), y + 3, Math.abs(x(u.effect) - x(0)), rowH - 6);
    if (u.stderr !== null) {
      g.strokeStyle = "#000";
      g.beginPath();
      g.moveTo(x(u.effect - ci(u)), y + rowH / 2);
      g.lineTo(x(u.effect + ci(u)), y + rowH / 2);
      for (const v of [u.effect - ci(u), u.effect + ci(u)]) {
        g.moveTo(x(v), y + 5);
        g.lineTo(x(v), y + rowH - 5);
      }
      g.stroke();
    }
    g.fillStyle = "#333";
    g.textAlign = "right";
    g.fillText(u.name.length > 30 ? `${u.name.slice(0, 29)}…` : u.name, label - 6, y + rowH - 5);
  });
  g.strokeStyle = "#888";
  g.beginPath();
  g.moveTo(x(0), pad - 2);
  g.lineTo(x(0), canvas.height - 6);
  g.stroke();
}

const load = (src: string) =>
  new Promise<HTMLImageElement>((ok, no) => {
    const im = new Image();
    im.onload = () => ok(im);
    im.onerror = () => no(new Error(`cannot load ${src.split("?")[0]}`));
    im.src = src;
  });

/** One canvas per spatial map: the image (when the server matched it), the map over it at `opacity`. */
export async function drawSpatial(host: HTMLElement, c: ComponentsFolder, url: (path: string) => string, opacity: number): Promise<void> {
  const canvases = await Promise.all(
    c.spatial.map(async (f) => {
      const map = await load(url(`${c.dir}/${f}`));
      const canvas = Object.assign(document.createElement("canvas"), { width: map.naturalWidth, height: map.naturalHeight, title: f });
      canvas.dataset.spatial = f;
      const g = canvas.getContext("2d")!;
      if (c.match.image) g.drawImage(await load(url(c.match.image)), 0, 0, canvas.width, canvas.height);
      g.globalAlpha = c.match.image ? opacity : 1;
      g.drawImage(map, 0, 0);
      const box = document.createElement("figure");
      box.append(canvas, Object.assign(document.createElement("figcaption"), { textContent: f }));
      return box;
    }),
  );
  host.replaceChildren(...canvases);
}
