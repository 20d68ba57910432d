"""TinyViT image encoder of MobileSAM, ported for inference from MobileSAM's ``tiny_vit_sam.py``.

Module and parameter names follow the original so the official ``mobile_sam.pt`` loads with
``strict=True``. Left out (training only): drop path, gradient checkpointing, layer-wise LR decay,
weight init, BN fusion. Attention uses ``F.scaled_dot_product_attention`` with the learned
relative-position bias as an additive mask (same maths as the original ``softmax(qk^T s + b) v``).
The classification head (``norm_head``, ``head``) is unused but kept: it is in the checkpoint.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from timm.layers import to_2tuple
from torch import nn


class Conv2d_BN(nn.Sequential):  # noqa: N801 (checkpoint naming)
    """Conv (no bias) followed by BatchNorm, as ``c`` and ``bn``."""

    def __init__(self, a: int, b: int, ks: int = 1, stride: int = 1, pad: int = 0, groups: int = 1) -> None:
        super().__init__()
        self.add_module("c", nn.Conv2d(a, b, ks, stride, pad, 1, groups, bias=False))
        self.add_module("bn", nn.BatchNorm2d(b))


class PatchEmbed(nn.Module):
    """Two stride-2 3x3 convs: (B, 3, H, W) -> (B, C, H/4, W/4)."""

    def __init__(self, in_chans: int, embed_dim: int, resolution: int) -> None:
        super().__init__()
        img_size = to_2tuple(resolution)
        self.patches_resolution = (img_size[0] // 4, img_size[1] // 4)
        n = embed_dim
        self.seq = nn.Sequential(Conv2d_BN(in_chans, n // 2, 3, 2, 1), nn.GELU(), Conv2d_BN(n // 2, n, 3, 2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, 3x3 depthwise, 1x1 project, residual, GELU."""

    def __init__(self, in_chans: int, out_chans: int, expand_ratio: float) -> None:
        super().__init__()
        hidden = int(in_chans * expand_ratio)
        self.conv1 = Conv2d_BN(in_chans, hidden, ks=1)
        self.act1 = nn.GELU()
        self.conv2 = Conv2d_BN(hidden, hidden, ks=3, stride=1, pad=1, groups=hidden)
        self.act2 = nn.GELU()
        self.conv3 = Conv2d_BN(hidden, out_chans, ks=1)
        self.act3 = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv3(self.act2(self.conv2(self.act1(self.conv1(x)))))
        return self.act3(y + x)


class PatchMerging(nn.Module):
    """1x1 conv, 3x3 depthwise conv (stride 2, or 1 into the last stage), 1x1 conv; returns tokens."""

    def __init__(self, input_resolution: tuple[int, int], dim: int, out_dim: int, stride: int) -> None:
        super().__init__()
        self.input_resolution = input_resolution
        self.act = nn.GELU()
        self.conv1 = Conv2d_BN(dim, out_dim, 1, 1, 0)
        self.conv2 = Conv2d_BN(out_dim, out_dim, 3, stride, 1, groups=out_dim)
        self.conv3 = Conv2d_BN(out_dim, out_dim, 1, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:  # tokens (B, L, C) -> (B, C, H, W)
            h, w = self.input_resolution
            x = x.view(len(x), h, w, -1).permute(0, 3, 1, 2)
        x = self.conv3(self.act(self.conv2(self.act(self.conv1(x)))))
        return x.flatten(2).transpose(1, 2)


class ConvLayer(nn.Module):
    """Stage 0: MBConv blocks on (B, C, H, W), then patch merging."""

    def __init__(self, dim: int, depth: int, expand_ratio: float, downsample: nn.Module | None) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([MBConv(dim, dim, expand_ratio) for _ in range(depth)])
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x)
        return x if self.downsample is None else self.downsample(x)


class Mlp(nn.Module):
    def __init__(self, in_features: int, hidden_features: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(in_features)
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.fc2 = nn.Linear(hidden_features, in_features)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(self.norm(x))))


class Attention(nn.Module):
    """Window multi-head attention with a learned bias per (|dy|, |dx|) offset (LeViT style)."""

    def __init__(self, dim: int, key_dim: int, num_heads: int, attn_ratio: float, resolution: tuple[int, int]) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.d = int(attn_ratio * key_dim)
        self.dh = self.d * num_heads
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, self.dh + 2 * key_dim * num_heads)
        self.proj = nn.Linear(self.dh, dim)
        points = list(itertools.product(range(resolution[0]), range(resolution[1])))
        offsets: dict[tuple[int, int], int] = {}
        idxs = []
        for p1 in points:
            for p2 in points:
                idxs.append(offsets.setdefault((abs(p1[0] - p2[0]), abs(p1[1] - p2[1])), len(offsets)))
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, len(offsets)))
        self.register_buffer(
            "attention_bias_idxs", torch.tensor(idxs, dtype=torch.long).view(len(points), len(points)), persistent=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        qkv = self.qkv(self.norm(x)).view(b, n, self.num_heads, -1)
        q, k, v = (t.transpose(1, 2) for t in qkv.split([self.key_dim, self.key_dim, self.d], dim=3))
        bias = self.attention_biases[:, self.attention_bias_idxs].to(q.dtype)  # (heads, N, N)
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # scale = key_dim ** -0.5, as the original
        return self.proj(x.transpose(1, 2).reshape(b, n, self.dh))


class TinyViTBlock(nn.Module):
    """Windowed attention, residual; 3x3 depthwise conv; MLP, residual."""

    def __init__(
        self, dim: int, input_resolution: tuple[int, int], num_heads: int, window_size: int, mlp_ratio: float
    ) -> None:
        super().__init__()
        self.input_resolution = input_resolution
        self.window_size = window_size
        self.attn = Attention(dim, dim // num_heads, num_heads, attn_ratio=1, resolution=(window_size, window_size))
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.local_conv = Conv2d_BN(dim, dim, ks=3, stride=1, pad=1, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.input_resolution
        b, length, c = x.shape
        ws = self.window_size
        res_x = x
        if h == ws and w == ws:
            x = self.attn(x)
        else:
            x = x.view(b, h, w, c)
            pad_b, pad_r = (ws - h % ws) % ws, (ws - w % ws) % ws
            if pad_b or pad_r:
                x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
            ph, pw = h + pad_b, w + pad_r
            nh, nw = ph // ws, pw // ws
            x = x.view(b, nh, ws, nw, ws, c).transpose(2, 3).reshape(b * nh * nw, ws * ws, c)
            x = self.attn(x)
            x = x.view(b, nh, nw, ws, ws, c).transpose(2, 3).reshape(b, ph, pw, c)
            x = x[:, :h, :w].contiguous().view(b, length, c)
        x = res_x + x
        x = self.local_conv(x.transpose(1, 2).reshape(b, c, h, w).contiguous()).view(b, c, length).transpose(1, 2)
        return x + self.mlp(x)


class BasicLayer(nn.Module):
    """Stages 1-3: TinyViT blocks on tokens, then (except the last stage) patch merging."""

    def __init__(
        self,
        dim: int,
        input_resolution: tuple[int, int],
        depth: int,
        num_heads: int,
        window_size: int,
        mlp_ratio: float,
        downsample: nn.Module | None,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            [TinyViTBlock(dim, input_resolution, num_heads, window_size, mlp_ratio) for _ in range(depth)]
        )
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x)
        return x if self.downsample is None else self.downsample(x)


class LayerNorm2d(nn.Module):
    """LayerNorm over channels of (B, C, H, W), as in SAM's neck."""

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class TinyViT(nn.Module):
    """TinyViT backbone + SAM neck: (B, 3, S, S) normalised image -> (B, 256, S/16, S/16) embedding.

    Stage resolutions: S/4, S/8, S/16, S/16 (the last patch merging keeps the resolution).
    """

    def __init__(
        self,
        img_size: int = 1024,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dims: tuple[int, ...] = (64, 128, 160, 320),
        depths: tuple[int, ...] = (2, 2, 6, 2),
        num_heads: tuple[int, ...] = (2, 4, 5, 10),
        window_sizes: tuple[int, ...] = (7, 7, 14, 7),
        mlp_ratio: float = 4.0,
        mbconv_expand_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        self.img_size = img_size  # read by segment_anything's SamPredictor / ResizeLongestSide
        self.patch_embed = PatchEmbed(in_chans, embed_dims[0], img_size)
        pr = self.patch_embed.patches_resolution
        num_layers = len(depths)
        self.layers = nn.ModuleList()
        for i in range(num_layers):
            scale = 2 ** (i - 1 if i == num_layers - 1 else i)
            resolution = (pr[0] // scale, pr[1] // scale)
            downsample = None
            if i < num_layers - 1:
                stride = 1 if i == num_layers - 2 else 2
                downsample = PatchMerging(resolution, embed_dims[i], embed_dims[i + 1], stride)
            if i == 0:
                layer: nn.Module = ConvLayer(embed_dims[0], depths[0], mbconv_expand_ratio, downsample)
            else:
                layer = BasicLayer(
                    embed_dims[i], resolution, depths[i], num_heads[i], window_sizes[i], mlp_ratio, downsample
                )
            self.layers.append(layer)
        self.out_resolution = (pr[0] // 2 ** (num_layers - 2), pr[1] // 2 ** (num_layers - 2))
        self.norm_head = nn.LayerNorm(embed_dims[-1])
        self.head = nn.Linear(embed_dims[-1], num_classes)
        self.neck = nn.Sequential(
            nn.Conv2d(embed_dims[-1], 256, kernel_size=1, bias=False),
            LayerNorm2d(256),
            nn.Conv2d(256, 256, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(256),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        b, _, c = x.shape
        x = x.view(b, *self.out_resolution, c).permute(0, 3, 1, 2)
        return self.neck(x)
