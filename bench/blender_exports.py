"""Files a DCC wrote: every shared glTF character exported by Blender 5's own USD exporter (bpy 5.0.1,
`scripts/blender_export.py`), then read by usdposer: FK and LBS against OpenUSD's UsdSkel queries on Blender's file
(`tests/test_usdskel_golden.compare_stage`), and `usdposer check` on it.

    python bench/blender_exports.py --bpy /path/to/bpy-venv/bin/python [--json bench/results/blender_exports.json]

The bpy venv: `python3.11 -m venv V && V/bin/pip install bpy==5.0.1` (DESIGN.md).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
os.environ.setdefault("WARP_CACHE_PATH", str(ROOT / ".cache" / "warp"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bpy", default=os.environ.get("BPY_PYTHON"), help="python of a venv with bpy 5")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    if not a.bpy:
        sys.exit("give --bpy PYTHON (a venv with `pip install bpy==5.0.1`); nothing was exported")
    if not SHARED.exists():
        sys.exit(f"bench/blender_exports.py needs the shared characters at {SHARED}; they are not on this machine")
    sys.path.insert(0, str(ROOT / "tests"))
    from test_usdskel_golden import compare_stage

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for src in sorted(SHARED.glob("**/*.glb")):
            out = Path(tmp) / f"{src.stem}.usdc"
            proc = subprocess.run([a.bpy, str(ROOT / "scripts" / "blender_export.py"), str(src), str(out)],
                                  capture_output=True, text=True)
            row = {"file": str(src.relative_to(SHARED))}
            if proc.returncode != 0 or not out.exists():
                row["export"] = f"failed: {proc.stderr.strip()[-300:]}"
                rows.append(row)
                print(row, flush=True)
                continue
            fk, lbs, meshes = compare_stage(out)
            check = subprocess.run([sys.executable, "-m", "usdposer.commands._entry", "check", str(out), "--json"],
                                   capture_output=True, text=True)
            summary = json.loads(check.stdout)["summary"] if check.stdout.strip() else {}
            row.update(fk_rel=fk, lbs_rel=lbs, meshes=meshes, check_exit=check.returncode,
                       check_failed=summary.get("failed"), check_frames=summary.get("frames"))
            rows.append(row)
            print(f"{row['file']:<45} fk {fk:.1e} lbs {lbs:.1e} meshes {meshes} check exit {check.returncode} "
                  f"failed {row['check_failed']}", flush=True)
    exported = [r for r in rows if "fk_rel" in r]
    summary = {"files": len(rows), "exported": len(exported),
               "worst_fk_rel": max((r["fk_rel"] for r in exported), default=None),
               "worst_lbs_rel": max((r["lbs_rel"] for r in exported), default=None),
               "check_clean": sum(r["check_exit"] == 0 for r in exported), "blender": "bpy 5.0.1"}
    print(json.dumps(summary, indent=2))
    if a.json:
        Path(a.json).write_text(json.dumps({"summary": summary, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
