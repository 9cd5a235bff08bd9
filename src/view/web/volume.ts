/**
 * The page's volume panel, loaded as its own chunk only when the server lists volumes (NiiVue is most of
 * its size): the volume and a finished map in three orientations, a voxel-box RoI around the crosshair,
 * and a run of `segcause explain` on it followed as for images.
 */
import { Niivue, NVImage, SLICE_TYPE } from "@niivue/niivue";
import { saveFigure } from "./save.js";

interface Named {
  name: string;
  path: string;
  group?: string;
  /** a data set case's label map */
  labels?: string;
}

interface RunInfo {
  id: string;
  out: string;
  command: string;
  state: string;
  message?: string;
}

interface Status {
  label: string;
  done: number;
  total?: number;
  /** worst case of the total when it is not known yet */
  bound?: number;
  etaMs?: number;
}

export interface VolumeContext {
  token: string;
  models: Named[];
  volumes: Named[];
  /** why pdcr cannot run on volumes here, with the flag that gives it (null: it can) */
  pdcrUnavailable: string | null;
  /** volume results folders (the --results ones and the finished runs) */
  results: string[];
  api<T>(path: string, init?: RequestInit): Promise<T>;
  say(text: string, error?: boolean): void;
  /** fills a select (with the data set's groups) as the 2D page does */
  fill(select: HTMLSelectElement, items: Named[]): void;
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

/** A run's progress line: passes done of all, passes left and the ETA (as the 2D runs say them). */
function progressText(id: string, s: Status): string {
  const eta = s.etaMs === undefined ? "" : ` · ETA ${Math.floor(s.etaMs / 60000)}:${String(Math.round((s.etaMs % 60000) / 1000)).padStart(2, "0")}`;
  // the fast schedule's total is known once its screen has planned the rounds (until then its worst case, if any)
  const total = s.total ?? s.bound;
  const left = total === undefined ? "" : ` (${Math.max(0, total - s.done)} left)`;
  return `volume run ${id}: ${s.label} ${s.done}/${total ?? "?"} passes${left}${eta}`;
}

/** A NIfTI file as the server serves it; the name tells NiiVue its format. */
function volumeUrl(token: string, path: string): { url: string; name: string } {
  const name = path.split("/").pop()!;
  // a DICOM series is served as NIfTI (the server reads it as a run does)
  return {
    url: `/api/volume?path=${encodeURIComponent(path)}&token=${encodeURIComponent(token)}`,
    name: /\.nii(\.gz)?$/i.test(name) ? name : `${name}.nii`,
  };
}

export async function startVolumes(ctx: VolumeContext): Promise<void> {
  const ui = {
    panel: $<HTMLElement>("volume-panel"),
    model: $<HTMLSelectElement>("v-model"),
    volume: $<HTMLSelectElement>("v-volume"),
    method: $<HTMLSelectElement>("v-method"),
    size: $<HTMLInputElement>("v-size"),
    roiKind: $<HTMLSelectElement>("v-roi-kind"),
    labelRow: $<HTMLElement>("v-label-row"),
    label: $<HTMLInputElement>("v-label"),
    options: $<HTMLInputElement>("v-options"),
    run: $<HTMLButtonElement>("v-run"),
    show: $<HTMLButtonElement>("v-show"),
    save: $<HTMLButtonElement>("v-save"),
    pdcrNote: $<HTMLOutputElement>("v-pdcr-note"),
    brushRow: $<HTMLElement>("v-brush-row"),
    undo: $<HTMLButtonElement>("v-undo"),
    clear: $<HTMLButtonElement>("v-clear"),
    stop: $<HTMLButtonElement>("v-stop"),
    results: $<HTMLSelectElement>("v-results"),
    open: $<HTMLButtonElement>("v-open"),
    layer: $<HTMLSelectElement>("v-layer"),
    roi: $<HTMLOutputElement>("v-roi"),
    view: $<HTMLElement>("volume-view"),
    canvas: $<HTMLCanvasElement>("nv"),
    command: $<HTMLElement>("command"),
  };
  ui.panel.hidden = false;
  ctx.fill(ui.model, ctx.models);
  ctx.fill(ui.volume, ctx.volumes);
  // the methods with a volume form in the registry (what `segcause methods` marks `volumes: yes`), zero ablation first chosen
  const { methods } = await ctx.api<{ methods: { name: string; volume?: string }[] }>("/api/state");
  ui.method.replaceChildren(...methods.filter((m) => m.volume).map((m) => Object.assign(new Option(m.name, m.name), { title: m.volume! })));
  ui.method.value = "zero";
  const nv = new Niivue({ crosshairColor: [0, 1, 0, 0.7], show3Dcrosshair: false, isColorbar: true });
  await nv.attachToCanvas(ui.canvas);
  nv.setSliceType(SLICE_TYPE.MULTIPLANAR);
  /** the crosshair's voxel (i, j, k) of the input volume */
  let ijk: [number, number, number] = [0, 0, 0];
  let dims: [number, number, number] = [1, 1, 1];

  /** The box: the crosshair ± half the size, clipped to the volume, as `--roi z,y,x,d,h,w` (z = k, y = j, x = i). */
  const box = () => {
    const s = Math.max(1, Math.round(Number(ui.size.value) || 1));
    const lo = ijk.map((c, a) => Math.min(Math.max(0, c - Math.floor(s / 2)), Math.max(0, dims[a] - s)));
    const len = lo.map((l, a) => Math.min(s, dims[a] - l));
    return { z: lo[2], y: lo[1], x: lo[0], d: len[2], h: len[1], w: len[0] };
  };
  const labelsOf = () => ctx.volumes.find((x) => x.path === ui.volume.value)?.labels;
  /** the RoI as the run request takes it, and as the CLI flags it becomes */
  const roi = (): { request: Record<string, unknown>; flags: string } => {
    const labels = labelsOf();
    if (ui.roiKind.value === "brush") return { request: {}, flags: "--roi-mask <the drawing, saved as NIfTI when the run starts> --label 1" };
    if (ui.roiKind.value === "labels" && labels)
      return { request: { roiLabels: { labels, label: ui.label.value } }, flags: `--roi-mask ${labels} --label ${ui.label.value}` };
    const b = box();
    return {
      request: { roiBox: b },
      flags: `--roi ${b.z},${b.y},${b.x},${b.d},${b.h},${b.w} (voxel ${ijk.join(",")} ± ${Math.floor(Number(ui.size.value) / 2)})`,
    };
  };
  const showBox = () => {
    const labels = labelsOf();
    // labels only for a case that has a label map
    (ui.roiKind.options[1] as HTMLOptionElement).disabled = !labels;
    if (!labels && ui.roiKind.value === "labels") ui.roiKind.value = "box";
    ui.labelRow.hidden = ui.roiKind.value !== "labels";
    $("v-size-row").hidden = ui.roiKind.value !== "box";
    // the brush is NiiVue's own pen (value 1, red); while it is out, a click draws instead of moving the crosshair
    const brush = ui.roiKind.value === "brush";
    ui.brushRow.hidden = !brush;
    if (brush && !nv.drawBitmap && nv.volumes.length) nv.createEmptyDrawing();
    nv.setDrawingEnabled(brush);
    if (brush) nv.setPenValue(1, false);
    ui.roi.textContent = roi().flags;
    // pdcr on a volume needs a bank: one line saying why it is not there and which flag gives it
    const pdcr = ui.method.value === "pdcr";
    ui.pdcrNote.hidden = !(pdcr && ctx.pdcrUnavailable);
    ui.pdcrNote.textContent = ctx.pdcrUnavailable ?? "";
    ui.run.disabled = pdcr && ctx.pdcrUnavailable !== null;
  };
  /** The drawn RoI as NIfTI on the volume's own grid (NiiVue writes its drawing back in the volume's voxel order), or undefined when nothing is drawn. */
  const drawing = async (): Promise<Uint8Array | undefined> => {
    if (!nv.drawBitmap?.some((v) => v > 0)) return undefined;
    return await nv.volumes[0].saveToUint8Array("roi.nii", nv.drawBitmap);
  };
  nv.onLocationChange = (loc) => {
    const vox = (loc as { vox?: number[] }).vox;
    if (vox) ijk = [vox[0], vox[1], vox[2]].map((v) => Math.round(v)) as [number, number, number];
    showBox();
  };

  /** Puts a map over the volume (a result's map.nii.gz or stderr.nii.gz, or a partial map's NIfTI bytes), replacing the one shown. */
  const overlay = async (map: { url: string; name: string }, signed = true) => {
    const m = await NVImage.loadFromUrl({ ...map, colormap: "warm", colormapNegative: signed ? "winter" : "", opacity: 0.7 });
    for (const old of nv.volumes.slice(1)) nv.removeVolume(old);
    nv.addVolume(m);
    // A symmetric scale on the map's largest |effect|; boxes under 5% of it stay transparent (as the 2D map's threshold).
    // Standard errors (>= 0, NaN where a box has none) run from 0 to their largest.
    const a = Math.max(Math.abs(m.global_min ?? 0), Math.abs(m.global_max ?? 0)) || 1;
    Object.assign(m, signed ? { cal_min: 0.05 * a, cal_max: a, cal_minNeg: -a, cal_maxNeg: -0.05 * a } : { cal_min: 0.05 * a, cal_max: a });
    nv.updateGLVolume();
  };
  /** the result drawn now (a finished run's or an opened folder), whose layer the *Show* select picks */
  let result: { image: string; dir: string } | undefined;
  const drawResult = () => (result ? show(result.image, `${result.dir}/${ui.layer.value}.nii.gz`, ui.layer.value === "map") : Promise.resolve());
  const listResults = (dirs: string[]) => {
    ui.results.replaceChildren(...dirs.map((d) => new Option(d.split("/").slice(-2).join("/"), d)));
  };
  listResults(ctx.results);
  let shown = "";
  const show = async (image: string, map?: string, signed = true) => {
    ui.view.hidden = false;
    for (const id of ["map-view", "components-view", "evaluate-view"]) $(id).hidden = true;
    // the same volume keeps its crosshair and drawing: only the map changes
    if (shown === image && nv.volumes.length) {
      if (map) await overlay(volumeUrl(ctx.token, map), signed);
      return;
    }
    // a drawing is on the grid of the volume it was drawn on: another volume starts without one
    if (nv.drawBitmap) nv.closeDrawing();
    await nv.loadVolumes([{ ...volumeUrl(ctx.token, image), colormap: "gray" }]);
    shown = image;
    if (map) await overlay(volumeUrl(ctx.token, map), signed);
    const d = nv.volumes[0].hdr!.dims;
    dims = [d[1], d[2], d[3]];
    // the crosshair starts at the middle: a box there is what Run explains until the user clicks elsewhere
    const mid = nv.frac2vox([0.5, 0.5, 0.5]);
    ijk = [mid[0], mid[1], mid[2]].map((v) => Math.round(v)) as [number, number, number];
    showBox();
  };

  // a dropped NIfTI file is an upload as on the 2D page; a series' files go together, framed (4-byte length, bytes), to be read as one volume
  const drop = $<HTMLElement>("v-drop");
  drop.ondragover = (e) => {
    e.preventDefault();
    drop.classList.add("over");
  };
  drop.ondragleave = () => drop.classList.remove("over");
  drop.ondrop = async (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const files = [...(e.dataTransfer?.files ?? [])];
    if (!files.length) return;
    ctx.say(`uploading ${files.length === 1 ? files[0].name : `${files.length} files of a DICOM series`}…`);
    try {
      const nifti = files.length === 1 && /\.nii(\.gz)?$/i.test(files[0].name);
      let up: Named;
      if (nifti) up = await ctx.api<Named>(`/api/upload?name=${encodeURIComponent(files[0].name)}`, { method: "POST", body: files[0] });
      else {
        const parts = await Promise.all(files.map(async (f) => new Uint8Array(await f.arrayBuffer())));
        const body = new Uint8Array(parts.reduce((n, p) => n + 4 + p.length, 0));
        let at = 0;
        for (const p of parts) {
          new DataView(body.buffer).setUint32(at, p.length);
          body.set(p, at + 4);
          at += 4 + p.length;
        }
        up = await ctx.api<Named>("/api/upload-series", { method: "POST", body });
      }
      const state = await ctx.api<{ volumes: Named[] }>("/api/state");
      ctx.volumes.splice(0, ctx.volumes.length, ...state.volumes);
      ctx.fill(ui.volume, ctx.volumes);
      ui.volume.value = up.path;
      await show(up.path);
      ctx.say(`${up.name}: shown; pick a RoI and run`);
    } catch (err) {
      ctx.say((err as Error).message, true);
    }
  };
  ui.volume.onchange = () => void show(ui.volume.value).catch((e: Error) => ctx.say(e.message, true));
  ui.size.oninput = showBox;
  ui.label.oninput = showBox;
  ui.roiKind.onchange = showBox;
  ui.method.onchange = showBox;
  ui.undo.onclick = () => nv.drawUndo();
  ui.clear.onclick = () => {
    nv.closeDrawing();
    nv.createEmptyDrawing();
  };
  // The shared Save PNG (title, command in the text chunk). The scene is drawn and read in one task: the WebGL
  // buffer (not preserved between frames) still holds it when saveFigure copies the canvas synchronously.
  ui.save.onclick = () => {
    const name = ui.volume.value
      .split("/")
      .pop()!
      .replace(/\.nii(\.gz)?$/, "");
    const model = ui.model.value.split("/").pop()!;
    nv.drawScene();
    void saveFigure({
      title: `${model} · ${name}${result ? ` · ${ui.layer.value} of ${result.dir.split("/").pop()}` : ""}`,
      panels: [{ canvas: ui.canvas }],
      file: `${name}${nv.volumes.length > 1 ? "-map" : ""}`,
      source: result ? `results folder ${result.dir}` : ui.command.textContent || undefined,
    }).catch((e: Error) => ctx.say(e.message, true));
  };
  ui.run.onclick = async () => {
    if (ui.view.hidden) await show(ui.volume.value);
    const options: Record<string, number | string> = {};
    for (const pair of ui.options.value.split(/\s+/).filter(Boolean)) {
      const [k, v] = pair.split("=");
      options[k] = v !== undefined && v !== "" && Number.isFinite(Number(v)) ? Number(v) : (v ?? "");
    }
    try {
      const image = ui.volume.value;
      let request = roi().request;
      if (ui.roiKind.value === "brush") {
        // the drawing goes to the server as a NIfTI file (kept with the RoI masks, named by content), run as `--roi-mask <it> --label 1`
        const mask = await drawing();
        if (!mask) return ctx.say("draw the RoI on a slice first (the brush paints in red)", true);
        const up = await ctx.api<{ path: string }>("/api/upload?name=roi.nii&purpose=roi", { method: "POST", body: new Uint8Array(mask) });
        request = { roiLabels: { labels: up.path, label: "1" } };
      }
      const info = await ctx.api<RunInfo>("/api/runs", {
        method: "POST",
        body: JSON.stringify({ model: ui.model.value, image, ...request, method: ui.method.value, options }),
      });
      ui.command.textContent = info.command;
      ui.run.disabled = true;
      // Stop: as on Ctrl-C (a box method or RISE keeps its checkpoint: the shown command continues it)
      ui.stop.disabled = false;
      ui.stop.onclick = () => void ctx.api(`/api/runs/${info.id}/stop`, { method: "POST" }).catch((err: Error) => ctx.say(err.message, true));
      const es = new EventSource(`/api/runs/${info.id}/events?token=${encodeURIComponent(ctx.token)}`);
      let status: Status | undefined;
      let partial = "";
      const say = () => ctx.say(`${status ? progressText(info.id, status) : `volume run ${info.id}`}${partial}`);
      es.addEventListener("progress", (m) => {
        status = JSON.parse((m as MessageEvent).data).status as Status;
        say();
      });
      // pdcr's fast schedule: the map so far after each round, drawn over the volume as it fills in
      let drawn = Promise.resolve();
      es.addEventListener("partial", (m) => {
        const p = JSON.parse((m as MessageEvent).data).map as { volume?: string; passes: number };
        if (!p.volume) return;
        const bytes = Uint8Array.from(atob(p.volume), (c) => c.charCodeAt(0));
        partial = ` · map so far after ${p.passes} passes`;
        say();
        drawn = drawn
          .then(() => show(image))
          .then(() => overlay({ url: URL.createObjectURL(new Blob([bytes])), name: "partial.nii.gz" }))
          .then(() => document.body.setAttribute("data-volume-partial", String(p.passes)))
          .catch((err: Error) => ctx.say(err.message, true));
      });
      es.addEventListener("state", (m) => {
        const e = JSON.parse((m as MessageEvent).data) as { state: string; message?: string };
        if (e.state === "running" && e.message) return ctx.say(`volume run ${info.id}: ${e.message}`);
        if (!["done", "failed", "stopped"].includes(e.state)) return;
        es.close();
        ui.run.disabled = false;
        ui.stop.disabled = true;
        if (e.state !== "done") return ctx.say(`volume run ${info.id} ${e.state}: ${e.message ?? ""}`, true);
        ctx.say(`volume run ${info.id} done: its map over the volume`);
        result = { image, dir: info.out };
        ui.layer.value = "map";
        drawn = drawn
          .then(drawResult)
          .then(() => ctx.api<{ volumeResults: string[] }>("/api/state"))
          .then((s) => listResults(s.volumeResults))
          .catch((err: Error) => ctx.say(err.message, true));
      });
    } catch (e) {
      ctx.say((e as Error).message, true);
    }
  };
  ui.layer.onchange = () => void drawResult().catch((e: Error) => ctx.say(e.message, true));
  ui.open.onclick = async () => {
    try {
      const r = await ctx.api<{ dir: string; method: string; roi: string; image?: string }>(
        `/api/volume-result?dir=${encodeURIComponent(ui.results.value)}`,
      );
      if (!r.image) return ctx.say(`${r.dir}: the volume it was made from is not listed (start segcause view with its --image or --dataset)`, true);
      ui.volume.value = r.image;
      result = { image: r.image, dir: r.dir };
      await drawResult();
      ctx.say(`${r.method} map of ${r.image.split("/").pop()}, RoI ${r.roi}`);
    } catch (e) {
      ctx.say((e as Error).message, true);
    }
  };
  // Show: the volume alone (a map shown over it is put away; the crosshair and a drawing stay)
  ui.show.onclick = () =>
    void show(ui.volume.value)
      .then(() => {
        for (const old of nv.volumes.slice(1)) nv.removeVolume(old);
        result = undefined;
      })
      .catch((e: Error) => ctx.say(e.message, true));
}
