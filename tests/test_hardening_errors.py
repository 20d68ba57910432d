"""Bad input and a bad environment give `error: <one line>` and exit code 2, never a traceback: disk full,
over-long names, YAML python tags, pickled weights, broken generator modules, bad devices and values."""

from __future__ import annotations

import errno
import sys
from pathlib import Path

import pytest
import torch
from harness_bench import make_bench

from flashbench.cli import main
from flashmotion.cli import main as flashmotion_main


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return make_bench(tmp_path_factory.mktemp("errors") / "bench", counts=(1,), frames=5)


def _one_line(capsys, code: int, match: str) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error:") and match in err, (code, err)
    return err


def _one_line_exit(capsys, call, match: str) -> None:
    """For argparse-level errors (SystemExit 2)."""
    with pytest.raises(SystemExit) as e:
        call()
    _one_line(capsys, e.value.code, match)


def test_disk_full_in_evaluate_is_one_line(bench, tmp_path, monkeypatch, capsys):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "run/samples.jsonl"))

    monkeypatch.setattr("flashbench.evaluation.evaluate", full)
    code = main(["evaluate", "--bench", str(bench.root), "--run", str(tmp_path / "run")])
    err = _one_line(capsys, code, "No space left on device")
    assert "samples.jsonl" in err and "[ENOSPC]" in err and "free disk space" in err


def test_build_out_name_too_long_for_the_staging_folder(tmp_path, capsys):
    out = tmp_path / ("b" * 250)
    _one_line(capsys, main(["build", "synthetic", "--out", str(out), "--videos-per-group", "1", "--frames", "5",
                            "--size", "16x16", "--groups", "1"]), "use a name of at most")
    assert not out.exists() and not [p for p in tmp_path.iterdir() if "building" in p.name]


def test_yaml_python_tags_are_refused_not_constructed(bench, tmp_path, capsys):
    marker = tmp_path / "ran"
    tag = f'!!python/object/apply:os.system ["touch {marker}"]'
    config = tmp_path / "s1.yaml"
    config.write_text(f"stage: stage1_adapter\nsteps: 1\ndata: {{bench: {bench.root}}}\n")
    _one_line(capsys, flashmotion_main(["train", "--config", str(config), f"steps={tag}"]), "not a plain YAML value")
    config.write_text(f"stage: stage1_adapter\nsteps: {tag}\n")
    _one_line(capsys, flashmotion_main(["train", "--config", str(config)]), "is not plain YAML")
    gen_config = tmp_path / "gen.yaml"
    gen_config.write_text(f"steps: {tag}\n")
    code = main(["generate", "--bench", str(bench.root), "--generator", f"flashmotion config={gen_config}",
                 "--out", str(tmp_path / "run")])
    _one_line(capsys, code, "is not plain YAML")
    assert not marker.exists()


@pytest.mark.parametrize("source, match", [
    ("def broken(:\n", "SyntaxError"),
    ("raise SystemExit(4)\n", "SystemExit: 4"),
    ("class Gen:\n    name = 'g'\n    def __init__(self):\n        raise RuntimeError('no GPU memory')\n"
     "    def generate(self, request):\n        pass\n", "could not be built (RuntimeError: no GPU memory)"),
])
def test_broken_generator_modules_are_one_line(bench, tmp_path, monkeypatch, capsys, source, match):
    module = f"broken_gen_{abs(hash(source)) % 10**8}"
    (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    code = main(["generate", "--bench", str(bench.root), "--generator", f"{module}:Gen", "--out", str(tmp_path / "r")])
    _one_line(capsys, code, match)
    sys.modules.pop(module, None)


def test_bad_devices_are_refused_up_front(bench, tmp_path, capsys):
    argv = ["evaluate", "--bench", str(bench.root), "--run", str(tmp_path / "run"), "--device"]
    _one_line(capsys, main([*argv, "nonsense"]), "--device 'nonsense' is not a device")
    cuda = "no usable CUDA GPU" if not torch.cuda.is_available() else "there are only"
    _one_line(capsys, main([*argv, "cuda" if not torch.cuda.is_available() else "cuda:999"]), cuda)
    code = main(["generate", "--bench", str(bench.root), "--generator", "static", "--out", str(tmp_path / "g"),
                 "--device", "nonsense"])
    _one_line(capsys, code, "is not a device")
    assert not (tmp_path / "g").exists()


def test_bad_flashmotion_values_are_one_line(bench, tmp_path, capsys):
    code = main(["generate", "--bench", str(bench.root), "--generator", "flashmotion steps=abc",
                 "--out", str(tmp_path / "r")])
    _one_line(capsys, code, "steps='abc' is not a whole number")
    code = main(["generate", "--bench", str(bench.root), "--generator",
                 f"flashmotion checkpoint={tmp_path / 'missing'}", "--out", str(tmp_path / "r2")])
    _one_line(capsys, code, "is not a FlashMotion checkpoint")  # up front, not once per sample
    assert not (tmp_path / "r2" / "generation.jsonl").exists()
    config = tmp_path / "s1.yaml"
    config.write_text("stage: stage1_adapter\nrandom_teacher: true\nsteps: 1\nmethod: {adapter_options: {channels: 8}}\n")
    code = flashmotion_main(["train", "--config", str(config), f"out={tmp_path / 'train'}", "data.size=[47,48]"])
    _one_line(capsys, code, "does not fit the VAE")


def test_validate_a_missing_folder_is_one_line(tmp_path, capsys):
    _one_line(capsys, main(["validate", str(tmp_path / "nonexistent")]), "is not a folder")


def test_sample_out_in_a_missing_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "no" / "such" / "x.mp4"
    _one_line_exit(capsys, lambda: flashmotion_main(["sample", "--bench", "b", "--sample", "s", "--out", str(out)]),
                   "does not exist; create it first")
    assert not (tmp_path / "no").exists()


def test_pickled_weights_in_a_card_less_checkpoint_are_refused(tmp_path):
    from baseline_checkpoints import tiny_checkpoints

    from flashbench.errors import WeightsError
    from flashmotion.checkpoint import allow_uncarded
    from flashmotion.models.backbone import load_component

    folder = tiny_checkpoints(tmp_path)["stage1"]
    (folder / "card.json").unlink()
    allow_uncarded(folder)
    vae = folder / "backbone" / "vae"
    weights = next(vae.glob("*.safetensors"))
    from safetensors.torch import load_file

    torch.save(load_file(str(weights)), vae / "diffusion_pytorch_model.bin")  # a pickle instead
    weights.unlink()
    with pytest.raises(WeightsError, match="vae cannot be loaded .*safetensors") as e:
        load_component(folder / "backbone", "vae")
    assert "\n" not in str(e.value)


def test_a_video_that_cannot_be_written_is_recorded_with_its_path(bench, tmp_path, monkeypatch):
    from flashbench.run_files import GENERATION, read_jsonl
    from flashbench.runner import generate

    def denied(path, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")  # as some writers raise it: no file name

    monkeypatch.setattr("flashbench.runner.write_video", denied)
    generate(bench, tmp_path / "run", "static", progress=False)
    (record,) = read_jsonl(tmp_path / "run" / GENERATION)
    assert record["status"] == "error" and str(tmp_path / "run/videos/sq-0.mp4") in record["error"]
    assert record["error"].startswith("PermissionError:")


def test_fid_and_fvd_refuse_a_bad_device(tmp_path, capsys):
    folder = Path(tmp_path)
    for metric in ("fid", "fvd"):
        _one_line(capsys, main([metric, str(folder), str(folder), "--device", "nonsense"]), "is not a device")


def test_short_videos_warn_at_build_and_fail_evaluate_before_tracking(tmp_path, capsys):
    from flashbench.errors import VideoError
    from flashbench.evaluation import EvalSettings, evaluate
    from flashbench.runner import generate

    out = tmp_path / "b9"
    assert main(["build", "synthetic", "--out", str(out), "--videos-per-group", "1", "--frames", "9",
                 "--size", "32x32", "--groups", "1"]) == 0
    err = capsys.readouterr().err
    assert "warning: the shortest video has 9 frames, fewer than evaluate's default 16-frame FVD clips" in err
    assert "--clip-len 9" in err
    from flashbench.data.benchmark import Benchmark

    bench = Benchmark.load(out)
    generate(bench, tmp_path / "run", "static", progress=False)

    class NoTracking:
        def describe(self):
            raise AssertionError("tracking started before the clip-length check")

    with pytest.raises(VideoError, match=r"has 9 frames, fewer than the 16 of one FVD clip \(clips\); pass --clip-len 9"):
        evaluate(bench, tmp_path / "run", EvalSettings(), segmenter=NoTracking(), progress=False)
    assert not (tmp_path / "run" / "samples.jsonl").exists()
