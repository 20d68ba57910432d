"""Training logs: a CSV of every logged value per step (rewritten atomically, so an interrupted run leaves a
valid file, and a resumed run drops the rows after its checkpoint), TensorBoard scalars when tensorboard is
installed, and a PNG plot of the losses at the end.

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
            with self.path.open(newline="") as f:
                for row in csv.DictReader(f):
                    if int(row["step"]) <= start_step:
                        self.rows.append({k: float(v) for k, v in row.items() if v != ""})
        self.writer = None
        if tensorboard and importlib.util.find_spec("tensorboard") is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.path.parent / "tensorboard"), purge_step=start_step + 1)

    def log(self, step: int, values: dict[str, float]) -> None:
        self.rows.append({"step": float(step), **{k: float(v) for k, v in values.items()}})
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(key, value, step)
        self.flush()

    def flush(self) -> None:
        keys = sorted({k for row in self.rows for k in row} - {"step"})
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["step", *keys])
        for row in self.rows:
            writer.writerow([int(row["step"]), *(repr(row[k]) if k in row else "" for k in keys)])
        atomic.write_text(self.path, buffer.getvalue())

    def plot(self, path: Path) -> Path | None:
        """Loss curves (keys containing 'loss') against step, one panel per key; None when there is nothing."""
        keys = sorted({k for row in self.rows for k in row if "loss" in k})
        if not keys:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(len(keys), 1, figsize=(7, 2.4 * len(keys)), squeeze=False)
        for ax, key in zip(axes[:, 0], keys, strict=True):
            points = [(row["step"], row[key]) for row in self.rows if key in row]
            ax.plot([p[0] for p in points], [p[1] for p in points], lw=1)
            ax.set_ylabel(key)
            ax.set_yscale("log" if all(p[1] > 0 for p in points) else "linear")
            ax.grid(alpha=0.3)
        axes[-1, 0].set_xlabel("step")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return Path(path)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
