"""Make the skeleton templates that ship with ``usdposer rig`` from the CC0 shared rigs (Quaternius).

    python scripts/make_templates.py [--data ../shared/data] [--out usdposer/templates]

Each template is the source character's skeleton in its bind pose (Quaternius' characters rest with their arms
down and are bound in a T-pose), reduced by :func:`usdposer.core.embed.make_template`
(joints that deform nothing or float outside the body dropped, thumbs and other short side branches merged), with
name maps to the joints of other characters of its kind (``bench/rig.py`` measures embeddings against them).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

TEMPLATES = {
    # name: (source file under data/, kind, description)
    "biped": ("quaternius/humanoids/Knight.glb", "biped", "two legs, two arms, head (Quaternius Knight)"),
    "quadruped": ("quaternius/animals/Horse.glb", "quadruped", "four legs, neck, head, ears, tail (Quaternius Horse)"),
    "flyer": ("quaternius/creatures/Wasp.glb", "flyer", "thorax, head, two wings, six legs, abdomen (Quaternius Wasp)"),
    "spider": ("quaternius/creatures/Spider.glb", "eight-legged", "eight legs, thorax, head, abdomen (Quaternius Spider)"),
    "snake": ("quaternius/creatures/Snake.glb", "snake", "a spine from head to tail (Quaternius Snake)"),
    "fish": ("quaternius/sea/Shark.glb", "fish", "spine, tail and fins (Quaternius Shark)"),
}

# template joint -> the artist's joint, per character (bench/rig.py). Quaternius' animals share one armature family:
# their joints carry the Horse's names.
_Q_ANIMAL = ["Back", "Torso", "Torso2", "Torso3", "Neck1", "Neck2", "Neck3", "Head", "FrontShoulder_L",
             "FrontUpperLeg_L", "FrontLowerLeg_L", "FrontShoulder_R", "FrontUpperLeg_R", "FrontLowerLeg_R",
             "BackShoulder_L", "BackLeg_L", "BackUpperLeg_L", "BackLowerLeg_L", "BackShoulder_R", "BackLeg_R",
             "BackUpperLeg_R", "BackLowerLeg_R", "Tail1", "Tail4", "Tail7"]
# joints whose artist named them for the other side: the Knight's thumbs (``Thumb_R`` hangs off ``Palm_L``). A rigged
# mesh gets the template's names, and the pose space reads a name's side.
RENAME = {"biped": {"Thumb_R": "Thumb_L", "Thumb2_R": "Thumb2_L", "Thumb_L": "Thumb_R", "Thumb2_L": "Thumb2_R"}}
# chains carried otherwise than in the source's bind pose: (first joint, last joint) turned about the first joint's
# left-right axis until first -> last points straight back and level. The Horse's tail hangs (the weight of its
# hair, as the artist posed it); carried level, it is where tails point on average (a cow's hangs, a husky's curls
# up, a fox's and a deer's reach back), and a hanging template tail, whose direction is a hind leg's, was filled down
# the hind legs of the Deer and the Husky (bench/rig.py: bone heat then gave their thighs to tail bones).
LEVEL = {"quadruped": ("Tail1", "Tail7")}
CORRESPONDENCE = {
    "quadruped": {c: {n: n for n in _Q_ANIMAL} for c in ("Cow", "Deer", "Wolf", "Fox", "Husky", "Donkey")},
    "biped": {
        # named like the Knight's, but its hands are fists
        "PlatformerCharacter": {**{n: n for n in ("Hips", "Abdomen", "Torso", "Neck", "Head", "UpperArm_L",
                                                  "LowerArm_L", "UpperArm_R", "LowerArm_R", "UpperLeg_L", "LowerLeg_L",
                                                  "Foot_L", "UpperLeg_R", "LowerLeg_R", "Foot_R")},
                                "Palm_L": "Fist_L", "Palm_R": "Fist_R"},
        "CesiumMan": {"Body": "joint_02", "Torso": "joint_12", "Neck": "joint_19", "Head": "joint_20",
                      "UpperArm_L": "joint_16", "LowerArm_L": "joint_17", "Palm_L": "joint_18",
                      "UpperArm_R": "joint_13", "LowerArm_R": "joint_14", "Palm_R": "joint_15",
                      "UpperLeg_L": "joint_07", "LowerLeg_L": "joint_08", "Foot_L": "joint_09",
                      "UpperLeg_R": "joint_03", "LowerLeg_R": "joint_04", "Foot_R": "joint_05"},
        # the glTF's joints are named like the Knight's (UpperArm_L), with three palms (Palm2_* the middle one)
        "RobotExpressive": {"Hips": "Hips", "Abdomen": "Abdomen", "Torso": "Torso", "Neck": "Neck", "Head": "Head",
                            "UpperArm_L": "UpperArm_L", "LowerArm_L": "LowerArm_L", "Palm_L": "Palm2_L",
                            "UpperArm_R": "UpperArm_R", "LowerArm_R": "LowerArm_R", "Palm_R": "Palm2_R",
                            "UpperLeg_L": "UpperLeg_L", "LowerLeg_L": "LowerLeg_L", "Foot_L": "Foot_L",
                            "UpperLeg_R": "UpperLeg_R", "LowerLeg_R": "LowerLeg_R", "Foot_R": "Foot_R"},
    },
    "fish": {
        # the Dolphin's spine has one joint more than the Shark's (Spine1-4): the Shark's last spine joint before the
        # tail is the Dolphin's Spine4, not its Spine3 (mid-body, which sharing a name would pair it with). The Shark's
        # one joint per fin is the fin's pivot, the Dolphin's TopFlipper (its MidFlipper and BottomFlipper bend the
        # flipper further out); the Shark's Face is the Dolphin's Head.
        "Dolphin": {"Root": "Root", "Spine1": "Spine1", "Spine2": "Spine2", "Spine3": "Spine4", "Tail": "Tail",
                    "Bone": "TopFlipper_L", "Bone_001": "TopFlipper_R", "Face": "Head"},
    },
}


def level_chain(t, first: str, last: str):
    """``t`` with ``first`` and the joints under it turned about ``first`` by the smallest rotation that points
    ``first`` -> ``last`` straight back (-Z in a template) and level; joint frames turned alike."""
    import numpy as np

    from usdposer.core.geometry import rotation_between

    i, k = t.names.index(first), t.names.index(last)
    moved = np.zeros(t.num_joints, bool)
    moved[i] = True
    for j in range(i + 1, t.num_joints):  # parents first
        moved[j] = moved[t.parents[j]]
    R = rotation_between(t.positions[k] - t.positions[i], np.array([0.0, 0.0, -1.0]))
    positions, frames = t.positions.copy(), t.frames.copy()
    positions[moved] = t.positions[i] + (t.positions[moved] - t.positions[i]) @ R.T
    frames[moved] = R @ t.frames[moved]
    return dataclasses.replace(t, positions=positions, frames=frames)


def main() -> None:
    from usdposer.io.importers import import_any
    from usdposer.io.templates import template_from_asset, write_template

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "usdposer" / "templates"))
    ap.add_argument("names", nargs="*", default=list(TEMPLATES))
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.names:
            src, kind, desc = TEMPLATES[name]
            usd = Path(tmp) / f"{name}.usdc"
            import_any(Path(a.data) / src, usd)
            t = template_from_asset(usd, name=name, kind=kind, description=desc, source=f"{src} (CC0-1.0, Quaternius)",
                                    correspondence=CORRESPONDENCE.get(name, {}))
            fix = RENAME.get(name, {})
            t = dataclasses.replace(t, names=tuple(fix.get(n, n) for n in t.names))
            if name in LEVEL:
                t = level_chain(t, *LEVEL[name])
            out = write_template(t, Path(a.out) / f"{name}.usda")
            print(f"{out}: {t.num_joints} joints: {', '.join(t.names)}")


if __name__ == "__main__":
    main()
