"""Kubernetes name formats shared by template validation and flag parsing."""

from __future__ import annotations

import re

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
"""Container, volume and template names: lower-case alphanumerics and '-', at most 63."""
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
"""Annotation prefixes and namespaces of label keys (check the 253-character limit apart)."""
