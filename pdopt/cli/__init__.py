"""The `pdopt` command line: a thin layer over the library (docs/cli.md).

Each command lives in its own module and is registered here, imported only when it runs (or
`--help` lists it); shared options, error handling and output rendering are in
`pdopt.cli.common`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import click

from pdopt.cli.common import main


def _command(module: str, name: str) -> Callable[[], click.Command]:
    def load() -> click.Command:
        command: click.Command = getattr(importlib.import_module(f"pdopt.cli.{module}"), name)
        return command
    return load


def _profile() -> click.Command:
    from pdopt.cli.profile import profile
    from pdopt.cli.profile_estimate import aiconfigurator, estimate, gpus_, models_

    for command in (estimate, aiconfigurator, gpus_, models_):
        profile.add_command(command)
    return profile


for _name, _load in {
    "ratio": _command("ratio", "ratio"),
    "check": _command("check", "check"),
    "schema": _command("check", "schema"),
    "solve": _command("solve", "solve"),
    "profile": _profile,
    "batch": _command("batch", "batch"),
    "simulate": _command("simulate", "simulate"),
    "verify": _command("simulate", "verify"),
    "report": _command("report", "report"),
    "export": _command("export", "export"),
}.items():
    main.add_lazy_command(_name, _load)

__all__ = ["main"]
