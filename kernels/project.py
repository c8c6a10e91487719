"""Vertex projection: world -> camera -> screen pixels (forward and hand-written backward).

Conventions (DESIGN §2): OpenCV camera. ``P = R @ v + t`` (world-to-camera), camera looks down
+Z, x right, y down. Perspective: ``x = fx * P.x / P.z + cx``, ``y = fy * P.y / P.z + cy``;
orthographic: ``x = fx * P.x + cx``, ``y = fy * P.y + cy`` (fx, fy in pixels per world unit).
The output keeps ``z = P.z``, the camera depth (> 0 in front of the camera).

Points on the camera plane (``|P.z| < Z_TINY``) divide by ``±Z_TINY`` instead of 0, so the
output stays finite; the rasterizer rebuilds homogeneous coordinates as ``(x z, y z, z)``, which
is exact for every other point (including points behind the camera: see raster.py).

Shapes: verts ``(Bv, V, 3)``, R ``(Bc, 3, 3)``, t ``(Bc, 3)``, intrinsics ``(Bc, 4)`` = fx, fy,
cx, cy, with ``Bv`` and ``Bc`` each 1 or B (1 broadcasts); output ``(B, V, 3)``. A packed batch of
different meshes (``per_vertex``): ``Bv = B = 1`` and vertex v uses camera ``vcam[v]`` (its mesh).

The backward is written by hand (flat per-vertex, but one kernel for NumPy and torch alike):
camera-parameter gradients are written per vertex into ``(B, V, 16)`` partials and summed
outside, which avoids atomic contention on 16 addresses.
"""
import functools

import taichi as ti

from . import kernel

Z_TINY = 1e-8


@functools.lru_cache(maxsize=None)
def build(real):
    """Kernels for float type ``real`` (ti.f32 or ti.f64)."""
    arr = ti.types.ndarray(dtype=real)
    iarr = ti.types.ndarray(dtype=ti.i32)

    @ti.func
    def _camera_point(verts: arr, R: arr, t: arr, vcam: iarr, per_vertex, b, v):
        bv = b if verts.shape[0] > 1 else 0
        bc = b if R.shape[0] > 1 else 0
        if per_vertex:
            bc = vcam[v]
        p = ti.Vector([verts[bv, v, 0], verts[bv, v, 1], verts[bv, v, 2]], real)
        Rm = ti.Matrix([[R[bc, i, j] for j in ti.static(range(3))] for i in ti.static(range(3))], real)
        tv = ti.Vector([t[bc, 0], t[bc, 1], t[bc, 2]], real)
        return p, Rm @ p + tv, bv, bc

    @kernel
    def forward(verts: arr, R: arr, t: arr, intr: arr, vcam: iarr, per_vertex: ti.i32, out: arr,
                orthographic: ti.i32):
        for b, v in ti.ndrange(out.shape[0], out.shape[1]):
            _, P, _, bc = _camera_point(verts, R, t, vcam, per_vertex, b, v)
            fx, fy, cx, cy = intr[bc, 0], intr[bc, 1], intr[bc, 2], intr[bc, 3]
            if orthographic:
                out[b, v, 0] = fx * P[0] + cx
                out[b, v, 1] = fy * P[1] + cy
            else:
                z = P[2]
                if ti.abs(z) < real(Z_TINY):
                    z = real(Z_TINY) if z >= 0 else -real(Z_TINY)
                out[b, v, 0] = fx * P[0] / z + cx
                out[b, v, 1] = fy * P[1] / z + cy
            out[b, v, 2] = P[2]

    @kernel
    def backward(verts: arr, R: arr, t: arr, intr: arr, vcam: iarr, per_vertex: ti.i32, grad_out: arr,
                 grad_verts: arr, cam_partial: arr, orthographic: ti.i32, need_cam: ti.i32):
        # grad_verts: (Bv, V, 3), zero-initialised, accumulated (several b may share bv = 0).
        # cam_partial: (B, V, 16) = dR (9, row-major), dt (3), dfx, dfy, dcx, dcy; summed outside.
        for b, v in ti.ndrange(grad_out.shape[0], grad_out.shape[1]):
            p, P, bv, bc = _camera_point(verts, R, t, vcam, per_vertex, b, v)
            fx, fy = intr[bc, 0], intr[bc, 1]
            gx, gy, gz = grad_out[b, v, 0], grad_out[b, v, 1], grad_out[b, v, 2]
            gP = ti.Vector([real(0.0), real(0.0), gz], real)
            gfx = real(0.0)
            gfy = real(0.0)
            if orthographic:
                gP[0] += gx * fx
                gP[1] += gy * fy
                gfx = gx * P[0]
                gfy = gy * P[1]
            else:
                z = P[2]
                clamped = False
                if ti.abs(z) < real(Z_TINY):
                    z = real(Z_TINY) if z >= 0 else -real(Z_TINY)
                    clamped = True
                iz = real(1.0) / z
                gP[0] += gx * fx * iz
                gP[1] += gy * fy * iz
                if not clamped:  # x = fx X / z: dx/dz = -fx X / z^2
                    gP[2] += -(gx * fx * P[0] + gy * fy * P[1]) * iz * iz
                gfx = gx * P[0] * iz
                gfy = gy * P[1] * iz
            Rm = ti.Matrix([[R[bc, i, j] for j in ti.static(range(3))] for i in ti.static(range(3))], real)
            gv = Rm.transpose() @ gP
            for k in ti.static(range(3)):
                ti.atomic_add(grad_verts[bv, v, k], gv[k])
            if need_cam:
                for i in ti.static(range(3)):
                    for j in ti.static(range(3)):
                        cam_partial[b, v, 3 * i + j] = gP[i] * p[j]
                    cam_partial[b, v, 9 + i] = gP[i]
                cam_partial[b, v, 12] = gfx
                cam_partial[b, v, 13] = gfy
                cam_partial[b, v, 14] = gx
                cam_partial[b, v, 15] = gy

    return forward, backward
