"""``usdposer limits learn``: per-joint twist ranges and swing cones learned from a dataset's poses, as the JSON file
``usdposer check --limits`` reads (``usdposer.validate.learned``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from usdposer.pipelines._base import Progress, Result


@dataclass(frozen=True)
class LimitsOptions:
    """``quantile``: the tail of the pose distribution dropped; ``pad_deg``: degrees added on each side;
    ``min_poses``: characters with fewer poses stay unlimited; ``splits``: the dataset splits learned from."""

    quantile: float = 0.005
    pad_deg: float = 5.0
    min_poses: int = 20
    splits: tuple[str, ...] = ("train", "val", "heldout")


@dataclass
class LimitsResult(Result):
    output: str
    characters: list = field(default_factory=list)  # {"id", "joints", "poses"}


def learn(dataset: str | os.PathLike, out: str | os.PathLike, options: LimitsOptions = LimitsOptions(),
          progress: Progress | None = None) -> LimitsResult:
    """Learn the limits of every character of ``dataset`` and write them to ``out``."""
    from usdposer.validate.learned import learn_from_dataset, write_limits

    o = options
    data = learn_from_dataset(dataset, quantile=o.quantile, pad_deg=o.pad_deg, min_poses=o.min_poses, splits=o.splits)
    write_limits(data, out)
    return LimitsResult(str(out), [{"id": c["id"], "joints": len(c["joints"]), "poses": c["poses"]}
                                   for c in data["characters"]])
