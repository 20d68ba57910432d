"""`flashbench export` writes only into a new, empty or earlier-export folder outside the benchmark, and prints
commands with absolute, shell-quoted paths."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from harness_bench import make_bench

from flashbench.cli import main
from flashbench.data.benchmark import Benchmark
from flashbench.data.verify import verify_benchmark
from flashbench.export import ExportError, export
from flashbench.generators.registry import parse_spec


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return make_bench(tmp_path_factory.mktemp("export") / "bench", counts=(1, 2), frames=6, size=32)


def _one_line_error(capsys, argv: list[str], match: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:") and match in err, err


def test_export_refuses_a_folder_holding_other_files(bench, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "index.csv").write_text("the user's own file\n")
    _one_line_error(capsys, ["export", "--bench", str(bench.root), "--format", "folder", "--out", str(out)],
                    "is not empty and holds no index.json")
    assert (out / "index.csv").read_text() == "the user's own file\n" and sorted(p.name for p in out.iterdir()) == ["index.csv"]
    (out / "index.json").write_text('{"samples": []}')  # someone else's index.json is no earlier export
    with pytest.raises(ExportError, match="was not written by flashbench export"):
        export(bench, out, "folder", progress=False)
    assert (out / "index.csv").read_text() == "the user's own file\n"


def test_export_refuses_the_benchmark_itself_and_a_file(bench, tmp_path, capsys):
    for inside in (bench.root, bench.root / "exported"):
        _one_line_error(capsys, ["export", "--bench", str(bench.root), "--format", "folder", "--out", str(inside)],
                        "is inside the benchmark")
    assert not (bench.root / "exported").exists() and not (bench.root / "index.json").exists()
    assert verify_benchmark(Benchmark.load(bench.root), "full") == "full"
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    with pytest.raises(SystemExit) as e:
        main(["export", "--bench", str(bench.root), "--format", "folder", "--out", str(afile)])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and "is a file" in err and afile.read_text() == "x"


def test_empty_folder_and_earlier_export_are_accepted(bench, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    export(bench, out, "folder", progress=False)
    again = export(bench, out, "folder", progress=False)
    assert again["complete"] and len(again["samples"]) == 2


def test_printed_commands_use_absolute_quoted_paths(bench, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out = Path("my export")  # relative, with a space
    assert main(["export", "--bench", str(bench.root), "--format", "magicmotion", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    magic = shlex.split(next(line for line in lines if line.startswith("run in your MagicMotion clone:")).split(":", 1)[1])
    csv_path = Path(magic[magic.index("--validation_args_csv") + 1])
    assert csv_path.is_absolute() and csv_path == (tmp_path / out / "magicmotion.csv") and csv_path.is_file()
    then = shlex.split(next(line for line in lines if line.startswith("then:")).split(":", 1)[1])
    assert then[:2] == ["flashbench", "generate"] and Path(then[then.index("--bench") + 1]) == bench.root.resolve()
    name, args = parse_spec(then[then.index("--generator") + 1])
    assert name == "videos" and Path(args["dir"]) == tmp_path / out / "videos"
