/**
 * `segcause view`'s HTTP server: static pages built by `npm run build` (dist/view/web) and a JSON
 * API over the same library code as the CLI. Bound to 127.0.0.1; every API request carries the
 * random token printed with the address; requests from another origin are refused; files only
 * under the folders the server was given (AllowedPaths).
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { type AddressInfo, isIP } from "node:net";
import { hostname, networkInterfaces } from "node:os";
import { basename, extname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { z } from "zod";
import { encodePng, imageInfo } from "../data/image.js";
import { readManifest } from "../data/manifest.js";
import { readNiftiBytes } from "../data/volume/nifti.js";
import { niftiBytes } from "../data/volume/nifti-write.js";
import { isNiftiPath } from "../data/volume/sniff.js";
import { looksLikeVolume, readVolume, volumeSha } from "../data/volume/volume-case.js";
import { SegcauseError } from "../errors.js";
import { allMethods } from "../explain/catalog.js";
import { models as bundledModels } from "../model/bundled.js";
import { isVolumeModel } from "../model/volume-card.js";
import { sha256 } from "../util/hash.js";
import { evaluateCell, evaluateCells } from "./evaluate-cells.js";
import { evaluateData } from "./evaluate-data.js";
import { evaluateTable } from "./evaluate-tables.js";
import { checkRunOptions, optionFields } from "./method-options.js";
import { AllowedPaths } from "./paths.js";
import { ModelCache, packBits, predict } from "./predict.js";
import { decodeRoiMask, describeIssue, explainArgs, PredictRequest, RunRequest, shellCommand } from "./request.js";
import { listResults, listVolumeResults, readResult, readVolumeResult, resultKind } from "./results.js";
import { isFinal, Run, RunQueue } from "./runs.js";
import { keepSeries, SERIES_LIMIT, SERIES_PREFIX, unpackSeries } from "./series-upload.js";
import { checkStartInputs } from "./start-inputs.js";
import { volumeBankArgs, volumePdcrUnavailable } from "./volume-bank.js";

const PACKAGE = fileURLToPath(new URL("../../", import.meta.url));
/** the page as `npm run build` bundles it (also when this module runs from src/ under the tests) */
const WEB = join(PACKAGE, "dist", "view", "web");
/** uploads larger than this are refused (a medical image as PNG/JPEG is far smaller) */
export const UPLOAD_LIMIT = 20 * 1024 * 1024;
/** what `<runs>/uploads/` may hold in all: a page cannot fill the disk */
export const UPLOADS_CAP = { files: 200, bytes: 1024 * 1024 * 1024 };
const JSON_LIMIT = 64 * 1024;
const DEMO_MODEL = "unet-ph2";
const DEMO_IMAGE = "lesion.png";
const IMAGE_EXT = new Set([".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"]);

export interface ViewOptions {
  model?: string;
  image?: string;
  bank?: string;
  results?: string;
  /** a data set manifest (or its folder) whose cases the page lists as images */
  dataset?: string;
  /** where runs write their folders (created) */
  runs: string;
  port?: number;
  host?: string;
  /** fixed token (tests); random otherwise */
  token?: string;
  /** the uploads folder's cap (default UPLOADS_CAP) */
  uploadsCap?: { files: number; bytes: number };
}

export interface ViewServer {
  url: string;
  token: string;
  port: number;
  server: Server;
  queue: RunQueue;
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function bad(message: string): never {
  throw new HttpError(400, message);
}

function parse<T>(schema: z.ZodType<T>, value: unknown): T {
  const r = schema.safeParse(value);
  if (!r.success) bad(describeIssue(r.error));
  return r.data;
}

async function body(req: IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > limit) throw new HttpError(413, `request body over ${Math.round(limit / 1024)} KiB (upload a smaller image)`);
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

async function jsonBody(req: IncomingMessage): Promise<unknown> {
  const text = (await body(req, JSON_LIMIT)).toString("utf8");
  let proto = false;
  let value: unknown;
  try {
    // A "__proto__" key would be dropped by the checks (it sets a prototype, not a field): refused, not ignored.
    value = JSON.parse(text, (k, v) => {
      if (k === "__proto__") proto = true;
      return v;
    });
  } catch {
    bad("malformed JSON body (send one JSON object)");
  }
  if (proto) bad('"__proto__" is not a field or option name (remove it from the request)');
  return value;
}

function send(res: ServerResponse, status: number, value: unknown): void {
  const text = JSON.stringify(value);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" });
  res.end(text);
}

/**
 * Creates a new run folder `<dir>/<name>` (or `<name>-2`, `-3`, …) and returns it: made at once, exclusively, so two runs
 * asked for in the same second (or by two viewers on one runs folder) never share a folder.
 */
export function reserveFolder(dir: string, name: string): string {
  for (let n = 1; ; n++) {
    const out = join(dir, n === 1 ? name : `${name}-${n}`);
    try {
      mkdirSync(out);
      return out;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
  }
}

/** Refuses an upload that would take the uploads folder over its cap (files or bytes), naming the folder to clear. */
function checkUploadsCap(dir: string, adding: number, cap: { files: number; bytes: number }): void {
  const size = (f: string): number => {
    try {
      const st = statSync(join(dir, f));
      // a dropped DICOM series is a folder of its files
      return st.isDirectory() ? readdirSync(join(dir, f)).reduce((n, g) => n + statSync(join(dir, f, g)).size, 0) : st.size;
    } catch {
      return 0; // gone, or a dangling link: holds nothing
    }
  };
  const files = readdirSync(dir).map(size);
  const total = files.reduce((a, b) => a + b, adding);
  if (files.length + 1 > cap.files || total > cap.bytes)
    throw new HttpError(
      413,
      `the uploads folder ${dir} would hold ${files.length + 1} images, ${(total / 1024 / 1024).toFixed(1)} MiB (at most ${cap.files} images, ${Math.round(cap.bytes / 1024 / 1024)} MiB): delete some of them there, or restart with another --runs`,
    );
}

const STATIC: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
};

export async function startViewServer(o: ViewOptions): Promise<ViewServer> {
  const token = o.token ?? randomBytes(18).toString("base64url");
  const allowed = new AllowedPaths();
  // a bad manifest fails before any folder is made
  const dataset = o.dataset === undefined ? undefined : readManifest(o.dataset);
  mkdirSync(o.runs, { recursive: true });
  const uploads = join(o.runs, "uploads");
  mkdirSync(uploads, { recursive: true });
  const roiMasks = join(o.runs, "roi-masks");
  mkdirSync(roiMasks, { recursive: true });
  for (const d of [o.runs, join(PACKAGE, "models"), join(PACKAGE, "samples")]) if (existsSync(d)) allowed.addFolder(d);
  // every model the page lists: the zoo's live in their own package (@segcause/zoo), not under this one
  for (const m of bundledModels()) allowed.addFileFolder(m.path);
  // a folder given as --image (a DICOM series) is allowed itself, not its parent with its sibling series
  for (const f of [o.model, o.image, o.bank]) {
    if (!f) continue;
    if (statSync(f).isDirectory()) allowed.addFolder(f);
    else allowed.addFileFolder(f);
  }
  if (o.results) allowed.addFolder(o.results);
  // the files the manifest names (relative to its folder, or absolute elsewhere) were given on the command line too
  for (const c of dataset?.cases ?? []) for (const f of [c.image, c.mask]) if (f) allowed.addFileFolder(f);
  const runsDir = allowed.check(o.runs, "the runs folder");
  // --image may be a volume that is not NIfTI: a DICOM series folder or file (listed with the volumes, shown as NIfTI)
  const imageIsVolume = o.image !== undefined && (await looksLikeVolume(o.image));
  await checkStartInputs(o, imageIsVolume);

  const models = new ModelCache();
  /** whether a model is 3D, read from its card once per path */
  const volumeCards = new Map<string, boolean>();
  const volumeModelAt = (path: string): boolean => {
    if (!volumeCards.has(path)) volumeCards.set(path, isVolumeModel(path));
    return volumeCards.get(path)!;
  };
  const queue = new RunQueue();
  let seq = 0;

  const listModels = () => {
    const list = bundledModels()
      .filter((m) => !volumeModelAt(m.path))
      .map((m) => ({ name: m.name, path: m.path, description: m.card.description ?? "" }))
      // the demo's model and image first: what a new user explains
      .sort((a, b) => Number(b.name === DEMO_MODEL) - Number(a.name === DEMO_MODEL));
    if (o.model && !volumeModelAt(o.model)) list.unshift({ name: basename(o.model), path: resolve(o.model), description: "given with --model" });
    return list;
  };
  /** 3D models (a volume card), listed apart: the 2D page's models predict and draw on images */
  const listVolumeModels = () => {
    const list = bundledModels()
      .filter((m) => volumeModelAt(m.path))
      .map((m) => ({ name: m.name, path: m.path, description: m.card.description ?? "" }));
    if (o.model && volumeModelAt(o.model)) list.unshift({ name: basename(o.model), path: resolve(o.model), description: "given with --model" });
    // the package's own 3D models (models/volumes/, shipped for `demo --volume`), when the zoo's list leaves them out
    const dir = join(PACKAGE, "models", "volumes");
    if (existsSync(dir))
      for (const n of readdirSync(dir).sort())
        if (n.endsWith(".onnx") && !list.some((m) => m.path === join(dir, n)) && volumeModelAt(join(dir, n)))
          list.push({ name: n, path: join(dir, n), description: "the package's 3D model" });
    return list;
  };
  /** NIfTI volumes: --image, a volume data set's cases (with their label maps), uploads */
  const listVolumes = () => {
    const list: { name: string; path: string; group?: string; labels?: string }[] = [];
    if (o.image && imageIsVolume) list.push({ name: basename(o.image), path: resolve(o.image) });
    if (dataset?.kind === "volume")
      for (const c of dataset.cases)
        if (isNiftiPath(c.image))
          list.push({
            name: `${c.id} (${c.split})`,
            path: c.image,
            group: `data set ${dataset.name}`,
            ...(c.mask && isNiftiPath(c.mask) ? { labels: c.mask } : {}),
          });
    for (const f of readdirSync(uploads).sort())
      if (isNiftiPath(f)) list.push({ name: f, path: join(uploads, f) });
      else if (f.startsWith(SERIES_PREFIX) && !f.endsWith(".partial"))
        list.push({ name: `DICOM series ${f.slice(SERIES_PREFIX.length)} (${readdirSync(join(uploads, f)).length} files)`, path: join(uploads, f) });
    return list;
  };
  const listImages = () => {
    const list: { name: string; path: string; group?: string }[] = [];
    if (o.image && !imageIsVolume) list.push({ name: basename(o.image), path: resolve(o.image) });
    if (dataset?.kind !== "volume")
      for (const c of dataset?.cases ?? []) list.push({ name: `${c.id} (${c.split})`, path: c.image, group: `data set ${dataset!.name}` });
    for (const dir of [join(PACKAGE, "samples"), uploads]) {
      if (!existsSync(dir)) continue;
      for (const f of readdirSync(dir).sort((a, b) => Number(b === DEMO_IMAGE) - Number(a === DEMO_IMAGE) || a.localeCompare(b)))
        if (IMAGE_EXT.has(extname(f).toLowerCase()) && !/_mask\./.test(f)) list.push({ name: f, path: join(dir, f) });
    }
    return list;
  };
  const listBanks = () => {
    const list: { name: string; path: string }[] = [];
    if (o.bank) list.push({ name: basename(o.bank), path: resolve(o.bank) });
    const samples = join(PACKAGE, "samples");
    if (existsSync(samples)) for (const f of readdirSync(samples)) if (f.endsWith(".scbank")) list.push({ name: f, path: join(samples, f) });
    return list;
  };

  const hashes = new Map<string, { mtimeMs: number; sha: string }>();
  const byContent = (list: { path: string }[], sha: string): string | undefined =>
    list.find((f) => {
      const { mtimeMs } = statSync(f.path);
      let h = hashes.get(f.path);
      if (h?.mtimeMs !== mtimeMs) {
        h = { mtimeMs, sha: sha256(readFileSync(f.path)) };
        hashes.set(f.path, h);
      }
      return h.sha === sha;
    })?.path;

  /** A DICOM series as the NIfTI the page's viewer reads: read by the CLI's own reader (the voxels and affine a run sees), kept per path and time. */
  const dicomNifti = new Map<string, { mtimeMs: number; bytes: Uint8Array }>();
  const dicomAsNifti = async (path: string): Promise<Uint8Array> => {
    const { mtimeMs } = statSync(path);
    const kept = dicomNifti.get(path);
    if (kept?.mtimeMs === mtimeMs) return kept.bytes;
    const v = await readVolume(path);
    const bytes = niftiBytes(v, { description: "segcause view: a DICOM series" });
    dicomNifti.set(path, { mtimeMs, bytes });
    return bytes;
  };
  // a folder given as --image must read as a DICOM series now: a wrong folder is one line at start, not an error on the page
  if (imageIsVolume && statSync(o.image!).isDirectory()) await dicomAsNifti(resolve(o.image!));

  /** A listed volume's content hash (volumeSha, as a result's provenance records it), kept per path and time: reading a volume is not cheap. */
  const volumeShas = new Map<string, { mtimeMs: number; sha: string }>();
  const volumeContent = async (path: string): Promise<string | undefined> => {
    try {
      const { mtimeMs } = statSync(path);
      let h = volumeShas.get(path);
      if (h?.mtimeMs !== mtimeMs) {
        h = { mtimeMs, sha: volumeSha(await readVolume(path)) };
        volumeShas.set(path, h);
      }
      return h.sha;
    } catch {
      return undefined; // gone, or not readable: not the volume
    }
  };

  const api = async (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> => {
    const p = url.pathname;
    if (req.method === "GET" && p === "/api/state") {
      return send(res, 200, {
        models: listModels(),
        images: listImages(),
        volumeModels: listVolumeModels(),
        volumes: listVolumes(),
        banks: listBanks(),
        volumePdcrUnavailable: volumePdcrUnavailable(dataset, o.bank) ?? null,
        volumeResults: [...(o.results ? listVolumeResults(o.results) : []), ...listVolumeResults(runsDir)],
        methods: allMethods().map((m) => ({
          name: m.name,
          family: m.family,
          summary: m.summary,
          cost: m.cost,
          needsBank: m.needsBank === true,
          options: optionFields(m),
          // with a volume form in the registry: the volume panel offers it
          ...(m.volume ? { volume: m.volume.summary } : {}),
        })),
        runs: queue.list(),
        results: [...(o.results ? listResults(o.results) : []), ...listResults(runsDir)],
        runsFolder: runsDir,
      });
    }
    if (req.method === "POST" && p === "/api/predict") {
      const r = parse(PredictRequest, await jsonBody(req));
      const model = allowed.check(r.model, "model");
      if (volumeModelAt(model)) bad(`${r.model} is a 3D model: the prediction overlay is for 2D images (run it on a volume with a roiBox)`);
      const pr = await predict(models, model, allowed.check(r.image, "image"));
      return send(res, 200, {
        width: pr.width,
        height: pr.height,
        area: pr.area,
        image: `data:image/png;base64,${pr.image.toString("base64")}`,
        mask: `data:image/png;base64,${pr.mask.toString("base64")}`,
        foreground: { height: pr.foreground.height, width: pr.foreground.width, bits: packBits(pr.foreground.data).toString("base64") },
      });
    }
    if (req.method === "POST" && p === "/api/upload") {
      const name = url.searchParams.get("name") ?? "upload.png";
      const ext = /\.nii\.gz$/i.test(name) ? ".nii.gz" : extname(name).toLowerCase();
      if (!IMAGE_EXT.has(ext) && ext !== ".nii" && ext !== ".nii.gz")
        bad(`${basename(name)} is not an image or volume segcause reads (${[...IMAGE_EXT, ".nii", ".nii.gz"].join(", ")})`);
      // a RoI drawn on a volume (NiiVue's drawing as NIfTI) is kept with the RoI masks, not listed as a volume
      const roi = url.searchParams.get("purpose") === "roi";
      if (roi && !isNiftiPath(ext)) bad(`${basename(name)}: a drawn volume RoI is a NIfTI file (.nii, .nii.gz)`);
      const bytes = await body(req, UPLOAD_LIMIT);
      if (bytes.length === 0) bad("empty upload (drop an image or NIfTI file)");
      // What is stored is an image or volume the runs can read, not just a name ending in .png or .nii.gz.
      if (isNiftiPath(ext)) await readNiftiBytes(bytes, basename(name));
      else await imageInfo(bytes, basename(name));
      // Named by content: the same image dropped twice is one file, and no name from the page reaches the disk.
      const dir = roi ? roiMasks : uploads;
      const path = join(dir, `${sha256(bytes).slice(0, 16)}${ext}`);
      if (!existsSync(path)) checkUploadsCap(dir, bytes.length, o.uploadsCap ?? UPLOADS_CAP);
      writeFileSync(path, bytes);
      return send(res, 200, { name: basename(name), path });
    }
    if (req.method === "POST" && p === "/api/upload-series") {
      const bytes = await body(req, SERIES_LIMIT);
      const files = unpackSeries(bytes);
      if (typeof files === "string") bad(files);
      const dir = join(uploads, `${SERIES_PREFIX}${sha256(bytes).slice(0, 16)}`);
      if (!existsSync(dir)) checkUploadsCap(uploads, bytes.length, o.uploadsCap ?? UPLOADS_CAP);
      const path = existsSync(dir) ? dir : await keepSeries(uploads, bytes, files);
      return send(res, 200, { name: basename(path), path });
    }
    // `/api/runs/preview`: the same checks and command, nothing written or queued (the page's form shows the command as it changes)
    if (req.method === "POST" && (p === "/api/runs" || p === "/api/runs/preview")) {
      const dry = p === "/api/runs/preview";
      const r = parse(RunRequest, await jsonBody(req));
      checkRunOptions(r.method, r.options);
      const checked: RunRequest = {
        ...r,
        model: allowed.check(r.model, "model"),
        image: allowed.check(r.image, "image"),
        ...(r.bank ? { bank: allowed.check(r.bank, "bank") } : {}),
        ...(r.roiLabels ? { roiLabels: { ...r.roiLabels, labels: allowed.check(r.roiLabels.labels, "label map") } } : {}),
      };
      // A volume's RoI is a voxel box (`--roi z,y,x,d,h,w`); an image's a rectangle or a mask.
      const volumeImage = await looksLikeVolume(checked.image);
      if (volumeModelAt(checked.model) && !volumeImage)
        bad(`${r.model} is a 3D model and ${r.image} is not a volume (pick a NIfTI volume for a 3D model)`);
      if (volumeImage && !r.roiBox && !r.roiLabels)
        bad(`${r.image} is a volume: give its RoI as roiBox (a voxel box z,y,x,d,h,w of the volume) or roiLabels (labels of its label map)`);
      if (!volumeImage && (r.roiBox || r.roiLabels))
        bad(`roiBox and roiLabels are a volume's RoI and ${r.image} is a 2D image (give roi or roiMask)`);
      // A mask RoI is a file the command names (`--roi-mask`), kept by content like the uploads, so the shown command reruns it.
      let maskPath: string | undefined;
      if (r.roiMask) {
        const mask = decodeRoiMask(r.roiMask);
        if (typeof mask === "string") bad(mask);
        const png = await encodePng({ width: r.roiMask.width, height: r.roiMask.height, channels: 1, data: mask.map((v) => v * 255) });
        maskPath = join(roiMasks, `${sha256(png).slice(0, 16)}.png`);
        if (!dry && !existsSync(maskPath)) checkUploadsCap(roiMasks, png.length, o.uploadsCap ?? UPLOADS_CAP);
        if (!dry) writeFileSync(maskPath, png);
      }
      // pdcr on a volume without a bank: the bank `bank build` cuts from the --dataset's train split, built by the run when not there yet
      let bank: ReturnType<typeof volumeBankArgs> | undefined;
      if (volumeImage && r.method === "pdcr" && !r.bank && o.bank?.endsWith(".scvbank")) checked.bank = allowed.check(o.bank, "bank");
      else if (volumeImage && r.method === "pdcr" && !r.bank) {
        if (dataset?.kind !== "volume" || !o.dataset) bad(volumePdcrUnavailable(dataset, o.bank)!);
        const manifest = statSync(o.dataset).isDirectory() ? join(o.dataset, "manifest.json") : o.dataset;
        bank = volumeBankArgs(runsDir, resolve(manifest), dataset.name, checked.model, r.options);
        checked.bank = bank.out;
      }
      const folder = `${new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19)}-${r.method}`;
      const out = dry ? join(runsDir, folder) : reserveFolder(runsDir, folder);
      const args = explainArgs(checked, out, maskPath);
      const command = bank ? `${shellCommand(bank.args, "bank build")} && ${shellCommand(args)}` : shellCommand(args);
      if (dry) return send(res, 200, { command });
      const run = new Run(`r${++seq}`, checked.model, r.method, out, args, command, bank?.args);
      queue.add(run);
      return send(res, 200, run.info());
    }
    const m = /^\/api\/runs\/(r\d+)\/(events|stop)$/.exec(p);
    if (m) {
      const run =
        queue.get(m[1]) ??
        (() => {
          throw new HttpError(404, `no run ${m[1]} (see /api/state for the runs)`);
        })();
      if (m[2] === "stop" && req.method === "POST") {
        run.stop();
        return send(res, 200, run.info());
      }
      if (m[2] === "events" && req.method === "GET") {
        res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store", connection: "keep-alive" });
        // Ends on the event's own final state: a late listener is replayed every event, queued and running included.
        const off = run.listen((e) => {
          if (res.writableEnded) return;
          res.write(`event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
          if (e.type === "state" && isFinal(e.state)) res.end();
        });
        if (res.writableEnded) off();
        else req.on("close", off);
        return;
      }
    }
    if (req.method === "GET" && p === "/api/result") {
      const dir = url.searchParams.get("dir") ?? bad("no dir given (/api/result?dir=<results folder>)");
      const r = readResult(allowed.check(dir, "results folder"));
      if (r.kind === "components") {
        // its spatial maps go over the image it was made from, found by content as an explain result's is
        const { imageSha256, ...rest } = r;
        return send(res, 200, { ...rest, match: { image: imageSha256 ? byContent(listImages(), imageSha256) : undefined } });
      }
      if (r.kind !== "explain") return send(res, 200, r);
      // The listed model and image this map was made from, found by content (provenance paths may be relative to another folder).
      const prov = (r.manifest as { provenance?: { model?: { sha256?: unknown }; case?: { imageSha256?: unknown } } }).provenance;
      if (typeof prov?.model?.sha256 !== "string" || typeof prov.case?.imageSha256 !== "string")
        bad(`${dir}/manifest.json has no provenance (the model's and image's SHA-256), so it is not a complete explain result (rerun its command)`);
      const match = { model: byContent(listModels(), prov.model.sha256), image: byContent(listImages(), prov.case.imageSha256) };
      return send(res, 200, { ...r, match });
    }
    if (req.method === "GET" && p === "/api/volume-result") {
      const dir = url.searchParams.get("dir") ?? bad("no dir given (/api/volume-result?dir=<volume results folder>)");
      const { imagePath, imageSha256, ...r } = readVolumeResult(allowed.check(dir, "results folder"));
      // the listed volume it was made from: at its recorded path, else one with its content (voxels and affine, as the provenance hashes them)
      const listed = listVolumes();
      let image = listed.find((x) => imagePath !== undefined && resolve(x.path) === resolve(imagePath) && existsSync(x.path))?.path;
      for (const x of image ? [] : listed)
        if ((await volumeContent(x.path)) === imageSha256) {
          image = x.path;
          break;
        }
      return send(res, 200, { ...r, image });
    }
    if (req.method === "GET" && p === "/api/evaluate") {
      const dir = url.searchParams.get("dir") ?? bad("no dir given (/api/evaluate?dir=<evaluate folder>)");
      const real = allowed.check(dir, "evaluate folder");
      if (resultKind(real) !== "evaluate") bad(`${dir} is not an evaluate folder (no run.json with report.html)`);
      return send(res, 200, evaluateData(real));
    }
    if (req.method === "GET" && (p === "/api/evaluate-cells" || p === "/api/evaluate-cell")) {
      const q = (k: string) => url.searchParams.get(k) ?? "";
      const dir = q("dir") || bad(`no dir given (${p}?dir=<evaluate folder>)`);
      const real = allowed.check(dir, "evaluate folder");
      if (resultKind(real) !== "evaluate") bad(`${dir} is not an evaluate folder (no run.json with report.html)`);
      if (p === "/api/evaluate-cells") return send(res, 200, evaluateCells(real, { model: q("model"), method: q("method") }));
      // the cell's folder is built by the evaluate store's own cellDir (its parts made safe, kept inside the folder)
      const { imageSha256, ...cell } = evaluateCell(
        real,
        { dataset: q("dataset"), model: q("model"), image: q("image"), roi: q("roi") },
        q("method"),
      );
      return send(res, 200, { ...cell, match: { image: imageSha256 ? byContent(listImages(), imageSha256) : undefined } });
    }
    if (req.method === "GET" && p === "/api/evaluate-table") {
      const q = (k: string) => url.searchParams.get(k) ?? "";
      const dir = q("dir") || bad("no dir given (/api/evaluate-table?dir=<evaluate folder>&table=pairs.csv)");
      const real = allowed.check(dir, "evaluate folder");
      if (resultKind(real) !== "evaluate") bad(`${dir} is not an evaluate folder (no run.json with report.html)`);
      return send(res, 200, evaluateTable(real, q("table"), { model: q("model"), method: q("method"), fill: q("fill") }));
    }
    if (req.method === "GET" && p === "/api/report") {
      const dir = url.searchParams.get("dir") ?? bad("no dir given (/api/report?dir=<evaluate folder>)");
      const real = allowed.check(dir, "evaluate folder");
      if (resultKind(real) !== "evaluate") bad(`${dir} is not an evaluate folder with its report.html`);
      // A report is a file from disk: shown sandboxed (no scripts, its own origin), it cannot reach the API.
      res.writeHead(200, { "content-type": "text/html; charset=utf-8", "content-security-policy": "sandbox", "cache-control": "no-store" });
      res.end(readFileSync(join(real, "report.html")));
      return;
    }
    if (req.method === "GET" && p === "/api/volume") {
      // a NIfTI file as it lies on disk (an input volume, a label map, or a run's map.nii.gz) for the page's volume viewer
      const path = url.searchParams.get("path") ?? bad("no path given (/api/volume?path=<file.nii.gz>)");
      const real = allowed.check(path, "volume");
      if (!isNiftiPath(real) && !(await looksLikeVolume(real))) bad(`${path} is not a NIfTI file (.nii or .nii.gz) or a DICOM series`);
      res.writeHead(200, { "content-type": "application/octet-stream", "cache-control": "no-store" });
      res.end(isNiftiPath(real) ? readFileSync(real) : await dicomAsNifti(real));
      return;
    }
    if (req.method === "GET" && p === "/api/image") {
      const path = url.searchParams.get("path") ?? bad("no path given (/api/image?path=<image>)");
      const real = allowed.check(path, "image");
      if (extname(real).toLowerCase() !== ".png") bad(`${path} is not a PNG`);
      res.writeHead(200, { "content-type": "image/png", "cache-control": "no-store" });
      res.end(readFileSync(real));
      return;
    }
    throw new HttpError(404, `no such request: ${req.method} ${p}`);
  };

  let self: string[] = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    void (async () => {
      // A page from another site (or a rebound DNS name) must not reach the API.
      const host = req.headers.host ?? "";
      const origin = req.headers.origin;
      if (!self.includes(host)) throw new HttpError(403, `host ${host} refused (open the address segcause view printed)`);
      if (origin !== undefined && !self.some((s) => origin === `http://${s}`)) throw new HttpError(403, `origin ${origin} refused`);
      if (url.pathname.startsWith("/api/")) {
        if ((req.headers["x-segcause-token"] ?? url.searchParams.get("token")) !== token)
          throw new HttpError(403, "missing or wrong token (open the address segcause view printed, with its ?token=)");
        return api(req, res, url);
      }
      const file = url.pathname === "/" ? "index.html" : url.pathname.slice(1);
      if (!/^[\w-]+\.(html|js|css)$/.test(file) || !existsSync(join(WEB, file))) throw new HttpError(404, `no such page: ${url.pathname}`);
      res.writeHead(200, { "content-type": STATIC[extname(file)], "cache-control": "no-store" });
      res.end(readFileSync(join(WEB, file)));
    })().catch((e: unknown) => {
      const [status, message] =
        e instanceof HttpError
          ? [e.status, e.message]
          : e instanceof SegcauseError
            ? [400, e.oneLine()]
            : [500, `internal error: ${(e as Error).message}`];
      if (res.headersSent) res.end();
      else send(res, status, { error: message });
    });
  });
  const port = () => (server.address() as AddressInfo).port;
  await new Promise<void>((ok, ko) => {
    server.once("error", ko);
    server.listen(o.port ?? 0, o.host ?? "127.0.0.1", () => ok());
  });
  // the Host and Origin values this server answers, fixed once it listens (not per request)
  self = selfHosts(o.host, port());
  const url = `http://${hostPart(shownHost(o.host))}:${port()}/?token=${token}`;
  return {
    url,
    token,
    port: port(),
    server,
    queue,
    close: async () => {
      await queue.stopAll();
      server.closeAllConnections();
      await new Promise<void>((ok) => server.close(() => ok()));
      await models.release();
    },
  };
}

/** Whether `address` is a loopback address (the default bind, reachable from this machine only). */
export function isLoopback(address: string): boolean {
  return address === "::1" || address.startsWith("127.");
}

const hostPart = (address: string) => (isIP(address) === 6 ? `[${address}]` : address);

/** The address the printed URL names: the bound one, or for a wildcard bind this machine's first external address. */
function shownHost(bind: string | undefined): string {
  if (bind === undefined) return "127.0.0.1";
  if (bind !== "0.0.0.0" && bind !== "::") return bind;
  return interfaceAddresses().find((a) => !isLoopback(a) && isIP(a) === 4) ?? "127.0.0.1";
}

function interfaceAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address));
}

/**
 * The Host headers this server answers (anything else may be a rebound DNS name): the loopback names,
 * and with --host the bound address, or for a wildcard bind every address of this machine and its name.
 */
function selfHosts(bind: string | undefined, port: number): string[] {
  const names = ["127.0.0.1", "localhost", "::1"];
  if (bind !== undefined) names.push(bind);
  if (bind === "0.0.0.0" || bind === "::") names.push(...interfaceAddresses(), hostname());
  return [...new Set(names)].map((n) => `${hostPart(n)}:${port}`);
}
