"""usdposer check"""

from __future__ import annotations

import sys

import click
from usdposer.commands._options import checkpoint_option, device_option, number, verbosity_option
from usdposer.commands._output import note, progress, verbosity

EPILOG = """\b
Examples:
  usdposer check fox.usdc
  usdposer check assets/ 'shots/**/*.usdc' --format junit -o check.xml
  usdposer check dog.usdc --rules JointLimits,SelfIntersection --strict
  usdposer check walk.usdc --limits limits.json --checkpoint runs/prior
  usdposer check --list-rules

\b
Reads USD, glTF/GLB, BVH and MuJoCo MJCF (converted in memory), every Skeleton,
every SkelAnimation and every frame. Exit status: 0 nothing failed, 1 a check
failed (or warned, with --strict), 2 a file could not be read (the others are
still checked). Known findings can be accepted with --waivers FILE
({"format": "usdposer-waivers/1", "waivers": [{"file", "rule", "prim", "reason"}]}).
The same rules are UsdValidation validators named usdposer:<Rule>.
"""


@click.command("check", epilog=EPILOG)
@click.argument("paths", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(["text", "json", "junit"]), default="text", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option("-o", "--out", type=click.Path(dir_okay=False), default=None, help="Write the report here (stdout: summary).")
@click.option("--strict", is_flag=True, help="Warnings fail too (exit 1).")
@click.option("--rules", "rule_names", multiple=True, help="Rules to run, comma separated (default: all).")
@click.option("--list-rules", is_flag=True, help="List the rules and their error names, then exit.")
@click.option("--limits", type=click.Path(dir_okay=False), default=None, help="Learned limits (`usdposer limits learn`).")
@checkpoint_option
@click.option("--score-threshold", type=number(), default=None, help="Override the checkpoint's calibrated threshold.")
@click.option("--waivers", type=click.Path(dir_okay=False), default=None, help="Accepted findings (JSON), with reasons.")
@click.option("--depth", type=number(0, lo_open=True), default=0.01, show_default=True, help="Self-intersection depth that warns (x height).")
@click.option("--depth-fail", type=number(0, lo_open=True), default=0.15, show_default=True, help="... and that fails (x height).")
@click.option("--penetration", type=number(0, lo_open=True), default=0.02, show_default=True, help="Ground penetration that warns (x height).")
@click.option("--penetration-fail", type=number(0, lo_open=True), default=0.10, show_default=True, help="... and that fails (x height).")
@click.option("--skating", type=number(0, lo_open=True), default=1.0, show_default=True,
              help="Contact points sliding faster than this warns (heights per second).")
@click.option("--pop", type=number(0, lo_open=True), default=90.0, show_default=True,
              help="A joint's frame-to-frame rotation changing by more than this warns (degrees per frame^2).")
@click.option("--jitter", type=number(0, lo_open=True), default=15.0, show_default=True,
              help="A clip's mean jitter above this warns (degrees per frame^2, as distill/track report it).")
@click.option("--preview", type=click.Path(file_okay=False), default=None,
              help="Write a contact sheet per animation with findings into this folder (flagged joints in red).")
@device_option
@verbosity_option
def cli(paths, fmt, as_json, out, strict, rule_names, list_rules, limits, checkpoint, score_threshold, waivers, depth,
        depth_fail, penetration, penetration_fail, skating, pop, jitter, preview, device) -> None:
    """Validate rigs and animations for CI: binding sanity, joint limits, self-intersection, ground, foot skating,
    jitter, drift, plausibility."""
    from usdposer.pipelines.check import CheckOptions, check

    from usdposer.validate import find_rules
    from usdposer.validate.report import format_json, format_junit, format_rules, format_text, summary_line

    names = tuple(n.strip() for group in rule_names for n in group.split(",") if n.strip())
    if out:  # the report: not an input, writable, before any file is read
        from pathlib import Path

        from usdposer.pipelines._base import preflight

        preflight([p for p in paths if Path(p).exists()], None, [out])
    if list_rules:
        click.echo(format_rules(type(r) for r in find_rules(list(names) or None)))
        return
    options = CheckOptions(rules=names, strict=strict, limits=limits, checkpoint=checkpoint,
                           score_threshold=score_threshold, waivers=waivers, depth=depth, depth_fail=depth_fail,
                           penetration=penetration, penetration_fail=penetration_fail, skating=skating,
                           pop=pop, jitter=jitter,
                           preview=preview, device=device)
    report = check(list(paths), options, progress=progress("checking", "file"))
    for path in report.previews:
        note(f"preview {path}")
    fmt = "json" if as_json else fmt
    text = {"text": lambda: format_text(report, verbosity() > 0), "json": lambda: format_json(report),
            "junit": lambda: format_junit(report)}[fmt]()
    if out:
        from pathlib import Path

        from usdposer.io.stage import atomic_path

        with atomic_path(Path(out)) as tmp:
            tmp.write_text(text + "\n")
        click.echo(summary_line(report) + f" -> {out}")
    else:
        click.echo(text)
    sys.exit(report.exit_code)
