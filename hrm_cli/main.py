"""`hrm`: one command line over the same functions the assets call.

Each module in this package with a `register(subparsers)` function adds one area
(`hrm sandbox …`, `hrm polyglot …`, …); heavy imports stay inside the handlers.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import hrm_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hrm", description="HRM-Code: data, training and evaluation tools")
    sub = parser.add_subparsers(dest="area", required=True)
    for info in sorted(pkgutil.iter_modules(hrm_cli.__path__), key=lambda m: m.name):
        if info.name == "main":
            continue
        module = importlib.import_module(f"hrm_cli.{info.name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
