/** The model's prediction over an image, for the page to draw the RoI on: the same loadCase() and forward pass as a run. */
import { loadCase } from "../data/case.js";
import { encodePng } from "../data/image.js";
import { Model } from "../model/model.js";
import { binarize } from "../target/outcome.js";

export interface Prediction {
  /** model-input size: the RoI's pixels */
  width: number;
  height: number;
  /** the image as the model sees it (resized as its card says), PNG */
  image: Buffer;
  /** the binarised prediction as a translucent RGBA PNG */
  mask: Buffer;
  /** predicted pixels */
  area: number;
  /** the binarised prediction at the output's size (the page picks a connected component of it as a RoI) */
  foreground: { height: number; width: number; data: Uint8Array };
}

/** 0/1 values as bits, 8 a byte, most significant first (as the page sends a RoI mask). */
export function packBits(values: Uint8Array): Buffer {
  const out = Buffer.alloc(Math.ceil(values.length / 8));
  for (let p = 0; p < values.length; p++) if (values[p]) out[p >> 3] |= 1 << (7 - (p & 7));
  return out;
}

/** Loaded models by path, kept while the server runs (a load costs a probe pass). */
export class ModelCache {
  private readonly loaded = new Map<string, Promise<Model>>();

  get(path: string): Promise<Model> {
    let m = this.loaded.get(path);
    if (!m) {
      m = Model.load(path, { threads: 1, workers: 1 });
      this.loaded.set(path, m);
      m.catch(() => this.loaded.delete(path));
    }
    return m;
  }

  async release(): Promise<void> {
    const all = [...this.loaded.values()];
    this.loaded.clear();
    await Promise.allSettled(all.map(async (m) => (await m).release()));
  }
}

export async function predict(models: ModelCache, modelPath: string, imagePath: string): Promise<Prediction> {
  const model = await models.get(modelPath);
  const kase = await loadCase(model, imagePath);
  // A model exported for a fixed batch runs a full batch of copies.
  const n = model.fixedBatch ?? 1;
  const input = model.preprocess(kase.image);
  const batch = model.batchBuffer(n * input.length);
  for (let i = 0; i < n; i++) batch.set(input, i * input.length);
  const out = await model.infer(batch, n);
  const layout = model.outputLayout;
  const fg = binarize(model.card.output, layout, out);
  const rgba = new Uint8Array(layout.width * layout.height * 4);
  let area = 0;
  for (let p = 0; p < fg.length; p++) {
    if (!fg[p]) continue;
    area++;
    rgba.set([0, 190, 255, 110], p * 4);
  }
  return {
    width: model.width,
    height: model.height,
    image: await encodePng(kase.image),
    mask: await encodePng({ width: layout.width, height: layout.height, channels: 4, data: rgba }),
    area,
    foreground: { height: layout.height, width: layout.width, data: fg },
  };
}
