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
