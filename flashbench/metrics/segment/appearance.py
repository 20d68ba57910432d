"""Appearance of an object in SAM's image embedding: a prototype vector and a similarity map (PerSAM-style).

The embedding is (256, G, G) on the padded square input; the frame covers the top-left (gh, gw) cells with
gh, gw = input h, w / 16. Each cell's vector is L2-normalised. An object's prototype is the mean of the
normalised vectors of the cells it covers, each weighted by the fraction of the cell the mask covers,
normalised again; two prototypes compare by their dot product (cosine similarity, in [-1, 1]).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

PATCH = 16  # input pixels per embedding cell


def grid_shape(input_hw: tuple[int, int]) -> tuple[int, int]:
    """(gh, gw): the embedding cells that cover the (unpadded) frame."""
    return max(1, round(input_hw[0] / PATCH)), max(1, round(input_hw[1] / PATCH))


def cell_features(embedding: torch.Tensor, input_hw: tuple[int, int]) -> torch.Tensor:
    """(1, C, G, G) embedding -> (gh, gw, C) unit vectors of the cells covering the frame."""
    gh, gw = grid_shape(input_hw)
    return F.normalize(embedding[0, :, :gh, :gw].permute(1, 2, 0).float(), dim=-1)


def cell_weights(masks: np.ndarray, grid: tuple[int, int]) -> torch.Tensor:
    """(B, H, W) bool masks -> (B, gh, gw) fraction of each cell covered (area average)."""
    m = torch.as_tensor(np.ascontiguousarray(masks), dtype=torch.float32)[:, None]
    return F.adaptive_avg_pool2d(m, grid)[:, 0]


def prototypes(cells: torch.Tensor, masks: np.ndarray) -> torch.Tensor:
    """(gh, gw, C) cell vectors, (B, H, W) masks -> (B, C) unit prototypes (zero for an empty mask)."""
    w = cell_weights(masks, cells.shape[:2])
    return F.normalize(torch.einsum("bhw,hwc->bc", w, cells), dim=-1)


def similarity_map(cells: torch.Tensor, prototype: torch.Tensor) -> torch.Tensor:
    """(gh, gw) cosine similarity of every cell to a (C,) prototype."""
    return cells @ prototype
