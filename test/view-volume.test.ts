/**
 * `segcause view` on volumes: the shipped 3D U-Net on a real hippocampus volume from a volume data set
 * manifest. A run with a voxel-box RoI streams progress and writes the folder `segcause explain` writes
 * for the same command; the NIfTI files are served with the token only and only under the viewer's folders;
 * uploads of .nii.gz must parse as NIfTI.
 */
import { readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { explainArgs } from "../src/view/request.js";
import type { RunEvent, RunInfo } from "../src/view/runs.js";
import { startViewServer, type ViewServer } from "../src/view/server.js";
import { segcauseAsync } from "./helpers/cli.js";
import { tmp } from "./helpers/tiny.js";
import { viewCall } from "./helpers/view.js";

const HIPPO = resolve("..", "shared", "data", "hippocampus");
const haveHippo = readable(join(HIPPO, "manifest.json"));
if (!haveHippo) console.warn("view-volume.test.ts: ../shared/data/hippocampus is absent, so the viewer's volume runs are skipped (CI has the data)");

function readable(p: string): boolean {
  try {
    readFileSync(p);
    return true;
  } catch {
    return false;
  }
}

const MODEL = resolve(import.meta.dirname, "..", "models", "volumes", "unet3d-hippocampus.onnx");
const IMAGE = join(HIPPO, "images", "hippocampus_008.nii.gz");
const BOX = { z: 12, y: 16, x: 14, d: 6, h: 8, w: 6 };

describe.skipIf(!haveHippo)("segcause view on volumes (shipped 3D U-Net, hippocampus)", () => {
  let v: ViewServer;
  let base: string;
  let dir: string;

  beforeAll(async () => {
    dir = tmp();
    v = await startViewServer({ dataset: join(HIPPO, "manifest.json"), runs: join(dir, "runs") });
    base = `http://127.0.0.1:${v.port}`;
  });
  afterAll(async () => {
    await v?.close();
  });

  const call = (path: string, body?: unknown, withToken = true) => viewCall(v, path, body, { token: withToken });

  it("lists the 3D model and the data set's volumes (with their label maps) apart from the 2D ones", async () => {
    const s = (await call("/api/state")).json;
    expect(s.volumeModels.map((m: { path: string }) => m.path)).toContain(MODEL);
    expect(s.models.map((m: { path: string }) => m.path)).not.toContain(MODEL);
    const vol = s.volumes.find((x: { path: string }) => x.path === IMAGE);
    expect(vol).toMatchObject({ group: "data set hippocampus", labels: join(HIPPO, "labels", "hippocampus_008.nii.gz") });
    expect(s.images.some((x: { path: string }) => x.path.endsWith(".nii.gz"))).toBe(false);
  });

  it("runs zero ablation on a voxel box: progress streams, and the folder is the CLI's for the shown command", async () => {
    const r = await call("/api/runs", { model: MODEL, image: IMAGE, roiBox: BOX, method: "zero", options: { block: 16 } });
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    const info = r.json as RunInfo;
    expect(info.command).toBe(
      `segcause explain --model ${MODEL} --image ${IMAGE} --roi 12,16,14,6,8,6 --method zero --seed 0 --block=16 --out ${info.out}`,
    );
    const text = await (await fetch(`${base}/api/runs/${info.id}/events?token=${v.token}`)).text();
    const ev = text
      .split("\n\n")
      .filter((b) => b.includes("data: "))
      .map((b) => JSON.parse(b.slice(b.indexOf("data: ") + 6)) as RunEvent);
    const progress = ev.filter((e) => e.type === "progress");
    expect(progress.length).toBeGreaterThan(0);
    const last = progress.at(-1)!;
    expect(last.type === "progress" && last.status.done === last.status.total).toBe(true);
    const done = ev.find((e) => e.type === "done");
    expect(done?.type === "done" && (done.summary as { complete: boolean; method: string })).toMatchObject({ complete: true, method: "zero" });
    expect(ev.at(-1)).toEqual({ type: "state", state: "done" });

    const cliOut = join(dir, "cli-zero");
    // not spawnSync: a blocked event loop lets the in-process server close a keep-alive socket fetch then reuses
    const cli = await segcauseAsync(
      "explain",
      ...explainArgs({ model: MODEL, image: IMAGE, roiBox: BOX, method: "zero", seed: 0, options: { block: 16 } }, cliOut),
      "--no-progress",
    );
    expect(cli.code, cli.stderr).toBe(0);
    // Byte for byte, except the wall time and the creation time in map.json.
    for (const f of ["map.nii.gz", "stderr.nii.gz", "mosaic.png"])
      expect(readFileSync(join(info.out, f)).equals(readFileSync(join(cliOut, f))), f).toBe(true);
    const json = (d: string) => {
      const m = JSON.parse(readFileSync(join(d, "map.json"), "utf8"));
      delete m.wallMs;
      delete m.provenance.createdAt;
      return m;
    };
    expect(json(info.out)).toEqual(json(cliOut));
    expect(readFileSync(join(info.out, "manifest.json"), "utf8")).toBe(readFileSync(join(cliOut, "manifest.json"), "utf8"));

    // Not listed among the 2D results (their views do not draw a volume's map).
    expect((await call("/api/state")).json.results.map((x: { dir: string }) => x.dir)).not.toContain(info.out);
    // The map is served as it lies on disk, with the token only.
    const map = await fetch(`${base}/api/volume?path=${encodeURIComponent(join(info.out, "map.nii.gz"))}&token=${v.token}`);
    expect(map.status).toBe(200);
    expect(Buffer.from(await map.arrayBuffer()).equals(readFileSync(join(info.out, "map.nii.gz")))).toBe(true);
    const noToken = await call(`/api/volume?path=${encodeURIComponent(join(info.out, "map.nii.gz"))}`, undefined, false);
    expect(noToken.status).toBe(403);
    expect(noToken.json.error).toContain("missing or wrong token");
    const input = await fetch(`${base}/api/volume?path=${encodeURIComponent(IMAGE)}&token=${v.token}`);
    expect(Buffer.from(await input.arrayBuffer()).equals(readFileSync(IMAGE))).toBe(true);
  });

  it("runs on a RoI of labels of the case's label map, as `--roi-mask <labels> --label 1,2`", async () => {
    const labels = join(HIPPO, "labels", "hippocampus_008.nii.gz");
    const r = await call("/api/runs", { model: MODEL, image: IMAGE, roiLabels: { labels, label: "1,2" }, method: "zero", options: { block: 16 } });
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    expect(r.json.command).toBe(
      `segcause explain --model ${MODEL} --image ${IMAGE} --roi-mask ${labels} --label 1,2 --method zero --seed 0 --block=16 --out ${r.json.out}`,
    );
    const text = await (await fetch(`${base}/api/runs/${r.json.id}/events?token=${v.token}`)).text();
    expect(text).toContain('"state":"done"');
    const map = JSON.parse(readFileSync(join(r.json.out, "map.json"), "utf8"));
    // the RoI is the labelled hippocampus (labels 1 and 2 of the case's label map), as map.json records it
    expect(map.roi).toBe(`the structure of ${labels} (label 1,2)`);
  });

  it("confines volume paths to the viewer's folders: ../, a link out, and a file that is not NIfTI are refused", async () => {
    const outside = join(tmp(), "outside.nii.gz");
    writeFileSync(outside, readFileSync(IMAGE).subarray(0, 100));
    const link = join(dir, "runs", "link.nii.gz");
    symlinkSync(outside, link);
    const notNifti = join(dir, "runs", "notes.txt");
    writeFileSync(notNifti, "x");
    for (const [path, message] of [
      [outside, "is outside the folders this viewer was started with"],
      [join(dir, "runs", relative(join(dir, "runs"), outside)), "is outside the folders"],
      [link, "is outside the folders"],
      [notNifti, "is not a NIfTI file (.nii or .nii.gz)"],
    ]) {
      const r = await call(`/api/volume?path=${encodeURIComponent(path)}`);
      expect(r.status, path).toBe(400);
      expect(r.json.error).toContain(message);
    }
    // a run on a volume outside the folders is refused before anything runs
    const r = await call("/api/runs", { model: MODEL, image: outside, roiBox: BOX, method: "zero" });
    expect(r.status).toBe(400);
    expect(r.json.error).toContain("is outside the folders");
  });

  it("refuses a volume run without a voxel box, a box on a 2D image, a 3D model on an image, in one line", async () => {
    const png = resolve(import.meta.dirname, "..", "samples", "lesion.png");
    const unet2d = (await call("/api/state")).json.models[0].path;
    for (const [body, message] of [
      [{ model: MODEL, image: IMAGE, roi: { row: 0, col: 0, height: 4, width: 4 }, method: "zero" }, "is a volume: give its RoI as roiBox"],
      [{ model: unet2d, image: png, roiBox: BOX, method: "zero" }, "roiBox and roiLabels are a volume's RoI"],
      [
        { model: MODEL, image: IMAGE, roiLabels: { labels: "/etc/hostname", label: "1" }, method: "zero" },
        "label map /etc/hostname is outside the folders",
      ],
      [{ model: MODEL, image: IMAGE, roiLabels: { labels: IMAGE, label: "1;2" }, method: "zero" }, "roiLabels.label: label numbers"],
      [{ model: MODEL, image: png, roi: { row: 0, col: 0, height: 4, width: 4 }, method: "zero" }, "is a 3D model and"],
      [{ model: MODEL, image: IMAGE, roiBox: { ...BOX, d: 0 }, method: "zero" }, "roiBox.d:"],
      [{ model: MODEL, image: IMAGE, roiBox: BOX, roi: { row: 0, col: 0, height: 4, width: 4 }, method: "zero" }, "give the RoI as one of"],
    ] as const) {
      const r = await call("/api/runs", body);
      expect(r.status, message).toBe(400);
      expect(r.json.error).toContain(message);
      expect(r.json.error).not.toContain("\n");
    }
  });

  it("takes .nii.gz uploads that parse as NIfTI and lists them; refuses one that does not", async () => {
    const bytes = readFileSync(IMAGE);
    const up = await call("/api/upload?name=case.nii.gz", new Uint8Array(bytes));
    expect(up.status, JSON.stringify(up.json)).toBe(200);
    expect(up.json.path).toMatch(/uploads\/[0-9a-f]{16}\.nii\.gz$/);
    expect(readFileSync(up.json.path).equals(bytes)).toBe(true);
    expect((await call("/api/state")).json.volumes.map((x: { path: string }) => x.path)).toContain(up.json.path);
    const bad = await call("/api/upload?name=bad.nii.gz", new Uint8Array(bytes.subarray(0, 200)));
    expect(bad.status).toBe(400);
    expect(bad.json.error).toContain("bad.nii.gz");
    expect(bad.json.error).not.toContain("\n");
  });
});
