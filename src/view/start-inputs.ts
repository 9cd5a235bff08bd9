/**
 * The files `segcause view` is started with must be what their flag says, checked before the server
 * listens: a wrong file is one line at start (not an error on the page later), and its folder is never
 * opened to the page.
 */
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { imageInfo } from "../data/image.js";
import { PatchBank } from "../data/patchbank.js";
import { VolumeBank } from "../data/volume/volume-bank.js";
import { readVolume } from "../data/volume/volume-case.js";
import { readModelFile } from "../onnx/model-file.js";

export async function checkStartInputs(o: { model?: string; image?: string; bank?: string }, imageIsVolume: boolean): Promise<void> {
  if (o.model) readModelFile(o.model);
  if (o.bank) await (o.bank.endsWith(".scvbank") ? VolumeBank.load(o.bank) : PatchBank.load(o.bank));
  if (o.image) await (imageIsVolume ? readVolume(o.image) : imageInfo(readFileSync(o.image), basename(o.image)));
}
