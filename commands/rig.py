"""usdposer rig"""

from __future__ import annotations

import sys

import click
from usdposer.commands._options import count, json_option, verbosity_option
from usdposer.commands._output import emit, warn

EPILOG = """\b
Examples:
  usdposer rig --list-templates
  usdposer rig horse_bare.ply --template quadruped --up +Y --forward +Z -o horse_rigged.usdc \\
      --preview horse_rig.png
  usdposer rig assets/khronos/CesiumMan.glb --template biped -o man_rigged.usdc --json
  usdposer rig horse_bare.ply --template Horse.glb --up +Y -o horse_own.usdc   # any rigged character

\b
Auto-rigging (Pinocchio, Baran & Popovic 2007): a signed distance field of
the mesh (inside by the generalized winding number, so holes, several parts
and self-intersections are fine), its approximate medial surface, packed
spheres and their graph; the template's branch and tip joints are placed on
spheres by a discrete search under Pinocchio's penalties (bone lengths and
directions against the template, symmetry, feet low, no bone leaving the
mesh, near where the template's proportions put them: the legs' join and
the fore and hind feet are landmarks), every joint is then refined (from
that embedding and from the mapped template; the lower energy is kept),
and the mesh gets bone-heat weights (`usdposer skin`). MESH is USD
(Mesh prims), glTF/GLB (meshes without skins; a skinned file is taken in
its bind pose, its skeleton dropped), OBJ, PLY, STL or OFF, at any scale.
The up axis comes from the file (USD, glTF) or --up; the facing from
--forward, or is inferred (the four facings about the up axis, or for
OBJ/PLY the axes whose proportions match the template's, are all tried and
the lowest penalty wins, the body's proportions and where its feet point
weighed in; the report lists the runners-up). A T-posed biped with stubby
feet may face either way as far as the mesh can tell: check the preview,
or give --forward. --template is a shipped template (--list-templates) or
any rigged USD/glTF character: its skeleton in its bind pose, without
joints that deform nothing or float outside the body. The mesh's pose is
the rig's rest and the pose space's reference: give it in the pose it was
modelled in (T- or A-pose), like the template's. Writes a
UsdSkel asset (Skeleton with the template's joint names, rest = the
embedded pose, skinned meshes, materials kept) that every other verb reads.
"""


@click.command("rig", epilog=EPILOG)
@click.argument("mesh", type=click.Path(dir_okay=False), required=False)
@click.option("-t", "--template", default="biped", show_default=True,
              help="Shipped template name, template file, or a rigged character (USD/glTF).")
@click.option("-o", "--out", type=click.Path(dir_okay=False), default=None, help="Output asset (default MESH_STEM.rigged.usdc).")
@click.option("--up", default=None, help="The mesh's up axis (+Y, -Z, ...; default: from the file, or inferred).")
@click.option("--forward", default=None, help="The way the character faces (+Z, -X, ...; default: inferred).")
@click.option("--resolution", type=count(16, 512), default=96, show_default=True,
              help="Distance-field cells along the mesh's longest side.")
@click.option("-k", "--influences", type=count(1, 64), default=4, show_default=True, help="Skin weights per vertex.")
@click.option("--preview", type=click.Path(dir_okay=False), default=None, help="PNG of the skeleton in the mesh, three sides.")
@click.option("--list-templates", is_flag=True, help="List the shipped templates and exit.")
@json_option
@verbosity_option
def cli(mesh, template, out, up, forward, resolution, influences, preview, list_templates, as_json) -> None:
    """Auto-rig MESH: embed a template skeleton (Pinocchio), skin it by bone heat, write a UsdSkel asset."""
    from usdposer.pipelines.rig import RigOptions, rig
    from usdposer.pipelines.rig import list_templates as shipped

    from usdposer.errors import InputError

    if list_templates:
        items = shipped()
        emit(items, as_json, lambda ts: "\n".join(f"{t['name']:<10} {t['kind']:<13} {t['joints']:>3} joints  "
                                                  f"{t['description']}" for t in ts))
        return
    if not mesh:
        raise InputError("give MESH (a USD, glTF/GLB, OBJ, PLY, STL or OFF file), or --list-templates")
    from usdposer.core.selection import default_output

    rep = rig(mesh, out or default_output(mesh, "rigged"),
              RigOptions(template=template, up=up, forward=forward, resolution=resolution, influences=influences,
                         preview=preview, arguments=tuple(sys.argv[1:])))
    if rep.unweighted_joints:
        warn(f"{len(rep.unweighted_joints)} joints received no weight: {', '.join(rep.unweighted_joints)}")
    emit(rep, as_json, _human)


def _human(r) -> str:
    how = "inferred" if r.inferred else "given"
    lines = [f"wrote {r.output}: template {r.template} ({len(r.joints)} joints) embedded in {r.meshes} meshes "
             f"({r.vertices} vertices), {r.weighted_joints} joints weighted ({r.seconds:.1f} s)",
             f"  orientation {r.orientation} ({how}; penalty {r.penalty:.3f}); height mapped by "
             f"{'where the legs join' if r.up_mapping == 'legs' else 'volume'}, length by "
             f"{'the fore and hind feet' if r.forward_mapping == 'feet' else 'volume'}",
             f"  refined from the {'discrete search' if r.refined_from == 'search' else 'mapped template'} (energy "
             + ", ".join(f"{k} {v:.4f}" for k, v in r.refine_energies.items()) + ")",
             "  penalties: " + ", ".join(f"{k} {v:.3f}" for k, v in r.penalties.items())]
    if r.inferred and len(r.orientations) > 1:
        ranked = sorted(r.orientations.items(), key=lambda kv: kv[1])[:3]
        lines.append("  tried: " + "; ".join(f"{k} {v:.3f}" for k, v in ranked))
    if r.parts_ignored:
        lines.append(f"  {r.parts_ignored} separate parts of the inside were left out of the skeleton (skinned to their "
                     "nearest bone)")
    if r.turned:
        lines.append("  the mesh was turned to +Y up in the output (USD knows +Y and +Z up only)")
    if r.dropped_skeletons:
        lines.append(f"  the input's own skeleton was dropped ({r.dropped_skeletons}); its mesh was taken in its bind "
                     "pose")
    if r.preview:
        lines.append(f"  preview {r.preview}")
    return "\n".join(lines)
