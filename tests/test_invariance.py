"""The pose space does not care how a character was rigged.

Each variant of ``usdposer.io.rig_variants`` rewrites a real character (the bundled Knight, a humanoid held out of the
default pose space; the shared held-out characters in the sweep) so that OpenUSD skins it identically: joint frames
re-oriented at random, the armature scaled 0.01 (Mixamo) and 100 (Blender), centimetres and Z up, facing -Z and +X,
a T-pose or a clip frame as rest pose, Mixamo / Blender / 3ds Max joint names, extra joints that move nothing, and
the joints listed in another order (breadth first, each level reversed).
For every variant: OpenUSD's skinning is checked to be the same deformation, then the conditioning features, the
pose codes of every real frame, the prior's score of every real frame, the samples for a seed (mapped back to the
source's world) and ``eval``'s precision and recall must not change.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import ASSETS, SHARED, require_shared
from pxr import Usd, UsdGeom, UsdSkel, Vt

from usdposer.io.rig_variants import KINDS, convention_name, write_variant

KNIGHT = ASSETS / "quaternius" / "Knight.glb"
HELD_OUT = ["animals/Wolf.glb", "dinosaurs/Velociraptor.glb", "creatures/Spider.glb", "humanoids/Knight.glb"]


def _import(src, out):
    from usdposer.io.importers import import_any

    import_any(src, out)
    return out


@pytest.fixture(scope="module")
def knight(tmp_path_factory):
    return _import(KNIGHT, tmp_path_factory.mktemp("knight") / "Knight.usdc")


@pytest.fixture(scope="module")
def variants(knight, tmp_path_factory):
    folder = tmp_path_factory.mktemp("variants")
    return {kind: write_variant(knight, folder / f"Knight.{kind}.usdc", kind, seed=3) for kind in KINDS}


# --------------------------------------------------------------------------------------------- OpenUSD's view
def openusd_points(path, times) -> np.ndarray:
    """(T, V, 3) every skinned point by OpenUSD's own UsdSkel queries, in metres and +Y up (converted here, apart
    from usdposer's own conversion code, so that a conversion bug cannot cancel out)."""
    stage = Usd.Stage.Open(str(path))
    mpu = UsdGeom.GetStageMetersPerUnit(stage)
    zup = UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.z
    cache = UsdSkel.Cache()
    out = []
    for root in [p for p in stage.Traverse() if p.IsA(UsdSkel.Root)]:
        cache.Populate(UsdSkel.Root(root), Usd.PrimDefaultPredicate)
        for binding in cache.ComputeSkelBindings(UsdSkel.Root(root), Usd.PrimDefaultPredicate):
            sq = cache.GetSkelQuery(binding.GetSkeleton())
            for skq in sorted(binding.GetSkinningTargets(), key=lambda q: str(q.GetPrim().GetPath())):
                frames = []
                for t in times:
                    pts = Vt.Vec3fArray(UsdGeom.Mesh(skq.GetPrim()).GetPointsAttr().Get(t))
                    assert skq.ComputeSkinnedPoints(sq.ComputeSkinningTransforms(t), pts, t)
                    frames.append(np.asarray(pts, dtype=np.float64))
                out.append(np.stack(frames))
    P = np.concatenate(out, 1) * mpu
    return np.stack([P[..., 0], P[..., 2], -P[..., 1]], -1) if zup else P


def _times(path):
    from usdposer.io.read_skel import read_asset

    a = read_asset(path)
    tc = a.clip(a.rig()).time_codes
    return [float(tc[0]), float(tc[len(tc) // 2]), float(tc[-1])]


@pytest.mark.parametrize("kind", list(KINDS))
def test_variant_deforms_identically_in_openusd(kind, knight, variants):
    times = _times(knight)
    want = openusd_points(knight, times)
    got = openusd_points(variants[kind].path, times)
    back = got @ variants[kind].to_source[:3, :3].T + variants[kind].to_source[:3, 3]
    diag = np.linalg.norm(np.ptp(want[0], 0))
    assert np.abs(back - want).max() < 1e-5 * diag


# --------------------------------------------------------------------------------------------- usdposer's view
def _joint_map(rig, source_rig, variant) -> list[int]:
    """Index in ``rig`` of every joint of ``source_rig`` (renamed joints mapped back)."""
    names = {v: k for k, v in variant.names.items()} if variant.names else {}
    return [rig.joints.index(names.get(t, t)) for t in source_rig.joints]


def _view(path):
    from usdposer.models.pose_prior import RigCondition

    from usdposer.io.read_skel import read_asset

    a = read_asset(path)
    rig = a.rig()
    return a, rig, RigCondition.from_rig(rig)


@pytest.mark.parametrize("kind", list(KINDS))
def test_pose_space_sees_the_same_rig_and_poses(kind, knight, variants):
    from usdposer.core.posespace import pose_to_6d, rig_frame

    a0, rig0, c0 = _view(knight)
    a1, rig1, c1 = _view(variants[kind].path)
    idx = _joint_map(rig1, rig0, variants[kind])
    extra = sorted(set(range(rig1.num_joints)) - set(idx))
    # 1. the same model joints; joints added by the variant are outside the model
    assert torch.equal(c1.mask[idx], c0.mask) and not c1.mask[extra].any()
    # 2. the same conditioning (features, tree distances between model joints)
    assert (c1.features[idx] - c0.features).abs().max() < 1e-5
    m0 = c0.index
    assert torch.equal(c1.tree[idx][:, idx][m0][:, m0], c0.tree[m0][:, m0])
    assert abs(rig_frame(rig1).height / rig_frame(rig0).height - 1) < 1e-6
    # 3. the same codes for every frame of every clip
    for clip0, clip1 in zip(a0.clips[rig0.skeleton_path], a1.clips[rig1.skeleton_path]):
        s0, s1 = pose_to_6d(rig0, clip0.pose()), pose_to_6d(rig1, clip1.pose())
        assert (s1[:, idx] - s0).abs().max() < 1e-5, clip0.name


def test_prior_scores_and_samples_do_not_change(knight, variants, tiny):
    from usdposer.models.pose_prior import PosePrior

    from usdposer.core.posespace import pose_from_6d, pose_to_6d
    from usdposer.core.posing import joint_transforms

    prior = PosePrior.load(tiny["root"] / "ckpt")
    a0, rig0, c0 = _view(knight)
    real0 = pose_to_6d(rig0, a0.clip(rig0).pose()).float()
    score0 = prior.score(c0, real0)
    six0, _ = prior.sample(c0, 6, generator=torch.Generator().manual_seed(5), eta=1.0, steps=20)
    pos0 = joint_transforms(rig0.to(torch.float64), pose_from_6d(rig0.to(torch.float64), six0.double()))[..., :3, 3]
    for kind, v in variants.items():
        a1, rig1, c1 = _view(v.path)
        idx = _joint_map(rig1, rig0, v)
        real1 = pose_to_6d(rig1, a1.clip(rig1).pose()).float()
        assert torch.allclose(prior.score(c1, real1), score0, rtol=1e-4, atol=1e-6), kind  # check's Plausibility
        six1, _ = prior.sample(c1, 6, generator=torch.Generator().manual_seed(5), eta=1.0, steps=20)
        assert (six1[:, idx] - six0).abs().max() < 1e-4, kind
        # the same poses in the world: mapped back to the source's world, root-relative (a rest pose taken from a
        # clip frame moves the whole character, which is grounded again afterwards)
        rig = rig1.to(torch.float64)
        pos1 = joint_transforms(rig, pose_from_6d(rig, six1.double()))[..., :3, 3]
        W = rig.skel_to_world.numpy()
        to_src = v.to_source @ W
        p1 = torch.from_numpy(pos1.numpy() @ to_src[:3, :3].T + to_src[:3, 3])[:, idx]
        p0 = torch.from_numpy(pos0.numpy() @ rig0.skel_to_world.numpy()[:3, :3].T)
        mask = c0.mask
        d = (p1 - p1[:, mask].mean(1, keepdim=True)) - (p0 - p0[:, mask].mean(1, keepdim=True))
        from usdposer.core.posespace import rig_frame

        assert float(d[:, mask].norm(dim=-1).max()) < 1e-4 * rig_frame(rig0).height, kind


def test_eval_numbers_do_not_change(knight, variants, tiny, tmp_path):
    from usdposer.models.evaluation import evaluate
    from usdposer.pipelines.dataset import DatasetOptions, build

    kinds = ["joint-frames", "armature-0.01", "facing-plus-x", "rest-frame", "names-max", "extra-joints", "joint-order"]
    sources = [str(knight)] + [variants[k].path for k in kinds]
    build(sources, tmp_path / "data", DatasetOptions(holdout=tuple([f"{knight.parent.name}/Knight"] +
                                                                   [f"{variants[k].path.rsplit('/', 2)[-2]}/Knight.{k}"
                                                                    for k in kinds])))
    rows = evaluate(str(tiny["root"] / "ckpt"), str(tmp_path / "data"), n=24, steps=10, seeds=2)
    by = {(r.character.rsplit("/", 1)[-1], r.method): r for r in rows}
    for k in kinds:
        for method in ("usdposer", "random-rotations", "rest+noise"):
            a, b = by[("Knight", method)], by[(f"Knight.{k}", method)]
            assert abs(a.precision - b.precision) < 1e-3 and abs(a.recall - b.recall) < 1e-3, (k, method)


# --------------------------------------------------------------------------------------------- the parts
@pytest.mark.parametrize("names", [
    ("UpperLeg_L", "mixamorig:LeftUpLeg", "mixamorig_LeftUpLeg", "upperleg.l", "thigh.L", "Bip01 L Thigh", "LeftUpLeg"),
    ("LowerArm_R", "mixamorig:RightForeArm", "forearm.R", "Bip01 R Forearm", "lowerarm_r", "RightForeArm"),
    ("Hips", "mixamorig:Hips", "pelvis", "Bip01 Pelvis"),
    ("Shoulder_L", "mixamorig:LeftShoulder", "shoulder.L", "Bip01 L Clavicle", "clavicle_l"),
    ("LowerLeg_R", "mixamorig:RightLeg", "shin.R", "Bip01 R Calf", "calf_r"),
])
def test_joint_names_mean_the_same_across_tools(names):
    from usdposer.core.posespace import canonical_words, name_hash, name_side

    words = {tuple(canonical_words(n)) for n in names}
    sides = {name_side(n) for n in names}
    assert len(words) == 1 and len(sides) == 1, (words, sides)
    assert all(torch.equal(name_hash(n), name_hash(names[0])) for n in names)
    for convention in ("mixamo", "blender", "max"):
        renamed = convention_name(names[0], convention)
        assert canonical_words(renamed) == canonical_words(names[0]) and name_side(renamed) == name_side(names[0])


def test_bind_in_the_mesh_space_is_brought_into_the_skeleton(knight):
    """glTF's inverse bind matrices are relative to the skinned mesh node: Quaternius' armature is rotated 90
    degrees and scaled 100x against them. The reference mesh is then where the rest pose skins it."""
    from usdposer.core.posespace import rig_frame
    from usdposer.core.posing import character_height

    _, rig, _ = _view(knight)
    rf = rig_frame(rig)
    X = rf.bind_fix.numpy()
    assert abs(abs(np.linalg.det(X[:3, :3])) ** (1 / 3) / 100 - 1) < 1e-6  # the file stores float32 matrices
    assert abs(rf.height / character_height(rig) - 1) < 0.01
    assert rf.facing.startswith("left/right") and np.allclose(rf.canon.numpy()[1], [0, 1, 0], atol=1e-6)


def test_mirror_images_are_mirror_images(tmp_path):
    """The augmentation's mirror images, on a rig whose reference pose is exactly symmetric (KayKit's mannequin,
    with its library's clips): the mirrored codes put every joint where the mirror image of its partner was."""
    from usdposer.pipelines.dataset import DatasetOptions, build

    from usdposer.core.posespace import mirror_codes
    from usdposer.io.dataset import load_dataset

    lib = ASSETS / "kaykit" / "anim" / "Med_MovementBasic.glb"
    build([str(ASSETS / "kaykit" / "mannequin" / "manny_med_mod.gltf")], tmp_path / "d",
          DatasetOptions(anim_from=((str(lib), "manny_med_mod"),)))
    ch = load_dataset(tmp_path / "d")[0]
    perm = ch.mirror()
    assert perm is not None and not torch.equal(perm, torch.arange(len(perm)))
    six = ch.poses[:60].double()
    M = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))
    p, pm = ch.positions(six), ch.positions(mirror_codes(six, perm))
    root = ch.mask.nonzero()[0, 0]
    mirrored = ((p - p[:, root:root + 1]) @ M)[:, perm]
    assert (pm - pm[:, root:root + 1] - mirrored)[:, ch.mask].abs().max() < 1e-5 * ch.height
    assert (mirror_codes(mirror_codes(six, perm), perm) - six).abs().max() < 1e-6  # float32 codes, re-orthonormalised


def test_animation_library_binds_to_its_character_by_joint_name(tmp_path):
    """KayKit's clips come in skeleton-only files: bound to the mannequin (same joint names, no root or hand
    slots), they retarget exactly and train on its mesh; the library is no character of its own."""
    from usdposer.pipelines.dataset import DatasetOptions, build

    lib = ASSETS / "kaykit" / "anim" / "Med_MovementBasic.glb"
    m = build([str(ASSETS / "kaykit" / "mannequin" / "manny_med_mod.gltf"), str(lib)], tmp_path / "d",
              DatasetOptions(anim_from=((str(lib), "manny_med_mod"),))).manifest
    assert [c["id"] for c in m["characters"]] == ["mannequin/manny_med_mod"]
    src = m["characters"][0]["anim_sources"][0]
    assert src["matched"] == 20 and src["unmatched_character_joints"] == [] and src["residual_pct"] < 1e-3
    assert {"handslot_l", "handslot_r"} <= set(src["unused_library_joints"])
    assert m["characters"][0]["poses"] > 100 and len(src["clips"]) == 11


def test_a_file_with_one_skeleton_split_into_skins_is_one_character(knight):
    from dataclasses import replace

    from usdposer.core.retarget import distinct_rigs

    _, rig, _ = _view(knight)
    bare = replace(rig, skeleton_path=rig.skeleton_path + "_1", meshes=rig.meshes[:1])
    out = distinct_rigs([bare, rig])
    assert len(out) == 1 and out[0][0] is rig and out[0][1] == [bare.skeleton_path]


def test_info_reports_the_rig_conventions(variants):
    import json
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "usdposer.commands._entry", "info", variants["armature-0.01"].path,
                        "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    conv = json.loads(r.stdout)["skeletons"][0]["conventions"]
    assert conv["joint_frame_scale"][0] == pytest.approx(0.01 * 100, rel=1e-3)  # Knight's 100 x the variant's 0.01
    assert conv["facing"].startswith("left/right") and conv["model_joints"] == 29
    r = subprocess.run([sys.executable, "-m", "usdposer.commands._entry", "info", variants["extra-joints"].path,
                        "--json"], capture_output=True, text=True)
    conv = json.loads(r.stdout)["skeletons"][0]["conventions"]
    assert "IK_target_l" in conv["non_deforming_joints"] and conv["model_joints"] == 29


# --------------------------------------------------------------------------------------------- the shared sweep
@pytest.mark.slow
@pytest.mark.parametrize("name", HELD_OUT)
def test_held_out_characters_are_invariant_to_every_variant(name, tmp_path):
    """Every shared held-out character, every variant (the T-pose where the rig has arms): the same features and
    codes (OpenUSD's skinning of each variant equal to the source's, to float precision)."""
    from usdposer.core.posespace import canonical_words

    require_shared()
    src = _import(SHARED / "quaternius" / name, tmp_path / "src.usdc")
    a0, rig0, c0 = _view(src)
    has_arms = any(canonical_words(n) == ["upperarm"] for n in rig0.joint_names)
    times = _times(src)
    want = openusd_points(src, times)
    for kind in KINDS:
        if kind == "rest-tpose" and not has_arms:
            continue
        v = write_variant(src, tmp_path / f"{kind}.usdc", kind, seed=1)
        got = openusd_points(v.path, times) @ v.to_source[:3, :3].T + v.to_source[:3, 3]
        assert np.abs(got - want).max() < 1e-5 * np.linalg.norm(np.ptp(want[0], 0)), kind
        a1, rig1, c1 = _view(v.path)
        idx = _joint_map(rig1, rig0, v)
        assert (c1.features[idx] - c0.features).abs().max() < 1e-5, kind
        from usdposer.core.posespace import pose_to_6d

        clip0, clip1 = a0.clip(rig0), a1.clip(rig1)
        assert (pose_to_6d(rig1, clip1.pose())[:, idx] - pose_to_6d(rig0, clip0.pose())).abs().max() < 1e-5, kind


def _usd_joint_positions(path, clip: str) -> tuple[list[str], np.ndarray]:
    """Joint leaf names and (T, J, 3) world joint positions by OpenUSD's UsdSkel, at every sample of ``clip`` (bound
    through the Skeleton's clip variant set), in the stage's units."""
    stage = Usd.Stage.Open(str(path))
    skel = next(p for p in stage.Traverse() if p.IsA(UsdSkel.Skeleton))
    with Usd.EditContext(stage, stage.GetSessionLayer()):
        skel.GetVariantSets().GetVariantSet("usdposerClip").SetVariantSelection(clip)
    anim = UsdSkel.Animation(stage.GetPrimAtPath(f"{skel.GetPath()}/{clip}"))
    cache = UsdSkel.Cache()
    cache.Populate(UsdSkel.Root(skel.GetParent()), Usd.PrimDefaultPredicate)
    sq = cache.GetSkelQuery(UsdSkel.Skeleton(skel))
    out = [np.asarray(sq.ComputeJointSkelTransforms(t), dtype=np.float64)[:, 3, :3]
           for t in sorted(anim.GetRotationsAttr().GetTimeSamples())]
    return [str(j).rsplit("/", 1)[-1] for j in sq.GetJointOrder()], np.stack(out)


@pytest.mark.parametrize("naming", ["own", "mixamo"])
def test_import_plays_an_animation_library_on_its_character_exactly(naming, tmp_path):
    """``import --anim-from``: the KayKit mannequin (or a copy renamed as Mixamo names joints) plays the library's
    clips; OpenUSD's joint positions equal those of the library's own skeleton (root motion and the hips' animated
    translation included) for every matched joint."""
    from usdposer.core.posespace import canonical_words, name_side
    from usdposer.io.importers import import_any

    lib = ASSETS / "kaykit" / "anim" / "Med_MovementBasic.glb"
    character = tmp_path / "manny.usdc"
    import_any(ASSETS / "kaykit" / "mannequin" / "manny_med_mod.gltf", character)
    if naming == "mixamo":
        character = write_variant(character, tmp_path / "manny_mixamo.usdc", "names-mixamo").path
    out = tmp_path / "manny_anim.usdc"
    report = import_any(character, out, anim_from=[str(lib)]) if str(character).endswith(".gltf") else None
    if report is None:  # a USD character: the same retargeting through the import pipeline's second step
        import shutil

        from usdposer.io.gltf_import import ImportReport
        from usdposer.io.importers import add_library_clips

        shutil.copy(character, out)
        report = ImportReport(str(character), str(out))
        add_library_clips(out, [str(lib)], tmp_path, report)
    assert len([c for c in report.clips if c.get("library")]) == 11
    ref = tmp_path / "lib.usdc"
    import_any(lib, ref)
    for clip in ("Walking_A", "Running_A", "Jump_Full_Long"):
        names_a, pa = _usd_joint_positions(out, clip)
        names_b, pb = _usd_joint_positions(ref, clip)
        key = lambda n: (tuple(canonical_words(n)), name_side(n))  # noqa: E731
        pairs = [(i, names_b.index(n)) for i, n in enumerate(names_a) if n in names_b] if naming == "own" else \
            [(names_a.index(a), names_b.index(b)) for a, b in [("mixamorig_LeftUpLeg", "upperleg_l"),
                                                                ("mixamorig_RightFoot", "foot_r"),
                                                                ("mixamorig_Head", "head"), ("mixamorig_Hips", "hips")]]
        assert len(pairs) >= 4 and all(key(names_a[i]) == key(names_b[j]) for i, j in pairs)
        err = max(np.abs(pa[:, i] - pb[:, j]).max() for i, j in pairs)
        assert err < 1e-5, (clip, err)


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "rest-tpose"])  # a T-pose needs arms
def test_a_skeleton_forests_hoof_roots_ride_the_same_joints_however_it_was_rigged(kind, tmp_path):
    """The bundled Horse is a skeleton forest (four hoof IK-target roots beside the body's tree). Rigged another way,
    the pose space attaches the same hoof roots to the same leg joints (measured in skeleton space against the
    character's height, so units, armature scale, axes, facing, joint frames, names and rest pose must not matter;
    end joints another tool adds under the lower legs carry no skin and are not taken), and its samples keep every
    hoof root on its leg."""
    from usdposer.models.pose_prior import PosePrior

    from usdposer.core.posespace import pose_from_6d, rig_frame
    from usdposer.core.posing import joint_transforms

    horse = _import(ASSETS / "quaternius" / "Horse.glb", tmp_path / "Horse.usdc")
    variant = write_variant(horse, tmp_path / f"Horse.{kind}.usdc", kind, seed=3)
    _, rig0, _ = _view(horse)
    _, rig1, cond1 = _view(variant.path)
    idx = _joint_map(rig1, rig0, variant)
    assert len(rig_frame(rig0).attach) == 4
    assert sorted((idx[r], idx[j]) for r, j in rig_frame(rig0).attach) == sorted(rig_frame(rig1).attach)
    six, _ = PosePrior.load(None).sample(cond1, 4, generator=torch.Generator().manual_seed(0))
    rig1 = rig1.to(torch.float64)
    G = joint_transforms(rig1, pose_from_6d(rig1, six.double()))
    ref = rig_frame(rig1).ref_world
    for r, j in rig_frame(rig1).attach:  # the root keeps its place in its joint's frame (a frame may carry scale)
        held = torch.linalg.inv(G[:, j]) @ G[:, r, :, 3:]
        assert torch.allclose(held, (torch.linalg.inv(ref[j]) @ ref[r, :, 3:]).expand_as(held), atol=1e-6 * rig_frame(rig1).height)


def test_a_skeleton_forest_listed_in_another_order_is_the_same_rig_to_the_pose_space(tmp_path):
    """The bundled Horse (a body and four hoof IK-target roots) with its joints listed breadth first, each level
    reversed (the hoof roots now come before the body): the features are measured from the same body root, the
    left/right swap is the same, and the prior scores its frames and samples a seed the same, joint for joint (per-joint
    noise is drawn in an order fixed by what each joint is, not by where the rig lists it)."""
    from usdposer.models.pose_prior import PosePrior

    from usdposer.core.posespace import body_root, pose_to_6d, rig_frame

    horse = _import(ASSETS / "quaternius" / "Horse.glb", tmp_path / "Horse.usdc")
    v = write_variant(horse, tmp_path / "Horse.joint-order.usdc", "joint-order")
    a0, rig0, c0 = _view(horse)
    a1, rig1, c1 = _view(v.path)
    idx = _joint_map(rig1, rig0, v)
    assert idx != list(range(rig0.num_joints))  # really another order
    f0, f1 = rig_frame(rig0), rig_frame(rig1)
    assert len(f0.model_roots) == 5 and f1.model_roots[0] != idx[f0.model_roots[0]]  # the body is no longer first
    assert idx[body_root(rig0.joint_names, f0.model_parents, f0.mask)] == \
        body_root(rig1.joint_names, f1.model_parents, f1.mask)
    assert (c1.features[idx] - c0.features).abs().max() < 1e-5
    from usdposer.core.posespace import mirror_permutation

    p0 = mirror_permutation(rig0.joint_names, f0.pairs, f0.mask, f0.ref_pos, f0.height, f0.model_parents)
    p1 = mirror_permutation(rig1.joint_names, f1.pairs, f1.mask, f1.ref_pos, f1.height, f1.model_parents)
    assert p0 is not None and p1 is not None
    assert [idx.index(int(j)) for j in p1[idx]] == p0.tolist()
    prior = PosePrior.load(None)
    real0 = pose_to_6d(rig0, a0.clip(rig0).pose()).float()
    real1 = pose_to_6d(rig1, a1.clip(rig1).pose()).float()
    assert torch.allclose(prior.score(c1, real1), prior.score(c0, real0), rtol=1e-4, atol=1e-6)
    six0, _ = prior.sample(c0, 4, generator=torch.Generator().manual_seed(2))
    six1, _ = prior.sample(c1, 4, generator=torch.Generator().manual_seed(2))
    assert (six1[:, idx] - six0).abs().max() < 1e-4


def test_ik_answers_alike_for_a_rig_listed_in_another_order(knight, variants, tmp_path):
    """``usdposer ik`` on the Knight and on its joint-order variant, the same handle and seed: the same candidate
    chosen, the same handle errors and prior score, the same pose in the world (OpenUSD's joint positions)."""
    from usdposer.pipelines.ik import IKOptions, ik

    from usdposer.core.ik import Handle

    def world(path, at_rest: bool):
        stage = Usd.Stage.Open(str(path))
        skel = next(p for p in stage.Traverse() if p.IsA(UsdSkel.Skeleton))
        cache = UsdSkel.Cache()
        cache.Populate(UsdSkel.Root(skel.GetParent()), Usd.PrimDefaultPredicate)
        sq = cache.GetSkelQuery(UsdSkel.Skeleton(skel))
        X = np.asarray(sq.ComputeJointWorldTransforms(UsdGeom.XformCache(0.0), atRest=at_rest), dtype=np.float64)
        return [str(j).rsplit("/", 1)[-1] for j in sq.GetJointOrder()], X[:, 3, :3]

    names, rest = world(knight, True)
    target = rest[names.index("Palm_L")] + np.array([0.0, 0.25, 0.15])
    opts = IKOptions(handles=(Handle("Palm_L", tuple(target.tolist())),), seed=4)
    r0 = ik(knight, tmp_path / "a.usdc", opts)
    r1 = ik(variants["joint-order"].path, tmp_path / "b.usdc", opts)
    assert r0.chosen == r1.chosen and max(r0.handle_errors) < 0.015
    assert r1.handle_errors == pytest.approx(r0.handle_errors, abs=1e-5)
    assert r1.prior_score == pytest.approx(r0.prior_score, rel=1e-4)
    n0, p0 = world(r0.output, False)
    n1, p1 = world(r1.output, False)
    assert np.abs(p1[[n1.index(n) for n in n0]] - p0).max() < 1e-4
