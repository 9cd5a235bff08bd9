/**
 * `segcause view --image <DICOM series folder>`: a real MR series (../shared/data/dicom/mr-hippocrop/study1)
 * is listed with the volumes, served to the page as the NIfTI of what the CLI's DICOM reader reads (voxels and
 * affine), and a run on it with the shipped 3D U-Net is `segcause explain --image <the folder>`, whose map lies
 * on the series' grid, and a RoI drawn on the served NIfTI runs on the series. A series' files dropped together (one framed upload) are kept as one folder when they
 * read as a volume, and refused in one line when one of them is not DICOM; in chromium, dropping them on the
 * volume panel shows the series. Skipped, with a line saying so, without ../shared/data/dicom (the browser
 * part without /usr/bin/chromium).
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readNiftiBytes } from "../src/data/volume/nifti.js";
import { niftiBytes } from "../src/data/volume/nifti-write.js";
import { readVolume } from "../src/data/volume/volume-case.js";
import { startViewServer, type ViewServer } from "../src/view/server.js";
import { tmp } from "./helpers/tiny.js";
import { CHROMIUM, launchChromium, viewCall } from "./helpers/view.js";

const SERIES = resolve("..", "shared", "data", "dicom", "mr-hippocrop", "study1");
const MODEL = resolve(import.meta.dirname, "..", "models", "volumes", "unet3d-hippocampus.onnx");
const have = existsSync(join(SERIES, "1.dcm"));
if (have && !existsSync(CHROMIUM)) console.warn(`view-volume-dicom.test.ts: ${CHROMIUM} is absent, so dropping a series in the browser is skipped`);

/** A series' files as the page sends them: each as a 4-byte big-endian length, then its bytes. */
function framed(files: Uint8Array[]): Uint8Array {
  return Buffer.concat(files.flatMap((f) => [Buffer.from(new Uint32Array([f.length]).buffer).reverse(), Buffer.from(f)]));
}
const seriesFiles = () =>
  readdirSync(SERIES)
    .sort()
    .map((f) => readFileSync(join(SERIES, f)));
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

  const call = (path: string, body?: unknown) => viewCall(v, path, body);

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

    // a RoI drawn over the served NIfTI (a mask with its header's grid, as NiiVue saves a drawing) runs on the series
    const drawn = new Float32Array(nifti.data.length);
    for (let j = box.y; j < box.y + 8; j++) for (let i = box.x; i < box.x + 6; i++) drawn[(box.z * ny + j) * nx + i] = 1;
    const up = await call("/api/upload?name=roi.nii&purpose=roi", niftiBytes({ dims: nifti.dims, affine: nifti.affine, data: drawn }));
    expect(up.status, JSON.stringify(up.json)).toBe(200);
    const d = await call("/api/runs", {
      model: MODEL,
      image: SERIES,
      roiLabels: { labels: up.json.path, label: "1" },
      method: "zero",
      options: { block: 16 },
    });
    expect(d.status, JSON.stringify(d.json)).toBe(200);
    const dtext = await (await fetch(`http://127.0.0.1:${v.port}/api/runs/${d.json.id}/events?token=${v.token}`)).text();
    expect(dtext).toContain('"state":"done"');
    expect(JSON.parse(readFileSync(join(d.json.out, "map.json"), "utf8")).roi).toBe(`the structure of ${up.json.path} (label 1)`);
  });

  it("opens the --image series folder alone: a sibling series is refused", async () => {
    const sibling = resolve(SERIES, "..", "study2");
    const r = await fetch(`http://127.0.0.1:${v.port}/api/volume?path=${encodeURIComponent(sibling)}&token=${v.token}`);
    expect(r.status).toBe(400);
    expect((await r.json()).error).toContain("is outside the folders this viewer was started with");
  });

  it("refuses at start, in one line, an --image folder that is not a DICOM series", async () => {
    const empty = tmp();
    await expect(startViewServer({ image: empty, runs: join(tmp(), "runs") })).rejects.toThrow(`DICOM input folder ${empty} holds no DICOM files`);
  });

  it("keeps a dropped series' files as one folder when they read as a volume, and refuses a file that is not DICOM", async () => {
    const r = await call("/api/upload-series", framed(seriesFiles()));
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    expect(r.json.path).toMatch(/\/uploads\/series-[0-9a-f]{16}$/);
    expect(readdirSync(r.json.path)).toHaveLength(readdirSync(SERIES).length);
    const listed = (await call("/api/state")).json.volumes.find((x: { path: string }) => x.path === r.json.path);
    expect(listed.name).toBe(`DICOM series ${r.json.path.split("series-")[1]} (${readdirSync(SERIES).length} files)`);
    const [a, b] = [await readVolume(r.json.path), await readVolume(SERIES)];
    expect(Array.from(a.data)).toEqual(Array.from(b.data));
    expect(a.affine).toEqual(b.affine);

    const bad = await call("/api/upload-series", framed([...seriesFiles().slice(0, 3), Buffer.from("not a DICOM file at all")]));
    expect(bad.status).toBe(400);
    expect(bad.json.error).toBe("file 4 of the dropped series is not DICOM (drop only the series' .dcm files, or a NIfTI file alone)");
    const cut = await call("/api/upload-series", framed(seriesFiles()).subarray(0, 1000));
    expect(cut.status).toBe(400);
    expect(cut.json.error).toBe("file 1 of the DICOM series upload is empty or runs past the body's end");
    // nothing half-kept: the one series only
    const uploads = join(r.json.path, "..");
    expect(readdirSync(uploads).filter((f) => f.startsWith("series-"))).toEqual([r.json.path.split("/").pop()]);
  });

  it.skipIf(!existsSync(CHROMIUM))("shows a series dropped on the volume panel in chromium", async () => {
    const browser = await launchChromium(true);
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(e.message));
      await page.goto(v.url);
      await page.waitForSelector("body[data-ready]");
      const files = seriesFiles().map((f, i) => ({ name: `${i + 1}.dcm`, b64: f.toString("base64") }));
      // a drop as the browser makes it: a DataTransfer holding the files
      await page.evaluate((list) => {
        const dt = new DataTransfer();
        for (const f of list) dt.items.add(new File([Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0))], f.name));
        document.getElementById("v-drop")!.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
      }, files);
      await page.waitForFunction(() => /: shown; pick a RoI/.test(document.getElementById("status")!.textContent!), null, { timeout: 60_000 });
      expect(await page.inputValue("#v-volume")).toMatch(/\/uploads\/series-[0-9a-f]{16}$/);
      const png = await page.locator("#nv").screenshot();
      expect((await sharp(png).stats()).channels[0].stdev).toBeGreaterThan(20);
      expect(errors).toEqual([]);
    } finally {
      await browser.close();
    }
  });
});
