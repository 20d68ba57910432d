"""index.html rendered in headless Chromium: the DOM holds the leaderboard, the page is not blank, strings escaped."""

from __future__ import annotations

import io
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image
from report_runs import build_bench, ceiling, make_run, metrics

from flashbench.report import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)"
)
NASTY = 'Evil <b>bold</b> & "quoted"'
GROUPS = ("1", "2", "3", "4", "5", "6+")


def _groups(scale: float) -> dict:
    return {
        g: metrics(20 * scale + 3 * i, 200 * scale + 20 * i, 80 / scale - 4 * i, 84 / scale - 4 * i, 1.0, n=3)
        for i, g in enumerate(GROUPS)
    }


def _chromium(tmp_path, url: str, *args: str) -> subprocess.CompletedProcess:
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1280,2000",
        *args,
        url,
    ]
    return subprocess.run(cmd, capture_output=True, timeout=120, check=True)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    root = tmp_path_factory.mktemp("html")
    bench = build_bench(root / "bench", counts=(1, 2))
    paths = [
        make_run(
            root / "a", "FlashMotion", bench, metrics(15.81, 120.3, 71.2, 74.9, 0.42, objmc=3.1), _groups(1.0),
            steps=4, ceiling=ceiling(88.0, 90.0, 1.5, groups=GROUPS),
        ),
        make_run(
            root / "b",
            NASTY,
            bench,
            metrics(20.1, None, 65.0, 76.3, 35.2, reasons={"fvd": "no I3D <weights>"}),
            _groups(1.15),
            steps=50,
            seed=1,
        ),
    ]
    index = write_report(paths, root / "report", base=paths[0], gallery_per_group=1, n_boot=500)
    return root, index


def test_rendered_dom_has_leaderboard_rows_and_escaped_strings(page):
    root, index = page
    dom = _chromium(root, index.as_uri(), "--dump-dom").stdout.decode()
    table = re.search(r'<table class="table" id="leaderboard">(.*?)</table>', dom, re.S)
    assert table, "leaderboard table missing from the rendered DOM"
    body = re.search(r"<tbody>(.*?)</tbody>", table.group(1), re.S).group(1)
    rows = re.findall(r"<tr>(.*?)</tr>", body, re.S)
    assert len(rows) == 3  # the two runs, then the tracker ceiling
    assert ">FlashMotion<" in rows[0] and "<strong>15.81</strong>" in rows[0]
    assert ">Tracker ceiling (ground truth, mobilesam)<" in rows[2] and ">88.00<" in rows[2] and "strong" not in rows[2]
    assert ">ObjMC " in table.group(1)
    assert 'Evil &lt;b&gt;bold&lt;/b&gt; &amp; "quoted"' in rows[1]
    assert "<b>" not in dom  # the run name stayed text, it did not become markup
    assert "no I3D &lt;weights&gt;" in dom  # missing-metric reason, escaped
    assert 'id="compare"' in dom and 'id="groups-mask_iou"' in dom
    images = re.findall(r'<img src="([^"]+)"', dom)
    assert "plots/by_group.png" in images and "plots/speed_quality.png" in images
    assert any(src.startswith("gallery/") for src in images)
    assert all((index.parent / src).is_file() for src in images)


def test_screenshot_is_a_non_blank_png(page):
    root, index = page
    shot = root / "page.png"
    _chromium(root, index.as_uri(), f"--screenshot={shot}")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    image = np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=np.float64)
    assert image.shape == (2000, 1280)
    assert image.std() > 20  # text, tables and plots, not an empty page
    assert image[:60].mean() < 100  # the dark header bar rendered (CSS applied)
