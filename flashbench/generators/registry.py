"""Finding generators by name: `flashbench.generators` entry points, or `module:Class` with key=value args.

A spec string is ``NAME [key=value ...]``; values are parsed as YAML (flashbench.yaml_values) so ``steps=4`` is an int,
``guidance=7.5`` a float, ``fp16=true`` a bool and ``ckpt=path/to.pt`` a string. On the CLI the same args come
as repeated ``--gen-arg key=value``. Entry points are loaded lazily: listing names imports nothing.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import json
import shlex
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from typing import Any

import yaml

from flashbench.errors import FlashBenchError
from flashbench.generators.base import Generator
from flashbench.yaml_values import load_yaml

ENTRY_POINT_GROUP = "flashbench.generators"


class GeneratorSpecError(FlashBenchError):
    """A generator spec names nothing loadable, or its arguments do not fit the generator."""


def list_generators() -> list[str]:
    """Names registered in the `flashbench.generators` entry-point group, sorted."""
    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def parse_args(items: Iterable[str]) -> dict[str, Any]:
    """["steps=4", "ckpt=a.pt"] -> {"steps": 4, "ckpt": "a.pt"} (values typed by YAML, `2e-4` a float)."""
    args: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise GeneratorSpecError(f"generator argument {item!r} is not key=value (e.g. steps=4)")
        args[key] = _safe_load(raw)
    return args


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """"NAME key=value ..." -> (NAME, {key: value}). Quoting follows shell rules (shlex)."""
    try:
        parts = shlex.split(spec)
    except ValueError as e:
        raise GeneratorSpecError(f"cannot parse generator spec {spec!r} ({e}); use 'NAME key=value ...'") from None
    if not parts:
        raise GeneratorSpecError("empty generator spec; pass a registered name or module:Class")
    return parts[0], parse_args(parts[1:])


def format_spec(name: str, args: dict[str, Any]) -> str:
    """Canonical spec string (args sorted); parse_spec(format_spec(n, a)) == (n, a) for YAML-typed values."""
    items = [name]
    for key, value in sorted(args.items()):
        plain = isinstance(value, str) and _safe_load(value) == value
        items.append(f"{key}={value if plain else json.dumps(value)}")
    return " ".join(shlex.quote(i) for i in items)


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _safe_load(raw: str) -> Any:
    try:
        return load_yaml(raw) if raw.strip() else ""
    except yaml.YAMLError:
        return raw


def generator_factory(name: str) -> Callable[..., Generator]:
    """The class (or factory) a registered name or `module:Class` refers to."""
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # noqa: BLE001 - ImportError, SyntaxError, SystemExit or anything on import
            raise GeneratorSpecError(f"cannot import {module_name!r} for generator {name!r} ({_one_line(e)})") from None
        for part in attr.split("."):
            if not hasattr(obj, part):
                raise GeneratorSpecError(f"module {module_name!r} has no attribute {attr!r} (generator {name!r})")
            obj = getattr(obj, part)
        return obj
    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not found:
        names = list_generators()
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        raise GeneratorSpecError(
            f"unknown generator {name!r}; {hint}registered: {', '.join(names) or 'none'} (or give module:Class)"
        )
    try:
        return found[0].load()
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # noqa: BLE001 - a broken plug-in package
        raise GeneratorSpecError(f"cannot load generator {name!r} ({found[0].value}: {_one_line(e)})") from None


def accepts(factory: Callable[..., Any], param: str) -> bool:
    """Whether `factory` takes keyword `param` (directly or through **kwargs)."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == param or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def load_generator(spec: str, **kwargs: Any) -> Generator:
    """Instantiate the generator named by `spec` ("NAME key=value ..."); kwargs override spec args."""
    name, args = parse_spec(spec)
    args.update(kwargs)
    factory = generator_factory(name)
    try:
        generator = factory(**args)
    except FlashBenchError:
        raise
    except TypeError as e:
        raise GeneratorSpecError(f"generator {name!r} does not accept arguments {sorted(args)} ({e})") from None
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # noqa: BLE001 - its constructor failed: one line, not a traceback
        raise GeneratorSpecError(f"generator {name!r} could not be built ({_one_line(e)})") from None
    if not isinstance(generator, Generator):
        raise GeneratorSpecError(
            f"{name!r} built a {type(generator).__name__}, which lacks a `name` attribute or `generate(request)`"
        )
    return generator
