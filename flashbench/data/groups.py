"""Grouping samples by number of foreground objects ("1,2,3,4,5,6+")."""

from __future__ import annotations

DEFAULT_GROUPS: tuple[str, ...] = ("1", "2", "3", "4", "5", "6+")


def parse_groups(spec: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Parse "1,2,3,4,5,6+" into labels. Each label is an exact count `k` or an open range `k+`."""
    labels = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    if not labels:
        raise ValueError("empty group spec: use e.g. --groups 1,2,3,4,5,6+")
    seen: set[int] = set()
    for i, label in enumerate(labels):
        lo = _lower(label)
        if label.endswith("+") and i != len(labels) - 1:
            raise ValueError(f"group {label!r}: an open group 'k+' must come last in the spec")
        if lo in seen or any(lo <= s for s in seen):
            raise ValueError(f"groups must be strictly increasing, got {','.join(labels)}")
        seen.add(lo)
    return tuple(labels)


def _lower(label: str) -> int:
    try:
        value = int(label.rstrip("+"))
    except ValueError:
        raise ValueError(f"bad group label {label!r}: use a count like 3 or an open range like 6+") from None
    if value < 1:
        raise ValueError(f"bad group label {label!r}: object counts start at 1")
    return value


def group_for_count(count: int, groups: tuple[str, ...] = DEFAULT_GROUPS) -> str | None:
    """Label of the group holding `count` objects, or None when no group admits it."""
    for label in groups:
        lo = _lower(label)
        if (label.endswith("+") and count >= lo) or count == lo:
            return label
    return None


def group_counts(groups: tuple[str, ...]) -> dict[str, int]:
    """Smallest object count of each group (what a synthetic builder draws for a group)."""
    return {label: _lower(label) for label in groups}
