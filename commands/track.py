"""usdposer track"""

from __future__ import annotations

import sys

import click
from usdposer.commands._options import count, frames_spec, json_option, number, seed_option, verbosity_option
from usdposer.commands._output import emit, progress

EPILOG = """\b
Examples:
  usdposer track fox.usdc --anim Walk --iterations 40
  usdposer track fox.distill.usdc --preset quick -o fox.tracked.usdc --physics fox.physics.usda
  usdposer track horse.usdc --anim Walk --frames 0:24 --json

\b
AKD section 4.5: the rig becomes a Newton articulation (one box per bone
sized from the vertices it moves, a free root, 3-axis D6 joints with PD
drives as stiff as dt = 1/1200 s allows, joint limits when known, gravity,
penalty ground contact) simulated by SolverSemiImplicit. Per-frame PD
targets (interpolated per substep) and the initial velocity are optimised
with Adam so that the simulation follows the animation (L1 on joint
coordinates and root, uprightness, 0.2 x MAE of the targets' second
differences), from its first frame lowered onto the ground; a virtual torque
on the root's tilt (--upright-assist, 0 for none) keeps it upright; gradients
come through chunks of one frame's substeps re-simulated under a wp.Tape,
clipped between chunks. Characters authored at implausible sizes are
simulated 1 m tall. Writes SkelAnimation <Skeleton>/usdposerTrack (bound)
over ASSET (default ASSET_STEM.track.usdc), the articulation as a UsdPhysics
layer (OUT_STEM.physics.usda, loadable by Newton's add_usd), and a JSON + PNG
report with ground penetration, foot skating, uprightness and tracking error
before and after.
"""


@click.command("track", epilog=EPILOG)
@click.argument("asset", type=click.Path(dir_okay=False))
@click.option("--anim", default=None, help="SkelAnimation prim path or name (default: the bound one).")
@click.option("-o", "--out", type=click.Path(dir_okay=False), default=None, help="Output layer (.usdc/.usda).")
@click.option("--physics", "physics_out", type=click.Path(dir_okay=False), default=None,
              help="UsdPhysics layer (default OUT_STEM.physics.usda).")
@click.option("--preset", type=click.Choice(["paper", "quick"]), default="paper", show_default=True,
              help="paper: 200 Adam iterations (the paper's); quick: 50.")
@click.option("--iterations", type=count(1, 100_000), default=None, help="Override the preset's iterations.")
@click.option("--lr", type=number(0, 10, lo_open=True), default=0.01, show_default=True, help="Adam step for the PD targets (radians).")
@click.option("--frames", callback=frames_spec, default=None, help="Frames to track: A:B time codes (default: all).")
@click.option("--clip-grad", type=number(0, 1e6, lo_open=True), default=1.0, show_default=True,
              help="Gradient norm handed from one frame's chunk to the previous one.")
@click.option("--upright-assist", type=number(0, 1e6), default=1.0, show_default=True,
              help="Virtual torque keeping the root upright, per radian of tilt, x weight x height (0: none).")
@click.option("--no-contact", is_flag=True, help="Ablation: no ground contact.")
@click.option("--no-limits", is_flag=True, help="Ignore the rig's joint limits.")
@click.option("--preview", type=click.Path(dir_okay=False), default=None,
              help="Render the tracked animation: .gif/.mp4 (video) or .png (contact sheet).")
@click.option("--skeleton", default=None, help="Skeleton prim path or name (default: the first).")
@seed_option
@json_option
@verbosity_option
def cli(asset, anim, out, physics_out, preset, iterations, lr, frames, clip_grad, upright_assist, no_contact, no_limits,
        preview, skeleton, seed, as_json) -> None:
    """Ground ASSET's animation in physics: simulate it, optimise PD targets, write what the body can do."""
    from usdposer.pipelines.track import TrackOptions, track

    from usdposer.core.selection import default_output
    from usdposer.physics.articulation import ArticulationConfig
    from usdposer.physics.tracking import TrackConfig

    iterations = iterations or {"paper": 200, "quick": 50}[preset]
    cfg = TrackConfig(iterations=iterations, lr=lr, clip=clip_grad, contact=not no_contact, seed=seed,
                      upright_assist=upright_assist)
    bar = progress("tracking", quiet=as_json)(total=iterations)

    def step(i: int, rec: dict) -> None:  # the progress bar shows the current loss and its parts
        bar.set_postfix(loss=f"{rec['loss']:.4f}", coords=f"{rec['coords']:.4f}", root=f"{rec['root']:.4f}",
                        refresh=False)
        bar.update(1)

    try:
        options = TrackOptions(anim=anim, skeleton=skeleton, cfg=cfg, art_cfg=ArticulationConfig(use_limits=not no_limits),
                               physics_out=physics_out, frames=frames, preview=preview, arguments=tuple(sys.argv[1:]))
        rep = track(asset, out or default_output(asset, "track"), options, on_step=step)
    finally:
        bar.close()
    emit(rep, as_json, _human)


def _human(r) -> str:
    b, a = r.before, r.after
    return (f"wrote {r.output}: {r.frames} frames of {r.source_animation} tracked into {r.animation} in "
            f"{r.iterations} iterations ({r.seconds:.1f} s, {r.seconds_per_iteration:.2f} s/iteration); physics "
            f"layer {r.physics}\n"
            f"  ground penetration {b['penetration_mean']:.2f} -> {a['penetration_mean']:.2f} % of height (max "
            f"{b['penetration_max']:.2f} -> {a['penetration_max']:.2f}); foot skating {b['skating']:.3f} -> "
            f"{a['skating']:.3f} heights/s; tilt {b['upright_mean']:.1f} -> {a['upright_mean']:.1f} deg; tracking "
            f"error {a['tracking_error']:.2f} % of height (drift {a['tracking_drift']:.2f} %)\n"
            f"  report {r.report}, loss curve {r.loss_png}" + (f", preview {r.preview}" if r.preview else ""))
