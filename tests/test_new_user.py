"""The defects a new user hit (Step 10), each with the check that failed before it was fixed: eval on a dataset whose
characters are all held out, licences read and never guessed, one way to name a checkpoint, a model card generated
from the config, a reproducible plausibility threshold, a Readable rule that can fail, extras that list what the code
asks for, and --device naming a device the machine lacks."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ASSETS, ROOT

CLI = [sys.executable, "-m", "usdposer.commands._entry"]


def cli(*args, cwd=None):
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, cwd=cwd)


def one_line(proc) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    return lines[0]


def test_eval_on_a_dataset_whose_characters_are_all_held_out(tiny, tmp_path):
    """Evaluating a checkpoint on new characters only: the baselines' angle statistics come from the checkpoint (the
    dataset has no training split to compute them from; this was a torch.cat traceback)."""
    from usdposer.pipelines.dataset import DatasetOptions, build

    build([str(ASSETS / "quaternius" / "Trex.glb")], tmp_path / "new", DatasetOptions(holdout=("Trex",)))
    manifest = json.loads((tmp_path / "new" / "manifest.json").read_text())
    assert manifest["counts"]["train"] == 0 and manifest["counts"]["val"] == 0
    ckpt = tiny["root"] / "ckpt"
    assert json.loads((ckpt / "config.json").read_text())["prior"]["baseline_angles"]
    r = cli("eval", ckpt, tmp_path / "new", "-n", 8, "--steps", 4, "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    rows = json.loads(r.stdout)["rows"]
    assert [x["method"] for x in rows] == ["usdposer", "random-rotations", "rest+noise"]
    assert all(x["character"] == "quaternius/Trex" for x in rows)
    # nothing held out: nothing to evaluate, one line and exit 2
    build([str(ASSETS / "khronos" / "Fox.glb")], tmp_path / "seen", DatasetOptions())
    r = cli("eval", ckpt, tmp_path / "seen", "-n", 8, "--steps", 4)
    assert r.returncode == 2 and "no held-out characters" in one_line(r)


def test_licences_are_read_from_the_source_never_guessed_from_folder_names(tmp_path):
    """three.js' Soldier and Xbot are Mixamo characters in a folder of CC0 files: a folder name says nothing. The
    licence comes from the file, a licence file beside it, or --licence; else it is unknown, and the card says so."""
    from pxr import Usd, UsdGeom

    from usdposer.io.dataset import UNKNOWN_LICENCE, licence_of

    for folder in ("quaternius", "threejs", "kaykit"):
        (tmp_path / folder).mkdir()
    soldier = tmp_path / "threejs" / "Soldier.glb"
    shutil.copy(ASSETS / "quaternius" / "Knight.glb", soldier)
    bare = tmp_path / "quaternius" / "Trex.glb"
    shutil.copy(ASSETS / "quaternius" / "Trex.glb", bare)
    assert licence_of(soldier) == (UNKNOWN_LICENCE, "")
    assert licence_of(bare) == (UNKNOWN_LICENCE, "")
    # stated by the file: glTF asset.copyright, USD customLayerData
    fox = licence_of(ASSETS / "khronos" / "Fox.glb")
    assert fox[0].startswith("CC-BY 4.0") and fox[1] == "the file"
    stage = Usd.Stage.CreateNew(str(tmp_path / "stated.usda"))
    UsdGeom.Xform.Define(stage, "/A")
    stage.GetRootLayer().customLayerData = {"license": "MIT, ACME Studio"}
    stage.GetRootLayer().Save()
    assert licence_of(tmp_path / "stated.usda") == ("MIT, ACME Studio", "the file")
    # a licence file beside it, recognised by its text
    shutil.copy(ASSETS / "kaykit" / "LICENSE", tmp_path / "quaternius" / "LICENSE")
    assert licence_of(bare) == ("CC0-1.0", str(tmp_path / "quaternius" / "LICENSE"))
    # an explicit --licence wins
    assert licence_of(soldier, [("threejs/*", "Mixamo: not redistributable")]) == \
        ("Mixamo: not redistributable", "--licence threejs/*")
    # the dataset manifest records it with its source, and the model card lists the unknown ones
    r = cli("dataset", "build", soldier, bare, ASSETS / "khronos" / "Fox.glb", "-o", tmp_path / "data",
            "--holdout", "Trex", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    chars = {c["id"]: c for c in json.loads((tmp_path / "data" / "manifest.json").read_text())["characters"]}
    assert chars["threejs/Soldier"]["licence"] == UNKNOWN_LICENCE and chars["threejs/Soldier"]["licence_source"] == ""
    assert chars["quaternius/Trex"]["licence"] == "CC0-1.0"
    r = cli("train", tmp_path / "data", "-o", tmp_path / "ckpt", "--steps", 3, "--width", 16, "--depth", 1,
            "--heads", 2, "--batch-size", 8)
    assert r.returncode == 0, r.stderr[-2000:]
    card = (tmp_path / "ckpt" / "README.md").read_text()
    unknown = next(ln for ln in card.splitlines() if ln.startswith("Licence unknown"))
    assert "threejs/Soldier" in unknown and "quaternius/Trex" not in unknown


def test_every_verb_names_the_shipped_checkpoint_default(fox_usdc, tmp_path):
    """`check --checkpoint default` refused what `eval default` accepted; one resolver now serves every verb."""
    r = cli("check", fox_usdc, "--rules", "Plausibility", "--checkpoint", "default", "--json")
    assert r.returncode in (0, 1), r.stderr[-2000:]
    assert json.loads(r.stdout)["rules"] == ["Plausibility"]
    from usdposer.models.pose_prior import DEFAULT_CHECKPOINT, checkpoint_dir

    assert checkpoint_dir("default") == checkpoint_dir(None) == Path(DEFAULT_CHECKPOINT)
    bad = cli("check", fox_usdc, "--rules", "Plausibility", "--checkpoint", tmp_path / "nope")
    assert bad.returncode == 2 and "not a usdposer checkpoint" in one_line(bad)


@pytest.mark.parametrize("which", ["tiny", "default"])
def test_model_card_states_the_sampler_of_its_config(tiny, which):
    """The card said DDIM eta 0 while the checkpoint sampled with eta 1: it is generated from the config."""
    from usdposer.models.pose_prior import DEFAULT_CHECKPOINT

    ckpt = tiny["root"] / "ckpt" if which == "tiny" else Path(DEFAULT_CHECKPOINT)
    eta = json.loads((ckpt / "config.json").read_text())["prior"]["sampling"]["eta"]
    card = (ckpt / "README.md").read_text()
    stated = re.search(r"Sampling: DDIM with eta = ([0-9.]+)", card)
    assert stated and float(stated.group(1)) == float(eta)
    assert ("ancestral" in card) == (float(eta) == 1.0)


def test_model_card_of_an_edited_manifest_says_so_instead_of_failing(tiny, tmp_path):
    """The card is written after training (and at every checkpoint): a manifest whose summary fields were edited
    (counts gone, a licence that is a number) gives a card that says it cannot read them, not an error after the
    training it documents. The intact manifest's card lists every character."""
    import shutil

    from usdposer.models.cards import model_card
    from usdposer.models.pose_prior import PosePrior
    from usdposer.models.training import TrainResult

    prior = PosePrior.load(tiny["root"] / "ckpt")
    result = TrainResult(str(tiny["root"] / "ckpt"), 10, 1.0, None, 0.1, "steps")
    data = tmp_path / "data"
    shutil.copytree(tiny["root"] / "data", data)
    manifest = json.loads((data / "manifest.json").read_text())
    card = model_card(prior, result, str(data))
    assert all(f"| {c['id']} |" in card for c in manifest["characters"]) and "cannot be read" not in card
    del manifest["counts"]
    manifest["characters"][0]["licence"] = 5
    (data / "manifest.json").write_text(json.dumps(manifest))
    card = model_card(prior, result, str(data))
    assert "The dataset manifest's summary cannot be read" in card and "Architecture:" in card


def test_plausibility_threshold_is_computed_by_train_and_reproducible(tiny):
    """The shipped threshold was never computed by any code path: train calibrates it, and calibrating again on the
    same checkpoint and dataset gives the same number."""
    from usdposer.models.plausibility import calibrate_plausibility

    ckpt, data = tiny["root"] / "ckpt", tiny["root"] / "data"
    stored = json.loads((ckpt / "config.json").read_text())["prior"]["plausibility"]
    again = calibrate_plausibility(ckpt, data, quantile=stored["quantile"])
    assert again["poses"] == stored["poses"] and abs(again["threshold"] - stored["threshold"]) < 1e-6


def test_default_checkpoint_threshold_comes_from_its_dataset():
    from usdposer.models.pose_prior import DEFAULT_CHECKPOINT

    cal = json.loads((Path(DEFAULT_CHECKPOINT) / "config.json").read_text())["prior"]["plausibility"]
    assert cal["threshold"] > cal["median"] > 0 and cal["poses"] > 100 and cal["dataset"]


def test_readable_rule_fails_on_unreadable_and_skeleton_less_files(tmp_path):
    """The Readable rule could never fail: run alone, it fails a file that does not open (an error, exit 2) and
    warns on one without a Skeleton (not a rig: a folder of shots holds sets and props; --strict counts it)."""
    from pxr import Usd, UsdGeom

    from usdposer.validate.engine import check_paths

    (tmp_path / "garbage.usda").write_text("#usda 1.0\n(\n  this is not usd\n")
    stage = Usd.Stage.CreateNew(str(tmp_path / "mesh_only.usda"))
    UsdGeom.Mesh.Define(stage, "/Cube")
    stage.GetRootLayer().Save()
    report = check_paths([str(tmp_path)], ["Readable"])
    ids = {Path(f.path).name: [(f"{x.rule}.{x.code}", x.severity) for x in f.findings] for f in report.files}
    assert ids == {"garbage.usda": [("Readable.CannotOpen", "error")],
                   "mesh_only.usda": [("Readable.NoSkeleton", "warning")]}
    assert report.exit_code == 2
    alone = check_paths([str(tmp_path / "mesh_only.usda")], ["Readable"])
    assert alone.exit_code == 0 and check_paths([str(tmp_path / "mesh_only.usda")], ["Readable"], strict=True).exit_code == 1


def test_every_optional_import_names_an_extra_that_installs_it():
    """`require("transformers", extra="video")` pointed at an extra without transformers: every require() call in
    the code names an extra of pyproject.toml that lists the module's distribution."""
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    dist = {"gsplat": "gsplat", "transformers": "transformers", "ray": "ray", "accelerate": "accelerate",
            "imageio_ffmpeg": "imageio-ffmpeg", "bpy": "bpy"}
    calls = []
    for folder in ("usdposer", "models", "pipelines", "commands"):
        for f in (ROOT / folder).rglob("*.py"):
            calls += re.findall(r'require\(\s*"([\w.]+)"\s*,\s*extra\s*=\s*"(\w+)"', f.read_text())
    assert calls
    for module, extra in calls:
        assert extra in extras, f"require({module!r}, extra={extra!r}): no such extra in pyproject.toml"
        name = dist.get(module.split(".")[0], module.split(".")[0])
        listed = [re.split(r"[<>=\[ ;]", req)[0].lower() for req in extras[extra]]
        assert name.lower() in listed, f"extra {extra!r} does not install {name} (asked for by require({module!r}))"


def test_a_device_the_machine_lacks_is_one_line_and_exit_2(fox_usdc, tmp_path):
    import torch

    out = tmp_path / "s.usdc"
    r = cli("sample", fox_usdc, "-n", 1, "--device", "tpu", "-o", out)
    assert r.returncode == 2 and "--device tpu" in one_line(r) and not out.exists()
    if not torch.cuda.is_available():
        r = cli("sample", fox_usdc, "-n", 1, "--device", "cuda", "-o", out)
        assert r.returncode == 3 and "no CUDA device" in one_line(r) and not out.exists()  # a missing device: 3
