"""Step 4: rules on crafted bad cases and clean assets, the check verb (formats, exit codes, unreadable files), learned
limits, UsdValidation registration, the exact and smooth self-intersection, and gradchecks of the energies."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
import torch
from conftest import ASSETS, ROOT, SHARED, require_shared

from usdposer.core.intersect import capsule_residual, segment_distance, triangles_intersect
from usdposer.core.limits import swing_twist, swing_twist_residual
from usdposer.core.rotations import axis_angle_to_quat, matrix_to_quat, quat_multiply, quat_to_matrix
from usdposer.io.importers import import_any
from usdposer.io.read_skel import read_asset
from usdposer.io.write_skel import provenance, write_clip_layer
from usdposer.types import Clip, Pose
from usdposer.validate import RULES, CheckOptions, check_paths, find_rules

CLI = [sys.executable, "-m", "usdposer.commands._entry"]
I4 = "((1,0,0,0),(0,1,0,0),(0,0,1,0),(0,0,0,1))"
UP = "((1,0,0,0),(0,1,0,0),(0,0,1,0),(0,1,0,1))"


def stage_text(*, meta: str = 'upAxis = "Y"\n    metersPerUnit = 1\n    timeCodesPerSecond = 24',
               joints: str = '["A", "A/B", "A/B/C"]', weights: str = "[1, 1, 1, 1]", indices: str = "[0, 1, 1, 2]",
               anim: str | None = None) -> str:
    """A 3-joint Y-up metre stage with a two-triangle skinned quad, and a complete one-frame animation."""
    anim = anim or ('uniform token[] joints = ["A", "A/B", "A/B/C"]\n'
                    '            quatf[] rotations = [(1,0,0,0), (1,0,0,0), (1,0,0,0)]\n'
                    '            float3[] translations = [(0,0,0), (0,1,0), (0,1,0)]\n'
                    '            half3[] scales = [(1,1,1), (1,1,1), (1,1,1)]')
    return f"""#usda 1.0
(
    {meta}
)
def SkelRoot "Root" (prepend apiSchemas = ["SkelBindingAPI"]) {{
    rel skel:skeleton = </Root/Skel>
    def Skeleton "Skel" (prepend apiSchemas = ["SkelBindingAPI"]) {{
        uniform token[] joints = {joints}
        uniform matrix4d[] bindTransforms = [{I4}, ((1,0,0,0),(0,1,0,0),(0,0,1,0),(0,1,0,1)), ((1,0,0,0),(0,1,0,0),(0,0,1,0),(0,2,0,1))]
        uniform matrix4d[] restTransforms = [{I4}, {UP}, {UP}]
        rel skel:animationSource = </Root/Skel/Anim>
        def SkelAnimation "Anim" {{
            {anim}
        }}
    }}
    def Mesh "Quad" (prepend apiSchemas = ["SkelBindingAPI"]) {{
        point3f[] points = [(-0.1,0,0), (0.1,0,0), (0.1,2,0), (-0.1,2,0)]
        int[] faceVertexCounts = [3, 3]
        int[] faceVertexIndices = [0, 1, 2, 0, 2, 3]
        int[] primvars:skel:jointIndices = {indices} (elementSize = 1; interpolation = "vertex")
        float[] primvars:skel:jointWeights = {weights} (elementSize = 1; interpolation = "vertex")
        matrix4d primvars:skel:geomBindTransform = {I4}
        rel skel:skeleton = </Root/Skel>
    }}
}}
"""


BAD_CASES = {
    "StageMetadata.MissingUpAxis": {"meta": "metersPerUnit = 1\n    timeCodesPerSecond = 24"},
    "SkinBinding.WeightsNotNormalized": {"weights": "[1, 0.5, 1, 1]"},
    "SkinBinding.IndexOutOfRange": {"indices": "[0, 1, 7, 2]"},
    "SkinBinding.SizeMismatch": {"indices": "[0, 1, 1]"},
    "SkelAnimComplete.MissingJointComponent": {"anim": 'uniform token[] joints = ["A"]\n'
                                                       '            quatf[] rotations = [(1,0,0,0)]'},
    "JointOrder.ChildBeforeParent": {"joints": '["A/B", "A", "A/B/C"]'},
    "NonFinite.Animation": {"anim": 'uniform token[] joints = ["A"]\n            quatf[] rotations = [(1,0,0,0)]\n'
                                    '            float3[] translations = [(0,nan,0)]\n            half3[] scales = [(1,1,1)]'},
    "UniqueJointNames.DuplicateLeafName": {"joints": '["A", "A/B", "A/B/B"]'},
}


def test_clean_small_stage_is_silent(tmp_path):
    path = tmp_path / "clean.usda"
    path.write_text(stage_text())
    report = check_paths([str(path)])
    assert report.findings == [] and report.exit_code == 0 and report.frames == 1


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_each_file_rule_fires_on_its_bad_case(tmp_path, case):
    path = tmp_path / "bad.usda"
    path.write_text(stage_text(**BAD_CASES[case]))
    report = check_paths([str(path)])
    ids = {f.id for f in report.findings}
    assert case in ids, report.findings
    rule = case.split(".")[0]
    # only this rule speaks (the others stay silent on the otherwise clean stage)
    assert {i.split(".")[0] for i in ids} <= {rule, "UsdDiagnostics"}, ids
    expected = 1 if RULES[rule].severity == "failed" or case == "SkelAnimComplete.MissingJointComponent" else 0
    if case == "SkinBinding.WeightsNotNormalized":
        expected = 0  # a warning (USD.md): the skin still deforms, only scaled
    assert report.exit_code == expected
    assert check_paths([str(path)], strict=True).exit_code == 1


@pytest.fixture(scope="module")
def fox(tmp_path_factory):
    out = tmp_path_factory.mktemp("fox") / "fox.usdc"
    import_any(ASSETS / "khronos" / "Fox.glb", out)
    asset = read_asset(out)
    return out, asset, asset.rigs[0]


def _clip_layer(src: Path, rig, rotations: torch.Tensor, out: Path, name: str = "Check", translations=None,
                scales=None) -> Path:
    B = len(rotations)
    rest = Pose.rest(rig, B)
    clip = Clip(rotations.double(), rest.translations if translations is None else translations,
                rest.scales if scales is None else scales, name=name)
    return write_clip_layer(src, out, rig, [clip], prov=provenance("test"))


def _rotate(rig, joint: str, axis, degrees: float, base: Pose | None = None) -> torch.Tensor:
    pose = base or Pose.rest(rig)
    j = rig.joint_index(joint)
    q = pose.rotations.clone()
    aa = torch.tensor(axis, dtype=torch.float64) * math.radians(degrees)
    q[0, j] = quat_multiply(q[0, j], axis_angle_to_quat(aa))
    return q


def _mine(report, name="Check"):
    return [f for f in report.findings if f.prim.endswith("/" + name)]


def test_fox_leg_rotated_into_the_body_is_self_intersecting(fox, tmp_path):
    src, _, rig = fox
    bad = _clip_layer(src, rig, torch.cat([Pose.rest(rig).rotations, _rotate(rig, "b_LeftLeg01_015", [0, 0, 1], 110)]),
                      tmp_path / "leg.usdc")
    found = _mine(check_paths([str(bad)], ["SelfIntersection"]))
    assert found and all(f.frame == 1.0 for f in found), found  # frame 0 (rest) is clean, frame 1 is not
    assert any("b_LeftFoot" in f.joint and "b_Spine" in f.joint for f in found)
    assert all(f.value > 0 and "deep" in f.message for f in found)


@pytest.mark.parametrize("budget,static_pairs", [(20_000_000, 4_000_000), (2_000, 0)])
def test_broad_phase_finds_what_testing_every_triangle_pair_finds(fox, budget, static_pairs, monkeypatch):
    """The self-intersection broad phase (part boxes, spans, triangle boxes, plane separation) loses nothing: on the
    Fox in random poses (every joint turned up to 70 degrees about a random axis, the rig's own parts crossing on most
    frames) its contacts equal an all-pairs exact test of every triangle of every allowed part pair. A small budget
    and no cached masks run what a studio mesh's large parts take (a sweep instead of every triangle pair at once,
    blend regions and shared vertices filtered per candidate pair)."""
    from usdposer.core.posing import skin
    from usdposer.validate import selfintersect
    from usdposer.validate.selfintersect import TriangleParts

    monkeypatch.setattr(selfintersect, "STATIC_PAIRS", static_pairs)

    _, _, rig = fox
    parts = TriangleParts.from_rig(rig)
    g = torch.Generator().manual_seed(3)
    T = 6
    axis = torch.nn.functional.normalize(torch.randn(T, rig.num_joints, 3, generator=g, dtype=torch.float64), dim=-1)
    angle = torch.rand(T, rig.num_joints, 1, generator=g, dtype=torch.float64) * math.radians(70)
    pose = Pose.rest(rig, T)
    pose.rotations[:] = quat_multiply(pose.rotations, axis_angle_to_quat(axis * angle))
    points = torch.cat(skin(rig, pose, backend="torch"), 1).float()  # (T, V, 3)
    got = {(c.frame, c.a, c.b, c.crossings) for c in parts.find(points, budget=budget)}

    F, part, faces = len(parts.faces), parts.part, parts.faces
    ia, ib = torch.triu_indices(F, F, 1)
    keep = parts.allowed[part[ia], part[ib]]
    ia, ib = ia[keep], ib[keep]
    swap = part[ia] > part[ib]
    ia, ib = torch.where(swap, ib, ia), torch.where(swap, ia, ib)
    shared = (faces[ia][:, :, None] == faces[ib][:, None, :]).flatten(1).any(1)
    blend = (parts.influences[ia].float() @ parts.near * parts.influences[ib].float()).sum(1) > 0
    ia, ib = ia[~(shared | blend)], ib[~(shared | blend)]
    want = set()
    for f in range(T):
        hit = triangles_intersect(points[f, faces[ia]].double(), points[f, faces[ib]].double())
        pairs = torch.stack([part[ia[hit]], part[ib[hit]]], 1)
        uniq, count = torch.unique(pairs, dim=0, return_counts=True)
        want |= {(f, a, b, n) for (a, b), n in zip(uniq.tolist(), count.tolist())}
    assert len(want) >= T, want  # the test has teeth: parts do cross
    assert got == want


@pytest.mark.parametrize("budget", [10_000_000, 5_000, 50])
def test_box_pairs_finds_every_overlapping_pair_once(budget):
    """The broad phase's box overlap, dense or swept (a small budget), on random boxes of two sets over three
    frames, some of them a hundred times wider than the rest and some flat: every overlapping pair, once."""
    from usdposer.validate.selfintersect import box_pairs

    g = torch.Generator().manual_seed(0)

    def boxes(n):
        lo = torch.rand(3, n, 3, generator=g)
        size = torch.rand(3, n, 3, generator=g) * 0.05
        size[:, :5] *= 100  # wide
        size[:, 5:10, 1] = 0  # flat
        return lo, lo + size

    la, ha = boxes(300)
    lb, hb = boxes(400)
    want = torch.nonzero(((la[:, :, None] <= hb[:, None]) & (lb[:, None] <= ha[:, :, None])).all(-1))
    got = torch.cat([torch.stack(t, 1) for t in box_pairs(la, ha, lb, hb, budget)])
    assert len(got) == len(torch.unique(got, dim=0)) == len(want) > 300
    assert torch.equal(torch.unique(got, dim=0), torch.unique(want, dim=0))


def test_ground_and_drift_fire_and_stay_silent_on_rest(fox, tmp_path):
    src, _, rig = fox
    rest = Pose.rest(rig, 3)
    from usdposer.core.posing import character_height

    h = character_height(rig)
    trans = rest.translations.clone()
    trans[2, 0, 1] -= 0.3 * h  # the root sinks by 30% of the height on frame 2
    scales = rest.scales.clone()
    scales[1, rig.joint_index("b_Head_05")] *= 1.5  # a scale pop on frame 1
    layer = _clip_layer(src, rig, rest.rotations, tmp_path / "g.usdc", translations=trans, scales=scales)
    found = _mine(check_paths([str(layer)], ["Ground", "BoneDrift"]))
    ids = {(f.id, f.frame, f.severity) for f in found}
    assert ("Ground.Penetration", 2.0, "failed") in ids
    assert ("BoneDrift.ScaleDrift", 1.0, "warning") in ids
    assert not any(f.frame == 0.0 for f in found)  # the rest frame is clean


def test_jitter_flags_a_snap_and_a_trembling_clip_and_not_the_smooth_walk(fox, tmp_path):
    """Fox's authored Walk is silent at the defaults; one joint snapped 60 degrees for one frame (120 degrees of change in its step) is a Pop at that
    joint and frame; 10 degrees of noise on every joint and axis trembles, and the finding's value is the clip's jitter exactly
    as ``motion_metrics`` (distill / track reports) measures it."""
    from usdposer.core.motion import motion_metrics

    src, asset, rig = fox
    walk = next(c for c in asset.clips[rig.skeleton_path] if c.path.endswith("Walk"))
    layer = _clip_layer(src, rig, walk.rotations, tmp_path / "walk.usdc", translations=walk.translations)
    assert _mine(check_paths([str(layer)], ["Jitter"])) == []

    q = walk.rotations.clone()
    j, f = rig.joint_index("b_Head_05"), 9
    q[f, j] = quat_multiply(q[f, j], axis_angle_to_quat(torch.tensor([0.0, 0.0, math.radians(60)], dtype=q.dtype)))
    snap = _mine(check_paths([str(_clip_layer(src, rig, q, tmp_path / "snap.usdc", translations=walk.translations))],
                             ["Jitter"]))
    assert {(x.id, x.joint.split("/")[-1], x.frame) for x in snap} >= {("Jitter.Pop", "b_Head_05", 9.0)}, snap
    assert all(x.joint.split("/")[-1] == "b_Head_05" and x.frame in (8.0, 9.0, 10.0) for x in snap), snap

    g = torch.Generator().manual_seed(0)
    noise = axis_angle_to_quat(torch.randn(*q.shape[:-1], 3, generator=g, dtype=q.dtype) * math.radians(10))
    shaky = quat_multiply(walk.rotations, noise)
    shaky_layer = _clip_layer(src, rig, shaky, tmp_path / "shaky.usdc", translations=walk.translations)
    found = [x for x in _mine(check_paths([str(shaky_layer)], ["Jitter"])) if x.code == "Trembling"]
    assert len(found) == 1 and found[0].severity == "warning", found
    clip = Clip(shaky, walk.translations, walk.scales)
    assert found[0].value == pytest.approx(motion_metrics(rig, clip).jitter, rel=1e-4)
    loose = check_paths([str(shaky_layer)], ["Jitter"], CheckOptions(jitter=found[0].value * 1.01, pop=1e9))
    assert _mine(loose) == []


def test_rotation_acceleration_ignores_quaternion_sign_and_is_zero_for_constant_speed():
    from usdposer.core.motion import rotation_acceleration

    t = torch.arange(20, dtype=torch.float64)[:, None, None]
    spin = axis_angle_to_quat(t * torch.tensor([0.0, 0.3, 0.0], dtype=torch.float64))  # (20, 1, 4), 17 deg/frame
    flipped = spin * torch.where(torch.arange(20) % 2 == 0, 1.0, -1.0).double()[:, None, None]
    a = rotation_acceleration(spin)
    assert a[0].isnan().all() and a[-1].isnan().all()
    assert torch.allclose(a[1:-1], torch.zeros(18, 1, dtype=torch.float64), atol=1e-4)
    assert torch.allclose(rotation_acceleration(flipped)[1:-1], a[1:-1], atol=1e-4)


def test_dog_beyond_its_mjcf_hinge_ranges_is_flagged(tmp_path):
    from scipy.spatial.transform import Rotation

    src = tmp_path / "dog.usdc"
    import_any(ASSETS / "mujoco" / "dog" / "dog.xml", src)
    rig = read_asset(src).rigs[0]
    lim = rig.limits.double()  # (J, 3, 2) radians
    mid = torch.nan_to_num(lim.mean(-1), nan=0.0)  # (J, 3) inside every range
    beyond = mid.clone()
    span = (lim[..., 1] - lim[..., 0]).nan_to_num(0)
    j, ax = divmod(int(span.flatten().argmax()), 3)
    beyond[j, ax] = lim[j, ax, 1] + math.radians(25)
    from usdposer.core.kinematics import decompose_trs

    q_rest = decompose_trs(rig.rest_local)[1]

    def rotations(e):
        q = torch.from_numpy(Rotation.from_euler("xyz", e.numpy()).as_quat()[:, [3, 0, 1, 2]])
        return quat_multiply(q_rest, q)[None]

    layer = _clip_layer(src, rig, torch.cat([rotations(mid), rotations(beyond)]), tmp_path / "dog_limits.usdc")
    found = _mine(check_paths([str(layer)], ["JointLimits"]))
    assert [(f.joint, f.frame, f.code) for f in found] == [(rig.joints[j], 1.0, "OutsideRange")], found
    assert f"{math.degrees(float(beyond[j, ax])):.1f}°" in found[0].message


def test_fifty_files_one_truncated_reports_all_and_exits_2(tmp_path):
    folder = tmp_path / "shots"
    folder.mkdir()
    text = stage_text()
    for i in range(50):
        (folder / f"shot_{i:02d}.usda").write_text(text if i != 17 else text[: len(text) // 2])
    proc = subprocess.run(CLI + ["check", str(folder), "--json"], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    data = json.loads(proc.stdout)
    assert data["summary"]["files"] == 50 and data["summary"]["error"] == 1
    bad = [f for f in data["files"] if not f["readable"]]
    assert [Path(f["path"]).name for f in bad] == ["shot_17.usda"]
    assert bad[0]["findings"][0]["id"] == "Readable.CannotOpen"
    assert sum(f["frames"] for f in data["files"]) == 49
    text_out = subprocess.run(CLI + ["check", str(folder / "shot_17.usda")], capture_output=True, text=True).stdout
    line = next(x for x in text_out.splitlines() if "Readable.CannotOpen" in x)
    assert line.count("shot_17.usda") == 2, line  # the finding's file, and the reader's own quote of the layer
    assert f"shot_17.usda: {folder}" not in line  # the file named once before the message, not twice


def test_stage_metadata_that_cannot_be_meant_is_an_error_not_a_crash(tmp_path):
    """metersPerUnit 0 (every length divided by it: an internal error before), -1 (lengths mirrored, silently) or
    timeCodesPerSecond 0 make a shot unreadable: `check` reports Readable.CannotOpen naming the metadata and exits 2,
    and the good shots beside it are checked as before."""
    text = stage_text()
    assert "metersPerUnit = 1\n" in text and "timeCodesPerSecond = 24" in text
    bad = {"mpu_zero.usda": text.replace("metersPerUnit = 1\n", "metersPerUnit = 0\n"),
           "mpu_negative.usda": text.replace("metersPerUnit = 1\n", "metersPerUnit = -1\n"),
           "tcps_zero.usda": text.replace("timeCodesPerSecond = 24", "timeCodesPerSecond = 0"),
           "good.usda": text}
    for name, t in bad.items():
        (tmp_path / name).write_text(t)
    proc = subprocess.run(CLI + ["check", str(tmp_path), "--json"], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    files = {Path(f["path"]).name: f for f in json.loads(proc.stdout)["files"]}
    for name, phrase in (("mpu_zero.usda", "metersPerUnit is 0;"), ("mpu_negative.usda", "metersPerUnit is -1;"),
                         ("tcps_zero.usda", "timeCodesPerSecond is 0;")):
        finding = files[name]["findings"][0]
        assert finding["id"] == "Readable.CannotOpen" and phrase in finding["message"], finding
        assert "internal" not in finding["message"]
    assert files["good.usda"]["readable"] and files["good.usda"]["frames"] > 0


def test_check_cli_formats_and_exit_codes(tmp_path):
    clean, bad = tmp_path / "clean.usda", tmp_path / "bad.usda"
    clean.write_text(stage_text())
    bad.write_text(stage_text(**BAD_CASES["JointOrder.ChildBeforeParent"]))
    warn = tmp_path / "warn.usda"
    warn.write_text(stage_text(**BAD_CASES["StageMetadata.MissingUpAxis"]))
    run = lambda *a: subprocess.run(CLI + ["check", *map(str, a)], capture_output=True, text=True)
    ok = run(clean)
    assert ok.returncode == 0 and ok.stdout.strip().endswith("Success!")
    failed = run(bad, clean)
    assert failed.returncode == 1 and "Failed: (usdposer:JointOrder.ChildBeforeParent)" in failed.stdout
    assert run(warn).returncode == 0 and run(warn, "--strict").returncode == 1
    junit = run(bad, clean, "--format", "junit")
    root = ET.fromstring(junit.stdout.split("\n", 1)[1])
    assert root.get("failures") == "1" and len(root.findall("testsuite")) == 2
    assert root.find(".//failure").get("type") == "JointOrder.ChildBeforeParent"
    out = tmp_path / "report.xml"
    assert run(bad, "--format", "junit", "-o", out).returncode == 1 and ET.parse(out).getroot().tag == "testsuites"
    rules = run("--list-rules")
    assert rules.returncode == 0 and all(f"usdposer:{n}" in rules.stdout for n in RULES)
    only = json.loads(run(bad, "--rules", "StageMetadata", "--json").stdout)
    assert only["rules"] == ["StageMetadata"] and only["summary"]["exit_code"] == 0
    unknown = run(clean, "--rules", "Nope")
    assert unknown.returncode == 2 and "unknown rule 'Nope'" in unknown.stderr
    missing = run(tmp_path / "nope.usda", clean)
    assert missing.returncode == 2 and "Readable.NotFound" in missing.stdout
    before = bad.read_bytes()
    run(bad, "--json")
    assert bad.read_bytes() == before  # inputs are never modified


def test_waivers_accept_findings_with_a_reason(tmp_path):
    bad = tmp_path / "bad.usda"
    bad.write_text(stage_text(**BAD_CASES["JointOrder.ChildBeforeParent"]))
    waivers = [{"file": "*/bad.usda", "rule": "JointOrder", "reason": "legacy rig, fixed upstream"}]
    report = check_paths([str(bad)], waivers=waivers)
    assert report.exit_code == 0 and report.findings[0].waived == "legacy rig, fixed upstream"
    from usdposer.validate.engine import read_waivers

    (tmp_path / "w.json").write_text("{}")
    with pytest.raises(Exception, match="not a waivers file"):
        read_waivers(tmp_path / "w.json")


def test_shared_clips_have_no_unexplained_failed_checks():
    """Every shared asset, every clip, every frame, every rule: the failed findings are exactly the explained ones of
    tests/data/shared_waivers.json (death clips sinking into the ground, limbs crossing in stylised game clips)."""
    require_shared()
    waivers = json.loads((ROOT / "tests" / "data" / "shared_waivers.json").read_text())["waivers"]
    report = check_paths([str(SHARED)], waivers=waivers)
    failed = [f for f in report.findings if f.severity in ("failed", "error") and not f.waived]
    assert failed == [], "\n".join(f"{f.file} {f.prim} {f.id}: {f.message}" for f in failed)
    used = {(w["file"], w["rule"], w.get("prim", "*")) for w in waivers
            if any(f.waived == w["reason"] for f in report.findings)}
    assert used == {(w["file"], w["rule"], w.get("prim", "*")) for w in waivers}, "stale waivers"
    assert report.exit_code == 0 and report.frames > 15000


def test_learned_limits_flag_hyperextension(tiny, fox, tmp_path):
    out = tmp_path / "limits.json"
    proc = subprocess.run(CLI + ["limits", "learn", str(tiny["root"] / "data"), "-o", str(out), "--json"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    fox_lim = [c for c in data["characters"] if "Fox" in c["id"]][0]
    src, _, rig = fox
    j = rig.joint_index("b_Neck_04")
    assert fox_lim["swing_twist"][j][2] is not None and fox_lim["swing_twist"][j][2] < 120
    twist_axis = torch.tensor(fox_lim["axes"][j], dtype=torch.float64)
    swing_axis = torch.linalg.cross(twist_axis, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    if swing_axis.norm() < 0.1:
        swing_axis = torch.linalg.cross(twist_axis, torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))
    swing_axis = (swing_axis / swing_axis.norm()).tolist()
    layer = _clip_layer(src, rig, torch.cat([Pose.rest(rig).rotations, _rotate(rig, "b_Neck_04", swing_axis, 150)]),
                        tmp_path / "neck.usdc")
    proc = subprocess.run(CLI + ["check", str(layer), "--rules", "JointLimits", "--limits", str(out), "--json"],
                          capture_output=True, text=True)
    found = [f for r in json.loads(proc.stdout)["files"] for f in r["findings"] if f["prim"].endswith("/Check")]
    assert any(f["id"] == "JointLimits.Hyperextension" and f["joint"].endswith("b_Neck_04") and f["frame"] == 1.0
               for f in found), found
    assert not any(f["frame"] == 0.0 for f in found)


def test_plausibility_with_the_default_checkpoint(fox, tmp_path):
    src, _, rig = fox
    g = torch.Generator().manual_seed(0)
    aa = torch.randn(4, rig.num_joints, 3, generator=g, dtype=torch.float64) * 1.5
    from usdposer.core.kinematics import decompose_trs

    q_rest = decompose_trs(rig.rest_local)[1]
    wild = quat_multiply(q_rest.expand(4, -1, -1), axis_angle_to_quat(aa))
    layer = _clip_layer(src, rig, torch.cat([Pose.rest(rig).rotations, wild]), tmp_path / "wild.usdc")
    from usdposer.models.plausibility import make_scorer

    scorer, thr = make_scorer(None)
    report = check_paths([str(layer)], ["Plausibility"], CheckOptions(scorer=scorer, score_threshold=thr))
    frames = {f.frame for f in _mine(report)} | {t for f in _mine(report) for t in (f.frames or ())}
    assert 0.0 not in frames and frames & {1.0, 2.0, 3.0, 4.0}


def test_usd_validation_plugin_in_a_stock_process(tmp_path):
    bad = tmp_path / "bad.usda"
    bad.write_text(stage_text(**BAD_CASES["SkelAnimComplete.MissingJointComponent"]))
    script = (
        "import sys\nfrom pxr import Usd, UsdValidation as V\nreg = V.ValidationRegistry()\n"
        "names = [m.name for m in reg.GetAllValidatorMetadata() if m.name.startswith('usdposer:')]\n"
        "assert 'usdposer' not in sys.modules\n"
        "vs = reg.GetOrLoadValidatorsByName(names)\n"
        "errs = V.ValidationContext(vs).Validate(Usd.Stage.Open(sys.argv[1]))\n"
        "print(len(names)); [print(e.GetErrorAsString()) for e in errs]\n")
    env = {**os.environ, "PXR_PLUGINPATH_NAME": str(ROOT / "schemas" / "usdPoserValidators" / "resources")}
    proc = subprocess.run([sys.executable, "-c", script, str(bad)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert int(lines[0]) == len(RULES)
    assert any(line.startswith("Error: (usdposer:SkelAnimComplete.MissingJointComponent)") for line in lines[1:])


def test_plugin_info_lists_every_rule():
    from usdposer.schemas.validators import PLUGIN_INFO, plugin_info, validate_stage

    assert json.loads(PLUGIN_INFO.read_text()) == plugin_info(), "regenerate schemas/usdPoserValidators plugInfo.json"
    errs = validate_stage(ASSETS / "openusd" / "skinnedArm.usda")
    assert {e.GetValidator().GetMetadata().name for e in errs} <= {f"usdposer:{n}" for n in RULES}


# ------------------------------------------------------------------------------------------- exact and smooth tests


def test_triangle_test_by_hand():
    a = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0]]] * 4, dtype=torch.float64)
    b = torch.tensor([
        [[0.2, 0.2, -1], [0.2, 0.2, 1], [0.3, 0.5, 1]],  # pierces a
        [[0.2, 0.2, 0.1], [0.2, 0.3, 1], [0.3, 0.5, 1]],  # above a
        [[2.0, 2, -1], [2, 2, 1], [3, 3, 1]],  # far away
        [[1.0, 0, 0], [1, 0, 1], [1, 1, 1]],  # touches a corner only: shares no interior
    ], dtype=torch.float64)
    assert triangles_intersect(a, b).tolist()[:3] == [True, False, False]
    assert triangles_intersect(b, a).tolist()[:3] == [True, False, False]


def test_proxy_is_zero_at_rest_and_positive_when_a_leg_enters_the_body(fox):
    from usdposer.core.posing import joint_transforms
    from usdposer.core.proxy import CapsuleProxy

    _, _, rig = fox
    px = CapsuleProxy.from_rig(rig)
    r = rig.to(torch.float64)
    rest = Pose.rest(r)
    bent = Pose(_rotate(r, "b_LeftLeg01_015", [0, 0, 1], 110), rest.translations, rest.scales)
    pos = lambda p: joint_transforms(r, p)[..., :3, 3]
    assert float(px.residual(pos(rest)).abs().max()) == 0.0
    assert float(px.residual(pos(bent)).max()) > 0.0


def test_guided_ik_terms_with_a_graph_through_the_chosen_rows_equal_the_full_ones(fox):
    """IK's intersection term picks its 16 deepest capsule pairs, and its ground terms the 16 lowest hull points,
    without a graph, then recomputes only those with one: values and gradients equal the full computation's on the
    Fox with legs folded into the body (many pairs overlap, many points go low)."""
    from usdposer.core.energy import GROUND_POINTS, largest
    from usdposer.core.ik import PoseObjective
    from usdposer.core.posespace import IDENTITY_6D
    from usdposer.core.proxy import CapsuleProxy
    from usdposer.core.skinning import skinned_heights

    _, _, rig = fox
    px = CapsuleProxy.from_rig(rig)
    r = rig.to(torch.float64)
    g = torch.Generator().manual_seed(1)
    six = torch.tensor(IDENTITY_6D, dtype=torch.float64).expand(3, r.num_joints, 6).clone()
    six += 0.6 * torch.randn(six.shape, generator=g, dtype=torch.float64)
    obj = PoseObjective(r, torch.tensor([0]), torch.zeros(1, 3), torch.ones(1))
    assert len(px.pairs) > 16 and len(obj.hull[0]) > GROUND_POINTS

    def both(fn_fast, fn_full):
        x1, x2 = six.clone().requires_grad_(True), six.clone().requires_grad_(True)
        a, b = fn_fast(x1), fn_full(x2)
        assert torch.allclose(a, b, atol=1e-12), (a, b)
        up = torch.rand(a.shape, generator=g, dtype=torch.float64)
        (ga,), (gb,) = torch.autograd.grad((a * up).sum(), x1), torch.autograd.grad((b * up).sum(), x2)
        assert torch.allclose(ga, gb, atol=1e-10)
        return b

    pos = lambda x: obj.pose(x).positions  # noqa: E731
    res = both(lambda x: px.largest(pos(x), 0.5, 16), lambda x: largest(px.residual(pos(x), 0.5), 16))
    assert (res > 0).sum() >= 4  # the test has teeth: pairs overlap

    def full_hull(x):  # every hull point skinned with a graph, grounded, the lowest 16
        from usdposer.core.kinematics import forward_kinematics
        from usdposer.core.posespace import local_from_6d

        world = r.skel_to_world @ forward_kinematics(local_from_6d(r, x), r.parents)
        P, I, W = obj.hull
        y = skinned_heights(P, I, W, world @ obj.bind_inv)
        y = y - y.min(1, keepdim=True).values
        return y.topk(GROUND_POINTS, 1, largest=False).values

    both(lambda x: obj.pose(x).hull_y.sort(1).values, full_hull)


def test_energies_gradcheck_float64():
    g = torch.Generator().manual_seed(0)
    p = [torch.randn(2, 5, 3, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(4)]
    r = torch.rand(5, dtype=torch.float64, generator=g) + 1.0  # large radii: every pair overlaps
    zero = torch.zeros(5, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda *x: segment_distance(*x), tuple(p))
    assert torch.autograd.gradcheck(lambda *x: capsule_residual(*x, r, r, zero, 2.0), tuple(p))
    # swing-twist limit energy on a 4-joint chain, away from the hinge points of the excess
    axes = torch.nn.functional.normalize(torch.randn(4, 3, generator=g, dtype=torch.float64), dim=-1)
    lim = torch.tensor([[-0.2, 0.2, 0.3]] * 4, dtype=torch.float64)
    aa = (torch.randn(2, 4, 3, generator=g, dtype=torch.float64) * 0.8).requires_grad_()
    f = lambda a: swing_twist_residual(quat_to_matrix(axis_angle_to_quat(a)), axes, lim)
    assert (f(aa) > 0).any()
    assert torch.autograd.gradcheck(f, (aa,))


def test_swing_twist_matches_scipy():
    from scipy.spatial.transform import Rotation

    g = torch.Generator().manual_seed(1)
    aa = torch.randn(50, 1, 3, generator=g, dtype=torch.float64)
    R = quat_to_matrix(axis_angle_to_quat(aa))
    axis = torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64)
    swing, twist = swing_twist(R, axis)
    q = matrix_to_quat(R)[:, 0]
    # twist quaternion about Y, swing = the rest: R = swing * twist
    tw = torch.nn.functional.normalize(torch.stack([q[:, 0], 0 * q[:, 1], q[:, 2], 0 * q[:, 3]], -1), dim=-1)
    swing_q = Rotation.from_matrix(R[:, 0].numpy()) * Rotation.from_quat(tw[:, [1, 2, 3, 0]].numpy()).inv()
    assert torch.allclose(swing[:, 0], torch.from_numpy(swing_q.magnitude()), atol=1e-9)
    assert torch.allclose(twist[:, 0].abs(), torch.from_numpy(Rotation.from_quat(tw[:, [1, 2, 3, 0]].numpy()).magnitude()),
                          atol=1e-9)


def test_rule_names_resolve_and_unknown_names_fail():
    assert [r.name for r in find_rules(["joint-limits", "usdposer:Ground"])] == ["JointLimits", "Ground"]
    with pytest.raises(Exception, match="unknown rule"):
        find_rules(["NoSuchRule"])


def test_bundled_assets_check_clean_of_errors(tmp_path):
    """The bundled assets read, and none of them has a file-level failure."""
    for f in ("khronos/Fox.glb", "khronos/CesiumMan.glb", "mujoco/dog/dog.xml", "mujoco/dog/dog_skin.skn"):
        shutil.copy(ASSETS / f, tmp_path / Path(f).name)
    report = check_paths([str(tmp_path)], ["Readable", "SkinBinding", "SkelAnimComplete", "JointOrder", "NonFinite"])
    assert len(report.files) == 3 and report.exit_code == 0, report.findings


PHYSICS_OVER = """
    def Xform "Physics" {
        def PhysicsRevoluteJoint "B" (customData = {string "usdposer:skelJoint" = "A/B"}) {
            uniform token physics:axis = "Z"
            float physics:lowerLimit = -10
            float physics:upperLimit = 45
        }
        def PhysicsJoint "C" (
            prepend apiSchemas = ["PhysicsLimitAPI:rotX", "PhysicsLimitAPI:rotY"]
            customData = {string "usdposer:skelJoint" = "A/B/C"}
        ) {
            float limit:rotX:physics:low = -30
            float limit:rotX:physics:high = 20
            float limit:rotY:physics:low = 1
            float limit:rotY:physics:high = -1
        }
        def PhysicsSphericalJoint "RootBall" {
            rel physics:body1 = </Root/Bodies/A>
            uniform token physics:axis = "Y"
            float physics:coneAngle0Limit = 25
            float physics:coneAngle1Limit = 15
        }
    }
}
"""


def with_physics(text: str) -> str:
    """``stage_text`` with the physics joints added inside the SkelRoot."""
    return text.rstrip()[:-1] + PHYSICS_OVER


def test_usdphysics_joint_limits_are_a_limit_source_for_check(tmp_path):
    """Revolute (one axis, others locked), D6 LimitAPI (low > high locks), spherical cones (bound by body1's name):
    read into Rig.limits and enforced by the JointLimits rule."""
    import math

    from usdposer.io.read_skel import read_asset

    bent = ('uniform token[] joints = ["A", "A/B", "A/B/C"]\n'
            f'            quatf[] rotations = [(1,0,0,0), ({math.cos(math.radians(15))},0,0,{math.sin(math.radians(15))}), (1,0,0,0)]\n'
            '            float3[] translations = [(0,0,0), (0,1,0), (0,1,0)]\n'
            '            half3[] scales = [(1,1,1), (1,1,1), (1,1,1)]')
    for name, anim in (("ok", None), ("bent", bent)):
        (tmp_path / f"{name}.usda").write_text(with_physics(stage_text(anim=anim)))
    rig = read_asset(tmp_path / "ok.usda").rig()
    deg = torch.rad2deg(rig.limits).round(decimals=6)
    assert deg[1].tolist() == [[0, 0], [0, 0], [-10, 45]]
    assert deg[2, 0].tolist() == [-30, 20] and deg[2, 1].tolist() == [0, 0] and torch.isnan(deg[2, 2]).all()
    assert torch.isnan(deg[0, 1]).all() and deg[0, 0].tolist() == [-25, 25] and deg[0, 2].tolist() == [-15, 15]
    run = lambda f: subprocess.run(CLI + ["check", str(f), "--rules", "JointLimits", "--json"], capture_output=True,
                                   text=True)
    assert run(tmp_path / "ok.usda").returncode == 0
    proc = run(tmp_path / "bent.usda")  # 30 degrees about Z on a joint whose revolute range stops at 45: fine ...
    assert proc.returncode == 0, proc.stdout
    (tmp_path / "over.usda").write_text((tmp_path / "bent.usda").read_text().replace("float physics:upperLimit = 45",
                                                                                         "float physics:upperLimit = 20"))
    proc = run(tmp_path / "over.usda")  # ... and beyond a range that stops at 20
    assert proc.returncode == 1, proc.stdout
    findings = [f for r in json.loads(proc.stdout)["files"] for f in r["findings"] if f["rule"] == "JointLimits"]
    assert findings and findings[0]["joint"].endswith("B") and findings[0]["severity"] == "failed"


def test_a_reference_cycle_is_one_finding_whole_not_a_cut_usd_warning_beside_it(tmp_path):
    """USD reports a reference cycle twice: as a composition error and as a six-line warning. `check` showed the
    error and, beside it, the warning's first line alone (`UsdDiagnostics.Warning: In </Char>: Cycle detected:`),
    which says nothing. Now one finding names the cycle whole, on one line; a warning that is not a composition
    error's twin is kept whole on one line too."""
    from conftest import TINY_USDA

    (tmp_path / "rig.usda").write_text(TINY_USDA)
    (tmp_path / "shot.usda").write_text('#usda 1.0\n(\n    subLayers = [@./rig.usda@]\n)\n\n'
                                        'over "Char" (references = @./shot.usda@</Char>)\n{\n}\n')
    r = subprocess.run(CLI + ["check", str(tmp_path / "shot.usda"), "--json"], capture_output=True, text=True)
    found = [f for f in json.loads(r.stdout)["files"][0]["findings"]]
    cycle = [f for f in found if "ycle" in f["message"]]
    assert [f["id"] for f in cycle] == ["Readable.Composition"], found
    assert "which CANNOT reference" in cycle[0]["message"] and "\n" not in cycle[0]["message"]
    assert not [f for f in found if f["id"] == "UsdDiagnostics.Warning"], found
