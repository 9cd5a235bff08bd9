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


# --------------------------------------------------------------------------------------------
# 6. UNeXt (Valanarasu & Patel, MICCAI 2022), the PdCR authors' demo model. Re-implemented from
#    the authors' definition (github.com/jeya-maria-jose/UNeXt-pytorch, archs.py, class UNext_S,
#    the authors' small width): 3 conv stages (conv-BN-maxpool-ReLU), 2 tokenized MLP stages
#    (overlapping patch embedding + shifted MLP), a mirrored decoder with additive skips.
# --------------------------------------------------------------------------------------------
def shift_chunks(x, axis, size):
    """Split channels into `size` groups (torch.chunk sizes, as the reference) and shift group g by
    g - size//2 pixels along `axis` (2 = H, 3 = W) with zero fill: the reference's pad/roll/narrow
    rolls only padding zeros into view, so pad + slice gives the same values with plain Pad/Slice ops."""
    pad = size // 2
    n = x.shape[axis]
    xp = F.pad(x, (pad, pad, pad, pad))
    out = []
    for g, c in enumerate(torch.chunk(xp, size, 1)):
        s = g - pad  # roll by s: output[i] = padded[i - s]
        c = c.narrow(axis, pad - s, n)
        c = c.narrow(5 - axis, pad, x.shape[5 - axis])  # crop the other axis back
        out.append(c)
    return torch.cat(out, 1)


class ShiftedMLP(nn.Module):
    """Tokenized MLP block: LN, shift along H, Linear, depthwise 3x3 conv, GELU, shift along W, Linear; residual."""

    def __init__(self, dim, shift=5):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, dim)  # mlp_ratio 1 as in the reference
        self.dw = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)
        self.fc2 = nn.Linear(dim, dim)
        self.shift = shift

    def forward(self, x):  # x: [B,C,H,W] feature map; tokens are its pixels
        B, C, H, W = x.shape
        y = self.norm(x.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(B, C, H, W)
        y = shift_chunks(y, 2, self.shift)
        y = self.fc1(y.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(B, C, H, W)
        y = F.gelu(self.dw(y))
        y = shift_chunks(y, 3, self.shift)
        y = self.fc2(y.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(B, C, H, W)
        return x + y


class TokNorm(nn.LayerNorm):
    """LayerNorm over the channels of a [B,C,H,W] map (the reference normalises the token sequence)."""

    def forward(self, x):
        B, C, H, W = x.shape
        return super().forward(x.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(B, C, H, W)


class UNeXt(nn.Module):
    def __init__(self, in_ch=3, convs=(8, 16, 32), embeds=(64, 128)):
        super().__init__()
        c1, c2, c3 = convs
        e1, e2 = embeds
        self.enc = nn.ModuleList(nn.Sequential(nn.Conv2d(a, b, 3, 1, 1), nn.BatchNorm2d(b)) for a, b in ((in_ch, c1), (c1, c2), (c2, c3)))
        # overlapping patch embedding: 3x3 stride-2 conv + LayerNorm, then one shifted-MLP block + LayerNorm
        self.embed1 = nn.Sequential(nn.Conv2d(c3, e1, 3, 2, 1), TokNorm(e1))
        self.block1, self.norm1 = ShiftedMLP(e1), TokNorm(e1)
        self.embed2 = nn.Sequential(nn.Conv2d(e1, e2, 3, 2, 1), TokNorm(e2))
        self.block2, self.norm2 = ShiftedMLP(e2), TokNorm(e2)
        self.dec1 = nn.Sequential(nn.Conv2d(e2, e1, 3, 1, 1), nn.BatchNorm2d(e1))
        self.dblock1, self.dnorm1 = ShiftedMLP(e1), TokNorm(e1)
        self.dec2 = nn.Sequential(nn.Conv2d(e1, c3, 3, 1, 1), nn.BatchNorm2d(c3))
        self.dblock2, self.dnorm2 = ShiftedMLP(c3), TokNorm(c3)
        self.dec3 = nn.Sequential(nn.Conv2d(c3, c2, 3, 1, 1), nn.BatchNorm2d(c2))
        self.dec4 = nn.Sequential(nn.Conv2d(c2, c1, 3, 1, 1), nn.BatchNorm2d(c1))
        self.dec5 = nn.Conv2d(c1, c1, 3, 1, 1)  # no BatchNorm here, as in the reference
        self.head = nn.Conv2d(c1, 1, 1)

    @staticmethod
    def up(x):
        return F.relu(F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False))

    def forward(self, x):
        skips = []
        for e in self.enc:
            x = F.relu(F.max_pool2d(e(x), 2, 2))
            skips.append(x)  # t1 (1/2), t2 (1/4), t3 (1/8)
        t4 = x = self.norm1(self.block1(self.embed1(x)))  # 1/16
        x = self.norm2(self.block2(self.embed2(x)))  # 1/32 bottleneck
        x = self.dnorm1(self.dblock1(self.up(self.dec1(x)) + t4))
        x = self.dnorm2(self.dblock2(self.up(self.dec2(x)) + skips[2]))
        x = self.up(self.dec3(x)) + skips[1]
        x = self.up(self.dec4(x)) + skips[0]
        return self.head(self.up(self.dec5(x)))


# --------------------------------------------------------------------------------------------
# 7. Swin-UNet (Cao et al., ECCV-W 2022), a pure-transformer U-Net. Re-implemented from the authors'
#    definition (github.com/HuCaoFighting/Swin-Unet, networks/swin_transformer_unet_skip_expand_decoder_sys.py,
#    SwinTransformerSys with final_upsample="expand_first"), at a small width for CPU training:
#    4x4 patch embedding, 4 stages of (shifted-)window attention blocks with relative position bias
#    and patch merging, a symmetric decoder of patch expanding + concatenated skips, x4 final expanding.
# --------------------------------------------------------------------------------------------
class DropPath(nn.Module):
    """Stochastic depth per sample (training only), as timm's DropPath used by the reference."""

    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        keep = (torch.rand(x.shape[0], 1, 1, device=x.device) >= self.p).to(x.dtype)
        return x * keep / (1 - self.p)


def windows(x, w):
    """[B,H,W,C] -> [B*nW, w*w, C]"""
    B, H, W, C = x.shape
    return x.reshape(B, H // w, w, W // w, w, C).permute(0, 1, 3, 2, 4, 5).reshape(-1, w * w, C)


def unwindows(t, w, H, W):
    """[B*nW, w*w, C] -> [B,H,W,C]"""
    C = t.shape[-1]
    return t.reshape(-1, H // w, W // w, w, w, C).permute(0, 1, 3, 2, 4, 5).reshape(-1, H, W, C)


class SwinBlock(nn.Module):
    """LN, window attention (shifted by `shift` with the reference's -100 mask across wrapped regions), residual; LN, MLP x4 GELU, residual."""

    def __init__(self, dim, res, heads, window, shift, drop_path):
        super().__init__()
        if res <= window:  # the reference: a window covering the whole map, no shift
            window, shift = res, 0
        self.res, self.w, self.shift, self.heads = res, window, shift, heads
        self.n1, self.n2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.drop = DropPath(drop_path)
        self.mm1, self.mm2 = MatMul(), MatMul()
        self.bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.bias_table, std=0.02)
        c = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
        rel = (c[:, :, None] - c[:, None, :]).permute(1, 2, 0) + (window - 1)
        self.register_buffer("bias_index", rel[..., 0] * (2 * window - 1) + rel[..., 1], persistent=False)
        mask = None
        if shift:
            lab = torch.zeros(1, res, res, 1)
            cuts = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
            for i, hs in enumerate(cuts):
                for j, ws in enumerate(cuts):
                    lab[:, hs, ws, :] = i * 3 + j
            lab = windows(lab, window).squeeze(-1)  # [nW, w*w]
            mask = (lab[:, None, :] - lab[:, :, None] != 0).float() * -100.0
        self.register_buffer("mask", mask, persistent=False)

    def attention(self, t):
        Bn, N, C = t.shape
        h = self.heads
        q, k, v = self.qkv(t).reshape(Bn, N, 3, h, C // h).permute(2, 0, 3, 1, 4)
        a = self.mm1(q * (C // h) ** -0.5, k.transpose(-2, -1))
        a = a + self.bias_table[self.bias_index.reshape(-1)].reshape(N, N, h).permute(2, 0, 1).unsqueeze(0)
        if self.mask is not None:
            nW = self.mask.shape[0]
            a = (a.reshape(Bn // nW, nW, h, N, N) + self.mask[None, :, None]).reshape(Bn, h, N, N)
        o = self.mm2(torch.softmax(a, dim=-1), v).transpose(1, 2).reshape(Bn, N, C)
        return self.proj(o)

    def forward(self, x):  # x: [B, L, C] tokens of a res x res map
        B, L, C = x.shape
        r, s = self.res, self.shift
        y = self.n1(x).reshape(B, r, r, C)
        if s:
            y = torch.roll(y, (-s, -s), (1, 2))
        y = unwindows(self.attention(windows(y, self.w)), self.w, r, r)
        if s:
            y = torch.roll(y, (s, s), (1, 2))
        x = x + self.drop(y.reshape(B, L, C))
        return x + self.drop(self.mlp(self.n2(x)))


class PatchMerging(nn.Module):
    """2x2 neighbours concatenated (in the reference's order), LN, Linear 4C -> 2C."""

    def __init__(self, dim, res):
        super().__init__()
        self.res = res
        self.norm = nn.LayerNorm(4 * dim)
        self.red = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x):
        B, L, C = x.shape
        r = self.res // 2
        # the reference's cat of x[0::2,0::2], x[1::2,0::2], x[0::2,1::2], x[1::2,1::2] (column offset major,
        # row offset minor) as Reshape/Transpose: strided Slices have no gradient rule in segcause
        x = x.reshape(B, r, 2, r, 2, C).permute(0, 1, 3, 4, 2, 5).reshape(B, r * r, 4 * C)
        return self.red(self.norm(x))


class PatchExpand(nn.Module):
    """Linear C -> f*f*C/f', pixel-shuffle-like rearrange 'b h w (p1 p2 c) -> b (h p1) (w p2) c', LN (the reference's
    PatchExpand with f=2, out C/2, and FinalPatchExpand_X4 with f=4, out C)."""

    def __init__(self, dim, res, f, out):
        super().__init__()
        self.res, self.f, self.out = res, f, out
        self.expand = nn.Linear(dim, f * f * out, bias=False)
        self.norm = nn.LayerNorm(out)

    def forward(self, x):
        B = x.shape[0]
        r, f, c = self.res, self.f, self.out
        x = self.expand(x).reshape(B, r, r, f, f, c).permute(0, 1, 3, 2, 4, 5).reshape(B, -1, c)
        return self.norm(x)


class SwinUNet(nn.Module):
    def __init__(self, in_ch=3, size=256, dim=24, depths=(2, 2, 2, 2), heads=(1, 2, 4, 8), window=8, patch=4, drop_path=0.1):
        super().__init__()
        res = size // patch
        if size % patch or res % (2 ** (len(depths) - 1)) or res // 2 ** (len(depths) - 1) < 1:
            raise ValueError(f"swinunet: input size {size} must be a multiple of {patch * 2 ** (len(depths) - 1)}")
        self.size, self.res = size, res
        n = len(depths)
        self.embed = nn.Conv2d(in_ch, dim, patch, patch)
        self.enorm = nn.LayerNorm(dim)
        dpr = torch.linspace(0, drop_path, sum(depths)).tolist()

        def stage(i):
            d, r = dim * 2 ** i, res // 2 ** i
            rates = dpr[sum(depths[:i]):sum(depths[:i + 1])]
            return nn.ModuleList(SwinBlock(d, r, heads[i], window, 0 if b % 2 == 0 else window // 2, rates[b]) for b in range(depths[i]))

        self.enc = nn.ModuleList(stage(i) for i in range(n))
        self.merge = nn.ModuleList(PatchMerging(dim * 2 ** i, res // 2 ** i) for i in range(n - 1))
        self.norm = nn.LayerNorm(dim * 2 ** (n - 1))
        # decoder: expand the bottleneck, then per level concat skip, Linear 2C -> C, blocks, expand (not after the last)
        self.expand = nn.ModuleList(PatchExpand(dim * 2 ** i, res // 2 ** i, 2, dim * 2 ** (i - 1)) for i in reversed(range(1, n)))
        self.concat = nn.ModuleList(nn.Linear(2 * dim * 2 ** i, dim * 2 ** i) for i in reversed(range(n - 1)))
        self.dec = nn.ModuleList(stage(i) for i in reversed(range(n - 1)))
        self.norm_up = nn.LayerNorm(dim)
        self.final = PatchExpand(dim, res, patch, dim)
        self.head = nn.Conv2d(dim, 1, 1, bias=False)
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, x):
        B, _, H, W = x.shape
        if H != self.size or W != self.size:
            raise ValueError(f"swinunet is built for {self.size}x{self.size} input (its windows and masks are fixed), got {H}x{W}")
        t = self.enorm(self.embed(x).flatten(2).transpose(1, 2))
        skips = []
        for i, blocks in enumerate(self.enc):
            skips.append(t)
            for b in blocks:
                t = b(t)
            if i < len(self.merge):
                t = self.merge[i](t)
        t = self.norm(t)
        for i, (ex, cat, blocks) in enumerate(zip(self.expand, self.concat, self.dec)):
            t = cat(torch.cat([ex(t), skips[len(self.dec) - 1 - i]], -1))
            for b in blocks:
                t = b(t)
        t = self.final(self.norm_up(t))
        return self.head(t.reshape(B, H, W, -1).permute(0, 3, 1, 2))


ARCHS = {
    "unet": UNet,
    "attunet": AttUNet,
    "deeplab": DeepLabV3Plus,
    "segformer": SegFormerLite,
    "segnet": SegNet,
    "unext": UNeXt,
    "swinunet": SwinUNet,
}

DESCRIPTIONS = {
    "unet": "plain U-Net (4 down/up levels, base 16 channels, bilinear x2 upsampling + 1x1 conv)",
    "attunet": "Attention U-Net: U-Net with additive attention gates on the skip connections",
    "deeplab": "DeepLabv3+-style: small residual encoder (output stride 16, dilated last stage), ASPP (rates 2/4/6 + image pooling), low-level skip at 1/4",
    "segformer": "SegFormer-lite: 4-stage hierarchical transformer with spatial-reduction softmax self-attention over tokens, Mix-FFN, all-MLP decoder, light 1/2-res refinement",
    "segnet": "SegNet-lite: VGG-style encoder-decoder, decoder upsamples with the max-pooling switches (argmax-mask unpooling)",
    "unext": "UNeXt (Valanarasu & Patel 2022, the authors' small UNeXt-S widths: conv 8/16/32, tokens 64/128): 3 conv stages, "
    "2 tokenized shifted-MLP stages, additive skips, bilinear x2 decoder",
    "swinunet": "Swin-UNet (Cao et al. 2022) at a small width (embed 24, depths 2/2/2/2, heads 1/2/4/8, window 8, patch 4): "
    "shifted-window attention encoder with patch merging, symmetric patch-expanding decoder with concatenated skips",
}

# Architectures whose graph is fixed to the input size they are built for (window partitions and shift masks).
SIZED = {"swinunet"}


def build(arch, in_ch=3, size=None, **kw):
    if arch in SIZED and size is not None:
        kw["size"] = size
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
