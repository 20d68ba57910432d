"""What the report header says about how FID/FVD (and ObjMC) were computed, and the warnings results.json carries.

`protocol_lines`: the FID frames and the FVD protocol (clips of N frames, or whole videos as the TF / StyleGAN-V
references do) from each run's results.json `settings`; runs that differ are listed one by one with a warning,
since their FVDs are not comparable. `rank_deficiency_notes`: one line per run and metric whose distance came
from fewer feature rows than dimensions (METRICS `rank_deficient`), with the scopes and row counts affected.
"""

from __future__ import annotations

from flashbench.report.runs import RunRecord


def fvd_protocol(settings: dict) -> str:
    """One phrase for the FVD protocol of a results.json `settings` block (older files: clips of clip_len)."""
    fvd = settings.get("fvd") or {}
    if fvd.get("protocol_text"):
        return str(fvd["protocol_text"])
    if fvd.get("clip_len") in (None, "whole video"):
        return "I3D protocol not recorded" if not fvd else "I3D on each whole video, one feature row per video"
    return f"I3D on non-overlapping {fvd['clip_len']}-frame clips, one feature row per clip"


def fid_protocol(settings: dict) -> str:
    """One phrase for the FID frames of a results.json `settings` block."""
    stride = (settings.get("fid") or {}).get("stride")
    if stride is None:
        return "Inception pool3 (frame stride not recorded)"
    return "Inception pool3 of every frame" if stride == 1 else f"Inception pool3 of every {stride}th frame"


def protocol_lines(runs: list[RunRecord]) -> list[str]:
    """Header lines: `FID: ...` and `FVD: ...`, shared by all runs or listed per run with a warning; `ObjMC: ...`
    when a run has it."""
    lines = []
    for label, describe in (("FID", fid_protocol), ("FVD", fvd_protocol)):
        per_run = {run.name: describe(run.results.settings) for run in runs}
        if len(set(per_run.values())) == 1:
            lines.append(f"{label}: {next(iter(per_run.values()))}.")
        else:
            listing = "; ".join(f"{name}: {text}" for name, text in per_run.items())
            lines.append(f"{label}: WARNING, the runs differ ({listing}); their {label}s are not comparable.")
    if any("objmc" in run.results.settings for run in runs):
        lines.append("ObjMC: mean distance in pixels between the tracked and the target mask centroid of each object "
                     "(MotionCtrl's object-motion metric); a lost object counts as the frame diagonal "
                     "(leaderboard.csv `objmc_norm`: in percent of the diagonal).")
    if any(fvd_protocol(run.results.settings).startswith("I3D on non-overlapping") for run in runs):
        lines.append("The TF / StyleGAN-V FVD references feed each whole video to I3D; evaluate with "
                     "`--fvd-protocol whole-video` for numbers on that protocol.")
    return lines


def rank_deficiency_notes(runs: list[RunRecord]) -> list[str]:
    """'Warning: ...' per run and metric with fewer feature rows than dimensions in some scope."""
    lines = []
    for run in runs:
        found: dict[tuple[str, int], list[str]] = {}
        scopes = [("all", run.overall)] + [(f"{g} obj", metrics) for g, metrics in run.groups.items()]
        for scope, metrics in scopes:
            for kind, (rows, dims) in metrics.rank_deficient.items():
                found.setdefault((kind.upper(), dims), []).append(f"{scope}: {rows}")
        for (kind, dims), where in found.items():
            lines.append(
                f"Warning: {run.name}'s {kind} has fewer feature rows than its {dims} dimensions ({', '.join(where)}"
                f" rows): the covariance is rank-deficient and the distance biased upwards; compare {kind}s only "
                "at equal row counts."
            )
    return lines
