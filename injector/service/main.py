"""Entry point of `sidecar-injector serve`: resolve the flags, set up logging, run."""

from __future__ import annotations

import argparse
import sys

from injector.service.config import ConfigError, load
from injector.service.logs import configure
from injector.service.runner import run


def serve(args: argparse.Namespace) -> int:
    """Run the admission service until it is stopped; returns the process exit code."""
    try:
        config = load(args)
    except ConfigError as exc:
        print(f"sidecar-injector serve: error: {exc}", file=sys.stderr)
        return 2
    configure(config.log_level, config.log_format)
    return run(config)
