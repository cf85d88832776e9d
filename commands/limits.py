"""usdposer limits"""

from __future__ import annotations

import click
from usdposer.commands._options import count, json_option, number, verbosity_option
from usdposer.commands._output import emit

EPILOG = """\b
Examples:
  usdposer limits learn data/default -o limits.json
  usdposer limits learn data/mine -o limits.json --quantile 0.01 --pad 10
  usdposer check walk.usdc --limits limits.json
"""


@click.group("limits", epilog=EPILOG)
def cli() -> None:
    """Joint limits learned from data (swing-twist form), for `usdposer check --limits`."""


@cli.command("learn", epilog=EPILOG)
@click.argument("dataset", type=click.Path(file_okay=False))
@click.option("-o", "--out", type=click.Path(dir_okay=False), required=True, help="Output JSON file.")
@click.option("--quantile", type=number(0, 0.5, hi_open=True), default=0.005, show_default=True, help="Tail of the pose distribution dropped.")
@click.option("--pad", "pad_deg", type=number(0, 180), default=5.0, show_default=True, help="Degrees added on each side.")
@click.option("--min-poses", type=count(1, 10_000_000), default=20, show_default=True, help="Characters with fewer poses stay unlimited.")
@click.option("--splits", default="train,val,heldout", show_default=True, help="Dataset splits to learn from.")
@json_option
@verbosity_option
def learn(dataset, out, quantile, pad_deg, min_poses, splits, as_json) -> None:
    """Learn per-joint twist ranges and swing cones of every character in DATASET."""
    from usdposer.pipelines.limits import LimitsOptions
    from usdposer.pipelines.limits import learn as run

    result = run(dataset, out, LimitsOptions(quantile=quantile, pad_deg=pad_deg, min_poses=min_poses,
                                             splits=tuple(s.strip() for s in splits.split(",") if s.strip())))
    emit(result, as_json, lambda r: f"wrote {r.output}: limits of {len(r.characters)} characters "
                                    f"({sum(c['poses'] for c in r.characters)} poses)")
