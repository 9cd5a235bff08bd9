#!/usr/bin/python3
"""Synthesise a shippable dermoscopy-like demo image with its exact ground-truth mask.

    /usr/bin/python3 training/make_sample.py [--seed 7] [--check]

Writes samples/lesion.png (256x256 RGB) and samples/lesion_mask.png (0/255 L). Everything is
procedural (no dataset pixels): skin-coloured textured background, dermoscope vignetting,
sensor noise, a few hairs and one irregular brown lesion with internal texture (mottling,
darker centre, globules). The mask is exactly the set of pixels where the lesion opacity
is > 0.5. With --check (default on) the trained unet-ph2 PyTorch checkpoint is run on the
image and its Dice against the synthetic mask is printed.

Also writes samples/fundus.png + samples/fundus_mask.png (optional vessel demo) with --fundus.
"""
import argparse
import json
import os
import sys

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
S = 256


def smooth_noise(rng, size, cells, octaves=3):
    """Fractal value noise in [-1,1] built by bicubic upsampling of random grids."""
    out = np.zeros((size, size), np.float32)
    amp, tot = 1.0, 0.0
    for o in range(octaves):
        c = cells * 2 ** o
        g = rng.uniform(-1, 1, (c, c)).astype(np.float32)
        im = Image.fromarray(g, mode="F").resize((size, size), Image.BICUBIC)
        out += amp * np.asarray(im)
        tot += amp
        amp *= 0.5
    return out / tot


def smoothstep(e0, e1, x):
    t = np.clip((x - e0) / (e1 - e0), 0, 1)
    return t * t * (3 - 2 * t)


def lesion(seed=7):
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float32)

    # ---- skin background ----------------------------------------------------------------
    skin = np.array([228, 172, 148], np.float32) / 255.0
    low = smooth_noise(rng, S, 3, 2)
    mid = smooth_noise(rng, S, 12, 3)
    fine = smooth_noise(rng, S, 48, 2)
    img = np.ones((S, S, 3), np.float32) * skin
    img *= (1 + 0.05 * low + 0.035 * mid + 0.02 * fine)[..., None]
    img[..., 0] *= 1 + 0.03 * smooth_noise(rng, S, 6, 2)  # redness variation
    # a few pale/brown freckle spots far from the centre
    for _ in range(3):
        cy, cx = rng.uniform(20, S - 20, 2)
        if np.hypot(cy - S / 2, cx - S / 2) < 95:
            continue
        r = rng.uniform(3, 6)
        a = 0.25 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
        img = img * (1 - a[..., None]) + np.array([0.62, 0.42, 0.33]) * a[..., None]

    # ---- lesion shape ---------------------------------------------------------------------
    cy, cx = S / 2 + rng.uniform(-12, 12), S / 2 + rng.uniform(-12, 12)
    R = rng.uniform(62, 72)
    th = np.arctan2(yy - cy, xx - cx)
    d = np.hypot(yy - cy, xx - cx)
    rad = np.ones_like(d)
    for k in range(2, 8):
        rad += rng.uniform(0.03, 0.12) / (k ** 1.0) * np.cos(k * th + rng.uniform(0, 2 * np.pi))
    warp = smooth_noise(rng, S, 6, 3)
    field = d / (R * rad) + 0.10 * warp  # < 1 inside
    mask = field < 1.0
    # soft border: opacity 0.5 exactly at the mask boundary
    alpha = 1 - smoothstep(0.90, 1.10, field)
    alpha = np.where(mask, np.maximum(alpha, 0.5001), np.minimum(alpha, 0.4999))

    # ---- lesion colour / texture ----------------------------------------------------------
    depth = np.clip(1 - field, 0, 1)  # 0 at border, ~1 at centre
    light_brown = np.array([0.64, 0.41, 0.28], np.float32)
    dark_brown = np.array([0.34, 0.19, 0.12], np.float32)
    mott = smooth_noise(rng, S, 10, 3)
    t = np.clip(0.25 + 0.9 * depth + 0.35 * mott, 0, 1)[..., None]
    les = light_brown * (1 - t) + dark_brown * t
    # pigment network: fine reticular darkening
    net = smooth_noise(rng, S, 40, 1)
    les *= (1 - 0.12 * (net > 0.15))[..., None]
    # dark globules / dots
    for _ in range(rng.randint(10, 18)):
        a_ = rng.uniform(0, 2 * np.pi)
        r_ = R * rng.uniform(0.1, 0.8)
        gy, gx = cy + r_ * np.sin(a_), cx + r_ * np.cos(a_)
        gr = rng.uniform(1.2, 3.0)
        g = 0.6 * np.exp(-((yy - gy) ** 2 + (xx - gx) ** 2) / (2 * gr * gr))
        les = les * (1 - g[..., None]) + np.array([0.18, 0.10, 0.09]) * g[..., None]
    # bluish-grey veil patch
    vy, vx = cy + rng.uniform(-20, 20), cx + rng.uniform(-20, 20)
    v = 0.22 * np.exp(-((yy - vy) ** 2 + (xx - vx) ** 2) / (2 * 18 ** 2)) * mask
    les = les * (1 - v[..., None]) + np.array([0.36, 0.33, 0.40]) * v[..., None]
    img = img * (1 - alpha[..., None]) + les * alpha[..., None]

    # ---- hairs ----------------------------------------------------------------------------
    hair = Image.new("L", (S * 2, S * 2), 0)
    dr = ImageDraw.Draw(hair)
    for _ in range(4):
        p = rng.uniform(0, S * 2, 2)
        ang = rng.uniform(0, np.pi)
        pts = []
        curv = rng.uniform(-0.025, 0.025)
        for s_ in range(90):
            pts.append((float(p[0]), float(p[1])))
            ang += curv
            p = p + 6 * np.array([np.cos(ang), np.sin(ang)])
        dr.line(pts, fill=255, width=int(rng.randint(2, 4)))
    h = np.asarray(hair.resize((S, S), Image.LANCZOS).filter(ImageFilter.GaussianBlur(0.4)), np.float32) / 255.0
    h = (0.85 * h)[..., None]
    img = img * (1 - h) + np.array([0.16, 0.10, 0.08]) * h

    # ---- dermoscope optics: vignetting + dark circular rim, noise, slight blur -----------
    rr = np.hypot((yy - S / 2) / (S / 2), (xx - S / 2) / (S / 2))
    vig = 1 - 0.22 * rr ** 2
    rim = 1 - smoothstep(1.12, 1.38, rr)
    img *= (vig * (0.08 + 0.92 * rim))[..., None]
    img += rng.normal(0, 0.012, img.shape).astype(np.float32)
    out = Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.5))
    m = Image.fromarray((mask * 255).astype(np.uint8))
    return out, m


def fundus(seed=3):
    """Optional fundus-like image: orange-red disc, darker periphery, optic disc, branching vessels."""
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float32)
    rr = np.hypot((yy - S / 2) / (S / 2 - 8), (xx - S / 2) / (S / 2 - 8))
    fov = rr < 1.0
    base = np.array([0.75, 0.32, 0.12], np.float32)
    img = np.ones((S, S, 3), np.float32) * base
    img *= (1 + 0.08 * smooth_noise(rng, S, 6, 3))[..., None]
    img *= (1 - 0.45 * rr ** 2)[..., None]
    od = (S * 0.72, S * 0.5)  # optic disc (x, y)
    dd = np.hypot(xx - od[0], yy - od[1])
    disc = np.exp(-(dd / 14) ** 4)
    img = img * (1 - disc[..., None]) + np.array([0.98, 0.85, 0.55]) * disc[..., None]
    mac = 0.35 * np.exp(-((xx - S * 0.36) ** 2 + (yy - S * 0.52) ** 2) / (2 * 16 ** 2))  # darker macula
    img *= (1 - mac)[..., None]
    # vessels: recursive random branching from the optic disc, drawn at 4x then downsampled
    K = 4
    can = Image.new("L", (S * K, S * K), 0)
    dr = ImageDraw.Draw(can)

    def branch(x, y, ang, width, length, depth, bend):
        if depth > 6 or width < 0.7:
            return
        pts = [(x * K, y * K)]
        for _ in range(int(length / 3)):
            ang += bend + rng.normal(0, 0.10)
            x += 3 * np.cos(ang)
            y += 3 * np.sin(ang)
            pts.append((x * K, y * K))
            if np.hypot((x - S / 2) / (S / 2 - 8), (y - S / 2) / (S / 2 - 8)) > 1.0:
                break
            if rng.rand() < 0.06:
                side = rng.choice([-1, 1])
                branch(x, y, ang + side * rng.uniform(0.5, 1.1), width * rng.uniform(0.55, 0.8), length * 0.55,
                       depth + 1, -side * rng.uniform(0.0, 0.02))
        dr.line(pts, fill=255, width=max(1, int(round(width * K))), joint="curve")

    # four main trunks: superior/inferior temporal arcades bend around the macula, two nasal ones
    for ang, bend in ((-2.2, -0.018), (2.2, 0.018), (-0.9, 0.004), (0.9, -0.004), (-0.3, 0.0), (0.3, 0.0)):
        branch(od[0] + 8 * np.cos(ang), od[1] + 8 * np.sin(ang), ang, rng.uniform(2.4, 3.0), 240, 0, bend)
    v = np.asarray(can.resize((S, S), Image.BOX), np.float32) / 255.0
    mask = (v >= 0.5) & fov
    a = (np.clip(v * 1.2, 0, 1) * 0.6)[..., None]
    img = img * (1 - a) + np.array([0.35, 0.08, 0.05]) * a
    img *= fov[..., None]
    img += rng.normal(0, 0.01, img.shape).astype(np.float32)
    out = Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.4))
    return out, Image.fromarray((mask * 255).astype(np.uint8))


def run_model(name, img):
    import torch
    sys.path.insert(0, HERE)
    from archs import build
    torch.set_num_threads(2)
    ck = torch.load(os.path.join(HERE, "checkpoints", name + ".pt"), map_location="cpu")
    net = build(ck["arch"], in_ch=ck["in_ch"])
    net.load_state_dict(ck["state_dict"])
    net.eval()
    im = img.convert("RGB").resize((ck["size"], ck["size"]), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(im, np.float32).transpose(2, 0, 1)[None] / 255.0)
    with torch.no_grad():
        return torch.sigmoid(net(x))[0, 0].numpy()


def dice(p, g):
    s = p.sum() + g.sum()
    return 1.0 if s == 0 else float(2 * (p & g).sum() / (s + 1e-10))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-check", action="store_true")
    ap.add_argument("--fundus", action="store_true")
    ap.add_argument("--out", default=os.path.join(ROOT, "samples"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    img, m = lesion(args.seed)
    img.save(os.path.join(args.out, "lesion.png"), optimize=True)
    m.save(os.path.join(args.out, "lesion_mask.png"), optimize=True)
    g = np.asarray(m) > 127
    print(f"lesion.png: lesion fraction {g.mean():.3f}")
    if not args.no_check:
        p = run_model("unet-ph2", img) > 0.5
        print(f"unet-ph2 Dice on synthetic lesion (seed {args.seed}): {dice(p, g):.4f}")
    if args.fundus:
        fi, fm = fundus(args.seed)
        fi.save(os.path.join(args.out, "fundus.png"), optimize=True)
        fm.save(os.path.join(args.out, "fundus_mask.png"), optimize=True)
        g = np.asarray(fm) > 127
        print(f"fundus.png: vessel fraction {g.mean():.3f}")
        if not args.no_check and os.path.exists(os.path.join(HERE, "checkpoints", "unet-vessels.pt")):
            p = run_model("unet-vessels", fi) > 0.5
            print(f"unet-vessels Dice on synthetic fundus: {dice(p, g):.4f}")


if __name__ == "__main__":
    main()
