"""Reference input gradient of a shipped zoo model, computed by PyTorch autograd, for test/gradient.test.ts.

The exported ONNX graph (BatchNorm folded into the convolutions) is executed op by op with torch.nn.functional
in float64, with the ONNX initializers as weights, so the fixture checks segcause's ONNX gradient graph against
an independent autodiff engine on exactly the shipped weights. The input is a synthetic image given by a
formula (reproduced in the test), so no dataset image is committed.

    /usr/bin/python3 training/make_grad_fixture.py            # writes test/fixtures/grad-unet-hc18.{npy,json}
"""
import hashlib
import json
import os

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODEL = "unet-hc18"
SIZE = 128
ROI = (40, 48, 32, 32)  # row, col, height, width: the seed is 1 on the RoI of the output channel 0


def synthetic_image(size):
    """A head-like ring on a textured background, values in [0, 1] (same formula in the test)."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    u, v = (x - 0.55 * size) / (0.32 * size), (y - 0.5 * size) / (0.26 * size)
    r = np.sqrt(u * u + v * v)
    img = 0.25 + 0.5 * np.exp(-((r - 1.0) ** 2) / 0.02) + 0.1 * np.sin(0.31 * x) * np.cos(0.17 * y)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def run_onnx(model, x):
    """Evaluates the graph with torch ops (only the ops of the U-Net/Attention U-Net exports)."""
    env = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in model.graph.initializer}
    env = {k: (v.double() if v.is_floating_point() else v) for k, v in env.items()}
    env[model.graph.input[0].name] = x
    for n in model.graph.node:
        a = attrs(n)
        ins = [env[i] if i else None for i in n.input]
        op = n.op_type
        if op == "Constant":
            out = torch.from_numpy(numpy_helper.to_array(a["value"]).copy())
        elif op == "Conv":
            pads = a.get("pads", [0, 0, 0, 0])
            assert pads[0] == pads[2] and pads[1] == pads[3]
            out = F.conv2d(ins[0], ins[1], ins[2] if len(ins) > 2 else None, stride=a.get("strides", [1, 1]),
                           padding=pads[:2], dilation=a.get("dilations", [1, 1]), groups=a.get("group", 1))
        elif op == "Relu":
            out = F.relu(ins[0])
        elif op == "Sigmoid":
            out = torch.sigmoid(ins[0])
        elif op == "MaxPool":
            assert a.get("pads", [0, 0, 0, 0]) == [0, 0, 0, 0]
            out = F.max_pool2d(ins[0], a["kernel_shape"], a.get("strides"))
        elif op == "Resize":
            assert a["mode"] == b"linear" and a["coordinate_transformation_mode"] == b"half_pixel"
            scales = ins[2].tolist()
            out = F.interpolate(ins[0], scale_factor=scales[2:], mode="bilinear", align_corners=False)
        elif op == "Concat":
            out = torch.cat(ins, a["axis"])
        elif op == "Add":
            out = ins[0] + ins[1]
        elif op == "Mul":
            out = ins[0] * ins[1]
        else:
            raise SystemExit(f"op {op} not handled by this reference interpreter")
        env[n.output[0]] = out
    return env[model.graph.output[0].name]


def main():
    path = os.path.join(ROOT, "models", f"{MODEL}.onnx")
    model = onnx.load(path)
    img = synthetic_image(SIZE)
    x = torch.from_numpy(img.astype(np.float64)).reshape(1, 1, SIZE, SIZE).requires_grad_(True)
    y = run_onnx(model, x)
    seed = torch.zeros_like(y)
    r, c, h, w = ROI
    seed[0, 0, r:r + h, c:c + w] = 1.0
    objective = (y * seed).sum()
    objective.backward()
    grad = x.grad.detach().numpy().astype(np.float32)
    out_dir = os.path.join(ROOT, "test", "fixtures")
    os.makedirs(out_dir, exist_ok=True)
    np.save(os.path.join(out_dir, f"grad-{MODEL}.npy"), grad)
    with open(path, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    meta = {
        "model": f"models/{MODEL}.onnx",
        "model_sha256": sha,
        "input": "synthetic_image(128) in training/make_grad_fixture.py, shape [1,1,128,128]",
        "roi": {"row": r, "col": c, "height": h, "width": w},
        "seed": "1 on the RoI of output channel 0, 0 elsewhere",
        "objective": float(objective),
        "grad_l2": float(np.linalg.norm(grad)),
        "computed_with": f"torch {torch.__version__} autograd, float64, ONNX initializers as weights",
    }
    with open(os.path.join(out_dir, f"grad-{MODEL}.json"), "w") as f:
        json.dump(meta, f, indent=2)
    print(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
