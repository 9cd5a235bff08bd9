/** An RoI given as a mask image (`--roi-mask`), read on the model input's grid. */
import { type Case, checkMaskSize } from "../data/case.js";
import { loadMask, readInput } from "../data/image.js";
import type { Model } from "../model/model.js";

/** An RoI mask at the size of the image or of the model input (in model-input pixels after resizing). */
export async function loadRoiMask(path: string, model: Model, kase: Case): Promise<Uint8Array> {
  const allowed = [{ height: model.height, width: model.width, what: "the model input" }];
  if (kase.source) allowed.unshift({ ...kase.source, what: `the image ${kase.imagePath ?? kase.id}` });
  await checkMaskSize(path, await readInput(path), allowed, "draw the RoI mask on the image, at its size or at the model input size");
  return loadMask(path, model.height, model.width);
}
