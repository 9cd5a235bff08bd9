/**
 * The curves' fills and prober on volumes. A fill says what a removed cell of the model's box
 * becomes, in normalised units: `zero` (raw intensity 0, as zero ablation's default fill), `mean` (the
 * volume's mean, as occlusion's mean fill), `blur` (the input blurred by a Gaussian of --blur-sigma mm) or `patches` (natural boxes of the volume bank tiled over the
 * removed cells, PdCR's treatment; the explained volume's own boxes are left out). The tiles' patches are a
 * pure function of (seed, draw, tile), the same for every method and control of the RoI (common random
 * numbers). The prober runs the model on the box, or with sliding windows only on the windows the
 * changed cells touch (VolumeForward).
 */
import type { VolumeBank } from "../data/volume/volume-bank.js";
import { toBox, type VolumeCase } from "../data/volume/volume-case.js";
import { fail } from "../errors.js";
import { blurVolume } from "../explain/volume/blur.js";
import { volumeRange } from "../explain/volume/boxes.js";
import { type ResolvedVolumeTarget, scoreVolumeSamples } from "../explain/volume/engine.js";
import { volumeFill } from "../explain/volume/fills.js";
import type { ChangedBox } from "../explain/volume/windows.js";
import type { BatchRunner } from "../model/batches.js";
import type { VolumeModel } from "../model/volume-model.js";
import { randomInt } from "../util/rng.js";
import { STREAM } from "../util/streams.js";
import type { CurveProber } from "./curves.js";
import type { FillName, FillSettings } from "./fills.js";

export interface VolumeCurveFill {
  name: FillName;
  /** draw numbers averaged per point (one for deterministic fills) */
  draws: number[];
  /** the value of box cell `cell` under draw `draw` */
  value(cell: number, draw: number): number;
}

/** The fills of one (model, volume, RoI); `bank` is needed for `patches`. */
export function makeVolumeFills(kase: VolumeCase, names: readonly FillName[], st: FillSettings, bank?: VolumeBank): VolumeCurveFill[] {
  return names.map((name): VolumeCurveFill => {
    if (name === "blur") {
      // the model's input blurred in space (sigma in mm), as the 2D fill blurs the image
      const v = kase.modelVolume;
      const blurred = blurVolume(v.data.map(kase.normalise), v.dims, kase.space.spacing, st.blurSigma);
      const box = toBox(blurred, v.dims, kase.placement, kase.placement.fill, (n) => new Float32Array(n));
      return { name, draws: [0], value: (cell) => box[cell] };
    }
    if (name !== "patches") {
      const v = volumeFill(kase, name === "zero" ? "constant" : "mean", 0).value;
      return { name, draws: [0], value: () => v };
    }
    if (!bank)
      fail("the natural-patch fill needs a volume bank", "pass --bank bank.scvbank, or let evaluate build one from the data set's --bank-splits");
    const { bank: used } = bank.without(kase.imageSha256);
    if (used.count === 0) fail("the volume bank holds only boxes of the volume explained", "build it from other volumes (e.g. --bank-splits train)");
    return { name, draws: Array.from({ length: st.patchDraws }, (_, d) => d), value: tiler(kase, used, st.seed) };
  });
}

/** Bank boxes tiled over the box from the corner of the volume's part of it; tile t of draw d is a seeded patch. */
function tiler(kase: VolumeCase, bank: VolumeBank, seed: number): (cell: number, draw: number) => number {
  const [bx, by] = kase.placement.box;
  const [sd, sh, sw] = bank.box;
  const [oz, oy, ox] = volumeRange(kase.placement, kase.space.dims).map(([lo]) => lo);
  const [nz, ny, nx] = volumeRange(kase.placement, kase.space.dims).map(([lo, hi], a) => Math.ceil((hi - lo) / bank.box[a]));
  const tiles = nz * ny * nx;
  const cache = new Map<number, Float32Array>();
  return (cell, draw) => {
    const x = (cell % bx) - ox,
      y = (Math.floor(cell / bx) % by) - oy,
      z = Math.floor(cell / (bx * by)) - oz;
    const [tz, ty, tx] = [Math.floor(z / sd), Math.floor(y / sh), Math.floor(x / sw)];
    const t = draw * tiles + (tz * ny + ty) * nx + tx;
    let patch = cache.get(t);
    if (!patch) {
      patch = bank.patch(randomInt(seed, STREAM.fillDraws, t, bank.count));
      cache.set(t, patch);
    }
    return patch[((z - tz * sd) * sh + y - ty * sh) * sw + x - tx * sw];
  };
}

/** The bounding box of a set of box cells (for the windows it touches). */
function boundsOf(cells: Uint32Array, box: [number, number, number]): ChangedBox[] {
  if (cells.length === 0) return [];
  const [bx, by] = box;
  const lo = [Infinity, Infinity, Infinity],
    hi = [-Infinity, -Infinity, -Infinity];
  for (const c of cells) {
    const p = [Math.floor(c / (bx * by)), Math.floor(c / bx) % by, c % bx];
    for (let a = 0; a < 3; a++) (lo[a] = Math.min(lo[a], p[a])), (hi[a] = Math.max(hi[a], p[a]));
  }
  return [{ z: lo[0], y: lo[1], x: lo[2], depth: hi[0] - lo[0] + 1, height: hi[1] - lo[1] + 1, width: hi[2] - lo[2] + 1 }];
}

/** The RoI outcome of the volume with sets of box cells replaced by a fill, averaged over its draws. */
export class VolumeProber implements CurveProber<VolumeCurveFill> {
  passes = 0;
  constructor(
    private readonly model: VolumeModel,
    private readonly runner: BatchRunner,
    private readonly kase: VolumeCase,
    private readonly target: ResolvedVolumeTarget,
  ) {}

  async outcomes(sets: readonly Uint32Array[], fill: VolumeCurveFill): Promise<number[]> {
    const items: { set: number; draw: number }[] = [];
    sets.forEach((_, s) => fill.draws.forEach((d) => items.push({ set: s, draw: d })));
    const { forward } = this.target;
    const boxes = forward ? sets.map((s) => boundsOf(s, this.kase.placement.box)) : [];
    const scores = await scoreVolumeSamples(this.model, this.runner, this.target, forward, this.kase.input, items, {
      boxes: (it) => boxes[it.set],
      perturb: (it, put) => {
        for (const c of sets[it.set]) put(c, fill.value(c, it.draw));
      },
    });
    for (const it of items) this.passes += forward ? forward.passesFor(boxes[it.set]) : 1;
    const out = new Array<number>(sets.length).fill(0);
    items.forEach((it, i) => (out[it.set] += scores[i] / fill.draws.length));
    return out;
  }
}
