"""``usdposer train``: the pose-space diffusion model trained on a dataset directory (``usdposer.models.training``),
written as a checkpoint with its model card, calibrated plausibility threshold and baseline statistics."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass

from usdposer.pipelines._base import Progress


@dataclass(frozen=True)
class TrainOptions:
    """The ``usdposer.models.training.TrainConfig`` of a run; ``resume`` continues from the training state in the
    checkpoint directory."""

    steps: int = 20000
    batch_size: int = 256
    lr: float = 3e-4
    width: int = 128
    depth: int = 4
    heads: int = 4
    seed: int = 0
    val_every: int = 500
    max_minutes: float | None = None
    device: str = "cpu"
    mirror: bool = True
    resume: bool = False


def train(dataset: str | os.PathLike, out: str | os.PathLike, options: TrainOptions = TrainOptions(),
          progress: Progress | None = None, log: Callable[[str], None] = lambda _m: None):
    """Train (or resume) a pose space; returns the ``usdposer.models.training.TrainResult``."""
    from usdposer.errors import InputError

    if options.width % options.heads:
        raise InputError(f"--width {options.width} does not split into --heads {options.heads} equal heads; pass a "
                         f"width divisible by it, e.g. --width {max(1, options.width // options.heads) * options.heads}")
    from usdposer.models.cards import model_card
    from usdposer.models.training import TrainConfig
    from usdposer.models.training import train as run

    fields = {k: v for k, v in asdict(options).items() if k != "resume"}
    return run(dataset, out, TrainConfig(**fields), resume=options.resume, progress=progress, log=log,
               card=lambda prior, res: model_card(prior, res, str(dataset)))
