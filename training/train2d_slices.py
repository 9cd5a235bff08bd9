#!/usr/bin/python3
"""Train segcause's 2D hippocampus slice model (explains volumes slice by slice), export it to ONNX with its card.

    nice -n 10 /usr/bin/python3 training/train2d_slices.py --epochs 8 --seed 0

Train on the manifest's split=train (every axial slice, i.e. every k of the RAS volumes), keep the weights with the
best val whole-hippocampus Dice, report test Dice of the stacked slice predictions per volume (on the volume's grid).

Input contract (as segcause feeds a volume to a 2D model slice by slice, docs/volumes.md "2D models slice by slice"):
each volume is windowed to its own [0.5, 99.5] percentiles (the value at sorted index round(p/100·(n−1))) mapped to
0..255, a slice (fixed k) is the [j, i] plane (rows j, columns i), placed centred in the 64×48 image (offset
floor((box − n)/2), the rest 0), and fed as the card says (pixel/255, gray). Output `mask` [N,1,64,48] logits of
the whole hippocampus (label > 0); a pixel is in the mask when its logit > 0.
"""
import argparse
import glob
import json
import os
import sys
import time

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from archs import UNet, count_flops  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
DATA = os.environ.get("SEGCAUSE_DATA", os.path.normpath(os.path.join(ROOT, "..", "shared", "data")))
DATASET = "hippocampus"
BOX = (64, 48)  # [H, W] = (j, i): covers every slice (j <= 59, i <= 43) and divides by 2**3
WINDOW = (0.5, 99.5)
NAME = "unet2d-hippocampus-slices"


def window01(v):
    """The per-volume window of segcause's slice path: percentiles at sorted index round(p/100·(n−1)) → [0, 1]."""
    s = np.sort(v.ravel().astype(np.float32))
    at = lambda p: s[min(len(s) - 1, max(0, int(np.floor(p / 100 * (len(s) - 1) + 0.5))))]  # noqa: E731
    lo, hi = float(at(WINDOW[0])), float(at(WINDOW[1]))
    span = hi - lo if hi > lo else 1.0
    # 8-bit pixels through the card's scale 255: the same float32 values segcause feeds
    return ((np.clip(v, lo, hi) - lo) / span * 255.0).astype(np.float32) / np.float32(255.0)


def offsets(shape):
    return [(b - n) // 2 for n, b in zip(shape, BOX)]


def load_split(split):
    man = json.load(open(os.path.join(DATA, DATASET, "manifest.json")))
    out = []
    for c in man["cases"]:
        if c["split"] != split:
            continue
        im = np.asarray(nib.load(os.path.join(DATA, DATASET, c["image"])).dataobj, dtype=np.float32).transpose(2, 1, 0)
        lb = np.rint(np.asarray(nib.load(os.path.join(DATA, DATASET, c["mask"])).dataobj)).astype(np.uint8).transpose(2, 1, 0)
        out.append((c["id"], window01(im), (lb > 0).astype(np.float32)))  # [k, j, i]
    return out


def slices_of(vol):
    """[K, j, i] → [K, 1, 64, 48] centred (assumes j <= 64, i <= 48, true for this data set)."""
    k, h, w = vol.shape
    oy, ox = offsets((h, w))
    out = np.zeros((k, 1) + BOX, dtype=np.float32)
    out[:, 0, oy : oy + h, ox : ox + w] = vol
    return out


def unslice(pred, shape):
    oy, ox = offsets(shape[1:])
    return pred[:, 0, oy : oy + shape[1], ox : ox + shape[2]]


def dice(p, g):
    s = p.sum() + g.sum()
    return 1.0 if s == 0 else float(2 * (p & g).sum() / s)


def evaluate(net, cases):
    net.eval()
    out = {}
    with torch.no_grad():
        for cid, x, y in cases:
            logits = net(torch.from_numpy(slices_of(x))).numpy()
            out[cid] = dice(unslice(logits, x.shape) > 0, y > 0)
    return out


SECTION = "## 2D slice models (a 2D model explains a volume slice by slice)"


def slice_section(out_dir):
    """The README section of the 2D slice models beside it, from their cards (train3d.py's README keeps it)."""
    rows, cmds = [], []
    for p in sorted(glob.glob(os.path.join(out_dir, "*.onnx.json"))):
        c = json.load(open(p))
        if c["input"].get("layout") == "ncdhw":
            continue
        m, t, i = c["metrics"], c["training"], c["input"]
        size = os.path.getsize(p[: -len(".json")]) / 1e6
        best = max(t["history"], key=lambda h: h["val_dice"])["epoch"]
        rows.append(
            f"| `{c['name']}.onnx` | {c['architecture']} | {t['params'] / 1e3:.0f}K | {size:.2f} MB | {t['flops_per_slice'] / 1e6:.0f}M "
            f"| {m['dice_mean']:.3f} ± {m['dice_sd']:.3f} ({m['dice_min']:.3f}–{m['dice_max']:.3f}) | {m['n']} | {m['val_dice']:.3f} "
            f"| {i['height']}×{i['width']} across {i['slices']['axis']} | {best} of {t['epochs']} | {t['seconds'] / 60:.1f} min |")
        cmds.append(f"- `{c['name']}`: `{t['command']}`")
    if not rows:
        return []
    return [
        SECTION,
        "",
        "2D networks with a 2D card (`input.slices` states the slice axis and the per-volume window): segcause runs",
        "them on a volume slice by slice (docs/volumes.md, \"2D models slice by slice\"). Written by",
        "`training/train2d_slices.py` from the cards.",
        "",
        "| file | architecture | params | ONNX size | FLOPs/slice | test Dice whole mean ± sd (min–max) | n test | val Dice "
        "| input H×W, slices | best epoch of epochs | training time |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Dice is per volume, of the slices' predictions stacked back into the volume (logit > 0) against label > 0",
        "(whole hippocampus), on the volume's own grid, averaged over the test volumes of the manifest's split. Training",
        "time: wall time of the epochs on a 2-core CPU shared with other jobs (1 torch thread, nice 10): an upper bound.",
        "",
        "Commands:",
        "",
        *cmds,
        "",
        "Contract: input `image` float32 `[N,1,64,48]` = one axial slice (fixed k) of a RAS volume, rows j, columns i,",
        "centred (offset floor((64 − nj)/2), floor((48 − ni)/2)), the rest 0; each volume windowed to its 0.5–99.5",
        "percentiles → 0..255, then /255 (the card's scale). Output `mask` float32 `[N,1,64,48]` logits of the whole",
        "hippocampus.",
        "",
    ]


def write_section(out_dir):
    """Replaces (or appends) the 2D slice models' section of models/volumes/README.md."""
    path = os.path.join(out_dir, "README.md")
    text = open(path).read() if os.path.exists(path) else ""
    if SECTION in text:
        text = text[: text.index(SECTION)].rstrip("\n") + "\n"
    with open(path, "w") as f:
        f.write(text + ("\n" if text else "") + "\n".join(slice_section(out_dir)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.003)
    ap.add_argument("--base", type=int, default=8)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=os.path.join(ROOT, "models", "volumes"))
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.RandomState(args.seed)
    train, val, test = load_split("train"), load_split("val"), load_split("test")
    X = np.concatenate([slices_of(x) for _, x, _ in train])
    Y = np.concatenate([slices_of(y) for _, _, y in train])
    print(f"{len(train)} train volumes, {len(X)} slices; val {len(val)}, test {len(test)}", flush=True)
    net = UNet(in_ch=1, base=args.base, depth=args.depth)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    steps = args.epochs * ((len(X) + args.batch - 1) // args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=0.1)
    best, best_state, history = -1.0, None, []
    t0 = time.time()
    for ep in range(1, args.epochs + 1):
        net.train()
        order = rng.permutation(len(X))
        total = 0.0
        te = time.time()
        for s in range(0, len(X), args.batch):
            idx = order[s : s + args.batch]
            x, y = X[idx].copy(), Y[idx].copy()
            flip = rng.rand(len(idx)) < 0.5  # left and right hippocampi both occur: flip along i
            x[flip], y[flip] = x[flip][..., ::-1], y[flip][..., ::-1]
            x = x * (1 + rng.uniform(-0.1, 0.1, (len(idx), 1, 1, 1))).astype(np.float32)
            xt, yt = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y))
            logits = net(xt)
            p = torch.sigmoid(logits)
            inter = (p * yt).sum()
            loss = F.binary_cross_entropy_with_logits(logits, yt) + 1 - (2 * inter + 1) / (p.sum() + yt.sum() + 1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(idx)
        v = evaluate(net, val)
        vm = float(np.mean(list(v.values())))
        history.append({"epoch": ep, "loss": round(total / len(X), 5), "val_dice": round(vm, 6), "seconds": round(time.time() - te, 1)})
        print(json.dumps(history[-1]), flush=True)
        if vm > best:
            best, best_state = vm, {k: t.clone() for k, t in net.state_dict().items()}
    seconds = time.time() - t0
    net.load_state_dict(best_state)
    net.eval()
    t = evaluate(net, test)
    d = np.array(list(t.values()))
    onnx_path = os.path.join(args.out, f"{NAME}.onnx")
    torch.onnx.export(net, torch.zeros(1, 1, *BOX), onnx_path, opset_version=17, input_names=["image"], output_names=["mask"],
                      dynamic_axes={"image": {0: "N"}, "mask": {0: "N"}})
    flops = count_flops(net, torch.zeros(1, 1, *BOX))
    card = {
        "schema": "segcause.modelcard/1",
        "name": NAME,
        "architecture": "unet",
        "dataset": "hippocampus",
        "description": f"plain 2D U-Net ({args.depth} down/up levels, base {args.base} channels) on axial slices (k) of the hippocampus "
        "MRI volumes, 1 sigmoid-logit channel (whole hippocampus); explains a volume slice by slice",
        "input": {"name": "image", "layout": "nchw", "height": BOX[0], "width": BOX[1], "channels": "gray", "scale": 255, "mean": [0],
                  "std": [1], "resize": "bilinear",
                  "slices": {"axis": "k", "window": {"low": WINDOW[0], "high": WINDOW[1]}}},
        "output": {"name": "mask", "layout": "nchw", "kind": "logits", "activation": "sigmoid", "channel": 0, "threshold": 0.5},
        "metrics": {"split": "test", "n": len(d), "dice_mean": round(float(d.mean()), 6), "dice_sd": round(float(d.std()), 6),
                    "dice_min": round(float(d.min()), 6), "dice_max": round(float(d.max()), 6), "val_dice": round(best, 6),
                    "per_volume": {k: round(v, 6) for k, v in t.items()}},
        "training": {"command": "nice -n 10 /usr/bin/python3 training/train2d_slices.py " + " ".join(sys.argv[1:]), "seed": args.seed,
                     "epochs": args.epochs, "seconds": round(seconds, 1), "params": sum(p.numel() for p in net.parameters()),
                     "flops_per_slice": int(flops), "threads": args.threads, "torch": torch.__version__,
                     "loss": "bce+dice (1 sigmoid channel)", "optimizer": f"AdamW lr={args.lr} wd=1e-4, one-cycle, batch {args.batch}",
                     "augmentation": "flip along i, intensity gain ±0.1", "selection": "best val whole-hippocampus Dice (stacked per volume)",
                     "split": f"manifest split: train {len(train)} / val {len(val)} / test {len(test)}", "history": history,
                     "onnx_opset": 17},
    }
    with open(onnx_path + ".json", "w") as f:
        json.dump(card, f, indent=2)
        f.write("\n")
    write_section(args.out)
    print(f"test Dice {d.mean():.3f} ± {d.std():.3f} ({d.min():.3f}–{d.max():.3f}), val {best:.3f}, {seconds:.0f} s", flush=True)


if __name__ == "__main__":
    main()
