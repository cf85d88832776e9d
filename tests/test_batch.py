"""Step 14: ``usdposer batch`` on real assets, with the local process pool and a real local Ray instance: the same
outputs and summaries, a bad file failing alone, resume by input hash, a worker that dies and is retried, and the
job file's validation errors (one line, exit 2)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from conftest import ASSETS

CLI = [sys.executable, "-m", "usdposer.commands._entry"]
JOB = """
[inputs]
paths = ["*.glb", "*.gltf"]
[output]
folder = "out"
[[steps]]
verb = "import"
[[steps]]
verb = "check"
[[steps]]
verb = "sample"
options = { n = 2, steps = 4, seed = 1 }
resources = { cpus = 1 }
[[steps]]
verb = "render"
options = { mode = "sheet", samples = "@sample", size = "64x64" }
"""


def run(*args, cwd, env=None):
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})})


@pytest.fixture()
def job(tmp_path):
    for name in ("Fox.glb", "CesiumMan.glb", "SimpleSkin.gltf"):
        shutil.copy(ASSETS / "khronos" / name, tmp_path / name)
    (tmp_path / "truncated.glb").write_bytes((ASSETS / "khronos" / "Fox.glb").read_bytes()[:2000])
    (tmp_path / "job.toml").write_text(JOB)
    return tmp_path


def _rows(stdout: str) -> list[tuple]:
    rep = json.loads(stdout)
    return [(Path(t["asset"]).name, t["step"], t["status"], t["error"]) for t in rep["tasks"]]


def _poses(path: Path):
    from usdposer.io.read_skel import read_asset

    a = read_asset(path)
    rig = a.rigs[0]
    return next(c for c in a.clips[rig.skeleton_path] if c.name == "usdposerSamples").rotations


def test_local_and_ray_give_the_same_outputs_and_the_bad_file_fails_alone(job):
    pytest.importorskip("ray", reason="the cluster extra (ray) is not installed: the Ray half is untested here")
    r = run("batch", "job.toml", "--workers", 2, "--json", cwd=job)
    assert r.returncode == 1, r.stderr[-3000:]
    local = _rows(r.stdout)
    bad = [row for row in local if row[0] == "truncated.glb"]
    assert bad[0][2] == "failed" and "truncated" in bad[0][3] and all(x[2] == "failed" for x in bad)
    assert all(row[2] == "done" for row in local if row[0] != "truncated.glb"), local
    junit = ET.parse(job / "out" / "batch.junit.xml").getroot()
    assert len(junit.findall(".//testcase")) == 16 and len(junit.findall(".//failure")) == 4
    shutil.move(job / "out", job / "out_local")
    r = run("batch", "job.toml", "--ray", "--json", cwd=job)
    assert r.returncode == 1, r.stderr[-3000:]
    assert _rows(r.stdout) == local and json.loads(r.stdout)["runner"] == "ray"
    for name in ("Fox", "CesiumMan"):
        a, b = job / "out_local" / name / f"{name}.samples.usdc", job / "out" / name / f"{name}.samples.usdc"
        assert (_poses(a) - _poses(b)).abs().max() < 1e-6
        assert (job / "out" / name / f"{name}.sheet.png").is_file()
        found = [[(f["id"], f["prim"], f["frame"], f["message"]) for f in x["findings"]]
                 for x in (json.loads((d / name / f"{name}.check.json").read_text())["files"][0]
                           for d in (job / "out", job / "out_local"))]
        assert found[0] == found[1] and found[0]


def test_resume_skips_current_tasks_and_reruns_a_changed_input(job):
    assert run("batch", "job.toml", "--workers", 2, cwd=job).returncode == 1
    r = run("batch", "job.toml", "--workers", 2, "--json", cwd=job)
    rep = json.loads(r.stdout)
    assert rep["done"] == 0 and rep["skipped"] == 12 and rep["failed"] == 4, rep
    with open(job / "SimpleSkin.gltf", "a") as f:  # the same glTF, other bytes
        f.write("\n")
    rep = json.loads(run("batch", "job.toml", "--workers", 2, "--json", cwd=job).stdout)
    again = {(Path(t["asset"]).name, t["step"]): t["status"] for t in rep["tasks"]}
    assert all(again[("SimpleSkin.gltf", s)] == "done" for s in ("import", "check", "sample", "render")), again
    assert all(v == "skipped" for (a, _), v in again.items() if a in ("Fox.glb", "CesiumMan.glb")), again


def test_a_task_that_kills_its_worker_is_retried(job):
    marker = job / "crashed.txt"
    r = run("batch", "job.toml", "--workers", 2, "--retries", 1, "--json", cwd=job,
            env={"USDPOSER_BATCH_CRASH_ONCE": str(marker)})
    assert marker.is_file(), "no worker died"
    rep = json.loads(r.stdout)
    assert rep["retried"] >= 1 and rep["done"] == 12 and rep["failed"] == 4, rep


@pytest.mark.parametrize("body, words", [
    ('[inputs]\npaths = ["*.glb"]\n[[steps]]\nverb = "explode"\n', "unknown verb 'explode'"),
    ('[inputs]\npaths = ["*.glb"]\n[[steps]]\nverb = "sample"\noptions = { nn = 3 }\n', "unknown option 'nn'"),
    ('[inputs]\npaths = ["nothing/*.glb"]\n[[steps]]\nverb = "import"\n', "matches no"),
    ('[inputs]\npaths = ["*.glb"]\n[[steps]]\nverb = "sample"\noptions = { n = "many" }\n', "should be a int"),
    ('[inputs]\npaths = ["*.glb"]\n[[steps]]\nverb = "render"\noptions = { samples = "@sample" }\n', "names no earlier"),
    ('[inputs]\npaths = ["*.glb"]\n', "no [[steps]]"),
    ('[inputs\n', "not TOML"),
    # TOML's other types where a string or a number belongs (a list for a verb and a number for the folder were
    # internal errors; nan and inf CPUs were taken)
    ('[inputs]\npaths = ["*.glb"]\n[[steps]]\nverb = ["import"]\n', "unknown verb ['import']"),
    ('[inputs]\npaths = ["*.glb"]\n[output]\nfolder = 5\n[[steps]]\nverb = "import"\n', "folder must be a path"),
    ('[inputs]\nmanifest = 5\n[[steps]]\nverb = "import"\n', "inputs.manifest must be a file name"),
    ('[inputs]\npaths = ["*.glb"]\n[[steps]]\nverb = "import"\nresources = { cpus = nan }\n', "finite number"),
    ('[inputs]\npaths = ["*.glb"]\n[[steps]]\nverb = "import"\nresources = { gpus = inf }\n', "finite number"),
    # absurd numbers the verbs' own command lines refuse (they failed every asset's row after import ran, or reached
    # diffusers: steps = 5000 was its ValueError)
    ('[inputs]\npaths = ["*.glb"]\n[[steps]]\nverb = "sample"\noptions = { n = -5 }\n',
     "option n = -5: -5 is not in the range 1<=x<=1000000; give what `usdposer sample -n/--num` accepts"),
    ('[inputs]\npaths = ["*.glb"]\n[[steps]]\nverb = "sample"\noptions = { steps = 5000 }\n', "1<=x<=1000"),
    ('[inputs]\npaths = ["*.glb"]\n[[steps]]\nverb = "skin"\noptions = { influences = 0 }\n', "1<=x<=64"),
    ('[inputs]\npaths = ["*.glb"]\n[[steps]]\nverb = "check"\noptions = { depth = -1.0 }\n', "option depth"),
    ('[inputs]\npaths = ["*.glb"]\n[[steps]]\nverb = "import"\noptions = { fps = nan }\n', "not a finite number"),
])
def test_job_file_errors_are_one_line_exit_2(job, body, words):
    (job / "bad.toml").write_text(body)
    r = run("batch", "bad.toml", cwd=job)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1 and words in lines[0], r.stderr
    assert not (job / "bad.out").exists()


def test_ray_missing_is_one_line_exit_3(job, monkeypatch):
    """Without ray installed, --ray names the extra (a process whose import of ray fails)."""
    stub = job / "noray"
    (stub / "ray").mkdir(parents=True)
    (stub / "ray" / "__init__.py").write_text("raise ImportError('no ray here')\n")
    r = run("batch", "job.toml", "--ray", cwd=job, env={"PYTHONPATH": str(stub)})
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 3 and len(lines) == 1 and "usdposer[cluster]" in lines[0], r.stderr
