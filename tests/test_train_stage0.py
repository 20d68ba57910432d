"""Stage 0 (tiny): the VAE and the DiT losses go down on a fixed clip; exports load as flashbench generators."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from flashbench.data.synthetic import build_synthetic
from flashmotion.generator import WanAdapter
from flashmotion.models.build import build_encoders
from flashmotion.train.config import load_config
from flashmotion.train.loop import train


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return build_synthetic(tmp_path_factory.mktemp("bench"), videos_per_group=1, frames=9, size=(32, 32), groups=("1",)).root


def _run(bench, out, stage, steps=30, **extra):
    base = {
        "stage": stage, "out": str(out), "steps": steps, "batch_size": 1, "lr": 1e-3, "checkpoint_every": 100,
        "data": {"bench": str(bench), "random_crop": False},
    }
    train(load_config(base=base, overrides=[f"{k}={v}" for k, v in extra.items()]))
    with (out / "log.csv").open() as f:
        return list(csv.DictReader(f))


def _series(rows, key):
    return np.array([float(r[key]) for r in rows])


def test_vae_reconstruction_loss_goes_down_and_latent_stats_are_exported(bench, tmp_path):
    rows = _run(bench, tmp_path / "vae", "stage0_vae")
    total = _series(rows, "loss/total")
    assert total[-5:].mean() < 0.5 * total[:5].mean()
    assert {"loss/l1", "loss/l2", "loss/kl", "grad_norm/vae", "lr/vae"} <= set(rows[0])
    encoders = build_encoders("tiny", checkpoint=tmp_path / "vae" / "export")
    std = np.array(encoders.vae.config.latents_std)
    assert std.shape == (48,) and not np.allclose(std, 1.0)  # the tracked statistics replaced the presets'
    assert (tmp_path / "vae" / "loss.png").is_file() and (tmp_path / "vae" / "done.json").is_file()


def test_dit_flow_matching_loss_goes_down_and_exports_a_wan_adapter_generator(bench, tmp_path):
    rows = _run(bench, tmp_path / "dit", "stage0_dit", **{"method.prompt_dropout": 0.0, "ema": 0.9})
    loss = _series(rows, "loss/flow_matching")
    assert loss[-10:].mean() < 0.85 * loss[:5].mean()
    generator = WanAdapter(checkpoint=str(tmp_path / "dit" / "export"), steps=2)
    from tests.test_flashmotion_generator import _request

    video = generator.generate(_request())
    assert video.frames.shape == (9, 32, 32, 3) and video.nfe == 4


def test_prompt_dropout_replaces_text_rows_with_the_negative_embedding():
    from flashmotion.models.build import Conditioning
    from flashmotion.train.stage0_dit import drop_prompts

    text, negative = torch.ones(400, 3, 2), torch.zeros(400, 3, 2)
    cond = Conditioning(torch.zeros(400, 1, 1, 1, 1), text, negative)
    dropped = drop_prompts(cond, 0.1, torch.Generator().manual_seed(0)).text_embeds
    rows = dropped.flatten(1).sum(1)
    assert set(rows.tolist()) <= {0.0, 6.0}
    assert 20 <= int((rows == 0).sum()) <= 60  # ~10% of 400


def test_init_latent_scale_scales_only_the_posterior_mean_of_the_fresh_vae():
    from flashmotion.train.stage0_vae import VAEConfig, VAETraining

    def quant(scale):
        encoders = build_encoders("tiny", seed=0)
        return VAETraining(VAEConfig(init_latent_scale=scale), encoders, None).vae.quant_conv.weight.detach().clone()

    plain, scaled = quant(1.0), quant(10.0)
    z = plain.shape[0] // 2
    torch.testing.assert_close(scaled[:z], 10 * plain[:z])
    torch.testing.assert_close(scaled[z:], plain[z:])  # log-variance half unchanged
    with pytest.raises(Exception, match="init_latent_scale must be > 0"):
        VAEConfig(init_latent_scale=0)
