"""YAML for config files and `key=value` arguments, read as YAML 1.2 reads numbers.

PyYAML implements YAML 1.1, whose float needs a dot: `2e-4` would be the string "2e-4" and `lr=2e-4` would fail
type checks. `load_yaml` is `yaml.safe_load` plus the YAML 1.2 float form without a dot (`1e-4`, `3E5`).
"""

from __future__ import annotations

import re
from typing import Any

import yaml


class _Loader(yaml.SafeLoader):
    """SafeLoader that also resolves dotless exponent floats."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def load_yaml(text: str) -> Any:
    """`yaml.safe_load(text)` with `1e-4`-style floats (raises yaml.YAMLError like safe_load)."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
