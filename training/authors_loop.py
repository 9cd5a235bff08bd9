"""The PdCR authors' map loop in PyTorch, for `npm run bench -- --authors` (src/bench/authors.ts) only.

The bench writes a folder: the zoo model's folded Conv weights read from its ONNX file by segcause's own
reader, the preprocessed image, the ground truth, the patches as segcause draws them, each block's draw
numbers, and ONNX Runtime's output on the image. This script builds the architecture of training/archs.py,
loads those weights (BatchNorm is folded into the convolutions in the ONNX export, so it becomes the
identity here), refuses when its output differs from ONNX Runtime's by more than the tolerance, and then
times the authors' schedule as their released code runs it: per block, one batch of S screening draws and,
when any |delta| >= tau, one batch of N fresh draws, outcome 100 * Dice of the thresholded RoI against the
ground truth, in float32 under torch.no_grad. Only the draw numbers come from segcause (its paper schedule's
stream) instead of torch.randint, so both sides run the same passes and their maps can be compared. With a
time budget the blocks run nearest the RoI first until it is spent, and the bench extrapolates the whole
map's time from the mean time of a screening batch and of a fine batch.

    /usr/bin/python3 training/authors_loop.py <folder>     # writes <folder>/result.json
"""
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from archs import WithSigmoid, build  # noqa: E402


def refuse(problem):
    print(json.dumps({"refused": problem}))
    sys.exit(2)


def load_net(folder, cfg):
    net = build(cfg["architecture"], in_ch=cfg["channels"], size=cfg["height"])
    meta = json.load(open(os.path.join(folder, "weights.json")))
    flat = np.fromfile(os.path.join(folder, "weights.bin"), dtype="<f4")
    loaded = set()
    with torch.no_grad():
        for c in meta["convs"]:
            try:
                m = net.get_submodule(c["module"])
            except AttributeError:
                refuse(f"the ONNX Conv {c['node']} names module {c['module']}, which archs.py's {cfg['architecture']} does not have")
            if not isinstance(m, nn.Conv2d) or list(m.weight.shape) != c["weight"][1]:
                refuse(f"module {c['module']} is not a Conv2d of shape {c['weight'][1]}")
            w0, wshape = c["weight"]
            m.weight.copy_(torch.from_numpy(flat[w0 : w0 + int(np.prod(wshape))].reshape(wshape)))
            b0, bshape = c["bias"]
            b = torch.from_numpy(flat[b0 : b0 + bshape[0]].copy())
            if m.bias is None:
                m.bias = nn.Parameter(b)  # the folded BatchNorm's shift
            else:
                m.bias.copy_(b)
            loaded.add(c["module"])
    convs = {n for n, m in net.named_modules() if isinstance(m, nn.Conv2d)}
    others = [n for n, m in net.named_modules() if isinstance(m, (nn.ConvTranspose2d, nn.Linear, nn.LayerNorm))]
    if convs != loaded or others:
        refuse(f"weights for {len(loaded)} of {len(convs)} convolutions; layers without a mapping: {others[:3]}")
    # The export folded every BatchNorm into the convolution before it.
    for name, m in list(net.named_modules()):
        if isinstance(m, nn.BatchNorm2d):
            parent, _, leaf = name.rpartition(".")
            setattr(net.get_submodule(parent) if parent else net, leaf, nn.Identity())
    return WithSigmoid(net).eval()


def dice100(pred, gt):
    """100 * 2 sum(p g) / (sum p + sum g + 1e-10) per batch item, as the authors' code (float32)."""
    inter = (pred * gt).sum(dim=(1, 2, 3))
    return 2.0 * inter / (pred.sum(dim=(1, 2, 3)) + gt.sum(dim=(1, 2, 3)) + 1e-10) * 100


def main(folder):
    cfg = json.load(open(os.path.join(folder, "config.json")))
    torch.set_num_threads(cfg["threads"])
    C, H, W = cfg["channels"], cfg["height"], cfg["width"]
    x = torch.from_numpy(np.fromfile(os.path.join(folder, "image.bin"), dtype="<f4").reshape(1, C, H, W))
    gt = torch.from_numpy(np.fromfile(os.path.join(folder, "mask.bin"), dtype=np.uint8).astype(np.float32).reshape(1, 1, H, W))
    ort_out = np.fromfile(os.path.join(folder, "ort-output.bin"), dtype="<f4").reshape(H, W)
    patches = torch.from_numpy(np.fromfile(os.path.join(folder, "patches.bin"), dtype="<f4").reshape(-1, C, cfg["block"], cfg["block"]))
    units = np.array(cfg["units"], dtype=np.int64)
    draws = np.fromfile(os.path.join(folder, "draws.bin"), dtype="<i4").reshape(len(units), -1)
    model = load_net(folder, cfg)

    with torch.no_grad():
        diff = float(np.abs(model(x)[0, 0].numpy() - ort_out).max())
    if not diff <= cfg["tolerance"]:
        refuse(f"the torch model's output differs from ONNX Runtime's by {diff:.3g} (> {cfg['tolerance']})")

    S, N, tau, B = cfg["screen"], cfg["samples"], cfg["tau"], cfg["block"]
    r0, c0, R = cfg["roi"]["row"], cfg["roi"]["col"], cfg["roi"]["size"]
    gt_roi = gt[:, :, r0 : r0 + R, c0 : c0 + R]

    def outcomes(batch):
        out = (model(batch) > 0.5).float()[:, :, r0 : r0 + R, c0 : c0 + R]
        return dice100(out, gt_roi.expand(len(batch), -1, -1, -1))

    def perturbed(r, c, idx):
        xs = x.repeat(len(idx), 1, 1, 1)
        xs[:, :, r : r + B, c : c + B] = patches[torch.from_numpy(idx.astype(np.int64))]
        return xs

    # Blocks nearest the RoI first: a time budget then covers the blocks with effects (fine batches, which
    # dominate the time, and the map check). A batch's time does not depend on the block, and the order of
    # blocks changes no block's value; the loop itself is the authors'.
    centre = np.array([r0 + R / 2 - B / 2, c0 + R / 2 - B / 2])
    order = np.argsort(np.abs(units - centre).max(axis=1), kind="stable")
    effects = np.full(len(units), np.nan)
    seconds = {"screen": 0.0, "fine": 0.0}
    batches = {"screen": 0, "fine": 0}
    t0 = time.perf_counter()
    with torch.no_grad():
        base = outcomes(x).item()
        base_s = time.perf_counter() - t0
        for u in order:
            # past the budget, once a batch of each kind has been timed (the bench extrapolates from both)
            if batches["fine"] > 0 and time.perf_counter() - t0 > cfg["budgetSeconds"]:
                break
            r, c = units[u]
            t = time.perf_counter()
            d = outcomes(perturbed(r, c, draws[u, :S])) - base
            seconds["screen"] += time.perf_counter() - t
            batches["screen"] += 1
            effects[u] = 0.0
            if bool((d.abs() < tau).all()):
                continue
            t = time.perf_counter()
            ate = (outcomes(perturbed(r, c, draws[u, S : S + N])) - base).mean().item()
            seconds["fine"] += time.perf_counter() - t
            batches["fine"] += 1
            effects[u] = ate if abs(ate) >= tau else 0.0
    json.dump(
        {
            "wallMs": 1000 * (time.perf_counter() - t0),
            "baseMs": 1000 * base_s,
            "seconds": seconds,
            "batches": batches,
            "base": base,
            "maxDiffOrt": diff,
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "effects": [None if np.isnan(e) else e for e in effects.tolist()],
        },
        open(os.path.join(folder, "result.json"), "w"),
    )


if __name__ == "__main__":
    main(sys.argv[1])
