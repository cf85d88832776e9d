"""Printing results: ``--json`` is a contract (``dataclasses.asdict`` of the verb's result on stdout); the human
summary also goes to stdout; logs and progress go to stderr."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

import click


def emit(result, as_json: bool, human: Callable[[object], str]) -> None:
    if as_json:
        data = dataclasses.asdict(result) if dataclasses.is_dataclass(result) else result
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        click.echo(human(result))


def warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)
