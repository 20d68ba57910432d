"""What keeps a training checkpoint from running code or loading damaged state.

- Every file of a checkpoint folder is listed with its sha256 in meta.json (`files`, written last);
  `verify_manifest` checks them all (a missing, changed or unlisted file is refused) before anything is read.
- Pickled files are read with `torch.load(weights_only=True)` only (`load_pickle`): tensors, numbers, strings,
  lists, tuples and dicts; a pickle naming any other global is refused, never executed.
- torch.distributed.checkpoint pickles its `.metadata` and loads non-tensor items with `weights_only=False`:
  `SafeReader` reads the metadata with an unpickler that knows only DCP's own metadata classes, and `SafePlanner`
  loads the items with `weights_only=True`.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import torch
from torch.distributed.checkpoint import FileSystemReader
from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner
from torch.distributed.checkpoint.metadata import StorageMeta

from flashbench.weights import sha256_file
from flashmotion.errors import CheckpointError

META = "meta.json"


def _file_names(directory: Path) -> list[str]:
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file() and p.name != META)


def manifest(directory: Path) -> dict[str, str]:
    """{relative path: sha256} of every file in `directory` but meta.json."""
    return {name: sha256_file(directory / name) for name in _file_names(directory)}


def verify_manifest(directory: Path, meta: dict) -> None:
    """Raise CheckpointError unless the folder holds exactly the files meta.json lists, with their sha256."""
    listed = meta.get("files")
    if not isinstance(listed, dict):
        raise CheckpointError(f"{directory} has no sha256 manifest in {META}; delete this step folder")
    for rel, digest in sorted(listed.items()):
        path = directory / rel
        if not path.is_file():
            raise CheckpointError(f"{directory}: {rel} listed in {META} is missing; the checkpoint is incomplete")
        if sha256_file(path) != digest:
            raise CheckpointError(
                f"{directory}: {rel} does not match its sha256 in {META}; the checkpoint was damaged or changed, "
                "delete this step folder to resume from an older one"
            )
    extra = sorted(set(_file_names(directory)) - set(listed))
    if extra:
        raise CheckpointError(f"{directory}: {extra[0]} is not listed in {META}; remove it or delete this step folder")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def load_pickle(path: Path) -> Any:
    """torch.load with weights_only=True; anything else in the file is a CheckpointError."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as e:
        raise CheckpointError(f"{path} is not a plain tensor/number file, refusing to load it ({_first_line(e)})") from None


def load_dcp(payload: dict, path: Path) -> None:
    """dcp.load of `payload` from `path` through SafeReader and SafePlanner; a refused file is a CheckpointError."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.api import CheckpointException

    try:
        dcp.load(payload, storage_reader=SafeReader(path), planner=SafePlanner())
    except CheckpointException as e:
        causes = [failure[0] for failure in e.failures.values()]
        ours = [c for c in causes if isinstance(c, CheckpointError)]
        raise CheckpointError(str(ours[0]) if ours else f"{path}: {_first_line(causes[0])}") from None


class _MetadataUnpickler(pickle.Unpickler):
    """Rebuilds DCP's metadata dataclasses, torch.Size, dtypes, layouts and paths; refuses every other global."""

    _MODULES = {"torch.distributed.checkpoint.metadata", "torch.distributed.checkpoint.filesystem"}
    _OTHERS = {("torch", "Size"), ("torch.serialization", "_get_layout"), ("pathlib", "PosixPath"),
               ("pathlib", "PurePosixPath"), ("pathlib", "Path"), ("collections", "OrderedDict")}

    def find_class(self, module: str, name: str):
        if module == "torch" and isinstance(getattr(torch, name, None), (torch.dtype, torch.memory_format)):
            return getattr(torch, name)
        if (module in self._MODULES and not name.startswith("__")) or (module, name) in self._OTHERS:
            value = super().find_class(module, name)
            if module in self._MODULES and not isinstance(value, type):
                raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
            return value
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


class SafeReader(FileSystemReader):
    """FileSystemReader whose metadata pickle may only hold DCP's metadata types."""

    def read_metadata(self, *args: Any, **kwargs: Any):
        path = self._get_metadata_path(kwargs.get("rank"))
        try:
            with open(path, "rb") as f:
                metadata = _MetadataUnpickler(f).load()
        except (pickle.UnpicklingError, EOFError, AttributeError, TypeError) as e:
            raise CheckpointError(f"{path} is not a torch.distributed.checkpoint metadata file ({_first_line(e)})") from None
        if getattr(metadata, "storage_meta", None) is None:
            metadata.storage_meta = StorageMeta()
        metadata.storage_meta.load_id = self.load_id
        return metadata


class SafePlanner(DefaultLoadPlanner):
    """DefaultLoadPlanner that loads non-tensor items with weights_only=True."""

    def load_bytes(self, read_item, value) -> None:
        try:
            item = torch.load(value, weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError) as e:
            raise CheckpointError(f"checkpoint item {read_item.dest_index.fqn} is not plain data ({_first_line(e)})") from None
        # The parent stores the item (its own torch.load then reads back only what was just checked).
        checked = io.BytesIO()
        torch.save(item, checked)
        checked.seek(0)
        super().load_bytes(read_item, checked)
