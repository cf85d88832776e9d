"""usdposer train"""

from __future__ import annotations

import click
from usdposer.commands._options import count, device_option, json_option, number, seed_option, verbosity_option
from usdposer.commands._output import emit, note, progress

EPILOG = """\b
Examples:
  usdposer train data/poses -o runs/prior --steps 100 --width 32 --depth 2 --batch-size 32
  usdposer train data/poses -o runs/prior --steps 150 --resume --max-minutes 30
  usdposer train data/more -o runs/tiny --steps 20 --width 16 --depth 1 --heads 2 --json

\b
Writes a checkpoint directory: config.json, model.safetensors (EMA weights), README.md
(model card), and training_state.* for --resume. Validation loss uses the dataset's
"val" characters when it has any; "heldout" characters are never read. The checkpoint
stores the plausibility threshold of `usdposer check --checkpoint` (calibrated on the
training poses) and the rotation statistics of `usdposer eval`'s baseline.
"""


@click.command("train", epilog=EPILOG)
@click.argument("dataset", type=click.Path(file_okay=False))
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Checkpoint directory.")
@click.option("--steps", type=count(1, 100_000_000), default=20000, show_default=True)
@click.option("--batch-size", type=count(1, 65_536), default=256, show_default=True)
@click.option("--lr", type=number(0, 1, lo_open=True), default=3e-4, show_default=True)
@click.option("--width", type=count(8, 8192), default=128, show_default=True, help="Transformer width.")
@click.option("--depth", type=count(1, 256), default=4, show_default=True, help="Transformer blocks.")
@click.option("--heads", type=count(1, 256), default=4, show_default=True)
@click.option("--val-every", type=count(1, 100_000_000), default=500, show_default=True)
@click.option("--max-minutes", type=number(0, 1e6, lo_open=True), default=None, help="Stop (and save) after this much wall time.")
@click.option("--resume", is_flag=True, help="Continue from the training state in --out.")
@click.option("--mirror/--no-mirror", default=True, show_default=True,
              help="Also train on left/right mirror images of characters whose reference pose is symmetric.")
@seed_option
@device_option
@json_option
@verbosity_option
def cli(dataset, out, steps, batch_size, lr, width, depth, heads, val_every, max_minutes, resume, mirror, seed, device,
        as_json) -> None:
    """Train the pose-space diffusion model on a DATASET directory (usdposer dataset build)."""
    from usdposer.pipelines.train import TrainOptions, train

    options = TrainOptions(steps=steps, batch_size=batch_size, lr=lr, width=width, depth=depth, heads=heads, seed=seed,
                           val_every=val_every, max_minutes=max_minutes, device=device, mirror=mirror, resume=resume)
    result = train(dataset, out, options, progress=progress("training", quiet=as_json), log=note)
    emit(result, as_json, lambda r: (f"wrote {r.checkpoint}: {r.steps} steps in {r.minutes:.1f} min, train loss "
                                      f"{r.train_loss:.4f}" + (f", val loss {r.val_loss:.4f}" if r.val_loss else "")
                                      + f" (stopped by {r.stopped_by})"))
