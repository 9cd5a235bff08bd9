/**
 * `segcause view --image <DICOM series folder>`: a real MR series (../shared/data/dicom/mr-hippocrop/study1)
 * is listed with the volumes, served to the page as the NIfTI of what the CLI's DICOM reader reads (voxels and
 * affine), and a run on it with the shipped 3D U-Net is `segcause explain --image <the folder>`, whose map lies
 * on the series' grid. Skipped, with a line saying so, without ../shared/data/dicom.
 */
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readNiftiBytes } from "../src/data/volume/nifti.js";
import { readVolume } from "../src/data/volume/volume-case.js";
import { startViewServer, type ViewServer } from "../src/view/server.js";
import { tmp } from "./helpers/tiny.js";

const SERIES = resolve("..", "shared", "data", "dicom", "mr-hippocrop", "study1");
const MODEL = resolve(import.meta.dirname, "..", "models", "volumes", "unet3d-hippocampus.onnx");
const have = existsSync(join(SERIES, "1.dcm"));
if (!have)
  console.warn(
    "view-volume-dicom.test.ts: ../shared/data/dicom/mr-hippocrop is absent, so the viewer's DICOM series test is skipped (CI has the data)",
  );

describe.skipIf(!have)("segcause view --image <DICOM series folder>", () => {
  let v: ViewServer;
  beforeAll(async () => {
    v = await startViewServer({ image: SERIES, runs: join(tmp(), "runs") });
  });
  afterAll(async () => {
    await v?.close();
  });

  // biome-ignore lint/suspicious/noExplicitAny: the server's JSON, each field checked by the assertion that reads it
  async function call(path: string, body?: unknown): Promise<{ status: number; json: any }> {
    const res = await fetch(`http://127.0.0.1:${v.port}${path}`, {
      method: body === undefined ? "GET" : "POST",
      headers: { "x-segcause-token": v.token },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, json: await res.json() };
  }

  it("lists the series as a volume, serves it as the NIfTI of the CLI's reading, and runs on it as --image <folder>", async () => {
    const s = (await call("/api/state")).json;
    expect(s.volumes).toContainEqual({ name: "study1", path: SERIES });
    expect(s.images.map((x: { path: string }) => x.path)).not.toContain(SERIES);

    const served = await fetch(`http://127.0.0.1:${v.port}/api/volume?path=${encodeURIComponent(SERIES)}&token=${v.token}`);
    expect(served.status).toBe(200);
    const nifti = await readNiftiBytes(new Uint8Array(await served.arrayBuffer()), "study1.nii");
    const dicom = await readVolume(SERIES);
    expect(nifti.dims).toEqual(dicom.dims);
    expect(Array.from(nifti.data)).toEqual(Array.from(dicom.data));
    for (const [a, x] of dicom.affine.entries()) expect(nifti.affine[a]).toBeCloseTo(x, 4);

    const [nx, ny, nz] = dicom.dims;
    const box = { z: Math.floor(nz / 2) - 3, y: Math.floor(ny / 2) - 4, x: Math.floor(nx / 2) - 3, d: 6, h: 8, w: 6 };
    const r = await call("/api/runs", { model: MODEL, image: SERIES, roiBox: box, method: "zero", options: { block: 16 } });
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    expect(r.json.command).toBe(
      `segcause explain --model ${MODEL} --image ${SERIES} --roi ${box.z},${box.y},${box.x},6,8,6 --method zero --seed 0 --block=16 --out ${r.json.out}`,
    );
    const text = await (await fetch(`http://127.0.0.1:${v.port}/api/runs/${r.json.id}/events?token=${v.token}`)).text();
    expect(text).toContain('"state":"done"');
    // the map overlays the served series: the same grid
    const map = await readNiftiBytes(readFileSync(join(r.json.out, "map.nii.gz")), "map.nii.gz");
    expect(map.dims).toEqual(dicom.dims);
    for (const [a, x] of map.affine.entries()) expect(x).toBeCloseTo(nifti.affine[a], 4);
  });
});
