"""usdposer dataset build"""

from __future__ import annotations

import click
from usdposer.commands._options import json_option, number, plausibility_value, verbosity_option
from usdposer.commands._output import emit, progress, warn

EPILOG = """\b
Examples:
  usdposer dataset build assets/khronos/Fox.glb assets/cmu/cmu_walk.bvh assets/quaternius/Trex.glb -o data/poses --holdout Trex
  usdposer dataset build "assets/**/*.glb" assets/cmu -o data/more --holdout Trex --val Fox --json
  usdposer dataset build fox.usdc walk.usdc -o data/usd
  usdposer dataset build assets/kaykit/mannequin/manny_med_mod.gltf --anim-from "assets/kaykit/anim/*.glb=manny_med_mod" -o data/library
  usdposer dataset build fox.usdc fox.distill.usdc -o data/video --max-fit-residual 30 --max-skating 0.5 \\
      --max-penetration 5 --plausibility calibrated --check

\b
Layers written by `distill`, `track` and `fit` (to meshes or --video) give
only the clips they author, not the asset's below them; the manifest
records each one's provenance (model, prompt, seed, residuals, tracking
error) and how many frames each filter dropped.
"""


@click.group("dataset", epilog=EPILOG)
def cli() -> None:
    """Pose datasets for training the pose space."""


@cli.command("build", epilog=EPILOG)
@click.argument("sources", nargs=-1, required=True)
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Dataset directory.")
@click.option("--holdout", multiple=True, help="Character (file stem or folder/stem) kept out of training; repeat.")
@click.option("--val", multiple=True, help="Character used for validation loss only; repeat.")
@click.option("--dedupe-degrees", type=number(0, 180), default=2.0, show_default=True,
              help="Drop frames whose joints all moved less than this since the last kept frame.")
@click.option("--anim-from", "anim_from", multiple=True, metavar="LIBRARY=CHARACTER",
              help="Bind an animation library's clips (files or a glob; skeleton-only files such as KayKit's) to the "
                   "character read from a source (its path or file stem): joints matched by name, the mapping and "
                   "unmatched joints reported in the manifest; repeat.")
@click.option("--licence", "licences", multiple=True, metavar="PATTERN=TEXT",
              help="The licence of sources matching PATTERN (a glob matched against the path or its tail, e.g. "
                   "'quaternius/*'), where the files do not state "
                   "it; repeat. Unstated licences are recorded as unknown (and listed in the model card).")
@click.option("--skip-bad", is_flag=True,
              help="Build from the readable sources when some fail (listed as failed in the manifest). Without it a "
                   "failed source fails the build: every source is reported, nothing is written, exit 2.")
@click.option("--max-fit-residual", type=number(0, 1e6), default=None,
              help="Drop fitted frames whose residual is above this (% of height; fit --video: 100 x (1 - IoU)).")
@click.option("--max-skating", type=number(0, 1e6), default=None, help="Drop frames whose feet slide faster (heights/s).")
@click.option("--max-penetration", type=number(0, 1e6), default=None, help="Drop frames deeper below the ground (% of height).")
@click.option("--plausibility", default=None, metavar="SCORE|calibrated", callback=plausibility_value,
              help="Drop frames the pose prior scores above SCORE ('calibrated': the checkpoint's threshold).")
@click.option("--checkpoint", type=click.Path(), default=None, help="Pose space for --plausibility (default: the bundled one).")
@click.option("--check", "run_check", is_flag=True, help="Drop frames inside failed findings of `usdposer check`.")
@json_option
@verbosity_option
def build(sources, out, holdout, val, dedupe_degrees, anim_from, licences, skip_bad, max_fit_residual, max_skating,
          max_penetration, plausibility, checkpoint, run_check, as_json) -> None:
    """Build a pose dataset from USD, glTF/GLB, BVH and MJCF SOURCES (files, folders or globs)."""
    from usdposer.pipelines.dataset import DatasetOptions, SourcesFailed, build

    from usdposer.errors import InputError

    pairs = []
    for spec in anim_from:
        lib, sep, target = spec.rpartition("=")
        if not sep or not lib or not target:
            raise InputError(f"--anim-from {spec!r}: expected LIBRARY=CHARACTER, e.g. 'anims/*.glb=mannequin'")
        pairs.append((lib, target))
    licence_pairs = []
    for spec in licences:
        pattern, sep, text = spec.partition("=")
        if not sep or not pattern or not text:
            raise InputError(f"--licence {spec!r}: expected PATTERN=TEXT, e.g. 'quaternius/*=CC0-1.0 (Quaternius)'")
        licence_pairs.append((pattern, text))
    from usdposer.pipelines.dataset import DatasetFilters

    filters = DatasetFilters(max_fit_residual=max_fit_residual, max_skating=max_skating,
                             max_penetration=max_penetration, plausibility=plausibility, checkpoint=checkpoint,
                             check=run_check)
    options = DatasetOptions(holdout=tuple(holdout), val=tuple(val), dedupe_degrees=dedupe_degrees,
                             anim_from=tuple(pairs), licences=tuple(licence_pairs), skip_bad=skip_bad,
                             filters=filters)
    try:
        result = build(list(sources), out, options, progress=progress("reading", "file", quiet=as_json))
    except SourcesFailed as exc:  # every file reported (stdout), then the one error line (stderr), exit 2
        emit({**exc.manifest, "output": None, "written": False}, as_json, lambda m: _human(m))
        raise
    for f in result.manifest["failed"]:
        warn(f"skipped {f['source']}: {f['error']}")
    emit(result, as_json, lambda r: _human(r.to_json()))


def _human(m) -> str:
    head = f"wrote {m['output']}" if m.get("output") else "nothing written"
    lines = [f"{head}: {len(m['characters'])} characters, poses train {m['counts']['train']}, "
             f"val {m['counts']['val']}, held out {m['counts']['heldout']}, {len(m['failed'])} sources failed"]
    for c in m["characters"]:
        lines.append(f"  {c['id']:<34} {c['joints']:>3} joints {c['frames']:>6} frames -> {c['poses']:>6} poses  "
                     f"{c['split']}")
        for a in c.get("anim_sources", []):
            lines.append(f"    + {a['library']}: {len(a['clips'])} clips, {a['matched']} joints matched, residual "
                         f"{a['residual_pct']} % of height" + (f"; unmatched: {', '.join(a['unmatched_character_joints'])}"
                                                                if a["unmatched_character_joints"] else ""))
        if c.get("provenance"):
            p = c["provenance"]
            lines.append(f"    from {p.get('verb')}" + (f" ({p['model']}, {p.get('prompt')!r}, seed {p.get('seed')})"
                                                       if p.get("model") else ""))
        if c.get("dropped"):
            lines.append("    dropped: " + ", ".join(f"{k} {v}" for k, v in c["dropped"].items()))
    if m.get("filters"):
        d = m["filters"].get("dropped", {})
        lines.append("  filters dropped: " + (", ".join(f"{k} {v} frames" for k, v in d.items()) or "nothing"))
    for f in m["failed"]:
        lines.append(f"  FAILED {f['source']}: {f['error']}")
    return "\n".join(lines)
