/**
 * The viewer's volume panel in a real browser on the known-answer 3D fixture (test/helpers/causal3d.ts):
 * a RoI brushed with NiiVue's pen on a slice runs pdcr with the bank of the --dataset's train split as
 * `--roi-mask <the drawing> --label 1`; the map fills in round by round over the volume; the run's RoI is
 * the drawn voxels; Save PNG downloads the three orientations with the map's colours; the standard-error layer
 * (all 0 for this known answer) draws nothing; the run's folder, opened from the volume results, draws the map again;
 * Stop ends a long RISE run as Ctrl-C does.
 * Skipped, with a line saying so, without /usr/bin/chromium.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readNiftiBytes } from "../src/data/volume/nifti.js";
import { volumeMethodNames } from "../src/explain/catalog.js";
import { startViewServer, type ViewServer } from "../src/view/server.js";
import { CAUSAL, N, writeCausalFixture } from "./helpers/causal3d.js";
import { tmp } from "./helpers/tiny.js";
import { CHROMIUM, launchChromium, mapPixels } from "./helpers/view.js";

const ready = existsSync(CHROMIUM);
if (!ready)
  console.warn(
    `view-volume-tiny-browser.test.ts: ${CHROMIUM} is absent, so the volume panel's browser test is skipped (apt-get install -y chromium)`,
  );

describe.skipIf(!ready)("segcause view's volume panel in chromium (known-answer 3D model)", () => {
  let v: ViewServer;
  let browser: Browser;
  let fx: Awaited<ReturnType<typeof writeCausalFixture>>;
  let dir: string;

  beforeAll(async () => {
    dir = tmp();
    fx = await writeCausalFixture(dir);
    v = await startViewServer({ dataset: fx.manifest, model: fx.model, image: fx.image, runs: join(dir, "runs") });
    browser = await launchChromium(true);
  });
  afterAll(async () => {
    await browser?.close();
    await v?.close();
  });

  it("brushes a RoI on a slice, runs pdcr with the data set's bank (the map filling in), and saves the view as PNG", async () => {
    const page: Page = await browser.newPage({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(v.url);
    await page.waitForSelector("body[data-ready]");
    await page.selectOption("#v-model", fx.model);
    await page.selectOption("#v-volume", fx.image);
    await page.click("#v-show");
    await page.waitForFunction(() => document.getElementById("v-roi")!.textContent!.startsWith("--roi "));
    // every method with a volume form is offered, zero ablation chosen
    expect(await page.$$eval("#v-method option", (o) => o.map((x) => (x as HTMLOptionElement).value))).toEqual(volumeMethodNames());
    expect(await page.inputValue("#v-method")).toBe("zero");
    await page.selectOption("#v-method", "pdcr");
    // the data set gives the bank: pdcr runs, with no line saying why it cannot
    expect(await page.isVisible("#v-pdcr-note")).toBe(false);
    await page.fill("#v-options", "block=8");

    // the brush: a stroke across the middle of the first (axial) slice view
    await page.selectOption("#v-roi-kind", "brush");
    await page.locator("#nv").scrollIntoViewIfNeeded();
    const box = (await page.locator("#nv").boundingBox())!;
    const tile = Math.min(box.height, box.width / 3);
    const [x0, y0] = [box.x + tile * 0.1, box.y + box.height / 2];
    await page.mouse.move(x0, y0);
    await page.mouse.down();
    for (let s = 1; s <= 10; s++) await page.mouse.move(x0 + (tile * 0.3 * s) / 10, y0, { steps: 2 });
    await page.mouse.up();

    // every status line the run shows, as it shows them
    await page.evaluate(() => {
      const lines: string[] = [];
      (window as unknown as { statusLines: string[] }).statusLines = lines;
      const status = document.getElementById("status")!;
      new MutationObserver(() => lines.push(status.textContent!)).observe(status, { childList: true, characterData: true, subtree: true });
    });
    await page.click("#v-run");
    await page.waitForFunction(() => /volume run \S+ (done|failed|stopped)/.test(document.getElementById("status")!.textContent!), null, {
      timeout: 120_000,
    });
    expect(await page.textContent("#status")).toContain("done");
    // the map was drawn over the volume after a round, before the run ended
    expect(Number(await page.getAttribute("body", "data-volume-partial"))).toBeGreaterThan(1);
    // with the run's progress (passes done; of all, and left, once the schedule knows them: this run is too short) and the map's passes
    const lines = await page.evaluate(() => (window as unknown as { statusLines: string[] }).statusLines);
    expect(
      lines.some((l) => /^volume run r1: building the volume bank/.test(l)),
      lines.join("\n"),
    ).toBe(true);
    expect(
      lines.some((l) =>
        /^volume run r1: screening \w+ \d+\/(\?|\d+) passes( \(\d+ left\))?( · ETA \d+:\d\d)? · map so far after \d+ passes$/.test(l),
      ),
      lines.join("\n"),
    ).toBe(true);
    const command = (await page.textContent("#command"))!;
    const mask = /--roi-mask (\S+) --label 1 --method pdcr/.exec(command)?.[1];
    expect(mask, command).toBeDefined();
    expect(command).toMatch(/^segcause bank build .* && segcause explain /);

    // the run's RoI is the drawing: voxels of one axial slice (k), as map.json records it
    const out = /--out (\S+)$/.exec(command)![1];
    const m = JSON.parse(readFileSync(join(out, "map.json"), "utf8"));
    expect(m.roi).toBe(`the structure of ${mask} (label 1)`);
    const drawn = await readNiftiBytes(readFileSync(mask!), mask!);
    expect(drawn.dims).toEqual([N, N, N]);
    const ks = new Set<number>();
    let voxels = 0;
    for (let p = 0; p < drawn.data.length; p++) if (drawn.data[p] > 0) voxels++, ks.add(Math.floor(p / (N * N)));
    expect(voxels).toBeGreaterThan(1);
    expect(ks.size).toBe(1);
    // the known answer: the causal box's effect (when the drawing left it outside the RoI)
    const causal = m.units.find((u: { z: number; y: number; x: number }) => u.z === CAUSAL.z && u.y === CAUSAL.y && u.x === CAUSAL.x);
    expect(causal?.effect ?? Number.NaN).toBeCloseTo(-100, 6);

    // Save PNG: the three orientations with the map's colours (the drawing, in the pen's red, cleared first)
    await page.click("#v-clear");
    await expect.poll(async () => (await mapPixels(await page.locator("#nv").screenshot())).map, { timeout: 20_000 }).toBeGreaterThan(500);
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#v-save")]);
    expect(download.suggestedFilename()).toBe("case-map.png");
    const png = readFileSync((await download.path())!);
    const saved = await mapPixels(png);
    expect(saved.stdev).toBeGreaterThan(20);
    expect(saved.map).toBeGreaterThan(500);

    // the standard errors: every draw of the causal box gives −100 and every other box 0, so none is drawn
    const shown = async () => (await mapPixels(await page.locator("#nv").screenshot())).map;
    await page.selectOption("#v-layer", "stderr");
    await expect.poll(shown, { timeout: 20_000 }).toBeLessThan(20);
    await page.selectOption("#v-layer", "map");
    await expect.poll(shown, { timeout: 20_000 }).toBeGreaterThan(500);
    // Show puts the map away; opening the run's folder from the volume results draws it again
    await page.click("#v-show");
    await expect.poll(shown, { timeout: 20_000 }).toBeLessThan(20);
    await page.selectOption("#v-results", out);
    await page.click("#v-open");
    await page.waitForFunction(() => document.getElementById("status")!.textContent!.startsWith("pdcr map of case.nii.gz"));
    await expect.poll(shown, { timeout: 20_000 }).toBeGreaterThan(500);

    // Stop: a long RISE run on the crosshair's box stops as on Ctrl-C once it has started
    await page.selectOption("#v-roi-kind", "box");
    await page.selectOption("#v-method", "rise");
    await page.fill("#v-options", "masks=200000");
    await page.click("#v-run");
    await page.waitForFunction(() => /^volume run r2: .* \d+\/\d+ passes/.test(document.getElementById("status")!.textContent!), null, {
      timeout: 60_000,
    });
    expect(await page.isEnabled("#v-stop")).toBe(true);
    await page.click("#v-stop");
    await page.waitForFunction(() => /^volume run r2 stopped: stopped/.test(document.getElementById("status")!.textContent!), null, {
      timeout: 60_000,
    });
    expect(await page.isEnabled("#v-stop")).toBe(false);
    expect(await page.textContent("#command")).toContain("--method rise --seed 0 --masks=200000");
    expect(errors).toEqual([]);
  });
});
