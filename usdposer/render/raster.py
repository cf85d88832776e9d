"""A small z-buffer triangle rasteriser in PyTorch for previews and video-model conditioning frames: skinned meshes
shaded (Lambert, two lights) with their base-colour texture, a skeleton overlay, a checkerboard ground with grid
lines, on CPU with no display (or on a CUDA device, the same code).

Why our own: the maintained headless options need an OpenGL stack (pyrender/moderngl through EGL or OSMesa, VTK
wheels with OSMesa) that a clean CI machine may not have, and PyTorch3D/nvdiffrast do not install from the package
registries for this torch. Vectorised over pixel-triangle pairs, this renders the Fox at 512 x 512 in tens of
milliseconds on two cores.

Cameras are ``usdposer.render.splat.Camera`` (OpenCV axes: x right, y down, z forward; ``K`` pinhole; pixel centres
at +0.5), so Gaussian renders and mesh renders line up.

    pairs    every pixel centre inside each projected triangle's bounding box
    inside   edge functions of the pixel centre all of one sign
    depth    perspective-correct: 1 / sum(b_i / z_i);  attributes a = sum(b_i a_i / z_i) * depth
    z-buffer the nearest pair per pixel (``scatter_reduce`` amin), then its triangle id and barycentrics

Shapes: V vertices, F triangles, H x W pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from usdposer.core.geometry import vertex_normals
from usdposer.io.texture import albedo, readable

if TYPE_CHECKING:
    from collections.abc import Iterator

    from torch import Tensor

    from usdposer.render.splat import Camera
    from usdposer.types import FaceLook, Pose, Rig


@dataclass
class Fragments:
    """The visible surface of a render: ``face`` (H, W) triangle index or -1, ``bary`` (H, W, 3) perspective-correct
    barycentrics, ``depth`` (H, W) camera z (inf where empty)."""

    face: Tensor
    bary: Tensor
    depth: Tensor


def rasterize(verts: Tensor, faces: Tensor, cam: Camera, *, near: float = 1e-3, max_pairs: int = 8_000_000) -> Fragments:
    """Z-buffer ``faces`` (F, 3) of world-space ``verts`` (V, 3) seen by ``cam`` (module docstring)."""
    H, W = cam.height, cam.width
    dev = verts.device
    Vm = cam.viewmat.to(device=dev, dtype=torch.float64)
    P = verts.double() @ Vm[:3, :3].T + Vm[:3, 3]  # camera space
    K = cam.K.double().to(dev)
    z = P[:, 2]
    uv = torch.stack([K[0, 0] * P[:, 0] / z.clamp(min=near) + K[0, 2], K[1, 1] * P[:, 1] / z.clamp(min=near) + K[1, 2]], 1)
    faces = faces.long().to(dev)
    tri, tz = uv[faces], z[faces]  # (F, 3, 2), (F, 3)
    ok = (tz > near).all(1)
    lo, hi = tri.amin(1), tri.amax(1)
    x0 = (lo[:, 0] - 0.5).ceil().clamp(0, W - 1).long()
    x1 = (hi[:, 0] - 0.5).floor().clamp(-1, W - 1).long()
    y0 = (lo[:, 1] - 0.5).ceil().clamp(0, H - 1).long()
    y1 = (hi[:, 1] - 0.5).floor().clamp(-1, H - 1).long()
    w, h = (x1 - x0 + 1).clamp(min=0), (y1 - y0 + 1).clamp(min=0)
    area = torch.where(ok, w * h, torch.zeros_like(w))
    best = torch.full((H * W,), math.inf, dtype=torch.float64, device=dev)
    win_face = torch.full((H * W,), -1, dtype=torch.long, device=dev)
    win_bary = torch.zeros(H * W, 3, dtype=torch.float64, device=dev)
    # batches of triangles so that the pixel-triangle pairs stay under max_pairs
    order = torch.nonzero(area > 0).flatten()
    csum = torch.cumsum(area[order], 0)
    start = 0
    while start < len(order):
        base = float(csum[start - 1]) if start else 0.0
        stop = int(torch.searchsorted(csum, torch.tensor(base + max_pairs, dtype=csum.dtype, device=dev)))
        stop = max(stop, start + 1)
        f = order[start:stop]
        start = stop
        n = area[f]
        fid = torch.repeat_interleave(f, n)
        offs = torch.arange(int(n.sum()), device=dev) - torch.repeat_interleave(torch.cumsum(n, 0) - n, n)
        px = x0[fid] + offs % w[fid]
        py = y0[fid] + torch.div(offs, w[fid], rounding_mode="floor")
        c = torch.stack([px.double() + 0.5, py.double() + 0.5], 1)
        a, b, d = tri[fid, 0], tri[fid, 1], tri[fid, 2]
        cross = lambda p, q, r: (q[:, 0] - p[:, 0]) * (r[:, 1] - p[:, 1]) - (q[:, 1] - p[:, 1]) * (r[:, 0] - p[:, 0])  # noqa: E731
        full = cross(a, b, d)
        l0, l1, l2 = cross(b, d, c), cross(d, a, c), cross(a, b, c)
        s = torch.sign(full)
        inside = (full.abs() > 1e-12) & (l0 * s >= 0) & (l1 * s >= 0) & (l2 * s >= 0)
        bary = torch.stack([l0, l1, l2], 1) / full[:, None]
        inv_z = (bary / tz[fid]).sum(1)
        depth = 1 / inv_z
        bary = bary / tz[fid] * depth[:, None]  # perspective-correct
        key = py * W + px
        key, depth, bary, fid = key[inside], depth[inside], bary[inside], fid[inside]
        best.scatter_reduce_(0, key, depth, reduce="amin")
        win = depth <= best[key]
        win_face[key[win]] = fid[win]
        win_bary[key[win]] = bary[win]
    return Fragments(win_face.view(H, W), win_bary.view(H, W, 3).float(), best.view(H, W).float())


@dataclass
class Style:
    """Colours (linear RGB in [0, 1] unless stated) and what to draw."""

    background: tuple = (0.93, 0.93, 0.91)
    ground: bool = True
    checker: tuple = ((0.82, 0.82, 0.80), (0.74, 0.74, 0.72))
    grid: tuple = (0.55, 0.55, 0.53)
    skeleton: bool = True
    bone: tuple = (40, 90, 200)  # sRGB 0-255, drawn over the image
    joint: tuple = (250, 250, 250)
    bad_joint: tuple = (220, 30, 30)
    textures: bool = True


def ground_color(cam: Camera, depth: Tensor, size: float, style: Style) -> tuple[Tensor, Tensor]:
    """(rgb (H, W, 3), mask (H, W)) of the ground y = 0 where it is in front of ``depth``: a checkerboard of
    ``size``-metre squares with grid lines every square."""
    from usdposer.render.splat import checkerboard, ground_rays

    P, hit = ground_rays(cam, 0.0, torch.float64, depth.device)
    Vm = cam.viewmat.to(torch.float64).to(depth.device)
    zc = P @ Vm[2, :3] + Vm[2, 3]
    mask = hit & (zc.float() < depth)
    rgb = checkerboard(P, size, style.checker).float()
    fx = (P[..., 0] / size) % 1.0
    fz = (P[..., 2] / size) % 1.0
    # a line about one pixel wide whatever the distance: the grid pitch in pixels
    px_per_unit = float(cam.K[0, 0]) / zc.clamp(min=1e-6)
    width = (1.2 / (px_per_unit * size)).clamp(max=0.25)
    line = (torch.minimum(fx, 1 - fx) < width / 2) | (torch.minimum(fz, 1 - fz) < width / 2)
    rgb = torch.where(line[..., None], torch.tensor(style.grid, dtype=rgb.dtype, device=rgb.device), rgb)
    fade = torch.exp(-zc.float() / (40 * size))[..., None]  # far ground fades into the background
    bg = torch.tensor(style.background, dtype=rgb.dtype, device=rgb.device)
    return rgb * fade + bg * (1 - fade), mask


def shade(rig: Rig, points: list[Tensor], cam: Camera, style: Style | None = None) -> tuple[Tensor, Tensor]:
    """(rgb (H, W, 3) linear, depth (H, W)) of ``rig``'s meshes at world ``points`` (one (V, 3) per mesh)."""
    style = style or Style()
    verts, faces, colors, uvs, tex_of = [], [], [], [], []
    offset = 0
    textures: list[FaceLook] = []  # the looks with a texture (UDIM ones too)
    for m, p in zip(rig.meshes, points):
        verts.append(p.double())
        faces.append(m.faces.long() + offset)
        offset += len(p)
        corners = m.face_uvs()  # (F, 3, 2)
        uvs.append(corners.double() if corners is not None else torch.zeros(len(m.faces), 3, 2, dtype=torch.float64))
        face_tex = torch.full((len(m.faces),), -1, dtype=torch.long)
        face_color = torch.empty(len(m.faces), 3, dtype=torch.float64)
        for look in m.looks():  # the mesh's own and its GeomSubsets' materials
            if style.textures and corners is not None and readable(look.texture):
                textures.append(look)
                face_tex[look.faces] = len(textures) - 1
            face_color[look.faces] = torch.tensor(look.color, dtype=torch.float64)
        colors.append(face_color)
        tex_of.append(face_tex)
    V, F = torch.cat(verts), torch.cat(faces).to(verts[0].device)
    dev = V.device
    frag = rasterize(V, F, cam)
    H, W = cam.height, cam.width
    rgb = torch.tensor(style.background, dtype=torch.float32, device=dev).expand(H, W, 3).clone()
    hit = frag.face >= 0
    if hit.any():
        f = frag.face[hit]
        b = frag.bary[hit].double()  # (n, 3)
        tri = F[f]  # (n, 3)
        N = vertex_normals(V, F)
        n = (N[tri] * b[..., None]).sum(1)
        n = n / n.norm(dim=1, keepdim=True).clamp(min=1e-12)
        Vm = cam.viewmat.double().to(dev)
        eye = -Vm[:3, :3].T @ Vm[:3, 3]
        pos = (V[tri] * b[..., None]).sum(1)
        view = eye - pos
        view = view / view.norm(dim=1, keepdim=True).clamp(min=1e-12)
        n = torch.where(((n * view).sum(1) < 0)[:, None], -n, n)  # two-sided
        key = torch.tensor([0.35, 0.8, 0.5], dtype=torch.float64, device=dev)
        key = key / key.norm()
        lam = 0.35 + 0.5 * (n @ key).clamp(min=0) + 0.25 * (n * view).sum(1).clamp(min=0)
        base = torch.cat(colors).to(dev)[f].clone()  # per-face colour (the mesh's or its subset's)
        which = torch.cat(tex_of).to(dev)[f]
        all_uvs = torch.cat(uvs).to(dev)
        for t, look in enumerate(textures):
            sel = which == t
            if not sel.any():
                continue
            uv = (all_uvs[f[sel]] * b[sel][..., None]).sum(1)  # per-corner UVs of the hit triangles
            lin = torch.from_numpy(albedo(look.texture, uv.cpu().numpy(), look.sampler)).to(dev)
            base[sel] = torch.where(lin.isnan(), base[sel], lin)  # no texel (a missing tile): the colour
        rgb[hit] = (base * lam[:, None]).clamp(0, 1).float()
    return rgb, frag.depth


def frame_camera(points: Tensor, width: int, height: int, *, yaw_deg: float = 30.0, pitch_deg: float = 15.0,
                 fov_deg: float = 35.0, margin: float = 1.1) -> Camera:
    """A camera framing the bounding sphere of ``points`` (N, 3) from ``yaw_deg`` / ``pitch_deg`` (+Z is 0 yaw)."""
    from usdposer.render.splat import look_at

    pts = points.detach().double().cpu()
    lo, hi = pts.amin(0), pts.amax(0)
    center = (lo + hi) / 2
    radius = float((hi - lo).norm()) / 2 or 1.0
    fov = math.radians(fov_deg) * min(1.0, width / height)
    dist = radius / math.sin(fov / 2)
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    offset = torch.tensor([math.sin(yaw) * math.cos(pitch), math.sin(pitch), math.cos(yaw) * math.cos(pitch)],
                          dtype=torch.float64)
    for _ in range(2):  # the bounding sphere frames loosely: fit the projected points, centred
        cam = look_at(center + dist * offset, center, width, height, fov_deg)
        uv = project(pts, cam)
        ulo, uhi = uv.amin(0), uv.amax(0)
        fill = max(float(uhi[0] - ulo[0]) / width, float(uhi[1] - ulo[1]) / height) / 0.98
        # move the aim to the projected box's centre (in the plane through the centre, facing the camera)
        du = ((ulo + uhi) / 2 - torch.tensor([width / 2, height / 2], dtype=torch.float64)) * dist / float(cam.K[0, 0])
        R = cam.viewmat[:3, :3].double()
        center = center + R[0] * du[0] + R[1] * du[1]
        dist = dist * fill * margin
    return look_at(center + dist * offset, center, width, height, fov_deg)


SKIN_POINTS = 2_000_000  # skinned points held at once while poses are drawn or framed


def world_meshes(rig: Rig, pose: Pose, device: str | None = None, shapes=None) -> Iterator[list[Tensor]]:
    """Per pose of ``pose``, in order: per mesh of ``rig``, its (V, 3) skinned points in world space (with the
    blend-shape weights ``shapes`` of each pose, as :func:`usdposer.core.posing.skin` takes them). Poses are skinned a
    few at a time (about :data:`SKIN_POINTS` points): a studio mesh skinned for every frame of a turntable at once
    would not fit."""
    from usdposer.core.posing import skin

    step = max(1, SKIN_POINTS // max(1, rig.num_points))
    for k in range(0, len(pose), step):
        part = None if shapes is None else (shapes[0], shapes[1][k:k + step])
        with torch.no_grad():
            batch = [p @ rig.skel_to_world[:3, :3].to(p).T + rig.skel_to_world[:3, 3].to(p)
                     for p in skin(rig, pose[k:k + step], backend="torch", shapes=part)]
        for i in range(len(pose[k:k + step])):
            yield [m[i].to(device or "cpu") for m in batch]


def render_pose(rig: Rig, pose: Pose, cams: list[Camera], *, style: Style | None = None,
                bad_joints: list[set[int]] | None = None, device: str | None = None,
                shapes=None) -> list[np.ndarray]:
    """sRGB uint8 images (H, W, 3), one per pose of ``pose`` with its camera: shaded skinned meshes (joints and bones
    only for a rig without meshes), the ground, the skeleton overlay (``bad_joints[i]`` in red). ``device`` runs the
    rasterisation and shading there (a CUDA device, say); the overlay is drawn on the CPU. ``shapes``: the blend-shape
    weights of each pose (an animation's, :meth:`usdposer.types.Clip.shapes`)."""
    from PIL import Image, ImageDraw

    from usdposer.core.posing import joint_transforms

    style = style or Style()
    rig = rig.to(torch.float64)
    S = rig.skel_to_world
    with torch.no_grad():
        world_joints = (S @ joint_transforms(rig, pose))[..., :3, 3]  # (B, J, 3)
    skinned = world_meshes(rig, pose, device, shapes) if rig.meshes else None
    from usdposer.core.posing import character_height
    from usdposer.render.splat import board_size

    board = board_size(character_height(rig) or float((world_joints[0].amax(0) - world_joints[0].amin(0)).norm()))
    out = []
    for i, cam in enumerate(cams):
        if skinned is not None:
            rgb, depth = shade(rig, next(skinned), cam, style)
        else:
            rgb = torch.tensor(style.background, dtype=torch.float32, device=device).expand(cam.height, cam.width, 3).clone()
            depth = torch.full((cam.height, cam.width), math.inf, device=device)
        if style.ground:
            g, mask = ground_color(cam, depth, board, style)  # the board distillation renders: fixed, rest-sized
            rgb = torch.where(mask[..., None], g.float(), rgb)
        img = Image.fromarray(to_srgb8(rgb))
        if style.skeleton or not rig.meshes:
            _draw_skeleton(ImageDraw.Draw(img), rig, world_joints[i], cam, style, bad_joints[i] if bad_joints else set())
        out.append(np.asarray(img))
    return out


def to_srgb8(rgb: Tensor) -> np.ndarray:
    """Linear RGB (H, W, 3) in [0, 1] -> sRGB uint8 (gamma 2.2, as every picture usdposer writes)."""
    return (rgb.clamp(0, 1) ** (1 / 2.2) * 255).round().byte().cpu().numpy()


def plate(cam: Camera, board: float, style: Style | None = None) -> np.ndarray:
    """The empty scene as :func:`render_pose` draws it behind a character (background and ground, no character):
    sRGB uint8 (H, W, 3). ``fit --video`` subtracts it from a video frame to find the character's silhouette."""
    style = style or Style()
    rgb = torch.tensor(style.background, dtype=torch.float32).expand(cam.height, cam.width, 3).clone()
    if style.ground:
        g, mask = ground_color(cam, torch.full((cam.height, cam.width), math.inf), board, style)
        rgb = torch.where(mask[..., None], g.float(), rgb)
    return to_srgb8(rgb)


def project(points: Tensor, cam: Camera) -> Tensor:
    """(N, 2) pixel coordinates (and drops nothing: points behind the camera come out mirrored)."""
    Vm = cam.viewmat.double()
    P = points.double() @ Vm[:3, :3].T + Vm[:3, 3]
    z = P[:, 2].clamp(min=1e-6)
    return torch.stack([cam.K[0, 0] * P[:, 0] / z + cam.K[0, 2], cam.K[1, 1] * P[:, 1] / z + cam.K[1, 2]], 1)


def _draw_skeleton(draw, rig: Rig, joints: Tensor, cam: Camera, style: Style, bad: set[int]) -> None:
    uv = project(joints, cam).numpy()
    r = max(1.5, cam.height / 160)
    for j, p in enumerate(rig.parents.tolist()):
        if p >= 0:
            color = style.bad_joint if (j in bad) else style.bone
            draw.line([tuple(uv[p]), tuple(uv[j])], fill=color, width=max(1, round(r / 1.5)))
    for j, (x, y) in enumerate(uv):
        color = style.bad_joint if j in bad else style.joint
        rr = r * (1.6 if j in bad else 1.0)
        draw.ellipse([x - rr, y - rr, x + rr, y + rr], fill=color, outline=(30, 30, 30))
