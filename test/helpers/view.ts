/** What the `segcause view` tests share: the server's JSON API as the page calls it, and Debian's Chromium. */
import { type Browser, chromium } from "playwright-core";
import sharp from "sharp";
import type { ViewServer } from "../../src/view/server.js";

/** Debian's Chromium (.ci/run installs it); the browser tests are skipped with a message without it. */
export const CHROMIUM = "/usr/bin/chromium";

/** Chromium flags of every browser test: no sandbox (root in CI), nothing fetched from the network. */
const BASE_ARGS = ["--no-sandbox", "--disable-background-networking", "--no-first-run"];

/**
 * Headless Chromium; `webgl` gives NiiVue's volume panel WebGL 2 without a GPU (SwiftShader), otherwise
 * the GPU is off (the 2D page draws on a canvas).
 */
export function launchChromium(webgl: boolean): Promise<Browser> {
  const more = webgl ? ["--use-angle=swiftshader", "--enable-unsafe-swiftshader"] : ["--disable-gpu", "--disable-component-update", "--disable-sync"];
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...BASE_ARGS, ...more] });
}

/**
 * One call to the server's API as the page makes it: GET without a body, POST with a JSON body, or a
 * string or bytes as they are; the server's token unless `token` is false. Each call on a new
 * connection: the server lives in the test's process, so a blocking spawnSync can hold its idle
 * keep-alive socket open past its timeout until the moment fetch reuses it (ECONNRESET, seen under load).
 */
export async function viewCall(
  v: ViewServer,
  path: string,
  body?: unknown,
  opts: { headers?: Record<string, string>; token?: boolean } = {},
  // biome-ignore lint/suspicious/noExplicitAny: the server's JSON, each field checked by the assertion that reads it
): Promise<{ status: number; json: any }> {
  const res = await fetch(`http://127.0.0.1:${v.port}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { connection: "close", ...(opts.token === false ? {} : { "x-segcause-token": v.token }), ...opts.headers },
    body: body === undefined ? undefined : typeof body === "string" ? body : body instanceof Uint8Array ? new Uint8Array(body) : JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

/**
 * Pixels of a screenshot coloured as a map (blue minus red beyond 60 either way: far from gray and from
 * the crosshair's green), the bottom `skipBottom` rows (the colour bars) left out, and the first
 * channel's standard deviation.
 */
export async function mapPixels(png: Buffer, skipBottom = 60): Promise<{ map: number; stdev: number }> {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  let map = 0;
  for (let y = 0; y < info.height - skipBottom; y++)
    for (let x = 0; x < info.width; x++) {
      const p = (y * info.width + x) * 3;
      if (Math.abs(data[p + 2] - data[p]) > 60) map++;
    }
  return { map, stdev: (await sharp(png).stats()).channels[0].stdev };
}
