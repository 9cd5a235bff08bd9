import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { mapToInput, maskToModel, modelSpaceOf } from "../src/data/volume/model-space.js";
import { writeNifti } from "../src/data/volume/nifti-write.js";
import { applyOrnt, inverseOrnt, obliqueDegrees, orientationCodes, orntAffine, orntDims, orntTo } from "../src/data/volume/orientation.js";
import { resampledAffine, resampledDims, resampleNearest, resampleTrilinear } from "../src/data/volume/resample.js";
import { buildVolumeBank } from "../src/data/volume/volume-bank.js";
import { loadVolumeCase } from "../src/data/volume/volume-case.js";
import { boxVoxels } from "../src/explain/volume/box-size.js";
import { explainVolumeBlocks, planBoxes, type VolumeAttribution, volumeTarget } from "../src/explain/volume/engine.js";
import type { VolumeCard } from "../src/model/volume-card.js";
import { VolumeModel } from "../src/model/volume-model.js";
import { Rng } from "../src/util/rng.js";
import { AFFINE, CARD, causalBoxModel, causalBoxVolume, N, ROI } from "./helpers/causal3d.js";
import { tmp, writeModel } from "./helpers/tiny.js";

type V3 = [number, number, number];

const PERMUTATIONS: V3[] = [
  [0, 1, 2],
  [0, 2, 1],
  [1, 0, 2],
  [1, 2, 0],
  [2, 0, 1],
  [2, 1, 0],
];
/** The 48 axis codes: every permutation of the three world axes, each either way. */
const ALL_CODES = PERMUTATIONS.flatMap((p) => [0, 1, 2, 3, 4, 5, 6, 7].map((f) => p.map((w, a) => ["LR", "PA", "IS"][w][(f >> a) & 1]).join("")));

/** An affine whose voxel axes point along `codes`, with the given spacing and origin. */
function affineFor(codes: string, spacing: readonly number[], origin: readonly number[]): number[] {
  const a = [0, 0, 0, origin[0], 0, 0, 0, origin[1], 0, 0, 0, origin[2], 0, 0, 0, 1];
  const dir: Record<string, [number, number]> = { R: [0, 1], L: [0, -1], A: [1, 1], P: [1, -1], S: [2, 1], I: [2, -1] };
  [...codes].forEach((c, v) => {
    const [w, s] = dir[c];
    a[w * 4 + v] = s * spacing[v];
  });
  return a;
}

const world = (a: readonly number[], p: readonly number[]) =>
  [0, 1, 2].map((r) => a[r * 4] * p[0] + a[r * 4 + 1] * p[1] + a[r * 4 + 2] * p[2] + a[r * 4 + 3]);

/** Voxel index of a world point on a grid with an axis-aligned affine (a signed permutation times spacing). */
function voxelOf(a: readonly number[], w: readonly number[]): number[] {
  const p = [0, 0, 0];
  for (let v = 0; v < 3; v++) for (let r = 0; r < 3; r++) if (a[r * 4 + v] !== 0) p[v] = (w[r] - a[r * 4 + 3]) / a[r * 4 + v];
  return p;
}

describe("reorientation (exact permutation/flip of voxel axes)", () => {
  it("round-trips every one of the 48 axis codes, to every target, with each voxel's world coordinate unchanged", () => {
    expect(new Set(ALL_CODES).size).toBe(48);
    const rng = new Rng(7, 0);
    for (const from of ALL_CODES) {
      const dims: V3 = [2 + rng.int(3), 2 + rng.int(3), 2 + rng.int(3)];
      const spacing = [0.5 + rng.int(4) / 4, 0.5 + rng.int(4) / 4, 1 + rng.int(3)];
      const affine = affineFor(from, spacing, [rng.int(20) - 10, rng.int(20) - 10, rng.int(20) - 10]);
      expect(orientationCodes(affine)).toBe(from);
      const data = Float32Array.from({ length: dims[0] * dims[1] * dims[2] }, () => rng.next());
      for (const to of ["RAS", "LPS", "SAR", ALL_CODES[rng.int(48)]]) {
        const o = orntTo(affine, to);
        const od = orntDims(dims, o);
        const oa = orntAffine(affine, dims, o);
        const out = applyOrnt(data, dims, o, (n) => new Float32Array(n));
        expect(orientationCodes(oa), `${from} → ${to}`).toBe(to);
        // every output voxel holds the input voxel at the same world coordinate
        for (let k = 0; k < od[2]; k++)
          for (let j = 0; j < od[1]; j++)
            for (let i = 0; i < od[0]; i++) {
              const q = voxelOf(affine, world(oa, [i, j, k])).map((x) => Math.round(x * 1e6) / 1e6);
              expect(q.every((x, a) => Number.isInteger(x) && x >= 0 && x < dims[a])).toBe(true);
              expect(out[(k * od[1] + j) * od[0] + i]).toBe(data[(q[2] * dims[1] + q[1]) * dims[0] + q[0]]);
            }
        const back = applyOrnt(out, od, inverseOrnt(o), (n) => new Float32Array(n));
        expect(Array.from(back)).toEqual(Array.from(data));
        const ba = orntAffine(oa, od, inverseOrnt(o));
        ba.forEach((x, n) => expect(x).toBeCloseTo(affine[n], 12));
      }
    }
  });

  it("an oblique affine gets its closest axes and the angle it is rotated by", () => {
    const t = (10 * Math.PI) / 180;
    // LPS rotated 10° about z
    const rot = [Math.cos(t), -Math.sin(t), Math.sin(t), Math.cos(t)];
    const affine = [-rot[0], -rot[1], 0, 0, -rot[2], -rot[3], 0, 0, 0, 0, 2, 0, 0, 0, 0, 1];
    expect(orientationCodes(affine)).toBe("LPS");
    expect(obliqueDegrees(affine)).toBeCloseTo(10, 9);
    expect(obliqueDegrees(affineFor("ASL", [1, 2, 3], [0, 0, 0]))).toBeCloseTo(0, 9);
    const card = { input: { axes: "RAS", spacing: [1, 1, 2] } } as unknown as VolumeCard;
    const s = modelSpaceOf({ dims: [4, 5, 6], spacing: [1, 1, 2], affine }, card, "oblique.nii");
    expect(s.ornt).toEqual({ axis: [0, 1, 2], flip: [true, true, false] });
    expect(s.obliqueDegrees).toBeCloseTo(10, 9);
    expect(s.resample).toBeUndefined();
  });
});

describe("resampling to the card's spacing over the same physical extent", () => {
  const dims: V3 = [9, 7, 5];
  const from = [0.9, 0.9, 3];
  const to = [1, 1, 1];
  const affine = affineFor("RAS", from, [3, -2, 10]);
  const ramp = (w: number[]) => 2 + 0.5 * w[0] - 1.25 * w[1] + 0.75 * w[2];

  it("trilinear reproduces a linear ramp exactly (inside the grid) and a constant everywhere", () => {
    const data = new Float32Array(dims[0] * dims[1] * dims[2]);
    for (let k = 0; k < dims[2]; k++)
      for (let j = 0; j < dims[1]; j++) for (let i = 0; i < dims[0]; i++) data[(k * dims[1] + j) * dims[0] + i] = ramp(world(affine, [i, j, k]));
    const out = resampledDims(dims, from, to, "ramp");
    expect(out).toEqual([8, 6, 15]);
    const oa = resampledAffine(affine, from, to);
    // the outer faces coincide: the first voxel's low face is the input's
    [0, 1, 2].forEach((a) => expect(oa[a * 4 + 3] - oa[a * 4 + a] / 2).toBeCloseTo(affine[a * 4 + 3] - affine[a * 4 + a] / 2, 12));
    const res = resampleTrilinear(data, dims, from, to, out);
    let inside = 0;
    for (let k = 0; k < out[2]; k++)
      for (let j = 0; j < out[1]; j++)
        for (let i = 0; i < out[0]; i++) {
          const src = voxelOf(affine, world(oa, [i, j, k]));
          if (!src.every((x, a) => x >= 0 && x <= dims[a] - 1)) continue;
          inside++;
          expect(res[(k * out[1] + j) * out[0] + i]).toBeCloseTo(ramp(world(oa, [i, j, k])), 4);
        }
    expect(inside).toBeGreaterThan(out[0] * out[1] * out[2] * 0.5);
    const constant = resampleTrilinear(new Float32Array(data.length).fill(-3.5), dims, from, to, out);
    expect(constant.every((v) => v === -3.5)).toBe(true);
  });

  it("nearest keeps labels, and a 2x finer model grid maps back onto the input exactly", () => {
    const rng = new Rng(3, 0);
    const labels = Uint8Array.from({ length: dims[0] * dims[1] * dims[2] }, () => [0, 1, 2, 7][rng.int(4)]);
    const out = resampledDims(dims, from, to, "labels");
    const res = resampleNearest(labels, dims, from, to, out, (n) => new Uint8Array(n));
    expect(new Set(res)).toEqual(new Set(labels));
    const card = { input: { axes: "RAS", spacing: [0.5, 0.5, 0.5] } } as unknown as VolumeCard;
    const s = modelSpaceOf({ dims: [4, 3, 2], spacing: [1, 1, 1], affine: affineFor("LPI", [1, 1, 1], [0, 0, 0]) }, card, "x");
    expect(s.dims).toEqual([8, 6, 4]);
    const values = Float32Array.from({ length: 24 }, (_, n) => (n === 5 ? Number.NaN : n));
    const there = maskToModel(s, values, (n) => new Float32Array(n));
    const back = mapToInput(s, there);
    expect(Array.from(back)).toEqual(Array.from(values));
  });

  it("a resample past the voxel cap is refused in one line", () => {
    const card = { input: { spacing: [0.05, 0.05, 0.05] } } as unknown as VolumeCard;
    expect(() =>
      modelSpaceOf({ dims: [200, 200, 200], spacing: [1, 1, 1], affine: affineFor("RAS", [1, 1, 1], [0, 0, 0]) }, card, "big.nii"),
    ).toThrow(/big.nii resampled from 1x1x1 mm to the model's 0.05x0.05x0.05 mm would hold 4000x4000x4000 voxels, more than segcause holds/);
  });
});

describe("a known-answer 3D model finds the same causal box in world coordinates on a moved copy of its volume", () => {
  let dir: string, model: string;
  const data = causalBoxVolume();
  const at = (v: Float32Array, dims: readonly number[], p: readonly number[]) => v[(p[2] * dims[1] + p[1]) * dims[0] + p[0]];

  beforeAll(() => {
    dir = tmp();
    model = writeModel(dir, "causal3d.onnx", causalBoxModel(), { ...CARD, input: { ...CARD.input, axes: "RAS" } });
  });

  async function explain(path: string, roi: typeof ROI): Promise<VolumeAttribution> {
    const m = await VolumeModel.load(model);
    try {
      const kase = await loadVolumeCase(m, path);
      return await explainVolumeBlocks(
        m,
        kase,
        { roi },
        {
          method: "zero",
          block: [8, 8, 8],
          estimator: { screen: 1, samples: 0, tau: 0.02 },
          intervention: { kind: "constant", value: -0.378, describe: {} },
          settings: {},
        },
      );
    } finally {
      await m.release();
    }
  }

  /** Every voxel of the moved copy carries the original map's value at its world position. */
  function expectSameInWorld(a: VolumeAttribution, ref: VolumeAttribution): void {
    for (let k = 0; k < a.dims[2]; k++)
      for (let j = 0; j < a.dims[1]; j++)
        for (let i = 0; i < a.dims[0]; i++) {
          const q = voxelOf(AFFINE, world(a.affine, [i, j, k])).map((x) => Math.round(x));
          expect(at(a.map, a.dims, [i, j, k])).toBe(at(ref.map, ref.dims, q));
        }
    expect(a.units.map((u) => [u.z, u.y, u.x, u.effect])).toEqual(ref.units.map((u) => [u.z, u.y, u.x, u.effect]));
  }

  it("an LPS-flipped copy and a 2x finer resampled copy", async () => {
    const ras = join(dir, "ras.nii.gz");
    await writeNifti(ras, { dims: [N, N, N], affine: AFFINE, data });
    const ref = await explain(ras, ROI);
    const causal = ref.units.filter((u) => u.effect !== 0);
    expect(causal.map((u) => [u.z, u.y, u.x])).toEqual([[0, 0, 8]]);
    expect(causal[0].effect).toBeCloseTo(-100, 6);

    // LPS: i and j reversed; the affine's first two columns negated and its origin moved to the old far corner
    const lpsAffine = orntAffine(AFFINE, [N, N, N], { axis: [0, 1, 2], flip: [true, true, false] });
    const lpsData = applyOrnt(data, [N, N, N], { axis: [0, 1, 2], flip: [true, true, false] }, (n) => new Float32Array(n));
    expect(orientationCodes(lpsAffine)).toBe("LPS");
    const lps = join(dir, "lps.nii.gz");
    await writeNifti(lps, { dims: [N, N, N], affine: lpsAffine, data: lpsData });
    const a = await explain(lps, { ...ROI, y: N - ROI.y - ROI.height, x: N - ROI.x - ROI.width });
    expect(a.notes[0]).toMatch(/^reoriented LPS → RAS/);
    expect(a.affine).toEqual(lpsAffine);
    expectSameInWorld(a, ref);

    // 0.5 mm voxels: every voxel split in 2x2x2, faces kept
    const fine = new Float32Array(8 * N ** 3);
    for (let k = 0; k < 2 * N; k++)
      for (let j = 0; j < 2 * N; j++)
        for (let i = 0; i < 2 * N; i++) fine[(k * 2 * N + j) * 2 * N + i] = at(data, [N, N, N], [i >> 1, j >> 1, k >> 1]);
    const fineAffine = [...AFFINE];
    for (const r of [0, 1, 2]) (fineAffine[r * 5] = 0.5), (fineAffine[r * 4 + 3] -= 0.25);
    const finePath = join(dir, "fine.nii.gz");
    await writeNifti(finePath, { dims: [2 * N, 2 * N, 2 * N], affine: fineAffine, data: fine });
    const b = await explain(finePath, { z: 16, y: 16, x: 0, depth: 16, height: 16, width: 16 });
    expect(b.notes[0]).toMatch(/^resampled 0.5x0.5x0.5 mm → 1x1x1 mm, trilinear/);
    expect(b.dims).toEqual([2 * N, 2 * N, 2 * N]);
    expectSameInWorld(b, ref);
    expect((b.provenance.volume as { modelSpace: { resampled: unknown } }).modelSpace.resampled).toEqual({
      image: "trilinear",
      masks: "nearest",
      dims: [N, N, N],
    });
  });
});

describe("blocks in millimetres", () => {
  it("become voxels per model-space axis by the card's spacing (rounded, at least 1); --box-unit vox takes voxels", () => {
    expect(boxVoxels(8, "mm", [1, 1, 1], "--block")).toEqual([8, 8, 8]);
    // (D, H, W) = (k, j, i): 8 mm over 0.8 x 0.8 x 3 mm voxels
    expect(boxVoxels(8, "mm", [0.8, 0.8, 3], "--block")).toEqual([3, 10, 10]);
    expect(boxVoxels(1, "mm", [0.8, 0.8, 3], "--block")).toEqual([1, 1, 1]);
    expect(boxVoxels(8, "vox", [0.8, 0.8, 3], "--block")).toEqual([8, 8, 8]);
  });

  it("an anisotropic model space gets physically even boxes: the known causal box is split along k and both halves are found", async () => {
    // the known-answer model on a card at 1 x 1 x 2 mm: --block 8 mm is 4 voxels along k, 8 along j and i
    const dir = tmp();
    const card = { ...CARD, input: { ...CARD.input, spacing: [1, 1, 2] } };
    const model = writeModel(dir, "causal3d-aniso.onnx", causalBoxModel(), card);
    const affine = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 2, 0, 0, 0, 0, 1];
    const path = join(dir, "aniso.nii.gz");
    await writeNifti(path, { dims: [N, N, N], affine, data: causalBoxVolume() });
    const m = await VolumeModel.load(model);
    try {
      const kase = await loadVolumeCase(m, path);
      expect(kase.space.identity).toBe(true);
      const block = boxVoxels(8, "mm", kase.space.spacing, "--block");
      expect(block).toEqual([4, 8, 8]);
      // a fill far below the volume: half of the causal box replaced is enough to turn every voxel background
      const a = await explainVolumeBlocks(
        m,
        kase,
        { roi: ROI },
        {
          method: "zero",
          block,
          estimator: { screen: 1, samples: 0, tau: 0.02 },
          intervention: { kind: "constant", value: -3, describe: {} },
          settings: {},
        },
      );
      // 4 x 2 x 2 boxes, the 2 under the RoI (z 8..15, y 8..15, x 0..7) left out
      expect(a.units).toHaveLength(14);
      expect(a.units.every((u) => u.depth === 4 && u.height === 8 && u.width === 8)).toBe(true);
      const found = a.units.filter((u) => u.effect !== 0);
      expect(found.map((u) => [u.z, u.y, u.x])).toEqual([
        [0, 0, 8],
        [4, 0, 8],
      ]);
      for (const u of found) expect(u.effect).toBeCloseTo(-100, 6);
      expect(a.provenance.settings).toMatchObject({ block: [4, 8, 8], stride: [4, 8, 8] });
    } finally {
      await m.release();
    }
  });
});

describe("volume banks are cut in model space", () => {
  it("a bank from LPS copies of the volumes holds exactly the boxes of the bank from the RAS volumes; a bank of other boxes is refused", async () => {
    const dir = tmp();
    const model = writeModel(dir, "causal3d.onnx", causalBoxModel(), { ...CARD, input: { ...CARD.input, axes: "RAS" } });
    const flip = { axis: [0, 1, 2] as V3, flip: [true, true, false] as [boolean, boolean, boolean] };
    const manifests: Record<string, string> = {};
    for (const kind of ["ras", "lps"]) {
      const cases = [];
      for (let v = 0; v < 2; v++) {
        const r = new Rng(11 + v, 0);
        const data = Float32Array.from({ length: N ** 3 }, () => r.next());
        const [d, a] =
          kind === "ras" ? [data, AFFINE] : [applyOrnt(data, [N, N, N], flip, (n) => new Float32Array(n)), orntAffine(AFFINE, [N, N, N], flip)];
        await writeNifti(join(dir, `${kind}${v}.nii.gz`), { dims: [N, N, N], affine: a, data: d });
        cases.push({ id: `${kind}${v}`, image: `${kind}${v}.nii.gz`, split: "train" });
      }
      manifests[kind] = join(dir, `${kind}.json`);
      writeFileSync(manifests[kind], JSON.stringify({ name: kind, cases }));
    }
    const m = await VolumeModel.load(model);
    try {
      const opts = { box: [4, 8, 8] as V3, perVolume: 5, seed: 2, splits: ["train"] };
      const [ras, lps] = [await buildVolumeBank(manifests.ras, m.card, opts), await buildVolumeBank(manifests.lps, m.card, opts)];
      expect(lps.header.box).toEqual([4, 8, 8]);
      expect(lps.header.size).toBeUndefined();
      expect(Array.from(lps.data)).toEqual(Array.from(ras.data));
      const image = join(dir, "case.nii.gz");
      await writeNifti(image, { dims: [N, N, N], affine: AFFINE, data: causalBoxVolume() });
      const kase = await loadVolumeCase(m, image);
      const target = await volumeTarget(m, kase, { roi: ROI });
      const spec = {
        method: "pdcr",
        block: [8, 8, 8] as V3,
        estimator: { screen: 3, samples: 5, tau: 0 },
        intervention: { kind: "bank" as const, bank: lps },
        settings: {},
      };
      expect(() => planBoxes(kase, target, spec)).toThrow(/the block is 8³ voxels \(DxHxW\) in model space, the bank's boxes are 4x8x8/);
    } finally {
      await m.release();
    }
  });
});
