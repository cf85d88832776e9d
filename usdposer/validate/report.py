"""A CheckReport as text (usdchecker's lines), JSON (the ``--json`` contract) or JUnit XML (one testsuite per file,
one testcase per rule: failed -> <failure>, error -> <error>, warnings in <system-out>)."""

from __future__ import annotations

import json
from xml.etree import ElementTree as ET

from usdposer.validate.engine import CheckReport
from usdposer.validate.registry import Finding

LABEL = {"failed": "Failed", "error": "Error", "warning": "Warn"}


def finding_line(f: Finding) -> str:
    where = f.prim + (f" [{f.joint.rsplit('/', 1)[-1]}]" if f.joint and "&" not in f.joint else "")
    waived = f" (waived: {f.waived})" if f.waived else ""
    return f"{LABEL[f.severity]}: (usdposer:{f.id}) {f.file}: " + (f"{where}: " if where else "") + f.message + waived


def format_text(report: CheckReport, verbose: bool = False) -> str:
    lines = []
    for r in report.files:
        shown = [f for f in r.findings if verbose or not f.waived]
        lines += [finding_line(f) for f in shown]
        if verbose:
            lines += [f"Note: {r.path}: {n}" for n in r.notes]
    lines.append(summary_line(report))
    code = report.exit_code
    lines.append("Success!" if code == 0 and not report.count("warning") else
                 "Success with warnings..." if code == 0 else "Failed!")
    return "\n".join(lines)


def summary_line(report: CheckReport) -> str:
    waived = sum(bool(f.waived) for f in report.findings)
    return (f"{len(report.files)} files, {report.frames} frames: {report.count('failed')} failed, "
            f"{report.count('error')} errors, {report.count('warning')} warnings"
            + (f", {waived} waived" if waived else "") + f" ({report.seconds:.1f} s)")


def format_json(report: CheckReport) -> str:
    return json.dumps(report.to_dict(), indent=2)


def format_junit(report: CheckReport) -> str:
    suites = ET.Element("testsuites", name="usdposer check", tests=str(len(report.files) * len(report.rules)),
                        failures=str(report.count("failed")), errors=str(report.count("error")),
                        time=f"{report.seconds:.3f}")
    for r in report.files:
        fails = [f for f in r.findings if not f.waived]
        suite = ET.SubElement(suites, "testsuite", name=r.path, tests=str(len(report.rules)),
                              failures=str(sum(f.severity == "failed" for f in fails)),
                              errors=str(sum(f.severity == "error" for f in fails)), time=f"{r.seconds:.3f}")
        for rule in report.rules:
            mine = [f for f in fails if f.rule == rule]
            case = ET.SubElement(suite, "testcase", classname=r.path, name=f"usdposer:{rule}")
            for sev, tag in (("failed", "failure"), ("error", "error")):
                hits = [f for f in mine if f.severity == sev]
                if hits:
                    el = ET.SubElement(case, tag, message=hits[0].message, type=hits[0].id)
                    el.text = "\n".join(finding_line(f) for f in hits)
            warns = [f for f in mine if f.severity == "warning"]
            if warns:
                ET.SubElement(case, "system-out").text = "\n".join(finding_line(f) for f in warns)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode")


def format_rules(rules) -> str:
    lines = []
    for cls in rules:
        lines.append(f"usdposer:{cls.name}  [{cls.severity}, per {'frame' if cls.scope == 'clip' else 'file'}]  "
                     f"{cls.describe()}")
        lines += [f"    .{code}: {doc}" for code, doc in cls.codes.items()]
    return "\n".join(lines)
