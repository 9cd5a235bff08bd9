"""Small 3D segmentation architectures for volumes (segcause's 3D zoo).

Networks take [N,1,D,H,W] float (a z-scored volume) and return LOGITS [N,C,D,H,W]. As in archs.py,
only ReLU is used (Debian's torch has wrong GELU gradients) and upsampling is trilinear Resize + 1x1
conv, so the exported graph holds Conv, Relu, MaxPool, Resize and Concat only (BatchNorm is folded
into Conv at export).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def cbr3(cin, cout):
    return nn.Sequential(nn.Conv3d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm3d(cout), nn.ReLU(inplace=True))


class DoubleConv3d(nn.Sequential):
    def __init__(self, cin, cout):
        super().__init__(cbr3(cin, cout), cbr3(cout, cout))


class Up3d(nn.Module):
    """x2 trilinear upsampling followed by a 1x1x1 conv (cheaper on CPU than ConvTranspose3d)."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, 1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="trilinear", align_corners=False))


class UNet3d(nn.Module):
    """Plain 3D U-Net: `depth` x2 poolings, so D, H, W must be multiples of 2**depth."""

    def __init__(self, in_ch=1, out_ch=3, base=8, depth=3):
        super().__init__()
        chs = [base * 2 ** i for i in range(depth + 1)]
        self.inc = DoubleConv3d(in_ch, chs[0])
        self.downs = nn.ModuleList(DoubleConv3d(chs[i], chs[i + 1]) for i in range(depth))
        self.ups = nn.ModuleList(Up3d(chs[i + 1], chs[i]) for i in reversed(range(depth)))
        self.decs = nn.ModuleList(DoubleConv3d(chs[i] * 2, chs[i]) for i in reversed(range(depth)))
        self.head = nn.Conv3d(chs[0], out_ch, 1)

    def forward(self, x):
        x = self.inc(x)
        skips = [x]
        for d in self.downs:
            x = d(F.max_pool3d(x, 2))
            skips.append(x)
        skips.pop()
        for up, dec in zip(self.ups, self.decs):
            x = up(x)
            x = dec(torch.cat([skips.pop(), x], 1))
        return self.head(x)


ARCHS3D = {"unet3d": UNet3d}
DESCRIPTIONS3D = {
    "unet3d": "plain 3D U-Net ({depth} down/up levels, base {base} channels, BatchNorm + ReLU, trilinear x2 "
              "upsampling + 1x1x1 conv), {out_ch} sigmoid-logit channels",
}


def build3d(arch, **kw):
    return ARCHS3D[arch](**kw)
