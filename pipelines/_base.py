"""What every pipeline shares: results that serialise to JSON and the progress callback."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from usdposer.results import Result  # noqa: F401  (every pipeline result mixes it in)

# progress(iterable, desc=..., total=..., unit=...) -> the same items, reporting as they pass (tqdm's signature);
# pipelines call it on the loops a user waits for, and never print.
Progress = Callable[..., Iterable[Any]]


def no_progress(iterable: Iterable[Any] | None = None, **_kw) -> Iterable[Any]:
    """The progress callback that reports nothing."""
    return iterable if iterable is not None else _Null()


class _Null:
    """What ``no_progress(total=...)`` returns: a bar that ignores updates."""

    def update(self, *_a, **_k) -> None: ...

    def set_postfix(self, *_a, **_k) -> None: ...

    def close(self) -> None: ...


def preflight(inputs: list, layer=None, files: list = ()) -> None:
    """Refuse, before anything is loaded, outputs that cannot be written: the USD ``layer`` (a USD extension, not one
    of the ``inputs``, a writable folder) and other output ``files`` (previews, physics layers: writable, not a folder,
    not an input). ``None`` entries are skipped."""
    from pathlib import Path

    from usdposer.errors import InputError
    from usdposer.io.stage import check_output_path
    from usdposer.outputs import check_writable

    ins = [Path(i).resolve() for i in inputs if i is not None]
    if layer is not None:
        check_output_path(layer, [i for i in inputs if i is not None])
    for f in files:
        if f is None:
            continue
        if Path(f).resolve() in ins:
            raise InputError(f"{f}: refusing to overwrite an input; choose another output path")
        if layer is not None and Path(f).resolve() == Path(layer).resolve():
            raise InputError(f"{f}: the same path as the output layer; choose another")
        check_writable(f)
