"""`usdposer batch` throughput: import -> check -> sample -n 16 over every shared glTF asset, as assets per minute for
a plain sequential loop (the same task function, one process), the local pool with 1 and 2 workers, and a local Ray
instance with 2 CPUs, in one run. Overhead = (wall time x workers - the tasks' own time) / the tasks' own time: what
scheduling, process start-up and imports cost beyond the work.

    python bench/batch.py [--limit N] [--out bench/results/batch.json]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
os.environ.setdefault("WARP_CACHE_PATH", str(ROOT / ".cache" / "warp"))

JOB = """[inputs]
paths = {paths}
[output]
folder = "{out}"
[[steps]]
verb = "import"
[[steps]]
verb = "check"
[[steps]]
verb = "sample"
options = {{ n = 16 }}
"""


def job_file(assets: list[str], work: Path, name: str) -> Path:
    p = work / f"{name}.toml"
    p.write_text(JOB.format(paths=json.dumps(assets), out=str(work / name)))
    return p


def row(label: str, rep, n_assets: int, workers: int, wall: float) -> dict:
    task_s = sum(t["seconds"] for t in rep.tasks)
    per_verb: dict[str, list[float]] = {}
    for t in rep.tasks:
        if t["status"] == "done":
            per_verb.setdefault(t["verb"], []).append(t["seconds"])
    return {"runner": label, "workers": workers, "assets": n_assets, "wall_s": round(wall, 1),
            "seconds_per_task": {v: round(sum(x) / len(x), 2) for v, x in per_verb.items()},
            "assets_per_min": round(60 * n_assets / wall, 2), "task_s": round(task_s, 1),
            "overhead": round((wall * workers - task_s) / task_s, 3) if task_s else None,
            "done": rep.done, "failed": rep.failed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=0, help="only the first N assets (0: all)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if not SHARED.is_dir():
        raise SystemExit(f"bench/batch.py needs the shared assets at {SHARED}: not found")
    from usdposer.pipelines.batch import BatchReport, _tasks_for, read_job, run_batch, run_task

    assets = sorted(glob.glob(str(SHARED / "**" / "*.glb"), recursive=True) +
                    glob.glob(str(SHARED / "**" / "*.gltf"), recursive=True))
    if args.limit:
        assets = assets[:args.limit]
    work = Path(tempfile.mkdtemp(prefix="usdposer-bench-batch-"))
    rows = []
    # the plain sequential loop: the same task function, one process, no pool
    job = read_job(job_file(assets, work, "sequential"))
    tick = time.perf_counter()
    rep = BatchReport(job.path, job.out, "sequential", 1)
    for a, chain in _tasks_for(job).items():
        current = a
        for t in chain:
            t["input"] = current
            t["output"] = str(Path(job.out) / t["name"] / (t["name"] + {"import": ".usdc", "check": ".check.json",
                                                                           "sample": ".samples.usdc"}[t["verb"]]))
            r = run_task(t)
            rep.tasks.append(r)
            setattr(rep, r["status"], getattr(rep, r["status"]) + 1)
            if r["status"] == "failed":
                break
            if t["verb"] == "import":
                current = t["output"]
    rows.append(row("sequential loop", rep, len(assets), 1, time.perf_counter() - tick))
    print(rows[-1], flush=True)
    for label, workers, ray in (("local pool", 1, None), ("local pool", 2, None), ("ray (local, 2 CPUs)", 2, True)):
        job = read_job(job_file(assets, work, f"{label.split()[0]}{workers}"))
        tick = time.perf_counter()
        rep = run_batch(job, workers=workers, ray=ray)
        rows.append(row(label, rep, len(assets), workers, time.perf_counter() - tick))
        print(rows[-1], flush=True)
    shutil.rmtree(work, ignore_errors=True)
    base = rows[0]["assets_per_min"]
    for r in rows:
        r["speedup_vs_sequential"] = round(r["assets_per_min"] / base, 2)
    result = {"bench": "batch", "job": "import -> check -> sample -n 16", "cores": os.cpu_count(), "rows": rows}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
