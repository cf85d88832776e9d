"""usdposer info"""

from __future__ import annotations

import click
from usdposer.commands._options import json_option
from usdposer.commands._output import emit

EPILOG = """\b
Examples:
  usdposer info fox.usdc
  usdposer info fox.usdc --json
  usdposer info fox.usdc --no-tree

Exits 2 (after printing the report) when the asset has errors that make it unusable.
"""


@click.command("info", epilog=EPILOG)
@click.argument("asset", type=click.Path(dir_okay=False))
@click.option("--tree/--no-tree", default=True, help="Print the joint tree.")
@json_option
def cli(asset: str, tree: bool, as_json: bool) -> None:
    """Skeletons, joint count and tree, meshes, influences, clips, units and problems of a USD ASSET."""
    from usdposer.errors import RigError
    from usdposer.info import asset_info, format_info

    info = asset_info(asset)
    emit(info, as_json, lambda i: format_info(i, tree))
    if info.errors:
        first = info.errors[0]
        more = f" (+{len(info.errors) - 1} more)" if len(info.errors) > 1 else ""
        raise RigError(f"{asset}: {first['prim']}: {first['message']}{more}")
