"""Data model round trip: BenchmarkWriter -> Benchmark.load, objects.json, palette PNGs, content hash, groups."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from flashbench.data.benchmark import Benchmark, BenchmarkWriter, content_hash, davis_palette, label_map
from flashbench.data.groups import group_counts, group_for_count, parse_groups
from flashbench.data.objects import boxes_from_masks, decode_rle, encode_rle, read_objects
from flashbench.errors import BenchmarkError


def disk_masks(t: int, n: int, h: int = 64, w: int = 64, seed: int = 0) -> np.ndarray:
    """(T, N, H, W) moving disks that overlap; object n-1 leaves the frame in the last frame."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    masks = np.zeros((t, n, h, w), bool)
    for k in range(n):
        cx, cy, r = rng.uniform(15, 49), rng.uniform(15, 49), rng.uniform(6, 12)
        for i in range(t):
            masks[i, k] = (xx - cx - 2 * i) ** 2 + (yy - cy) ** 2 <= r * r
    masks[-1, n - 1] = False
    return masks


def frames_for(masks: np.ndarray) -> np.ndarray:
    t, n, h, w = masks.shape
    frames = np.full((t, h, w, 3), 90, np.uint8)
    for k in range(n):
        frames[masks[:, k]] = [(60 * k + 200) % 256, 40 * k % 256, 255 - 30 * k]
    return frames


def write_bench(root, samples=((3, "a"),), t=9, groups=("1", "2", "3"), prompt="p", seed=0):
    writer = BenchmarkWriter(root, name="test", groups=groups, build={"kind": "unit"})
    for n, sid in samples:
        masks = disk_masks(t, n, seed=seed)
        writer.add(sid, frames_for(masks), masks, 24.0, prompt, "unit", [f"disk{k}" for k in range(n)])
    return writer.close()


def test_round_trip(tmp_path):
    masks = disk_masks(9, 3)
    frames = frames_for(masks)
    bench = write_bench(tmp_path / "b")
    loaded = Benchmark.load(tmp_path / "b")
    assert len(loaded) == 1 and loaded.meta.content_hash == bench.meta.content_hash
    s = loaded.get("a")
    assert (s.num_frames, s.height, s.width, s.object_count, s.group) == (9, 64, 64, 3, "3")
    assert [o.category for o in s.objects] == ["disk0", "disk1", "disk2"]
    assert (s.objects[2].first_visible, s.objects[2].last_visible) == (0, 7)
    tracks = loaded.tracks(s)
    assert np.array_equal(tracks.masks, masks) and tracks.object_ids == (1, 2, 3)
    assert np.array_equal(loaded.first_frame(s), frames[0])  # PNG is lossless
    video = loaded.read_video(s)
    assert np.abs(video.astype(int) - frames.astype(int)).mean() < 4.0
    assert loaded.meta.group_sizes == {"1": 0, "2": 0, "3": 1} and loaded.meta.build == {"kind": "unit"}


def test_boxes_match_pycocotools_tobbox():
    masks = disk_masks(5, 3)
    ours = boxes_from_masks(masks)
    for i in range(5):
        for k in range(3):
            if not masks[i, k].any():
                assert np.isnan(ours[i, k]).all()
                continue
            x, y, w, h = mask_utils.toBbox(mask_utils.encode(np.asfortranarray(masks[i, k].astype(np.uint8))))
            assert ours[i, k].tolist() == [x, y, x + w, y + h]


def test_rle_round_trip_and_area_matches_pycocotools():
    m = disk_masks(1, 1)[0, 0]
    rle = encode_rle(m)
    assert isinstance(rle["counts"], str) and np.array_equal(decode_rle(rle), m)
    assert mask_utils.area({"size": rle["size"], "counts": rle["counts"].encode()}) == m.sum()


def test_objects_json_boxes_and_overlaps(tmp_path):
    write_bench(tmp_path / "b")
    record = json.loads((tmp_path / "b/samples/a/objects.json").read_text())
    masks = disk_masks(9, 3)
    assert record["objects"][2]["boxes"][-1] is None  # absent in the last frame
    for k, obj in enumerate(record["objects"]):
        for i, rle in enumerate(obj["rle"]):
            ref = mask_utils.toBbox({"size": rle["size"], "counts": rle["counts"].encode()})
            if masks[i, k].any():
                x, y, w, h = ref
                assert obj["boxes"][i] == [x, y, x + w, y + h]
    tracks = read_objects(tmp_path / "b/samples/a/objects.json")
    assert (tracks.masks.sum(axis=1) > 1).any()  # overlaps survive in objects.json


def test_palette_pngs_are_davis_style(tmp_path):
    write_bench(tmp_path / "b")
    masks = disk_masks(9, 3)
    for i in range(9):
        png = Image.open(tmp_path / f"b/samples/a/masks/{i:05d}.png")
        assert png.mode == "P" and png.getpalette()[:12] == davis_palette()[:12]
        labels = np.asarray(png)
        expected = np.zeros((64, 64), np.uint8)
        for k in range(3):  # later (front) objects win where they overlap
            expected[masks[i, k]] = k + 1
        assert np.array_equal(labels, expected)
        assert np.array_equal(labels, label_map(masks[i], (1, 2, 3)))


def test_davis_palette_published_values():
    p = np.array(davis_palette()).reshape(256, 3)
    # PASCAL VOC colour map: background, then the first object colours.
    assert p[:5].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128]]
    assert p[255].tolist() == [224, 224, 192]  # the VOC "void" colour


def test_content_hash_stable_and_sensitive(tmp_path):
    a = write_bench(tmp_path / "a")
    b = write_bench(tmp_path / "b")
    assert a.meta.content_hash == b.meta.content_hash == a.compute_content_hash()
    c = write_bench(tmp_path / "c", prompt="other prompt")
    d = write_bench(tmp_path / "d", seed=1)
    assert len({a.meta.content_hash, c.meta.content_hash, d.meta.content_hash}) == 3
    (tmp_path / "a/samples/a/masks/00003.png").write_bytes((tmp_path / "a/samples/a/masks/00002.png").read_bytes())
    assert a.compute_content_hash() != a.meta.content_hash


def test_grouping(tmp_path):
    assert parse_groups("1,2,3,4,5,6+") == ("1", "2", "3", "4", "5", "6+")
    assert [group_for_count(n, parse_groups("1,2,6+")) for n in (1, 2, 3, 6, 9)] == ["1", "2", None, "6+", "6+"]
    assert group_counts(("1", "4+")) == {"1": 1, "4+": 4}
    for bad in ("", "2,1", "6+,7", "0", "x"):
        with pytest.raises(ValueError):
            parse_groups(bad)
    bench = write_bench(tmp_path / "b", samples=((1, "one"), (2, "two"), (2, "two-b"), (3, "three")), groups=("1", "2"))
    assert [s.id for s in bench.samples] == ["one", "two", "two-b"]  # 3 objects fit no group: not written
    assert not (tmp_path / "b/samples/three").exists()
    assert {g: [s.id for s in v] for g, v in Benchmark.load(tmp_path / "b").by_group().items()} == {
        "1": ["one"],
        "2": ["two", "two-b"],
    }


def test_writer_errors(tmp_path):
    write_bench(tmp_path / "b")
    with pytest.raises(BenchmarkError, match="overwrite"):
        BenchmarkWriter(tmp_path / "b", name="x")
    writer = BenchmarkWriter(tmp_path / "c", name="x")
    masks = disk_masks(3, 2)
    masks[:, 1] = False
    with pytest.raises(BenchmarkError, match="never visible"):
        writer.add("s", frames_for(masks), masks, 24.0, "p", "unit")
    with pytest.raises(BenchmarkError, match="do not match"):
        writer.add("s", frames_for(masks)[:2], masks, 24.0, "p", "unit")
    with pytest.raises(BenchmarkError, match="not a benchmark"):
        Benchmark.load(tmp_path / "nothing")


def test_manifest_mismatch_detected_on_read(tmp_path):
    write_bench(tmp_path / "b")
    manifest = tmp_path / "b/manifest.jsonl"
    record = json.loads(manifest.read_text())
    record["num_frames"] = 10
    manifest.write_text(json.dumps(record) + "\n")
    bench = Benchmark.load(tmp_path / "b")
    with pytest.raises(BenchmarkError, match="manifest says"):
        bench.read_video(bench.samples[0])
    with pytest.raises(BenchmarkError, match="objects.json masks"):
        bench.tracks(bench.samples[0])


def test_content_hash_v1_benchmarks_still_verify(tmp_path):
    """meta.json written before hash version 2 has no hash_version: the byte-level hash of version 1 applies."""
    bench = write_bench(tmp_path / "b")
    meta = json.loads((tmp_path / "b/meta.json").read_text())
    meta.pop("hash_version")
    meta["content_hash"] = content_hash(tmp_path / "b", bench.samples, version=1)
    (tmp_path / "b/meta.json").write_text(json.dumps(meta))
    old = Benchmark.load(tmp_path / "b")
    assert old.meta.hash_version == 1 and old.compute_content_hash() == meta["content_hash"] != bench.meta.content_hash


@pytest.mark.parametrize("bad_id", ["../x", "/abs", "a/b", "..", ".hidden", "", "a b", "x..y"])
def test_writer_refuses_unsafe_sample_ids(tmp_path, bad_id):
    masks = disk_masks(3, 1)
    writer = BenchmarkWriter(tmp_path / "b", name="t", groups=("1",))
    with pytest.raises(BenchmarkError, match="bad sample id"):
        writer.add(bad_id, frames_for(masks), masks, 24.0, "p", "unit")
    assert not (tmp_path / "x").exists()


def _edit_manifest(root, **changes):
    record = json.loads((root / "manifest.jsonl").read_text().splitlines()[0])
    for key, value in changes.items():
        if key == "paths":
            record["paths"].update(value)
        else:
            record[key] = value
    (root / "manifest.jsonl").write_text(json.dumps(record) + "\n")


@pytest.mark.parametrize("change, message", [
    ({"id": "../../etc"}, "bad sample id"),
    ({"paths": {"video": "../../outside.mp4"}}, "leaves"),
    ({"paths": {"objects": "/etc/passwd"}}, "leaves"),
])
def test_load_refuses_path_escapes(tmp_path, change, message):
    write_bench(tmp_path / "b")
    _edit_manifest(tmp_path / "b", **change)
    with pytest.raises(BenchmarkError, match=message) as e:
        Benchmark.load(tmp_path / "b")
    assert "manifest.jsonl:1" in str(e.value)


def test_load_refuses_symlink_out_of_the_folder(tmp_path):
    write_bench(tmp_path / "b")
    (tmp_path / "secret.json").write_text("{}")
    (tmp_path / "b/samples/a/link.json").symlink_to(tmp_path / "secret.json")
    _edit_manifest(tmp_path / "b", paths={"objects": "samples/a/link.json"})
    with pytest.raises(BenchmarkError, match="leaves"):
        Benchmark.load(tmp_path / "b")


def test_manifest_error_names_the_line(tmp_path):
    write_bench(tmp_path / "b", samples=((1, "a"), (2, "b")))
    lines = (tmp_path / "b/manifest.jsonl").read_text().splitlines()
    (tmp_path / "b/manifest.jsonl").write_text(lines[0] + "\n" + lines[1][:-5] + "\n")
    with pytest.raises(BenchmarkError, match=r"manifest.jsonl:2 is not a valid sample record"):
        Benchmark.load(tmp_path / "b")
