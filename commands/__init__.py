"""The ``usdposer`` command line: a click group whose verbs load lazily (``usdposer --help`` imports no torch,
warp, newton, diffusers or pxr). One file per verb; each only parses, calls the library and prints."""

from __future__ import annotations

import importlib
import sys

import click

from usdposer._version import __version__

# verb -> "module:attribute" (module relative to usdposer.commands)
VERBS = {
    "info": ("info:cli", "Skeletons, joints, meshes, skins, clips, units and problems of a USD asset."),
    "import": ("import_:cli", "Convert glTF/GLB, BVH or MuJoCo MJCF to UsdSkel (skins, clips, joint limits)."),
    "rig": ("rig:cli", "Auto-rigging: embed a template skeleton into a bare mesh (Pinocchio), then bone heat."),
    "skin": ("skin:cli", "Bone-heat skinning weights for meshes that have a skeleton but no weights."),
    "fit": ("fit:cli", "Fit per-frame skeleton poses to a mesh or point-cloud sequence (Chamfer + edge length)."),
    "dataset": ("dataset:cli", "Build pose datasets from USD, glTF, BVH and MJCF files."),
    "train": ("train:cli", "Train the pose-space diffusion model on a dataset."),
    "sample": ("sample:cli", "Sample plausible poses of a rig into a USD layer (+ contact sheet)."),
    "eval": ("eval:cli", "Evaluate a pose space on held-out characters against two baselines."),
    "invert": ("invert:cli", "DDIM-invert an animation's poses into latent codes (+ reconstruction error)."),
    "interpolate": ("interpolate:cli", "Interpolate between two poses along the pose manifold."),
    "ik": ("ik:cli", "IK on the manifold: guided sampling under sparse joint handles, stored as constraints."),
    "distill": ("distill:cli", "AKD: distill an animation from a video diffusion model by SDS (Gaussians + ground)."),
    "generate": ("generate:cli", "A video of a rigged character from a video model (image-to-video or pose-guided)."),
    "harvest": ("harvest:cli", "ViPS data engine: generate -> fit --video (or distill -> track) -> dataset, resumable."),
    "track": ("track:cli", "Physics tracking: the nearest motion a body can perform (Newton), + UsdPhysics layer."),
    "render": ("render:cli", "Pictures: contact sheets, turntables, videos and keyframe proxies (CPU rasteriser)."),
    "batch": ("batch:cli", "Many assets through several verbs: a local process pool, or Ray (--ray) on a cluster."),
    "check": ("check:cli", "Validate rigs and animations for CI (text, JSON, JUnit; exit 0/1/2)."),
    "limits": ("limits:cli", "Learn joint limits (swing-twist) from a dataset for `check --limits`."),
}


class LazyGroup(click.Group):
    """A group that imports a verb's module only when that verb runs (or its own --help is asked for)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(VERBS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in VERBS:
            return None
        module, attr = VERBS[name][0].split(":")
        return getattr(importlib.import_module(f"usdposer.commands.{module}"), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, VERBS[name][1]) for name in self.list_commands(ctx)])


EPILOG = """\b
Examples:
  usdposer import assets/khronos/Fox.glb -o fox.usdc
  usdposer info fox.usdc
  usdposer info fox.usdc --json
  usdposer sample fox.usdc -n 16 --preview fox.png

Exit codes: 0 ok, 1 checks failed, 2 bad input or usage, 3 missing optional dependency or device,
4 internal error (a bug; -v prints the traceback). Errors are one line on stderr; a failed command
writes nothing.
"""


@click.group(cls=LazyGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="usdposer")
def cli() -> None:
    """usdposer: plausible poses and animations for any rigged UsdSkel character."""


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _usage_line(exc: click.ClickException) -> str:
    """A click usage error on one line: the message and where the help is (click prints usage + a blank line)."""
    ctx = getattr(exc, "ctx", None)
    where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    return f"error: {_one_line(exc.format_message())}{where}"


def main(argv: list[str] | None = None) -> None:
    """Console entry point: runs one verb inside an output transaction (all of its files are committed together or
    not at all) and maps every failure to one line on stderr and an exit code: 2 bad input or usage (also a file
    that cannot be read or written), 3 a missing optional dependency or device, 4 an internal error (a bug:
    ``-v`` prints the traceback)."""
    from usdposer.errors import Interrupted, UsdPoserError
    from usdposer.outputs import transaction

    try:
        with transaction():
            cli.main(args=argv, prog_name="usdposer", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("interrupted: nothing was written", err=True)
        sys.exit(130)
    except Interrupted as exc:  # Ctrl-C where the verb kept its work so far: what, and how to go on
        click.echo(f"interrupted {_one_line(exc)}", err=True)
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        click.echo(_usage_line(exc), err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(f"error: {_one_line(exc.format_message())}", err=True)
        sys.exit(exc.exit_code)
    except UsdPoserError as exc:
        click.echo(f"error: {_one_line(exc)}", err=True)
        sys.exit(exc.exit_code)
    except OSError as exc:  # a file that cannot be read or written: the user's to fix, not a bug
        what = f"{exc.filename}: " if exc.filename else ""
        click.echo(f"error: {what}{_one_line(exc.strerror or exc)}; check the path and its permissions "
                   "(nothing was written)", err=True)
        sys.exit(2)
    except MemoryError:
        click.echo("error: out of memory; use fewer samples, frames or a smaller --size", err=True)
        sys.exit(2)
    except Exception as exc:  # a bug: one line, the traceback with -v
        from usdposer.commands._output import verbosity

        if verbosity() > 0:
            import traceback

            traceback.print_exc()
        click.echo(f"error: internal error ({type(exc).__name__}: {_one_line(exc)[:300]}); nothing was written; "
                   "rerun with -v for the traceback and report it", err=True)
        sys.exit(4)
    sys.exit(0)
