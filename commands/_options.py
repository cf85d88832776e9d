"""Options shared by every verb, defined once."""

from __future__ import annotations

import click

json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
seed_option = click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")


def _check_device(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from usdposer._deps import check_device

    return check_device(value)


device_option = click.option("--device", default="cpu", show_default=True, callback=_check_device,
                             help="torch device: cpu, cuda, cuda:1 ...")
eta_option = click.option(
    "--eta", type=click.FloatRange(0.0, 1.0), default=None,
    help="Sampler noise: 0 deterministic DDIM, 1 ancestral (DDPM-like). Default: the checkpoint's own "
         "(the shipped pose space: 1, the setting its model card was measured with).")
checkpoint_option = click.option(
    "--checkpoint", default=None, metavar="DIR|default",
    help="Pose-space checkpoint directory, or 'default' for the one shipped with usdposer (the default).")


def _set_verbosity(ctx: click.Context, param: click.Parameter, value: int) -> None:
    from usdposer.commands._output import set_verbosity

    if value:
        set_verbosity(value if param.name == "verbose" else -value)


def verbosity_option(f):
    """``-v/--verbose`` (more detail) and ``-q/--quiet`` (no progress bars, no warnings): the same on every verb."""
    f = click.option("-q", "--quiet", count=True, expose_value=False, callback=_set_verbosity, is_eager=True,
                     help="No progress bars or warnings (errors still print).")(f)
    return click.option("-v", "--verbose", count=True, expose_value=False, callback=_set_verbosity, is_eager=True,
                        help="More detail.")(f)
