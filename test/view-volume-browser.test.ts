/**
 * `segcause view` on a volume in a real browser: NiiVue (WebGL, chromium's software renderer) draws the
 * hippocampus volume in three orientations; Run explains the box around the crosshair with the shipped
 * 3D U-Net, and the finished map is drawn over the volume (map-coloured pixels where there were none).
 * Skipped, with a line saying so, without /usr/bin/chromium or ../shared/data/hippocampus.
 */
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Browser, Page } from "playwright-core";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startViewServer, type ViewServer } from "../src/view/server.js";
import { tmp } from "./helpers/tiny.js";
import { CHROMIUM, launchChromium, mapPixels } from "./helpers/view.js";

const HIPPO = resolve("..", "shared", "data", "hippocampus");
const ready = existsSync(CHROMIUM) && existsSync(join(HIPPO, "manifest.json"));
if (!ready)
  console.warn(
    `view-volume-browser.test.ts: ${existsSync(CHROMIUM) ? "../shared/data/hippocampus" : CHROMIUM} is absent, so the volume browser test is skipped (apt-get install -y chromium; CI has the data)`,
  );

const IMAGE = join(HIPPO, "images", "hippocampus_008.nii.gz");

/** Pixels of the volume view coloured as a map (mapPixels: its colour bars, the bottom 60 rows, left out). */
async function viewMap(page: Page): Promise<number> {
  return (await mapPixels(await page.locator("#volume-view").screenshot())).map;
}

describe.skipIf(!ready)("segcause view on a volume in chromium (NiiVue)", () => {
  let v: ViewServer;
  let browser: Browser;

  beforeAll(async () => {
    v = await startViewServer({ dataset: join(HIPPO, "manifest.json"), runs: join(tmp(), "runs") });
    browser = await launchChromium(true);
  });
  afterAll(async () => {
    await browser?.close();
    await v?.close();
  });

  it("draws the volume in three orientations, runs zero ablation on the crosshair's box and draws its map over it", async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(v.url);
    await page.waitForSelector("body[data-ready]");
    expect(await page.isVisible("#volume-panel")).toBe(true);
    await page.selectOption("#v-volume", IMAGE);
    await page.click("#v-show");
    await page.waitForFunction(() => document.getElementById("v-roi")!.textContent!.startsWith("--roi "));
    // the volume drawn: not blank (gray levels over most of the three slices)
    const png = await page.locator("#volume-view").screenshot();
    const stats = await sharp(png).stats();
    expect(stats.channels[0].stdev).toBeGreaterThan(20);
    expect(await viewMap(page)).toBe(0);
    const roi = (await page.textContent("#v-roi"))!.split(" ")[1];
    await page.click("#v-run");
    await page.waitForFunction(() => /volume run \S+ (done|failed|stopped)/.test(document.getElementById("status")!.textContent!), null, {
      timeout: 120_000,
    });
    expect(await page.textContent("#status")).toContain("done");
    expect(await page.textContent("#command")).toContain(`--roi ${roi} --method zero --seed 0 --block=16`);
    // the map over the volume: its boxes are coloured
    await expect.poll(() => viewMap(page), { timeout: 20_000 }).toBeGreaterThan(1000);
    expect(errors).toEqual([]);
  });
});
