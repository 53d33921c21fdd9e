"""Typed errors and the closed set of reasons that become metric labels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

ErrorReason = Literal[
    "template_not_found",
    "template_load_failed",
    "invalid_parameter",
    "conflict",
    "render_failed",
    "no_default_templates",
    "invalid_pod",
    "profile_not_found",
    "namespace_not_allowed",
    "parameter_locked",
    "too_many_templates",
]
"""Why an injection could not be done as requested."""

SkipReason = Literal[
    "not_pod",
    "not_create",
    "excluded_namespace",
    "not_requested",
    "already_injected",
]
"""Why a request was admitted without looking at any template."""

ERROR_REASONS: tuple[ErrorReason, ...] = get_args(ErrorReason)
SKIP_REASONS: tuple[SkipReason, ...] = get_args(SkipReason)


@dataclass(frozen=True, slots=True)
class InjectionError:
    """A problem with one pod and one template; the message tells the user what to fix."""

    reason: ErrorReason
    message: str
    template: str | None = None

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, slots=True)
class LoadError:
    """A problem found while loading a template file: where it is and what is wrong."""

    file: str
    message: str
    path: str = ""
    line: int | None = None

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        field = f" {self.path}:" if self.path else ""
        return f"{where}:{field} {self.message}"
