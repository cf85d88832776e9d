"""``usdposer rig``: Pinocchio's skeleton embedding and bone heat on meshes that have no skeleton.

A capsule-and-box figure built here has known joints (the capsules' axes end at them); a template of the same
topology with other proportions must land within 2 % of the figure's height, whatever the figure's scale, place and
up axis. The Warp distance-field kernel is checked against its torch twin; a shared character goes end to end
through the CLI into ``info``, ``check`` and ``sample``; bad meshes and templates get one line and exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("Hips", "Spine", "Chest", "Neck", "Head", "Shoulder_L", "Elbow_L", "Hand_L", "Shoulder_R", "Elbow_R", "Hand_R",
         "UpLeg_L", "Knee_L", "Foot_L", "UpLeg_R", "Knee_R", "Foot_R")
PARENTS = np.array([-1, 0, 1, 2, 3, 2, 5, 6, 2, 8, 9, 0, 11, 12, 0, 14, 15])


def figure(leg: float = 0.82, arm: float = 0.62, torso: float = 0.6, head: float = 0.14):
    """A T-posed figure of capsules and a box (a ball of radius ``head`` on top): (points, faces, joints (17, 3)).
    Limb capsules run from joint to joint, so the true joints lie on the medial axis."""
    import trimesh

    hip_y = 0.08 + leg
    chest_y = hip_y + torso * 0.75
    J = {"Hips": (0, hip_y, 0), "Spine": (0, hip_y + torso * 0.4, 0), "Chest": (0, chest_y, 0),
         "Neck": (0, hip_y + torso + 0.05, 0), "Head": (0, hip_y + torso + 0.06 + head, 0)}
    for s, x in (("L", 1), ("R", -1)):
        J[f"Shoulder_{s}"] = (x * 0.2, chest_y, 0)
        J[f"Elbow_{s}"] = (x * (0.2 + arm / 2), chest_y, 0)
        J[f"Hand_{s}"] = (x * (0.2 + arm), chest_y, 0)
        J[f"UpLeg_{s}"] = (x * 0.12, hip_y - 0.02, 0)
        J[f"Knee_{s}"] = (x * 0.12, 0.08 + leg / 2, 0)
        J[f"Foot_{s}"] = (x * 0.12, 0.08, 0)
    X = np.array([J[n] for n in NAMES], dtype=np.float64)
    parts = [trimesh.creation.box(extents=(0.44, torso + 0.1, 0.24),
                                  transform=trimesh.transformations.translation_matrix((0, hip_y + torso / 2 - 0.02, 0)))]
    ball = trimesh.creation.icosphere(subdivisions=3, radius=head)
    ball.apply_translation(J["Head"])
    parts.append(ball)
    neck = _capsule(np.array(J["Chest"]), np.array(J["Head"]), 0.06)
    parts.append(neck)
    for s in "LR":
        parts.append(_capsule(np.array(J[f"Shoulder_{s}"]), np.array(J[f"Hand_{s}"]), 0.055))
        parts.append(_capsule(np.array(J[f"UpLeg_{s}"]), np.array(J[f"Foot_{s}"]), 0.07))
    m = trimesh.util.concatenate(parts)
    return np.asarray(m.vertices, np.float64), np.asarray(m.faces, np.int64), X


def _capsule(a, b, r):
    import trimesh

    d = b - a
    c = trimesh.creation.capsule(height=float(np.linalg.norm(d)), radius=r, count=[16, 16])
    # trimesh's capsule runs along +Z centred at the origin
    z = d / np.linalg.norm(d)
    M = trimesh.geometry.align_vectors([0, 0, 1], z)
    M[:3, 3] = (a + b) / 2
    c.apply_transform(M)
    return c


def template(**proportions):
    """The figure's own skeleton as a template (with its volume quantiles and up knots, as ``make_template`` gives
    them)."""
    from usdposer.core.distfield import distance_field
    from usdposer.core.embed import Template, up_knots, volume_quantiles

    P, F, X = figure(**proportions)
    f = distance_field(P, F, 64)
    lo, hi = P.min(0), P.max(0)
    knots, upright = up_knots(f, 1, 1.0, lo, hi)
    return Template(name="figure", names=NAMES, parents=PARENTS, positions=X, frames=np.tile(np.eye(3), (17, 1, 1)),
                    bounds=np.stack([lo, hi]), kind="biped", quantiles=volume_quantiles(f.grid_points()[f.dist > 0], lo, hi),
                    up_knots=knots, upright=upright)


def errors(embedded, truth, points):
    height = float(points[:, 1].max() - points[:, 1].min())
    return np.linalg.norm(embedded - truth, axis=1) / height * 100


@pytest.fixture(scope="module")
def target():
    return figure()


@pytest.fixture(scope="module")
def other_template():
    return template(leg=1.0, arm=0.5, torso=0.5)  # longer legs, shorter arms and torso than the target


def test_figure_embeds_within_two_percent_of_height(target, other_template):
    from usdposer.core.embed import embed

    P, F, X = target
    e = embed(other_template, P, F)
    err = errors(e.positions, X, P)
    assert err.mean() < 2.0, f"mean {err.mean():.2f}% worst {err.max():.2f}% at {NAMES[int(err.argmax())]}"
    assert err.max() < 5.0, f"worst {err.max():.2f}% at {NAMES[int(err.argmax())]}"
    # joint frames stay rotations
    assert np.allclose(np.einsum("jab,jac->jbc", e.frames, e.frames), np.eye(3), atol=1e-6)


@pytest.mark.parametrize("how", ["scale_and_move", "z_up", "turned", "inside_out"])
def test_embedding_does_not_depend_on_units_place_or_axes(target, other_template, how):
    """What must not matter: the mesh's unit (x100), where it stands, its up axis, the way it faces (told), and which
    way its triangles wind (a mesh exported with its normals flipped: its winding number inside is -1, and it used
    to enclose nothing)."""
    from usdposer.core.embed import embed, orientation

    P, F, X = target
    base = embed(other_template, P, F).positions
    if how == "inside_out":
        assert np.array_equal(embed(other_template, P, F[:, ::-1].copy()).positions, base)
        return
    if how == "scale_and_move":
        A, t, R = np.eye(3) * 100, np.array([250.0, -40.0, 1000.0]), None
    elif how == "z_up":
        A, t, R = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0.0]]), np.zeros(3), orientation("+Z", "-Y")
    else:
        A, t, R = np.array([[0, 0, 1], [0, 1, 0], [-1, 0, 0.0]]), np.zeros(3), orientation("+Y", "+X")
    Q = P @ A.T + t
    e = embed(other_template, Q, F, orientations=None if R is None else {"given": R})
    back = (e.positions - t) @ np.linalg.inv(A).T
    err = errors(back, base, P)
    # the grid is laid over the mesh anew (cells of 1.04 % of the height): a joint on a sphere may move by a few
    # cells (the root's two nearly equal spheres, two cells either side of the truth: 4.1 % under the quarter turn)
    cell = 100 * float((P.max(0) - P.min(0)).max()) / 96 / float(P[:, 1].max() - P[:, 1].min())
    assert err.max() < 4.5 * cell and err.mean() < 2.0, \
        f"{how}: moved {err.max():.2f}% of height at {NAMES[int(err.argmax())]}"
    assert errors(back, X, P).mean() < 2.0  # and still where the figure's joints are


@pytest.mark.parametrize("how", ["+Y", "-Y", "+Z"])
def test_legs_join_at_the_crotch_whatever_the_up_axis(target, how):
    """The up knots' landmark is where the legs meet the body (the box's bottom, 0.83 above the floor here), measured
    from the feet whichever way the mesh stands; hanging arms, reaching lower than the crotch but not the floor, do
    not count as legs; a body that stands on one part has no such level."""
    import trimesh

    from usdposer.core.distfield import distance_field
    from usdposer.core.embed import legs_join, up_knots

    P, F, _ = target
    A = {"+Y": np.eye(3), "-Y": np.diag([1.0, -1.0, -1.0]), "+Z": np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0.0]])}[how]
    Q = P @ A.T
    axis, sign = {"+Y": (1, 1.0), "-Y": (1, -1.0), "+Z": (2, 1.0)}[how]
    f = distance_field(Q, F, 96)
    k, upright = up_knots(f, axis, sign, Q.min(0), Q.max(0), upright=True)
    assert k is not None and np.all(np.diff(k) >= 0)
    join = k[2] if sign > 0 else k[-3]  # the knots run along the axis, feet last when the mesh stands on its head
    height_of_join = (join - Q[:, axis].min()) if sign > 0 else (Q[:, axis].max() - join)
    assert abs(height_of_join - 0.83) < 2.5 * f.h, (height_of_join, f.h)
    # arms hanging to 0.3 above the floor (below the crotch) change nothing
    arms = [_capsule(np.array([x * 0.25, 1.3, 0]), np.array([x * 0.3, 0.3, 0]), 0.05) for x in (1, -1)]
    m = trimesh.util.concatenate([trimesh.Trimesh(P, F, process=False), *arms])
    g = distance_field(np.asarray(m.vertices), np.asarray(m.faces), 96)
    assert abs(legs_join(g.dist > 0, 1) - legs_join(distance_field(P, F, 96).dist > 0, 1)) <= 1
    box = trimesh.creation.box(extents=(0.5, 1.0, 0.3))
    assert legs_join(distance_field(np.asarray(box.vertices), np.asarray(box.faces), 48).dist > 0, 1) is None


def test_a_big_head_does_not_lift_the_hips(other_template):
    """A chibi: the same figure with a head wider than its body (radius 0.3 against the torso's half-width 0.22)
    holds most of the volume above the legs. Mapped by volume alone, the template's hips rise into the chest (16 % of
    the height off when this test was written); mapped by where the legs join, hips and legs stay where they are."""
    import dataclasses

    from usdposer.core.embed import embed

    P, F, X = figure(head=0.3)
    by_legs = embed(other_template, P, F)
    by_volume = embed(dataclasses.replace(other_template, up_knots=None), P, F)
    assert by_legs.up_mapping == "legs" and by_volume.up_mapping == "volume"
    err_legs, err_volume = errors(by_legs.positions, X, P), errors(by_volume.positions, X, P)
    lower = [NAMES.index(n) for n in NAMES if n == "Hips" or n[:-2] in ("UpLeg", "Knee", "Foot")]
    assert err_legs[lower].max() < 3.0, {NAMES[j]: round(float(err_legs[j]), 2) for j in lower}
    assert err_volume[NAMES.index("Hips")] > 8.0  # the test can fail: volume alone does lift the hips
    assert err_legs.mean() < 0.6 * err_volume.mean(), (err_legs.mean(), err_volume.mean())


QUAD_NAMES = ("Hips", "Spine", "Chest", "Neck", "Head", "UpLeg_L", "Knee_L", "Foot_L", "UpLeg_R", "Knee_R", "Foot_R",
              "Shoulder_L", "Elbow_L", "Paw_L", "Shoulder_R", "Elbow_R", "Paw_R", "Tail1", "Tail2")
QUAD_PARENTS = np.array([-1, 0, 1, 2, 3, 0, 5, 6, 0, 8, 9, 2, 11, 12, 2, 14, 15, 0, 17])


def quadruped(tail: float = 0.8, tail_radius: float = 0.2, leg: float = 0.6):
    """A box-bodied quadruped facing +Z on four capsule legs, a head on a capsule neck and a capsule tail held out
    behind (``tail_radius`` 0.2: a fox's bushy tail, more volume than the body): (points, faces, joints (19, 3))."""
    import trimesh

    top = 0.05 + leg
    J = {"Hips": (0, top + 0.1, -0.4), "Spine": (0, top + 0.1, 0), "Chest": (0, top + 0.1, 0.4),
         "Neck": (0, top + 0.25, 0.55), "Head": (0, top + 0.4, 0.7), "Tail1": (0, top + 0.15, -0.5),
         "Tail2": (0, top + 0.15, -0.5 - tail)}
    for s, x in (("L", 1), ("R", -1)):
        for (a, b, c), z in ((("UpLeg", "Knee", "Foot"), -0.4), (("Shoulder", "Elbow", "Paw"), 0.4)):
            J[f"{a}_{s}"], J[f"{b}_{s}"], J[f"{c}_{s}"] = (x * 0.1, top, z), (x * 0.1, 0.05 + leg / 2, z), (x * 0.1, 0.05, z)
    X = np.array([J[n] for n in QUAD_NAMES], dtype=np.float64)
    body = trimesh.creation.box(extents=(0.3, 0.3, 1.0),
                                transform=trimesh.transformations.translation_matrix((0, top + 0.1, 0)))
    head = trimesh.creation.icosphere(subdivisions=3, radius=0.12)
    head.apply_translation(J["Head"])
    parts = [body, head, _capsule(X[2], X[4], 0.08), _capsule(X[17] + [0, 0, 0.1], X[18], tail_radius)]
    for a, b in (("UpLeg", "Foot"), ("Shoulder", "Paw")):
        for s in "LR":
            parts.append(_capsule(np.array(J[f"{a}_{s}"]) + [0, 0.05, 0], np.array(J[f"{b}_{s}"]), 0.06))
    m = trimesh.util.concatenate(parts)
    return np.asarray(m.vertices, np.float64), np.asarray(m.faces, np.int64), X


def quadruped_template(**proportions):
    """The quadruped's own skeleton as a template (volume quantiles and up knots as ``make_template`` gives them)."""
    from usdposer.core.distfield import distance_field
    from usdposer.core.embed import Template, up_knots, volume_quantiles

    P, F, X = quadruped(**proportions)
    f = distance_field(P, F, 64)
    lo, hi = P.min(0), P.max(0)
    knots, upright = up_knots(f, 1, 1.0, lo, hi)
    return Template(name="quad", names=QUAD_NAMES, parents=QUAD_PARENTS, positions=X,
                    frames=np.tile(np.eye(3), (len(QUAD_NAMES), 1, 1)), bounds=np.stack([lo, hi]), kind="quadruped",
                    quantiles=volume_quantiles(f.grid_points()[f.dist > 0], lo, hi), up_knots=knots, upright=upright)


@pytest.mark.parametrize("facing", ["+Z", "-Z", "+X"])
def test_a_bushy_tail_does_not_pull_the_hips_into_it(facing):
    """A fox: a quadruped whose tail holds more volume than its body, embedded with the template of a thin-tailed,
    longer-legged one. Mapped along its length by volume alone, the template's hips land in the tail (64 % of the
    height off when this test was written); with the fore and hind feet as landmarks they land within 2 %, and the
    whole embedding within 3 % on average, whichever way the body faces. The refinement keeps the start (discrete
    search or mapped template) with the lower energy, and the report says which and how."""
    from usdposer.core.distfield import distance_field
    from usdposer.core.embed import affine_template, embed, feet_along, template_feet_along, up_knots, volume_quantiles

    turn = {"+Z": np.eye(3), "-Z": np.diag([-1.0, 1.0, -1.0]),
            "+X": np.array([[0.0, 0, 1], [0, 1, 0], [-1, 0, 0]])}[facing]  # template axes into the mesh's
    t = quadruped_template(tail=0.35, tail_radius=0.05, leg=0.75)
    P, F, X = quadruped()
    P, X = P @ turn.T, X @ turn.T
    height = float(np.ptp(P[:, 1]))
    f = distance_field(P, F, 96)
    lo, hi = P.min(0), P.max(0)
    fwd = int(np.argmax(np.abs(turn[:, 2])))
    feet = feet_along(f, 1, 1.0, fwd)
    assert feet is not None and template_feet_along(t) is not None
    assert np.allclose(sorted(feet), sorted([-0.4, 0.4]), atol=0.02)  # the hind and fore feet's places
    quantiles, knots = volume_quantiles(f.grid_points()[f.dist > 0], lo, hi), up_knots(f, 1, 1.0, lo, hi, t.upright)[0]
    by_feet = affine_template(t, turn, lo, hi, quantiles, knots, feet)
    by_volume = affine_template(t, turn, lo, hi, quantiles, knots, None)
    hips = lambda T: float(np.linalg.norm(T[0] - X[0]) / height * 100)  # noqa: E731
    assert hips(by_feet) < 2.0 and hips(by_volume) > 20.0, (hips(by_feet), hips(by_volume))
    if facing == "+Z":  # a joint past the template's box (a tail held out) maps on at the overall scale
        import dataclasses

        out = t.positions.copy()
        out[-1, 2] = t.bounds[0, 2] - 0.5
        far = affine_template(dataclasses.replace(t, positions=out), turn, lo, hi, quantiles, knots, feet)
        scale = (hi[2] - lo[2]) / (t.bounds[1, 2] - t.bounds[0, 2])
        assert far[-1, 2] == pytest.approx(lo[2] - 0.5 * scale)
    e = embed(t, P, F, orientations={facing: turn})
    err = np.linalg.norm(e.positions - X, axis=1) / height * 100
    assert e.forward_mapping == "feet" and err.mean() < 3.0 and err[0] < 3.0, (err.mean(), err[0])
    assert set(e.refine_energies) == {"search", "template"}
    assert e.refine_energies[e.refined_from] == min(e.refine_energies.values())
    # a biped's feet stand side by side: no fore and hind
    P2, F2, _ = figure()
    assert feet_along(distance_field(P2, F2, 64), 1, 1.0, 2) is None and template_feet_along(template()) is None


def test_up_is_inferred_for_a_mesh_that_does_not_say(target, other_template):
    """An OBJ/PLY states no up axis: the axis assignments whose proportions match the template's are tried, both
    signs each, and the lowest penalty wins. The figure is left/right symmetric, so its two facings about the found
    up axis tie (within the search's noise on the grid; the report lists both); told the facing, the joints land where they belong."""
    from usdposer.core.embed import candidate_orientations, embed

    P, F, X = target
    A = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0.0]])  # +Y up -> +Z up, +Z forward -> -Y
    Q = P @ A.T
    cands = candidate_orientations(other_template, Q)
    assert len(cands) == 8
    e = embed(other_template, Q, F, orientations=cands)
    assert e.orientation.startswith("up +Z")
    # mirror images on a grid that is not mirror-symmetric: the beam search's discrete choices (a foot one sphere
    # higher) differ by up to 0.13 of a 0.7 penalty
    assert e.facings["up +Z, forward +Y"] == pytest.approx(e.facings["up +Z, forward -Y"], rel=0.2)
    assert min(e.facings.values()) < 0.5 * min(v for k, v in e.facings.items() if not k.startswith("up +Z"))
    told = embed(other_template, Q, F, orientations={k: v for k, v in cands.items() if k == "up +Z, forward -Y"})
    assert errors(told.positions @ A, X, P).mean() < 2.5


def _shod(**proportions):
    """The figure with a box for each foot, reaching 0.15 ahead of the ankle (+Z)."""
    import trimesh

    P, F, X = figure(**proportions)
    feet = [trimesh.creation.box(extents=(0.12, 0.08, 0.26), transform=trimesh.transformations.translation_matrix(
        (x, 0.04, 0.09))) for x in (0.12, -0.12)]
    m = trimesh.util.concatenate([trimesh.Trimesh(P, F, process=False), *feet])
    return np.asarray(m.vertices), np.asarray(m.faces), X


@pytest.mark.parametrize("up", ["+Y", "-Y", "+Z"])
def test_toes_tell_a_t_posed_figure_front_from_back(up):
    """A T-posed figure is its own mirror image front to back but for its feet: where the toes reach ahead of the
    ankles (:func:`toe_direction`, whatever way it stands) picks the facing, where shape alone ties (CesiumMan, the
    robot, the mannequin)."""
    import dataclasses

    from usdposer.core.distfield import distance_field
    from usdposer.core.embed import embed, orientation, toe_direction

    P, F, X = _shod()
    tP, tF, _ = _shod(leg=1.0, arm=0.5, torso=0.5)
    t = dataclasses.replace(template(leg=1.0, arm=0.5, torso=0.5),
                            toes=toe_direction(distance_field(tP, tF, 64).dist > 0, 1))
    assert t.toes[2] > 0.05 and abs(t.toes[0]) < 0.02
    # the figure turned to face -Z, then stood on the axis asked for
    stand = {"+Y": np.eye(3), "-Y": np.diag([1.0, -1, -1]), "+Z": np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0.0]])}[up]
    Q = P @ (stand @ np.diag([-1.0, 1, -1])).T
    axis, sign = int(np.argmax(np.abs(stand[:, 1]))), float(np.sign(stand[:, 1].sum()))
    toes = toe_direction(distance_field(Q, F, 96).dist > 0, axis, sign)
    assert toes @ (stand @ np.array([0, 0, -1.0])) > 0.05  # the feet point where it faces
    right, wrong = (f"{up} up, forward {s}" for s in ("-Z", "+Z"))
    c = {k: stand @ orientation("+Y", k.split()[-1]) for k in (f"x {s}" for s in ("+Z", "-Z"))}
    c = {right: c["x -Z"], wrong: c["x +Z"]}
    e = embed(t, Q, F, orientations=c)
    assert e.orientation == right and e.facings[wrong] - e.facings[right] > 2.0
    bare = embed(dataclasses.replace(t, toes=None), Q, F, orientations=c)
    assert abs(bare.facings[wrong] - bare.facings[right]) < 0.1 * bare.facings[right]  # the shape alone: a tie


def test_warp_distance_kernel_matches_its_torch_twin(target):
    from usdposer.core.distfield import closest_signed

    P, F, _ = target
    q = np.random.default_rng(0).uniform(P.min(0) - 0.1, P.max(0) + 0.1, (400, 3))
    cw, iw = closest_signed(P, F, q, backend="warp")
    ct, it = closest_signed(P, F, q, backend="torch")
    dw, dt = np.linalg.norm(cw - q, axis=1), np.linalg.norm(ct - q, axis=1)
    assert np.abs(dw - dt).max() < 1e-4 * float(np.ptp(P, 0).max())
    assert (iw == it).mean() > 0.99 and it.any() and (~it).any()
    for backend, inside in (("warp", iw), ("torch", it)):  # the same inside with every triangle reversed
        assert np.array_equal(closest_signed(P, F[:, ::-1].copy(), q, backend=backend)[1], inside)


def test_medial_spheres_of_a_capsule_lie_on_its_axis():
    import trimesh

    from usdposer.core.distfield import distance_field, medial_points, pack_spheres

    m = trimesh.creation.capsule(height=2.0, radius=0.3, count=[24, 24])
    f = distance_field(np.asarray(m.vertices), np.asarray(m.faces), 64)
    c, r = pack_spheres(*medial_points(f))
    big = r > 0.2
    assert big.sum() >= 3
    assert np.abs(c[big, :2]).max() < 2 * f.h  # on the axis (z)
    assert np.allclose(r[big], 0.3, atol=2 * f.h)


def test_template_files_round_trip_and_shipped_ones_are_reduced(tmp_path):
    from usdposer.io.templates import read_template, shipped_templates, write_template

    shipped = shipped_templates()
    assert {"biped", "quadruped", "flyer", "spider", "snake", "fish"} <= set(shipped)
    t = read_template(shipped["quadruped"], "quadruped")
    assert not any(n.startswith("PoleTarget") for n in t.names)  # controls outside the body are dropped
    assert (t.parents < np.arange(t.num_joints)).all() and (t.parents < 0).sum() == 1
    spider = read_template(shipped["spider"])
    keep, _, _ = spider.reduced()
    assert sum(spider.feet()) == 8 and len(keep) == 10  # body + head + eight feet
    out = write_template(t, tmp_path / "q.usda")
    u = read_template(out)
    assert u.names == t.names and np.allclose(u.positions, t.positions) and u.correspondence == t.correspondence
    assert t.toes is not None and np.allclose(u.toes, t.toes) and spider.toes is None  # legs' templates only


def test_a_template_and_a_bare_glb_are_their_bind_pose_whatever_the_rest_pose(tmp_path):
    """Quaternius' Knight rests with its arms down (a frame of an animation in the glTF's nodes) and is bound in a
    T-pose. The template made from it, and the mesh `rig` reads from a skinned glTF, are the bind pose (the pose the
    mesh was modelled in, the pose space's reference): turning a joint's rest transform changes neither, and the
    shipped biped is that Knight."""
    from pxr import Gf, Usd, UsdSkel

    from usdposer.core.posing import rest_world
    from usdposer.io.bare_mesh import read_bare
    from usdposer.io.importers import import_any
    from usdposer.io.read_skel import read_asset
    from usdposer.io.templates import load_template, template_from_asset

    usd = tmp_path / "knight.usdc"
    import_any(ROOT / "assets/quaternius/Knight.glb", usd)
    t = template_from_asset(usd, name="biped")
    height = float(np.ptp(t.bounds[:, 1]))
    rest_X, _ = rest_world(read_asset(usd, strict=False).rig(None))
    names = read_asset(usd, strict=False).rig(None).joint_names
    at_rest = rest_X[:, :3, 3].numpy()[[names.index(n) for n in t.names]]
    assert np.abs(at_rest - t.positions).max() > 0.2 * height  # the rest pose is not the bind pose: the test has teeth
    arm = t.positions[[t.names.index("UpperArm_L"), t.names.index("LowerArm_L")], 1]
    assert abs(arm[1] - arm[0]) < 0.03 * height  # bound in a T-pose: the upper arm level

    stage = Usd.Stage.Open(str(usd))
    skel = UsdSkel.Skeleton(next(p for p in stage.Traverse() if p.IsA(UsdSkel.Skeleton)))
    rest = list(skel.GetRestTransformsAttr().Get())
    joints = [str(j).rsplit("/", 1)[-1] for j in skel.GetJointsAttr().Get()]
    k = joints.index("UpperArm_L")
    rest[k] = Gf.Matrix4d().SetRotate(Gf.Rotation(Gf.Vec3d(0, 0, 1), 50)) * rest[k]
    skel.GetRestTransformsAttr().Set(rest)
    moved = tmp_path / "knight_moved.usdc"
    stage.Export(str(moved))
    u = template_from_asset(moved, name="biped")
    assert np.allclose(u.positions, t.positions, atol=1e-6 * height) and np.allclose(u.bounds, t.bounds)

    shipped = load_template("biped")
    assert np.allclose(shipped.positions, t.positions, atol=1e-4 * height)
    # facing +Z, +Y up: a joint named for the left side sits at +X (the Knight's thumbs are named for the other hand;
    # the shipped template swaps them)
    side = {"_L": 1.0, "_R": -1.0}
    assert all(np.sign(x[0]) == side[n[-2:]] for n, x in zip(shipped.names, shipped.positions) if n[-2:] in side)
    assert not all(np.sign(x[0]) == side[n[-2:]] for n, x in zip(t.names, t.positions) if n[-2:] in side)
    bare = read_bare(ROOT / "assets/quaternius/Knight.glb")
    pts = np.concatenate([m.points for m in bare.meshes])
    assert np.allclose([pts.min(0), pts.max(0)], t.bounds, atol=1e-4 * height)


def test_a_limb_held_by_a_rod_thinner_than_the_spheres_stays_in_the_sphere_graph():
    """A robot's forearm hangs on an elbow rod too thin for the packed spheres to overlap along it: the graph joins
    it where the inside is one piece (RobotExpressive's forearms were left out in its T-pose); a piece as far away
    with no inside between stays apart (a prop)."""
    import trimesh
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from usdposer.core.distfield import distance_field, medial_points, pack_spheres, sphere_graph

    P, F, X = figure()
    res = 96
    h = float((P.max(0) - P.min(0)).max()) / res
    hand = X[NAMES.index("Hand_L")]
    end = hand + np.array([0.055 + 0.06 + 6 * h, 0, 0])  # six cells beyond the arm's capsule
    ball = trimesh.creation.icosphere(subdivisions=3, radius=0.06)
    ball.apply_translation(end)

    def parts(*extra):
        m = trimesh.util.concatenate([trimesh.Trimesh(P, F, process=False), ball, *extra])
        f = distance_field(np.asarray(m.vertices), np.asarray(m.faces), res)
        centers, radii = pack_spheres(*medial_points(f), min_radius=0.25 * f.h)
        g = sphere_graph(f, centers, radii)
        S = len(centers)
        return connected_components(coo_matrix((np.ones(len(g.edges)), tuple(g.edges.T)), shape=(S, S)))[0]

    assert parts(_capsule(hand, end, 0.75 * h)) == 1
    assert parts() == 2


def _run(*args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "usdposer.commands._entry", *map(str, args)], capture_output=True,
                          text=True)


def test_the_shipped_quadruped_is_the_horse_with_its_tail_level(tmp_path):
    """The quadruped template is the Horse's bind pose but for its tail, which hangs in the Horse (its hair's weight)
    and is carried level and straight back in the template: the same bone lengths, every other joint where the Horse
    has it (a hanging template tail, pointing as a hind leg does, was filled down hind legs)."""
    from usdposer.io.importers import import_any
    from usdposer.io.templates import load_template, template_from_asset

    usd = tmp_path / "horse.usdc"
    import_any(ROOT / "assets/quaternius/Horse.glb", usd)
    horse = template_from_asset(usd, name="quadruped")
    shipped = load_template("quadruped")
    assert shipped.names == horse.names and (shipped.parents == horse.parents).all()
    height = float(np.ptp(horse.bounds[:, 1]))
    tail = np.array([n.startswith("Tail") for n in shipped.names])
    assert tail.sum() == 7
    assert np.allclose(shipped.positions[~tail], horse.positions[~tail], atol=1e-4 * height)
    i, k = shipped.names.index("Tail1"), shipped.names.index("Tail7")
    assert np.allclose(shipped.positions[i], horse.positions[i], atol=1e-4 * height)
    drop = horse.positions[i, 1] - horse.positions[k, 1]
    assert drop > 0.25 * height  # the Horse's tail hangs: the test has teeth
    v = shipped.positions[k] - shipped.positions[i]
    assert abs(v[1]) < 1e-3 * height and v[2] < -0.25 * height  # level, straight back (-Z)

    def bones(t):
        return np.linalg.norm(t.positions[tail] - t.positions[t.parents[tail]], axis=1)
    assert np.allclose(bones(shipped), bones(horse), atol=1e-4 * height)
    turned = np.einsum("jab,jcb->jac", shipped.frames[tail], horse.frames[tail])  # one rotation for the whole tail
    assert np.allclose(turned, turned[0], atol=1e-5)


def _gltf_skeleton(path) -> dict:
    """{joint name: its nearest ancestor among the joints, or None} of a glTF's first skin, read with pygltflib (not
    usdposer's importer), named as USD can name them (OpenUSD's ``Tf.MakeValidIdentifier``: ``Fist.L`` is
    ``Fist_L``); an unnamed node is ``joint_`` and its node index, as ``usdposer import`` names it."""
    from pxr import Tf
    from pygltflib import GLTF2

    g = GLTF2().load(str(path))
    joints = set(g.skins[0].joints)

    def name(n: int) -> str:
        return Tf.MakeValidIdentifier(g.nodes[n].name or f"joint_{n:02d}")

    parent = {c: i for i, n in enumerate(g.nodes) for c in (n.children or [])}
    out = {}
    for j in joints:
        p = parent.get(j)
        while p is not None and p not in joints:
            p = parent.get(p)
        out[name(j)] = None if p is None else name(p)
    return out


def _mapped_ancestor(name: str, parent: dict, mapped) -> str | None:
    p = parent[name]
    while p is not None and p not in mapped:
        p = parent[p]
    return p


def test_template_name_maps_pair_the_same_joints_in_the_characters():
    """Every shipped template's name maps (``bench/rig.py`` measures embeddings against the artists' joints through
    them) name real joints on both sides, one to one, keep sides (a left joint to a left one, where both names say)
    and keep the tree: the nearest mapped ancestor of a mapped template joint maps to the nearest mapped ancestor of
    its artist's joint (where the artist's joint has one: Quaternius' IK feet are chains of their own). The
    characters' skeletons come from their glTF files."""
    from conftest import SHARED, require_shared

    from usdposer.core.posespace import name_side
    from usdposer.io.templates import load_template, shipped_templates

    require_shared()
    checked = 0
    for name in shipped_templates():
        t = load_template(name)
        tparent = {n: (t.names[p] if p >= 0 else None) for n, p in zip(t.names, t.parents.tolist())}
        source = t.source.split("/")[0]
        for character, corr in t.correspondence.items():
            files = sorted(SHARED.rglob(f"{character}.glb"), key=lambda f: not str(f).startswith(str(SHARED / source)))
            assert files, f"{character}.glb is not in the shared data set"
            aparent = _gltf_skeleton(files[0])  # the template maker's own (Quaternius' Fox, not Khronos' Fox)
            assert set(corr) <= set(t.names), (name, character, set(corr) - set(t.names))
            assert len(set(corr.values())) == len(corr), (name, character)
            # one map serves Quaternius' animals, whose tails differ (the Deer's has three joints): the bench pairs
            # the joints both skeletons have, and nearly all of a map must be there
            missing = set(corr.values()) - set(aparent)
            assert len(missing) <= 0.1 * len(corr), (name, character, missing)
            corr = {k: v for k, v in corr.items() if v in aparent}
            back = {v: k for k, v in corr.items()}
            for k, v in corr.items():
                assert 0 in (name_side(k), name_side(v)) or name_side(k) == name_side(v), (name, character, k, v)
                a = _mapped_ancestor(v, aparent, back)
                if a is not None:  # else a separate chain in the artist's file (an IK foot), hung off a leg in a template
                    assert corr.get(_mapped_ancestor(k, tparent, corr)) == a, (name, character, k, v, a)
            checked += 1
    assert checked >= 10  # six quadrupeds, three bipeds, the Dolphin


def test_rig_cli_end_to_end_on_a_shared_character(tmp_path):
    """CesiumMan's mesh in its bind pose (its own skeleton dropped) rigged with the biped template: info, check and
    sample read the result; weights are normalised; every joint sits inside the body."""
    import torch

    from usdposer.core.heat import winding_number
    from usdposer.io.read_skel import read_asset

    out, png = tmp_path / "man.usdc", tmp_path / "man.png"
    r = _run("rig", ROOT / "assets/khronos/CesiumMan.glb", "-t", "biped", "-o", out, "--preview", png, "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["template"] == "biped" and rep["dropped_skeletons"] == 1
    assert rep["inferred"] and rep["orientation"].startswith("up +Y")  # glTF: +Y up; the facing is inferred
    assert png.stat().st_size > 1000
    rig = read_asset(out).rig(None).to(torch.float64)
    assert rig.joint_names == tuple(rep["joints"])
    for m in rig.meshes:
        assert torch.allclose(m.joint_weights.sum(1), torch.ones(m.num_points, dtype=torch.float64), atol=1e-5)
    P = np.concatenate([m.points.numpy() for m in rig.meshes])
    offsets = np.cumsum([0] + [m.num_points for m in rig.meshes])
    F = np.concatenate([m.faces.numpy() + o for m, o in zip(rig.meshes, offsets)])
    inside = winding_number(P, F, rig.bind_world[:, :3, 3].numpy()) > 0.5
    assert inside.mean() > 0.9, [n for n, i in zip(rig.joint_names, inside) if not i]
    assert _run("info", out).returncode == 0
    s = _run("sample", out, "-n", "4", "-o", tmp_path / "s.usdc")
    assert s.returncode == 0, s.stderr
    assert _run("check", tmp_path / "s.usdc").returncode in (0, 1)


def _wound_copy(src, out, *, how: str) -> None:
    """``src`` with its mesh's triangles reversed and ``orientation = leftHanded`` (the same surface, as RenderMan and
    some Houdini exports write it), or nothing more (normals flipped: an export gone wrong), or its mirror image
    (points mirrored, triangles reversed: the other boot) placed back by a negative scale, of the mesh's own transform
    (``mirrored``, what a bare mesh's reader places it by) or of its ``geomBindTransform`` (``mirrored-bind``, what
    UsdSkel places a skin by): the same surface, whose triangles wind the other way once placed."""
    from pxr import Gf, Usd, UsdGeom, UsdSkel, Vt

    Usd.Stage.Open(str(src)).Export(str(out))
    stage = Usd.Stage.Open(str(out))
    mesh = UsdGeom.Mesh(next(p for p in stage.Traverse() if p.IsA(UsdGeom.Mesh)))
    idx = np.asarray(mesh.GetFaceVertexIndicesAttr().Get()).reshape(-1, 3)
    mesh.GetFaceVertexIndicesAttr().Set(Vt.IntArray.FromNumpy(np.ascontiguousarray(idx[:, ::-1]).reshape(-1)))
    if how.startswith("mirrored"):
        P = np.asarray(mesh.GetPointsAttr().Get()) * [-1.0, 1.0, 1.0]
        mesh.GetPointsAttr().Set(Vt.Vec3fArray.FromNumpy(P.astype(np.float32)))
        if how == "mirrored":
            mesh.AddScaleOp().Set(Gf.Vec3f(-1.0, 1.0, 1.0))
        else:
            binding = UsdSkel.BindingAPI(mesh.GetPrim())
            G = binding.GetGeomBindTransformAttr().Get() or Gf.Matrix4d(1.0)
            binding.GetGeomBindTransformAttr().Set(Gf.Matrix4d().SetScale(Gf.Vec3d(-1.0, 1.0, 1.0)) * G)
    if how == "left-handed":
        mesh.CreateOrientationAttr(UsdGeom.Tokens.leftHanded)
    stage.GetRootLayer().Save()


def _volume(P, F) -> float:
    P = np.asarray(P, dtype=np.float64)
    return float(np.einsum("ij,ij->", P[F[:, 0]], np.cross(P[F[:, 1]], P[F[:, 2]])) / 6)


def test_left_handed_inside_out_and_mirrored_meshes(fox_usdc, tmp_path):
    """Which way a mesh's polygons wind must not matter where it says so: a ``leftHanded`` mesh and one mirrored by
    its transform are read as the same right-handed surface (their signed volume is the Fox's, so `check`'s
    self-intersection depths and every finding are the Fox's), and `rig` embeds the same skeleton in them and in a
    mesh whose normals were flipped by mistake (each enclosed no volume before: 'the mesh encloses no volume')."""
    import torch
    from usdposer.pipelines.rig import RigOptions, rig

    from usdposer.io.bare_mesh import read_bare
    from usdposer.io.read_skel import read_asset

    def findings(path):
        r = subprocess.run([sys.executable, "-m", "usdposer.commands._entry", "check", str(path), "--json"],
                           capture_output=True, text=True)
        return sorted((f["id"], f.get("prim"), f.get("time"), f.get("message").replace(str(path), "X"))
                      for file in json.loads(r.stdout)["files"] for f in file["findings"])

    fox_mesh = read_asset(fox_usdc).rig().to(torch.float64).meshes[0]
    want = _volume(fox_mesh.points.numpy(), fox_mesh.faces.numpy())
    bare_want = read_bare(fox_usdc).meshes[0]
    assert want > 0
    joints = {}
    for how in ("left-handed", "mirrored-bind", "mirrored", "inside-out"):
        path = tmp_path / f"{how}.usda"
        _wound_copy(fox_usdc, path, how=how)
        if how in ("left-handed", "mirrored-bind"):  # the same skin, read right-handed, checked alike
            m = read_asset(path).rig().to(torch.float64).meshes[0]
            assert _volume(m.points.numpy(), m.faces.numpy()) == pytest.approx(want, rel=1e-6), how
            assert findings(path) == findings(fox_usdc), how
        if how in ("left-handed", "mirrored"):  # the same surface, where a bare mesh's reader places it
            bare = read_bare(path).meshes[0]
            assert _volume(bare.points, bare.faces) == pytest.approx(_volume(bare_want.points, bare_want.faces),
                                                                      rel=1e-6), how
        if how == "mirrored-bind":
            continue
        rig(path, tmp_path / f"{how}.rig.usdc", RigOptions(template="quadruped"))
        joints[how] = read_asset(tmp_path / f"{how}.rig.usdc").rig().to(torch.float64).bind_world[:, :3, 3].numpy()
    rig(fox_usdc, tmp_path / "fox.rig.usdc", RigOptions(template="quadruped"))
    base = read_asset(tmp_path / "fox.rig.usdc").rig().to(torch.float64).bind_world[:, :3, 3].numpy()
    height = float(np.ptp(base[:, 1]))
    for how, X in joints.items():  # the BVH sees the corners in another order: float noise, a 0.1 % at most
        assert np.abs(X - base).max() < 0.005 * height, how


def test_per_face_materials_survive_rigging(fox_usdc, tmp_path):
    """A USD mesh whose faces carry their own materials (``materialBind`` GeomSubsets: Maya's shading groups,
    Blender's material slots) kept only the mesh's own material through `rig`, so the rigged character came out in
    one look. The rigged Fox with its back half bound to red has the same per-face looks as its source, on the same
    triangles (the rig writes the faces in the reader's order), and draws red exactly where the source does."""
    import torch
    from conftest import subset_copy
    from usdposer.pipelines.rig import RigOptions, rig

    from usdposer.io.read_skel import read_asset
    from usdposer.io.texture import read_bytes

    src = tmp_path / "red.usda"
    subset_copy(fox_usdc, src, red=True)
    rig(src, tmp_path / "red.rig.usdc", RigOptions(template="quadruped"))
    want = read_asset(src).rig().to(torch.float64).meshes[0].face_looks
    got = read_asset(tmp_path / "red.rig.usdc").rig().to(torch.float64).meshes[0].face_looks
    assert [f.name for f in got] == [f.name for f in want] == ["front", "back"]
    for a, b in zip(got, want):
        assert torch.equal(a.faces, b.faces), a.name
        assert np.allclose(a.color, b.color) and a.sampler.wrap == b.sampler.wrap, a.name
        assert (a.texture is None) == (b.texture is None), a.name
        assert a.texture is None or read_bytes(a.texture) == read_bytes(b.texture), a.name
    assert got[1].texture is None and np.allclose(got[1].color, (1.0, 0.0, 0.0))


def test_list_templates():
    r = _run("rig", "--list-templates", "--json")
    assert r.returncode == 0, r.stderr
    assert {t["name"] for t in json.loads(r.stdout)} >= {"biped", "quadruped", "spider"}


def _write_mesh(path, P, F):
    import trimesh

    trimesh.Trimesh(P, F, process=False).export(path)
    return path


@pytest.mark.parametrize("case", ["open_sheet", "zero_area", "misfit", "nan", "absurd", "unknown_template",
                                  "not_a_mesh"])
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, target, case):
    P, F, _ = target
    args = ["-t", "biped"]
    if case == "open_sheet":  # a flat square: no volume inside
        src = _write_mesh(tmp_path / "sheet.ply", np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0.0]]),
                          np.array([[0, 1, 2], [0, 2, 3]]))
    elif case == "zero_area":
        src = tmp_path / "dot.obj"
        src.write_text("v 0 0 0\nv 0 0 0\nv 0 0 0\nf 1 2 3\n")
    elif case == "misfit":  # eight legs into a biped
        src = _write_mesh(tmp_path / "fig.ply", P, F)
        args = ["-t", "spider", "--up", "+Y", "--forward", "+Z"]
    elif case == "nan":
        src = tmp_path / "nan.obj"
        src.write_text("v 0 0 0\nv 1 0 nan\nv 0 1 0\nv 0 0 1\nf 1 2 3\nf 1 3 4\nf 1 4 2\nf 2 4 3\n")
    elif case == "absurd":  # coordinates no float32 grid can hold
        src = _write_mesh(tmp_path / "huge.ply", P * 1e200, F)
    elif case == "unknown_template":
        src = _write_mesh(tmp_path / "fig.ply", P, F)
        args = ["-t", "centaur"]
    else:
        src = tmp_path / "junk.ply"
        src.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 99\n")
    out = tmp_path / "out.usdc"
    r = _run("rig", src, *args, "-o", out)
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert not out.exists() and not list(tmp_path.glob(".out*"))
