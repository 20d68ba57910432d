"""Training logs: a CSV of every logged value per step, TensorBoard scalars when tensorboard is installed, and a
PNG plot of the losses at the end.

Invariant: the CSV on disk is a header and whole rows. A row is appended with one write and flushed at once, so a
killed run leaves every row it logged, whole (the kernel finishes a write even when the process is killed). The
file is rewritten atomically only when the columns change (a key logged for the first time) and when a resumed
run starts, which drops the rows after its checkpoint and any damaged tail (rows are read while their steps
increase and their fields parse). Appending keeps a step's logging cost constant; rewriting the whole file on
every step had made a 14000-step run twice as slow at its end as at its start.

CSV columns: `step` (1-based count of finished optimizer steps), then the logged keys in sorted order (losses,
`lr/<opt>`, `grad_norm/<opt>`, counters); values are written with repr() so a resumed run can be compared to an
uninterrupted one exactly. A key missing at a step is left empty.
"""

from __future__ import annotations

import csv
import importlib.util
import io
from pathlib import Path

from flashbench import atomic


class TrainLog:
    def __init__(self, path: Path, start_step: int = 0, tensorboard: bool = True) -> None:
        self.path = Path(path)
        self.rows: list[dict[str, float]] = []
        if self.path.is_file() and start_step > 0:
            self.rows = _whole_rows(self.path, start_step)
        self.keys: list[str] = []
        self._file = None
        if self.rows:
            self._rewrite()
        self.writer = None
        if tensorboard and importlib.util.find_spec("tensorboard") is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.path.parent / "tensorboard"), purge_step=start_step + 1)

    def log(self, step: int, values: dict[str, float]) -> None:
        row = {"step": float(step), **{k: float(v) for k, v in values.items()}}
        self.rows.append(row)
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(key, value, step)
        if self._file is None or not set(values) <= set(self.keys):
            self._rewrite()
        else:
            self._file.write(self._line(row))
            self._file.flush()

    def _line(self, row: dict[str, float]) -> str:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(
            [int(row["step"]), *(repr(row[k]) if k in row else "" for k in self.keys)])
        return buffer.getvalue()

    def _rewrite(self) -> None:
        """The whole file, atomically, with the columns of every row so far; later rows are appended to it."""
        if self._file is not None:
            self._file.close()
        self.keys = sorted({k for row in self.rows for k in row} - {"step"})
        header = io.StringIO()
        csv.writer(header, lineterminator="\n").writerow(["step", *self.keys])
        atomic.write_text(self.path, header.getvalue() + "".join(self._line(row) for row in self.rows))
        self._file = self.path.open("a", newline="")

    def plot(self, path: Path) -> Path | None:
        """Training loss curves (keys containing 'loss') against step, one panel per key, and the held-out
        validation curves (`val/...`), one panel per family (`val/x0_err@0.5` with `val/x0_err@0.97` and
        `val/x0_err_static`, `val/loss` with `val/loss_swapped`); None when there is nothing."""
        names = {k for row in self.rows for k in row}
        panels: dict[str, list[str]] = {k: [k] for k in sorted(n for n in names if "loss" in n and not n.startswith("val/"))}
        for key in sorted(n for n in names if n.startswith("val/")):
            family = key.split("@")[0].removesuffix("_static").removesuffix("_swapped")
            panels.setdefault(family, []).append(key)
        if not panels:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(len(panels), 1, figsize=(7, 2.4 * len(panels)), squeeze=False)
        for ax, (title, keys) in zip(axes[:, 0], panels.items(), strict=True):
            positive = True
            for key in keys:
                points = [(row["step"], row[key]) for row in self.rows if key in row and row[key] == row[key]]
                ax.plot([p[0] for p in points], [p[1] for p in points], lw=1, marker="." if title.startswith("val/") else None,
                        label=key)
                positive = positive and all(p[1] > 0 for p in points)
            ax.set_ylabel(title)
            ax.set_yscale("log" if positive else "linear")
            if len(keys) > 1:
                ax.legend(fontsize=7)
            ax.grid(alpha=0.3)
        axes[-1, 0].set_xlabel("step")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return Path(path)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.writer is not None:
            self.writer.close()


def _whole_rows(path: Path, last_step: int) -> list[dict[str, float]]:
    """The rows of `path` up to step `last_step`, stopping at the first that is cut short (no line end, fewer
    fields), does not parse or does not follow its predecessor's step."""
    rows: list[dict[str, float]] = []
    whole = [line for line in path.read_text().splitlines(keepends=True) if line.endswith("\n")]
    reader = csv.reader(whole)
    header = next(reader, None)
    for fields in reader:
        if header is None or len(fields) != len(header):
            break
        try:
            row = {k: float(v) for k, v in zip(header, fields, strict=True) if v != ""}
        except ValueError:
            break
        step = row.get("step")
        if step is None or step > last_step or (rows and step <= rows[-1]["step"]):
            break
        rows.append(row)
    return rows
