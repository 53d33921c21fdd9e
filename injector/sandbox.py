"""The Jinja environment template expressions run in: Jinja's immutable sandbox, made unable
to build huge strings (pod annotations reach expressions, so no width, count or repetition may
exceed MAX_RENDERED), with Kubernetes' spelling of booleans and None."""

from __future__ import annotations

import operator
import re
import string
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_RENDERED = 64 * 1024
"""Longest string one leaf may render to: a template typo must not build a huge patch."""


def _finalize(value: object) -> object:
    # Kubernetes and YAML spell booleans in lower case; None would otherwise print as "None".
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else value


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox (no `.update()` of the pod or of anything shared), made unable
    to build huge strings: pod annotations reach expressions, so a width, count or repetition
    taken from a pod must not make the webhook allocate gigabytes before the length cap."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "**":
            if isinstance(right, int | float) and abs(right) > 64:
                raise jinja2.exceptions.SecurityError("exponent too large")
            return operator.pow(left, right)
        if operator_ == "%":
            if isinstance(left, str):
                _check_printf(left, right)
            return operator.mod(left, right)
        for seq, count in ((left, right), (right, left)):
            sized = isinstance(seq, str | list | tuple) and isinstance(count, int)
            if sized and len(seq) * count > MAX_RENDERED:
                raise jinja2.exceptions.SecurityError("repetition result too large")
        return operator.mul(left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _check_arguments(__obj, args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Any:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        nested = _check_format_spec(value.__self__)

        def checked(*args: Any, **kwargs: Any) -> Any:
            if nested:  # widths like {:>{}} come from the arguments
                _check_widths((*args, *kwargs.values()))
            return wrapped(*args, **kwargs)

        return checked


def _too_large(what: str) -> jinja2.exceptions.SecurityError:
    return jinja2.exceptions.SecurityError(f"{what} could exceed {MAX_RENDERED} characters")


def _check_arguments(function: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """String methods' widths and counts (ljust, center, zfill, expandtabs, format's nested
    widths, ...) and replacements; other calls (e.g. `.get(key, 100000)`) are not limited."""
    target = getattr(function, "__self__", None)
    if not isinstance(target, str):
        return
    _check_widths((*args, *kwargs.values()))
    if getattr(function, "__name__", "") == "replace":
        _check_replace(target, *args[:2])


def _check_widths(values: tuple[Any, ...]) -> None:
    for value in values:
        if isinstance(value, int) and abs(value) > MAX_RENDERED:
            raise _too_large(f"argument {value}")


def _check_replace(text: str, old: Any = "", new: Any = "") -> None:
    if not (isinstance(old, str) and isinstance(new, str)):
        return
    if len(text) + (text.count(old) if old else len(text) + 1) * len(new) > MAX_RENDERED:
        raise _too_large("replace()")


_PRINTF_WIDTH = re.compile(r"%[#0 +\-]*(\*|\d+)?(?:\.(\*|\d+))?")
_DIGITS = re.compile(r"\d+")


def _check_printf(template: str, args: Any) -> None:
    for match in _PRINTF_WIDTH.finditer(template):
        for number in match.groups():
            if number and number != "*" and int(number) > MAX_RENDERED:
                raise _too_large(f"format width {number}")
    if "*" in template:  # a width or precision taken from the arguments
        _check_widths(args if isinstance(args, tuple) else (args,))


def _check_format_spec(template: Any) -> bool:
    """Refuse huge literal widths; whether some width is a nested field."""
    if not isinstance(template, str):
        return False
    nested = False
    for _, _, spec, _ in string.Formatter().parse(template):
        nested = nested or "{" in (spec or "")
        for number in _DIGITS.findall(spec or ""):
            if int(number) > MAX_RENDERED:
                raise _too_large(f"format width {number}")
    return nested


def _guarded_filters(filters: dict[str, Any]) -> None:
    """The filters that pad, indent, format or replace, with the same limits as methods."""
    center, indent, format_, replace = (
        filters[n] for n in ("center", "indent", "format", "replace")
    )

    def guarded_center(value: Any, width: int = 80) -> Any:
        _check_widths((width,))
        return center(value, width)

    def guarded_indent(value: Any, width: Any = 4, *args: Any, **kwargs: Any) -> Any:
        size = len(width) if isinstance(width, str) else width
        if isinstance(size, int) and size * (str(value).count("\n") + 1) > MAX_RENDERED:
            raise _too_large("indent")
        return indent(value, width, *args, **kwargs)

    def guarded_format(value: Any, *args: Any, **kwargs: Any) -> Any:
        _check_printf(str(value), args)
        return format_(value, *args, **kwargs)

    replace_needs_context = getattr(replace, "jinja_pass_arg", None)

    def guarded_replace(ctx: Any, value: Any, old: Any, new: Any, count: Any = None) -> Any:
        _check_replace(str(value), old, new)
        return replace(ctx, value, old, new, count)

    guarded_replace.jinja_pass_arg = replace_needs_context  # type: ignore[attr-defined]
    filters.update(
        center=guarded_center, indent=guarded_indent, format=guarded_format, replace=guarded_replace
    )


ENVIRONMENT = _Sandbox(
    undefined=jinja2.StrictUndefined,
    finalize=_finalize,
    autoescape=False,
    keep_trailing_newline=True,
)
_guarded_filters(ENVIRONMENT.filters)
