"""Procedural benchmark videos: textured shapes moving over a textured, slowly panning background.

Each object is a saturated, bright textured shape (disk, ellipse, square, diamond, triangle, hexagon, star,
cross) on a desaturated mid-grey background, so a promptable segmenter can track it. Trajectories are smooth
(constant drift plus two low-frequency sinusoids, reflected at the walls of a per-object box); objects rotate
and breathe slowly. A fixed z-order makes objects occlude each other; the masks are the VISIBLE parts.
Some objects leave the frame and come back ("leavers"), and at most one enters after frame 0 ("enterer").
Every object is visible in some frame; all but the enterer are visible in frame 0.

Everything is drawn from one `numpy.random.Generator`, so a seed fixes the pixels (and the mp4 bytes).
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from flashbench.data.benchmark import Benchmark, BenchmarkWriter
from flashbench.data.groups import DEFAULT_GROUPS, parse_groups
from flashbench.errors import BenchmarkError

GENERATOR_VERSION = "1"
SHAPES = ("disk", "ellipse", "square", "diamond", "triangle", "hexagon", "star", "cross")
PATTERNS = ("plain", "striped", "checkered", "dotted")
_EXTENT = 1.3  # every shape fits in the disk of radius _EXTENT (in units of the object radius)
_MAX_ATTEMPTS = 40


@dataclass
class SyntheticScene:
    """frames (T,H,W,3) uint8; masks (T,N,H,W) bool visible parts; prompt; one category (shape) per object."""

    frames: np.ndarray
    masks: np.ndarray
    prompt: str
    categories: list[str]


@dataclass
class _Object:
    shape: str
    pattern: str
    color: np.ndarray  # (3,) float in [0, 1]
    color_name: str
    radius: float
    center: np.ndarray  # (T, 2) x, y
    angle: np.ndarray  # (T,)
    scale: np.ndarray  # (T,)
    kind: str  # stay | leaver | enterer


def _shape_inside(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside test in the object's frame (u, v in units of its radius)."""
    if shape == "disk":
        return u * u + v * v <= 1.0
    if shape == "ellipse":
        return u * u + (v / 0.6) ** 2 <= 1.0
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.8
    if shape == "diamond":
        return np.abs(u) + np.abs(v) <= 1.1
    if shape == "cross":
        au, av = np.abs(u), np.abs(v)
        return (np.minimum(au, av) <= 0.38) & (np.maximum(au, av) <= 1.0)
    rho, phi = np.hypot(u, v), np.arctan2(v, u)
    if shape in ("triangle", "hexagon"):
        k = 3 if shape == "triangle" else 6
        circum = 1.2 if k == 3 else 1.0
        sector = 2 * np.pi / k
        return rho * np.cos(np.mod(phi, sector) - sector / 2) <= circum * np.cos(sector / 2)
    if shape == "star":
        sector = 2 * np.pi / 5
        psi = np.mod(phi, sector)
        psi = np.minimum(psi, sector - psi)
        outer, inner = 1.25, 0.55
        p1 = inner * np.array([np.cos(sector / 2), np.sin(sector / 2)])
        normal = np.array([p1[1], outer - p1[0]])
        return normal[0] * (rho * np.cos(psi) - outer) + normal[1] * rho * np.sin(psi) <= 0
    raise ValueError(f"unknown shape {shape!r}")


def _pattern(pattern: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Brightness factor in the object's frame: mild, so the object stays one coherent segment."""
    shade = 1.0 - 0.12 * np.clip(u * u + v * v, 0.0, 1.0)
    if pattern == "striped":
        return shade * np.where(np.sin(5.0 * u) > 0, 1.0, 0.86)
    if pattern == "checkered":
        return shade * np.where((np.floor(2.2 * u) + np.floor(2.2 * v)) % 2 == 0, 1.0, 0.86)
    if pattern == "dotted":
        return shade * np.where(np.hypot(np.mod(3 * u, 1) - 0.5, np.mod(3 * v, 1) - 0.5) < 0.25, 0.84, 1.0)
    return shade


def _color_name(hue: float) -> str:
    bounds = ((0.04, "red"), (0.11, "orange"), (0.19, "yellow"), (0.45, "green"), (0.53, "cyan"),
              (0.72, "blue"), (0.83, "purple"), (0.95, "pink"), (1.01, "red"))  # fmt: skip
    return next(name for bound, name in bounds if hue < bound)


def _reflect(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Fold x into [lo, hi] as a ball bouncing between two walls."""
    span = hi - lo
    y = np.mod(x - lo, 2 * span)
    return lo + np.where(y <= span, y, 2 * span - y)


def _background(rng: np.random.Generator, num_frames: int, size: tuple[int, int]) -> np.ndarray:
    """Textured, desaturated background panning slowly: (T, H, W, 3) uint8."""
    h, w = size
    pad = int(np.ceil(0.08 * max(h, w))) + 2
    bh, bw = h + 2 * pad, w + 2 * pad

    def noise(cells: int, amp: float, mode: str) -> torch.Tensor:
        grid = torch.from_numpy(rng.uniform(-amp, amp, size=(1, 3, cells, cells)).astype(np.float32))
        return F.interpolate(grid, size=(bh, bw), mode=mode, align_corners=False)[0]

    gray = rng.uniform(0.32, 0.52)
    tint = rng.uniform(-0.05, 0.05, size=(3, 1, 1)).astype(np.float32)
    low = noise(5, 0.10, "bicubic").mean(0, keepdim=True) + 0.3 * noise(5, 0.10, "bicubic")
    high = noise(max(4, max(bh, bw) // 6), 0.05, "bilinear").mean(0, keepdim=True)
    yy, xx = np.mgrid[0:bh, 0:bw].astype(np.float32)
    freq, theta = rng.uniform(0.25, 0.5), rng.uniform(0, np.pi)
    weave = 0.025 * np.sin(freq * (xx * np.cos(theta) + yy * np.sin(theta)))
    image = (gray + torch.from_numpy(tint) + low + high).numpy() + weave[None]
    image = np.round(np.clip(image, 0.0, 1.0).transpose(1, 2, 0) * 255).astype(np.uint8)
    direction = rng.uniform(0, 2 * np.pi)
    travel = rng.uniform(0.5, 1.0) * pad
    s = np.arange(num_frames) / max(num_frames - 1, 1)
    oy = np.round(pad + travel * s * np.sin(direction)).astype(int)
    ox = np.round(pad + travel * s * np.cos(direction)).astype(int)
    return np.stack([image[y : y + h, x : x + w] for y, x in zip(oy, ox, strict=True)])


def _draw_object(
    rng: np.random.Generator, index: int, n: int, num_frames: int, size: tuple[int, int], fps: float,
    shape: str, hue: float, kind: str,
) -> _Object:  # fmt: skip
    h, w = size
    side = min(h, w)
    radius = side * rng.uniform(0.075, 0.11 if n > 4 else 0.14)
    tau = np.arange(num_frames) / fps
    center = np.zeros((num_frames, 2))
    for axis, extent in enumerate((w, h)):
        if kind == "stay":
            lo, hi = 0.9 * radius, extent - 0.9 * radius
        else:  # leavers and enterers move in a box wider than the frame, so they exit and come back
            lo, hi = -1.6 * _EXTENT * radius, extent + 1.6 * _EXTENT * radius
        speed = extent * rng.uniform(0.06, 0.16 if kind == "stay" else 0.35) * rng.choice([-1, 1])
        start = rng.uniform(radius, extent - radius)
        if kind == "enterer" and axis == 0:
            start = lo + 0.2 * radius if speed > 0 else hi - 0.2 * radius
        raw = start + speed * tau
        for _ in range(2):
            amp = extent * rng.uniform(0.02, 0.08)
            period = rng.uniform(2.0, 6.0)
            phase = rng.uniform(0, 2 * np.pi)
            raw = raw + amp * (np.sin(2 * np.pi * tau / period + phase) - np.sin(phase))
        center[:, axis] = _reflect(raw, lo, hi)
    saturation, value = rng.uniform(0.65, 1.0), rng.uniform(0.84, 1.0)
    color = np.array(colorsys.hsv_to_rgb(hue, saturation, value), dtype=np.float32)
    angle = rng.uniform(0, 2 * np.pi) + rng.uniform(-0.6, 0.6) * tau
    scale = 1.0 + 0.08 * np.sin(2 * np.pi * tau / rng.uniform(2.5, 6.0) + rng.uniform(0, 2 * np.pi))
    pattern = PATTERNS[rng.integers(len(PATTERNS))]
    return _Object(shape, pattern, color, _color_name(hue), radius, center, angle, scale, kind)


def _crops(obj: _Object, size: tuple[int, int], with_rgb: bool = True):
    """Yield (t, ys, xs, inside, rgb) per frame where the object overlaps the frame (full, unoccluded);
    rgb is (h, w, 3) uint8, or None when `with_rgb` is False."""
    h, w = size
    for t in range(obj.center.shape[0]):
        cx, cy = obj.center[t]
        r = obj.radius * obj.scale[t]
        half = _EXTENT * r + 1
        x0, x1 = max(0, int(np.floor(cx - half))), min(w, int(np.ceil(cx + half)) + 1)
        y0, y1 = max(0, int(np.floor(cy - half))), min(h, int(np.ceil(cy + half)) + 1)
        if x1 <= x0 or y1 <= y0:
            continue
        dx = (np.arange(x0, x1, dtype=np.float32) + 0.5 - cx)[None, :]
        dy = (np.arange(y0, y1, dtype=np.float32) + 0.5 - cy)[:, None]
        c, s = np.cos(obj.angle[t]), np.sin(obj.angle[t])
        u, v = (dx * c + dy * s) / r, (-dx * s + dy * c) / r
        inside = _shape_inside(obj.shape, u, v)
        if not inside.any():
            continue
        rgb = None
        if with_rgb:
            rgb = np.round(np.clip(obj.color[None, None, :] * _pattern(obj.pattern, u, v)[..., None], 0, 1) * 255)
        yield t, slice(y0, y1), slice(x0, x1), inside, rgb


def _label_map(objects: list[_Object], num_frames: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Topmost object per pixel (0 = background, k + 1 = object k) and each object's full area per frame."""
    labels = np.zeros((num_frames, *size), dtype=np.uint8)
    full = np.zeros((num_frames, len(objects)), dtype=np.int64)
    for k, obj in enumerate(objects):
        for t, ys, xs, inside, _ in _crops(obj, size, with_rgb=False):
            labels[t, ys, xs][inside] = k + 1
            full[t, k] = int(inside.sum())
    return labels, full


def _problems(labels: np.ndarray, full: np.ndarray, objects: list[_Object]) -> list[int]:
    """Objects to redraw: never visible, missing from frame 0 (unless an enterer), or mostly hidden."""
    t, n = full.shape
    flat = (np.arange(t)[:, None] * (n + 1) + labels.reshape(t, -1)).ravel()
    visible = np.bincount(flat, minlength=t * (n + 1)).reshape(t, n + 1)[:, 1:]
    bad = []
    for k, obj in enumerate(objects):
        on_screen = full[:, k] > 0
        if not (visible[:, k] > 0).any():
            bad.append(k)
            continue
        ratio = visible[on_screen, k] / full[on_screen, k]
        if (
            (obj.kind != "enterer" and visible[0, k] < 0.6 * max(full[0, k], 1))
            or ratio.mean() < 0.6
        ):
            bad.append(k)
    return bad


def generate_scene(
    num_objects: int, num_frames: int, size: tuple[int, int], seed: int | np.random.SeedSequence, fps: float = 24.0
) -> SyntheticScene:
    """Render one procedural scene; the same arguments always give the same pixels.

    Args:
        num_objects: N >= 1 moving objects.
        num_frames: T >= 1 frames.
        size: (height, width).
        seed: integer seed (any `numpy.random.default_rng` seed).
        fps: frame rate the motion speeds are defined for (pixels per second).
    """
    if num_objects < 1 or num_frames < 1 or min(size) < 16:
        raise BenchmarkError(f"need >= 1 object, >= 1 frame and size >= 16x16, got {num_objects}, {num_frames}, {size}")
    size = (int(size[0]), int(size[1]))
    rng = np.random.default_rng(seed)
    background = _background(rng, num_frames, size)
    shapes = list(rng.permutation(SHAPES)) if num_objects <= len(SHAPES) else list(rng.choice(SHAPES, num_objects))
    hue0 = rng.uniform()
    hues = [(hue0 + k * 0.6180339887498949) % 1.0 for k in range(num_objects)]
    enterer = int(rng.integers(1, num_objects)) if num_objects > 1 and rng.uniform() < 0.3 else -1
    kinds = ["enterer" if k == enterer else ("leaver" if rng.uniform() < 0.25 else "stay") for k in range(num_objects)]

    def draw(k: int) -> _Object:
        return _draw_object(rng, k, num_objects, num_frames, size, fps, shapes[k], hues[k], kinds[k])

    objects = [draw(k) for k in range(num_objects)]
    for attempt in range(_MAX_ATTEMPTS):
        labels, full = _label_map(objects, num_frames, size)
        bad = _problems(labels, full, objects)
        if not bad:
            break
        if attempt >= _MAX_ATTEMPTS // 2:  # crowded scene: fall back to objects that stay in the frame
            for k in bad:
                kinds[k] = "stay"
        for k in bad:
            objects[k] = draw(k)
    else:
        labels, full = _label_map(objects, num_frames, size)
        visible = np.stack([(labels == k + 1).any(axis=(1, 2)) for k in range(num_objects)], axis=1)
        if not visible.any(axis=0).all():
            raise BenchmarkError(f"cannot fit {num_objects} visible objects in {size[0]}x{size[1]}; use a larger --size")

    frames = background
    for obj in objects:
        for t, ys, xs, inside, rgb in _crops(obj, size):
            region = frames[t, ys, xs]
            region[inside] = rgb[inside]
    masks = labels[:, None, :, :] == np.arange(1, num_objects + 1, dtype=np.uint8)[None, :, None, None]
    return SyntheticScene(frames=frames, masks=masks, prompt=_prompt(objects), categories=[o.shape for o in objects])


def _prompt(objects: list[_Object]) -> str:
    names = []
    for obj in objects:
        pattern = "" if obj.pattern == "plain" else f"{obj.pattern} "
        words = f"{obj.color_name} {pattern}{obj.shape}"
        names.append(f"{'an' if words[0] in 'aeiou' else 'a'} {words}")
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    verb = "moves" if len(names) == 1 else "move"
    return f"{listed[0].upper()}{listed[1:]} {verb} over a slowly panning grey textured background."


def _counts_for_group(label: str, rng: np.random.Generator) -> int:
    lo = int(label.rstrip("+"))
    return int(rng.integers(lo, lo + 3)) if label.endswith("+") else lo


def build_synthetic(
    out: Path,
    videos_per_group: int = 8,
    frames: int = 121,
    size: tuple[int, int] = (256, 256),
    groups: tuple[str, ...] | str = DEFAULT_GROUPS,
    seed: int = 0,
    overwrite: bool = False,
    fps: float = 24.0,
) -> Benchmark:
    """Write a synthetic benchmark with `videos_per_group` videos in every group.

    A group "k" holds scenes of k objects; an open group "k+" draws k..k+2 objects per scene. Scene j of group
    g is seeded by (seed, g, j), so a build is reproducible and its content hash depends only on the arguments.
    """
    groups = parse_groups(groups)
    if videos_per_group < 1 or frames < 1:
        raise BenchmarkError(f"need --videos-per-group >= 1 and --frames >= 1, got {videos_per_group} and {frames}")
    if size[0] % 2 or size[1] % 2:
        raise BenchmarkError(f"--size must be even (H.264), got {size[0]}x{size[1]}")
    build = {
        "builder": "synthetic",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "videos_per_group": videos_per_group,
        "frames": frames,
        "fps": fps,
        "size": list(size),
        "groups": list(groups),
    }
    writer = BenchmarkWriter(out, name="synthetic", groups=groups, build=build, overwrite=overwrite)
    with tqdm(total=videos_per_group * len(groups), desc="build synthetic", unit="video") as bar:
        for gi, label in enumerate(groups):
            for j in range(videos_per_group):
                scene_seed = np.random.SeedSequence([seed, gi, j])
                n = _counts_for_group(label, np.random.default_rng(scene_seed.spawn(1)[0]))
                scene = generate_scene(n, frames, size, seed=scene_seed, fps=fps)
                sample_id = f"syn-{label.replace('+', 'p')}-{j:03d}"
                writer.add(sample_id, scene.frames, scene.masks, fps, scene.prompt, f"synthetic:seed={seed}", scene.categories)
                bar.update()
    return writer.close()
