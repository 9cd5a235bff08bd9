// Check exported models with onnxruntime-node against the PyTorch reference written by train.py.
//   node training/verify_onnx.mjs unet-ph2 [deeplab-ph2 ...]
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import ort from "onnxruntime-node";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..");
let bad = 0;
for (const name of process.argv.slice(2)) {
  const card = JSON.parse(fs.readFileSync(path.join(root, "models", `${name}.onnx.json`), "utf8"));
  const c = card.input.channels === "gray" ? 1 : 3;
  const { height: h, width: w } = card.input;
  const rd = (f) => { const b = fs.readFileSync(path.join(here, "checkpoints", f)); return new Float32Array(b.buffer, b.byteOffset, b.length / 4); };
  const x = rd(`${name}.ref_in.bin`), yref = rd(`${name}.ref_out.bin`);
  const n = x.length / (c * h * w);
  const sess = await ort.InferenceSession.create(path.join(root, "models", `${name}.onnx`));
  const out = await sess.run({ image: new ort.Tensor("float32", x, [n, c, h, w]) });
  const y = out.mask.data;
  let maxd = 0, flips = 0;
  for (let i = 0; i < y.length; i++) { maxd = Math.max(maxd, Math.abs(y[i] - yref[i])); if ((y[i] > 0.5) !== (yref[i] > 0.5)) flips++; }
  const ok = maxd < 1e-2 && flips <= 1e-3 * y.length && JSON.stringify(out.mask.dims) === JSON.stringify([n, 1, h, w]);
  if (!ok) bad++;
  console.log(`${name}: dims ${out.mask.dims} max|ort-torch| ${maxd.toExponential(2)} threshold flips ${flips}/${y.length} ${ok ? "OK" : "FAIL"}`);
}
process.exit(bad ? 1 : 0);
