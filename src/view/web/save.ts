/**
 * Save PNG for every view of the page: the view's canvases side by side, under a title, each with its
 * caption, and its legend lines (and colour bar) below, so the saved picture explains itself. The command
 * or folder the view came from is kept in the PNG as a text chunk (`segcause` keyword).
 */

export interface Figure {
  /** the first line of the picture: what it shows (model, method, RoI, …) */
  title: string;
  /** the view's canvases, left to right, each with a line over it (e.g. its method and colour scale) */
  panels: { canvas: HTMLCanvasElement; caption?: string }[];
  /** lines under the panels: what the colours mean; a colour bar is drawn before the first one */
  legend?: string[];
  bar?: HTMLCanvasElement;
  /** the download's name, without .png: it says model, method, RoI (made file-name safe here) */
  file: string;
  /** the equivalent command or the results folder, kept in the PNG's text chunk */
  source?: string;
}

import { withText } from "./png-text.js";

const PAD = 8;
const LINE = 16;
/** panels narrower than this are drawn larger (pixelated), so a 32-pixel map is still readable */
const MIN_PANEL = 256;

/** Draws the figure into one canvas. */
function compose(f: Figure): HTMLCanvasElement {
  const sizes = f.panels.map(({ canvas: c }) => {
    const k = c.width > 0 && c.width < MIN_PANEL ? Math.floor(MIN_PANEL / c.width) : 1;
    return { w: c.width * k, h: c.height * k };
  });
  const legend = f.legend ?? [];
  const out = document.createElement("canvas");
  const g0 = out.getContext("2d")!;
  g0.font = "13px sans-serif";
  const textW = Math.max(...[f.title, ...legend, ...f.panels.map((p) => p.caption ?? "")].map((t) => g0.measureText(t).width));
  const panelsW = sizes.reduce((a, s) => a + s.w, 0) + PAD * (sizes.length - 1);
  out.width = Math.ceil(Math.max(panelsW, textW, f.bar?.width ?? 0) + 2 * PAD);
  const panelsH = Math.max(0, ...sizes.map((s) => s.h));
  const captions = f.panels.some((p) => p.caption) ? LINE + 4 : 0;
  out.height = PAD + LINE + 6 + captions + panelsH + (f.bar ? f.bar.height + 6 : 0) + legend.length * LINE + 2 * PAD;
  const g = out.getContext("2d")!;
  g.fillStyle = "#fff";
  g.fillRect(0, 0, out.width, out.height);
  g.fillStyle = "#1d232a";
  g.font = "bold 13px sans-serif";
  g.textBaseline = "top";
  g.fillText(f.title, PAD, PAD);
  g.font = "13px sans-serif";
  g.imageSmoothingEnabled = false;
  let x = PAD;
  let y = PAD + LINE + 6;
  f.panels.forEach((p, i) => {
    if (p.caption) g.fillText(p.caption, x, y, sizes[i].w);
    g.drawImage(p.canvas, x, y + captions, sizes[i].w, sizes[i].h);
    x += sizes[i].w + PAD;
  });
  y += captions + panelsH + 6;
  if (f.bar) {
    g.drawImage(f.bar, PAD, y);
    y += f.bar.height + 6;
  }
  for (const line of legend) {
    g.fillText(line, PAD, y);
    y += LINE;
  }
  return out;
}

/** Composes the figure and downloads it as `<file>.png`. */
export async function saveFigure(f: Figure): Promise<void> {
  const blob = await new Promise<Blob | null>((ok) => compose(f).toBlob(ok, "image/png"));
  if (!blob) throw new Error("the browser could not encode the PNG");
  let png: Uint8Array<ArrayBuffer> = new Uint8Array(await blob.arrayBuffer());
  if (f.source) png = withText(png, "segcause", f.source);
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([png], { type: "image/png" }));
  a.download = `${f.file.replace(/[^\w.,=+-]+/g, "_").slice(0, 150)}.png`;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}
