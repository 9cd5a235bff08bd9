#!/usr/bin/python3
"""Train segcause's 3D hippocampus model, export it to ONNX and write its card and models/volumes/README.md.

    nice -n 5 /usr/bin/python3 training/train3d.py --epochs 6 --seed 0       # trains (resumes if a checkpoint exists)
    /usr/bin/python3 training/train3d.py --finish                              # best checkpoint -> test, ONNX, card, README

Train on split=train, keep the weights with the best val whole-hippocampus Dice, report test Dice.
Every epoch ends with a checkpoint (training/checkpoints/, git-ignored), so a killed run resumes where it stopped.

Input contract of the exported graph (`image` float32 [N,1,D,H,W], D,H,W = k,j,i of the NIfTI voxel grid):
each volume is z-scored over its own voxels, then placed in a fixed BOX, centred (offset floor((box-n)/2) per
axis; a larger axis is cropped by the same rule), the rest filled with 0 (the volume's mean after z-scoring).
Output `mask` [N,3,D,H,W] sigmoid logits: whole hippocampus (label>0), anterior (label 1), posterior (label 2).
"""
import argparse
import glob
import json
import os
import random
import sys
import time

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from archs import count_flops  # noqa: E402
from archs3d import DESCRIPTIONS3D, build3d  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
DATA = os.environ.get("SEGCAUSE_DATA", os.path.normpath(os.path.join(ROOT, "..", "shared", "data")))
DATASET = "hippocampus"
BOX = (48, 64, 48)  # [D,H,W] = (k,j,i); covers every volume (k<=47, j<=59, i<=43) and divides by 2**3
CHANNELS = ["whole hippocampus (label > 0)", "anterior (label 1)", "posterior (label 2)"]
CHANNEL_KEYS = ["whole", "label1", "label2"]
FLOOR_WHOLE = 0.80


# ---- data -----------------------------------------------------------------------------------------
def zscore(v):
    v = v.astype(np.float64)
    sd = v.std()
    return ((v - v.mean()) / (sd if sd > 0 else 1.0)).astype(np.float32)


def targets(lab):
    """label volume [D,H,W] -> [3,D,H,W] uint8: whole, label 1, label 2."""
    return np.stack([lab > 0, lab == 1, lab == 2]).astype(np.uint8)


def load_split(split):
    man = json.load(open(os.path.join(DATA, DATASET, "manifest.json")))
    ids, xs, ys = [], [], []
    for c in man["cases"]:
        if c["split"] != split:
            continue
        im = nib.load(os.path.join(DATA, DATASET, c["image"]))
        lb = nib.load(os.path.join(DATA, DATASET, c["mask"]))
        if not np.allclose(np.abs(np.diag(im.affine)[:3]), 1.0):
            raise SystemExit(f"{c['id']}: not 1 mm isotropic; this script trains at 1 mm only")
        # nibabel gives (i,j,k); the model's [D,H,W] is (k,j,i)
        xs.append(zscore(np.asarray(im.dataobj, dtype=np.float32).transpose(2, 1, 0)))
        ys.append(np.rint(np.asarray(lb.dataobj)).astype(np.uint8).transpose(2, 1, 0))
        ids.append(c["id"])
    return ids, xs, ys


def window(n, size, start):
    """Copy rule along one axis: volume indices [a0,a1) go to box indices [b0,b1) when the volume starts at `start`."""
    a0, b0 = max(0, -start), max(0, start)
    m = min(n - a0, size - b0)
    return slice(a0, a0 + m), slice(b0, b0 + m)


def centre_offsets(shape, box=BOX):
    return [(b - n) // 2 for n, b in zip(shape, box)]


def place(v, box, starts, fill=0):
    """Put array v [...,D,H,W] into a box [...,*box] with v's origin at box index `starts` (negative crops)."""
    out = np.full(v.shape[:-3] + tuple(box), fill, dtype=v.dtype)
    src, dst = zip(*(window(n, b, s) for n, b, s in zip(v.shape[-3:], box, starts)))
    out[(Ellipsis,) + dst] = v[(Ellipsis,) + src]
    return out


def unplace(y, shape, starts):
    """Inverse of place for the part of the volume inside the box (voxels outside it stay 0)."""
    out = np.zeros(y.shape[:-3] + tuple(shape), dtype=y.dtype)
    src, dst = zip(*(window(n, b, s) for n, b, s in zip(shape, y.shape[-3:], starts)))
    out[(Ellipsis,) + src] = y[(Ellipsis,) + dst]
    return out


def boxed(x):
    return place(x, BOX, centre_offsets(x.shape))[None]


def augment_batch(xs, ys, rng, crop, intensity):
    """Random crops of size `crop` overlapping each volume as much as possible, flips along i (left/right
    hippocampi both occur), mild intensity gain/shift. Returns float tensors [B,1,*crop], [B,3,*crop]."""
    bx, by = [], []
    for x, y in zip(xs, ys):
        starts = []
        for n, c in zip(x.shape, crop):
            lo, hi = min(0, c - n), max(0, c - n)  # box-index start of the volume
            starts.append(int(rng.randint(lo, hi + 1)))
        if intensity:  # before placement, so the fill stays 0 as at inference
            x = x * np.float32(1 + rng.uniform(-intensity, intensity)) + np.float32(rng.uniform(-intensity, intensity))
        a = place(x, crop, starts)
        b = place(targets(y), crop, starts)
        if rng.rand() < 0.5:
            a, b = a[:, :, ::-1], b[:, :, :, ::-1]
        bx.append(np.ascontiguousarray(a, dtype=np.float32)[None])
        by.append(np.ascontiguousarray(b))
    return torch.from_numpy(np.stack(bx)), torch.from_numpy(np.stack(by).astype(np.float32))


def loss_fn(logits, y):
    bce = F.binary_cross_entropy_with_logits(logits, y)
    p = torch.sigmoid(logits)
    inter = (p * y).sum(dim=(2, 3, 4))
    den = p.sum(dim=(2, 3, 4)) + y.sum(dim=(2, 3, 4))
    return bce + (1 - (2 * inter + 1) / (den + 1)).mean()


# ---- evaluation -----------------------------------------------------------------------------------
def dice(p, g):
    s = p.sum() + g.sum()
    return 1.0 if s == 0 else float(2.0 * (p & g).sum() / s)


@torch.no_grad()
def evaluate(net, xs, ys, bs=2):
    """Per volume, per channel Dice ([n,3]) of logits > 0 against the labels, on the volume's own grid."""
    net.eval()
    out = []
    for i in range(0, len(xs), bs):
        xb = np.stack([boxed(x) for x in xs[i:i + bs]])
        logits = net(torch.from_numpy(xb)).numpy()
        for lg, x, y in zip(logits, xs[i:i + bs], ys[i:i + bs]):
            pred = unplace(lg > 0, x.shape, centre_offsets(x.shape))
            t = targets(y).astype(bool)
            out.append([dice(pred[c], t[c]) for c in range(3)])
    return np.array(out)


def summary(d):
    return {k: round(float(d[:, c].mean()), 6) for c, k in enumerate(CHANNEL_KEYS)}


# ---- checkpoint -----------------------------------------------------------------------------------
def save_atomic(obj, path):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train(args, name, ckpt):
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    random.seed(args.seed)
    t0 = time.time()
    tr_ids, xtr, ytr = load_split("train")
    va_ids, xva, yva = load_split("val")
    print(f"[{name}] loaded train {len(xtr)} val {len(xva)} in {time.time() - t0:.1f}s", flush=True)

    net = build3d(args.arch, base=args.base, depth=args.depth)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    rng = np.random.RandomState(args.seed)
    steps_per_epoch = (len(xtr) + args.batch - 1) // args.batch
    total = steps_per_epoch * args.epochs
    warm = min(steps_per_epoch, total // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + np.cos(np.pi * (s - warm) / max(1, total - warm))) * 0.98 + 0.02)
    state = {"epoch": 0, "best": -1.0, "best_ep": -1, "best_state": None, "history": [], "seconds": 0.0}
    if os.path.exists(ckpt):
        st = torch.load(ckpt)
        # --epochs may change on resume (the cosine schedule is recomputed from the step count); nothing else may
        other = {k: v for k, v in st["args"].items() if k != "epochs" and v != getattr(args, k)}
        if other:
            raise SystemExit(f"{ckpt} was written with other settings {other}; remove it or pass the same flags")
        net.load_state_dict(st["net"])
        opt.load_state_dict(st["opt"])
        sched.load_state_dict(st["sched"])
        rng.set_state(st["rng"])
        torch.set_rng_state(st["torch_rng"])
        state = st["state"]
        if st["args"]["epochs"] != args.epochs:
            state.setdefault("schedule_changes", []).append(
                {"after_epoch": state["epoch"], "epochs_from": st["args"]["epochs"], "epochs_to": args.epochs})
        print(f"[{name}] resumed after epoch {state['epoch']} ({state['seconds']:.0f}s so far)", flush=True)
    params = sum(p.numel() for p in net.parameters())
    print(f"[{name}] params {params}, {steps_per_epoch} steps/epoch of {args.batch} crops {args.crop}", flush=True)

    for ep in range(state["epoch"], args.epochs):
        net.train()
        order = rng.permutation(len(xtr))
        tl, te = 0.0, time.time()
        for s in range(steps_per_epoch):
            idx = order[s * args.batch:(s + 1) * args.batch]
            x, y = augment_batch([xtr[i] for i in idx], [ytr[i] for i in idx], rng, args.crop, args.intensity)
            loss = loss_fn(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tl += loss.item()
        vd = evaluate(net, xva, yva)
        v = summary(vd)
        secs = time.time() - te
        state["seconds"] += secs
        if v["whole"] > state["best"]:
            state.update(best=v["whole"], best_ep=ep, best_state={k: t.clone() for k, t in net.state_dict().items()})
        state["history"].append({"epoch": ep + 1, "loss": round(tl / steps_per_epoch, 5), "val": v, "seconds": round(secs, 1)})
        state["epoch"] = ep + 1
        save_atomic({"args": {k: getattr(args, k) for k in TRAIN_ARGS}, "net": net.state_dict(), "opt": opt.state_dict(),
                     "sched": sched.state_dict(), "rng": rng.get_state(), "torch_rng": torch.get_rng_state(),
                     "state": state}, ckpt)
        print(f"[{name}] epoch {ep + 1}/{args.epochs} loss {tl / steps_per_epoch:.4f} val dice whole {v['whole']:.4f} "
              f"label1 {v['label1']:.4f} label2 {v['label2']:.4f} (best whole {state['best']:.4f} @ {state['best_ep'] + 1}) "
              f"{secs:.1f}s", flush=True)


# ---- export ---------------------------------------------------------------------------------------
def finish(args, name, ckpt):
    st = torch.load(ckpt)
    a, state = st["args"], st["state"]
    net = build3d(a["arch"], base=a["base"], depth=a["depth"])
    net.load_state_dict(state["best_state"])
    net.eval()
    params = sum(p.numel() for p in net.parameters())
    flops = count_flops(net, torch.zeros(1, 1, *BOX))

    te_ids, xte, yte = load_split("test")
    va_ids, xva, yva = load_split("val")
    dt = evaluate(net, xte, yte)
    dv = evaluate(net, xva, yva)
    print(f"[{name}] TEST dice whole {dt[:, 0].mean():.4f} label1 {dt[:, 1].mean():.4f} label2 {dt[:, 2].mean():.4f} "
          f"(n {len(dt)}); val whole {dv[:, 0].mean():.4f}; best epoch {state['best_ep'] + 1}/{state['epoch']}", flush=True)

    out_dir = os.path.join(ROOT, args.out)
    os.makedirs(out_dir, exist_ok=True)
    onnx_path = os.path.join(out_dir, f"{name}.onnx")
    torch.onnx.export(net, torch.zeros(1, 1, *BOX), onnx_path, opset_version=17, input_names=["image"],
                      output_names=["mask"], do_constant_folding=True,
                      dynamic_axes={"image": {0: "batch"}, "mask": {0: "batch"}})
    import onnx
    m = onnx.load(onnx_path)
    onnx.checker.check_model(m)
    ops = sorted({nd.op_type for nd in m.graph.node})
    size = os.path.getsize(onnx_path)
    # reference input/output for training/verify_onnx.mjs (onnxruntime-node vs PyTorch): two val volumes
    ref_x = torch.from_numpy(np.stack([boxed(x) for x in xva[:2]]))
    with torch.no_grad():
        ref_y = net(ref_x)
    ckdir = os.path.dirname(ckpt)
    ref_x.numpy().astype("<f4").tofile(os.path.join(ckdir, f"{name}.ref_in.bin"))
    ref_y.numpy().astype("<f4").tofile(os.path.join(ckdir, f"{name}.ref_out.bin"))
    print(f"[{name}] exported {onnx_path} ({size / 1e6:.2f} MB) ops: {' '.join(ops)}", flush=True)

    per = {i: {k: round(float(v), 6) for k, v in zip(CHANNEL_KEYS, row)} for i, row in zip(te_ids, dt)}
    stat = {k: {"mean": round(float(dt[:, c].mean()), 6), "sd": round(float(dt[:, c].std(ddof=1)), 6),
                "min": round(float(dt[:, c].min()), 6), "max": round(float(dt[:, c].max()), 6)}
            for c, k in enumerate(CHANNEL_KEYS)}
    cmd = "nice -n 5 /usr/bin/python3 training/train3d.py " + " ".join(
        f"--{k} {'x'.join(map(str, a[k])) if k == 'crop' else a[k]}" for k in TRAIN_ARGS)
    card = {
        "schema": "segcause.modelcard/1",
        "name": name,
        "architecture": a["arch"],
        "dataset": DATASET,
        "description": DESCRIPTIONS3D[a["arch"]].format(depth=a["depth"], base=a["base"], out_ch=3)
        + f"; trained on {DATASET} train split (random {'x'.join(map(str, a['crop']))} crops)",
        "input": {
            "name": "image", "layout": "ncdhw", "depth": BOX[0], "height": BOX[1], "width": BOX[2],
            "channels": "gray",
            "normalisation": {"kind": "zscore"},
            "placement": {"kind": "centre", "fill": 0},
            "spacing": [1.0, 1.0, 1.0],
            "orientation": "voxel axes i, j, k along R, A, S (the training volumes' affines are diagonal, RAS+)",
            "axes": "RAS",
        },
        "output": {"name": "mask", "layout": "ncdhw", "kind": "logits", "activation": "sigmoid", "channel": 0,
                   "threshold": 0.5, "channels": CHANNELS},
        "metrics": {"split": "test", "n": len(dt), "dice_mean": stat["whole"]["mean"], "dice_sd": stat["whole"]["sd"],
                    "dice_min": stat["whole"]["min"], "dice_max": stat["whole"]["max"],
                    "val_dice": round(float(dv[:, 0].mean()), 6),
                    "per_channel": stat, "val_per_channel": summary(dv), "per_volume": per},
        "training": {"command": cmd, "seed": a["seed"], "epochs": state["epoch"], "best_epoch": state["best_ep"] + 1,
                     "seconds": round(state["seconds"], 1), "params": int(params), "flops_per_volume": int(flops),
                     "threads": a["threads"], "torch": torch.__version__, "loss": "bce+dice (3 sigmoid channels)",
                     "optimizer": f"AdamW lr={a['lr']} wd=1e-4, warmup+cosine, batch {a['batch']}",
                     "augmentation": f"random {'x'.join(map(str, a['crop']))} crops overlapping the volume, flip along i, "
                                     f"intensity gain and shift ±{a['intensity']}",
                     "selection": "best val whole-hippocampus Dice",
                     "split": "manifest split: train 195 / val 26 / test 39",
                     "schedule_changes": state.get("schedule_changes", []),
                     "history": state["history"], "onnx_opset": 17, "onnx_ops": ops},
    }
    with open(onnx_path + ".json", "w") as f:
        json.dump(card, f, indent=2)
        f.write("\n")
    print(f"[{name}] wrote {onnx_path}.json", flush=True)
    write_readme(out_dir)


def write_readme(out_dir):
    """models/volumes/README.md from the cards beside it (numbers come from the cards, which come from the run)."""
    rows = []
    # 3D cards only: the 2D slice models' section comes from train2d_slices.py
    cards3d = [p for p in sorted(glob.glob(os.path.join(out_dir, "*.onnx.json"))) if json.load(open(p))["input"].get("layout") == "ncdhw"]
    for p in cards3d:
        c = json.load(open(p))
        m, t, i = c["metrics"], c["training"], c["input"]
        pc = m["per_channel"]
        size = os.path.getsize(p[:-len(".json")]) / 1e6
        floor = "yes" if pc["whole"]["mean"] >= FLOOR_WHOLE else "**no**"
        rows.append(
            f"| `{c['name']}.onnx` | {c['architecture']} | {t['params'] / 1e3:.0f}K | {size:.2f} MB "
            f"| {t['flops_per_volume'] / 1e9:.2f}G | {pc['whole']['mean']:.3f} ± {pc['whole']['sd']:.3f} "
            f"({pc['whole']['min']:.3f}–{pc['whole']['max']:.3f}) | {pc['label1']['mean']:.3f} | {pc['label2']['mean']:.3f} "
            f"| {m['n']} | {m['val_per_channel']['whole']:.3f} / {m['val_per_channel']['label1']:.3f} / "
            f"{m['val_per_channel']['label2']:.3f} | {i['depth']}×{i['height']}×{i['width']} | {t['best_epoch']} of {t['epochs']} "
            f"| {t['seconds'] / 60:.1f} min | {floor} |")
    cmds = []
    for p in cards3d:
        c = json.load(open(p))
        cmds.append(f"- `{c['name']}`: `{c['training']['command']}`")
        for ch in c["training"].get("schedule_changes", []):
            cmds.append(f"  (resumed after epoch {ch['after_epoch']} with --epochs {ch['epochs_to']}: the epochs before ran "
                        f"under the {ch['epochs_from']}-epoch warmup+cosine schedule, later ones under the {ch['epochs_to']}-epoch one)")
    out = [
        "# segcause 3D models (volumes)",
        "",
        "Segmentation networks for volumes (3D models, and a 2D model that explains volumes slice by slice), kept",
        "in this subfolder so the 2D zoo listing and tests do not pick them up. The 3D table is generated by",
        "`training/train3d.py --finish` from the model cards (`*.onnx.json`), the slice model's section by",
        "`training/train2d_slices.py`; do not edit by hand. Only `unet3d-hippocampus` is in the npm package.",
        "",
        "| file | architecture | params | ONNX size | FLOPs/volume | test Dice whole mean ± sd (min–max) | test Dice label 1 | "
        "test Dice label 2 | n test | val Dice whole / 1 / 2 | input D×H×W | best epoch of epochs | training time | "
        f"whole ≥ {FLOOR_WHOLE:.2f} |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Dice is per volume (2|P∩G| / (|P|+|G|), 1 when both are empty), on the volume's own voxel grid, of logit > 0 in",
        "the channel against the label, averaged over the test volumes. Whole = label > 0, label 1 = anterior (head),",
        "label 2 = posterior (body and tail). Data: Medical Segmentation Decathlon Task04 Hippocampus",
        "(`../shared/data/hippocampus`, CC-BY-SA 4.0), the manifest's split.",
        "Training time is the wall time of the training epochs (including each epoch's val pass) on a 2-core CPU with 2",
        "torch threads at nice 5, shared with other jobs, so it is an upper bound, not a benchmark. FLOPs are 2 ×",
        "multiply-adds of the convolutions for one volume of the input size.",
        "",
        "Commands:",
        "",
        *cmds,
        "",
        "## Contract",
        "",
        "- ONNX opset 17, input `image` float32 `[N,1,D,H,W]` (dynamic batch), D, H, W = the NIfTI voxel axes k, j, i",
        "  (i fastest, as stored), 1 mm isotropic voxels, axes along R, A, S.",
        "- Each volume is z-scored over its own voxels, then placed centred in the D×H×W box (volume index 0 at box",
        "  index floor((box − n) / 2) per axis; longer axes cropped by the same rule), the rest filled with 0.",
        "- Output `mask` float32 `[N,3,D,H,W]` logits of three independent sigmoids: whole hippocampus, anterior,",
        "  posterior. A voxel is in the mask when its logit > 0 (probability > 0.5).",
        "",
    ]
    from train2d_slices import slice_section  # noqa: E402 (same folder)

    with open(os.path.join(out_dir, "README.md"), "w") as f:
        f.write("\n".join(out + slice_section(out_dir)))
    print(f"wrote {os.path.join(out_dir, 'README.md')}", flush=True)


TRAIN_ARGS = ["arch", "base", "depth", "epochs", "seed", "batch", "lr", "crop", "intensity", "threads"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="unet3d")
    ap.add_argument("--base", type=int, default=8)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--crop", type=lambda s: [int(v) for v in s.split("x")], default=[32, 48, 40],
                    help="training crop DxHxW, e.g. 32x48x40 (multiples of 2**depth)")
    ap.add_argument("--intensity", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="models/volumes")
    ap.add_argument("--ckpt-dir", default=os.path.join(HERE, "checkpoints"))
    ap.add_argument("--finish", action="store_true", help="skip training: test, export and write card/README from the checkpoint")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.use_deterministic_algorithms(True, warn_only=True)
    name = f"{args.arch}-{DATASET}"
    os.makedirs(args.ckpt_dir, exist_ok=True)
    ckpt = os.path.join(args.ckpt_dir, f"{name}.pt")
    if not args.finish:
        train(args, name, ckpt)
    finish(args, name, ckpt)


if __name__ == "__main__":
    main()
