"""Every generator registered in pyproject.toml resolves to a generator class named as registered, and the
README lists it. Reads pyproject directly: entry points added in a checkout are invisible until reinstall."""

from __future__ import annotations

from pathlib import Path

import pytest

from flashbench.generators.registry import generator_factory

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
REPO = Path(__file__).resolve().parents[1]
ENTRY_POINTS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]["flashbench.generators"]
PAPER_BASELINES = {"wan-resnet", "dmd-resnet", "lcm-resnet", "magicmotion"}


def test_the_paper_baselines_and_the_videos_reader_are_registered():
    assert PAPER_BASELINES | {"videos"} <= set(ENTRY_POINTS)
    assert ENTRY_POINTS["lcm-resnet"] == "baselines.lcm:LCM"


@pytest.mark.parametrize(("name", "target"), sorted(ENTRY_POINTS.items()))
def test_registered_generator_resolves_and_is_documented(name, target):
    module = target.partition(":")[0]
    if not (REPO / (module.replace(".", "/") + ".py")).is_file():
        pytest.skip(f"{module} is not in this checkout (written on another branch)")
    factory = generator_factory(target)
    assert callable(getattr(factory, "generate", None))
    assert factory.name == name  # run.json and the leaderboard show the generator's own name
    assert f"`{name}`" in (REPO / "README.md").read_text(), f"README lists no `{name}` generator"
