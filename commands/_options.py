"""Options shared by every verb, defined once."""

from __future__ import annotations

import click


class Number(click.ParamType):
    """A finite float (``nan`` and ``inf`` refused: click's FLOAT and FloatRange accept them), optionally in a range;
    ``lo_open``/``hi_open`` exclude the ends."""

    name = "float"

    def __init__(self, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
                 hi_open: bool = False):
        self.lo, self.hi, self.lo_open, self.hi_open = lo, hi, lo_open, hi_open

    def convert(self, value, param, ctx):
        import math

        if isinstance(value, float):
            v = value
        else:
            try:
                v = float(value)
            except (TypeError, ValueError):
                self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(v):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        low_bad = self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo)
        high_bad = self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi)
        if low_bad or high_bad:
            self.fail(f"{value} is not in {self._range()}", param, ctx)
        return v

    def _range(self) -> str:
        lo = "-inf" if self.lo is None else f"{self.lo:g}"
        hi = "inf" if self.hi is None else f"{self.hi:g}"
        return f"{'(' if self.lo_open or self.lo is None else '['}{lo}, {hi}{')' if self.hi_open or self.hi is None else ']'}"

    def get_metavar(self, param, ctx=None) -> str:
        return "FLOAT" if self.lo is None and self.hi is None else f"FLOAT {self._range()}"


def number(lo: float | None = None, hi: float | None = None, **kw) -> Number:
    """A finite float option type in [lo, hi] (see Number)."""
    return Number(lo, hi, **kw)


def count(lo: int = 1, hi: int = 1_000_000) -> click.IntRange:
    """A whole-number option type in [lo, hi]: counts are never negative, and an absurd one is refused up front."""
    return click.IntRange(lo, hi)


# DDIM steps: at most one per noise level the pose space was trained with (``models.pose_prior.SCHEDULER``'s
# ``num_train_timesteps``; a test keeps the two equal). The CLI's range, so `sample --steps 5000` is refused up front.
DDIM_STEPS = 1_000


def ddim_steps(default: int, help: str = "DDIM steps."):
    """The ``--steps`` option of the pose-space verbs: 1 to :data:`DDIM_STEPS`."""
    return click.option("--steps", type=count(1, DDIM_STEPS), default=default, show_default=True, help=help)


json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
seed_option = click.option("--seed", type=count(0, 2 ** 63 - 1), default=0, show_default=True,
                           help="Random seed (0 to 2^63-1).")


def _check_device(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from usdposer._deps import check_device

    return check_device(value)


device_option = click.option("--device", default="cpu", show_default=True, callback=_check_device,
                             help="torch device: cpu, cuda, cuda:1 ...")
eta_option = click.option(
    "--eta", type=Number(0.0, 1.0), default=None,
    help="Sampler noise: 0 deterministic DDIM, 1 ancestral (DDPM-like). Default: the checkpoint's own "
         "(the shipped pose space: 1, the setting its model card was measured with).")
noisy_steps_option = click.option(
    "--noisy-steps", type=count(0, 10_000), default=1, show_default=True,
    help="With --eta > 0, only the first this many steps add noise; the rest are deterministic, and the codes are "
         "the state after them inverted back (cheap). At least --steps: every step, the codes a full inversion.")
checkpoint_option = click.option(
    "--checkpoint", default=None, metavar="DIR|default",
    help="Pose-space checkpoint directory, or 'default' for the one shipped with usdposer (the default).")


def frames_spec(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Callback for ``--frames`` selections: the syntax checked before anything is loaded."""
    from usdposer.core.selection import check_frames_spec
    from usdposer.errors import InputError

    try:
        return check_frames_spec(value, "--" + param.name.replace("_", "-"))
    except InputError as exc:
        raise click.BadParameter(str(exc).split(": ", 1)[-1], ctx, param) from None


def plausibility_value(ctx: click.Context, param: click.Parameter, value: str | None) -> float | str | None:
    """Callback for ``--plausibility``: a positive finite prior score, or "calibrated" (the checkpoint's threshold)."""
    from usdposer.errors import InputError

    if value is None or value == "calibrated":
        return value
    try:
        score = float(value)
    except ValueError:
        raise InputError(f"--plausibility {value!r}: a prior score (e.g. 0.4) or 'calibrated'") from None
    if not score == score or score <= 0 or score == float("inf"):
        raise InputError(f"--plausibility {score}: a positive finite prior score, or 'calibrated'")
    return score


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

