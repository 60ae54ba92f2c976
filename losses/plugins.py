"""Third-party losses: the ``kdbench.losses`` entry-point group and ``--plugin path/to/file.py``.

A plugin is one Python file (or an installed module) that defines a :class:`DistillLoss`
subclass decorated with ``@register_loss("name")``; importing it registers the loss. Every
failure becomes a ``UserError`` naming the plugin and the problem: it does not exist, fails to
import (with the exception's one-line message), registers no loss, names a missing class, or
registers a name that is taken. A loss that later asks for a tap the model lacks gets an error
naming the loss, its plugin, the tap and the taps available (see :mod:`losses.registry`).

See docs/losses.md ("Adding a loss") and docs/examples/cosine_sp.py.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import ModuleType

from benchmark.errors import UserError, user_error
from losses.registry import DistillLoss, add_loss_class, is_loss, registering_from

ENTRY_POINT_GROUP = "kdbench.losses"
_LOADED: dict[str, list[str]] = {}


def load_plugin(spec: str | Path, *, if_needed: bool = False) -> list[str]:
    """Import ``path/to/file.py`` (or ``path/to/file.py:ClassName``) and return the loss names
    it registered. ``if_needed``: do nothing for a plugin this process has loaded already."""
    path, class_name = _split_spec(str(spec))
    key = f"{path}:{class_name or ''}"
    if if_needed and key in _LOADED:
        return list(_LOADED[key])
    label = f"plugin {spec}"
    _check_plugin_path(path, label)
    with registering_from(label) as names:
        module = _import_file(path, label)
        if class_name:
            _register_named_class(module, class_name, label)
    if not names:
        raise user_error(
            f"Loss plugin {spec} registered no loss", label,
            "Decorate a DistillLoss subclass with @register_loss('name'), or name it as "
            "path.py:ClassName")
    _LOADED[key] = list(dict.fromkeys(names))
    return list(_LOADED[key])


def load_entry_point_plugins() -> list[str]:
    """Load every ``kdbench.losses`` entry point once; return the names they registered.

    An entry point may name a module (its import registers losses) or a DistillLoss subclass
    (registered under its ``name`` if its import did not already).
    """
    registered: list[str] = []
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        key = f"entry-point:{entry_point.name}={entry_point.value}"
        if key in _LOADED:
            registered += _LOADED[key]
            continue
        label = _entry_point_label(entry_point)
        with registering_from(label) as names:
            loaded = _load_entry_point(entry_point, label)
            if inspect.isclass(loaded) and not is_loss(getattr(loaded, "name", "")):
                add_loss_class(loaded)
            elif not isinstance(loaded, ModuleType) and not inspect.isclass(loaded):
                raise user_error(
                    f"Loss plugin {label} points at {type(loaded).__name__} {loaded!r}", label,
                    "Point the entry point at a module or at a DistillLoss subclass")
        _LOADED[key] = list(names)
        registered += names
    return registered


def load_plugins(specs: list[str]) -> None:
    """The installed entry-point plugins plus each ``file.py[:Class]`` in ``specs``, each once per
    process (the CLI, every ``--jobs`` worker process and every Ray task call this)."""
    load_entry_point_plugins()
    for spec in specs:
        load_plugin(spec, if_needed=True)


def absolute_spec(spec: str) -> str:
    """The plugin spec with its file path made absolute (for processes in other directories)."""
    path, class_name = _split_spec(spec)
    return f"{path}:{class_name}" if class_name else str(path)


def _split_spec(spec: str) -> tuple[Path, str | None]:
    path_text, sep, class_name = spec.rpartition(":")
    if sep and path_text.endswith(".py") and class_name.isidentifier():
        return Path(path_text).expanduser().resolve(), class_name
    return Path(spec).expanduser().resolve(), None


def _check_plugin_path(path: Path, label: str) -> None:
    if not path.is_file():
        raise user_error(f"Loss plugin file {path} does not exist", label,
                         "Pass the path of a .py file that defines the loss")
    if path.suffix != ".py":
        raise user_error(f"Loss plugin {path} is not a .py file", label,
                         "Pass path/to/file.py (optionally path/to/file.py:ClassName)")


def _module_name(path: Path) -> str:
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    stem = "".join(ch if ch.isalnum() else "_" for ch in path.stem)
    return f"kdbench_plugin_{stem}_{digest}"


def _import_file(path: Path, label: str) -> ModuleType:
    name = _module_name(path)
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except UserError:
        sys.modules.pop(name, None)
        raise
    except Exception as err:
        sys.modules.pop(name, None)
        raise _import_failure(label, err) from err
    return module


def _load_entry_point(entry_point: EntryPoint, label: str):
    try:
        return entry_point.load()
    except UserError:
        raise
    except Exception as err:
        raise _import_failure(label, err) from err


def _import_failure(label: str, err: BaseException) -> UserError:
    message = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return user_error(
        f"Loss {label} failed to import: {type(err).__name__}{': ' + message if message else ''}",
        label, "Fix the plugin (run `python path/to/file.py` to see the full traceback) or "
               "leave it out")


def _register_named_class(module: ModuleType, class_name: str, label: str) -> None:
    cls = getattr(module, class_name, None)
    if not (inspect.isclass(cls) and issubclass(cls, DistillLoss)):
        available = [n for n, obj in vars(module).items()
                     if inspect.isclass(obj) and issubclass(obj, DistillLoss)
                     and obj.__module__ == module.__name__]
        raise user_error(
            f"Loss {label} has no DistillLoss subclass named '{class_name}'", label,
            f"Name one of: {', '.join(available) or 'none defined'}")
    add_loss_class(cls)  # idempotent when the decorator registered it already


def _entry_point_label(entry_point: EntryPoint) -> str:
    dist = getattr(entry_point, "dist", None)
    owner = f" from {dist.name}" if dist is not None and getattr(dist, "name", None) else ""
    return f"plugin entry point '{entry_point.name} = {entry_point.value}'{owner}"
