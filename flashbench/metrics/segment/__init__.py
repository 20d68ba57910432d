"""Segment generated videos: promptable segmenters tracking objects from ground-truth first masks."""

from flashbench.metrics.segment.base import SEGMENTERS, Segmenter, check_track_inputs, load_segmenter

__all__ = ["SEGMENTERS", "Segmenter", "check_track_inputs", "load_segmenter"]
