// Check exported models with onnxruntime-node against the PyTorch reference written by train.py / train3d.py.
//   node training/verify_onnx.mjs unet-ph2 [deeplab-ph2 ... volumes/unet3d-hippocampus]
// A name is the model's path under models/ without .onnx; its reference pair is training/checkpoints/<basename>.ref_{in,out}.bin.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import ort from "onnxruntime-node";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..");

/** Input dims after the batch axis and output channels, from a 2D card (height, width) or a 3D one (depth too). */
function shapes(card) {
  const c = card.input.channels === "gray" ? 1 : 3;
  const { depth: d, height: h, width: w } = card.input;
  const spatial = d ? [d, h, w] : [h, w];
  return { inDims: [c, ...spatial], outDims: [card.output.channels?.length ?? 1, ...spatial] };
}

/** The threshold on the raw output: the card's probability threshold, as a logit for logits outputs (sigmoid channels). */
function rawThreshold(out) {
  const t = out.threshold ?? 0.5;
  return out.kind === "logits" ? Math.log(t / (1 - t)) : t;
}

let bad = 0;
for (const name of process.argv.slice(2)) {
  const card = JSON.parse(fs.readFileSync(path.join(root, "models", `${name}.onnx.json`), "utf8"));
  const { inDims, outDims } = shapes(card);
  const base = path.basename(name);
  const rd = (f) => {
    const b = fs.readFileSync(path.join(here, "checkpoints", f));
    return new Float32Array(b.buffer, b.byteOffset, b.length / 4);
  };
  const x = rd(`${base}.ref_in.bin`),
    yref = rd(`${base}.ref_out.bin`);
  const n = x.length / inDims.reduce((a, b) => a * b, 1);
  const thr = rawThreshold(card.output);
  const sess = await ort.InferenceSession.create(path.join(root, "models", `${name}.onnx`));
  const out = await sess.run({ image: new ort.Tensor("float32", x, [n, ...inDims]) });
  const y = out.mask.data;
  let maxd = 0,
    flips = 0;
  for (let i = 0; i < y.length; i++) {
    maxd = Math.max(maxd, Math.abs(y[i] - yref[i]));
    if (y[i] > thr !== yref[i] > thr) flips++;
  }
  const ok = y.length === yref.length && maxd < 1e-2 && flips <= 1e-3 * y.length && JSON.stringify(out.mask.dims) === JSON.stringify([n, ...outDims]);
  if (!ok) bad++;
  console.log(
    `${name}: dims ${out.mask.dims} max|ort-torch| ${maxd.toExponential(2)} threshold (${thr}) flips ${flips}/${y.length} ${ok ? "OK" : "FAIL"}`,
  );
}
process.exit(bad ? 1 : 0);
