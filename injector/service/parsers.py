"""The flag values' parsers: text in, a typed value out, ValueError saying what was expected
otherwise. Shared by `serve`'s flags and by the commands that take the same settings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import get_args

from injector.names import DNS1123_LABEL, DNS1123_SUBDOMAIN
from injector.policy import MAX_TEMPLATES, check_profile_name

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


def choice(kind: object) -> Callable[[str], str]:
    """A parser for the values of a Literal type."""
    choices: tuple[str, ...] = get_args(kind)

    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError("expected one of " + ", ".join(choices))
        return text

    return parse


def port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise ValueError("expected a port number from 0 to 65535 (0 picks a free port)")
    return int(text)


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ValueError("expected a positive whole number of bytes")
    return int(text)


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 3600:
        raise ValueError("expected a number of seconds from 0 to 3600")
    return value


def path(text: str) -> Path:
    if not text:
        raise ValueError("expected a path")
    return Path(text)


def optional_path(text: str) -> Path | None:
    return Path(text) if text else None


def host(text: str) -> str:
    if not text or any(c.isspace() for c in text):
        raise ValueError("expected an address such as 0.0.0.0, :: or 127.0.0.1")
    return text


def parse_prefix(text: str) -> str:
    if len(text) > 253 or not DNS1123_SUBDOMAIN.match(text):
        raise ValueError("expected a DNS subdomain such as sidecar-injector.io")
    return text


def parse_names(text: str) -> tuple[str, ...]:
    """Comma-separated DNS-1123 names, without repeats, in their order."""
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    bad = [n for n in names if not DNS1123_LABEL.match(n)]
    if bad:
        raise ValueError(f"{bad[0]!r} is not a DNS-1123 name; expected comma-separated names")
    return names


def parse_profiles(text: str) -> dict[str, tuple[str, ...]]:
    """`name=t1,t2;other=t3` (each --profile flag is one entry) into name → templates."""
    profiles: dict[str, tuple[str, ...]] = {}
    for entry in (e.strip() for e in text.split(";")):
        if not entry:
            continue
        name, equals, names = (part.strip() for part in entry.partition("="))
        if not equals:
            raise ValueError(f"{entry!r} is not NAME=template1,template2")
        problem = check_profile_name(name)
        if problem is not None:
            raise ValueError(problem)
        if name in profiles:
            raise ValueError(f"profile {name!r} is defined twice")
        templates = parse_template_names(names)
        if not templates:
            raise ValueError(f"profile {name!r} names no templates; expected {name}=t1,t2")
        profiles[name] = templates
    return profiles


def parse_template_names(text: str) -> tuple[str, ...]:
    """Template names for one request (a profile, the default set): at most MAX_TEMPLATES."""
    names = parse_names(text)
    if len(names) > MAX_TEMPLATES:
        raise ValueError(f"{len(names)} templates; a pod may request at most {MAX_TEMPLATES}")
    return names


def parse_namespace(text: str) -> str:
    if not DNS1123_LABEL.match(text):
        raise ValueError("expected a namespace name (a DNS-1123 label)")
    return text


def name_set(text: str) -> frozenset[str]:
    return frozenset(parse_names(text))


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered not in _TRUE | _FALSE:
        raise ValueError("expected true or false")
    return lowered in _TRUE
