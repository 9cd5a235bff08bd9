/**
 * `segcause view` in a real browser (Debian's chromium, driven by playwright-core): load the page,
 * drag a RoI with the mouse, run zero ablation on a tiny model whose causal block is known, and
 * read the rendered map's pixels there and elsewhere. Skipped, with a line saying so, without /usr/bin/chromium.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { csvRecords } from "../src/evaluate/html.js";
import { decodeNpy } from "../src/util/npy.js";
import { startViewServer, type ViewServer } from "../src/view/server.js";
import { causalFixture, segcause, spatialComponents } from "./helpers/cli.js";
import { copyChannelModel, flatBank, writeImage, writeMask, writeModel } from "./helpers/tiny.js";
import { CHROMIUM, launchChromium } from "./helpers/view.js";

const haveChromium = existsSync(CHROMIUM);
if (!haveChromium)
  console.warn(`view-browser.test.ts: ${CHROMIUM} is absent, so the browser test is skipped (install it: apt-get install -y chromium)`);

let v: ViewServer;
let w: ViewServer;
const PUBLISHED = join(import.meta.dirname, "..", "docs", "results");
let browser: Browser;
let page: Page;
let fx: Awaited<ReturnType<typeof causalFixture>>;
/** a bank of graded patches: the fast schedule's rounds move the causal blocks' means */
let graded: string;

/** The colour the page drew at model-input pixel (row, col), read back from the canvas. */
function pixel(p: Page, row: number, col: number): Promise<number[]> {
  return p.evaluate(
    ([r, c]) => {
      const cv = document.getElementById("view") as HTMLCanvasElement;
      const z = cv.width / 32;
      return [...cv.getContext("2d")!.getImageData(Math.floor((c + 0.5) * z), Math.floor((r + 0.5) * z), 1, 1).data];
    },
    [row, col],
  );
}

/** Clicks a Save PNG button and reads the download: its name, pixels (RGB) and text chunks. */
async function saved(p: Page, button: string) {
  const [download] = await Promise.all([p.waitForEvent("download"), p.click(button)]);
  const bytes = readFileSync((await download.path())!);
  const meta = await sharp(bytes).metadata();
  const { data, info } = await sharp(bytes).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const at = (x: number, y: number) => [...data.subarray((y * info.width + x) * 3, (y * info.width + x) * 3 + 3)];
  /** pixels in columns [x0, x1) whose colour passes `test` */
  const count = (test: (rgb: number[]) => boolean, x0 = 0, x1 = info.width) => {
    let n = 0;
    for (let y = 0; y < info.height; y++) for (let x = x0; x < x1; x++) if (test(at(x, y))) n++;
    return n;
  };
  return { name: download.suggestedFilename(), width: info.width, height: info.height, count, text: meta.comments ?? [] };
}
const isRed = ([r, g, b]: number[]) => r - g > 60 && r - b > 60;
const chromatic = ([r, g, b]: number[]) => Math.max(r, g, b) - Math.min(r, g, b) > 60;

describe.skipIf(!haveChromium)("segcause view in chromium", () => {
  beforeAll(async () => {
    fx = await causalFixture();
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
      join(fx.dir, "results", "comp"),
    );
    expect(c.code, c.stderr).toBe(0);
    const z8 = segcause(
      "explain",
      "--model",
      fx.model,
      "--image",
      fx.image,
      "--roi",
      "16,0,8,8",
      "--method",
      "zero",
      "--out",
      join(fx.dir, "results", "zero8"),
    );
    expect(z8.code, z8.stderr).toBe(0);
    graded = join(fx.dir, "graded.scbank");
    await flatBank([10, 40, 70, 100, 130, 160, 190, 220, 230, 240, 250, 255]).save(graded);
    v = await startViewServer({ model: fx.model, image: fx.image, bank: graded, runs: join(fx.dir, "runs"), results: join(fx.dir, "results") });
    // the repository's published evaluate results, opened by a second server
    w = await startViewServer({ results: PUBLISHED, runs: join(fx.dir, "runs-eval") });
    browser = await launchChromium(false);
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  });

  afterAll(async () => {
    await browser?.close();
    await v?.close();
    await w?.close();
  });

  it("draws a RoI with the mouse, runs zero ablation with an option and shows the map where the causal block is", async () => {
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(v.url);
    await page.waitForSelector("body[data-ready]");
    expect(await page.inputValue("#model")).toBe(fx.model);
    expect(await page.inputValue("#image")).toBe(fx.image);
    // Drag from pixel (16,0) to (23,7): the RoI 16,0,8,8.
    let box = (await page.locator("#view").boundingBox())!;
    let z = box.width / 32;
    await page.mouse.move(box.x + 0.5 * z, box.y + 16.5 * z);
    await page.mouse.down();
    await page.mouse.move(box.x + 4 * z, box.y + 20 * z, { steps: 4 });
    await page.mouse.move(box.x + 7.5 * z, box.y + 23.5 * z, { steps: 4 });
    await page.mouse.up();
    expect(await page.textContent("#roi-text")).toContain("--roi 16,0,8,8");
    // 16x16 blocks: the model's causal region is exactly one block. A bad value first: the CLI's line under the form, and Run refuses it.
    await page.fill("#opt-zero-block", "0");
    await page.waitForFunction(() =>
      /^--block must be an integer >= 1, got 0 \(its default is 8\)$/.test(document.querySelector('[data-method="zero"] output')?.textContent ?? ""),
    );
    expect(await page.textContent("#command")).toMatch(/^zero: --block must be/);
    await page.click("#run");
    await page.waitForFunction(() =>
      (document.getElementById("status")!.textContent ?? "").startsWith("zero: --block must be an integer >= 1, got 0"),
    );
    expect(await page.locator("#runs li").count()).toBe(0);
    await page.fill("#opt-zero-block", "16");
    // the equivalent command follows the form
    await page.waitForFunction(() => / --method zero --seed 0 --block=16 --out /.test(document.getElementById("command")!.textContent ?? ""));
    expect(await page.textContent('[data-method="zero"] output')).toBe("");
    await page.click("#run");
    await page.waitForSelector('body[data-map="zero"]', { timeout: 120_000 });
    expect(await page.textContent("#command")).toMatch(
      /^segcause explain --model \S+causal\.onnx --image \S+bright\.png --roi 16,0,8,8 --method zero --seed 0 --block=16 --out /,
    );
    expect(await page.textContent("#runs")).toContain("zero: done");
    // Without the prediction's tint: the causal block (rows 0..15, cols 16..31) is red (supported the RoI), a block it does not read keeps the image's gray.
    await page.uncheck("#show-pred");
    const [r, g, b] = await pixel(page, 4, 20);
    expect(r - g).toBeGreaterThan(60);
    expect(r - b).toBeGreaterThan(60);
    const gray = await pixel(page, 28, 4);
    expect(Math.max(...gray.slice(0, 3)) - Math.min(...gray.slice(0, 3))).toBeLessThan(4);
    // Hovering the block reads its effect (where the map is now: the option form's field may have scrolled the page).
    box = (await page.locator("#view").boundingBox())!;
    z = box.width / 32;
    await page.mouse.move(box.x + 20.5 * z, box.y + 4.5 * z);
    expect(await page.textContent("#hover")).toMatch(/block at \(0, 16\), 16×16: ATE -\d/);
    await page.check("#show-pred");
    // Side by side with the 8x8 map made by the CLI: one cursor, both maps read out.
    await page.selectOption("#compare", join(fx.dir, "results", "zero8"));
    await page.waitForSelector('body[data-compare="zero"]');
    expect(await page.isVisible("#view2")).toBe(true);
    const box2 = (await page.locator("#view2").boundingBox())!;
    const z2 = box2.width / 32;
    await page.mouse.move(box2.x + 20.5 * z2, box2.y + 4.5 * z2);
    const lines = (await page.textContent("#hover"))!.split("\n");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^zero: block at \(0, 16\), 16×16: ATE -\d/);
    expect(lines[1]).toMatch(/^zero: block at \(0, 16\), 8×8: ATE -\d/);
    await page.screenshot({ path: join(fx.dir, "view.png"), fullPage: true });
    console.info(`view-browser.test.ts: screenshot at ${join(fx.dir, "view.png")}`);
    // Save PNG: both maps side by side under the title, the causal block red in each half, the run's command kept in the PNG
    const png = await saved(page, "#save");
    expect(png.name).toBe("segcause-causal-zero+zero-roi16,0,8,8.png");
    const canvasW = (await page.locator("#view").evaluate((c: HTMLCanvasElement) => c.width)) as number;
    expect(png.width).toBeGreaterThanOrEqual(2 * canvasW);
    expect(png.height).toBeGreaterThan(canvasW);
    const half = Math.floor(png.width / 2);
    expect(png.count(isRed, 0, half)).toBeGreaterThan(100);
    expect(png.count(isRed, half, png.width)).toBeGreaterThan(100);
    const kept = png.text.find((t) => t.keyword === "segcause")!.text.split("\n");
    expect(kept[0]).toMatch(/^segcause explain --model \S+causal\.onnx .* --method zero --seed 0 --block=16 --out /);
    expect(kept[1]).toBe(`results folder ${join(fx.dir, "results", "zero8")}`);
    expect(errors).toEqual([]);
  });

  it("fills in the PdCR map round by round as the fast schedule runs, and ends on the written map", async () => {
    // the RoI of the test above; pdcr alone, with the graded bank and a precise map (many rounds)
    await page.uncheck('#methods input[value="zero"]');
    await page.check('#methods input[value="pdcr"]');
    await page.selectOption("#bank", graded);
    await page.fill("#seed", "7");
    await page.fill("#opt-pdcr-map-noise", "0.05");
    // Each partial map the page draws, as drawn (the canvas), with the line it shows.
    await page.evaluate(() => {
      const seen: { png: string; text: string }[] = [];
      (window as unknown as { partials: typeof seen }).partials = seen;
      new MutationObserver(() =>
        seen.push({
          png: (document.getElementById("view") as HTMLCanvasElement).toDataURL(),
          text: document.getElementById("status")!.textContent ?? "",
        }),
      ).observe(document.body, { attributes: true, attributeFilter: ["data-partial"] });
    });
    await page.click("#run");
    await page.waitForSelector('body[data-map="pdcr"]', { timeout: 120_000 });
    const partials = await page.evaluate(() => (window as unknown as { partials: { png: string; text: string }[] }).partials);
    expect(new Set(partials.map((p) => p.png)).size).toBeGreaterThanOrEqual(2);
    for (const p of partials) expect(p.text).toMatch(/^pdcr: the map after \d+ passes/);
    // the last partial map is the result: drawn the same once the run's folder is opened
    const final = await page.evaluate(() => (document.getElementById("view") as HTMLCanvasElement).toDataURL());
    expect(partials.at(-1)!.png).toBe(final);
    expect(await page.textContent("#runs")).toContain("pdcr: done");
  });

  it("takes a brushed RoI as a mask, hides values under a threshold, and zooms both maps together", async () => {
    await page.selectOption("#roi-tool", "brush");
    await page.fill("#brush", "1");
    let box = (await page.locator("#view").boundingBox())!;
    let z = box.width / 32;
    await page.mouse.move(box.x + 2.5 * z, box.y + 18.5 * z);
    await page.mouse.down();
    await page.mouse.move(box.x + 5.5 * z, box.y + 21.5 * z, { steps: 6 });
    await page.mouse.up();
    expect(await page.textContent("#roi-text")).toMatch(/^a RoI mask of \d+ pixels/);
    await page.uncheck('#methods input[value="pdcr"]');
    await page.check('#methods input[value="zero"]');
    await page.fill("#opt-zero-block", "16");
    await page.fill("#seed", "0");
    await page.click("#run");
    await page.waitForSelector('body[data-map="zero"]', { timeout: 120_000 });
    expect(await page.textContent("#command")).toMatch(/ --roi-mask \S+\/roi-masks\/[0-9a-f]{16}\.png --method zero /);
    await page.uncheck("#show-pred");
    const [r, g] = await pixel(page, 4, 20);
    expect(r - g).toBeGreaterThan(60);
    // a threshold above every |value| hides the map: the image's gray shows
    await page.fill("#threshold", "1000");
    const hidden = await pixel(page, 4, 20);
    expect(Math.max(...hidden.slice(0, 3)) - Math.min(...hidden.slice(0, 3))).toBeLessThan(4);
    await page.fill("#threshold", "0");
    // Zoom about the causal block: it fills more of both maps (the 8×8 map beside it is zoomed the same).
    await page.selectOption("#compare", join(fx.dir, "results", "zero8"));
    await page.waitForSelector("#view2");
    // where the map is now and its size (the option form's field may have scrolled the page, and two maps share the row)
    box = (await page.locator("#view").boundingBox())!;
    z = box.width / 32;
    const redShare = () =>
      page.evaluate(() =>
        ["view", "view2"].map((id) => {
          const c = document.getElementById(id) as HTMLCanvasElement;
          const d = c.getContext("2d")!.getImageData(0, 0, c.width, c.height).data;
          let red = 0;
          for (let i = 0; i < d.length; i += 4) if (d[i] - d[i + 1] > 60) red++;
          return red / (d.length / 4);
        }),
      );
    const before = await redShare();
    await page.mouse.move(box.x + 20.5 * z, box.y + 4.5 * z);
    for (let i = 0; i < 3; i++) await page.mouse.wheel(0, -100);
    const after = await redShare();
    expect(after[0]).toBeGreaterThan(before[0] * 1.5);
    expect(after[1]).toBeGreaterThan(before[1] * 1.5);
    expect(Math.abs(after[0] - after[1])).toBeLessThan(0.05);
    // the pixel under the mouse stays where it was: both maps still read the causal block there
    await page.mouse.move(box.x + 20.5 * z, box.y + 4.5 * z + 1);
    const lines = (await page.textContent("#hover"))!.split("\n");
    expect(lines[0]).toMatch(/block at \(0, 16\), 16×16/);
    expect(lines[1]).toMatch(/block at \(0, 16\), 8×8/);
    await page.click("#zoom-reset");
    // as before the zoom, but for the cursor's outline
    const reset = await redShare();
    for (const k of [0, 1]) expect(reset[k]).toBeCloseTo(before[k], 2);
    await page.check("#show-pred");
    await page.selectOption("#compare", []);
    await page.waitForSelector("#view2", { state: "detached" });
  });

  it("compares three maps: two methods run together side by side, a third added; one zoom, cursor and pan; one PNG", async () => {
    await page.selectOption("#roi-tool", "rect");
    const box = (await page.locator("#view").boundingBox())!;
    const z = box.width / 32;
    await page.mouse.move(box.x + 0.5 * z, box.y + 16.5 * z);
    await page.mouse.down();
    await page.mouse.move(box.x + 7.5 * z, box.y + 23.5 * z, { steps: 4 });
    await page.mouse.up();
    expect(await page.textContent("#roi-text")).toContain("--roi 16,0,8,8");
    await page.check('#methods input[value="occlusion"]');
    await page.fill("#opt-zero-block", "16");
    await page.fill("#opt-occlusion-block", "16");
    await page.fill("#opt-occlusion-stride", "16");
    await page.click("#run");
    // zero ends first (one run a model at a time): drawn first, occlusion beside it when it ends
    await page.waitForSelector('body[data-compare="occlusion"]', { timeout: 120_000 });
    expect(await page.getAttribute("body", "data-map")).toBe("zero");
    const chosen = await page.$$eval("#compare option:checked", (os) => os.map((o) => (o as HTMLOptionElement).value));
    expect(chosen).toHaveLength(1);
    await page.selectOption("#compare", [...chosen, join(fx.dir, "results", "zero8")]);
    await page.waitForSelector('body[data-compare="occlusion,zero"]');
    const ids = ["view", "view2", "view3"];
    for (const id of ids) expect(await page.isVisible(`#${id}`)).toBe(true);
    await page.uncheck("#show-pred");
    // one cursor: hovering the third map reads out all three at the causal block
    const b3 = (await page.locator("#view3").boundingBox())!;
    const z3 = b3.width / 32;
    const at = { x: b3.x + 20.5 * z3, y: b3.y + 4.5 * z3 };
    await page.mouse.move(at.x, at.y);
    let lines = (await page.textContent("#hover"))!.split("\n");
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^zero: block at \(0, 16\), 16×16: ATE -\d/);
    expect(lines[1]).toMatch(/^occlusion: (\S+ at \(0, 16\), 16×16|pixel \(4, 20\): -\d)/);
    expect(lines[2]).toMatch(/^zero: block at \(0, 16\), 8×8: ATE -\d/);
    // one zoom: the wheel over the third map zooms all three (each map's coloured part grows alike)
    const shares = () =>
      page.evaluate(
        (list) =>
          list.map((id) => {
            const c = document.getElementById(id) as HTMLCanvasElement;
            const d = c.getContext("2d")!.getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 0; i < d.length; i += 4) if (Math.max(d[i], d[i + 1], d[i + 2]) - Math.min(d[i], d[i + 1], d[i + 2]) > 60) n++;
            return n / (d.length / 4);
          }),
        ids,
      );
    const before = await shares();
    for (const s of before) expect(s).toBeGreaterThan(0.05);
    for (let i = 0; i < 3; i++) await page.mouse.wheel(0, -100);
    const zoomed = await shares();
    for (const k of [0, 1, 2]) expect(zoomed[k]).toBeGreaterThan(before[k] * 1.5);
    // one pan: dragging the second map right by half its width shows every map's content further left under the cursor
    const b2 = (await page.locator("#view2").boundingBox())!;
    await page.mouse.move(b2.x + b2.width / 4, b2.y + b2.height / 2);
    await page.mouse.down();
    await page.mouse.move(b2.x + (3 * b2.width) / 4, b2.y + b2.height / 2, { steps: 5 });
    await page.mouse.up();
    const panned = await shares();
    for (const k of [0, 1, 2]) expect(panned[k]).not.toBeCloseTo(zoomed[k], 3);
    await page.mouse.move(at.x, at.y);
    lines = (await page.textContent("#hover"))!.split("\n");
    expect(lines[0]).toMatch(/^zero: block at \(0, 0\), 16×16/);
    expect(lines[2]).toMatch(/^zero: block at \(0, 8\), 8×8/);
    // Save PNG: three panels, each with its coloured map, and the three folders' commands in the PNG
    await page.click("#zoom-reset");
    const png = await saved(page, "#save");
    expect(png.name).toBe("segcause-causal-zero+occlusion+zero-roi16,0,8,8.png");
    const third = Math.floor(png.width / 3);
    for (const k of [0, 1, 2]) expect(png.count(chromatic, k * third, (k + 1) * third)).toBeGreaterThan(100);
    const kept = png.text.find((t) => t.keyword === "segcause")!.text.split("\n");
    expect(kept.map((l) => / --method (\w+) /.exec(l)?.[1] ?? l)).toEqual([
      "zero",
      "occlusion",
      `results folder ${join(fx.dir, "results", "zero8")}`,
    ]);
    await page.screenshot({ path: join(fx.dir, "view-compare.png") });
    console.info(`view-browser.test.ts: screenshot at ${join(fx.dir, "view-compare.png")}`);
    await page.check("#show-pred");
    await page.uncheck('#methods input[value="occlusion"]');
    await page.selectOption("#compare", []);
  });

  it("takes a click on a predicted structure as the RoI: its connected component", async () => {
    const state = await (await fetch(`http://127.0.0.1:${v.port}/api/state`, { headers: { "x-segcause-token": v.token } })).json();
    const model = state.models.find((m: { name: string }) => m.name === "unet-ph2")!.path as string;
    const image = state.images.find((m: { name: string }) => m.name === "lesion.png")!.path as string;
    const pred = await (
      await fetch(`http://127.0.0.1:${v.port}/api/predict`, {
        method: "POST",
        headers: { "x-segcause-token": v.token },
        body: JSON.stringify({ model, image }),
      })
    ).json();
    const { height: H, width: W } = pred.foreground as { height: number; width: number };
    expect([H, W]).toEqual([pred.height, pred.width]);
    const bytes = Buffer.from(pred.foreground.bits, "base64");
    const fg = Uint8Array.from({ length: H * W }, (_, p) => (bytes[p >> 3] >> (7 - (p & 7))) & 1);
    // a predicted pixel near the middle, and the size of its 4-connected component
    let seed = -1;
    for (let d = 0; seed < 0 && d < H; d++)
      for (let p = 0; p < H * W && seed < 0; p++) if (fg[p] && Math.abs(Math.floor(p / W) - H / 2) + Math.abs((p % W) - W / 2) <= d) seed = p;
    const seen = new Set([seed]);
    for (const todo = [seed]; todo.length; ) {
      const p = todo.pop()!;
      for (const q of [p - W, p + W, p % W ? p - 1 : -1, (p + 1) % W ? p + 1 : -1])
        if (q >= 0 && q < H * W && fg[q] && !seen.has(q)) seen.add(q) && todo.push(q);
    }
    await page.selectOption("#model", model);
    await page.selectOption("#image", image);
    await page.waitForFunction(() => /^prediction: \d+ pixels/.test(document.getElementById("status")!.textContent ?? ""));
    await page.selectOption("#roi-tool", "component");
    const box = (await page.locator("#view").boundingBox())!;
    const z = box.width / W;
    await page.mouse.click(box.x + ((seed % W) + 0.5) * z, box.y + (Math.floor(seed / W) + 0.5) * z);
    expect(await page.textContent("#roi-text")).toBe(`a RoI mask of ${seen.size} pixels (the run's --roi-mask, a PNG kept in the runs folder)`);
    expect(await page.isEnabled("#run")).toBe(true);
    // outside the prediction: a line saying where to click
    const out = fg.indexOf(0);
    await page.mouse.click(box.x + ((out % W) + 0.5) * z, box.y + (Math.floor(out / W) + 0.5) * z);
    expect(await page.textContent("#status")).toContain("no predicted structure there");
    await page.selectOption("#roi-tool", "rect");
  });

  it("after a reload, lists the server's runs: a running one is followed and can be stopped", async () => {
    const ROI = { row: 16, col: 0, height: 8, width: 8 };
    const res = await fetch(`http://127.0.0.1:${v.port}/api/runs`, {
      method: "POST",
      headers: { "x-segcause-token": v.token },
      body: JSON.stringify({ model: fx.model, image: fx.image, roi: ROI, method: "rise", options: { masks: 400000 } }),
    });
    const info = (await res.json()) as { id: string };
    // running, with progress, before the page is (re)loaded
    await new Promise<void>((ok) => {
      const off = v.queue.get(info.id)!.listen((e) => {
        if (e.type === "progress" && e.status.done > 0) {
          queueMicrotask(() => off());
          ok();
        }
      });
    });
    const p = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    p.on("pageerror", (e) => errors.push(e.message));
    await p.goto(v.url);
    await p.waitForSelector("body[data-ready]");
    await p.waitForFunction(() => /rise: \S+ \d+\/\d+ passes/.test(document.getElementById("runs")!.textContent ?? ""));
    // the first test's run, over before this page loaded, is listed too
    expect(await p.textContent("#runs")).toContain("zero: done");
    expect(await p.isEnabled("#stop")).toBe(true);
    await p.click("#stop");
    await p.waitForFunction(() => (document.getElementById("runs")!.textContent ?? "").includes("rise: stopped"));
    expect(v.queue.get(info.id)!.state).toBe("stopped");
    expect(errors).toEqual([]);
    await p.close();
  });

  it("opens a components result: its ranked effects as a table and the bar chart segcause drew", async () => {
    await page.locator("#results li", { hasText: "components result: comp" }).click();
    await page.waitForSelector("body[data-components]");
    const written = JSON.parse(readFileSync(join(fx.dir, "results", "comp", "components.json"), "utf8"));
    const rows = await page.locator("#comp-table tbody tr").allTextContents();
    expect(rows.length).toBe(written.units.length);
    expect(rows[0]).toContain(written.units[0].name);
    expect(await page.isHidden("#map-view")).toBe(true);
    // the page's own bar chart: one bar a unit, the first one's colour its effect's sign (red supports, blue hurts)
    const first = written.units[0];
    const drawn = await page.evaluate(() => {
      const cv = document.getElementById("comp-bars") as HTMLCanvasElement;
      const row = [...cv.getContext("2d")!.getImageData(0, 30 + 9, cv.width, 1).data];
      const colours = new Set<string>();
      for (let i = 0; i < row.length; i += 4) colours.add(row.slice(i, i + 3).join(","));
      return { height: cv.height, colours: [...colours] };
    });
    expect(drawn.height).toBe(30 + written.units.length * 18 + 10);
    if (first.effect !== 0) expect(drawn.colours).toContain(first.effect < 0 ? "183,28,28" : "13,71,161");
    const chart = page.locator('#comp-pictures img[alt="components.png"]');
    await chart.waitFor();
    expect(await chart.evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth > 0)).toBe(true);
    // Save PNG of the chart: the page's bars (at least the chart's size) with the first bar's colour, and the folder kept in the PNG
    const png = await saved(page, "#comp-save-bars");
    expect(png.name).toBe("segcause-components-comp-chart.png");
    expect(png.width).toBeGreaterThanOrEqual(720);
    expect(png.height).toBeGreaterThan(drawn.height);
    const barColour = first.effect < 0 ? [183, 28, 28] : [13, 71, 161];
    if (first.effect !== 0) expect(png.count((rgb) => rgb.every((v, i) => v === barColour[i]))).toBeGreaterThan(50);
    expect(png.text).toContainEqual({ keyword: "segcause", text: join(fx.dir, "results", "comp") });
    await page.screenshot({ path: join(fx.dir, "view-components.png"), fullPage: true });
    console.info(`view-browser.test.ts: screenshot at ${join(fx.dir, "view-components.png")}`);
  });

  it("draws a spatial components result's map over the image its provenance names", async () => {
    const dir = join(fx.dir, "spatial");
    mkdirSync(dir);
    const model = writeModel(dir, "copy.onnx", copyChannelModel());
    const image = await writeImage(dir, "gray.png", () => 200, 16);
    const comp = join(dir, "results", "spatial-run");
    expect(spatialComponents(model, image, comp).stderr).toBe("");
    const s = await startViewServer({ image, results: join(dir, "results"), runs: join(dir, "runs") });
    const p = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    try {
      await p.goto(s.url);
      await p.waitForSelector("body[data-ready]");
      await p.locator("#results li", { hasText: "components result" }).click();
      await p.waitForSelector('#comp-spatial canvas[data-spatial="spatial-0-feat.png"]');
      // the written map paints the RoI green and a cell without effect white (its scale is set outside the RoI);
      // drawn at the page's opacity over the image's gray 200, white becomes a lighter gray: the image shows through
      const [atRoi, away] = await p.evaluate(() => {
        const c = document.querySelector("#comp-spatial canvas") as HTMLCanvasElement;
        const g = c.getContext("2d")!;
        return [[...g.getImageData(5, 9, 1, 1).data], [...g.getImageData(13, 1, 1, 1).data]];
      });
      const opacity = Number(await p.inputValue("#opacity"));
      expect(atRoi[1] - atRoi[0]).toBeGreaterThan(50);
      for (const v of away.slice(0, 3)) expect(v).toBeCloseTo(200 * (1 - opacity) + 255 * opacity, -0.5);
      // Save PNG of the spatial maps: the map drawn larger, its green RoI cell there
      const png = await saved(p, "#comp-save-spatial");
      expect(png.name).toBe("segcause-components-spatial-run-spatial.png");
      expect(png.width).toBeGreaterThanOrEqual(256);
      expect(png.count(([r, g]) => g - r > 50)).toBeGreaterThan(16 * 16);
    } finally {
      await p.close();
      await s.close();
    }
  });

  it("opens an evaluate folder: its report's tables and curves are drawn, and its own tables and mean curves filtered by model, method and fill", async () => {
    const p = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await p.goto(w.url);
    await p.waitForSelector("body[data-ready]");
    await p.locator("#results li", { hasText: "evaluate result: results" }).click();
    await p.waitForSelector("body[data-evaluate]");
    const report = p.frameLocator("#report");
    await report.locator("table").first().waitFor();
    expect(await report.locator("table").count()).toBeGreaterThan(0);
    const curve = report.locator("figure img").first();
    await curve.waitFor();
    expect(await curve.evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth > 0)).toBe(true);
    expect(await p.textContent("#command")).toContain("segcause evaluate");
    // The filters over the folder's own tables and curves: one model, one method, one fill.
    await p.waitForSelector("body[data-eval-rows]");
    const model = (await p.locator("#ev-model option").nth(1).getAttribute("value"))!;
    const method = (await p.locator("#ev-method option").nth(1).getAttribute("value"))!;
    await p.selectOption("#ev-model", model);
    await p.selectOption("#ev-method", method);
    await p.selectOption("#ev-fill", "blur");
    const rows = await p.locator("#ev-table tbody tr").allTextContents();
    expect(rows.length).toBeGreaterThan(0);
    expect(String(rows.length)).toBe(await p.getAttribute("body", "data-eval-rows"));
    for (const r of rows) expect(r).toMatch(new RegExp(`${model}${method}(del|ins)_(auc|norm):blur`));
    expect(await p.getAttribute("body", "data-eval-curves")).toBe("1");
    // each chart has its method's line (the first colour, red) drawn
    const red = await p.evaluate(() =>
      ["ev-deletion", "ev-insertion"].map((id) => {
        const c = document.getElementById(id) as HTMLCanvasElement;
        const d = c.getContext("2d")!.getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] > 150 && d[i + 1] < 90 && d[i + 2] < 90) n++;
        return n;
      }),
    );
    expect(red[0]).toBeGreaterThan(100);
    expect(red[1]).toBeGreaterThan(100);
    // the pairwise tests for the same selection, then the ranks: as many rows as the files have for it
    const pairs = csvRecords(readFileSync(join(PUBLISHED, "pairs.csv"), "utf8")).filter(
      (r) => r.model === model && (r.a === method || r.b === method) && r.metric.endsWith(":blur"),
    );
    await p.waitForSelector(`body[data-eval-table="pairs.csv:${pairs.length}"]`);
    expect(await p.locator("#ev-stats tbody tr").count()).toBe(Math.min(300, pairs.length));
    // Save PNG of the curves: both charts, the method's red line in each half, the folder kept in the PNG
    const png = await saved(p, "#ev-save-curves");
    expect(png.name).toMatch(/^segcause-evaluate-results-.+-fill_blur\.png$/);
    expect(png.name).toContain(method);
    expect(png.width).toBeGreaterThanOrEqual(2 * 440);
    const half = Math.floor(png.width / 2);
    const redLine = ([r, g, b]: number[]) => r > 150 && g < 90 && b < 90;
    expect(png.count(redLine, 0, half)).toBeGreaterThan(100);
    expect(png.count(redLine, half, png.width)).toBeGreaterThan(100);
    expect(png.text).toContainEqual({ keyword: "segcause", text: PUBLISHED });
    await p.selectOption("#ev-stats-name", "ranks.csv");
    const ranks = csvRecords(readFileSync(join(PUBLISHED, "ranks.csv"), "utf8")).filter(
      (r) => r.model === model && r.method === method && r.metric.endsWith(":blur"),
    );
    await p.waitForSelector(`body[data-eval-table="ranks.csv:${ranks.length}"]`);
    await p.selectOption("#ev-method", "");
    expect(Number(await p.getAttribute("body", "data-eval-curves"))).toBeGreaterThan(1);
    await p.screenshot({ path: join(fx.dir, "view-evaluate.png") });
    console.info(`view-browser.test.ts: screenshot at ${join(fx.dir, "view-evaluate.png")}`);
    await p.close();
  });

  it("draws an evaluate cell's map over its image when chosen from the cell list", async () => {
    const data = join(fx.dir, "eval-data");
    mkdirSync(data);
    await writeImage(data, "a.png", () => 230);
    await writeMask(data, "a-mask.png", (y) => y >= 16);
    const manifest = join(data, "manifest.json");
    writeFileSync(manifest, JSON.stringify({ name: "tiny", cases: [{ id: "a", image: "a.png", mask: "a-mask.png", split: "test" }] }));
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
      "inside:8x1",
      "--fills",
      "zero",
      "--no-progress",
      "--out",
      out,
    );
    expect(e.code, e.stderr).toBe(0);
    const s = await startViewServer({ dataset: manifest, results: out, runs: join(fx.dir, "runs-cells") });
    const p = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    try {
      await p.goto(s.url);
      await p.waitForSelector("body[data-ready]");
      await p.locator("#results li", { hasText: "evaluate result" }).click();
      await p.waitForSelector('body[data-eval-cells="1"]');
      await p.locator("#ev-cells li").first().click();
      await p.waitForSelector("body[data-eval-cell]");
      const cellDir = join(out, "cells", "tiny", "causal", "a", "inside8-0", "zero");
      const map = decodeNpy(readFileSync(join(cellDir, "map.npy")));
      const attribution = JSON.parse(readFileSync(join(cellDir, "attribution.json"), "utf8"));
      const roi = attribution.roi;
      const drawn = await p.evaluate(() => {
        const c = document.getElementById("ev-cell-map") as HTMLCanvasElement;
        return { w: c.width, data: [...c.getContext("2d")!.getImageData(0, 0, c.width, c.height).data] };
      });
      expect(drawn.w).toBe(map.shape[1]);
      // where the map is 0 the image's gray shows; where it is not, the map's colour (outside the RoI's outline)
      let zero = 0,
        coloured = 0;
      map.data.forEach((v, i) => {
        const [y, x] = [Math.floor(i / drawn.w), i % drawn.w];
        const onOutline =
          (y === roi.row || y === roi.row + roi.height - 1 || x === roi.col || x === roi.col + roi.width - 1) &&
          y >= roi.row &&
          y < roi.row + roi.height &&
          x >= roi.col &&
          x < roi.col + roi.width;
        if (onOutline) return;
        const px = drawn.data.slice(i * 4, i * 4 + 3);
        if (v === 0) {
          expect(px).toEqual([230, 230, 230]);
          zero++;
        } else {
          expect(px).not.toEqual([230, 230, 230]);
          coloured++;
        }
      });
      expect(zero).toBeGreaterThan(0);
      expect(coloured).toBeGreaterThan(0);
      // hovering a pixel reads map.npy's value there (one where the map is not 0, one where it is)
      const cb = (await p.locator("#ev-cell-map").boundingBox())!;
      const k = cb.width / drawn.w;
      for (const i of [map.data.findIndex((v) => v !== 0), map.data.indexOf(0)]) {
        const [y, x] = [Math.floor(i / drawn.w), i % drawn.w];
        await p.mouse.move(cb.x + (x + 0.5) * k, cb.y + (y + 0.5) * k);
        expect(await p.textContent("#ev-cell-hover")).toBe(`pixel (${y}, ${x}): ${Number(map.data[i]).toPrecision(4)} ${attribution.valueUnits}`);
      }
      // Save PNG of the cell: the map drawn larger, its image's gray and its colours both there
      const png = await saved(p, "#ev-save-cell");
      expect(png.name).toBe("segcause-evaluate-cell-tiny-causal-a-inside8-0-zero.png");
      expect(png.width).toBeGreaterThanOrEqual(256);
      expect(png.count((rgb) => rgb.every((v) => v === 230))).toBeGreaterThan(zero);
      expect(png.count((rgb) => Math.max(...rgb) > Math.min(...rgb))).toBeGreaterThan(coloured);
      expect(png.text[0].text).toContain(join(out, "cells"));
    } finally {
      await p.close();
      await s.close();
    }
  });
});
