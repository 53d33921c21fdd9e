"""`python -m injector.service [flags]`: the same as `sidecar-injector serve [flags]`."""

from __future__ import annotations

import argparse
import sys

from injector.service.config import add_arguments
from injector.service.main import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m injector.service", description="Run the sidecar-injector webhook."
    )
    add_arguments(parser)
    return serve(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
