"""Results that serialise to JSON: every verb's result dataclass mixes in :class:`Result`, whose ``to_json()`` is the
``--json`` contract (dataclasses, paths, tensors and numpy values made JSON-ready; NaN as null). Base rank: no
dependencies, so that ``usdposer.io`` reports and ``usdposer.pipelines`` results share it."""

from __future__ import annotations

import dataclasses
from pathlib import Path


def _jsonable(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    if hasattr(value, "tolist"):  # numpy / torch scalars and arrays
        return _jsonable(value.tolist())
    return value


class Result:
    """Mixin of every pipeline's result dataclass: ``to_json()`` is the ``--json`` contract."""

    def to_json(self) -> dict:
        return _jsonable(self)

