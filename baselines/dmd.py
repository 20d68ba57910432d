""""DMD (ResNet)" (the paper's naive few-step baseline): the stage-2 FastGenerator (the DMD-distilled
transformer) run with the stage-1 SlowAdapter unchanged, 4 steps of the few-step sampler, no CFG (NFE = 4).

The adapter was trained against the slow transformer's features; plugging it into the distilled one without
fine-tuning is exactly what this row measures (the "SlowAdapter directly" ablation uses the same weights; this
generator reports them under the paper's name). FlashMotion's stage 3 (FastAdapter) is what fixes it.

Weights come either as two checkpoints (flashmotion.checkpoint format):
    generator_checkpoint=DIR   stage-2 export: its `backbone/transformer` is the FastGenerator (its adapter, if
                               any, is ignored)
    adapter_checkpoint=DIR     stage-1 export: its `adapter.safetensors` is the SlowAdapter
or as one combined checkpoint=DIR whose transformer is the FastGenerator and whose adapter is the SlowAdapter
(e.g. the "SlowAdapter directly" ablation's export). The VAE, text encoder and tokenizer come from the generator
checkpoint when saved there, else from model_path, else from the adapter checkpoint's backbone when that one is
complete (the tiny preset saves all four).

Two checkpoints are combined as a *view*: a temporary checkpoint folder whose flashmotion.json names the
SlowAdapter and the FastGenerator's saved components, with links to their files, which FlashMotion's own loader
then reads (strictly: an adapter that does not fit the transformer is a one-line error). Nothing is copied.

    flashbench generate --generator "dmd-resnet generator_checkpoint=runs/tiny/stage2_dmd/export \
        adapter_checkpoint=runs/tiny/stage1_adapter/export" ...
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from baselines.multistep import ADAPTER_KIND, require_adapter
from flashbench.generators.base import GeneratedVideo, GenerationRequest
from flashmotion.checkpoint import ADAPTER_WEIGHTS, BACKBONE_DIR, CONFIG_NAME, allow_uncarded, read_config
from flashmotion.checkpoint_cards import write_card
from flashmotion.errors import CheckpointError, ModelConfigError
from flashmotion.generator import FlashMotion
from flashmotion.models.backbone import SUBFOLDERS


def combined_view(generator_checkpoint: Path, adapter_checkpoint: Path, directory: Path) -> dict[str, Any]:
    """Write into `directory` a checkpoint made of `generator_checkpoint`'s backbone components and
    `adapter_checkpoint`'s adapter (symlinks to their files, a new flashmotion.json); returns that config."""
    gen_cfg, adapter_cfg = read_config(generator_checkpoint), read_config(adapter_checkpoint)
    if gen_cfg["preset"] != adapter_cfg["preset"]:
        raise ModelConfigError(f"{generator_checkpoint} is for preset {gen_cfg['preset']!r} but {adapter_checkpoint} "
                               f"for {adapter_cfg['preset']!r}; pass checkpoints of one preset")
    saved = list(gen_cfg["backbone_components"])
    if "transformer" not in saved:
        raise CheckpointError(f"{generator_checkpoint} saves no transformer, so it is not a stage-2 FastGenerator "
                              "export; pass the stage2_dmd export as generator_checkpoint")
    weights = Path(adapter_checkpoint) / ADAPTER_WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"missing {weights}; the adapter checkpoint is incomplete, export it again")
    (directory / BACKBONE_DIR).mkdir(parents=True)
    for name in saved:
        os.symlink((Path(generator_checkpoint) / BACKBONE_DIR / name).resolve(), directory / BACKBONE_DIR / name)
    os.symlink(weights.resolve(), directory / ADAPTER_WEIGHTS)
    config = {**gen_cfg, "adapter": adapter_cfg["adapter"],
              "metadata": {"combined": "dmd-resnet", "generator_checkpoint": str(generator_checkpoint),
                           "adapter_checkpoint": str(adapter_checkpoint), "generator": gen_cfg["metadata"],
                           "adapter": adapter_cfg["metadata"]}}
    (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    write_card(directory)  # the view's own files (links to the checked sources) are carded like any checkpoint
    return config


class DMDResNet(FlashMotion):
    """FastGenerator + SlowAdapter, 4-step sampler; see the module docstring."""

    name = "dmd-resnet"
    defaults = {"sampler": "few_step", "steps": 4, "adapter": ADAPTER_KIND}

    def __init__(self, generator_checkpoint: str | None = None, adapter_checkpoint: str | None = None,
                 **args: Any) -> None:
        super().__init__(**args)
        s = self.settings
        separate = (generator_checkpoint, adapter_checkpoint)
        if s.checkpoint is not None and any(separate):
            raise ModelConfigError("dmd-resnet takes checkpoint=DIR or generator_checkpoint=DIR "
                                   "adapter_checkpoint=DIR, not both")
        if s.checkpoint is None and not all(separate):
            raise ModelConfigError(
                "dmd-resnet needs generator_checkpoint=DIR (stage-2 FastGenerator, configs/<preset>/stage2_dmd.yaml) "
                "and adapter_checkpoint=DIR (stage-1 SlowAdapter, configs/<preset>/stage1_adapter.yaml), "
                "or one combined checkpoint=DIR"
            )
        self.sources = ({"checkpoint": s.checkpoint} if s.checkpoint is not None else
                        {"generator_checkpoint": str(generator_checkpoint), "adapter_checkpoint": str(adapter_checkpoint)})
        self._view = None
        if s.trust_uncarded and s.checkpoint is None:
            allow_uncarded(generator_checkpoint)
            allow_uncarded(adapter_checkpoint)
        if s.checkpoint is None:
            self._view = tempfile.TemporaryDirectory(prefix="dmd-resnet-")  # removed with the generator
            config = combined_view(Path(generator_checkpoint), Path(adapter_checkpoint), Path(self._view.name))
            s.checkpoint = self._view.name
            adapter_cfg = read_config(adapter_checkpoint)
            if (s.model_path is None and not set(config["backbone_components"]) >= set(SUBFOLDERS)
                    and set(adapter_cfg["backbone_components"]) >= set(SUBFOLDERS)):
                s.model_path = str(Path(adapter_checkpoint) / BACKBONE_DIR)  # encoders from the stage-1 export
        config = read_config(s.checkpoint)
        if config["preset"] != s.preset:
            raise ModelConfigError(f"{self.sources} are for preset {config['preset']!r}, not {s.preset!r}; "
                                   "pass preset=... to match")
        require_adapter(config["adapter"]["kind"], str(adapter_checkpoint or s.checkpoint), self.name)

    def generate(self, request: GenerationRequest) -> GeneratedVideo:
        video = super().generate(request)
        video.extra.update(self.sources)
        return video
