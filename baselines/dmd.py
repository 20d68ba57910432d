""""DMD (ResNet)" (the paper's naive few-step baseline): the stage-2 FastGenerator (the DMD-distilled
transformer) run with the stage-1 SlowAdapter unchanged, 4 steps of the few-step sampler, no CFG (NFE = 4).

The adapter was trained against the slow transformer's features; plugging it into the distilled one without
fine-tuning is exactly what this row measures (the "SlowAdapter directly" ablation uses the same weights; this
generator reports them under the paper's name). FlashMotion's stage 3 (FastAdapter) is what fixes it.

Weights come either as two checkpoints (flashmotion.checkpoint format):
    generator_checkpoint=DIR   stage-2 export: its `backbone/transformer` is the FastGenerator (its adapter, if
                               any, is ignored)
    adapter_checkpoint=DIR     stage-1 export: its `adapter.safetensors` is the SlowAdapter
or as one combined checkpoint=DIR whose transformer is the FastGenerator and whose adapter is the SlowAdapter.
The VAE, text encoder and tokenizer come from the generator checkpoint when saved there, else from model_path,
else from the adapter checkpoint's backbone when that one is complete (the tiny preset saves all four).

    flashbench generate --generator "dmd-resnet generator_checkpoint=RUNS/stage2_dmd/export \
        adapter_checkpoint=RUNS/stage1_adapter/export" ...
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safetensors.torch import load_model

from baselines.multistep import ADAPTER_KIND, require_adapter
from flashbench.generators.base import GeneratedVideo, GenerationRequest
from flashmotion.checkpoint import ADAPTER_WEIGHTS, BACKBONE_DIR, read_config
from flashmotion.errors import CheckpointError, ModelConfigError
from flashmotion.generator import DTYPES, FlashMotion


class DMDResNet(FlashMotion):
    """FastGenerator + SlowAdapter, 4-step sampler; see the module docstring."""

    name = "dmd-resnet"
    defaults = {"sampler": "few_step", "steps": 4, "adapter": ADAPTER_KIND}

    def __init__(self, generator_checkpoint: str | None = None, adapter_checkpoint: str | None = None,
                 **args: Any) -> None:
        super().__init__(**args)
        separate = (generator_checkpoint, adapter_checkpoint)
        if self.settings.checkpoint is not None and any(separate):
            raise ModelConfigError("dmd-resnet takes checkpoint=DIR or generator_checkpoint=DIR "
                                   "adapter_checkpoint=DIR, not both")
        if self.settings.checkpoint is None and not all(separate):
            raise ModelConfigError(
                "dmd-resnet needs generator_checkpoint=DIR (stage-2 FastGenerator, configs/<preset>/stage2_dmd.yaml) "
                "and adapter_checkpoint=DIR (stage-1 SlowAdapter, configs/<preset>/stage1_adapter.yaml), "
                "or one combined checkpoint=DIR"
            )
        self.generator_checkpoint = None if generator_checkpoint is None else Path(generator_checkpoint)
        self.adapter_checkpoint = None if adapter_checkpoint is None else Path(adapter_checkpoint)

    @property
    def steps(self) -> int:
        return self.sampler.steps

    def load(self):
        if self._model is None:
            if self.settings.checkpoint is not None:
                model = super().load()
                self._model = None
            else:
                model = self._combine()
            require_adapter(getattr(model[1], "kind", None), str(self.adapter_checkpoint or self.settings.checkpoint),
                            self.name)
            self._model = model
        return self._model

    def _combine(self):
        """(backbone with the FastGenerator's transformer, SlowAdapter loaded strictly for it)."""
        from flashmotion.models.adapters import build_adapter
        from flashmotion.models.backbone import SUBFOLDERS, WanBackbone, load_component
        from flashmotion.models.presets import get_preset

        s = self.settings
        dtype = DTYPES[s.dtype]
        gen_dir, adapter_dir = self.generator_checkpoint, self.adapter_checkpoint
        gen_cfg, adapter_cfg = read_config(gen_dir), read_config(adapter_dir)
        for directory, config in ((gen_dir, gen_cfg), (adapter_dir, adapter_cfg)):
            if config["preset"] != s.preset:
                raise ModelConfigError(f"checkpoint {directory} is for preset {config['preset']!r}, not {s.preset!r}; "
                                       "pass preset=... to match")
        kind, options = adapter_cfg["adapter"]["kind"], adapter_cfg["adapter"]["options"]
        require_adapter(kind, str(adapter_dir), self.name)  # before loading any weights
        saved = set(gen_cfg["backbone_components"])
        if "transformer" not in saved:
            raise CheckpointError(f"{gen_dir} saves no transformer, so it is not a stage-2 FastGenerator export; "
                                  "pass the stage2_dmd export as generator_checkpoint")
        if saved >= set(SUBFOLDERS):
            rest = gen_dir / BACKBONE_DIR
        elif s.model_path is not None:
            rest = Path(s.model_path)
        elif set(adapter_cfg["backbone_components"]) >= set(SUBFOLDERS):
            rest = adapter_dir / BACKBONE_DIR
        else:
            raise CheckpointError(f"{gen_dir} holds only {sorted(saved)} and {adapter_dir} no full backbone; pass "
                                  "model_path=DIR (a local Wan2.2-TI2V-5B-Diffusers folder) for the rest")
        parts = {name: load_component(gen_dir / BACKBONE_DIR if name in saved else rest, name, dtype)
                 for name in SUBFOLDERS}
        backbone = WanBackbone(**parts, max_sequence_length=get_preset(s.preset).max_sequence_length,
                               preset=s.preset).to(s.device).eval()
        adapter = build_adapter(kind, backbone.transformer, **options)
        weights = adapter_dir / ADAPTER_WEIGHTS
        if not weights.is_file():
            raise CheckpointError(f"missing {weights}; the adapter checkpoint is incomplete, export it again")
        mismatch = f"the SlowAdapter {weights} does not fit the FastGenerator of {gen_dir}"
        try:
            missing, unexpected = load_model(adapter, str(weights), strict=False, device=str(s.device))
        except RuntimeError as e:  # shape mismatch: the two checkpoints come from different backbones
            raise CheckpointError(f"{mismatch} ({str(e).splitlines()[-1].strip()})") from None
        if missing or unexpected:
            raise CheckpointError(f"{mismatch} (missing {list(missing)[:3]}, unexpected {list(unexpected)[:3]})")
        return backbone, adapter.eval()

    def generate(self, request: GenerationRequest) -> GeneratedVideo:
        video = super().generate(request)
        if self.settings.checkpoint is not None:
            video.extra["checkpoint"] = str(self.settings.checkpoint)
        else:
            video.extra["generator_checkpoint"] = str(self.generator_checkpoint)
            video.extra["adapter_checkpoint"] = str(self.adapter_checkpoint)
        return video
