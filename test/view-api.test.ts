/**
 * `segcause view`'s API on a tiny model whose causal block is known: a run streams progress and ends
 * with the known map, writes the folder the CLI writes for the same command, runs of one model wait
 * their turn, Stop stops, and bad requests get one clear line.
 */
import { spawn } from "node:child_process";
import { copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, watch, writeFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadMask } from "../src/data/image.js";
import { csvRecords } from "../src/evaluate/html.js";
import { getMethod } from "../src/explain/catalog.js";
import { kebab } from "../src/explain/methods.js";
import { ZOO_PACKAGE } from "../src/model/bundled.js";
import { packBits } from "../src/view/predict.js";
import { explainArgs } from "../src/view/request.js";
import type { RunEvent, RunInfo } from "../src/view/runs.js";
import { startViewServer, UPLOAD_LIMIT, type ViewServer } from "../src/view/server.js";
import { causalFixture, runNode, segcause, spatialComponents } from "./helpers/cli.js";
import { copyChannelModel, flatBank, tmp, writeImage, writeMask, writeModel } from "./helpers/tiny.js";
import { viewCall } from "./helpers/view.js";

let fx: Awaited<ReturnType<typeof causalFixture>>;
let v: ViewServer;
let base: string;

beforeAll(async () => {
  fx = await causalFixture();
  v = await startViewServer({ model: fx.model, image: fx.image, bank: fx.bank, runs: join(fx.dir, "runs") });
  base = `http://127.0.0.1:${v.port}`;
});

afterAll(async () => {
  await v?.close();
});

// biome-ignore lint/suspicious/noExplicitAny: the server's JSON, each field checked by the assertion that reads it
type Json = any;

const call = (path: string, body?: unknown, headers: Record<string, string> = {}) => viewCall(v, path, body, { headers });

/** The run's events as the page receives them (server-sent events), until it ends. */
async function events(id: string): Promise<RunEvent[]> {
  const res = await fetch(`${base}/api/runs/${id}/events?token=${v.token}`);
  expect(res.headers.get("content-type")).toBe("text/event-stream");
  const text = await res.text();
  return text
    .split("\n\n")
    .filter((b) => b.includes("data: "))
    .map((b) => JSON.parse(b.slice(b.indexOf("data: ") + 6)) as RunEvent);
}

/** The server's base64 float32 map as numbers. */
function floats(b64: string): Float32Array {
  const b = Buffer.from(b64, "base64");
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

const ROI = { row: 16, col: 0, height: 8, width: 8 };

/** The server's bits (8 a byte, most significant first) as 0/1 values. */
function unpack(b64: string, n: number): Uint8Array {
  const bytes = Buffer.from(b64, "base64");
  return Uint8Array.from({ length: n }, (_, p) => (bytes[p >> 3] >> (7 - (p & 7))) & 1);
}

describe("segcause view API", () => {
  it("runs zero ablation: progress arrives as server-sent events and the map is the model's causal block", async () => {
    const r = await call("/api/runs", { model: fx.model, image: fx.image, roi: ROI, method: "zero" });
    expect(r.status).toBe(200);
    const info = r.json as RunInfo;
    expect(info.command).toBe(`segcause explain --model ${fx.model} --image ${fx.image} --roi 16,0,8,8 --method zero --seed 0 --out ${info.out}`);
    const ev = await events(info.id);
    const progress = ev.filter((e) => e.type === "progress");
    expect(progress.length).toBeGreaterThan(0);
    const last = progress.at(-1)!.status;
    // one pass per 8x8 block of the 32x32 image (the unperturbed pass is not a stage of its own)
    expect(last.done).toBe(16);
    expect(last.total).toBe(last.done);
    expect(ev.filter((e) => e.type === "state").map((e) => e.state)).toEqual(["queued", "running", "done"]);
    const res = await call(`/api/result?dir=${encodeURIComponent(info.out)}`);
    expect(res.status).toBe(200);
    // the listed model and image it was made from, found by content, so the page draws the map over them
    expect(res.json.match).toEqual({ model: fx.model, image: fx.image });
    // The model reads only the 16x16 region at (0,16): blanking its four blocks lowers the RoI's Dice, no other block matters.
    const units = res.json.mapInfo.units as { row: number; col: number; effect: number }[];
    expect(units.filter((u) => u.effect < 0).map((u) => `${u.row},${u.col}`)).toEqual(["0,16", "0,24", "8,16", "8,24"]);
    expect(units.filter((u) => u.effect > 0)).toEqual([]);
    const map = floats(res.json.map);
    expect(map.length).toBe(32 * 32);
    expect(map[4 * 32 + 20]).toBeLessThan(0);
    expect(map[20 * 32 + 4]).toBe(0);
  });

  it("writes the same output folder as the CLI for the same command and seed (pdcr, sampled)", async () => {
    const r = await call("/api/runs", { model: fx.model, image: fx.image, bank: fx.bank, roi: ROI, method: "pdcr", seed: 7 });
    const info = r.json as RunInfo;
    expect((await events(info.id)).at(-1)).toEqual({ type: "state", state: "done" });
    const cliOut = join(fx.dir, "cli-pdcr");
    const cli = segcause(
      "explain",
      "--model",
      fx.model,
      "--image",
      fx.image,
      "--roi",
      "16,0,8,8",
      "--method",
      "pdcr",
      "--seed",
      "7",
      "--bank",
      fx.bank,
      "--out",
      cliOut,
      "--no-progress",
    );
    expect(cli.stderr).toBe("");
    expect(cli.code).toBe(0);
    // Byte for byte, except the wall time (in stats.json and printed on summary.png).
    for (const f of ["map.npy", "stderr.npy", "map.json", "heatmap.png", "overlay.png", "heatmap-input.png", "overlay-input.png"])
      expect(readFileSync(join(info.out, f)).equals(readFileSync(join(cliOut, f))), f).toBe(true);
    const stats = (dir: string) => ({ ...JSON.parse(readFileSync(join(dir, "stats.json"), "utf8")), wallMs: 0 });
    expect(stats(info.out)).toEqual(stats(cliOut));
    const manifest = (dir: string) => {
      const m = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8"));
      // when and how long, and the execution probe (cached or not), are the only differences allowed
      delete m.wallMs;
      delete m.provenance.createdAt;
      m.notes = m.notes.filter((n: string) => !n.startsWith("execution "));
      return m;
    };
    expect(manifest(info.out)).toEqual(manifest(cliOut));
  });

  it("streams the fast schedule's map round by round: the partial maps change, and the last is the map the CLI writes", async () => {
    // Patches of graded brightness: each round's draws move the causal blocks' means, so the map changes from round to round.
    const bank = join(fx.dir, "graded.scbank");
    await flatBank([10, 40, 70, 100, 130, 160, 190, 220, 230, 240, 250, 255]).save(bank);
    const options = { "map-noise": 0.05 };
    const r = await call("/api/runs", { model: fx.model, image: fx.image, bank, roi: ROI, method: "pdcr", seed: 7, options });
    const info = r.json as RunInfo;
    const ev = await events(info.id);
    expect(ev.at(-1)).toEqual({ type: "state", state: "done" });
    const partials = ev.flatMap((e) => (e.type === "partial" && "units" in e.map ? [e.map] : []));
    expect(partials.length).toBe(ev.filter((e) => e.type === "partial").length);
    // every partial comes before the run's end, each after more passes than the one before
    expect(ev.findIndex((e) => e.type === "done")).toBeGreaterThan(ev.map((e) => e.type).lastIndexOf("partial"));
    for (let i = 1; i < partials.length; i++) expect(partials[i].passes).toBeGreaterThan(partials[i - 1].passes);
    const effects = partials.map((p) => JSON.stringify(p.units.map((u) => u.effect)));
    expect(new Set(effects).size).toBeGreaterThanOrEqual(2);
    // the causal blocks fill in (negative: they supported the RoI); the others stay 0
    for (const p of partials) expect(p.units.filter((u) => u.effect !== 0).map((u) => `${u.row},${u.col}`)).toEqual(["0,16", "0,24", "8,16", "8,24"]);
    // The last partial map is the result, which is the map `segcause explain` writes for the same command.
    const cliOut = join(fx.dir, "cli-pdcr-graded");
    const cli = segcause(
      "explain",
      ...explainArgs({ model: fx.model, image: fx.image, bank, roi: ROI, method: "pdcr", seed: 7, options }, cliOut),
      "--no-progress",
    );
    expect(cli.code, cli.stderr).toBe(0);
    for (const f of ["map.npy", "stderr.npy", "map.json"])
      expect(readFileSync(join(info.out, f)).equals(readFileSync(join(cliOut, f))), f).toBe(true);
    const written = JSON.parse(readFileSync(join(cliOut, "map.json"), "utf8")).units as Record<string, unknown>[];
    const last = partials.at(-1)!;
    expect(last.units).toEqual(written.map((u) => Object.fromEntries(Object.keys(last.units[0]).map((k) => [k, u[k]]))));
    expect(last.passes).toBe(JSON.parse(readFileSync(join(cliOut, "stats.json"), "utf8")).forwardPasses);
  });

  it("runs one run at a time per model, in order; Stop ends a queued run before it starts and a running one as Ctrl-C does", async () => {
    const slow = { model: fx.model, image: fx.image, roi: ROI, method: "rise", options: { masks: 400000 } };
    const first = (await call("/api/runs", slow)).json as RunInfo;
    const second = (await call("/api/runs", { model: fx.model, image: fx.image, roi: ROI, method: "zero" })).json as RunInfo;
    const log: string[] = [];
    for (const info of [first, second]) v.queue.get(info.id)!.listen((e) => e.type === "state" && log.push(`${info.id} ${e.state}`));
    expect(log).toEqual([`${first.id} queued`, `${first.id} running`, `${second.id} queued`]);
    const stopQueued = await call(`/api/runs/${second.id}/stop`, {});
    expect(stopQueued.json.state).toBe("stopped");
    // The running one is stopped once it has made progress (its progress events arrive first).
    const firstEvents = fetch(`${base}/api/runs/${first.id}/events?token=${v.token}`).then((r) => r.text());
    await new Promise<void>((ok, ko) => {
      const off = v.queue.get(first.id)!.listen((e) => {
        if (e.type === "state" && e.state !== "running" && e.state !== "queued")
          ko(new Error(`the run ended (${e.state}: ${e.message}) before it could be stopped`));
        if (e.type === "progress" && e.status.done > 1) {
          queueMicrotask(() => off());
          ok();
        }
      });
    });
    expect((await call(`/api/runs/${first.id}/stop`, {})).status).toBe(200);
    const text = await firstEvents;
    expect(text).toContain('"state":"stopped"');
    expect(log).toEqual([`${first.id} queued`, `${first.id} running`, `${second.id} queued`, `${second.id} stopped`, `${first.id} stopped`]);
    // No result that looks complete: the stopped run's folder has no manifest, the queued one never made a folder.
    expect((await call(`/api/result?dir=${encodeURIComponent(first.out)}`)).status).toBe(400);
    expect((await call(`/api/result?dir=${encodeURIComponent(second.out)}`)).json.error).toContain("does not exist");
  });

  it("checks method options as the CLI does: the form's fields are the catalogue's, a bad value gets the CLI's line, a set one reaches the provenance", async () => {
    // the page's form: each method's options as the method declares them (the catalogue the CLI reads)
    const state = (await call("/api/state")).json;
    for (const name of ["zero", "occlusion", "pdcr"]) {
      const def = getMethod(name);
      const fields = state.methods.find((m: { name: string }) => m.name === name).options as {
        name: string;
        type: string;
        default?: string;
        choices?: string[];
      }[];
      expect(fields.map((f) => [f.name, f.type, f.choices])).toEqual(def.options.map((o) => [kebab(o.name), o.type, o.choices]));
      expect(fields.map((f) => f.default)).toEqual(def.options.map((o) => (o.default === undefined ? undefined : String(o.default))));
    }
    const ask = (method: string, options: Record<string, number | string>, path = "/api/runs") =>
      call(path, { model: fx.model, image: fx.image, roi: ROI, method, options });
    // a bad value: the same line as `segcause explain` prints for the same flag, from the run and from the preview
    const cases: [string, Record<string, number | string>, string][] = [
      ["zero", { block: 0 }, "--block=0"],
      ["zero", { block: 1.5 }, "--block=1.5"],
      ["occlusion", { "fill-kind": "bogus" }, "--fill-kind=bogus"],
      ["occlusion", { sigma: 2 }, "--sigma=2"],
    ];
    const before = readdirSync(join(fx.dir, "runs")).length;
    for (const [method, options, flag] of cases) {
      const cli = segcause(
        "explain",
        "--model",
        fx.model,
        "--image",
        fx.image,
        "--roi",
        "16,0,8,8",
        "--method",
        method,
        flag,
        "--out",
        join(fx.dir, "cli-bad"),
      );
      expect(cli.code).toBe(1);
      const line = cli.stderr.trim().replace(/^segcause: error: /, "");
      for (const path of ["/api/runs", "/api/runs/preview"]) {
        const r = await ask(method, options, path);
        expect(r.status, flag).toBe(400);
        expect(r.json.error).toBe(line);
      }
    }
    expect(readdirSync(join(fx.dir, "runs")).length).toBe(before);
    // a good value: the preview is the command the run then shows (but for the folder's time), and writes nothing
    const pre = await ask("zero", { block: 16, tau: 0.5 }, "/api/runs/preview");
    expect(pre.status).toBe(200);
    expect(readdirSync(join(fx.dir, "runs")).length).toBe(before);
    const run = (await ask("zero", { block: 16, tau: 0.5 })).json as RunInfo;
    const cut = (c: string) => c.replace(/ --out \S+$/, "");
    expect(cut(pre.json.command)).toBe(cut(run.command));
    expect(run.command).toContain(" --block=16 --tau=0.5 --out ");
    expect((await events(run.id)).at(-1)).toEqual({ type: "state", state: "done" });
    // zero's defaults are block 8 and tau 0.02: both set values are the run's settings
    expect(JSON.parse(readFileSync(join(run.out, "manifest.json"), "utf8")).provenance.settings).toMatchObject({ blockSize: 16, tau: 0.5 });
  });

  it("refuses bad requests with 400 and one line: a path outside, ../, an unknown method, malformed JSON, a bad RoI", async () => {
    const cases: [unknown, string][] = [
      [{ model: "/etc/hostname", image: fx.image, roi: ROI, method: "zero" }, "outside the folders this viewer was started with"],
      [{ model: fx.model, image: join(fx.dir, "..", "..", "etc", "hostname"), roi: ROI, method: "zero" }, "outside the folders"],
      [{ model: fx.model, image: fx.image, roi: ROI, method: "magic" }, "method: unknown method (known: pdcr, zero"],
      ["{ not json", "malformed JSON body"],
      [{ model: fx.model, image: fx.image, roi: { row: 0, col: 0, height: 0, width: 4 }, method: "zero" }, "roi.height:"],
      [{ model: fx.model, image: fx.image, roi: ROI, method: "zero", extra: 1 }, "extra"],
      // a request sets method options only: not the model, the output folder or any other flag
      [{ model: fx.model, image: fx.image, roi: ROI, method: "zero", options: { out: "/tmp/elsewhere" } }, "options.out: not a method option"],
      [{ model: fx.model, image: fx.image, roi: ROI, method: "zero", options: { model: "/etc/hostname" } }, "options.model: not a method option"],
      [{ model: fx.model, image: fx.image, roi: ROI, method: "zero", options: { block: "--out" } }, "options.block: a number or a word"],
      // the shipped 3D model (the package's models/ folder is offered) runs on volumes, not on a 2D image
      [
        { model: join(import.meta.dirname, "..", "models", "volumes", "unet3d-hippocampus.onnx"), image: fx.image, roi: ROI, method: "zero" },
        "is a 3D model and",
      ],
    ];
    for (const [body, message] of cases) {
      const r = await call("/api/runs", body);
      expect(r.status, message).toBe(400);
      expect(r.json.error).toContain(message);
      expect(r.json.error).not.toContain("\n");
    }
    // An option the method does not have is refused at once with the CLI's line (the method's own declaration).
    const refused = await call("/api/runs", { model: fx.model, image: fx.image, roi: ROI, method: "zero", options: { samples: 3 } });
    expect(refused.status).toBe(400);
    expect(refused.json.error).toMatch(/^--samples is not an option of method zero \(it belongs to: pdcr, /);
    // What needs the model (a block larger than its 32×32 input) is checked in the run, as the CLI checks it, and fails the run.
    const r = await call("/api/runs", { model: fx.model, image: fx.image, roi: ROI, method: "zero", options: { block: 64 } });
    const ev = await events(r.json.id);
    expect(ev.at(-1)).toMatchObject({ type: "state", state: "failed" });
    expect((ev.at(-1) as { message: string }).message).toMatch(/--block 64: the block does not fit the 32x32 input/);
    // a run that failed before writing anything leaves no folder that looks like a run
    expect(existsSync(r.json.out)).toBe(false);
    expect((await call(`/api/image?path=${encodeURIComponent("/etc/passwd")}`)).status).toBe(400);
  });

  it("requires the token and refuses other origins", async () => {
    expect((await fetch(`${base}/api/state`)).status).toBe(403);
    expect((await call("/api/state", undefined, { "x-segcause-token": "wrong" })).status).toBe(403);
    expect((await call("/api/state", undefined, { origin: "http://evil.example" })).status).toBe(403);
    const ok = await call("/api/state");
    expect(ok.status).toBe(200);
    expect(ok.json.models[0]).toMatchObject({ path: fx.model, description: "given with --model" });
  });

  it("shows the model's prediction over the image at the model's input size", async () => {
    const r = await call("/api/predict", { model: fx.model, image: fx.image });
    expect(r.status).toBe(200);
    // bright image: the region's mean gives sigmoid(50·mean − 40) > 0.5 everywhere
    expect(r.json).toMatchObject({ width: 32, height: 32, area: 32 * 32 });
    expect(r.json.image).toMatch(/^data:image\/png;base64,/);
    // the binarised prediction as bits, from which the page picks a connected component as a RoI
    const fg = r.json.foreground as { height: number; width: number; bits: string };
    expect([fg.height, fg.width]).toEqual([32, 32]);
    expect(unpack(fg.bits, 32 * 32).reduce((a, v) => a + v, 0)).toBe(r.json.area);
  });

  it("takes a RoI mask: the run's command names it as --roi-mask (a PNG kept by content) and the map is the causal block's", async () => {
    // the RoI block 16,0,8,8 as a mask
    const mask = new Uint8Array(32 * 32);
    for (let y = 16; y < 24; y++) mask.fill(1, y * 32, y * 32 + 8);
    const roiMask = { height: 32, width: 32, bits: packBits(mask).toString("base64") };
    const r = await call("/api/runs", { model: fx.model, image: fx.image, roiMask, method: "zero" });
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    const info = r.json as RunInfo;
    const file = /--roi-mask (\S+)/.exec(info.command)![1];
    expect(file).toMatch(/\/runs\/roi-masks\/[0-9a-f]{16}\.png$/);
    expect(await loadMask(file, 32, 32)).toEqual(mask);
    expect((await events(info.id)).at(-1)).toEqual({ type: "state", state: "done" });
    const res = await call(`/api/result?dir=${encodeURIComponent(info.out)}`);
    const units = res.json.mapInfo.units as { row: number; col: number; effect: number }[];
    expect(units.filter((u) => u.effect < 0).map((u) => `${u.row},${u.col}`)).toEqual(["0,16", "0,24", "8,16", "8,24"]);
    expect(res.json.mapInfo.roi).toEqual(ROI);
    // the same mask again is the same file
    const again = (await call("/api/runs", { model: fx.model, image: fx.image, roiMask, method: "zero" })).json as RunInfo;
    expect(/--roi-mask (\S+)/.exec(again.command)![1]).toBe(file);
    await events(again.id);
    // a bad mask is one line
    const cases: [unknown, string][] = [
      [
        { model: fx.model, image: fx.image, roiMask: { ...roiMask, bits: "AAAA" }, method: "zero" },
        "roiMask.bits: 3 bytes for 32×32 pixels (expected 128)",
      ],
      [
        { model: fx.model, image: fx.image, roiMask: { ...roiMask, bits: packBits(new Uint8Array(1024)).toString("base64") }, method: "zero" },
        "no pixel is in the RoI",
      ],
      [
        {
          model: fx.model,
          image: fx.image,
          roiMask: { ...roiMask, bits: packBits(new Uint8Array(1024).fill(1)).toString("base64") },
          method: "zero",
        },
        "every pixel",
      ],
      [{ model: fx.model, image: fx.image, roi: ROI, roiMask, method: "zero" }, "give the RoI as one of roi (a rectangle), roiMask (a mask), roiBox"],
      [{ model: fx.model, image: fx.image, method: "zero" }, "give the RoI as one of roi (a rectangle), roiMask (a mask), roiBox"],
      [{ model: fx.model, image: fx.image, roiMask: { ...roiMask, bits: "not base64!" }, method: "zero" }, "roiMask.bits: base64"],
    ];
    for (const [body, message] of cases) {
      const bad = await call("/api/runs", body);
      expect(bad.status, message).toBe(400);
      expect(bad.json.error).toContain(message);
    }
  });
});

describe("segcause view --dataset", () => {
  it("lists a manifest's cases as images (its own folder and the folders it names allowed), and predicts on one", async () => {
    const dir = tmp();
    const other = join(tmp(), "images");
    mkdirSync(other);
    const a = await writeImage(dir, "a.png", () => 230);
    const beside = await writeImage(join(other, ".."), "beside.png", () => 230);
    const b = await writeImage(other, "b.png", () => 20);
    writeFileSync(
      join(dir, "manifest.json"),
      JSON.stringify({
        name: "tiny",
        cases: [
          { id: "a", image: "a.png", split: "val" },
          { id: "b", image: b, split: "test" },
        ],
      }),
    );
    const d = await startViewServer({ model: fx.model, dataset: dir, runs: join(dir, "runs") });
    try {
      const get = (path: string, body?: unknown) =>
        fetch(`http://127.0.0.1:${d.port}${path}`, {
          method: body ? "POST" : "GET",
          headers: { "x-segcause-token": d.token },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
      const state = await (await get("/api/state")).json();
      expect(state.images.filter((i: { group?: string }) => i.group === "data set tiny")).toEqual([
        { name: "a (val)", path: a, group: "data set tiny" },
        { name: "b (test)", path: b, group: "data set tiny" },
      ]);
      const pr = await get("/api/predict", { model: fx.model, image: b });
      expect(pr.status).toBe(200);
      expect((await pr.json()).area).toBe(0);
      // the folders the manifest names, not their parent
      const outside = await get("/api/predict", { model: fx.model, image: beside });
      expect(outside.status).toBe(400);
      expect((await outside.json()).error).toContain("outside the folders this viewer was started with");
    } finally {
      await d.close();
    }
  });

  it("lists the PH2 data set's 200 cases (../shared/data)", async (t) => {
    const ph2 = join(import.meta.dirname, "..", "..", "shared", "data", "ph2");
    if (!existsSync(join(ph2, "manifest.json"))) return t.skip(`${ph2} is absent (the shared data sets), so the real-data listing is not checked`);
    const d = await startViewServer({ dataset: ph2, runs: join(tmp(), "runs") });
    try {
      const state = await (await fetch(`http://127.0.0.1:${d.port}/api/state`, { headers: { "x-segcause-token": d.token } })).json();
      const cases = state.images.filter((i: { group?: string }) => i.group === "data set ph2");
      expect(cases).toHaveLength(200);
      expect(cases.every((c: { path: string }) => existsSync(c.path))).toBe(true);
    } finally {
      await d.close();
    }
  });
});

describe("segcause view --results", () => {
  it("lists and opens explain and components results folders written by the CLI; a folder that is not one is refused", async () => {
    const results = join(fx.dir, "cli-results");
    const out = join(results, "zero-run");
    const comp = join(results, "components-run");
    expect(
      segcause("explain", "--model", fx.model, "--image", fx.image, "--roi", "16,0,8,8", "--method", "zero", "--out", out, "--no-progress").code,
    ).toBe(0);
    const c = segcause(
      "components",
      "--model",
      fx.model,
      "--image",
      fx.image,
      "--roi",
      "16,0,8,8",
      "--ablation",
      "zero",
      "--out",
      comp,
      "--no-progress",
    );
    expect(c.stderr).toBe("");
    const w = await startViewServer({ results, runs: join(fx.dir, "runs-2") });
    try {
      const get = async (path: string) => {
        const res = await fetch(`http://127.0.0.1:${w.port}${path}`, { headers: { "x-segcause-token": w.token } });
        return { status: res.status, json: (await res.json()) as Json };
      };
      expect((await get("/api/state")).json.results).toEqual([
        { dir: comp, kind: "components" },
        { dir: out, kind: "explain" },
      ]);
      const cr = (await get(`/api/result?dir=${encodeURIComponent(comp)}`)).json;
      const written = JSON.parse(readFileSync(join(comp, "components.json"), "utf8"));
      expect(cr).toMatchObject({ kind: "components", level: written.level, ablation: "zero" });
      expect(cr.units.map((u: { name: string; effect: number }) => [u.name, u.effect])).toEqual(
        written.units.map((u: { name: string; effect: number }) => [u.name, u.effect]),
      );
      expect(cr.pictures).toContain("components.png");
      const png = await fetch(`http://127.0.0.1:${w.port}/api/image?path=${encodeURIComponent(join(comp, "components.png"))}&token=${w.token}`);
      expect(Buffer.from(await png.arrayBuffer()).equals(readFileSync(join(comp, "components.png")))).toBe(true);
      const r = await get(`/api/result?dir=${encodeURIComponent(out)}`);
      expect(r.json).toMatchObject({ kind: "explain", method: "zero", width: 32, height: 32 });
      expect(r.json.mapInfo).toEqual(JSON.parse(readFileSync(join(out, "map.json"), "utf8")));
      const map = floats(r.json.map);
      expect(Buffer.from(map.buffer).equals(readFileSync(join(out, "map.npy")).subarray(-map.byteLength))).toBe(true);
      const notResult = await get(`/api/result?dir=${encodeURIComponent(results)}`);
      expect(notResult.status).toBe(400);
      expect(notResult.json.error).toContain("is not a complete explain, components or evaluate result");
    } finally {
      await w.close();
    }
  });

  it("opens a spatial components result with its maps and the image its provenance names (found by content)", async () => {
    // copyChannelModel: only the feature cell under the RoI decides
    const dir = tmp();
    const model = writeModel(dir, "copy.onnx", copyChannelModel());
    const image = await writeImage(dir, "bright.png", () => 200, 16);
    // the image listed under another name: the result is matched by content, not by the path it recorded
    const listed = join(dir, "listed", "same.png");
    mkdirSync(join(dir, "listed"));
    copyFileSync(image, listed);
    const comp = join(dir, "results", "spatial-run");
    expect(spatialComponents(model, image, comp).stderr).toBe("");
    const w = await startViewServer({ image: listed, results: join(dir, "results"), runs: join(dir, "runs") });
    try {
      const res = await fetch(`http://127.0.0.1:${w.port}/api/result?dir=${encodeURIComponent(comp)}`, { headers: { "x-segcause-token": w.token } });
      const cr = (await res.json()) as Json;
      expect(cr).toMatchObject({ kind: "components", level: "spatial", spatial: ["spatial-0-feat.png"], match: { image: listed } });
      expect(cr.units).toHaveLength(16);
      expect(cr.units[0].effect).toBeCloseTo(-100, 6);
      for (const u of cr.units.slice(1)) expect(u.effect).toBe(0);
      const png = await fetch(`http://127.0.0.1:${w.port}/api/image?path=${encodeURIComponent(join(comp, cr.spatial[0]))}&token=${w.token}`);
      expect(Buffer.from(await png.arrayBuffer()).equals(readFileSync(join(comp, cr.spatial[0])))).toBe(true);
    } finally {
      await w.close();
    }
    // an image the server does not list is no match (the page then draws the maps alone)
    const alone = await startViewServer({ results: join(dir, "results"), runs: join(dir, "runs-2") });
    try {
      const res = await fetch(`http://127.0.0.1:${alone.port}/api/result?dir=${encodeURIComponent(comp)}`, {
        headers: { "x-segcause-token": alone.token },
      });
      expect(((await res.json()) as Json).match).toEqual({});
    } finally {
      await alone.close();
    }
  });

  it("opens an evaluate folder (the published results): its commands, and its report.html served sandboxed", async () => {
    const published = join(import.meta.dirname, "..", "docs", "results");
    const w = await startViewServer({ results: published, runs: join(fx.dir, "runs-3") });
    try {
      const headers = { "x-segcause-token": w.token };
      const state = (await (await fetch(`http://127.0.0.1:${w.port}/api/state`, { headers })).json()) as Json;
      expect(state.results).toEqual([{ dir: published, kind: "evaluate" }]);
      const r = (await (await fetch(`http://127.0.0.1:${w.port}/api/result?dir=${encodeURIComponent(published)}`, { headers })).json()) as Json;
      expect(r.kind).toBe("evaluate");
      expect(r.commands).toEqual(expect.arrayContaining(JSON.parse(readFileSync(join(published, "run.json"), "utf8")).commands));
      const report = await fetch(`http://127.0.0.1:${w.port}/api/report?dir=${encodeURIComponent(published)}`, { headers });
      expect(report.headers.get("content-security-policy")).toBe("sandbox");
      expect((await report.text()) === readFileSync(join(published, "report.html"), "utf8")).toBe(true);
      const notEval = await fetch(`http://127.0.0.1:${w.port}/api/report?dir=${encodeURIComponent(join(published, "plots"))}`, { headers });
      expect(notEval.status).toBe(400);
      // The numbers behind the page's filters, from the folder's tables and cells (not the HTML).
      const data = (await (await fetch(`http://127.0.0.1:${w.port}/api/evaluate?dir=${encodeURIComponent(published)}`, { headers })).json()) as Json;
      const summary = csvRecords(readFileSync(join(published, "summary.csv"), "utf8")).filter(
        (r) => r.scope === "model" && /^(del_auc|ins_auc|del_norm|ins_norm):/.test(r.metric),
      );
      expect(data.summary).toHaveLength(summary.length);
      expect(data.summary[0]).toEqual([
        summary[0].dataset,
        summary[0].model,
        summary[0].method,
        summary[0].metric,
        Number(summary[0].mean),
        Number(summary[0].mean_ci95_low),
        Number(summary[0].mean_ci95_high),
        Number(summary[0].n),
      ]);
      expect(data.fills).toEqual(["blur", "mean", "patches", "zero"]);
      // A group's curves average its cells: as many as cells.csv has with that fill's deletion AUC, and the deletion
      // curve starts at their mean base outcome (nothing removed yet).
      const cells = csvRecords(readFileSync(join(published, "cells.csv"), "utf8"));
      for (const g of data.curves.slice(0, 5) as { dataset: string; model: string; method: string; fill: string; n: number; deletion: number[] }[]) {
        const mine = cells.filter((c) => c.dataset === g.dataset && c.model === g.model && c.method === g.method && c[`del_auc:${g.fill}`] !== "");
        expect(g.n).toBe(mine.length);
        expect(g.deletion[0]).toBeCloseTo(mine.reduce((a, c) => a + Number(c.base_outcome), 0) / mine.length, 6);
      }
      // The statistics tables, filtered on the server: the same rows as the files, selected here from them
      expect(data.tables).toEqual(["pairs.csv", "ranks.csv", "strategies/models.csv", "strategies/model-pairs.csv"]);
      const table = async (name: string, q: string) =>
        (await (
          await fetch(`http://127.0.0.1:${w.port}/api/evaluate-table?dir=${encodeURIComponent(published)}&table=${encodeURIComponent(name)}&${q}`, {
            headers,
          })
        ).json()) as Json;
      const pairs = csvRecords(readFileSync(join(published, "pairs.csv"), "utf8"));
      const model = pairs[0].model;
      const method = pairs[0].a;
      const want = pairs.filter((r) => r.model === model && (r.a === method || r.b === method) && r.metric.endsWith(":zero"));
      const got = await table("pairs.csv", `model=${model}&method=${method}&fill=zero`);
      expect(want.length).toBeGreaterThan(0);
      expect(got.total).toBe(want.length);
      expect(got.rows.slice(0, 3)).toEqual(want.slice(0, 3).map((r) => got.columns.map((c: string) => r[c])));
      expect((await table("pairs.csv", "")).total).toBe(pairs.length);
      expect((await table("pairs.csv", "")).rows).toHaveLength(300);
      const ranks = csvRecords(readFileSync(join(published, "ranks.csv"), "utf8"));
      expect((await table("ranks.csv", `method=${method}&fill=blur`)).total).toBe(
        ranks.filter((r) => r.method === method && r.metric.endsWith(":blur")).length,
      );
      const strat = csvRecords(readFileSync(join(published, "strategies", "model-pairs.csv"), "utf8"));
      expect((await table("strategies/model-pairs.csv", `model=${model}`)).total).toBe(strat.filter((r) => r.a === model || r.b === model).length);
      const badTable = await fetch(`http://127.0.0.1:${w.port}/api/evaluate-table?dir=${encodeURIComponent(published)}&table=../run.json`, {
        headers,
      });
      expect(badTable.status).toBe(400);
      expect((await badTable.json()).error).toContain("no table ../run.json in the viewer");
      const notEvalData = await fetch(`http://127.0.0.1:${w.port}/api/evaluate?dir=${encodeURIComponent(join(published, "plots"))}`, { headers });
      expect((await notEvalData.json()).error).toContain("is not an evaluate folder");
    } finally {
      await w.close();
    }
  });

  it("lists an evaluate folder's cells with a map by model and method, and serves a cell's map with the image it explains", async () => {
    const data = join(fx.dir, "eval-data");
    mkdirSync(data);
    for (const [id, v] of [
      ["a", 230],
      ["b", 200],
    ] as const) {
      await writeImage(data, `${id}.png`, () => v);
      await writeMask(data, `${id}-mask.png`, (y) => y >= 16);
    }
    const manifest = join(data, "manifest.json");
    writeFileSync(
      manifest,
      JSON.stringify({ name: "tiny", cases: ["a", "b"].map((id) => ({ id, image: `${id}.png`, mask: `${id}-mask.png`, split: "test" })) }),
    );
    const out = join(fx.dir, "eval-out");
    const e = segcause(
      "evaluate",
      "--models",
      fx.model,
      "--dataset",
      manifest,
      "--methods",
      "zero",
      "--rois",
      "inside:8x2",
      "--fills",
      "zero",
      "--no-progress",
      "--out",
      out,
    );
    expect(e.code, e.stderr).toBe(0);
    const w = await startViewServer({ dataset: manifest, results: out, runs: join(fx.dir, "runs-cells") });
    try {
      const get = async (path: string) => {
        const res = await fetch(`http://127.0.0.1:${w.port}${path}`, { headers: { "x-segcause-token": w.token } });
        return { status: res.status, json: (await res.json()) as Json };
      };
      const q = (o: Record<string, string>) => new URLSearchParams({ dir: out, ...o }).toString();
      const records = readFileSync(join(out, "cells.jsonl"), "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l));
      const list = (await get(`/api/evaluate-cells?${q({ model: "causal", method: "zero" })}`)).json;
      expect(list.total).toBe(records.length);
      expect(list.cells).toEqual(records.map((r) => ({ ...r.id, method: r.method })));
      expect((await get(`/api/evaluate-cells?${q({ method: "rise" })}`)).json).toEqual({ total: 0, cells: [] });
      const b = list.cells.find((c: { image: string }) => c.image === "b");
      const cell = (await get(`/api/evaluate-cell?${q(b)}`)).json;
      const at = join(out, "cells", b.dataset, b.model, b.image, b.roi, b.method);
      const map = floats(cell.map);
      expect(Buffer.from(map.buffer).equals(readFileSync(join(at, "map.npy")).subarray(-map.byteLength))).toBe(true);
      expect(cell).toMatchObject({ width: 32, height: 32, rect: JSON.parse(readFileSync(join(at, "attribution.json"), "utf8")).roi });
      // b.png, not a.png: the image is found by the content the cell's provenance records
      expect(cell.match).toEqual({ image: join(data, "b.png") });
      const missing = await get(`/api/evaluate-cell?${q({ ...b, roi: "nowhere" })}`);
      expect(missing.status).toBe(400);
      expect(missing.json.error).toContain("has no map for cell tiny/causal/b/nowhere/zero");
      const out_ = await get(`/api/evaluate-cell?${q({ ...b, dataset: "..", model: "..", image: "..", roi: ".." })}`);
      expect(out_.status).toBe(400);
    } finally {
      await w.close();
    }
  });

  it("takes an uploaded image (stored by content under the runs folder) and refuses one over the size limit", async () => {
    const bytes = readFileSync(fx.image);
    const up = await call("/api/upload?name=dropped.png", bytes as unknown as string, { "content-type": "image/png" });
    expect(up.status).toBe(200);
    expect(up.json.path.startsWith(join(fx.dir, "runs", "uploads"))).toBe(true);
    expect(readFileSync(up.json.path).equals(bytes)).toBe(true);
    expect((await call("/api/state")).json.images.map((i: { path: string }) => i.path)).toContain(up.json.path);
    expect((await call("/api/upload?name=notes.txt", "text")).json.error).toContain("is not an image");
    const big = await call("/api/upload?name=big.png", Buffer.alloc(UPLOAD_LIMIT + 1) as unknown as string);
    expect(big.status).toBe(413);
  });
});

describe("segcause view (CLI)", () => {
  it("prints its address and serves the page; a bad flag is one line", async () => {
    const bin = join(import.meta.dirname, "..", "bin", "segcause.js");
    const bad = runNode([bin, "view", "--port", "http"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim()).toBe(
      "segcause: error: --port must be an integer in 0..65535, got 'http' (e.g. --port 8080, or leave it out for a free port)",
    );
    const missing = runNode([bin, "view", "--model", join(tmp(), "none.onnx"), "--no-open"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/--model .*none.onnx does not exist/);
    const runs = join(tmp(), "runs");
    const child = spawn(process.execPath, [bin, "view", "--no-open", "--runs", runs], { stdio: ["ignore", "pipe", "pipe"] });
    try {
      const line = await new Promise<string>((ok, ko) => {
        let out = "";
        child.stdout.on("data", (d: Buffer) => {
          out += d.toString();
          if (out.includes("\n")) ok(out.split("\n")[0]);
        });
        child.on("exit", (code) => ko(new Error(`segcause view exited (${code}) before printing its address`)));
      });
      const url = new URL(/http:\/\/127\.0\.0\.1:\d+\/\?token=\S+/.exec(line)![0]);
      const page = await fetch(url);
      expect(await page.text()).toContain('<script type="module" src="app.js">');
      const state = await fetch(`${url.origin}/api/state`, { headers: { "x-segcause-token": url.searchParams.get("token")! } });
      expect((await state.json()).runsFolder).toBe(runs);
    } finally {
      child.kill("SIGTERM");
    }
  });
});

/** One line of a refusal: status 400 (or as given) and the message naming the problem. */
function refused(r: { status: number; json: Json }, message: string, status = 400): void {
  expect(r.status, message).toBe(status);
  expect(r.json.error).toContain(message);
  expect(r.json.error).not.toContain("\n");
}

/** A run's end, waited for on the server side (no event stream). */
function ended(id: string): Promise<RunEvent> {
  return new Promise((ok) => {
    const off = v.queue.get(id)!.listen((e) => {
      if (e.type === "state" && ["done", "failed", "stopped"].includes(e.state)) {
        queueMicrotask(() => off());
        ok(e);
      }
    });
  });
}

describe("segcause view: the hostile review's cases", () => {
  it("two runs asked for at once get two folders, each with its own complete result", async () => {
    const ask = () => call("/api/runs", { model: fx.model, image: fx.image, roi: ROI, method: "zero" });
    const [a, b] = (await Promise.all([ask(), ask()])).map((r) => r.json as RunInfo);
    expect(a.out).not.toBe(b.out);
    expect(await ended(a.id)).toEqual({ type: "state", state: "done" });
    expect(await ended(b.id)).toEqual({ type: "state", state: "done" });
    for (const info of [a, b]) expect((await call(`/api/result?dir=${encodeURIComponent(info.out)}`)).json.kind).toBe("explain");
  });

  it("a late subscriber to a finished run gets its events up to its end, and the server lives on", async () => {
    const failed = (await call("/api/runs", { model: fx.model, image: fx.image, roi: ROI, method: "zero", options: { block: 64 } })).json as RunInfo;
    expect((await ended(failed.id)).type).toBe("state");
    const done = (await call("/api/runs", { model: fx.model, image: fx.image, roi: ROI, method: "zero" })).json as RunInfo;
    await ended(done.id);
    for (const [info, last] of [
      [failed, "failed"],
      [done, "done"],
      [failed, "failed"],
    ] as const) {
      const ev = await events(info.id);
      expect(ev.filter((e) => e.type === "state").map((e) => e.state)).toEqual(["queued", "running", last]);
    }
    expect((await call("/api/state")).status).toBe(200);
  });

  it("refuses a __proto__ key instead of dropping it", async () => {
    const body = `{"model":${JSON.stringify(fx.model)},"image":${JSON.stringify(fx.image)},"roi":${JSON.stringify(ROI)},"method":"zero","options":{"__proto__":{"block":1}}}`;
    refused(await call("/api/runs", body), '"__proto__" is not a field or option name');
  });

  it("takes only uploads that decode as images, and caps the uploads folder", async () => {
    refused(await call("/api/upload?name=fake.png", "not a png at all"), "cannot decode image fake.png");
    const runs = join(fx.dir, "runs-cap");
    const w = await startViewServer({ runs, uploadsCap: { files: 1, bytes: UPLOAD_LIMIT } });
    try {
      const up = async (path: string) => {
        const res = await fetch(`http://127.0.0.1:${w.port}/api/upload?name=x.png`, {
          method: "POST",
          headers: { "x-segcause-token": w.token },
          body: readFileSync(path),
        });
        return { status: res.status, json: (await res.json()) as Json };
      };
      expect((await up(fx.image)).status).toBe(200);
      // the same image again is the same file: not one more
      expect((await up(fx.image)).status).toBe(200);
      const other = join(import.meta.dirname, "..", "samples", "lesion.png");
      refused(await up(other), "at most 1 images", 413);
      expect(readdirSync(join(runs, "uploads"))).toHaveLength(1);
    } finally {
      await w.close();
    }
  });

  it("symbolic links lead nowhere outside, and another Host (DNS rebinding) is refused", async () => {
    const link = join(fx.dir, "runs", "hostname.png");
    symlinkSync("/etc/hostname", link);
    try {
      refused(await call(`/api/image?path=${encodeURIComponent(link)}`), "is outside the folders this viewer was started with");
      refused(await call("/api/predict", { model: fx.model, image: link }), "is outside the folders");
    } finally {
      rmSync(link);
    }
    // fetch() sets Host itself: a raw request sends the rebound name
    const status = await new Promise<number>((ok, ko) => {
      const req = request(
        { host: "127.0.0.1", port: v.port, path: "/api/state", headers: { host: `evil.example:${v.port}`, "x-segcause-token": v.token } },
        (res) => {
          res.resume();
          ok(res.statusCode!);
        },
      );
      req.on("error", ko);
      req.end();
    });
    expect(status).toBe(403);
  });

  it("--host: another address answers its own Host and refuses others; the CLI warns that it is reachable from other machines", async () => {
    const statusOf = (port: number, token: string, host: string) =>
      new Promise<number>((ok, ko) => {
        const req = request({ host: "127.0.0.1", port, path: "/api/state", headers: { host, "x-segcause-token": token } }, (res) => {
          res.resume();
          ok(res.statusCode!);
        });
        req.on("error", ko);
        req.end();
      });
    const w = await startViewServer({ runs: join(fx.dir, "runs-host"), host: "0.0.0.0" });
    try {
      const shown = new URL(w.url);
      expect(shown.searchParams.get("token")).toBe(w.token);
      expect(await statusOf(w.port, w.token, shown.host)).toBe(200);
      expect(await statusOf(w.port, w.token, `127.0.0.1:${w.port}`)).toBe(200);
      expect(await statusOf(w.port, w.token, `evil.example:${w.port}`)).toBe(403);
      expect(await statusOf(w.port, "wrong", shown.host)).toBe(403);
    } finally {
      await w.close();
    }
    const bad = segcause("view", "--host", "somewhere", "--no-open", "--runs", join(fx.dir, "runs-host"));
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim().split("\n")).toEqual([
      "segcause: error: --host must be an IP address, got 'somewhere' (e.g. --host 127.0.0.1 (the default), or --host 0.0.0.0 for every interface)",
    ]);
    const child = spawn(process.execPath, [
      join(import.meta.dirname, "..", "bin", "segcause.js"),
      "view",
      "--host",
      "0.0.0.0",
      "--no-open",
      "--runs",
      join(fx.dir, "runs-host"),
    ]);
    const [out, err] = await new Promise<[string, string]>((ok) => {
      let o = "",
        e = "";
      child.stderr.on("data", (d) => (e += d));
      child.stdout.on("data", (d) => {
        o += d;
        if (o.includes("Ctrl-C")) ok([o, e]);
      });
    });
    child.kill("SIGTERM");
    expect(out).toMatch(/^segcause view: http:\/\/\S+:\d+\/\?token=/);
    expect(err).toMatch(/warning: listening on 0\.0\.0\.0, not only this machine/);
  });

  it("a dangling link or a file in the results folders is skipped", async () => {
    const results = join(fx.dir, "results-odd");
    mkdirSync(results);
    symlinkSync(join(fx.dir, "gone"), join(results, "dangling"));
    writeFileSync(join(results, "notes.txt"), "x");
    symlinkSync(join(fx.dir, "gone"), join(fx.dir, "runs", "dangling"));
    const w = await startViewServer({ results, runs: join(fx.dir, "runs") });
    try {
      const res = await fetch(`http://127.0.0.1:${w.port}/api/state`, { headers: { "x-segcause-token": w.token } });
      expect(res.status).toBe(200);
      expect(((await res.json()) as Json).results.filter((r: { dir: string }) => r.dir.startsWith(results))).toEqual([]);
    } finally {
      await w.close();
      rmSync(join(fx.dir, "runs", "dangling"));
    }
  });

  it("a result that is not complete any more gets 400 and one line: no provenance, a file deleted, an unreadable runs/*.json", async () => {
    const run = (await call("/api/runs", { model: fx.model, image: fx.image, roi: ROI, method: "zero" })).json as RunInfo;
    await ended(run.id);
    const copy = (name: string) => {
      const d = join(fx.dir, "runs", name);
      cpSync(run.out, d, { recursive: true });
      return d;
    };
    const noProv = copy("no-provenance");
    const m = JSON.parse(readFileSync(join(noProv, "manifest.json"), "utf8"));
    delete m.provenance;
    writeFileSync(join(noProv, "manifest.json"), JSON.stringify(m));
    refused(await call(`/api/result?dir=${encodeURIComponent(noProv)}`), "manifest.json has no provenance");
    const noMap = copy("no-map");
    rmSync(join(noMap, "map.npy"));
    refused(await call(`/api/result?dir=${encodeURIComponent(noMap)}`), "map.npy is missing");
    const evaluate = join(fx.dir, "runs", "evaluate-bad");
    mkdirSync(join(evaluate, "runs"), { recursive: true });
    writeFileSync(join(evaluate, "run.json"), JSON.stringify({ commands: ["segcause evaluate"] }));
    writeFileSync(join(evaluate, "report.html"), "<p>report</p>");
    writeFileSync(join(evaluate, "runs", "a.json"), "{ cut");
    refused(await call(`/api/result?dir=${encodeURIComponent(evaluate)}`), `${join("runs", "a.json")} cannot be read`);
  });

  it("lists and accepts the models of @segcause/zoo installed next to it (their own folder)", async () => {
    const home = tmp();
    const zoo = join(home, "node_modules", ZOO_PACKAGE);
    mkdirSync(join(zoo, "models"), { recursive: true });
    writeFileSync(join(zoo, "package.json"), JSON.stringify({ name: ZOO_PACKAGE, version: "0.0.0" }));
    const model = join(zoo, "models", "zoo-causal.onnx");
    copyFileSync(fx.model, model);
    writeFileSync(`${model}.json`, JSON.stringify({ input: { height: 32, width: 32, channels: "rgb" }, output: { kind: "probabilities" } }));
    const cwd = process.cwd();
    // the zoo is found from the working directory, as for a project that installed both packages
    process.chdir(home);
    try {
      const w = await startViewServer({ image: fx.image, runs: join(home, "runs") });
      try {
        const headers = { "x-segcause-token": w.token };
        const state = (await (await fetch(`http://127.0.0.1:${w.port}/api/state`, { headers })).json()) as Json;
        expect(state.models.map((x: { path: string }) => x.path)).toContain(model);
        const res = await fetch(`http://127.0.0.1:${w.port}/api/predict`, {
          method: "POST",
          headers,
          body: JSON.stringify({ model, image: fx.image }),
        });
        expect(res.status).toBe(200);
        expect(await res.json()).toMatchObject({ width: 32, height: 32, area: 32 * 32 });
      } finally {
        await w.close();
      }
    } finally {
      process.chdir(cwd);
    }
  });

  it("the command refuses at start, in one line: --results or --runs a file, --dataset missing", () => {
    const bin = join(import.meta.dirname, "..", "bin", "segcause.js");
    const file = join(tmp(), "afile.txt");
    writeFileSync(file, "x");
    for (const [args, line] of [
      [["--results", file], `segcause: error: --results ${file} is a file, not a folder (give --results a results folder, or a folder of them)`],
      [["--runs", file], `segcause: error: --runs ${file} is a file, not a folder (give --runs a new or existing folder)`],
      [["--dataset", join(file, "nowhere.json")], `segcause: error: --dataset ${join(file, "nowhere.json")} does not exist`],
    ] as const) {
      const r = runNode([bin, "view", "--no-open", ...args]);
      expect(r.code, line).toBe(1);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toContain(line);
    }
    // a file that is not what its flag says: one line naming it, before the server listens (its folder is never opened)
    for (const flag of ["--image", "--model", "--bank"]) {
      const r = runNode([bin, "view", "--no-open", flag, file]);
      expect(r.code, flag).toBe(1);
      expect(r.stderr.trim().split("\n"), r.stderr).toHaveLength(1);
      expect(r.stderr).toMatch(/^segcause: error: .*afile\.txt/);
      expect(r.stdout).not.toContain("http://");
    }
  });
});

describe("segcause explain stopped (the viewer's Stop, or kill)", () => {
  it("leaves no temp file of a checkpoint save that was being written when SIGTERM came", async () => {
    const bin = join(import.meta.dirname, "..", "bin", "segcause.js");
    const out = join(tmp(), "killed");
    mkdirSync(out);
    const args = [
      "explain",
      "--model",
      fx.model,
      "--image",
      fx.image,
      "--roi",
      "16,0,8,8",
      "--method",
      "rise",
      "--masks=400000",
      "--out",
      out,
      "--no-progress",
    ];
    const child = spawn(process.execPath, [bin, ...args], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const exited = new Promise<number | null>((ok) => child.on("close", (c) => ok(c)));
    // SIGTERM the moment a periodic save creates its temp file (the save is then in flight)
    const watcher = watch(out, (_, name) => {
      if (name && /^\.checkpoint\.json\..*\.tmp$/.test(name) && !child.killed) child.kill("SIGTERM");
    });
    const code = await exited;
    watcher.close();
    expect(stderr).toContain("segcause: interrupted (SIGTERM); finished work is kept");
    expect(code).toBe(143);
    expect(existsSync(join(out, ".checkpoint.json"))).toBe(true);
    expect(readdirSync(out).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });
});
