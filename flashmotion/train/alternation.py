"""Alternating updates of two (or more) optimised roles at a fixed ratio, as a function of the global step.

`UpdateRatio({"discriminator": 1, "adapter": 5})` runs cycles of max(counts) = 5 steps; a role with count n
updates on the first n steps of each cycle. So over any whole number of cycles the update counts are exactly in
the given ratio (1 discriminator update per 5 adapter updates here; {"discriminator": 5, "adapter": 1} is the
reverse), and the schedule depends only on the step, so a resumed run alternates exactly as an uninterrupted one
(the Self-Forcing trainer's `step % dfake_gen_update_ratio == 0` is the case {"generator": 1, "fake_score": 5}).
"""

from __future__ import annotations

from dataclasses import dataclass

from flashmotion.errors import ModelConfigError


@dataclass(frozen=True)
class UpdateRatio:
    counts: dict[str, int]

    def __post_init__(self) -> None:
        bad = {name: n for name, n in self.counts.items() if not isinstance(n, int) or n < 1}
        if not self.counts or bad:
            raise ModelConfigError(f"update counts must be integers >= 1 per role, got {dict(self.counts)}")

    @property
    def cycle(self) -> int:
        return max(self.counts.values())

    def updates(self, name: str, step: int) -> bool:
        """Whether role `name` is updated at global step `step` (0-based)."""
        return step % self.cycle < self.counts[name]


class UpdateCounts:
    """Per-role update counters of an alternating method, checkpointed as the method's extra state (so a resumed
    run logs the same counts). Subclasses set `self.updates = {role: 0, ...}`."""

    updates: dict[str, int]

    def state_dict(self) -> dict:
        return {"updates": dict(self.updates)}

    def load_state_dict(self, state: dict) -> None:
        self.updates = {name: int(n) for name, n in state["updates"].items()}
