"""Generator registry (entry points, module:Class with typed args, close-match errors) and reference generators."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest
from harness_bench import COLORS, make_bench

from flashbench.generators.base import bind_benchmark, check_output
from flashbench.generators.reference import CopyPaste, GroundTruth, Static, fill_from_nearest, sparse_boxes
from flashbench.generators.registry import (
    GeneratorSpecError,
    format_spec,
    list_generators,
    load_generator,
    parse_args,
    parse_spec,
)
from flashbench.runner import build_request


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return make_bench(tmp_path_factory.mktemp("bench"))


@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    """A throwaway module `fake_gen_plugin` with a generator taking typed arguments."""
    (tmp_path / "fake_gen_plugin.py").write_text(textwrap.dedent("""
        from flashbench.generators.base import GeneratedVideo

        class Typed:
            name = "typed"

            def __init__(self, steps: int = 1, guidance: float = 1.0, fp16: bool = False, ckpt: str = ""):
                self.steps, self.guidance, self.fp16, self.ckpt = steps, guidance, fp16, ckpt

            def generate(self, request):
                return GeneratedVideo(frames=None)

        class NotAGenerator:
            pass
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "fake_gen_plugin"
    sys.modules.pop("fake_gen_plugin", None)


def test_entry_point_names_are_registered_and_load():
    assert {"ground-truth", "static", "copy-paste"} <= set(list_generators())
    assert isinstance(load_generator("ground-truth"), GroundTruth)
    assert isinstance(load_generator("static"), Static)
    gen = load_generator("copy-paste sparse_every=4")
    assert isinstance(gen, CopyPaste) and gen.sparse_every == 4


def test_module_class_with_typed_args(plugin_module):
    gen = load_generator(f"{plugin_module}:Typed steps=4 guidance=7.5 fp16=true ckpt=weights/a.pt", guidance=2.0)
    assert (gen.steps, gen.guidance, gen.fp16, gen.ckpt) == (4, 2.0, True, "weights/a.pt")
    assert type(gen.steps) is int and type(gen.fp16) is bool


def test_bad_specs_give_one_line_errors(plugin_module):
    with pytest.raises(GeneratorSpecError, match="did you mean static") as info:
        load_generator("statc")
    registered = list_generators()
    assert {"copy-paste", "ground-truth", "static"} <= set(registered)
    assert "\n" not in str(info.value) and f"registered: {', '.join(sorted(registered))}" in str(info.value)
    with pytest.raises(GeneratorSpecError, match="did you mean copy-paste"):
        load_generator("copy_paste")
    with pytest.raises(GeneratorSpecError, match="does not accept"):
        load_generator(f"{plugin_module}:Typed colour=red")
    with pytest.raises(GeneratorSpecError, match="lacks"):
        load_generator(f"{plugin_module}:NotAGenerator")
    with pytest.raises(GeneratorSpecError, match="cannot import"):
        load_generator("no_such_module_xyz:Gen")
    with pytest.raises(GeneratorSpecError, match="not key=value"):
        parse_args(["steps"])


def test_spec_round_trip_keeps_types():
    args = {"steps": 4, "tag": "4", "path": "a b.pt", "scale": 1.5, "flag": False, "none": None, "ids": [1, 2],
            "tiny": 2e-4, "exp": "1e5"}
    assert parse_spec(format_spec("pkg.mod:Gen", args)) == ("pkg.mod:Gen", args)
    assert parse_args(["eps=2e-4", "big=3E5"]) == {"eps": 2e-4, "big": 3e5}  # YAML 1.2 floats, not strings


def test_static_repeats_first_frame_exactly(bench):
    sample = bench.samples[1]
    request = build_request(bench, sample, "mask", 0)
    frames = check_output(Static().generate(request), request)
    assert frames.shape == (sample.num_frames, sample.height, sample.width, 3)
    assert all(np.array_equal(f, bench.first_frame(sample)) for f in frames)


def test_ground_truth_returns_the_real_video(bench):
    gen = load_generator("ground-truth")
    sample = bench.samples[2]
    request = build_request(bench, sample, "box", 0)
    with pytest.raises(Exception, match="bind_benchmark"):
        gen.generate(request)
    bind_benchmark(gen, bench)
    out = gen.generate(request)
    assert np.array_equal(check_output(out, request), bench.read_video(sample))
    assert out.nfe == 0 and out.denoise_seconds >= 0


@pytest.mark.parametrize("condition", ["mask", "box", "sparse_box"])
def test_copy_paste_puts_objects_in_target_boxes(bench, condition):
    sample = bench.samples[1]  # two squares moving right
    request = build_request(bench, sample, condition, 0)
    video = CopyPaste(sparse_every=2).generate(request)
    frames = check_output(video, request)
    assert video.nfe == 0
    boxes = request.boxes if condition != "sparse_box" else sparse_boxes(request.boxes, 2)
    for t in range(sample.num_frames):
        for k in range(sample.object_count):
            colour = np.abs(frames[t].astype(int) - COLORS[k]).sum(-1) < 30
            x0, y0, x1, y1 = np.round(boxes[t, k]).astype(int)
            inside = np.zeros_like(colour)
            inside[y0:y1, x0:x1] = True
            assert colour[inside].mean() > 0.95, (t, k)  # the box is filled with the object
            assert not colour[~inside].any(), (t, k)  # and the object is nowhere else (old place inpainted)


def test_sparse_boxes_interpolate_between_keyframes():
    boxes = np.full((5, 2, 4), np.nan, dtype=np.float32)
    boxes[:, 0] = np.array([[0, 0, 4, 4], [9, 9, 9, 9], [4, 0, 8, 4], [9, 9, 9, 9], [8, 0, 12, 4]])
    boxes[4, 1] = [0, 0, 2, 2]  # object 1 appears only at keyframe 4
    out = sparse_boxes(boxes, 2)
    np.testing.assert_allclose(out[1, 0], [2, 0, 6, 4])
    np.testing.assert_allclose(out[3, 0], [6, 0, 10, 4])
    assert np.isnan(out[:4, 1]).all() and np.array_equal(out[4, 1], [0, 0, 2, 2])


def test_fill_from_nearest_uses_background_pixels():
    image = np.zeros((5, 5, 3), dtype=np.uint8)
    image[:, :2] = 10
    image[:, 2:] = 200
    hole = np.zeros((5, 5), dtype=bool)
    hole[1:4, 3:] = True
    image[hole] = 255
    filled = fill_from_nearest(image, hole)
    assert (filled[hole] == 200).all() and np.array_equal(filled[~hole], image[~hole])
