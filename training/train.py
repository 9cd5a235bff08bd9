#!/usr/bin/python3
"""Train one segcause zoo model, export it to ONNX and write its model card.

    /usr/bin/python3 training/train.py --arch unet --dataset ph2 --seed 0 --out models

Train on split=train, keep the checkpoint with the best val Dice, report test Dice.
The exported graph takes `image` float32 [N,C,H,W] in [0,1] (value/255) and returns `mask`
[N,1,H,W] probabilities (sigmoid inside the graph).
"""
import argparse
import copy
import json
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from archs import DESCRIPTIONS, WithSigmoid, build, count_flops  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.environ.get("SEGCAUSE_DATA", os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data")))

DATASETS = {
    # name: channels, default size, augmentation with 90-degree rotations
    "ph2": dict(channels="rgb", size=256, rot90=True),
    "vessels": dict(channels="rgb", size=256, rot90=True),
    "hc18": dict(channels="gray", size=128, rot90=False),
}


def load_split(dataset, split, size, channels):
    man = json.load(open(os.path.join(DATA, dataset, "manifest.json")))
    ids, xs, ys = [], [], []
    for c in man["cases"]:
        if c["split"] != split:
            continue
        im = Image.open(os.path.join(DATA, dataset, c["image"])).convert("RGB" if channels == "rgb" else "L")
        im = im.resize((size, size), Image.BILINEAR)
        mk = Image.open(os.path.join(DATA, dataset, c["mask"])).convert("L").resize((size, size), Image.NEAREST)
        a = np.asarray(im, dtype=np.uint8)
        if a.ndim == 2:
            a = a[:, :, None]
        xs.append(a.transpose(2, 0, 1).copy())
        ys.append((np.asarray(mk) > 127).astype(np.uint8)[None])
        ids.append(c["id"])
    return ids, np.stack(xs), np.stack(ys)


def dice_per_image(prob, gt, thr=0.5):
    """prob, gt: [N,1,H,W] numpy. Dice = 2|P&G|/(|P|+|G|+1e-10), both empty -> 1."""
    out = []
    for p, g in zip(prob, gt):
        p = p > thr
        g = g > 0
        s = p.sum() + g.sum()
        out.append(1.0 if s == 0 else float(2.0 * (p & g).sum() / (s + 1e-10)))
    return out


@torch.no_grad()
def predict(net, x_u8, bs=8):
    net.eval()
    out = []
    for i in range(0, len(x_u8), bs):
        x = torch.from_numpy(x_u8[i:i + bs]).float() / 255.0
        out.append(torch.sigmoid(net(x)).numpy())
    return np.concatenate(out)


def augment(x, y, rng, rot90, crop, jitter):
    """x uint8 [B,C,H,W], y uint8 [B,1,H,W] numpy -> float tensors."""
    xs, ys = [], []
    for a, b in zip(x, y):
        if crop and crop < a.shape[-1]:
            i = rng.randint(0, a.shape[-2] - crop + 1)
            j = rng.randint(0, a.shape[-1] - crop + 1)
            a, b = a[:, i:i + crop, j:j + crop], b[:, i:i + crop, j:j + crop]
        if rng.rand() < 0.5:
            a, b = a[:, :, ::-1], b[:, :, ::-1]
        if rng.rand() < 0.5:
            a, b = a[:, ::-1, :], b[:, ::-1, :]
        if rot90:
            k = rng.randint(4)
            a, b = np.rot90(a, k, (1, 2)), np.rot90(b, k, (1, 2))
        a = a.astype(np.float32) / 255.0
        if jitter:
            # mild brightness / contrast / per-channel gain jitter
            gain = 1.0 + rng.uniform(-jitter, jitter, size=(a.shape[0], 1, 1)).astype(np.float32)
            con = 1.0 + rng.uniform(-jitter, jitter)
            bri = rng.uniform(-jitter, jitter) * 0.5
            m = a.mean()
            a = np.clip((a - m) * con + m + bri, 0, 1) * gain
            a = np.clip(a, 0, 1)
        xs.append(np.ascontiguousarray(a))
        ys.append(np.ascontiguousarray(b))
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys).astype(np.float32))


def loss_fn(logits, y):
    bce = F.binary_cross_entropy_with_logits(logits, y)
    p = torch.sigmoid(logits)
    inter = (p * y).sum(dim=(1, 2, 3))
    den = p.sum(dim=(1, 2, 3)) + y.sum(dim=(1, 2, 3))
    dice = 1 - (2 * inter + 1) / (den + 1)
    return bce + dice.mean()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", required=True)
    ap.add_argument("--dataset", required=True, choices=list(DATASETS))
    ap.add_argument("--size", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--crop", type=int, default=0, help="train on random crops of this size (0 = whole image)")
    ap.add_argument("--crops-per-image", type=int, default=1)
    ap.add_argument("--jitter", type=float, default=None, help="colour jitter amplitude (default 0.15 for ph2, else 0.1)")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    ap.add_argument("--out", default="models")
    ap.add_argument("--ckpt-dir", default=os.path.join(HERE, "checkpoints"))
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    random.seed(args.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)

    ds = DATASETS[args.dataset]
    size = args.size or ds["size"]
    chans = ds["channels"]
    in_ch = 3 if chans == "rgb" else 1
    jitter = args.jitter if args.jitter is not None else (0.15 if args.dataset == "ph2" else 0.1)
    name = f"{args.arch}-{args.dataset}"

    t0 = time.time()
    tr_ids, xtr, ytr = load_split(args.dataset, "train", size, chans)
    va_ids, xva, yva = load_split(args.dataset, "val", size, chans)
    te_ids, xte, yte = load_split(args.dataset, "test", size, chans)
    print(f"[{name}] loaded train {len(xtr)} val {len(xva)} test {len(xte)} at {size} in {time.time()-t0:.1f}s", flush=True)

    net = build(args.arch, in_ch=in_ch, size=size)
    params = sum(p.numel() for p in net.parameters())
    flops = count_flops(net, torch.zeros(1, in_ch, size, size))
    print(f"[{name}] params {params} flops/image {flops/1e9:.3f} G", flush=True)

    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    rng = np.random.RandomState(args.seed)
    n = len(xtr) * args.crops_per_image
    steps_per_epoch = (n + args.batch - 1) // args.batch
    total = steps_per_epoch * args.epochs
    warm = min(steps_per_epoch, total // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + np.cos(np.pi * (s - warm) / max(1, total - warm))) * 0.98 + 0.02)

    best, best_state, best_ep = -1.0, None, -1
    t_train = time.time()
    for ep in range(args.epochs):
        net.train()
        order = np.concatenate([rng.permutation(len(xtr)) for _ in range(args.crops_per_image)])
        tl = 0.0
        te = time.time()
        for s in range(steps_per_epoch):
            idx = order[s * args.batch:(s + 1) * args.batch]
            if len(idx) < 2:
                continue
            x, y = augment(xtr[idx], ytr[idx], rng, ds["rot90"], args.crop, jitter)
            logits = net(x)
            loss = loss_fn(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tl += loss.item()
        vd = float(np.mean(dice_per_image(predict(net, xva), yva)))
        if vd > best:
            best, best_state, best_ep = vd, copy.deepcopy(net.state_dict()), ep
        print(f"[{name}] epoch {ep+1}/{args.epochs} loss {tl/steps_per_epoch:.4f} val dice {vd:.4f} "
              f"(best {best:.4f} @ {best_ep+1}) {time.time()-te:.1f}s", flush=True)
    seconds = time.time() - t_train

    net.load_state_dict(best_state)
    net.eval()
    dices = dice_per_image(predict(net, xte), yte)
    d = np.array(dices)
    print(f"[{name}] TEST dice {d.mean():.4f} +- {d.std(ddof=1):.4f} (min {d.min():.4f} max {d.max():.4f}) "
          f"val {best:.4f} train {seconds:.0f}s", flush=True)

    os.makedirs(args.ckpt_dir, exist_ok=True)
    torch.save({"arch": args.arch, "in_ch": in_ch, "size": size, "state_dict": net.state_dict()},
               os.path.join(args.ckpt_dir, f"{name}.pt"))

    # ---- ONNX export ------------------------------------------------------------------------
    os.makedirs(args.out, exist_ok=True)
    onnx_path = os.path.join(args.out, f"{name}.onnx")
    wrapped = WithSigmoid(net).eval()
    dummy = torch.rand(1, in_ch, size, size)
    torch.onnx.export(wrapped, dummy, onnx_path, opset_version=17, input_names=["image"], output_names=["mask"],
                      do_constant_folding=True, dynamic_axes={"image": {0: "batch"}, "mask": {0: "batch"}})
    import onnx
    m = onnx.load(onnx_path)
    onnx.checker.check_model(m)
    ops = sorted({nd.op_type for nd in m.graph.node})
    # reference input/output for training/verify_onnx.mjs (onnxruntime-node vs PyTorch)
    ref_x = torch.from_numpy(xva[:2]).float() / 255.0
    with torch.no_grad():
        ref_y = wrapped(ref_x)
    ref_x.numpy().astype("<f4").tofile(os.path.join(args.ckpt_dir, f"{name}.ref_in.bin"))
    ref_y.numpy().astype("<f4").tofile(os.path.join(args.ckpt_dir, f"{name}.ref_out.bin"))
    print(f"[{name}] exported {onnx_path} ({os.path.getsize(onnx_path)/1e6:.2f} MB) ops: {' '.join(ops)}", flush=True)

    cmd = "/usr/bin/python3 training/train.py " + " ".join(sys.argv[1:])
    card = {
        "schema": "segcause.modelcard/1",
        "name": name,
        "architecture": args.arch,
        "dataset": args.dataset,
        "description": DESCRIPTIONS[args.arch] + f"; trained on {args.dataset} train split"
        + (f" ({args.crop}x{args.crop} random crops of the {size}x{size} resized images)" if args.crop else ""),
        "input": {"name": "image", "height": size, "width": size, "channels": chans, "scale": 255,
                  "mean": [0.0] * in_ch, "std": [1.0] * in_ch, "resize": "bilinear"},
        "output": {"name": "mask", "kind": "probabilities", "channel": 0, "threshold": 0.5},
        "metrics": {"split": "test", "n": len(dices), "dice_mean": round(float(d.mean()), 6),
                    "dice_sd": round(float(d.std(ddof=1)), 6), "dice_min": round(float(d.min()), 6),
                    "dice_max": round(float(d.max()), 6), "val_dice": round(best, 6),
                    "per_image": {i: round(v, 6) for i, v in zip(te_ids, dices)}},
        "training": {"command": cmd, "seed": args.seed, "epochs": args.epochs, "best_epoch": best_ep + 1,
                     "seconds": round(seconds, 1), "params": int(params), "flops_per_image": int(flops),
                     "threads": args.threads, "torch": torch.__version__, "loss": "bce+dice",
                     "optimizer": f"AdamW lr={args.lr} wd=1e-4, warmup+cosine, batch {args.batch}",
                     "augmentation": "hflip, vflip" + (", rot90" if ds["rot90"] else "")
                     + (f", colour jitter {jitter}" if jitter else "")
                     + (f", random {args.crop}px crops x{args.crops_per_image}/image/epoch" if args.crop else ""),
                     "onnx_opset": 17, "onnx_ops": ops},
    }
    with open(onnx_path + ".json", "w") as f:
        json.dump(card, f, indent=2)
        f.write("\n")
    print(f"[{name}] wrote {onnx_path}.json", flush=True)


if __name__ == "__main__":
    main()
