"""Cameras: plain containers of (learnable) tensors; no kernels here (DESIGN §1).

Convention (DESIGN §2): OpenCV. World-to-camera ``P = R @ X + t``; the camera looks down +Z with
x right and y down; intrinsics ``fx, fy, cx, cy`` in pixels; images are ``(H, W)`` with pixel
centres at half-integers, so the image centre is ``(W / 2, H / 2)``.

Every parameter is a torch tensor with a leading batch dimension ``B`` (1 broadcasts against
the vertices' batch): ``R (B, 3, 3)``, ``t (B, 3)``, ``fx, fy, cx, cy (B,)``. Pass tensors with
``requires_grad=True`` (or call :meth:`requires_grad_`) to learn them through
:func:`taichirast.project`; :meth:`parameters` lists them for an optimiser.
"""
from __future__ import annotations

import math

import torch


def _tensor(name, x, batch_shape_tail, dtype, device):
    if not torch.is_tensor(x):
        x = torch.as_tensor(x, dtype=dtype or torch.float32, device=device)
    elif dtype is not None or device is not None:
        x = x.to(dtype=dtype or x.dtype, device=device or x.device)
    if not x.is_floating_point():
        x = x.to(torch.float32)
    nd = len(batch_shape_tail)
    if x.dim() == nd:
        x = x.unsqueeze(0)
    if x.dim() != nd + 1 or tuple(x.shape[1:]) != tuple(batch_shape_tail):
        want = "(" + ", ".join(["B"] + [str(s) for s in batch_shape_tail]) + ")"
        raise ValueError(f"camera: {name} must have shape {want} (or without B), got {tuple(x.shape)}")
    if not bool(torch.isfinite(x.detach()).all()):
        raise ValueError(f"camera: {name} contains NaN or infinite values")
    return x


def look_at_rotation(eye, at, up):
    """World-to-camera ``(R, t)`` for a camera at ``eye`` looking at ``at`` (OpenCV axes).

    eye, at, up: ``(3,)`` or ``(B, 3)`` tensors. The image's up direction is ``up`` projected
    on the image plane (camera -y); raises ``ValueError`` if ``up`` is parallel to the view
    direction. Differentiable in ``eye`` and ``at``. Returns ``R (B, 3, 3)``, ``t (B, 3)``.
    """
    eye, at, up = torch.broadcast_tensors(*(x if x.dim() == 2 else x[None] for x in (eye, at, up)))
    z = at - eye
    zn = z.norm(dim=-1, keepdim=True)
    if not bool(torch.isfinite(zn).all()):
        d = float((at.double() - eye.double()).norm(dim=-1).max())
        raise ValueError(f"look_at: the eye-at distance {d:.3g} overflows {str(z.dtype).replace('torch.', '')} "
                         f"(its squared norm must stay below {torch.finfo(z.dtype).max:.3g}); bring eye and at "
                         f"closer (scale the scene down) or pass dtype=torch.float64")
    if bool((zn <= 0).any()):
        raise ValueError("look_at: eye and at coincide (or are too close to tell apart in this dtype)")
    z = z / zn
    x = torch.cross(z, up, dim=-1)
    xn = x.norm(dim=-1, keepdim=True)
    if bool((xn <= 1e-12).any()):
        raise ValueError("look_at: up is parallel to the viewing direction")
    x = x / xn
    y = torch.cross(z, x, dim=-1)
    R = torch.stack([x, y, z], dim=-2)
    t = -(R @ eye[..., None])[..., 0]
    return R, t


class _CameraBase:
    orthographic = False
    _names = ("R", "t", "fx", "fy", "cx", "cy")

    def __init__(self, R, t, fx, fy, cx, cy, image_size, near=0.01, far=100.0, dtype=None, device=None):
        from . import _validate as V

        self.image_size = V.image_size(type(self).__name__, image_size)
        R = _tensor("R", R, (3, 3), dtype, device)
        dtype, device = R.dtype, R.device
        self.R = R
        self.t = _tensor("t", t, (3,), dtype, device)
        self.fx = _tensor("fx", fx, (), dtype, device)
        self.fy = _tensor("fy", fy, (), dtype, device)
        self.cx = _tensor("cx", cx, (), dtype, device)
        self.cy = _tensor("cy", cy, (), dtype, device)
        sizes = {n: getattr(self, n).shape[0] for n in self._names}
        V.batch(type(self).__name__, sizes)
        self.near = float(near)
        self.far = float(far)
        if not (math.isfinite(self.near) and math.isfinite(self.far) and self.far > self.near):
            raise ValueError(f"{type(self).__name__}: need finite near < far, got near={near}, far={far}")

    @property
    def batch_size(self) -> int:
        return max(getattr(self, n).shape[0] for n in self._names)

    def _expanded(self):
        B = self.batch_size
        return [getattr(self, n).expand(B, *getattr(self, n).shape[1:]) for n in self._names]

    def extrinsics(self):
        """``(R (B, 3, 3), t (B, 3))``."""
        R, t = self._expanded()[:2]
        return R, t

    def intrinsics(self):
        """``(B, 4)`` tensor ``fx, fy, cx, cy`` (differentiable)."""
        return torch.stack(self._expanded()[2:], dim=-1)

    def __getitem__(self, i):
        """Camera ``i`` of the batch as a batch-1 camera (differentiable views of this one's tensors;
        a tensor shared by the batch, of batch size 1, is kept as is)."""
        B = self.batch_size
        if isinstance(i, bool) or not isinstance(i, int) or not -B <= i < B:
            raise IndexError(f"{type(self).__name__}: index {i!r} out of range for a batch of {B} cameras")
        i %= B
        vals = {n: (getattr(self, n)[i:i + 1] if getattr(self, n).shape[0] > 1 else getattr(self, n))
                for n in self._names}
        return type(self)(**vals, image_size=self.image_size, near=self.near, far=self.far)

    def parameters(self):
        """The camera's tensors, for an optimiser."""
        return [getattr(self, n) for n in self._names]

    def requires_grad_(self, flag: bool = True):
        """Make every camera tensor a leaf that requires grad (in place); returns self."""
        for n in self._names:
            setattr(self, n, getattr(self, n).detach().requires_grad_(flag))
        return self

    def to(self, device=None, dtype=None):
        """A copy on ``device`` / with float ``dtype``."""
        vals = {n: getattr(self, n).to(device=device or getattr(self, n).device,
                                        dtype=dtype or getattr(self, n).dtype) for n in self._names}
        return type(self)(**vals, image_size=self.image_size, near=self.near, far=self.far)

    @property
    def dtype(self):
        return self.R.dtype

    @property
    def device(self):
        return self.R.device

    def center(self):
        """Camera centres in world coordinates, ``(B, 3)`` = ``-R^T t``."""
        R, t = self.extrinsics()
        return -(R.transpose(-1, -2) @ t[..., None])[..., 0]

    def __repr__(self):
        return (f"{type(self).__name__}(batch={self.batch_size}, image_size={self.image_size}, "
                f"near={self.near}, far={self.far}, dtype={self.dtype}, device={self.device})")


class PerspectiveCamera(_CameraBase):
    """Pinhole camera: ``x = fx X / Z + cx``, ``y = fy Y / Z + cy`` in pixels (OpenCV axes).

    Args:
        R: ``(B, 3, 3)`` or ``(3, 3)`` world-to-camera rotation.
        t: ``(B, 3)`` or ``(3,)`` world-to-camera translation.
        fx, fy: focal lengths in pixels, ``(B,)`` or scalars.
        cx, cy: principal point in pixels, ``(B,)`` or scalars (the image centre is ``(W/2, H/2)``).
        image_size: ``(H, W)``.
        near, far: clipping depths (camera Z). Geometry in front of ``near`` is clipped by the
            hard rasterizer; ``near`` and ``far`` also normalise depth for soft aggregation.
        dtype, device: optional conversion of all tensors.

    Example:
        >>> import torch, taichirast as tr
        >>> cam = tr.PerspectiveCamera.look_at(torch.tensor([0., 0., -3.]), image_size=(64, 48))
        >>> cam.intrinsics().shape
        torch.Size([1, 4])
    """

    @classmethod
    def look_at(cls, eye, at=(0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0), fov_y=45.0, image_size=(256, 256),
                near=0.01, far=100.0, dtype=None, device=None):
        """Camera at ``eye`` looking at ``at`` with world ``up``; vertical field of view ``fov_y`` degrees.

        ``eye``/``at``/``up``: ``(3,)`` or ``(B, 3)`` (tensors stay differentiable). Square pixels,
        principal point at the image centre.
        """
        eye, at, up = _points(eye, at, up, dtype, device)
        R, t = look_at_rotation(eye, at, up)
        return cls.from_fov(R, t, fov_y, image_size, near=near, far=far)

    @classmethod
    def from_fov(cls, R, t, fov_y=45.0, image_size=(256, 256), near=0.01, far=100.0, dtype=None, device=None):
        """Camera with vertical field of view ``fov_y`` (degrees, in (0, 180)), square pixels, centred."""
        from . import _validate as V

        H, W = V.image_size(cls.__name__, image_size)
        fov = torch.as_tensor(fov_y, dtype=torch.float64)
        if not bool(((fov > 0) & (fov < 180)).all()):
            raise ValueError(f"{cls.__name__}.from_fov: fov_y must be in (0, 180) degrees, got {fov_y}")
        from .geometry.camera_models import fov_to_focal

        R = _tensor("R", R, (3, 3), dtype, device)
        f = fov_to_focal(torch.as_tensor(fov_y, dtype=R.dtype, device=R.device), float(H)).reshape(-1)
        c = lambda v: torch.full_like(f, v)  # noqa: E731
        return cls(R, t, f, f.clone(), c(W / 2.0), c(H / 2.0), image_size=(H, W), near=near, far=far,
                   dtype=R.dtype, device=R.device)

    def fov_y(self):
        """Vertical field of view in degrees, ``(B,)``."""
        from .geometry.camera_models import focal_to_fov

        return focal_to_fov(self.fy, float(self.image_size[0]))

    def to_opengl(self):
        """World-to-camera ``(R, t)`` in the OpenGL convention (camera looks down -Z, y up)."""
        from .geometry.camera_models import opencv_to_opengl

        return opencv_to_opengl(*self.extrinsics())

    def to_pytorch3d(self):
        """``(R, T)`` in PyTorch3D's convention (+X left, +Y up, row vectors: X_cam = X_world @ R + T)."""
        from .geometry.camera_models import opencv_to_pytorch3d

        return opencv_to_pytorch3d(*self.extrinsics())

    @classmethod
    def from_opengl(cls, R, t, fx, fy, cx, cy, image_size, **kw):
        """Camera from an OpenGL-convention world-to-camera ``(R, t)`` (looks down -Z, y up) and pixel intrinsics."""
        from .geometry.camera_models import opengl_to_opencv

        R, t = opengl_to_opencv(torch.as_tensor(R), torch.as_tensor(t))
        return cls(R, t, fx, fy, cx, cy, image_size, **kw)

    @classmethod
    def from_pytorch3d(cls, R, T, fx, fy, cx, cy, image_size, **kw):
        """Camera from PyTorch3D's ``(R, T)`` (row-vector convention) and pixel intrinsics."""
        from .geometry.camera_models import pytorch3d_to_opencv

        R, t = pytorch3d_to_opencv(torch.as_tensor(R), torch.as_tensor(T))
        return cls(R, t, fx, fy, cx, cy, image_size, **kw)


class OrthographicCamera(_CameraBase):
    """Orthographic camera: ``x = fx X + cx``, ``y = fy Y + cy`` (fx, fy in pixels per world unit).

    Same pose convention and arguments as :class:`PerspectiveCamera`; ``near`` defaults to
    ``-100`` here, since an orthographic view has no focal point (geometry with camera Z below
    ``near`` is clipped by the hard rasterizer, and soft modes drop faces with any vertex there).
    """

    orthographic = True

    def __init__(self, R, t, fx, fy, cx, cy, image_size, near=-100.0, far=100.0, dtype=None, device=None):
        super().__init__(R, t, fx, fy, cx, cy, image_size, near=near, far=far, dtype=dtype, device=device)

    @classmethod
    def look_at(cls, eye, at=(0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0), height=2.0, image_size=(256, 256),
                near=-100.0, far=100.0, dtype=None, device=None):
        """Camera at ``eye`` looking at ``at``; ``height`` world units span the image vertically."""
        from . import _validate as V

        H, W = V.image_size(cls.__name__, image_size)
        height = V.positive(cls.__name__, "height", height)
        eye, at, up = _points(eye, at, up, dtype, device)
        R, t = look_at_rotation(eye, at, up)
        s = torch.full((R.shape[0],), H / height, dtype=R.dtype, device=R.device)
        return cls(R, t, s, s.clone(), torch.full_like(s, W / 2.0), torch.full_like(s, H / 2.0),
                   image_size=(H, W), near=near, far=far)


def _points(eye, at, up, dtype, device):
    ref = next((x for x in (eye, at, up) if torch.is_tensor(x)), None)
    dtype = dtype or (ref.dtype if ref is not None and ref.is_floating_point() else torch.float32)
    device = device or (ref.device if ref is not None else None)
    out = []
    for name, x in (("eye", eye), ("at", at), ("up", up)):
        x = x.to(dtype=dtype, device=device) if torch.is_tensor(x) else torch.as_tensor(x, dtype=dtype, device=device)
        if x.shape[-1:] != (3,) or x.dim() > 2:
            raise ValueError(f"look_at: {name} must have shape (3,) or (B, 3), got {tuple(x.shape)}")
        if not bool(torch.isfinite(x.detach()).all()):
            raise ValueError(f"look_at: {name} has NaN or infinite values in {dtype} (whose largest value is "
                             f"{torch.finfo(dtype).max:.3g}): {x.reshape(-1)[:6].tolist()}")
        out.append(x)
    return out
