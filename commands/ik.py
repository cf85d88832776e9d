"""usdposer ik"""

from __future__ import annotations

import sys

import click
from usdposer.commands._options import (
    checkpoint_option,
    count,
    ddim_steps,
    device_option,
    json_option,
    number,
    seed_option,
    verbosity_option,
)
from usdposer.commands._output import emit, progress, warn

EPILOG = """\b
Examples:
  usdposer ik fox.usdc --handle b_Head_05=0,60,40 --preview ik.png
  usdposer ik fox.usdc --from 12 --handle b_LeftHand_011=7,20,30:2 --pin b_RightFoot02_022
  usdposer ik fox.usdc --from 12 --handle b_Head_05=-10,45,45 --frames 12 --keyframes 3 --json
  usdposer ik --replay fox.ik.usdc -o fox.replay.usdc
  echo '{"out": "a.usdc", "handles": ["b_Head_05=0,60,40"]}' | usdposer ik fox.usdc --serve

\b
Targets are world positions in the stage's units and up axis (the Fox is
about 80 units tall); :WEIGHT scales a
handle. --from edits an existing pose (a time code, sample:I or rest) after
DDIM inversion; without it one candidate edits the rest pose (its joints
outside the rig's range brought inside first) and the others are sampled
from noise, grounded. Each denoising step is nudged down the
energy (handles, pins, joint limits, ground); the most plausible candidate
that reaches every handle is written (of candidates whose prior scores are
within the score's own noise, the one with the fewest joints outside the
rig's range: its limits, or else the range of its own animation).
The layer holds SkelAnimation <Skeleton>/usdposerIK (bound), the candidates
with their latent codes and prior scores (<Skeleton>/IKCandidates) and the
handles as IKHandleAPI constraint prims (<Skeleton>/IKHandles), which
--replay LAYER reads to re-run the edit.

\b
--serve keeps the rig and the model loaded for a DCC plug-in or a script:
one JSON request per line on stdin ("out" required; "handles", "pins",
"from", "seed", "n", "steps", "strength", "frames", "keyframes",
"preview", "anim" optional, the others from the command line), one JSON
answer per line on stdout (the --json report, or "error" and "exit_code"
for a refused request, which writes nothing). It ends at end of input.
"""


@click.command("ik", epilog=EPILOG)
@click.argument("asset", type=click.Path(dir_okay=False), required=False)
@click.option("--handle", "handles", multiple=True, help="JOINT=x,y,z[:weight] (repeat for more handles).")
@click.option("--pin", "pins", multiple=True, help="Keep JOINT where it is in the start pose (repeatable).")
@click.option("--from", "pose_from", default=None, help="Start pose to edit: TIME, sample:I or rest.")
@click.option("--replay", type=click.Path(dir_okay=False), default=None, help="Re-run the edit stored in an ik layer.")
@click.option("--serve", is_flag=True, help="Answer JSON requests from stdin, one per line, loading once.")
@click.option("-n", "--num", "n", type=count(1, 10_000), default=4, show_default=True, help="Candidates to sample.")
@click.option("--frames", type=count(1, 100_000), default=1, show_default=True, help="Write the path from the start pose (>1).")
@click.option("--keyframes", type=count(0, 100_000), default=0, show_default=True, help="Mark K evenly spaced keyframes.")
@click.option("--strength", type=number(0, 1, lo_open=True), default=None, help="Share of the noise schedule re-run when editing a pose (default 0.8).")
@click.option("-o", "--out", type=click.Path(dir_okay=False), default=None, help="Output layer (.usdc/.usda).")
@click.option("--anim", default=None, help="SkelAnimation --from refers to (default: the bound one).")
@checkpoint_option
@ddim_steps(10, "DDIM steps of guided sampling (10 reach the handles as well as 50 in bench/ik.py, 4x faster).")
@click.option("--skeleton", default=None, help="Skeleton prim path or name (default: the first).")
@click.option("--preview", type=click.Path(dir_okay=False), default=None, help="Write a PNG of the candidates here.")
@seed_option
@device_option
@json_option
@verbosity_option
def cli(asset, handles, pins, pose_from, replay, serve, n, frames, keyframes, strength, out, anim, checkpoint, steps,
        skeleton, preview, seed, device, as_json) -> None:
    """Pose ASSET's rig so that joints reach target positions, staying on the pose manifold."""
    from usdposer.pipelines.ik import IKOptions, ik
    from usdposer.pipelines.ik import replay as replay_ik

    from usdposer.core.ik import parse_handle
    from usdposer.core.selection import default_output
    from usdposer.errors import InputError

    bar = progress("guided sampling", quiet=as_json)
    if serve:
        _serve(asset, replay, out, IKOptions(handles=tuple(parse_handle(h) for h in handles), pins=tuple(pins),
                                             pose_from=pose_from, anim=anim, n=n, seed=seed, steps=steps,
                                             strength=strength, frames=frames, keyframes=keyframes,
                                             checkpoint=checkpoint, skeleton=skeleton, device=device,
                                             preview=preview, arguments=tuple(sys.argv[1:])))
        return
    if replay:
        if asset or handles or pins:
            raise InputError("--replay takes its asset and handles from the layer; drop ASSET, --handle and --pin")
        rep = replay_ik(replay, out or default_output(replay, "replay"), device=device, preview=preview,
                        arguments=sys.argv[1:], progress=bar)
    else:
        if not asset:
            raise InputError("give an ASSET (or --replay LAYER); see `usdposer ik --help`")
        options = IKOptions(handles=tuple(parse_handle(h) for h in handles), pins=tuple(pins), pose_from=pose_from,
                            anim=anim, n=n, seed=seed, steps=steps, strength=strength, frames=frames,
                            keyframes=keyframes, checkpoint=checkpoint, skeleton=skeleton, device=device,
                            preview=preview, arguments=tuple(sys.argv[1:]))
        rep = ik(asset, out or default_output(asset, "ik"), options, progress=bar)
    for w in rep.warnings:
        warn(w)
    emit(rep, as_json, _human)


def _serve(asset, replay, out, options) -> None:
    """``--serve``: answers as JSON lines on stdout (flushed per line), a summary line on stderr at the end."""
    import json

    from usdposer.commands._output import note
    from usdposer.pipelines.ik import serve

    from usdposer.errors import InputError

    if not asset or replay or out or options.preview:
        raise InputError("--serve takes an ASSET and reads each request's output path from stdin; drop --replay, "
                         "-o and --preview (give \"out\" and \"preview\" per request)")

    def respond(answer: dict) -> None:
        click.echo(json.dumps(answer, default=str))
        sys.stdout.flush()

    stdin = click.get_text_stream("stdin")
    if stdin.isatty():
        note('reading one JSON request per line, e.g. {"out": "pose.usdc", "handles": ["JOINT=x,y,z"]}; Ctrl-D ends')
    try:
        rep = serve(asset, options, stdin, respond)
    except KeyboardInterrupt:
        note("interrupted: the answered requests' layers are kept; the one in progress wrote nothing")
        raise SystemExit(130) from None
    per = sorted(rep.seconds)
    note(f"served {rep.requests} requests on {asset}: {rep.answered} answered, {rep.refused} refused; loading "
         f"{rep.load_seconds:.1f} s once" + (f", median {per[len(per) // 2]:.2f} s per answer" if per else ""))


def _human(r) -> str:
    errs = ", ".join(f"{h['joint'].rsplit('/', 1)[-1]} {e:.2%}" for h, e in zip(r.handles, r.handle_errors))
    where = {"rig": "its limits", "animation": "the range of its animation"}.get(r.limits, "limits")
    lim = "" if r.limit_violations is None else f", {r.limit_violations} joints outside {where}"
    rep = "" if r.replay_max_angle_deg is None else f"; replay differs by at most {r.replay_max_angle_deg:.2g} deg"
    moved = f" ({r.start_joints_moved} joints brought inside {where})" if r.start_joints_moved else ""
    return (f"wrote {r.output}: {r.animation} from {r.pose_from}{moved}, candidate {r.chosen + 1}/{r.candidates} "
            f"(prior score {r.prior_score:.3f}{lim}); handle error ({errs}) of the height; constraints in "
            f"{r.constraints}{rep} ({r.seconds:.1f} s)")
