"""Warp kernel of the ground contact in ``usdposer.physics.contact`` (its torch twin: ``ground_wrench_ref``)."""

from __future__ import annotations

from usdposer.core._warp import get_warp

wp = get_warp()


@wp.kernel
def ground_contact_kernel(
    body_q: wp.array(dtype=wp.transform),  # (B,)
    body_qd: wp.array(dtype=wp.spatial_vector),  # (B,) (linear at the COM, angular)
    body_com: wp.array(dtype=wp.vec3),  # (B,) centre of mass in the body frame
    centers: wp.array(dtype=wp.vec3),  # (B,) box centres in the body frame
    halves: wp.array(dtype=wp.vec3),  # (B,) box half-extents
    ke: wp.array(dtype=float),  # (B,) per body
    kd: wp.array(dtype=float),
    kf: wp.array(dtype=float),
    mu: wp.array(dtype=float),
    margin: float,  # contact starts this far above the ground (the depth that carries the weight)
    body_f: wp.array(dtype=wp.spatial_vector),  # (B,) accumulated (force, torque about the COM)
):
    tid = wp.tid()
    b = tid // 8
    c = tid - b * 8
    sx = float(2 * (c // 4) - 1)
    sy = float(2 * ((c // 2) % 2) - 1)
    sz = float(2 * (c % 2) - 1)
    X = body_q[b]
    e = halves[b]
    p = wp.transform_point(X, centers[b] + wp.vec3(sx * e[0], sy * e[1], sz * e[2]))
    depth = margin - p[1]
    if depth <= 0.0:
        return
    x_com = wp.transform_point(X, body_com[b])
    r = p - x_com
    qd = body_qd[b]
    v = wp.spatial_top(qd) + wp.cross(wp.spatial_bottom(qd), r)
    fn = wp.max(ke[b] * depth - kd[b] * v[1], 0.0)
    vt = wp.vec3(v[0], 0.0, v[2])
    speed = wp.length(vt)
    ft = -vt * wp.min(kf[b], mu[b] * fn / (speed + 1.0e-6))
    f = wp.vec3(ft[0], fn, ft[2])
    wp.atomic_add(body_f, b, wp.spatial_vector(f, wp.cross(r, f)))


@wp.kernel
def upright_kernel(
    body_q: wp.array(dtype=wp.transform),  # (B,)
    body_qd: wp.array(dtype=wp.spatial_vector),  # (B,)
    root: int,
    up_local: wp.vec3,  # the root body's rest up direction, in its own frame
    up_a: wp.vec3,  # the reference's up direction at the chunk's start and end frames
    up_b: wp.vec3,
    s: float,  # position within the chunk
    ke: float,
    kd: float,
    body_f: wp.array(dtype=wp.spatial_vector),
):
    """The virtual uprightness torque of ``usdposer.physics.contact.upright_torque_ref`` (its torch twin)."""
    up = wp.quat_rotate(wp.transform_get_rotation(body_q[root]), up_local)
    target = wp.normalize(up_a + s * (up_b - up_a))
    w = wp.spatial_bottom(body_qd[root])
    tilt_rate = w - wp.dot(w, up) * up
    tau = ke * wp.cross(up, target) - kd * tilt_rate
    wp.atomic_add(body_f, root, wp.spatial_vector(wp.vec3(0.0), tau))
