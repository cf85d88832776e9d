"""Neural parts of usdposer (pose denoiser, pose prior, guidance, video SDS, training), installed as
``usdposer.models``. A named registry lets configs pick parts by name; registration only fills a dict, so importing
this package stays light."""

from __future__ import annotations

from collections.abc import Callable

_REGISTRY: dict[str, Callable] = {}


def register(name: str) -> Callable[[Callable], Callable]:
    """Decorator: ``@register("pose-dit")`` makes a class or factory findable by name."""

    def deco(obj: Callable) -> Callable:
        if name in _REGISTRY and _REGISTRY[name] is not obj:
            raise ValueError(f"model part {name!r} is already registered")
        _REGISTRY[name] = obj
        return obj

    return deco


def find(name: str) -> Callable:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model part {name!r}; registered: {', '.join(sorted(_REGISTRY)) or 'none'}") from None
