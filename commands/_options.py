"""Options shared by every verb, defined once."""

from __future__ import annotations

import click

json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
seed_option = click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
device_option = click.option("--device", default="cpu", show_default=True, help="torch device: cpu, cuda, cuda:1 ...")
eta_option = click.option(
    "--eta", type=click.FloatRange(0.0, 1.0), default=None,
    help="Sampler noise: 0 deterministic DDIM, 1 ancestral (DDPM-like). Default: the checkpoint's own "
         "(the shipped pose space: 1, the setting its model card was measured with).")
