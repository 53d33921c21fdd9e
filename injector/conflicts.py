"""Name clashes between a template and the pod (or another template in the same request)."""

from __future__ import annotations

from injector.errors import InjectionError
from injector.template import Template
from injector.types import Obj

POD = ""  # owner of names the pod itself declares


class Taken:
    """Container and volume names already in use, and who uses them. (A plain class: one is
    built per review, and a dataclass's generated __init__ costs more.)"""

    __slots__ = ("containers", "volumes")

    def __init__(self, containers: dict[str, str], volumes: dict[str, str]) -> None:
        self.containers = containers
        self.volumes = volumes

    @classmethod
    def from_spec(cls, spec: Obj) -> Taken:
        containers: dict[str, str] = {}
        for key in ("containers", "initContainers", "ephemeralContainers"):
            for container in spec.get(key) or ():
                containers[container.get("name")] = POD
        volumes: dict[str, str] = {}
        for volume in spec.get("volumes") or ():
            volumes[volume.get("name")] = POD
        return cls(containers, volumes)

    def check(self, template: Template) -> list[InjectionError]:
        """Every clash the template would cause; empty means it can be claimed."""
        clashes: list[InjectionError] = []
        # Loops, not comprehensions: this runs for every template of every review.
        for kind, names, taken in (
            ("container", template.all_container_names, self.containers),
            ("volume", template.volume_names, self.volumes),
        ):
            for name in names:
                if name in taken:
                    clashes.append(_conflict(template.name, kind, name, taken[name]))
        return clashes

    def claim(self, template: Template) -> None:
        for name in template.all_container_names:
            self.containers[name] = template.name
        for name in template.volume_names:
            self.volumes[name] = template.name


def _conflict(template: str, kind: str, name: str, owner: str) -> InjectionError:
    if owner == POD:
        fix = f"the pod already has a {kind} named {name!r}; rename the pod's {kind}"
    else:
        fix = f"template {owner!r}, requested before it, adds a {kind} of that name too"
    return InjectionError(
        "conflict", f"template {template!r} adds {kind} {name!r}, but {fix}", template
    )
