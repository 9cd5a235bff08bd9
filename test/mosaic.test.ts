/**
 * The volume mosaic (src/report/mosaic.ts): a synthetic volume with a known cube in the map and a known
 * box RoI, drawn and decoded again, so every check is a pixel at a place computed from the geometry.
 * Plus one real hippocampus volume (../shared/data/hippocampus, skipped with a message when absent).
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { labelMask } from "../src/data/volume/label-mask.js";
import { readNifti } from "../src/data/volume/nifti.js";
import { SegcauseError } from "../src/errors.js";
import { greyWindow } from "../src/report/grey-window.js";
import { type MosaicSpec, mosaicLayout, volumeMosaic } from "../src/report/mosaic.js";
import { type Panel, patientAxes, plane, slicesThrough } from "../src/report/mosaic-layout.js";

const DIMS: [number, number, number] = [20, 24, 16];
const N = DIMS[0] * DIMS[1] * DIMS[2];
const at = (i: number, j: number, k: number) => (k * DIMS[1] + j) * DIMS[0] + i;

/** Voxels of the box [i0, i1] x [j0, j1] x [k0, k1] (inclusive). */
function box(i0: number, i1: number, j0: number, j1: number, k0: number, k1: number): number[] {
  const out: number[] = [];
  for (let k = k0; k <= k1; k++) for (let j = j0; j <= j1; j++) for (let i = i0; i <= i1; i++) out.push(at(i, j, k));
  return out;
}

// RoI: i 8..11, j 10..13, k 6..9 (centre slices k 8, j 12, i 10). Cube in the map: i 2..5 (the patient's
// left in a RAS+ volume), same j and k, so the axial and coronal centre slices cut through it.
const ROI = box(8, 11, 10, 13, 6, 9);
const CUBE = box(2, 5, 10, 13, 6, 9);

function spec(cubeValue: number, over: Partial<MosaicSpec> = {}): MosaicSpec {
  const image = new Float32Array(N);
  for (let v = 0; v < N; v++) image[v] = 100 + (v % 37); // textured grey, no colour of its own
  const map = new Float32Array(N);
  for (const v of CUBE) map[v] = cubeValue;
  const roi = new Uint8Array(N);
  for (const v of ROI) roi[v] = 1;
  return { dims: DIMS, spacing: [1, 1, 1], image, map, roi, signed: true, ...over };
}

async function decode(png: Buffer) {
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  const px = (x: number, y: number) => {
    const o = (Math.floor(y) * info.width + Math.floor(x)) * info.channels;
    return [data[o], data[o + 1], data[o + 2]] as [number, number, number];
  };
  return { info, px };
}

/**
 * Page position of the continuous voxel coordinate (a along the column axis, b along the row axis) in a
 * panel over the whole volume: both page axes run toward decreasing index in a RAS+ volume (radiological).
 */
function pageOf(p: Panel, a: number, b: number): [number, number] {
  const nCol = DIMS[p.plane.col.axis],
    nRow = DIMS[p.plane.row.axis];
  return [p.x + ((nCol - a) / nCol) * p.width, p.y + ((nRow - b) / nRow) * p.height];
}

const centrePanel = (panels: Panel[], o: string) => panels.find((p) => p.plane.orientation === o && p.centre)!;
const isRed = ([r, g, b]: number[]) => r > 180 && g < 90 && b < 90;
const isBlue = ([r, g, b]: number[]) => b > 180 && r < 90 && g < 90;
const isGreen = ([r, g, b]: number[]) => r === 0 && g === 230 && b === 0;
const isGrey = ([r, g, b]: number[]) => r === g && g === b;

describe("slices and planes", () => {
  it("five slices evenly spaced through the RoI's extent, the centre slice among them", () => {
    expect(slicesThrough(0, 9, 5)).toEqual([1, 3, 5, 7, 9]);
    expect(slicesThrough(6, 9, 5)).toEqual([6, 7, 8, 9]); // four voxels thick: each once
    expect(slicesThrough(4, 4, 5)).toEqual([4]);
    expect(slicesThrough(0, 9, 4)).toContain(5); // an even count still holds the centre
  });

  it("radiological planes: the patient's right on the left, anterior/superior up, from the affine's axis codes", () => {
    const ras = patientAxes(undefined);
    expect(plane("axial", ras)).toMatchObject({
      normal: 2,
      col: { axis: 0, flip: true },
      row: { axis: 1, flip: true },
      edges: { left: "R", right: "L", top: "A", bottom: "P" },
    });
    expect(plane("coronal", ras)).toMatchObject({
      normal: 1,
      col: { axis: 0, flip: true },
      row: { axis: 2, flip: true },
      edges: { top: "S", bottom: "I" },
    });
    expect(plane("sagittal", ras)).toMatchObject({
      normal: 0,
      col: { axis: 1, flip: true },
      row: { axis: 2, flip: true },
      edges: { left: "A", right: "P" },
    });
    // LPS voxel axes (i grows to the patient's left): i runs left to right unflipped.
    const lps = patientAxes([-1, 0, 0, 0, 0, -1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]);
    expect(plane("axial", lps)).toMatchObject({ normal: 2, col: { axis: 0, flip: false }, row: { axis: 1, flip: false } });
    // Permuted axes: i → superior, j → right, k → anterior: axial slices hold i fixed.
    const perm = patientAxes([0, 1, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1]);
    expect(perm.fromAffine).toBe(true);
    expect(plane("axial", perm)).toMatchObject({ normal: 0, col: { axis: 1, flip: true }, row: { axis: 2, flip: true } });
    // 45° oblique in i/j: both voxel axes point mostly along the same patient axis, so RAS+ is assumed (and said).
    const oblique = patientAxes([0.7, 0.7, 0, 0, 0.7, 0.7, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]);
    expect(oblique).toEqual({ world: [0, 1, 2], toward: [true, true, true], fromAffine: false });
  });
});

describe("grey window", () => {
  it("comes from the box it is given: air around a body does not set its low end", () => {
    // 10x10x10: -1000 everywhere except i, j, k in 3..6 where the values are 0..63 (each once).
    const dims: [number, number, number] = [10, 10, 10];
    const image = new Float32Array(1000).fill(-1000);
    let n = 0;
    for (let k = 3; k <= 6; k++) for (let j = 3; j <= 6; j++) for (let i = 3; i <= 6; i++) image[(k * 10 + j) * 10 + i] = n++;
    // nearest rank: percentile 1 of 64 values is the 1st (0), percentile 99 the 64th (63)
    expect(
      greyWindow(image, dims, [
        [3, 6],
        [3, 6],
        [3, 6],
      ]),
    ).toEqual({ low: 0, high: 63, lowPercentile: 1, highPercentile: 99 });
    // over the whole volume 936 of 1000 voxels are air: the low end is -1000 (the high end, the 990th value, is 53)
    expect(
      greyWindow(image, dims, [
        [0, 9],
        [0, 9],
        [0, 9],
      ]),
    ).toMatchObject({ low: -1000, high: 53 });
    expect(
      greyWindow(new Float32Array(1000).fill(Number.NaN), dims, [
        [0, 9],
        [0, 9],
        [0, 9],
      ]),
    ).toBeUndefined();
  });
});

describe("volumeMosaic", () => {
  it("decodes to the layout's size, three rows of slices through the RoI", async () => {
    const s = spec(-2);
    const L = mosaicLayout(s);
    const { info } = await decode(await volumeMosaic(s));
    expect([info.width, info.height]).toEqual([L.width, L.height]);
    expect(L.roiBox).toEqual([
      [8, 11],
      [10, 13],
      [6, 9],
    ]);
    // 4 voxels thick along every axis: slices 6..9, 10..13, 8..11.
    expect(L.panels.map((p) => `${p.plane.orientation} ${p.slice}${p.centre ? "*" : ""}`)).toEqual([
      "axial 6",
      "axial 7",
      "axial 8*",
      "axial 9",
      "coronal 10",
      "coronal 11",
      "coronal 12*",
      "coronal 13",
      "sagittal 8",
      "sagittal 9",
      "sagittal 10*",
      "sagittal 11",
    ]);
    // Isotropic voxels: 200 px for the longest extent (j, 24 mm), so i's 20 mm are 167 px.
    const axial = centrePanel(L.panels, "axial");
    expect([axial.width, axial.height]).toEqual([167, 200]);
  });

  it("a negative (supporting) cube is red at its centre in the axial panel, on the image's right (the patient's left)", async () => {
    const s = spec(-2);
    const L = mosaicLayout(s);
    const { px } = await decode(await volumeMosaic(s));
    const p = centrePanel(L.panels, "axial");
    const [x, y] = pageOf(p, 4, 12); // the cube's centre: i 2..5 and j 10..13 span [2, 6) and [10, 14)
    expect(isRed(px(x, y)), `pixel ${px(x, y)}`).toBe(true);
    expect(x).toBeGreaterThan(p.x + p.width / 2);
    // and in the coronal centre slice, at the same i and at k 8
    const c = centrePanel(L.panels, "coronal");
    expect(isRed(px(...pageOf(c, 4, 8)))).toBe(true);
    // away from the cube, the image shows through untouched: grey
    expect(isGrey(px(...pageOf(p, 15, 3)))).toBe(true);
  });

  it("a positive cube (against the RoI) is blue; an unsigned map is drawn as support (red)", async () => {
    const sBlue = spec(2);
    const p = centrePanel(mosaicLayout(sBlue).panels, "axial");
    const blue = await decode(await volumeMosaic(sBlue));
    expect(isBlue(blue.px(...pageOf(p, 4, 12))), `pixel ${blue.px(...pageOf(p, 4, 12))}`).toBe(true);
    const unsigned = await decode(await volumeMosaic(spec(2, { signed: false })));
    expect(isRed(unsigned.px(...pageOf(p, 4, 12)))).toBe(true);
  });

  it("the colour scale is the one asked for: with a fixed scale 4 times the cube's |value| the cube is pale red", async () => {
    const p = centrePanel(mosaicLayout(spec(-2)).panels, "axial");
    const s = spec(-2, { scale: { kind: "fixed", value: 8 } });
    expect(mosaicLayout(s).scale.maxAbs).toBe(8);
    const { px } = await decode(await volumeMosaic(s));
    const [r, g, b] = px(...pageOf(p, 4, 12));
    // h = -0.25: heat (255, 191, 191) at opacity 0.85·√0.25 = 0.425 over grey, so red exceeds green and blue by 0.425·64 = 27
    expect(isRed([r, g, b])).toBe(false);
    expect(g).toBe(b);
    expect(Math.abs(r - g - 27)).toBeLessThanOrEqual(1);
  });

  it("outlines the RoI: green on both sides of its boundary, none inside or far outside", async () => {
    const s = spec(-2);
    const L = mosaicLayout(s);
    const { px } = await decode(await volumeMosaic(s));
    for (const o of ["axial", "coronal", "sagittal"]) {
      const p = centrePanel(L.panels, o);
      // The boundary in page pixels is b = pageOf(...); the pixels whose centres lie on either side of it (b - 0.5, b + 0.5) are green.
      // RoI along the panel's column axis: i 8..11 (axial, coronal) or j 10..13 (sagittal); along rows: j 10..13 or k 6..9.
      const [c0, c1] = o === "sagittal" ? [10, 14] : [8, 12];
      const [r0, r1] = o === "axial" ? [10, 14] : [6, 10];
      const [xl, yt] = pageOf(p, c1, r1); // flipped axes: the high index edge is at the left/top
      const [xr, yb] = pageOf(p, c0, r0);
      const ym = (yt + yb) / 2,
        xm = (xl + xr) / 2;
      for (const [x, y] of [
        [xl - 0.5, ym],
        [xl + 0.5, ym],
        [xr - 0.5, ym],
        [xr + 0.5, ym],
        [xm, yt - 0.5],
        [xm, yt + 0.5],
        [xm, yb - 0.5],
        [xm, yb + 0.5],
      ]) {
        expect(isGreen(px(x, y)), `${o} outline at (${x.toFixed(1)}, ${y.toFixed(1)}): ${px(x, y)}`).toBe(true);
      }
      expect(isGreen(px(xm, ym)), `${o} RoI centre`).toBe(false);
      expect(isGrey(px(xm, ym)), `${o} RoI centre is the image, no map there`).toBe(true);
      expect(isGreen(px(xl - 4, ym)), `${o} outside the RoI`).toBe(false);
    }
  });

  it("anisotropic voxels: panels keep the physical aspect ratio, and the cube is drawn 3 times taller than wide in the coronal panel", async () => {
    const s = spec(-2, { spacing: [1, 1, 3] });
    const L = mosaicLayout(s);
    // extents 20, 24 and 48 mm: 200 px for 48 mm
    const size = (o: string) => {
      const p = centrePanel(L.panels, o);
      return [p.width, p.height];
    };
    expect(size("axial")).toEqual([Math.round((20 * 200) / 48), Math.round((24 * 200) / 48)]);
    expect(size("coronal")).toEqual([Math.round((20 * 200) / 48), 200]);
    expect(size("sagittal")).toEqual([Math.round((24 * 200) / 48), 200]);
    const iso = mosaicLayout(spec(-2));
    expect(centrePanel(iso.panels, "coronal").height).toBe(Math.round((16 * 200) / 24));
    // The red run through the cube's centre in the coronal panel: 4 mm wide, 12 mm tall.
    const { px } = await decode(await volumeMosaic(s));
    const c = centrePanel(L.panels, "coronal");
    const [cx, cy] = pageOf(c, 4, 8);
    let w = 0,
      h = 0;
    for (let x = c.x; x < c.x + c.width; x++) if (isRed(px(x, cy))) w++;
    for (let y = c.y; y < c.y + c.height; y++) if (isRed(px(cx, y))) h++;
    expect(Math.abs(w - 4 * L.pxPerMm)).toBeLessThanOrEqual(1);
    expect(Math.abs(h - 12 * L.pxPerMm)).toBeLessThanOrEqual(1);
  });

  it("a map of zeros renders: the image in grey everywhere but the outline", async () => {
    const s = spec(0);
    const L = mosaicLayout(s);
    const { px } = await decode(await volumeMosaic(s));
    // every panel but each row's first (it carries the patient-direction letters)
    const rest = L.panels.filter((p, n) => n > 0 && L.panels[n - 1].plane.orientation === p.plane.orientation);
    expect(rest.length).toBe(9);
    let coloured = 0,
      outline = 0;
    for (const p of rest) {
      for (let y = p.y; y < p.y + p.height; y++) {
        for (let x = p.x; x < p.x + p.width; x++) {
          const c = px(x, y);
          if (isGreen(c)) outline++;
          else if (!isGrey(c)) coloured++;
        }
      }
    }
    expect(coloured).toBe(0);
    expect(outline).toBeGreaterThan(0);
  });

  it("refuses an empty RoI, a grid mismatch and a map with NaN, each in one line", async () => {
    const refusal = (s: MosaicSpec) => {
      try {
        mosaicLayout(s);
      } catch (e) {
        expect(e).toBeInstanceOf(SegcauseError);
        return (e as SegcauseError).message;
      }
      throw new Error("expected a refusal");
    };
    expect(refusal(spec(-2, { roi: new Uint8Array(N) }))).toMatch(/^the RoI mask is empty/);
    expect(refusal(spec(-2, { map: new Float32Array(N - 1) }))).toBe(`the map holds ${N - 1} voxels but the volume is 20x24x16 = ${N}`);
    const nan = spec(-2);
    nan.map[7] = Number.NaN;
    expect(refusal(nan)).toMatch(/^the map holds 1 non-finite values/);
    expect(refusal(spec(-2, { spacing: [1, 0, 1] }))).toMatch(/^voxel spacing 1x0x1 mm/);
  });

  it("with a margin, shows only the RoI's box plus the margin", () => {
    const L = mosaicLayout(spec(-2, { marginMm: 2 }));
    expect(L.fov).toEqual([
      [6, 13],
      [8, 15],
      [4, 11],
    ]);
  });
});

const HIPPO = new URL("../../shared/data/hippocampus/", import.meta.url).pathname;
const haveHippo = existsSync(join(HIPPO, "manifest.json"));
if (!haveHippo) console.warn(`skipping the hippocampus mosaic test: ${HIPPO} is absent (the shared data sets are not on this machine)`);

describe.skipIf(!haveHippo)("a real hippocampus volume", () => {
  it("renders hippocampus_003 with its label as the RoI and a synthetic map", async () => {
    const image = await readNifti(join(HIPPO, "images/hippocampus_003.nii.gz"));
    const labels = await readNifti(join(HIPPO, "labels/hippocampus_003.nii.gz"));
    const roi = labelMask(labels, [1, 2]);
    const [nx, ny] = image.dims;
    // A supporting block (value -1) at the volume's low-i edge (i 0..3), through the RoI's centre row and slice (j, k ± 1).
    const s: MosaicSpec = {
      dims: image.dims,
      spacing: image.spacing,
      image: image.data,
      map: new Float32Array(image.data.length),
      roi,
      signed: true,
      affine: image.affine,
      valueUnits: "Δ Dice points",
    };
    const L = mosaicLayout(s);
    const [, cj, ck] = L.roiBox.map(([lo, hi]) => Math.round((lo + hi) / 2));
    for (let k = ck - 1; k <= ck + 1; k++) for (let j = cj - 1; j <= cj + 1; j++) for (let i = 0; i < 4; i++) s.map[(k * ny + j) * nx + i] = -1;
    const { info, px } = await decode(await volumeMosaic(s));
    expect([info.width, info.height]).toEqual([L.width, L.height]);
    expect(L.fromAffine).toBe(true);
    const axial = centrePanel(L.panels, "axial");
    expect(axial.slice).toBe(ck);
    let green = 0,
      red = 0;
    for (let y = axial.y; y < axial.y + axial.height; y++) {
      for (let x = axial.x; x < axial.x + axial.width; x++) {
        if (isGreen(px(x, y))) green++;
        if (isRed(px(x, y))) red++;
      }
    }
    expect(green).toBeGreaterThan(20);
    // the cube: i 0..3 (the patient's far left: the panel's right edge), j cj-1..cj+1
    const pxPerVoxel = axial.width / nx;
    expect(red).toBeGreaterThan(0.5 * 4 * 3 * pxPerVoxel * pxPerVoxel);
    expect(isRed(px(axial.x + axial.width - 2 * pxPerVoxel, axial.y + (ny - cj - 0.5) * (axial.height / ny)))).toBe(true);
  });
});
