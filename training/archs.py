"""Small segmentation architectures for the segcause model zoo.

All networks take an NCHW float tensor in [0,1] and return LOGITS of shape [N,1,H,W]
(the sigmoid is appended at export time by ``WithSigmoid``).  Only ReLU (and softmax inside
attention) is used as a non-linearity, so the exported ONNX graphs contain only common ops:
Conv, ConvTranspose, BatchNormalization (folded), Relu, MaxPool, Resize, Concat, Add, Mul,
Sigmoid, MatMul, Softmax, LayerNormalization/ReduceMean, Transpose, Reshape.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def cbr(cin, cout, k=3, s=1, d=1, groups=1):
    p = d * (k - 1) // 2
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, s, p, dilation=d, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class DoubleConv(nn.Sequential):
    def __init__(self, cin, cout):
        super().__init__(cbr(cin, cout), cbr(cout, cout))


class MatMul(nn.Module):
    """a @ b as a module so that the FLOP counter can see it."""

    def forward(self, a, b):
        return torch.matmul(a, b)


class Up(nn.Module):
    """x2 bilinear upsampling followed by a 1x1 conv (cheaper on CPU than ConvTranspose2d)."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False))


# --------------------------------------------------------------------------------------------
# 1. plain U-Net
# --------------------------------------------------------------------------------------------
class UNet(nn.Module):
    def __init__(self, in_ch=3, base=16, depth=4):
        super().__init__()
        chs = [base * 2 ** i for i in range(depth + 1)]  # 16 32 64 128 256
        self.inc = DoubleConv(in_ch, chs[0])
        self.downs = nn.ModuleList(DoubleConv(chs[i], chs[i + 1]) for i in range(depth))
        self.ups = nn.ModuleList(Up(chs[i + 1], chs[i]) for i in reversed(range(depth)))
        self.decs = nn.ModuleList(DoubleConv(chs[i] * 2, chs[i]) for i in reversed(range(depth)))
        self.head = nn.Conv2d(chs[0], 1, 1)

    def forward(self, x):
        x = self.inc(x)
        skips = [x]
        for d in self.downs:
            x = d(F.max_pool2d(x, 2))
            skips.append(x)
        skips.pop()
        for up, dec in zip(self.ups, self.decs):
            x = up(x)
            x = dec(torch.cat([skips.pop(), x], 1))
        return self.head(x)


# --------------------------------------------------------------------------------------------
# 2. Attention U-Net (Oktay et al. 2018): additive attention gates on the skip connections
# --------------------------------------------------------------------------------------------
class AttentionGate(nn.Module):
    def __init__(self, cskip, cgate, cint):
        super().__init__()
        self.wx = nn.Sequential(nn.Conv2d(cskip, cint, 1, bias=False), nn.BatchNorm2d(cint))
        self.wg = nn.Sequential(nn.Conv2d(cgate, cint, 1, bias=False), nn.BatchNorm2d(cint))
        self.psi = nn.Sequential(nn.Conv2d(cint, 1, 1), nn.BatchNorm2d(1), nn.Sigmoid())

    def forward(self, skip, gate):
        a = self.psi(F.relu(self.wx(skip) + self.wg(gate)))
        return skip * a


class AttUNet(nn.Module):
    def __init__(self, in_ch=3, base=16, depth=4):
        super().__init__()
        chs = [base * 2 ** i for i in range(depth + 1)]
        self.inc = DoubleConv(in_ch, chs[0])
        self.downs = nn.ModuleList(DoubleConv(chs[i], chs[i + 1]) for i in range(depth))
        self.ups = nn.ModuleList(Up(chs[i + 1], chs[i]) for i in reversed(range(depth)))
        self.gates = nn.ModuleList(AttentionGate(chs[i], chs[i], max(chs[i] // 2, 8)) for i in reversed(range(depth)))
        self.decs = nn.ModuleList(DoubleConv(chs[i] * 2, chs[i]) for i in reversed(range(depth)))
        self.head = nn.Conv2d(chs[0], 1, 1)

    def forward(self, x):
        x = self.inc(x)
        skips = [x]
        for d in self.downs:
            x = d(F.max_pool2d(x, 2))
            skips.append(x)
        skips.pop()
        for up, gate, dec in zip(self.ups, self.gates, self.decs):
            x = up(x)
            s = gate(skips.pop(), x)
            x = dec(torch.cat([s, x], 1))
        return self.head(x)


# --------------------------------------------------------------------------------------------
# 3. DeepLabv3+-style: small residual encoder (output stride 16), ASPP, low-level skip at 1/4
# --------------------------------------------------------------------------------------------
class ResBlock(nn.Module):
    def __init__(self, cin, cout, s=1, d=1):
        super().__init__()
        self.c1 = cbr(cin, cout, 3, s, 1)
        self.c2 = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, d, dilation=d, bias=False), nn.BatchNorm2d(cout))
        self.sc = None
        if s != 1 or cin != cout:
            self.sc = nn.Sequential(nn.Conv2d(cin, cout, 1, s, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        r = x if self.sc is None else self.sc(x)
        return F.relu(self.c2(self.c1(x)) + r)


class ASPP(nn.Module):
    def __init__(self, cin, cout, rates=(2, 4, 6)):
        super().__init__()
        self.b0 = cbr(cin, cout, 1)
        self.bs = nn.ModuleList(cbr(cin, cout, 3, d=r) for r in rates)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1, bias=False), nn.ReLU(inplace=True))
        self.proj = cbr(cout * (len(rates) + 2), cout, 1)

    def forward(self, x):
        h, w = x.shape[-2:]
        p = self.pool(x).expand(-1, -1, h, w)
        return self.proj(torch.cat([self.b0(x)] + [b(x) for b in self.bs] + [p], 1))


class DeepLabV3Plus(nn.Module):
    def __init__(self, in_ch=3, w=(24, 32, 64, 96, 128), aspp=96, low=32):
        super().__init__()
        self.stem = nn.Sequential(cbr(in_ch, w[0], 3, 2), cbr(w[0], w[0]))  # 1/2
        self.l1 = ResBlock(w[0], w[1], 2)  # 1/4  (low-level)
        self.l2 = ResBlock(w[1], w[2], 2)  # 1/8
        self.l3 = ResBlock(w[2], w[3], 2)  # 1/16
        self.l4 = nn.Sequential(ResBlock(w[3], w[4], 1, 2), ResBlock(w[4], w[4], 1, 4))  # dilated, 1/16
        self.aspp = ASPP(w[4], aspp)
        self.low = cbr(w[1], low, 1)
        self.dec = nn.Sequential(cbr(aspp + low, 64), cbr(64, 64))
        self.head = nn.Conv2d(64, 1, 1)

    def forward(self, x):
        H, W = x.shape[-2:]
        f1 = self.l1(self.stem(x))
        f = self.aspp(self.l4(self.l3(self.l2(f1))))
        f = F.interpolate(f, size=f1.shape[-2:], mode="bilinear", align_corners=False)
        f = self.dec(torch.cat([f, self.low(f1)], 1))
        return F.interpolate(self.head(f), size=(H, W), mode="bilinear", align_corners=False)


# --------------------------------------------------------------------------------------------
# 4. SegFormer-lite: overlapping patch embeddings, efficient (spatial-reduction) softmax
#    self-attention over tokens, Mix-FFN (depthwise conv), all-MLP decoder.
# --------------------------------------------------------------------------------------------
class LayerNorm2dTokens(nn.LayerNorm):
    pass


class EffAttention(nn.Module):
    def __init__(self, dim, heads, sr):
        super().__init__()
        self.heads, self.dh = heads, dim // heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, dim * 2)
        self.proj = nn.Linear(dim, dim)
        self.sr = sr
        if sr > 1:
            self.srconv = nn.Conv2d(dim, dim, sr, sr)
            self.srnorm = nn.LayerNorm(dim)
        self.mm1, self.mm2 = MatMul(), MatMul()

    def forward(self, x, h, w):
        B, N, C = x.shape
        q = self.q(x).reshape(B, N, self.heads, self.dh).permute(0, 2, 1, 3)
        if self.sr > 1:
            y = x.transpose(1, 2).reshape(B, C, h, w)
            y = self.srconv(y).flatten(2).transpose(1, 2)
            y = self.srnorm(y)
        else:
            y = x
        M = y.shape[1]
        kv = self.kv(y).reshape(B, M, 2, self.heads, self.dh).permute(2, 0, 3, 1, 4)
        k, v = kv[0], kv[1]
        att = torch.softmax(self.mm1(q, k.transpose(-2, -1)) * (self.dh ** -0.5), dim=-1)
        o = self.mm2(att, v).transpose(1, 2).reshape(B, N, C)
        return self.proj(o)


class MixFFN(nn.Module):
    def __init__(self, dim, ratio=2):
        super().__init__()
        hid = dim * ratio
        self.fc1 = nn.Linear(dim, hid)
        self.dw = nn.Conv2d(hid, hid, 3, 1, 1, groups=hid)
        self.fc2 = nn.Linear(hid, dim)

    def forward(self, x, h, w):
        B, N, C = x.shape
        y = self.fc1(x)
        y = y.transpose(1, 2).reshape(B, -1, h, w)
        y = F.relu(self.dw(y)).flatten(2).transpose(1, 2)
        return self.fc2(y)


class TBlock(nn.Module):
    def __init__(self, dim, heads, sr):
        super().__init__()
        self.n1, self.n2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.att = EffAttention(dim, heads, sr)
        self.ffn = MixFFN(dim)

    def forward(self, x, h, w):
        x = x + self.att(self.n1(x), h, w)
        return x + self.ffn(self.n2(x), h, w)


class Stage(nn.Module):
    def __init__(self, cin, dim, k, s, heads, sr, depth):
        super().__init__()
        self.embed = nn.Conv2d(cin, dim, k, s, k // 2)
        self.enorm = nn.LayerNorm(dim)
        self.blocks = nn.ModuleList(TBlock(dim, heads, sr) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        x = self.embed(x)
        B, C, h, w = x.shape
        t = self.enorm(x.flatten(2).transpose(1, 2))
        for b in self.blocks:
            t = b(t, h, w)
        t = self.norm(t)
        return t.transpose(1, 2).reshape(B, C, h, w)


class SegFormerLite(nn.Module):
    def __init__(self, in_ch=3, dims=(32, 64, 128, 160), heads=(1, 2, 4, 5), srs=(8, 4, 2, 1), depths=(1, 1, 2, 2), dec=96):
        super().__init__()
        self.stages = nn.ModuleList()
        c = in_ch
        for i, d in enumerate(dims):
            k, s = (7, 4) if i == 0 else (3, 2)
            self.stages.append(Stage(c, d, k, s, heads[i], srs[i], depths[i]))
            c = d
        self.lin = nn.ModuleList(nn.Conv2d(d, dec, 1) for d in dims)
        self.fuse = cbr(dec * len(dims), dec, 1)
        # light refinement at 1/2 resolution to sharpen borders (SegFormer's 1/4 output is coarse)
        self.stem = cbr(in_ch, 16, 3, 2)
        self.refine = nn.Sequential(cbr(dec + 16, 32), nn.Conv2d(32, 1, 1))

    def forward(self, x):
        H, W = x.shape[-2:]
        feats = []
        f = x
        for st in self.stages:
            f = st(f)
            feats.append(f)
        size = feats[0].shape[-2:]
        ups = [F.interpolate(l(f), size=size, mode="bilinear", align_corners=False) if i else l(f)
               for i, (l, f) in enumerate(zip(self.lin, feats))]
        y = self.fuse(torch.cat(ups, 1))
        s = self.stem(x)
        y = F.interpolate(y, size=s.shape[-2:], mode="bilinear", align_corners=False)
        y = self.refine(torch.cat([y, s], 1))
        return F.interpolate(y, size=(H, W), mode="bilinear", align_corners=False)


# --------------------------------------------------------------------------------------------
# 5. SegNet-lite: VGG-style encoder, decoder upsamples with the max-pooling indices
# --------------------------------------------------------------------------------------------
class SegNet(nn.Module):
    def __init__(self, in_ch=3, chs=(16, 32, 64, 128), convs=(2, 2, 3, 3)):
        super().__init__()
        self.enc = nn.ModuleList()
        c = in_ch
        for ch, n in zip(chs, convs):
            self.enc.append(nn.Sequential(*[cbr(c if i == 0 else ch, ch) for i in range(n)]))
            c = ch
        self.dec = nn.ModuleList()
        rchs = list(chs[::-1])
        rconvs = list(convs[::-1])
        for j, (ch, n) in enumerate(zip(rchs, rconvs)):
            out = rchs[j + 1] if j + 1 < len(rchs) else chs[0]
            layers = [cbr(ch, ch) for _ in range(n - 1)] + [cbr(ch, out)]
            self.dec.append(nn.Sequential(*layers))
        self.head = nn.Conv2d(chs[0], 1, 3, 1, 1)

    def forward(self, x):
        # Max-unpooling with the pooling "switches": the decoder puts each value back where the
        # encoder's max was.  torch 1.13 cannot export MaxUnpool, so the switches are kept as a
        # binary argmax mask (pre-pool == nearest-upsampled pooled max): Resize/Equal/Mul in ONNX.
        switches = []
        for e in self.enc:
            x = e(x)
            p = F.max_pool2d(x, 2, 2)
            switches.append((x == F.interpolate(p, scale_factor=2.0, mode="nearest")).to(x.dtype))
            x = p
        for d in self.dec:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest") * switches.pop()
            x = d(x)
        return self.head(x)


ARCHS = {
    "unet": UNet,
    "attunet": AttUNet,
    "deeplab": DeepLabV3Plus,
    "segformer": SegFormerLite,
    "segnet": SegNet,
}

DESCRIPTIONS = {
    "unet": "plain U-Net (4 down/up levels, base 16 channels, bilinear x2 upsampling + 1x1 conv)",
    "attunet": "Attention U-Net: U-Net with additive attention gates on the skip connections",
    "deeplab": "DeepLabv3+-style: small residual encoder (output stride 16, dilated last stage), ASPP (rates 2/4/6 + image pooling), low-level skip at 1/4",
    "segformer": "SegFormer-lite: 4-stage hierarchical transformer with spatial-reduction softmax self-attention over tokens, Mix-FFN, all-MLP decoder, light 1/2-res refinement",
    "segnet": "SegNet-lite: VGG-style encoder-decoder, decoder upsamples with the max-pooling switches (argmax-mask unpooling)",
}


def build(arch, in_ch=3, **kw):
    return ARCHS[arch](in_ch=in_ch, **kw)


class WithSigmoid(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, image):
        return torch.sigmoid(self.net(image))


def count_flops(model, x):
    """Multiply-adds x2 of Conv (2D, 3D) / ConvTranspose / Linear / MatMul for one forward pass of x (per image)."""
    total = [0]

    def conv_hook(m, inp, out):
        k = math.prod(m.kernel_size)
        total[0] += out.numel() * (m.in_channels // m.groups) * k * 2

    def convt_hook(m, inp, out):
        k = m.kernel_size[0] * m.kernel_size[1]
        total[0] += inp[0].numel() * (m.out_channels // m.groups) * k * 2

    def lin_hook(m, inp, out):
        total[0] += out.numel() * m.in_features * 2

    def mm_hook(m, inp, out):
        total[0] += out.numel() * inp[0].shape[-1] * 2

    hs = []
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            hs.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.ConvTranspose2d):
            hs.append(m.register_forward_hook(convt_hook))
        elif isinstance(m, nn.Linear):
            hs.append(m.register_forward_hook(lin_hook))
        elif isinstance(m, MatMul):
            hs.append(m.register_forward_hook(mm_hook))
    was = model.training
    model.eval()
    with torch.no_grad():
        model(x)
    model.train(was)
    for h in hs:
        h.remove()
    return total[0] // x.shape[0]
