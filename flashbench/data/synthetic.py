"""Procedural benchmark videos: textured shapes moving over a textured, slowly panning background.

Each object is a saturated, bright textured shape (disk, ellipse, square, diamond, triangle, hexagon, star,
cross) of varied size and colour on a desaturated mid-grey background, so a promptable segmenter can track
it. A fixed z-order makes objects occlude each other; the masks are the VISIBLE parts, exactly the pixels
drawn for each object.

Choreography. Motion is defined over normalised clip time ``tau = t / (T - 1)`` in [0, 1], not in seconds,
so a 16-frame clip and a 121-frame clip show the same events, the short one sampled more coarsely (the
frame rate is only metadata). Every object follows a smooth path: a drift plus two sinusoids of 0.3-1
cycles per clip, reflected at the walls of a box that keeps it in the frame; it rotates and breathes slowly.
The rules below are what a tracker prompted at each object's first visible frame (and without
re-detection) needs; they are checked on the rendered masks and an object that breaks one is redrawn:

* Every object except at most one "enterer" is visible in frame 0. On its first visible frame (where a tracker
  is prompted) an object is unoccluded and at least 3 px away from every other object.
* An enterer (never object 0) pops in at a frame edge: fully outside up to the frame before its entry frame
  (snapped to the frame grid), its centre is on the edge on the entry frame, so about half of it is already
  visible (at least min(16 px, half its disk area)), and from there it drifts inwards as slowly as the objects
  that stay (a tracker prompted on the entry frame does not lose it on the next). Within 2 frames it shows
  >= 30% of the largest area it ever shows: there is no sliver phase.
* A "leaver" does the same backwards: it drifts out until its centre is on an edge (about half visible on its
  last visible frame) and is gone from the next frame on, for the rest of the clip. No object re-enters.
* Occlusion is partial and passing: while an object overlaps the frame, at least 35% of its in-frame area is
  visible, so it is never fully hidden and then reappears; and it is partly hidden in at most 40% of those
  frames (a tracker merges two shapes that stay glued together).

Redraws become objects that stay in the frame after half the attempts and shrink slightly with every
attempt; a scene that still breaks a rule raises `BenchmarkError` (use a larger size or fewer objects).
Everything is drawn from one `numpy.random.Generator`, so a seed fixes the pixels (and the mp4 bytes).
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from tqdm import tqdm

from flashbench.data.benchmark import Benchmark, BenchmarkWriter
from flashbench.data.groups import DEFAULT_GROUPS, parse_groups
from flashbench.errors import BenchmarkError

GENERATOR_VERSION = "2"
STYLES = ("textured", "flat")
SHAPES = ("disk", "ellipse", "square", "diamond", "triangle", "hexagon", "star", "cross")
PATTERNS = ("plain", "striped", "checkered", "dotted")
_EXTENT = 1.3  # every shape fits in the disk of radius _EXTENT (in units of the object radius)
_BREATH = 0.08  # objects scale by 1 +- _BREATH
_MIN_VISIBLE = 0.35  # occlusion bound: visible fraction of the in-frame area
_PROMPT_GAP = 3  # pixels between an object and any other on its first visible frame (the tracker's prompt)
_SUBSTANTIAL = 0.3  # fraction of its largest visible area an enterer shows within _SETTLE_FRAMES
_SETTLE_FRAMES = 2
_MAX_OCCLUDED = 0.4  # fraction of its in-frame frames an object may be partly hidden in (no glued pairs)
_MAX_ATTEMPTS = 100
_FLAT_SCALE = 1.3  # "flat" scenes: objects 1.3x larger (radius 10-18% of the frame's short side)
_START_TRIES = 30


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


def _background(rng: np.random.Generator, num_frames: int, size: tuple[int, int], style: str) -> np.ndarray:
    """Desaturated background panning slowly: (T, H, W, 3) uint8. "textured" adds fine noise and a weave on top
    of the smooth shading; "flat" keeps only the smooth shading (a first stage can reconstruct it exactly)."""
    h, w = size
    pad = int(np.ceil(0.08 * max(h, w))) + 2
    bh, bw = h + 2 * pad, w + 2 * pad

    def noise(cells: int, amp: float, mode: str) -> torch.Tensor:
        grid = torch.from_numpy(rng.uniform(-amp, amp, size=(1, 3, cells, cells)).astype(np.float32))
        return F.interpolate(grid, size=(bh, bw), mode=mode, align_corners=False)[0]

    gray = rng.uniform(0.32, 0.52)
    tint = rng.uniform(-0.05, 0.05, size=(3, 1, 1)).astype(np.float32)
    low = noise(5, 0.10, "bicubic").mean(0, keepdim=True) + 0.3 * noise(5, 0.10, "bicubic")
    image = (gray + torch.from_numpy(tint) + low).numpy()
    if style == "textured":
        high = noise(max(4, max(bh, bw) // 6), 0.05, "bilinear").mean(0, keepdim=True)
        yy, xx = np.mgrid[0:bh, 0:bw].astype(np.float32)
        freq, theta = rng.uniform(0.25, 0.5), rng.uniform(0, np.pi)
        weave = 0.025 * np.sin(freq * (xx * np.cos(theta) + yy * np.sin(theta)))
        image = image + high.numpy() + weave[None]
    image = np.round(np.clip(image, 0.0, 1.0).transpose(1, 2, 0) * 255).astype(np.uint8)
    direction = rng.uniform(0, 2 * np.pi)
    travel = rng.uniform(0.5, 1.0) * pad
    s = np.arange(num_frames) / max(num_frames - 1, 1)
    oy = np.round(pad + travel * s * np.sin(direction)).astype(int)
    ox = np.round(pad + travel * s * np.cos(direction)).astype(int)
    return np.stack([image[y : y + h, x : x + w] for y, x in zip(oy, ox, strict=True)])


def _edge_path(
    rng: np.random.Generator, tau: np.ndarray, kind: str, side: int, extent: float, reach: float, event: int
) -> np.ndarray:
    """Centre coordinate (T,) along the axis an enterer or a leaver crosses edge `side` (-1: low, +1: high) on.

    An enterer is fully out (centre `reach` beyond the edge) up to frame `event - 1`; on frame `event` its centre
    is on the edge (about half of it visible) and it drifts inwards like an object that stays. A leaver is the
    same backwards in time: its centre reaches the edge on frame `event` and it is gone from the next frame on.
    """
    edge = 0.0 if side < 0 else extent
    inward = -side if kind == "enterer" else side  # direction of motion: in for an enterer, out for a leaver
    rel = tau - tau[event]
    path = edge + inward * extent * rng.uniform(0.1, 0.25) * rel
    for _ in range(2):
        amp, cycles, phase = extent * rng.uniform(0.01, 0.04), rng.uniform(0.3, 1.0), rng.uniform(0, 2 * np.pi)
        path = path + amp * (np.sin(2 * np.pi * cycles * rel + phase) - np.sin(phase))
    path = _reflect(path, 0.0, extent)  # the centre stays in the frame while the object is in
    gone = rel < 0 if kind == "enterer" else rel > 0
    path[gone] = edge + side * reach
    return path


def _draw_object(
    rng: np.random.Generator, n: int, num_frames: int, size: tuple[int, int], shape: str, hue: float, kind: str,
    shrink: float, others: list[_Object], style: str,
) -> _Object:  # fmt: skip
    h, w = size
    radius = min(h, w) * rng.uniform(0.075, 0.11 if n > 4 else 0.14) * shrink
    if style == "flat":
        radius *= _FLAT_SCALE
    tau = np.arange(num_frames) / max(num_frames - 1, 1)
    lo, hi = 0.9 * radius, np.array([w, h]) - 0.9 * radius
    for _ in range(_START_TRIES):  # a frame-0 position clear of the `others` (the prompt frame of most objects)
        start = rng.uniform(lo, hi)
        if all(np.hypot(*(start - o.center[0])) >= 1.1 * (radius + o.radius) + _PROMPT_GAP for o in others):
            break
    center = np.zeros((num_frames, 2))
    for axis, extent in enumerate((w, h)):
        raw = start[axis] + extent * rng.uniform(0.05, 0.25) * rng.choice([-1, 1]) * tau
        for _ in range(2):
            amp, cycles, phase = extent * rng.uniform(0.01, 0.04), rng.uniform(0.3, 1.0), rng.uniform(0, 2 * np.pi)
            raw = raw + amp * (np.sin(2 * np.pi * cycles * tau + phase) - np.sin(phase))
        center[:, axis] = _reflect(raw, lo, hi[axis])
    if kind != "stay":
        axis, side = int(rng.integers(2)), int(rng.choice([-1, 1]))
        last = num_frames - 1
        if kind == "enterer":  # first visible frame in about the first half of the clip
            event = int(np.clip(np.round(rng.uniform(0.15, 0.6) * last), 1, last))
        else:  # last visible frame late in the clip
            event = int(np.clip(np.round(rng.uniform(0.65, 0.9) * last), 0, last - 1))
        reach = _EXTENT * radius * (1 + _BREATH) + 1
        center[:, axis] = _edge_path(rng, tau, kind, side, (w, h)[axis], reach, event)
    saturation, value = rng.uniform(0.65, 1.0), rng.uniform(0.84, 1.0)
    color = np.array(colorsys.hsv_to_rgb(hue, saturation, value), dtype=np.float32)
    angle = rng.uniform(0, 2 * np.pi) + rng.uniform(-0.8, 0.8) * tau
    scale = 1.0 + _BREATH * np.sin(2 * np.pi * rng.uniform(0.3, 1.2) * tau + rng.uniform(0, 2 * np.pi))
    pattern = PATTERNS[rng.integers(len(PATTERNS))] if style == "textured" else "plain"
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


_Footprint = list[tuple[int, slice, slice, np.ndarray]]  # per frame where the object overlaps the frame: (t, ys, xs, inside)


def _footprint(obj: _Object, size: tuple[int, int]) -> _Footprint:
    return [(t, ys, xs, inside) for t, ys, xs, inside, _ in _crops(obj, size, with_rgb=False)]


def _label_map(footprints: list[_Footprint], num_frames: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Topmost object per pixel (0 = background, k + 1 = object k) and each object's in-frame area per frame."""
    labels = np.zeros((num_frames, *size), dtype=np.uint8)
    full = np.zeros((num_frames, len(footprints)), dtype=np.int64)
    for k, footprint in enumerate(footprints):
        for t, ys, xs, inside in footprint:
            labels[t, ys, xs][inside] = k + 1
            full[t, k] = int(inside.sum())
    return labels, full


def _crowded(labels: np.ndarray, label: int) -> bool:
    """Whether another object comes within _PROMPT_GAP pixels of object `label` in this (H, W) label map."""
    near = ndimage.binary_dilation(labels == label, iterations=_PROMPT_GAP)
    return bool(np.isin(labels[near], (0, label), invert=True).any())


def _problems(labels: np.ndarray, full: np.ndarray, objects: list[_Object]) -> list[int]:
    """Objects that break a choreography rule of the module docstring (to redraw)."""
    t, n = full.shape
    flat = (np.arange(t)[:, None] * (n + 1) + labels.reshape(t, -1)).ravel()
    visible = np.bincount(flat, minlength=t * (n + 1)).reshape(t, n + 1)[:, 1:]
    bad = []
    for k, obj in enumerate(objects):
        on = np.flatnonzero(full[:, k])
        if on.size == 0:
            bad.append(k)
            continue
        first, last = on[0], on[-1]
        min_pixels = min(16.0, 0.5 * np.pi * obj.radius**2)
        settle = visible[first : first + _SETTLE_FRAMES + 1, k].max()
        if (
            last - first + 1 != on.size  # re-entry
            or (first > 0) != (obj.kind == "enterer")
            or (visible[on, k] < _MIN_VISIBLE * full[on, k]).any()  # (nearly) hidden by another object
            or (visible[on, k] < full[on, k]).mean() > _MAX_OCCLUDED
            or visible[first, k] < max(min_pixels, full[first, k])  # the prompt frame shows it whole
            or _crowded(labels[first], k + 1)
            or settle < _SUBSTANTIAL * visible[:, k].max()
            or (last < t - 1 and visible[last, k] < min_pixels)  # a leaver's last frame is no sliver either
        ):
            bad.append(k)
    return bad


def generate_scene(
    num_objects: int, num_frames: int, size: tuple[int, int], seed: int | np.random.SeedSequence,
    style: str = "textured",
) -> SyntheticScene:
    """Render one procedural scene; the same arguments always give the same pixels.

    Args:
        num_objects: N >= 1 moving objects.
        num_frames: T >= 1 frames (objects enter or leave only when T >= 3).
        size: (height, width).
        seed: integer seed (any `numpy.random.default_rng` seed).
        style: "textured" (patterned objects, fine background texture) or "flat" (plain objects 1.3x larger on
            a smoothly shaded background: what the CPU toy scale trains on).
    """
    if style not in STYLES:
        raise BenchmarkError(f"unknown synthetic style {style!r}; choose one of {', '.join(STYLES)}")
    if num_objects < 1 or num_frames < 1 or min(size) < 16:
        raise BenchmarkError(f"need >= 1 object, >= 1 frame and size >= 16x16, got {num_objects}, {num_frames}, {size}")
    size = (int(size[0]), int(size[1]))
    rng = np.random.default_rng(seed)
    background = _background(rng, num_frames, size, style)
    shapes = list(rng.permutation(SHAPES)) if num_objects <= len(SHAPES) else list(rng.choice(SHAPES, num_objects))
    hue0 = rng.uniform()
    hues = [(hue0 + k * 0.6180339887498949) % 1.0 for k in range(num_objects)]
    events = num_frames >= 3
    enterer = int(rng.integers(1, num_objects)) if events and num_objects > 1 and rng.uniform() < 0.3 else -1
    kinds = ["enterer" if k == enterer else ("leaver" if events and rng.uniform() < 0.25 else "stay")
             for k in range(num_objects)]  # fmt: skip

    def draw(k: int, attempt: int, others: list[_Object]) -> _Object:
        shrink = 1.0 - 0.3 * attempt / _MAX_ATTEMPTS
        return _draw_object(rng, num_objects, num_frames, size, shapes[k], hues[k], kinds[k], shrink, others, style)

    objects: list[_Object] = []
    for k in range(num_objects):
        objects.append(draw(k, 0, objects))
    footprints = [_footprint(obj, size) for obj in objects]
    for attempt in range(1, _MAX_ATTEMPTS + 1):
        labels, full = _label_map(footprints, num_frames, size)
        bad = _problems(labels, full, objects)
        if not bad:
            break
        if attempt == _MAX_ATTEMPTS:
            raise BenchmarkError(
                f"cannot place {num_objects} partly visible objects in {size[0]}x{size[1]} x {num_frames} frames "
                f"(seed {seed}); use a larger --size or fewer objects"
            )
        if attempt >= _MAX_ATTEMPTS // 2:  # crowded scene: fall back to objects that stay in the frame
            for k in bad:
                kinds[k] = "stay"
        for k in bad:
            objects[k] = draw(k, attempt, [o for j, o in enumerate(objects) if j != k])
            footprints[k] = _footprint(objects[k], size)

    frames = background
    for obj in objects:
        for t, ys, xs, inside, rgb in _crops(obj, size):
            region = frames[t, ys, xs]
            region[inside] = rgb[inside]
    masks = labels[:, None, :, :] == np.arange(1, num_objects + 1, dtype=np.uint8)[None, :, None, None]
    return SyntheticScene(frames=frames, masks=masks, prompt=_prompt(objects, style), categories=[o.shape for o in objects])


def _prompt(objects: list[_Object], style: str) -> str:
    names = []
    for obj in objects:
        pattern = "" if obj.pattern == "plain" else f"{obj.pattern} "
        words = f"{obj.color_name} {pattern}{obj.shape}"
        names.append(f"{'an' if words[0] in 'aeiou' else 'a'} {words}")
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    verb = "moves" if len(names) == 1 else "move"
    background = "grey textured background" if style == "textured" else "grey background"
    return f"{listed[0].upper()}{listed[1:]} {verb} over a slowly panning {background}."


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
    style: str = "textured",
) -> Benchmark:
    """Write a synthetic benchmark with `videos_per_group` videos in every group.

    A group "k" holds scenes of k objects; an open group "k+" draws k..k+2 objects per scene. Scene j of group
    g is seeded by (seed, g, j), so a build is reproducible and its content hash depends only on the arguments.
    `style` is `generate_scene`'s.
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
        "style": style,
    }
    with (
        BenchmarkWriter(out, name="synthetic", groups=groups, build=build, overwrite=overwrite) as writer,
        tqdm(total=videos_per_group * len(groups), desc="build synthetic", unit="video") as bar,
    ):
        for gi, label in enumerate(groups):
            for j in range(videos_per_group):
                scene_seed = np.random.SeedSequence([seed, gi, j])
                n = _counts_for_group(label, np.random.default_rng(scene_seed.spawn(1)[0]))
                scene = generate_scene(n, frames, size, seed=scene_seed, style=style)
                sample_id = f"syn-{label.replace('+', 'p')}-{j:03d}"
                writer.add(sample_id, scene.frames, scene.masks, fps, scene.prompt, f"synthetic:seed={seed}", scene.categories)
                bar.update()
        return writer.close()
