/**
 * The page's volume panel, loaded as its own chunk only when the server lists volumes (NiiVue is most of
 * its size): the volume and a finished map in three orientations, a voxel-box RoI around the crosshair,
 * and a run of `segcause explain` on it followed as for images.
 */
import { Niivue, SLICE_TYPE } from "@niivue/niivue";

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

export interface VolumeContext {
  token: string;
  models: Named[];
  volumes: Named[];
  api<T>(path: string, init?: RequestInit): Promise<T>;
  say(text: string, error?: boolean): void;
  /** fills a select (with the data set's groups) as the 2D page does */
  fill(select: HTMLSelectElement, items: Named[]): void;
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

/** A NIfTI file as the server serves it; the name tells NiiVue its format. */
function volumeUrl(token: string, path: string): { url: string; name: string } {
  return { url: `/api/volume?path=${encodeURIComponent(path)}&token=${encodeURIComponent(token)}`, name: path.split("/").pop()! };
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
    roi: $<HTMLOutputElement>("v-roi"),
    view: $<HTMLElement>("volume-view"),
    canvas: $<HTMLCanvasElement>("nv"),
    command: $<HTMLElement>("command"),
  };
  ui.panel.hidden = false;
  ctx.fill(ui.model, ctx.models);
  ctx.fill(ui.volume, ctx.volumes);
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
    if (!labels) ui.roiKind.value = "box";
    ui.labelRow.hidden = ui.roiKind.value !== "labels";
    ui.roi.textContent = roi().flags;
  };
  nv.onLocationChange = (loc) => {
    const vox = (loc as { vox?: number[] }).vox;
    if (vox) ijk = [vox[0], vox[1], vox[2]].map((v) => Math.round(v)) as [number, number, number];
    showBox();
  };

  const show = async (image: string, map?: string) => {
    ui.view.hidden = false;
    for (const id of ["map-view", "components-view", "evaluate-view"]) $(id).hidden = true;
    const list: Parameters<Niivue["loadVolumes"]>[0] = [{ ...volumeUrl(ctx.token, image), colormap: "gray" }];
    if (map) list.push({ ...volumeUrl(ctx.token, map), colormap: "warm", colormapNegative: "winter", opacity: 0.7 });
    await nv.loadVolumes(list);
    const m = nv.volumes[1];
    if (m) {
      // A symmetric scale on the map's largest |effect|; boxes under 5% of it stay transparent (as the 2D map's threshold).
      const a = Math.max(Math.abs(m.global_min ?? 0), Math.abs(m.global_max ?? 0)) || 1;
      Object.assign(m, { cal_min: 0.05 * a, cal_max: a, cal_minNeg: -a, cal_maxNeg: -0.05 * a });
      nv.updateGLVolume();
    }
    const d = nv.volumes[0].hdr!.dims;
    dims = [d[1], d[2], d[3]];
    // the crosshair starts at the middle: a box there is what Run explains until the user clicks elsewhere
    const mid = nv.frac2vox([0.5, 0.5, 0.5]);
    ijk = [mid[0], mid[1], mid[2]].map((v) => Math.round(v)) as [number, number, number];
    showBox();
  };

  ui.volume.onchange = () => void show(ui.volume.value).catch((e: Error) => ctx.say(e.message, true));
  ui.size.oninput = showBox;
  ui.label.oninput = showBox;
  ui.roiKind.onchange = showBox;
  ui.run.onclick = async () => {
    if (ui.view.hidden) await show(ui.volume.value);
    const options: Record<string, number | string> = {};
    for (const pair of ui.options.value.split(/\s+/).filter(Boolean)) {
      const [k, v] = pair.split("=");
      options[k] = v !== undefined && v !== "" && Number.isFinite(Number(v)) ? Number(v) : (v ?? "");
    }
    try {
      const image = ui.volume.value;
      const info = await ctx.api<RunInfo>("/api/runs", {
        method: "POST",
        body: JSON.stringify({ model: ui.model.value, image, ...roi().request, method: ui.method.value, options }),
      });
      ui.command.textContent = info.command;
      ui.run.disabled = true;
      const es = new EventSource(`/api/runs/${info.id}/events?token=${encodeURIComponent(ctx.token)}`);
      es.addEventListener("progress", (m) => {
        const s = JSON.parse((m as MessageEvent).data).status as { done: number; total: number };
        ctx.say(`volume run ${info.id}: ${s.done}/${s.total} passes`);
      });
      es.addEventListener("state", (m) => {
        const e = JSON.parse((m as MessageEvent).data) as { state: string; message?: string };
        if (!["done", "failed", "stopped"].includes(e.state)) return;
        es.close();
        ui.run.disabled = false;
        if (e.state !== "done") return ctx.say(`volume run ${info.id} ${e.state}: ${e.message ?? ""}`, true);
        ctx.say(`volume run ${info.id} done: its map over the volume`);
        void show(image, `${info.out}/map.nii.gz`).catch((err: Error) => ctx.say(err.message, true));
      });
    } catch (e) {
      ctx.say((e as Error).message, true);
    }
  };
  ui.show.onclick = () => void show(ui.volume.value).catch((e: Error) => ctx.say(e.message, true));
}
