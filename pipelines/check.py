"""``usdposer check``: the validators over files, folders and globs for CI (``usdposer.validate``), with learned
limits, the pose prior's plausibility, waivers, and contact sheets of the flagged frames."""

from __future__ import annotations

from dataclasses import dataclass

from usdposer.pipelines._base import Progress


@dataclass(frozen=True)
class CheckOptions:
    """``rules``: names to run (all by default); ``strict``: warnings fail too; ``limits``: a learned-limits file;
    ``checkpoint``: a pose space enabling the Plausibility rule (``score_threshold`` overrides its calibrated
    threshold); ``waivers``: accepted findings; thresholds in fractions of the height (``skating``: heights per
    second; ``pop`` and ``jitter``: degrees per frame^2); ``preview``: a folder for one contact sheet per animation
    with findings."""

    rules: tuple[str, ...] = ()
    strict: bool = False
    limits: str | None = None
    checkpoint: str | None = None
    score_threshold: float | None = None
    waivers: str | None = None
    depth: float = 0.01
    depth_fail: float = 0.15
    penetration: float = 0.02
    penetration_fail: float = 0.10
    skating: float = 1.0
    pop: float = 90.0
    jitter: float = 15.0
    preview: str | None = None
    device: str = "cpu"


def check(paths: list[str], options: CheckOptions = CheckOptions(), progress: Progress | None = None):
    """Run the rules over ``paths``; returns the ``usdposer.validate.CheckReport`` (its ``exit_code``: 0 ok, 1 a
    check failed, 2 a file could not be read) with ``previews`` (the contact sheets written) added."""
    from usdposer.errors import InputError
    from usdposer.validate import CheckOptions as RuleOptions
    from usdposer.validate import check_paths

    o = options
    if not paths:
        raise InputError("no PATHS given; pass files, folders or globs (or --list-rules)")
    rule_options = RuleOptions(depth=o.depth, depth_fail=o.depth_fail, penetration=o.penetration,
                               penetration_fail=o.penetration_fail, skating=o.skating,
                               pop=o.pop, jitter=o.jitter)
    if o.limits:
        from usdposer.validate.learned import read_limits

        rule_options.learned_limits = read_limits(o.limits)
    if o.checkpoint:
        from usdposer.models.plausibility import make_scorer

        rule_options.scorer, rule_options.score_threshold = make_scorer(o.checkpoint, o.device, o.score_threshold)
    waiver_list = None
    if o.waivers:
        from usdposer.validate.engine import read_waivers

        waiver_list = read_waivers(o.waivers)
    report = check_paths(list(paths), list(o.rules) or None, rule_options, strict=o.strict, waivers=waiver_list,
                         progress=progress)
    report.previews = []
    if o.preview:
        from usdposer.pipelines.render import findings_sheets

        report.previews = findings_sheets(report, o.preview)
    return report
