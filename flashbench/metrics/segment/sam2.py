"""SAM 2-family video predictors: SAM 2 / 2.1 (`pip install sam2`) and EfficientTAM (its GitHub package).

Run as SAM 2's own DAVIS evaluation does (tools/vos_inference.py in facebookresearch/sam2): under
`torch.inference_mode`, with bfloat16 autocast on CUDA, without the demo's post-processing, with the
non-overlapping constraint on (one owner per pixel, as DAVIS label maps). Each object is given its ground-truth
mask at its prompt frame (`add_new_mask`). When all objects are prompted on the same frame they are tracked
together from there (`vos_inference`); otherwise each object is tracked in a session of its own from its own
prompt frame and the non-overlapping constraint is applied to the joined scores
(`vos_separate_inference_per_object`). Masks before an object's prompt frame are empty, as the `Segmenter`
protocol requires.

One joint session for objects prompted on different frames is what broke before (facebookresearch/sam2 issue
577: SAM 2 stores memory features in bfloat16, and an object tracked on frames before its prompt attends to them
with no float object pointer beside them, so a float32 model fails with "mat1 and mat2 must have the same
dtype"); it also let such an object collect memory from frames before its prompt. CPU runs in float32 (bf16
matmuls there are emulated and ~10x slower): each session's memory starts at a prompt frame, whose float object
pointer keeps the memory float.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from flashbench.errors import FlashBenchError, WeightsError
from flashbench.metrics.segment.base import check_track_inputs
from flashbench.metrics.segment.checkpoint import load_strict, read_state_dict


@dataclass(frozen=True)
class Family:
    """A package with SAM 2's video-predictor API: where its Hydra configs and predictor class live."""

    name: str  # segmenter name
    package: str  # Python package, also its Hydra config module
    predictor: str  # video-predictor class, the model's _target_
    configs: dict[str, str]  # official checkpoint file stem -> config name inside `package`
    install: str  # how to get the package and a checkpoint

    def config_for(self, checkpoint: Path) -> str:
        """The config of an official checkpoint file name; WeightsError for any other name."""
        config = self.configs.get(checkpoint.stem)
        if config is None:
            names = ", ".join(f"{s}.pt" for s in self.configs)
            raise WeightsError(
                f"cannot tell the {self.name} model from the file name {checkpoint.name}; keep the official name ({names})"
            )
        return config


SAM2 = Family(
    name="sam2",
    package="sam2",
    predictor="sam2.sam2_video_predictor.SAM2VideoPredictor",
    configs={
        f"{prefix}_hiera_{size}": f"configs/{prefix}/{prefix}_hiera_{short}.yaml"
        for prefix in ("sam2", "sam2.1")
        for size, short in (("tiny", "t"), ("small", "s"), ("base_plus", "b+"), ("large", "l"))
    },
    install="install it with `pip install sam2` and pass --segmenter-checkpoint PATH (e.g. sam2.1_hiera_tiny.pt)",
)
EFFICIENTTAM = Family(
    name="efficienttam",
    package="efficient_track_anything",
    predictor="efficient_track_anything.efficienttam_video_predictor.EfficientTAMVideoPredictor",
    configs={
        f"efficienttam_{v}": f"configs/efficienttam/efficienttam_{v}.yaml"
        for size in ("ti", "s")
        for v in (size, f"{size}_1", f"{size}_2", f"{size}_512x512")
    },
    install="install it from its GitHub repository yformer/EfficientTAM (`pip install --no-deps -e .` in a clone, then "
    "`pip install hydra-core iopath`) and pass --segmenter-checkpoint PATH (e.g. efficienttam_s.pt)",
)


def build_predictor(
    family: Family, config: str, checkpoint: Path, device: str = "cpu", overrides: Sequence[str] = ()
) -> torch.nn.Module:
    """The family's video predictor from `config` (Hydra `overrides` added) with the weights in `checkpoint`.

    As `build_sam2_video_predictor(..., apply_postprocessing=False)` with ``non_overlap_masks=true`` (what
    vos_inference.py builds), and ``compile_image_encoder=false``. The config is composed in the family's own
    config module, so SAM 2 and EfficientTAM can be built in one process (each package initialises Hydra's global
    config search path to itself on import, and only the first import takes effect).
    """
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import instantiate

    state = read_state_dict(checkpoint, f"pass an official {family.name} checkpoint")
    fixed = [f"++model._target_={family.predictor}", "++model.non_overlap_masks=true", "++model.compile_image_encoder=false"]
    hydra = GlobalHydra.instance()
    previous = hydra.hydra
    hydra.clear()
    try:
        with initialize_config_module(family.package, version_base="1.2"):
            cfg = compose(config_name=config, overrides=[*fixed, *overrides])
    finally:
        if previous is not None and not hydra.is_initialized():
            hydra.initialize(previous)
    model = instantiate(cfg.model, _recursive_=True)
    load_strict(model, state, checkpoint, f"pass an official {family.name} checkpoint")
    return model.to(device).eval()


class Sam2Segmenter:
    """`Segmenter` on a SAM 2-family video predictor (SAM2VideoPredictor's API)."""

    def __init__(
        self, predictor, name: str, checkpoint: Path, checkpoint_sha256: str, config: str, progress: bool,
        overrides: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.predictor = predictor
        self.checkpoint = checkpoint
        self.checkpoint_sha256 = checkpoint_sha256
        self.config = config
        self.overrides = tuple(overrides)
        self.progress = progress

    def describe(self) -> dict:
        return {
            "segmenter": self.name,
            "checkpoint": self.checkpoint.name,
            "checkpoint_sha256": self.checkpoint_sha256,
            "config": self.config,
            "config_overrides": list(self.overrides),
            "tracker": "video predictor under bf16 autocast, add_new_mask at each object's prompt frame; all objects "
            "together when prompted on one frame, else one session per object; non-overlapping (SAM 2 vos_inference.py)",
        }

    def _propagate(self, state: dict, objects: Sequence[int], prompt_masks: np.ndarray, prompt_frames: np.ndarray):
        """Prompt `objects` on their frames; yields (frame, object, (H, W) float mask logits) from the earliest on."""
        self.predictor.reset_state(state)
        for k in objects:
            self.predictor.add_new_mask(state, int(prompt_frames[k]), int(k), prompt_masks[k])
        start = int(prompt_frames[list(objects)].min())
        for frame_idx, obj_ids, logits in self.predictor.propagate_in_video(state, start_frame_idx=start):
            for j, obj in enumerate(obj_ids):
                yield frame_idx, int(obj), logits[j, 0].float().cpu().numpy()

    @torch.inference_mode()
    def track(self, frames: np.ndarray, prompt_masks: np.ndarray, prompt_frames: np.ndarray) -> np.ndarray:
        frames, prompt_masks, prompt_frames = check_track_inputs(frames, prompt_masks, prompt_frames)
        t, n = len(frames), len(prompt_masks)
        out = np.zeros((t, n, *frames.shape[1:3]), dtype=bool)
        joint = bool((prompt_frames == prompt_frames[0]).all())
        sessions = [list(range(n))] if joint else [[k] for k in range(n)]
        # one session per object: the highest score owns a pixel (SAM 2's non-overlapping constraint on the joined
        # scores); a joint session applies the constraint inside the model
        best = None if joint else np.full((t, *frames.shape[1:3]), -np.inf, dtype=np.float32)
        owner = None if joint else np.full((t, *frames.shape[1:3]), -1, dtype=np.int16)
        device = next(self.predictor.parameters()).device
        with tempfile.TemporaryDirectory(prefix=f"flashbench-{self.name}-") as tmp, \
                torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
            for i, frame in enumerate(frames):  # the predictor reads a folder of <index>.jpg
                Image.fromarray(frame).save(Path(tmp) / f"{i:05d}.jpg", quality=95)
            state = self.predictor.init_state(video_path=tmp)
            for objects in tqdm(sessions, desc=f"segment ({self.name})", disable=not self.progress, leave=False):
                for f, k, logits in self._propagate(state, objects, prompt_masks, prompt_frames):
                    if joint:
                        out[f, k] = logits > 0.0
                    else:
                        wins = logits > best[f]
                        owner[f][wins] = k
                        best[f][wins] = logits[wins]
        if not joint:
            out[:] = (owner[:, None] == np.arange(n)[None, :, None, None]) & (best[:, None] > 0.0)
        out[np.arange(t)[:, None] < prompt_frames[None, :]] = False
        return out


def load_family(
    family: Family, device: str, checkpoint: Path | None, progress: bool, image_size: int | None
) -> Sam2Segmenter:
    """A `Sam2Segmenter` for `family`; the config is chosen from the checkpoint's official file name.

    image_size: the model's input size (None: the config's, 1024 for the published checkpoints, as evaluated).
    """
    try:
        __import__(family.package)
    except ImportError:
        raise FlashBenchError(f"segmenter {family.name!r} needs the {family.package} package: {family.install}") from None
    if checkpoint is None or not Path(checkpoint).is_file():
        where = "no checkpoint given" if checkpoint is None else f"checkpoint not found: {checkpoint}"
        raise WeightsError(f"segmenter {family.name!r} needs weights ({where}): {family.install}")
    from flashbench.weights import sha256_file

    checkpoint = Path(checkpoint)
    config = family.config_for(checkpoint)
    overrides = [] if image_size is None else [f"++model.image_size={int(image_size)}"]
    predictor = build_predictor(family, config, checkpoint, device, overrides)
    return Sam2Segmenter(predictor, family.name, checkpoint, sha256_file(checkpoint), config, progress, overrides)


def load_sam2(
    device: str = "cpu", checkpoint: Path | None = None, progress: bool = True, image_size: int | None = None
) -> Sam2Segmenter:
    """SAM 2 / 2.1 segmenter (sam2[.1]_hiera_{tiny,small,base_plus,large}.pt)."""
    return load_family(SAM2, device, checkpoint, progress, image_size)


def load_efficienttam(
    device: str = "cpu", checkpoint: Path | None = None, progress: bool = True, image_size: int | None = None
) -> Sam2Segmenter:
    """EfficientTAM segmenter (efficienttam_{ti,s}[_1,_2,_512x512].pt)."""
    return load_family(EFFICIENTTAM, device, checkpoint, progress, image_size)
