"""Printing results: ``--json`` is a contract (the verb's result ``to_json()`` on stdout); the human summary also goes to
stdout; logs, warnings and progress go to stderr (none of them with ``-q``)."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable

import click

_VERBOSITY = [0]


def set_verbosity(level: int) -> None:
    _VERBOSITY[0] = level


def verbosity() -> int:
    """-1 quiet, 0 normal, 1+ verbose."""
    return _VERBOSITY[0]


def emit(result, as_json: bool, human: Callable[[object], str]) -> None:
    if as_json:
        if hasattr(result, "to_json"):
            data = result.to_json()
        else:
            data = dataclasses.asdict(result) if dataclasses.is_dataclass(result) else result
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        click.echo(human(result))


def warn(message: str) -> None:
    if verbosity() >= 0:
        click.echo(f"warning: {message}", err=True)


def note(message: str) -> None:
    """A line on stderr (progress notes, written files), unless quiet."""
    if verbosity() >= 0:
        click.echo(message, err=True)


def progress(desc: str, unit: str = "it", quiet: bool = False):
    """The pipelines' progress callback: ``progress(iterable, **kw)`` or ``progress(total=N)`` -> a tqdm bar on stderr
    (only on a terminal, never with ``-q`` or ``quiet``, e.g. under ``--json``)."""
    def bar(iterable=None, **kw):
        from tqdm import tqdm

        kw.setdefault("desc", desc)
        kw.setdefault("unit", unit)
        kw.setdefault("leave", False)
        return tqdm(iterable, disable=quiet or verbosity() < 0 or not sys.stderr.isatty(), **kw)

    return bar
