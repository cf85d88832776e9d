"""usdposer eval"""

from __future__ import annotations

import click
from usdposer.commands._options import (
    count,
    ddim_steps,
    device_option,
    eta_option,
    json_option,
    noisy_steps_option,
    seed_option,
    verbosity_option,
)
from usdposer.commands._output import emit, progress

EPILOG = """\b
Examples:
  usdposer eval default data/poses -n 64
  usdposer eval runs/prior data/poses -n 64 --steps 20 --json
  usdposer eval runs/prior data/poses -n 64 --card
  usdposer eval default data/poses --seeds 4 --eta 0

\b
CKPT is a checkpoint directory, or "default" for the one shipped with usdposer. Each held-out
character of DATASET is scored for the model and two baselines (independent random rotations
matched to the training angles; rest pose + noise at equal diversity). Distances are mean
per-joint position errors in % of the character's height; lower precision/recall is better.
"""


@click.command("eval", epilog=EPILOG)
@click.argument("ckpt")
@click.argument("dataset", type=click.Path(file_okay=False))
@click.option("-n", "--num", "n", type=count(1, 100_000), default=256, show_default=True, help="Samples per character and method.")
@ddim_steps(12)
@click.option("--card", is_flag=True, help="Append the table to the checkpoint's model card (README.md).")
@click.option("--seeds", type=count(1, 1_000), default=1, show_default=True,
              help="Repeat with seeds SEED..SEED+K-1 and report the mean (and spread) of every number.")
@eta_option
@noisy_steps_option
@seed_option
@device_option
@json_option
@verbosity_option
def cli(ckpt, dataset, n, steps, card, seeds, eta, noisy_steps, seed, device, as_json) -> None:
    """Evaluate pose-space checkpoint CKPT on the held-out characters of DATASET."""
    from usdposer.pipelines.eval import EvalOptions, evaluate

    result = evaluate(ckpt, dataset, EvalOptions(n=n, steps=steps, seed=seed, seeds=seeds, device=device, eta=eta,
                                                 noisy_steps=noisy_steps, card=card), progress=progress("characters", quiet=as_json))
    emit(result, as_json, lambda r: r.table)
