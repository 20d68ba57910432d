"""Track objects through a video with a SAM-family promptable image segmenter, frame by frame.

Algorithm (the same for MobileSAM and SAM vit_b/l/h; every rule is deterministic):

1. Encoding: every frame from the first prompt frame on is encoded once, in batches (encoder.py: input
   size from the video size, bf16 on CUDA); all objects are decoded on the same embedding. SAM's decoder
   returns 4 masks per prompt (its single-mask token and its 3 multimask tokens): the hypotheses.
2. Prompt frame: object k is prompted at ``prompt_frames[k]`` with its ground-truth mask M: the box of M
   (widened by ``box_margin``), ``num_points`` positive points at the most interior pixels of M, negative
   points on the other objects prompted on that frame (when inside the box); the hypotheses come without
   and with M as SAM's dense mask prompt (8), and the one with the highest IoU with M is kept (M itself
   when all 8 are empty, e.g. an object too small for the encoder). No loss rule applies on the prompt
   frame, so a prompted object always has a mask there. Its appearance
   prototype (appearance.py: the mean unit embedding vector under M) is stored.
3. Tracked frame: the object's previous mask P is moved to this frame (P'): shifted by its last
   displacement (default), or with ``flow`` (off by default: it scored lower on the synthetic scenes of
   tests/test_segment.py, whose flat-coloured objects give the flow little to match) carried along the dense
   optical flow from this frame back to the previous one (OpenCV DIS computed with the longest side at
   ``flow_side``, flow.py; shifted when the carried mask is empty). The prompt comes from P (its box united
   with its constant-velocity extrapolation, points shifted by the last displacement) or with ``flow`` from
   the carried mask P': the box widened by
   ``box_margin``, positive points at its most interior pixels, negative points on the other objects'
   moved masks inside the box. ``dense_prompt`` chooses the hypotheses: "none" (default: box + points, 4),
   "mask" (P' as dense prompt, or P's low-res logits with ``flow`` off; 4) or "both" (8). A dense prompt
   makes masks stick where the object was on fast synthetic motion (tests/test_tracker_rules.py), and costs
   a decoder pass. Each hypothesis h gets ``overlap(h) = IoU(h, P')``, ``growth(h) = area(h) / the largest
   area kept so far`` and ``similarity(h)`` = cosine similarity of its prototype to the object's (the better
   of the prompt frame's and the last kept mask's).
4. Loss rules (never on the prompt frame): a hypothesis is admissible when it is non-empty, ``overlap >=
   min_overlap`` (it did not jump elsewhere), ``growth <= max_growth`` (no leak onto the background; the
   reference is the object's own largest area, which a box growing with the mask cannot hide) and
   ``similarity >= min_similarity`` (the box does not hold an occluder or background). The admissible one
   with the highest ``overlap + coverage_weight * coverage + score_weight * predicted IoU +
   similarity_weight * similarity - size_weight * |log growth|`` is kept (coverage: the fraction of P'
   inside h; the last two terms prefer the whole object to one of its parts, e.g. when it comes
   out from behind an occluder, whose visible half IoU alone would keep);
   when none is admissible the object is lost from this frame on (its mask is empty) until re-detected.
5. Re-detection, every frame while lost: each embedding cell's similarity to the object's two prototypes
   (the higher of the two) gives a peak cell; when the peak is at least ``redetect_similarity``, SAM is
   prompted with a positive point there (and negative points on the other objects' masks); a hypothesis
   is accepted when its similarity is at least ``redetect_similarity``, its predicted IoU at least
   ``min_score``, its area within [largest / max_growth**2, largest * max_growth] of the object's largest
   kept area, and at most half of it lies on the other objects' masks (another object is not taken for it). The largest accepted one (the whole object rather than one of its parts) restarts tracking
   (velocity unknown); otherwise the mask stays empty in this frame.
6. One owner per pixel (``exclusive``, default on): where the masks kept on a frame overlap, each pixel goes
   to the object whose kept hypothesis has the highest mask logit there (SAM2's non-overlapping constraint;
   DAVIS-2017 ground truth is a label map, so two objects never share a pixel). Objects on their prompt frame
   win over tracked ones (among themselves, the pixel goes to the one whose prompt mask holds it) and are never
   emptied; a tracked object left with no pixel is lost. It is what keeps the pusher's mask off the cart on
   the DAVIS multi-object soapbox (docs/ARCHITECTURE.md has the numbers).

`SamTracker.events` lists the losses (with the failing rules of the best-ranked hypothesis) and
re-detections of the last `track` call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from segment_anything.modeling import Sam
from tqdm import tqdm

from flashbench.data.objects import boxes_from_masks
from flashbench.metrics.segment.appearance import cell_features, prototypes, similarity_map
from flashbench.metrics.segment.base import check_track_inputs
from flashbench.metrics.segment.encoder import EncoderSettings, auto_image_size, encode_frames, input_shape
from flashbench.metrics.segment.flow import BackwardFlow, warp
from flashbench.metrics.segment.prompts import interior_points, mask_logits, mask_prompts, negative_points


@dataclass(frozen=True)
class TrackerSettings:
    """The tracking rules' parameters (module docstring); recorded in results.json."""

    num_points: int = 3
    dense_prompt: str = "none"  # hypotheses of tracked frames: "none" | "mask" (dense prompt only) | "both"
    box_margin: float = 0.1
    coverage_weight: float = 1.0
    score_weight: float = 0.1
    size_weight: float = 0.5
    similarity_weight: float = 0.5
    min_overlap: float = 0.2
    max_growth: float = 2.0
    min_similarity: float = 0.5
    redetect_similarity: float = 0.6
    min_score: float = 0.5
    exclusive: bool = True
    flow: bool = False  # tracked frames: previous masks carried along optical flow (default: constant velocity)
    flow_side: int = 320  # longest side of the frames the flow is computed on


@dataclass
class _Track:
    """One object's state: its last kept mask and what the rules need about it."""

    mask: np.ndarray  # last kept mask (H, W)
    logits: torch.Tensor  # its low-res logits (1, L, L), the next dense prompt
    prototype: torch.Tensor  # (C,) appearance at the prompt frame
    recent_prototype: torch.Tensor  # (C,) appearance of the last kept mask
    prev_box: np.ndarray  # box of the kept mask before `mask` (NaN: unknown velocity)
    areas: list[int] = field(default_factory=list)
    lost: bool = False


def _shift(mask: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """`mask` translated by (dx, dy) pixels, zero-filled."""
    out = np.zeros_like(mask)
    h, w = mask.shape
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = mask[ys, xs]
    return out


def _iou(cands: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """(K, H, W) candidates vs one (H, W) mask -> (K,) IoU (0 when both are empty)."""
    inter = np.logical_and(cands, ref).sum(axis=(1, 2))
    union = np.logical_or(cands, ref).sum(axis=(1, 2))
    return inter / np.maximum(union, 1)


class SamTracker:
    """A `Segmenter` built on a segment_anything `Sam` model (see the module docstring for the algorithm).

    model: a `Sam`, or a function image_size -> `Sam` (MobileSAM, whose encoder runs at any size); then
    `image_size` None picks the size from the video (`encoder.auto_image_size`). `timings` accumulates seconds
    spent encoding (waiting for embeddings) and decoding (prompts, decoder, rules) and the frames tracked.
    """

    def __init__(
        self,
        model: Sam | Callable[[int], Sam],
        name: str,
        checkpoint: Path | None = None,
        checkpoint_sha256: str | None = None,
        image_size: int | None = None,
        settings: TrackerSettings = TrackerSettings(),
        encoder: EncoderSettings | None = None,
        progress: bool = True,
    ) -> None:
        self.name = name
        self._models: dict[int, Sam] = {}
        if isinstance(model, Sam):
            image_size = model.image_encoder.img_size
            self._models[image_size] = model.eval()
            self._factory = None
        else:
            self._factory = model
        self.image_size = image_size
        self.checkpoint = checkpoint
        self.checkpoint_sha256 = checkpoint_sha256
        self.settings = settings
        self.encoder = encoder or EncoderSettings()
        self.progress = progress
        self.timings = {"encode_s": 0.0, "decode_s": 0.0, "frames": 0}
        self.events: list[dict] = []  # the last track() call's losses and re-detections (frame, object, why)

    def describe(self) -> dict:
        return {
            "segmenter": self.name,
            "checkpoint": None if self.checkpoint is None else self.checkpoint.name,
            "checkpoint_sha256": self.checkpoint_sha256,
            "tracker": "SAM prompted per frame from the previous mask, with loss rules, re-detection and one owner per pixel "
            "(flashbench.metrics.segment.tracker)",
            **asdict(self.settings),
            "image_size": "auto" if self.image_size is None else self.image_size,
            "encoder": asdict(self.encoder),
        }

    def model_for(self, height: int, width: int) -> Sam:
        """The model whose encoder input size suits an H x W video."""
        size = self.image_size if self.image_size is not None else auto_image_size(height, width)
        if size not in self._models:
            assert self._factory is not None
            self._models[size] = self._factory(size).eval()
        return self._models[size]

    def encode(self, model: Sam, frames: np.ndarray) -> Iterator[torch.Tensor]:
        """Embeddings of `frames`, one (1, C, G, G) tensor per frame, in order."""
        return encode_frames(model, frames, self.encoder)

    @torch.inference_mode()
    def track(self, frames: np.ndarray, prompt_masks: np.ndarray, prompt_frames: np.ndarray) -> np.ndarray:
        """(T, H, W, 3) uint8 video, (N, H, W) bool prompts at (N,) frames -> (T, N, H, W) bool masks."""
        frames, prompt_masks, prompt_frames = check_track_inputs(frames, prompt_masks, prompt_frames)
        t_total, n = len(frames), len(prompt_masks)
        h, w = frames.shape[1:3]
        model = self.model_for(h, w)
        step = _Step(model, (h, w), self.settings)
        out = np.zeros((t_total, n, h, w), dtype=bool)
        tracks: dict[int, _Track] = {}
        start = int(prompt_frames.min())
        embeddings = self.encode(model, frames[start:])
        flow = BackwardFlow(self.settings.flow_side) if self.settings.flow else None
        bar = tqdm(range(start, t_total), desc=f"segment ({self.name})", unit="frame", disable=not self.progress, leave=False)
        for t in bar:
            tick = time.perf_counter()
            embedding = next(embeddings)
            tock = time.perf_counter()
            step.set_embedding(embedding)
            back = None if flow is None else flow.next(frames[t])
            new = np.flatnonzero(prompt_frames == t)
            for k in new:
                others = [prompt_masks[j] for j in new if j != k]
                tracks[int(k)] = step.start(prompt_masks[k], others)
            # masks before this frame's update (the tracked ones carried to this frame when there is a flow)
            shown = {j: tr.mask if back is None or j in new else warp(tr.mask, back)
                     for j, tr in tracks.items() if not tr.lost}
            step.t = t
            for k in sorted(set(tracks) - set(new.tolist())):
                step.k = k
                moved = shown.get(k) if back is not None else None
                step.follow(tracks[k], [m for j, m in sorted(shown.items()) if j != k], moved)
            if self.settings.exclusive:
                step.exclude(tracks, {int(k): prompt_masks[k] for k in new})
            for k, track in tracks.items():
                if not track.lost:
                    out[t, k] = track.mask
            self.timings["encode_s"] += tock - tick
            self.timings["decode_s"] += time.perf_counter() - tock
            self.timings["frames"] += 1
        self.events = step.events
        return out


class _Step:
    """Prompting and decoding on one frame's embedding (the rules of the module docstring, steps 2-5)."""

    def __init__(self, model: Sam, hw: tuple[int, int], settings: TrackerSettings) -> None:
        self.model = model
        self.hw = hw
        self.s = settings
        self.size = model.image_encoder.img_size
        self.input_hw = input_shape(hw[0], hw[1], self.size)
        self.scale = np.array([self.input_hw[1] / hw[1], self.input_hw[0] / hw[0]])
        self.low_res = 4 * model.prompt_encoder.image_embedding_size[0]
        self.device = model.pixel_mean.device
        self.embedding: torch.Tensor | None = None
        self.cells: torch.Tensor | None = None
        self.events: list[dict] = []  # why objects were lost / found again (SamTracker.events)
        self.t = 0
        self.k = 0

    def set_embedding(self, embedding: torch.Tensor) -> None:
        self.embedding = embedding
        self.cells = cell_features(embedding, self.input_hw)

    # -- decoding -------------------------------------------------------------------------------------------

    def decode(
        self, points: np.ndarray, labels: np.ndarray, box: np.ndarray | None, logits: torch.Tensor | None
    ) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
        """One prompt -> SAM's 4 outputs: (4, H, W) bool masks, (4,) predicted IoU, (4, L, L) low-res logits."""
        model = self.model
        coords = torch.as_tensor(points * self.scale, dtype=torch.float, device=self.device)[None] - 0.5
        lab = torch.as_tensor(labels, dtype=torch.int, device=self.device)[None]
        box_t = None if box is None else torch.as_tensor((box.reshape(2, 2) * self.scale).reshape(1, 4), dtype=torch.float, device=self.device)
        dense_in = None if logits is None else logits[None].to(self.device)
        sparse, dense = model.prompt_encoder(points=(coords, lab), boxes=box_t, masks=dense_in)
        low, iou = model.mask_decoder.predict_masks(
            image_embeddings=self.embedding.to(self.device), image_pe=model.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
        )
        masks = model.postprocess_masks(low, self.input_hw, self.hw) > model.mask_threshold
        return masks[0].cpu().numpy(), iou[0].float().cpu().numpy(), low[0]

    def hypotheses(
        self, points: np.ndarray, labels: np.ndarray, box: np.ndarray, logits: torch.Tensor
    ) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
        """The hypotheses of a box + points prompt: SAM's 4 outputs without and/or with the dense prompt."""
        if self.s.dense_prompt == "none":
            return self.decode(points, labels, box, None)
        if self.s.dense_prompt == "mask":
            return self.decode(points, labels, box, logits)
        a = self.decode(points, labels, box, None)
        b = self.decode(points, labels, box, logits)
        return np.concatenate([a[0], b[0]]), np.concatenate([a[1], b[1]]), torch.cat([a[2], b[2]])

    def _prompt(self, mask: np.ndarray, prev_box: np.ndarray, others: list[np.ndarray]):
        boxes, pos = mask_prompts(mask[None], self.s.num_points, self.s.box_margin, prev_box[None])
        neg = negative_points(mask, boxes[0], others)
        points = np.concatenate([pos[0], neg])
        labels = np.concatenate([np.ones(len(pos[0]), int), np.zeros(len(neg), int)])
        return boxes[0], points, labels

    # -- rules ----------------------------------------------------------------------------------------------

    def start(self, mask: np.ndarray, others: list[np.ndarray]) -> _Track:
        """Step 2: an object's prompt frame."""
        box, points, labels = self._prompt(mask, np.full(4, np.nan), others)
        logits = mask_logits(mask, self.input_hw, self.size, self.low_res)
        masks, _, lows = self.hypotheses(points, labels, box, logits)
        best = int(np.argmax(_iou(masks, mask)))
        proto = prototypes(self.cells, mask[None])[0]
        kept = masks[best] if masks[best].any() else mask
        return _Track(mask=kept, logits=lows[best : best + 1], prototype=proto, recent_prototype=proto,
                      prev_box=np.full(4, np.nan), areas=[int(kept.sum())])

    def similarity(self, track: _Track, masks: np.ndarray) -> np.ndarray:
        """(K,) appearance similarity of candidate masks to the object (the better of its two prototypes)."""
        protos = prototypes(self.cells, masks)
        sims = torch.maximum(protos @ track.prototype, protos @ track.recent_prototype)
        return sims.cpu().numpy()

    def follow(self, track: _Track, others: list[np.ndarray], flowed: np.ndarray | None = None) -> None:
        """Steps 3-5 on a frame after the prompt frame; updates `track` in place. `flowed`: the previous mask
        carried to this frame along the optical flow (None: moved by constant velocity)."""
        if track.lost:
            self.redetect(track, others)
            return
        cur_box = boxes_from_masks(track.mask[None])[0]
        if flowed is not None and flowed.any():
            moved = flowed
            box, points, labels = self._prompt(moved, np.full(4, np.nan), others)
            dense = mask_logits(moved, self.input_hw, self.size, self.low_res)
        else:
            if np.isnan(track.prev_box).any():
                dx = dy = 0
            else:
                d = (cur_box - track.prev_box).reshape(2, 2).mean(axis=0)
                dx, dy = int(round(d[0])), int(round(d[1]))
            moved = _shift(track.mask, dx, dy)
            box, points, labels = self._prompt(track.mask, track.prev_box, others)
            dense = track.logits
        masks, scores, lows = self.hypotheses(points, labels, box, dense)
        overlap = _iou(masks, moved)
        coverage = np.logical_and(masks, moved).sum(axis=(1, 2)) / max(int(moved.sum()), 1)
        areas = masks.sum(axis=(1, 2))
        growth = areas / float(max(track.areas))
        sims = self.similarity(track, masks)
        checks = {
            "empty": areas == 0,
            "jump": overlap < self.s.min_overlap,
            "growth": growth > self.s.max_growth,
            "appearance": sims < self.s.min_similarity,
        }
        ok = ~np.any(list(checks.values()), axis=0)
        size = -np.abs(np.log(np.maximum(growth, 1e-6)))  # 0 at the largest kept area, lower for parts / leaks
        rank = (overlap + self.s.coverage_weight * coverage + self.s.score_weight * scores
                + self.s.similarity_weight * sims + self.s.size_weight * size)
        if not ok.any():
            first = int(np.argmax(rank))
            track.lost = True
            self.events.append({"frame": self.t, "object": self.k, "event": "lost",
                                "why": [name for name, bad in checks.items() if bad[first]],
                                "overlap": round(float(overlap[first]), 3), "growth": round(float(growth[first]), 3),
                                "similarity": round(float(sims[first]), 3)})
            return
        best = int(np.argmax(np.where(ok, rank, -np.inf)))
        kept = masks[best]
        self._keep(track, kept, lows[best : best + 1], cur_box)

    def exclude(self, tracks: dict[int, _Track], fixed: dict[int, np.ndarray]) -> None:
        """Step 6: no pixel belongs to two objects. Where kept masks overlap, the pixel goes to the object with
        the highest mask logit (SAM2's non-overlapping constraint). Objects on their prompt frame (`fixed`: their
        prompt masks) win over tracked ones, and among themselves a pixel goes to the one whose prompt mask holds
        it; they are never emptied (a prompted object always has a mask there). A tracked object left with no
        pixel is lost."""
        live = [k for k, tr in tracks.items() if not tr.lost]
        if len(live) < 2:
            return
        masks = np.stack([tracks[k].mask for k in live])
        if not (masks.sum(axis=0) > 1).any():
            return
        logits = self.model.postprocess_masks(torch.cat([tracks[k].logits for k in live])[:, None], self.input_hw, self.hw)
        logits = logits[:, 0].float().cpu().numpy()
        for i, k in enumerate(live):
            if k in fixed:  # SAM logits are O(10): +1e4 beats any tracked object, +2e4 inside the own prompt mask
                logits[i] += 1e4 * (1 + fixed[k])
        logits[~masks] = -np.inf
        owner = np.argmax(logits, axis=0)
        for i, k in enumerate(live):
            mine = masks[i] & (owner == i)
            if mine.sum() == masks[i].sum() or (k in fixed and not mine.any()):
                continue
            if not mine.any():
                tracks[k].lost = True
                self.events.append({"frame": self.t, "object": k, "event": "lost", "why": ["taken by other objects"]})
                continue
            tracks[k].mask = mine
            tracks[k].areas[-1] = int(mine.sum())

    def _keep(self, track: _Track, mask: np.ndarray, logits: torch.Tensor, prev_box: np.ndarray) -> None:
        track.prev_box = prev_box
        track.mask = mask
        track.logits = logits
        track.areas.append(int(mask.sum()))
        track.recent_prototype = prototypes(self.cells, mask[None])[0]
        track.lost = False

    def redetect(self, track: _Track, others: list[np.ndarray]) -> None:
        """Step 5: search the frame for a lost object."""
        sim = torch.maximum(similarity_map(self.cells, track.prototype), similarity_map(self.cells, track.recent_prototype))
        peak = int(torch.argmax(sim))
        gy, gx = divmod(peak, sim.shape[1])
        if float(sim[gy, gx]) < self.s.redetect_similarity:
            return
        point = (np.array([gx + 0.5, gy + 0.5]) * 16) / self.scale
        point = np.clip(point, 0.5, [self.hw[1] - 0.5, self.hw[0] - 0.5])
        neg = [interior_points(o, 1)[0] for o in others if o.any()]
        points = np.concatenate([point[None], np.array(neg).reshape(-1, 2)])
        labels = np.concatenate([[1], np.zeros(len(neg), int)])
        masks, scores, lows = self.decode(points, labels, None, None)
        sims = self.similarity(track, masks)
        areas = masks.sum(axis=(1, 2))
        ref = max(track.areas)
        taken = np.any(others, axis=0) if others else np.zeros(self.hw, bool)
        on_others = np.logical_and(masks, taken).sum(axis=(1, 2)) / np.maximum(areas, 1)
        ok = (
            (sims >= self.s.redetect_similarity)
            & (scores >= self.s.min_score)
            & (areas >= ref / self.s.max_growth**2)
            & (areas <= ref * self.s.max_growth)
            & (on_others <= 0.5)
        )
        if not ok.any():
            return
        best = int(np.argmax(np.where(ok, areas, -1)))  # the whole object, not one of its parts
        self.events.append({"frame": self.t, "object": self.k, "event": "found", "similarity": round(float(sims[best]), 3)})
        self._keep(track, masks[best], lows[best : best + 1], np.full(4, np.nan))
