/**
 * `segcause view` on volumes with the known-answer 3D fixture (test/helpers/causal3d.ts: one causal box,
 * a data set of two noise volumes in its train split). pdcr on a volume: the server has the bank cut from
 * the data set's train split by `segcause bank build` (the bytes the shown command writes), reuses it, streams
 * the map after each of the fast schedule's rounds as NIfTI (the last is map.nii.gz), and writes the folder
 * the shown command writes. Without a volume data set pdcr is refused in one line naming the flag. A RoI
 * drawn on the volume (a NIfTI upload for the RoI masks) runs as `--roi-mask <it> --label 1`.
 */
import { copyFileSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readNiftiBytes } from "../src/data/volume/nifti.js";
import { niftiBytes } from "../src/data/volume/nifti-write.js";
import type { RunEvent, RunInfo } from "../src/view/runs.js";
import { startViewServer, type ViewServer } from "../src/view/server.js";
import { AFFINE, CAUSAL, inCausal, N, writeCausalFixture } from "./helpers/causal3d.js";
import { segcauseAsync } from "./helpers/cli.js";
import { tmp } from "./helpers/tiny.js";
import { viewCall } from "./helpers/view.js";

/** a 4-voxel-a-side box in the box of the RoI (z 8.., y 8.., x 0..): every other 8-voxel box is outside it */
const BOX = { z: 10, y: 10, x: 2, d: 4, h: 4, w: 4 };

let dir: string, model: string, image: string, manifest: string;

beforeAll(async () => {
  dir = tmp();
  ({ model, image, manifest } = await writeCausalFixture(dir));
});

const call = (v: ViewServer, path: string, body?: unknown) => viewCall(v, path, body);

async function events(v: ViewServer, id: string): Promise<RunEvent[]> {
  const text = await (await fetch(`http://127.0.0.1:${v.port}/api/runs/${id}/events?token=${v.token}`)).text();
  return text
    .split("\n\n")
    .filter((b) => b.includes("data: "))
    .map((b) => JSON.parse(b.slice(b.indexOf("data: ") + 6)) as RunEvent);
}

/** `segcause a b 'c d' && segcause e` as argument lists (the viewer quotes only what the shell needs). */
function commands(line: string): string[][] {
  return line.split(" && ").map((c) => (c.match(/'[^']*'|\S+/g) ?? []).map((a) => a.replace(/^'|'$/g, "")).slice(1));
}

describe("segcause view: pdcr on a volume with the --dataset's bank", () => {
  let v: ViewServer;
  afterAll(async () => {
    await v?.close();
  });

  it("builds the bank from the train split as `bank build` does, streams the map round by round, and writes the CLI's folder", async () => {
    v = await startViewServer({ dataset: manifest, model, image, runs: join(dir, "runs") });
    const state = (await call(v, "/api/state")).json;
    expect(state.volumePdcrUnavailable).toBeNull();
    const request = { model, image, roiBox: BOX, method: "pdcr", seed: 3, options: { block: 8 } };
    const r = await call(v, "/api/runs", request);
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    const info = r.json as RunInfo;
    const [build, explain] = commands(info.command);
    const bank = build[build.indexOf("--out") + 1];
    expect(bank.startsWith(join(dir, "runs", "banks", "tiny3d-train-b8-"))).toBe(true);
    expect(build).toEqual([
      "bank",
      "build",
      "--images",
      manifest,
      "--model",
      model,
      "--splits",
      "train",
      "--patch-size",
      "8",
      "--per-image",
      "4",
      "--seed",
      "0",
      "--out",
      bank,
    ]);
    expect(explain).toEqual([
      "explain",
      "--model",
      model,
      "--image",
      image,
      "--roi",
      "10,10,2,4,4,4",
      "--method",
      "pdcr",
      "--seed",
      "3",
      "--bank",
      bank,
      "--block=8",
      "--out",
      info.out,
    ]);

    const ev = await events(v, info.id);
    expect(ev.at(-1), JSON.stringify(ev.at(-1))).toEqual({ type: "state", state: "done" });
    expect(ev.some((e) => e.type === "state" && e.message?.startsWith("building the volume bank"))).toBe(true);
    // every round's map went out (a late listener gets the latest only: this one listened from the start or joined late)
    const partial = ev.filter((e) => e.type === "partial");
    expect(partial.length).toBeGreaterThan(0);
    const last = partial.at(-1)!;
    if (last.type !== "partial" || !("volume" in last.map)) throw new Error("a volume run's partial map is a NIfTI file");
    const map = readFileSync(join(info.out, "map.nii.gz"));
    const streamed = await readNiftiBytes(Buffer.from(last.map.volume, "base64"), "partial.nii.gz");
    const written = await readNiftiBytes(map, "map.nii.gz");
    // the last round's map is the result, on the input's grid
    expect(Array.from(streamed.data)).toEqual(Array.from(written.data));
    expect(streamed.dims).toEqual([N, N, N]);
    expect(last.map.passes).toBeGreaterThan(1);
    // the known answer: −100 Dice points in the causal box, 0 elsewhere
    for (let k = 0; k < N; k++)
      for (let j = 0; j < N; j++) for (let i = 0; i < N; i++) expect(written.data[(k * N + j) * N + i]).toBeCloseTo(inCausal(i, j, k) ? -100 : 0, 6);

    // a second run reuses the bank: no build, the same file
    const mtime = statSync(bank).mtimeMs;
    const again = await call(v, "/api/runs", { ...request, seed: 4 });
    const ev2 = await events(v, again.json.id);
    expect(ev2.at(-1)).toEqual({ type: "state", state: "done" });
    expect(ev2.some((x) => x.type === "state" && x.message?.startsWith("building"))).toBe(false);
    expect(statSync(bank).mtimeMs).toBe(mtime);
    expect(again.json.command).toContain(`--bank ${bank}`);
    // the shown command, run: the same bank bytes and the same folder
    const cliBank = join(dir, "cli.scvbank");
    const b = await segcauseAsync(...build.map((a) => (a === bank ? cliBank : a)), "--quiet");
    expect(b.code, b.stderr).toBe(0);
    expect(readFileSync(cliBank).equals(readFileSync(bank))).toBe(true);
    const cliOut = join(dir, "cli", "pdcr");
    const e = await segcauseAsync(...explain.map((a) => (a === info.out ? cliOut : a)), "--no-progress");
    expect(e.code, e.stderr).toBe(0);
    for (const f of ["map.nii.gz", "stderr.nii.gz", "mosaic.png", "manifest.json"])
      expect(readFileSync(join(info.out, f)).equals(readFileSync(join(cliOut, f))), f).toBe(true);
  });

  it("runs a RoI drawn on the volume (a NIfTI upload) as --roi-mask <it> --label 1", async () => {
    const drawn = new Uint8Array(N ** 3);
    for (let j = 9; j < 13; j++) for (let i = 1; i < 5; i++) drawn[(11 * N + j) * N + i] = 1;
    const nifti = gzipSync(niftiBytes({ dims: [N, N, N], affine: AFFINE, data: Float32Array.from(drawn) }));
    const up = await call(v, "/api/upload?name=roi.nii.gz&purpose=roi", nifti);
    expect(up.status, JSON.stringify(up.json)).toBe(200);
    expect(up.json.path.startsWith(join(dir, "runs", "roi-masks"))).toBe(true);
    // kept with the RoI masks, not listed as a volume to explain
    expect((await call(v, "/api/state")).json.volumes.map((x: { path: string }) => x.path)).not.toContain(up.json.path);
    const r = await call(v, "/api/runs", { model, image, roiLabels: { labels: up.json.path, label: "1" }, method: "zero", options: { block: 8 } });
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    expect(r.json.command).toContain(`--roi-mask ${up.json.path} --label 1 --method zero`);
    expect((await events(v, r.json.id)).at(-1)).toEqual({ type: "state", state: "done" });
    const m = JSON.parse(readFileSync(join(r.json.out, "map.json"), "utf8"));
    expect(m.roi).toBe(`the structure of ${up.json.path} (label 1)`);
    const causal = m.units.find((u: { z: number; y: number; x: number }) => u.z === CAUSAL.z && u.y === CAUSAL.y && u.x === CAUSAL.x);
    expect(causal.effect).toBeCloseTo(-100, 6);
    // a drawn RoI must be a NIfTI file
    const png = await call(v, "/api/upload?name=roi.png&purpose=roi", new Uint8Array([1, 2, 3]));
    expect(png.status).toBe(400);
    expect(png.json.error).toBe("roi.png: a drawn volume RoI is a NIfTI file (.nii, .nii.gz)");
  });

  it("lists the volume results and opens one over the listed volume it was made from (by path, else by content)", async () => {
    const state = (await call(v, "/api/state")).json;
    const runs = state.volumeResults as string[];
    expect(runs.length).toBe(3);
    expect(state.results.map((x: { dir: string }) => x.dir)).not.toContain(runs[0]);
    const r = await call(v, `/api/volume-result?dir=${encodeURIComponent(runs[0])}`);
    const m = JSON.parse(readFileSync(join(runs[0], "map.json"), "utf8"));
    expect(r.json).toEqual({ dir: runs[0], method: "pdcr", roi: m.roi, valueUnits: m.valueUnits, image });
    expect(m.roi).toContain("10..13");
    // the CLI's folder, opened in a viewer that lists the same volume under another name: found by its content
    const copy = join(tmp(), "same-volume.nii.gz");
    copyFileSync(image, copy);
    const w = await startViewServer({ image: copy, results: join(dir, "cli"), runs: join(dir, "runs-results") });
    try {
      const listed = (await call(w, "/api/state")).json.volumeResults;
      expect(listed).toEqual([join(dir, "cli", "pdcr")]);
      expect((await call(w, `/api/volume-result?dir=${encodeURIComponent(listed[0])}`)).json.image).toBe(copy);
      const notOne = await call(w, `/api/volume-result?dir=${encodeURIComponent(join(dir, "cli"))}`);
      expect(notOne.status).toBe(400);
      expect(notOne.json.error).toContain("map.json is missing");
    } finally {
      await w.close();
    }
  });

  it("without a volume data set, pdcr on a volume is refused in one line naming the flags that give it", async () => {
    const w = await startViewServer({ model, image, runs: join(dir, "runs-nodata") });
    try {
      const line =
        "pdcr on a volume needs a volume bank: start segcause view with --dataset <volume manifest.json> (the bank is cut from its train split) or --bank <file.scvbank>";
      expect((await call(w, "/api/state")).json.volumePdcrUnavailable).toBe(line);
      const r = await call(w, "/api/runs", { model, image, roiBox: BOX, method: "pdcr", options: { block: 8 } });
      expect(r.status).toBe(400);
      expect(r.json.error).toBe(line);
    } finally {
      await w.close();
    }
  });
});
