"""Loading a configuration: presets (``configs/<name>.py``), their variants, ``section.field=value``
overrides, and the conversion of a ConfigDict (or a checkpoint's saved config) into the dataclasses.

Presets define ``get_config(arg) -> ConfigDict``; they start from :func:`base_config`, whose fields are
exactly the dataclass fields. :func:`load` applies overrides, converts the result to a :class:`Config`
and validates it.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import functools
import importlib.util
import os
import types
import typing
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import ml_collections

from streamdit_jax.config.schema import Config
from streamdit_jax.config.validation import ConfigError, _fail

# ---------------------------------------------------------------------------------------------------
# ConfigDict <-> dataclasses


def parse_arg(arg: str | None, **defaults: Any) -> ml_collections.ConfigDict:
    """A preset's variant string, big_vision style: 'res=256,distilled' -> {res: 256, distilled: True}.

    Keys must be among ``defaults`` (whose values give the types); a bare key means True.
    """
    out = ml_collections.ConfigDict(defaults)
    for item in filter(None, (arg or "").split(",")):
        key, sep, raw = item.partition("=")
        if key not in defaults:
            raise ConfigError(
                f"config variant '{item}': unknown option {key!r}. Fix: use one of {sorted(defaults)}"
            )
        value = True if not sep else parse_override(f"{key}={raw}")[1]
        default = defaults[key]
        if default is not None:
            value = _check_type(f"variant option {key}", type(default), value)
        out[key] = value
    return out


def base_config() -> ml_collections.ConfigDict:
    """A ConfigDict holding every field of :class:`Config` at its default; presets start from it."""
    return ml_collections.ConfigDict(Config().to_dict())


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _as_tuples(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_as_tuples(v) for v in value)
    return value


def _unknown(path: str, key: str, known: Sequence[str]) -> typing.NoReturn:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean '{path}{close[0]}'?" if close else f"valid fields here: {', '.join(known)}"
    raise ConfigError(f"config field '{path}{key}': unknown field. Fix: {hint}")


# Fields renamed since an earlier release: old dotted name -> new. Saved configs and overrides that use
# an old name still load, with a note; a release after the one that announced it drops the entry.
RENAMED_FIELDS = {
    "rollout.cfg_scale": "rollout.guidance",
    "rollout.startup_cfg_scale": "rollout.startup_guidance",
    "distill.cfg_scale": "distill.guidance",
}


def _current_name(dotted: str) -> str:
    """``dotted``, or its new name (with a deprecation note) when it is a renamed field's old one."""
    if dotted not in RENAMED_FIELDS:
        return dotted
    new = RENAMED_FIELDS[dotted]
    warnings.warn(f"config field '{dotted}' is now '{new}'; the old name goes in the next release",
                  FutureWarning, stacklevel=3)  # fmt: skip
    return new


def from_dict(cls: type, data: Mapping[str, Any], path: str = "") -> Any:
    """Builds dataclass ``cls`` from a nested mapping, rejecting unknown fields."""
    types_ = _field_types(cls)
    kwargs = {}
    for old, value in data.items():
        key = _current_name(f"{path}{old}").removeprefix(path)
        if key not in types_:
            _unknown(path, key, list(types_))
        tp = types_[key]
        if _is_dataclass_type(tp):
            if not isinstance(value, Mapping):
                _fail(f"{path}{key}", f"expected a section, got {value!r}", "set its fields one by one")
            kwargs[key] = from_dict(tp, value, f"{path}{key}.")
        else:
            kwargs[key] = _check_type(f"{path}{key}", tp, _as_tuples(value))
    return cls(**kwargs)


def _check_type(field: str, tp: Any, value: Any) -> Any:
    """Light type check of a leaf value (ints are accepted for floats)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(tp):
            return None
        options = [t for t in typing.get_args(tp) if t is not type(None)]
        return _check_type(field, options[0], value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool) and (
        not isinstance(value, tp) or (tp is int and isinstance(value, bool))
    ):
        _fail(field, f"expected {tp.__name__}, got {value!r}", f"give a {tp.__name__}")
    if origin is tuple:
        if not isinstance(value, tuple):
            _fail(field, f"expected a tuple, got {value!r}", "give a tuple, e.g. '(1, 2)'")
        args = typing.get_args(tp)
        element = args[0] if len(args) == 2 and args[1] is Ellipsis else None
        if element in (int, float, bool):
            return tuple(_check_type(field, element, v) for v in value)
        if args and Ellipsis not in args and all(a in (int, float) for a in args):
            if len(value) != len(args):
                _fail(field, f"expected {len(args)} values, got {value!r}", f"give {len(args)} numbers")
            return tuple(_check_type(field, a, v) for a, v in zip(args, value, strict=True))
    return value


# ---------------------------------------------------------------------------------------------------
# Loading presets and overrides


def config_dir() -> Path:
    """Where preset names are looked up: $STREAMDIT_CONFIG_DIR, else the checkout's configs/."""
    return Path(os.environ.get("STREAMDIT_CONFIG_DIR", CHECKOUT_CONFIGS))


# The source checkout's configs/ folder: this file is streamdit_jax/config/loading.py.
CHECKOUT_CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def configs_module(name: str) -> types.ModuleType:
    """A helper module beside the presets, ``configs/<name>.py`` (e.g. ``_stages``: a name starting with
    ``_`` is no preset), from :func:`config_dir` or else the checkout's configs/; each file loaded once."""
    for folder in dict.fromkeys((config_dir(), CHECKOUT_CONFIGS)):
        path = folder / f"{name}.py"
        if path.is_file():
            return _exec_once(path.resolve())
    raise ConfigError(
        f"configs/{name}.py is not in {config_dir()}. Fix: install from the source checkout with "
        "`pip install -e .`, or set STREAMDIT_CONFIG_DIR to a copy of its configs/"
    )


@functools.cache
def _exec_once(path: Path) -> types.ModuleType:
    return _exec_file(path, f"streamdit_configs_{path.stem}")


def _exec_file(path: Path, module_name: str) -> types.ModuleType:
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def _read_preset(spec: str) -> ml_collections.ConfigDict:
    path_part, _, arg = spec.partition(":")
    path = Path(path_part)
    if not path.suffix:
        path = config_dir() / f"{path_part}.py"
    if not path.is_file():
        presets = sorted(p.stem for p in config_dir().glob("*.py") if not p.stem.startswith("_"))
        where = (
            f"one of the presets {presets}"
            if presets
            else f"a preset name once {config_dir()} exists (presets live in the source checkout's configs/: "
            "install with `pip install -e .` or set STREAMDIT_CONFIG_DIR)"
        )
        raise ConfigError(
            f"config '{spec}': no such file {path}. Fix: give a path to a configs/*.py file or {where}"
        )
    module = _exec_file(path, f"streamdit_preset_{path.stem}")
    if not hasattr(module, "get_config"):
        raise ConfigError(
            f"config '{spec}': {path} defines no get_config(arg). Fix: add one returning a ConfigDict"
        )
    return module.get_config(arg or None)


def parse_override(text: str) -> tuple[str, Any]:
    """'model.window=(4,2,2)' -> ('model.window', (4, 2, 2)); a value that is no literal stays a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"override '{text}': expected section.field=value. Fix: e.g. model.num_layers=4")
    key = key.strip().removeprefix("--config.").removeprefix("config.")
    raw = raw.strip()
    lowered = {"true": True, "false": False, "none": None, "null": None}
    if raw.lower() in lowered:
        return key, lowered[raw.lower()]
    try:
        return key, _as_tuples(ast.literal_eval(raw))
    except (ValueError, SyntaxError):
        return key, raw


def apply_overrides(cd: ml_collections.ConfigDict, overrides: Sequence[str]) -> ml_collections.ConfigDict:
    """Sets each 'section.field=value' on a copy of ``cd``; unknown fields raise ConfigError."""
    cd = ml_collections.ConfigDict(cd.to_dict())
    for text in overrides:
        key, value = parse_override(text)
        key = _current_name(key)
        *parents, leaf = key.split(".")
        node, path = cd, ""
        for part in parents:
            if part not in node or not isinstance(node[part], ml_collections.ConfigDict):
                _unknown(path, part, list(node.keys()))
            node, path = node[part], f"{path}{part}."
        if leaf not in node:
            _unknown(path, leaf, list(node.keys()))
        try:
            node[leaf] = value
        except TypeError as e:
            raise ConfigError(f"config field '{key}': {e}. Fix: give a value of the field's type") from e
    return cd


def load(
    spec: str | ml_collections.ConfigDict,
    overrides: Sequence[str] = (),
    num_devices: int | None = None,
) -> Config:
    """Loads a preset (name, ``path.py`` or ``path.py:variant``) or a ConfigDict into a validated Config.

    ``num_devices`` (default: ``jax.device_count()``) is checked against ``mesh.shape``. The default
    starts JAX's backend: in multi-host programs call ``jax.distributed.initialize()`` first.
    """
    cd = spec if isinstance(spec, ml_collections.ConfigDict) else _read_preset(spec)
    cd = apply_overrides(cd, overrides)
    cfg = from_dict(Config, cd.to_dict())
    if num_devices is None:
        import jax  # here, so that configs load without initialising a backend

        num_devices = jax.device_count()
    cfg.mesh.resolved_shape(num_devices)
    return cfg
