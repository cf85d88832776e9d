"""Run rules over files: every Skeleton, every SkelAnimation, every frame. A file that cannot be read becomes an
``error`` finding and never stops the others.

Exit status (usdchecker's contract plus 2 for unreadable input): 2 when any file could not be read, else 1 when any
check failed (or, with ``strict``, warned), else 0.
"""

from __future__ import annotations

import fnmatch
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from usdposer.errors import InputError, UsdPoserError
from usdposer.io.dataset import expand_paths, read_any
from usdposer.validate.context import CheckOptions, ClipContext, FileContext, RigContext
from usdposer.validate.registry import Finding, Rule, find_rules
from usdposer.validate.rules import concat_measures


@dataclass
class FileResult:
    path: str
    readable: bool = True
    skeletons: int = 0
    clips: int = 0
    frames: int = 0
    seconds: float = 0.0
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class CheckReport:
    files: list[FileResult]
    rules: list[str]
    strict: bool = False
    seconds: float = 0.0
    rule_seconds: dict[str, float] = field(default_factory=dict)  # time spent in each rule (reading: "read")

    @property
    def findings(self) -> list[Finding]:
        return [f for r in self.files for f in r.findings]

    def count(self, severity: str) -> int:
        """Findings of a severity that count (waived ones do not)."""
        return sum(f.severity == severity and not f.waived for f in self.findings)

    @property
    def frames(self) -> int:
        return sum(r.frames for r in self.files)

    def to_json(self) -> dict:
        """The ``--json`` contract (``to_dict``)."""
        return self.to_dict()

    @property
    def exit_code(self) -> int:
        if self.count("error"):
            return 2
        if self.count("failed") or (self.strict and self.count("warning")):
            return 1
        return 0

    def to_dict(self) -> dict:
        return {
            "summary": {"files": len(self.files), "frames": self.frames, "failed": self.count("failed"),
                        "error": self.count("error"), "warning": self.count("warning"),
                        "waived": sum(bool(f.waived) for f in self.findings), "exit_code": self.exit_code,
                        "seconds": round(self.seconds, 3),
                        "rule_seconds": {k: round(v, 3) for k, v in self.rule_seconds.items()}},
            "rules": self.rules,
            "files": [{"path": r.path, "readable": r.readable, "skeletons": r.skeletons, "clips": r.clips,
                       "frames": r.frames, "seconds": round(r.seconds, 3), "notes": r.notes,
                       "findings": [f.to_dict() for f in r.findings]} for r in self.files],
        }


WAIVERS_FORMAT = "usdposer-waivers/1"
def read_waivers(path: str | os.PathLike) -> list[dict]:
    """Accepted findings: ``{"format": "usdposer-waivers/1", "waivers": [{"file": GLOB, "rule": "Rule[.Code]",
    "prim": GLOB (optional), "reason": TEXT}]}``; raises InputError naming the fix."""
    import json

    fix = (f"not a waivers file ({WAIVERS_FORMAT}: a list of file, rule and reason as text); fix it or drop "
           "--waivers")
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: {fix} ({type(exc).__name__})") from exc
    waivers = data.get("waivers") if isinstance(data, dict) else None
    if not isinstance(data, dict) or data.get("format") != WAIVERS_FORMAT or not isinstance(waivers, list) or not all(
            isinstance(w, dict) and all(isinstance(w.get(k), str) for k in ("file", "rule", "reason")) and w["reason"]
            and isinstance(w.get("prim", "*"), str) for w in waivers):
        raise InputError(f"{path}: {fix}")
    return waivers


def apply_waivers(findings: list[Finding], waivers: list[dict]) -> list[Finding]:
    """Mark the findings a waiver accepts (file and prim globs, rule or rule.code) with its reason."""
    out = []
    for f in findings:
        for w in waivers:
            if (fnmatch.fnmatch(f.file, w["file"]) and w["rule"] in (f.rule, f.id)
                    and fnmatch.fnmatch(f.prim, w.get("prim", "*")) and f.severity != "error"):
                f = replace(f, waived=w["reason"])
                break
        out.append(f)
    return out


def check_paths(paths: Iterable[str], rules: list[str] | None = None, options: CheckOptions | None = None, *,
                strict: bool = False, waivers: list[dict] | None = None, progress: Callable | None = None) -> CheckReport:
    """Check every file under ``paths`` with the named rules (all by default); ``waivers`` accept known findings."""
    options = options or CheckOptions()
    chosen = find_rules(rules)
    t0 = time.perf_counter()
    report = CheckReport([], [r.name for r in chosen], strict=strict)
    timings: dict[str, float] = defaultdict(float)
    items = expand_paths(paths)
    if items and all(path is None for _, path in items):
        raise InputError(f"{', '.join(arg for arg, _ in items)}: no USD, glTF, BVH or MJCF file found (no such file, "
                         "an empty folder or a pattern that matches nothing); check the paths")
    with tempfile.TemporaryDirectory(prefix="usdposer-check-") as work:
        for arg, path in (progress(items) if progress else items):
            if path is None:
                res = FileResult(arg, readable=False)
                res.findings.append(Finding("Readable", "NotFound", "error", f"{arg}: no such file, or no readable "
                                            "file matches it; check the path", file=arg))
            else:
                try:
                    res = check_file(path, chosen, options, Path(work), timings)
                except Exception as exc:  # one file's failure fails that file only
                    from usdposer.validate.context import FileContext
                    from usdposer.validate.rules import Readable

                    res = FileResult(str(path), readable=False)
                    res.findings = Readable().check(FileContext(
                        str(path), None, options, f"could not be checked ({type(exc).__name__}: "
                        f"{' '.join(str(exc).split())[:200]})"))
            if waivers:
                res.findings = apply_waivers(res.findings, waivers)
            report.files.append(res)
    report.seconds = time.perf_counter() - t0
    report.rule_seconds = dict(timings)
    return report


def check_file(path: Path, rules: list[Rule], options: CheckOptions, workdir: Path,
               timings: dict[str, float] | None = None) -> FileResult:
    """Read one file (converting glTF/BVH/MJCF in ``workdir``) and run the rules on it."""
    timings = timings if timings is not None else defaultdict(float)
    t0 = time.perf_counter()
    res = FileResult(str(path))
    try:
        asset = _read(path, workdir)
    except Exception as exc:  # anything the reader cannot make sense of: this file's row, not the run's end
        from usdposer.validate.context import FileContext
        from usdposer.validate.rules import Readable

        res.readable = False
        text = " ".join(str(exc).split())[:300]
        message = text if isinstance(exc, UsdPoserError) else f"cannot be read ({type(exc).__name__}: {text})"
        res.findings = Readable().check(FileContext(str(path), None, options, message))
        res.seconds = time.perf_counter() - t0
        return res
    timings["read"] += time.perf_counter() - t0
    res.findings = check_asset(asset, str(path), rules, options, timings, res)
    res.seconds = time.perf_counter() - t0
    return res


def _read(path: Path, workdir: Path):
    if not path.exists():
        raise UsdPoserError(f"{path}: no such file")
    return read_any(path, workdir, strict=False, verb="check")


def check_asset(asset, path: str, rules: list[Rule], options: CheckOptions, timings: dict[str, float] | None = None,
                result: FileResult | None = None) -> list[Finding]:
    """Every rule on one read asset: file rules once, clip rules on every frame of every clip of every rig."""
    timings = timings if timings is not None else defaultdict(float)
    result = result or FileResult(path)
    file = FileContext(path, asset, options)
    findings: list[Finding] = []
    for rule in rules:
        if rule.scope == "file":
            t = time.perf_counter()
            findings += rule.check(file)
            timings[rule.name] += time.perf_counter() - t
    clip_rules = [r for r in rules if r.scope == "clip"]
    result.skeletons = len(asset.rigs)
    if not asset.rigs:
        result.notes.append("no usable Skeleton: nothing to check per frame")
    for rig in asset.rigs:
        rig_ctx = RigContext(file, rig)
        clips = asset.clips.get(rig.skeleton_path, [])
        if not clips:
            result.notes.append(f"{rig.skeleton_path}: no SkelAnimation, per-frame rules skipped")
        if options.learned_limits and any(r.name == "JointLimits" for r in clip_rules) and rig_ctx.learned is None:
            result.notes.append(f"{rig.skeleton_path}: no learned limits match this skeleton's joints")
        for clip in clips:
            result.clips += 1
            result.frames += len(clip)
            ctx = ClipContext(rig_ctx, clip)
            active = [r for r in clip_rules if not (r.needs_mesh and not rig.meshes)]
            measures: dict[str, list[dict]] = {r.name: [] for r in active}
            for chunk in ctx.chunks():
                t = time.perf_counter()
                _ = chunk.world, chunk.R_rel, (chunk.points if rig.meshes else None)  # shared: timed once here
                timings["pose+skin"] += time.perf_counter() - t
                for r in active:
                    t = time.perf_counter()
                    measures[r.name].append(r.measure(ctx, chunk))
                    timings[r.name] += time.perf_counter() - t
            for r in active:
                t = time.perf_counter()
                findings += r.judge(ctx, concat_measures(measures[r.name]))
                timings[r.name] += time.perf_counter() - t
    return findings

