""""Wan+ResNet" (the paper's multi-step baseline): the slow generator with the stage-1 SlowAdapter, sampled with
50 UniPC steps and classifier-free guidance 5.0 (NFE = 2 x 50 = 100).

It is `flashmotion.generator.WanAdapter` under the paper's name, with two extra guarantees that make a row of
the table mean what it says: a checkpoint is required (a zero-initialised adapter would silently score the
unconditioned backbone), and its adapter must be the ResNet one.

    flashbench generate --generator "wan-resnet checkpoint=RUNS/stage1_adapter/export" ...
    # 5B: add config=configs/wan2.2-ti2v-5b/wan_adapter.yaml model_path=Wan2.2-TI2V-5B-Diffusers
"""

from __future__ import annotations

from typing import Any

from flashmotion.checkpoint import read_config
from flashmotion.errors import ModelConfigError
from flashmotion.generator import WanAdapter

ADAPTER_KIND = "resnet"


def require_adapter(kind: str | None, source: str, generator: str) -> None:
    """One-line error unless the adapter kind found in `source` is the ResNet one."""
    if kind != ADAPTER_KIND:
        raise ModelConfigError(
            f"{generator} needs a {ADAPTER_KIND} adapter, but {source} holds a {kind} adapter; pass the stage-1 "
            "SlowAdapter checkpoint (configs/<preset>/stage1_adapter.yaml with adapter: resnet)"
        )


class WanResNet(WanAdapter):
    """Wan + ResNet SlowAdapter, 50-step UniPC with CFG; see the module docstring."""

    name = "wan-resnet"
    defaults = {"sampler": "multistep", "steps": 50, "guidance": 5.0, "solver": "unipc", "adapter": ADAPTER_KIND}

    def __init__(self, **args: Any) -> None:
        super().__init__(**args)
        if self.settings.checkpoint is None:
            raise ModelConfigError(
                "wan-resnet needs checkpoint=DIR, the stage-1 SlowAdapter (flashmotion train --config "
                "configs/<preset>/stage1_adapter.yaml); use wan-adapter for an untrained adapter"
            )
        require_adapter(read_config(self.settings.checkpoint)["adapter"]["kind"], str(self.settings.checkpoint),
                        self.name)
