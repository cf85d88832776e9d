"""``usdposer eval``: a pose space on the held-out characters of a dataset, against two baselines, as one table
(``usdposer.models.evaluation``); ``card`` writes it into the checkpoint's model card."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from usdposer.pipelines._base import Progress, Result


@dataclass(frozen=True)
class EvalOptions:
    """``n`` samples per character and method with ``steps`` DDIM steps; ``seeds``: repeat with seeds
    ``seed..seed+seeds-1`` and report means and spreads; ``eta`` None: the checkpoint's own, in the first
    ``noisy_steps`` steps (None: all; the defaults are ``usdposer sample``'s, so the table measures what it writes);
    ``card``: write the table into the checkpoint's README.md."""

    n: int = 256
    steps: int = 12
    noisy_steps: int | None = 1
    seed: int = 0
    seeds: int = 1
    device: str = "cpu"
    eta: float | None = None
    card: bool = False


@dataclass
class EvalResult(Result):
    """The rows (``usdposer.models.evaluation.EvalRow``), the Markdown table, and the card written (if any)."""

    rows: list = field(default_factory=list)
    table: str = ""
    card: str | None = None

    def to_json(self) -> dict:
        return {"rows": Result.to_json(self)["rows"], "card": self.card}


def evaluate(checkpoint: str | None, dataset: str | os.PathLike, options: EvalOptions = EvalOptions(),
             progress: Progress | None = None) -> EvalResult:
    """Evaluate ``checkpoint`` (None or "default": the shipped one) on ``dataset``'s held-out characters."""
    from usdposer.models.evaluation import card_notes, format_table
    from usdposer.models.evaluation import evaluate as run
    from usdposer.models.pose_prior import checkpoint_dir

    o = options
    rows = run(checkpoint, str(dataset), n=o.n, steps=o.steps, seed=o.seed, seeds=o.seeds, device=o.device, eta=o.eta,
               noisy_steps=o.noisy_steps, progress=progress)
    result = EvalResult(rows, format_table(rows))
    if o.card:
        from usdposer.io.stage import atomic_path

        readme = checkpoint_dir(checkpoint) / "README.md"
        text = readme.read_text() if readme.exists() else ""
        marker = "## Evaluation on held-out characters"
        text = text.split(marker)[0].rstrip() + f"\n\n{marker}\n\n{result.table}\n\n{card_notes(rows, o.n, o.steps)}\n"
        with atomic_path(readme) as tmp:
            tmp.write_text(text)
        result.card = str(readme)
    return result
