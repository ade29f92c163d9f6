"""Command-line values converted without pydantic: the plain cases of typer's converters, done in Python.

Recent typer (0.2x) builds a pydantic ``TypeAdapter`` for every parameter of the command that runs, the first
time a value of it is converted; importing pydantic and building the adapters cost a ``timetag process`` on a
small file about a third of its wall time.  :func:`install` gives each parameter of a command a converter that
handles the values a command line gives for the types timetag's commands use (str, int, float, Path and lists of
them, without custom parsers) the way typer's adapter does, and hands every other value, and every value it would
reject, to typer's own converter, built then: the results and the error messages stay typer's.
tests/cli/test_startup.py compares both on generated values and checks that a run imports no pydantic.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import get_args, get_origin

try:    # typer's converters of 0.2x; older typer converts through click types, and there is nothing to do
    from typer._coercion import RuntimeParam, build_runtime_param
    from typer._param_types import coerce_cli_path
except ImportError:   # pragma: no cover - depends on the installed typer
    RuntimeParam = None

# what pydantic's lax int/float accept from a string, narrowed to the spellings whose value is plainly Python's
# int()/float() of it (pydantic also takes '1_000', ' 5', '1.0' for an int, ...: those go to typer's converter)
_INT = re.compile(r"-?(?:0|[1-9][0-9]{0,17})")
_FLOAT = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]{1,3})?")


class _Unsure(Exception):
    """A value the plain converter does not vouch for: typer's converter decides."""


def _number(value, kind: type, pattern, info):
    if type(value) is kind or (kind is float and type(value) is int):
        number = kind(value)
    elif type(value) is str and pattern.fullmatch(value):
        number = kind(value)
    else:
        raise _Unsure
    below = info.min is not None and number < info.min
    if not math.isfinite(number) or below or (info.max is not None and number > info.max):
        raise _Unsure   # typer says why (its message names the bound)
    return number


def _leaf(annotation, info, value, param, ctx):
    if annotation is str:
        if type(value) is not str:
            raise _Unsure
        return value
    if annotation is int:
        return _number(value, int, _INT, info)
    if annotation is float:
        return _number(value, float, _FLOAT, info)
    if annotation is Path:
        if type(value) is str:
            value = Path(value)   # what pydantic's Path makes of a str
        elif not isinstance(value, Path):
            raise _Unsure
        try:   # typer's own checks (exists=..., readable=...): they need no pydantic once the value is a Path
            return coerce_cli_path(value, info, path_type=Path, param=param, ctx=ctx)
        except Exception:
            raise _Unsure from None   # said by typer's converter, from the value as given
    raise _Unsure


_LEAVES = (str, int, float, Path)


def plain(annotation, info) -> bool:
    """Whether values of this parameter can be converted here (else typer converts them all)."""
    if info.parser is not None or getattr(info, "clamp", False):
        return False
    if get_origin(annotation) is list:
        (annotation,) = get_args(annotation)
    if annotation is Path:
        return info.path_type is None
    return annotation in _LEAVES


if RuntimeParam is not None:
    class _PlainParam(RuntimeParam):
        """typer's RuntimeParam (None and multi-value rules) with the plain conversion, typer's as the fallback."""

        def __init__(self, descriptor):
            super().__init__(parameter_info=descriptor.parameter_info, annotation=descriptor.annotation)
            object.__setattr__(self, "descriptor", descriptor)

        def _coerce_value(self, value, param, ctx):
            annotation, info = self.annotation, self.parameter_info
            try:
                if get_origin(annotation) is list:
                    (leaf,) = get_args(annotation)
                    items = value if isinstance(value, (list, tuple)) else [value]
                    return [_leaf(leaf, info, item, param, ctx) for item in items]
                return _leaf(annotation, info, value, param, ctx)
            except _Unsure:
                return build_runtime_param(self.descriptor)._coerce_value(value, param, ctx)


def install(params: list) -> list:
    """Give each parameter of ``params`` whose converter typer has not built yet the plain one, where it fits."""
    if RuntimeParam is None:
        return params
    for p in params:
        descriptor = getattr(p, "type_descriptor", None)
        if descriptor is None or getattr(p, "_runtime_param", False) is not None:
            continue
        if descriptor.file_annotation is None and plain(descriptor.annotation, descriptor.parameter_info):
            p._runtime_param = _PlainParam(descriptor)
    return params
