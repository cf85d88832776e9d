"""usdposer batch"""

from __future__ import annotations

import sys

import click
from usdposer.commands._options import count, json_option, verbosity_option
from usdposer.commands._output import emit, progress, warn

EPILOG = """\b
Examples:
  usdposer batch job.toml
  usdposer batch job.toml --workers 2 --retries 1 --json
  usdposer batch job.toml --ray                      # a local Ray instance
On a cluster: `ray start --head` on the head node, `ray start --address
HEAD:6379` on each worker, then --ray HEAD:6379 (the same job file).

\b
job.toml:
  [inputs]
  paths = ["assets/khronos/*.glb"]          # files, folders, globs
  [output]
  folder = "out"                            # one folder per asset
  [[steps]]
  verb = "import"
  [[steps]]
  verb = "check"
  [[steps]]
  verb = "sample"
  options = { n = 16, steps = 20 }
  resources = { cpus = 1, gpus = 0 }
  [[steps]]
  verb = "render"
  options = { mode = "sheet", samples = "@sample", size = "128x128" }

\b
Each (asset, step) is a task calling the verb's pipeline function;
steps of one asset run in order (import's USD is what later steps read,
skin/distill/track layers likewise), assets in parallel: a process pool
here (--workers, default the core count; no server), or Ray tasks with
each step's resources (--ray; pip install usdposer[cluster]). A bad asset
fails its own row with the verb's one-line error; a worker that dies is
retried --retries times. Re-runs skip tasks whose output records the same
input bytes and options (OUTPUT.batch.json). Writes OUT/batch.json,
OUT/batch.junit.xml (one test case per asset and step) and OUT/logs/.
Verbs: import, skin, check, sample, render, distill, track, generate.
Exit 0 all ok, 1 some failed, 2 the job file is invalid (one line naming
the key), 3 --ray without ray installed.
"""


@click.command("batch", epilog=EPILOG)
@click.argument("job", type=click.Path(dir_okay=False))
@click.option("--workers", type=count(1, 4096), default=None, help="Local worker processes (default: the core count).")
@click.option("--ray", "ray_address", is_flag=False, flag_value="local", default=None, metavar="[ADDRESS]",
              help="Run on Ray: a local instance, or join the cluster at ADDRESS.")
@click.option("--retries", type=count(0, 100), default=2, show_default=True, help="Retries of a task whose worker died.")
@json_option
@verbosity_option
def cli(job, workers, ray_address, retries, as_json) -> None:
    """Run a batch job (TOML): many assets through several verbs, locally or on Ray."""
    from usdposer.pipelines.batch import read_job, run_batch

    spec = read_job(job)
    _check_ranges(spec)
    ray = None if ray_address is None else (True if ray_address == "local" else ray_address)
    rep = run_batch(spec, workers=workers, ray=ray, retries=retries,
                    progress=progress("batch", "task", quiet=as_json))
    for r in rep.tasks:
        if r["status"] == "failed":
            warn(f"failed {r['asset']} {r['step']}: {r['error']}")
    emit(rep, as_json, _human)
    if rep.failed:
        sys.exit(1)


def _check_ranges(spec) -> None:
    """A job's option values against the ranges the verbs' own command lines give them (``n = -5`` or ``steps =
    5000`` refused before any task runs, as ``usdposer sample -n -5`` is, not in every asset's row after import)."""
    from usdposer.commands import cli as usdposer
    from usdposer.commands._options import Number
    from usdposer.pipelines.batch import JobError

    for i, step in enumerate(spec.steps):
        params = {p.name: p for p in usdposer.get_command(None, step.verb).params}  # the verb's own CLI
        for name, value in step.options.items():
            p = params.get(name)
            if p is None or not isinstance(p.type, (click.IntRange, click.FloatRange, Number)) or (
                    isinstance(value, str) and value.startswith("@")):
                continue
            try:
                p.type.convert(value, p, None)
            except click.BadParameter as exc:
                raise JobError(f"{spec.path}: steps[{i}] ({step.verb}): option {name} = {value!r}: "
                               f"{exc.message.rstrip('.')}; give what `usdposer {step.verb} {'/'.join(p.opts)}` "
                               "accepts") from None


def _human(r) -> str:
    return (f"batch {r.job} on {r.runner} ({r.workers} workers): {r.done} done, {r.skipped} skipped (current), "
            f"{r.failed} failed, {r.retried} retried, {r.seconds:.1f} s; {r.output}/batch.json, {r.junit}")
