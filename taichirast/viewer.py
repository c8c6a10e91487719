"""Interactive mesh viewer with a gradient view (``taichirast view MESH``).

Two layers:

* :class:`ViewerState` holds everything that is not a window — the orbit camera (azimuth,
  elevation, distance, pan target), the render mode (``hard`` / ``soft`` / ``dibr``), sigma /
  gamma, one directional light (direction and colour) plus ambient, and an optional target
  image — and exposes the event handlers (:meth:`~ViewerState.on_drag`,
  :meth:`~ViewerState.on_scroll`, :meth:`~ViewerState.on_key`), :meth:`~ViewerState.frame` (the
  image, rendered by :func:`taichirast.render`) and :meth:`~ViewerState.gradient_view`. It needs
  no display and is what the tests drive.
* :class:`Viewer` is the thin window around it: a Taichi GGUI window (``ti.ui.Window``; the image
  comes from ``tr.render`` through ``canvas.set_image``, not from GGUI's scene renderer) with an
  ImGui panel (mode buttons, sigma / gamma / light sliders, gradient view toggle), mouse and key
  input. Without a display it renders offscreen (GGUI ``show_window=False`` with Vulkan, e.g.
  Mesa's lavapipe; else ``ti.GUI(show_gui=False)``) and :meth:`Viewer.screenshot` writes PNGs.

Mouse: left-drag orbits, right-drag zooms, middle-drag pans (Taichi 1.7's windows report no wheel
events to this loop; :meth:`ViewerState.on_scroll` is there for embedders). Keys: arrows orbit, ``=``/``-`` zoom, ``w a s d`` pan, ``m`` next
mode (``1 2 3 4`` pick one), ``g`` toggle the gradient view, ``p`` next gradient parameter, ``t``
take the current image as the target, ``c`` clear the target, ``r`` reset the camera.

Gradient view (:meth:`ViewerState.gradient_view`), for the parameter ``grad_param``:

* ``light_direction`` / ``light_color``: per-pixel derivative of the image with respect to the
  3 components of the light's direction / colour, by central finite differences of
  :func:`taichirast.render` (exact up to O(h^2); pixels the parameter does not influence, e.g. the
  background, are exactly zero). With a target image it is each pixel's contribution to
  ``dL/dp`` for ``L = mean((I - T)^2)``, i.e. ``sum_c dL/dI_c * dI_c/dp_k`` (norm over ``k``);
  without one, the sensitivity ``|dI/dp|`` (norm over channels and components).
* ``vertices``: ``|dL/dv|`` per vertex from ``loss.backward()`` through the renderer
  (``L = mean((I - T)^2)``, or ``mean(I)`` without a target), splatted on the mesh as vertex
  colours and rendered unlit in hard mode (background zero).

Camera convention: OpenCV (DESIGN §2); the eye is ``at + distance * (cos(el) sin(az), sin(el),
cos(el) cos(az))`` with ``up = +y``, angles in degrees. Images are ``(H, W, 3)`` float32, row 0 at
the top.
"""
from __future__ import annotations

import math
import os
import warnings

import numpy as np

from .live import Display, has_display, heat_colormap, signed_colormap  # noqa: F401  (re-exported helpers)

__all__ = ["ViewerState", "Viewer", "view", "load_view_scene", "load_view_mesh", "load_view_texture"]

MODES = ("hard", "soft", "dibr", "splat")
GRAD_PARAMS = ("light_direction", "light_color", "vertices")


def _viewable_texture(m, path):
    """``dict(texture, uvs, uv_faces)`` of a :class:`taichirast.io.TexturedMesh`, RGB, or None."""
    if m.texture is None or m.uvs is None:
        if m.uvs is not None:
            warnings.warn(f"{path}: the mesh has UVs but no diffuse texture (MTL map_Kd); drawing it untextured",
                          stacklevel=3)
        return None
    tex = np.asarray(m.texture, np.float32)
    # grey (1) and grey + alpha (2) -> RGB; RGBA -> RGB (alpha is not drawn)
    tex = np.repeat(tex[..., :1], 3, axis=-1) if tex.shape[-1] in (1, 2) else tex[..., :3]
    return dict(texture=np.ascontiguousarray(tex), uvs=np.asarray(m.uvs, np.float32),
                uv_faces=np.asarray(m.uv_faces, np.int32))


def _normalize_referenced(v, f):
    """Centre and scale into the unit sphere using only the vertices the faces reference (stray
    ``v`` lines must not shrink the mesh); every vertex is transformed."""
    from . import io as trio

    used = np.unique(np.asarray(f).reshape(-1))
    if used.size == 0:
        return trio.normalize_mesh(v, radius=1.0)
    vv = np.asarray(v, np.float64)
    c = (vv[used].min(0) + vv[used].max(0)) / 2.0
    r = np.linalg.norm(vv[used] - c, axis=1).max()
    return ((vv - c) / max(r, 1e-12)).astype(np.float32)


def load_view_scene(path, texture: bool = True):
    """A mesh for viewing and its diffuse texture, loaded once: ``(verts (V, 3) float32, faces
    (F, 3) int32, tex)``, centred and scaled into the unit sphere.

    ``path`` is a mesh file or ``builtin:NAME`` (``icosphere``, ``cube``, ``torus``, ...). For an OBJ
    with UVs and an MTL ``map_Kd`` texture (and ``texture=True``), ``tex`` is
    ``dict(texture=(Ht, Wt, 3), uvs=(T, 2), uv_faces=(F, 3))`` and the faces keep the file's vertex
    order so the UV faces match; otherwise ``tex`` is None. A texture that cannot be loaded (missing
    MTL or image) gives a warning naming the file and an untextured mesh.
    """
    from . import io as trio
    from . import meshes

    if str(path).startswith("builtin:"):
        name = str(path).split(":", 1)[1]
        fn = getattr(meshes, name, None)
        if fn is None or name.startswith("_") or not callable(fn):
            raise ValueError(f"unknown built-in mesh {name!r} (try icosphere, cube, plane, uv_sphere, cylinder, cone, torus)")
        v, f = fn()
        return trio.normalize_mesh(v, radius=1.0), np.asarray(f, np.int32), None
    if texture and os.path.splitext(str(path))[1].lower() == ".obj":
        try:
            m = trio.load_textured_mesh(path)
        except FileNotFoundError as e:   # the OBJ exists (checked by load_mesh below) but its MTL / image does not
            if os.path.isfile(path):
                warnings.warn(f"{e}; drawing the mesh untextured", stacklevel=2)
            m = None
        except ValueError:
            m = None                      # not parseable as a textured OBJ: load_mesh reports it
        if m is not None:
            tex = _viewable_texture(m, path)
            if tex is not None:
                return _normalize_referenced(m.verts, m.faces), np.asarray(m.faces, np.int32), tex
            if m.faces is not None and len(m.faces):
                # no texture: the file's own positions and triangles (what load_mesh would return
                # for an OBJ without UVs), without parsing the file a second time
                return trio.normalize_mesh(m.verts, radius=1.0), np.asarray(m.faces, np.int32), None
    v, f = trio.load_mesh(path)
    return trio.normalize_mesh(v, radius=1.0), np.asarray(f, np.int32), None


def load_view_texture(path):
    """The diffuse texture of a textured OBJ (see :func:`load_view_scene`), or None."""
    return load_view_scene(path)[2]


def load_view_mesh(path):
    """``(verts, faces)`` of :func:`load_view_scene` (OBJ files with a texture keep their vertex
    order so the texture's UV faces match)."""
    v, f, _ = load_view_scene(path)
    return v, f


class ViewerState:
    """The viewer without a window: camera, mode, sliders, target, event handlers, frame and gradient view.

    Args:
        verts: ``(V, 3)`` positions (NumPy or torch; float32 used). faces: ``(F, 3)`` int indices.
        colors: ``(V, 3)`` per-vertex albedo (default: light grey).
        size: ``(H, W)`` image size. mode: ``hard | soft | dibr | splat``; ``antialias``: analytic
            antialiasing of silhouette edges in hard and DIB-R modes.
        azimuth, elevation, distance, fov: the orbit camera (degrees / world units).
        light_direction: the direction the light travels (world space). light_color, ambient: RGB.
        sigma, gamma: soft-mode parameters. background: RGB.
        target: optional ``(H, W, 3)`` target image for the gradient view.
        texture: optional ``dict(texture=(Ht, Wt, 3), uvs=(T, 2), uv_faces=(F, 3))`` (see
            :func:`load_view_texture`): the albedo comes from the texture instead of ``colors``.
    """

    def __init__(self, verts, faces, colors=None, size=(256, 256), mode="hard", azimuth=30.0, elevation=20.0,
                 distance=3.0, fov=40.0, light_direction=(-0.4, -0.6, -0.7), light_color=(0.85, 0.85, 0.85),
                 ambient=(0.25, 0.25, 0.25), sigma=1e-4, gamma=1e-4, background=(0.1, 0.1, 0.12), target=None,
                 grad_param="light_direction", texture=None, antialias=False):
        import torch

        from .runtime import torch_device

        self.torch = torch
        # the device Taichi reads in place: TAICHIRAST_ARCH's backend (under auto: the CPU)
        self.device = dev = torch_device(prefer="cpu")
        self.texture = None
        if texture is not None:
            missing = [k for k in ("texture", "uvs", "uv_faces") if k not in texture]
            if missing:
                raise ValueError(f"ViewerState: texture must be a dict with texture, uvs and uv_faces; missing {missing}")
            self.texture = {k: torch.as_tensor(np.asarray(texture[k]),
                                               dtype=torch.int32 if k == "uv_faces" else torch.float32, device=dev)
                            for k in ("texture", "uvs", "uv_faces")}
        self.verts = torch.as_tensor(np.asarray(verts.detach().cpu() if hasattr(verts, "detach") else verts),
                                     dtype=torch.float32, device=dev)
        self.faces = torch.as_tensor(np.asarray(faces.detach().cpu() if hasattr(faces, "detach") else faces),
                                     dtype=torch.int32, device=dev)
        if self.verts.dim() != 2 or self.verts.shape[-1] != 3:
            raise ValueError(f"ViewerState: verts must have shape (V, 3), got {tuple(self.verts.shape)}")
        if self.faces.dim() != 2 or self.faces.shape[-1] != 3:
            raise ValueError(f"ViewerState: faces must have shape (F, 3), got {tuple(self.faces.shape)}")
        if colors is None:
            colors = np.full((self.verts.shape[0], 3), 0.8, np.float32)
        self.colors = torch.as_tensor(np.asarray(colors), dtype=torch.float32, device=dev)
        self.size = (int(size[0]), int(size[1]))
        self._home = dict(azimuth=float(azimuth), elevation=float(elevation), distance=float(distance))
        self.azimuth, self.elevation, self.distance = float(azimuth), float(elevation), float(distance)
        self.at = np.zeros(3, np.float64)
        self.fov = float(fov)
        self.set_mode(mode)
        self.light_direction = np.asarray(light_direction, np.float64)
        self.light_color = np.asarray(light_color, np.float64)
        self.ambient = np.asarray(ambient, np.float64)
        self.sigma, self.gamma = float(sigma), float(gamma)
        self.antialias = bool(antialias)
        self.background = np.asarray(background, np.float64)
        self.target = None if target is None else self._check_image("target", target)
        if grad_param not in GRAD_PARAMS:
            raise ValueError(f"ViewerState: grad_param must be one of {GRAD_PARAMS}, got {grad_param!r}")
        self.grad_param = grad_param
        self.show_gradient = False
        self.version = 0  # bumped on every change (the window redraws only then)

    # -- parameters --
    def _check_image(self, name, img):
        a = np.asarray(img.detach().cpu() if hasattr(img, "detach") else img, np.float32)
        if a.ndim == 4:
            a = a[0]
        if a.shape[:2] != self.size or a.ndim != 3 or a.shape[2] < 3:
            raise ValueError(f"ViewerState: {name} must be an (H, W, 3) image of size {self.size}, got {a.shape}")
        return a[..., :3]

    def set_mode(self, mode: str) -> None:
        """Switch the render mode (``hard``, ``soft``, ``dibr`` or ``splat``)."""
        if mode not in MODES:
            raise ValueError(f"ViewerState: mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.version = getattr(self, "version", 0) + 1

    def set_target(self, image=None) -> None:
        """Set the gradient view's target image ``(H, W, 3)``; ``None`` takes the current frame."""
        self.target = self.frame() if image is None else self._check_image("target", image)
        self.version += 1

    def eye(self) -> np.ndarray:
        """The camera position (world space) from azimuth / elevation / distance / pan target."""
        az, el = math.radians(self.azimuth), math.radians(self.elevation)
        return self.at + self.distance * np.array([math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)])

    def camera(self):
        """The current :class:`taichirast.PerspectiveCamera` (batch 1)."""
        import taichirast as tr

        return tr.PerspectiveCamera.look_at([self.eye().tolist()], at=[self.at.tolist()], up=(0.0, 1.0, 0.0),
                                            fov_y=self.fov, image_size=self.size, near=0.05, far=100.0,
                                            device=self.device)

    def lights(self, direction=None, color=None):
        """The current :class:`taichirast.Lights` (ambient + one directional light)."""
        import taichirast as tr

        t = self.torch
        d = self.light_direction if direction is None else direction
        c = self.light_color if color is None else color
        return tr.Lights(ambient=t.tensor(np.asarray(self.ambient), dtype=t.float32),
                         directions=t.tensor(np.asarray(d, np.float64)[None], dtype=t.float32),
                         colors=t.tensor(np.asarray(c, np.float64)[None], dtype=t.float32)).to(device=self.device)

    def render_kwargs(self) -> dict:
        """The keyword arguments :meth:`frame` passes to :func:`taichirast.render` (besides verts, faces, camera, lights)."""
        kw = dict(colors=self.colors, mode=self.mode, sigma=self.sigma, gamma=self.gamma,
                  background=self.torch.tensor(self.background, dtype=self.torch.float32, device=self.device),
                  antialias=self.antialias and self.mode in ("hard", "dibr"))
        if self.texture is not None:
            kw.update(self.texture)
        return kw

    def _render(self, verts=None, colors=None, lights="default", mode=None):
        import taichirast as tr

        kw = self.render_kwargs()
        if colors is not None:  # explicit colours (e.g. a gradient splat) replace the texture
            kw["colors"] = colors
            for k in ("texture", "uvs", "uv_faces"):
                kw.pop(k, None)
        if mode is not None:
            kw["mode"] = mode
        li = self.lights() if lights == "default" else lights
        return tr.render(self.verts if verts is None else verts, self.faces, self.camera(), lights=li, **kw)[0, ..., :3]

    def frame(self) -> np.ndarray:
        """The image ``(H, W, 3)`` float32: ``tr.render`` of the mesh with the current camera, mode, light and background."""
        with self.torch.no_grad():
            return self._render().cpu().numpy().astype(np.float32)

    # -- event handlers (fractions of the window: x right, y down) --
    def on_drag(self, dx: float, dy: float, button: str = "left") -> None:
        """Mouse drag by ``(dx, dy)`` window fractions: ``left`` orbits (a full width = 180 deg azimuth),
        ``right`` zooms (down = out), ``middle`` pans the look-at point in the image plane."""
        if button == "left":
            self.azimuth = (self.azimuth - 180.0 * dx + 180.0) % 360.0 - 180.0
            self.elevation = float(np.clip(self.elevation + 180.0 * dy, -89.0, 89.0))
        elif button == "right":
            self.distance = float(np.clip(self.distance * math.exp(2.0 * dy), 0.2, 100.0))
        elif button == "middle":
            cam = self.camera()
            R = cam.R[0].detach().cpu().numpy().astype(np.float64)  # rows: x right, y down, z forward
            scale = 2.0 * self.distance * math.tan(math.radians(self.fov) / 2)
            self.at = self.at - scale * (dx * R[0] + dy * R[1])
        else:
            raise ValueError(f"on_drag: button must be 'left', 'right' or 'middle', got {button!r}")
        self.version += 1

    def on_scroll(self, delta: float) -> None:
        """Mouse wheel: positive ``delta`` zooms in (distance x 0.9 per unit)."""
        self.distance = float(np.clip(self.distance * 0.9 ** float(delta), 0.2, 100.0))
        self.version += 1

    def on_key(self, key: str) -> None:
        """Key press (see the module docstring for the bindings); unknown keys are ignored."""
        from .live import _key_name

        k = _key_name(key)
        if k == "left":
            self.azimuth -= 10.0
        elif k == "right":
            self.azimuth += 10.0
        elif k == "up":
            self.elevation = min(self.elevation + 10.0, 89.0)
        elif k == "down":
            self.elevation = max(self.elevation - 10.0, -89.0)
        elif k in ("=", "+"):
            self.on_scroll(1.0)
        elif k == "-":
            self.on_scroll(-1.0)
        elif k in ("w", "a", "s", "d"):
            dx, dy = {"w": (0, -0.05), "s": (0, 0.05), "a": (-0.05, 0), "d": (0.05, 0)}[k]
            self.on_drag(dx, dy, "middle")
        elif k == "m":
            self.set_mode(MODES[(MODES.index(self.mode) + 1) % len(MODES)])
        elif k in tuple(str(i + 1) for i in range(len(MODES))):
            self.set_mode(MODES[int(k) - 1])
        elif k == "g":
            self.show_gradient = not self.show_gradient
        elif k == "p":
            self.grad_param = GRAD_PARAMS[(GRAD_PARAMS.index(self.grad_param) + 1) % len(GRAD_PARAMS)]
        elif k == "t":
            self.set_target()
        elif k == "c":
            self.target = None
        elif k == "r":
            self.azimuth, self.elevation, self.distance = (self._home[n] for n in ("azimuth", "elevation", "distance"))
            self.at = np.zeros(3)
        else:
            return
        self.version += 1

    # -- gradient view --
    def light_jacobian(self, param: str = "light_direction", h: float = 1e-2) -> np.ndarray:
        """``dI/dp`` per pixel, ``(H, W, 3 channels, 3 components)``, by central differences of ``tr.render``."""
        if param not in ("light_direction", "light_color"):
            raise ValueError(f"light_jacobian: param must be 'light_direction' or 'light_color', got {param!r}")
        base = self.light_direction if param == "light_direction" else self.light_color
        cols = []
        with self.torch.no_grad():
            for k in range(3):
                e = np.zeros(3)
                e[k] = h
                kw = [dict(direction=base + s * e) if param == "light_direction" else dict(color=base + s * e) for s in (1, -1)]
                ip = self._render(lights=self.lights(**kw[0])).cpu().numpy().astype(np.float64)
                im = self._render(lights=self.lights(**kw[1])).cpu().numpy().astype(np.float64)
                cols.append((ip - im) / (2 * h))
        return np.stack(cols, -1)

    def vertex_gradient(self) -> np.ndarray:
        """``dL/dv`` ``(V, 3)`` through the renderer, ``L = mean((I - T)^2)`` with a target, else ``mean(I)``."""
        t = self.torch
        v = self.verts.clone().requires_grad_(True)
        img = self._render(verts=v)
        loss = ((img - t.from_numpy(self.target).to(self.device)) ** 2).mean() if self.target is not None else img.mean()
        (g,) = t.autograd.grad(loss, v)
        return g.cpu().numpy()

    def gradient_view(self, param: str | None = None, component: int | None = None) -> np.ndarray:
        """Per-pixel gradient magnitude ``(H, W)`` float32 for ``param`` (default ``grad_param``); see the module docstring.

        ``component`` (0-2, light parameters only) returns that component's signed value instead of the norm.
        For ``vertices`` it is the per-vertex ``|dL/dv|`` interpolated over the visible surface.
        """
        param = param or self.grad_param
        if param not in GRAD_PARAMS:
            raise ValueError(f"gradient_view: param must be one of {GRAD_PARAMS}, got {param!r}")
        if param == "vertices":
            g = np.linalg.norm(self.vertex_gradient(), axis=1)
            col = self.torch.from_numpy(np.repeat(g[:, None], 3, 1).astype(np.float32)).to(self.device)
            with self.torch.no_grad():
                img = self._render(colors=col, lights=None, mode="hard")
                img = img.cpu().numpy()
            import taichirast as tr

            with self.torch.no_grad():  # background pixels: zero (the render's background colour is not a gradient)
                _, frags = tr.render(self.verts, self.faces, self.camera(), mode="hard", return_fragments=True)
            return (img[..., 0] * (frags.face_id[0].cpu().numpy() >= 0)).astype(np.float32)
        J = self.light_jacobian(param)  # (H, W, C, K)
        if self.target is not None:
            dL_dI = 2.0 * (self.frame().astype(np.float64) - self.target) / self.target.size
            contrib = np.einsum("hwc,hwck->hwk", dL_dI, J)
        else:
            contrib = J.sum(2) if component is not None else None
        if component is not None:
            return contrib[..., int(component)].astype(np.float32)
        if contrib is not None:
            return np.linalg.norm(contrib, axis=-1).astype(np.float32)
        return np.sqrt((J ** 2).sum((2, 3))).astype(np.float32)

    def gradient_image(self, param: str | None = None) -> np.ndarray:
        """:meth:`gradient_view` as an RGB heat map ``(H, W, 3)`` (black = zero, scaled by its maximum)."""
        return heat_colormap(self.gradient_view(param))

    def image(self) -> np.ndarray:
        """What the window shows: :meth:`frame`, or :meth:`gradient_image` when the gradient view is on."""
        return self.gradient_image() if self.show_gradient else self.frame()


class Viewer:
    """A window (or offscreen canvas) around a :class:`ViewerState`.

    Args:
        state: the :class:`ViewerState`.
        show_window: open a window (default: when a display is found); otherwise render offscreen.
        backend: ``'ggui' | 'gui' | 'image'`` (see :func:`taichirast.live.gui_backend`).
    """

    def __init__(self, state: ViewerState, show_window: bool | None = None, backend: str | None = None,
                 title: str = "taichirast viewer"):
        self.state = state
        self.show_window = has_display() if show_window is None else bool(show_window)
        self.window_size = self.layout(state.size, self.show_window)
        self.display = Display(title, self.window_size, show_window=self.show_window, backend=backend)
        self._mouse = None
        self._drawn = None
        self._img = None
        self.frames = 0

    PANEL_WIDTH = 320  # pixels right of the image for the ImGui panel (window only)
    MIN_WIDTH = 768
    MIN_HEIGHT = 420

    @classmethod
    def layout(cls, image_size, show_window: bool = True) -> tuple:
        """The window size ``(H, W)`` for an image of ``image_size (H, W)``: with a window, the image on
        the left and the panel beside it (at least :attr:`PANEL_WIDTH` px, the whole at least
        :attr:`MIN_WIDTH` x :attr:`MIN_HEIGHT`), so the panel never covers the image; offscreen, the image size."""
        H, W = int(image_size[0]), int(image_size[1])
        if not show_window:
            return (H, W)
        return (max(H, cls.MIN_HEIGHT), max(W + cls.PANEL_WIDTH, cls.MIN_WIDTH))

    def _canvas(self, img) -> np.ndarray:
        """The image placed top-left on the window-sized canvas (panel area dark grey)."""
        if tuple(img.shape[:2]) == tuple(self.window_size):
            return img
        canvas = np.full(tuple(self.window_size) + (3,), 0.12, np.float32)
        canvas[:img.shape[0], :img.shape[1]] = img[..., :3]
        return canvas

    def draw(self) -> np.ndarray:
        """Render the state's :meth:`~ViewerState.image` into the window; returns that image."""
        key = (self.state.version, self.state.show_gradient, self.state.grad_param)
        if self._drawn != key or self._img is None:
            self._img = self.state.image()
        img = self._img
        self.display.show(self._canvas(img))
        self._drawn = key
        self.frames += 1
        return img

    def read(self) -> np.ndarray:
        """The image's pixels as the window holds them, ``(H, W, 3)`` float32, row 0 at the top (8-bit
        precision with GGUI; the panel area beside the image is left out)."""
        H, W = self.state.size
        return self.display.read()[:H, :W]

    def screenshot(self, path) -> str:
        """Draw and write the window's pixels to ``path`` (PNG)."""
        from .io import save_image

        self.draw()
        return save_image(path, self.read())

    def _panel(self):
        """The ImGui panel (GGUI window only): mode, sigma / gamma, light, gradient view."""
        win = self.display.window
        if win is None or not self.show_window:
            return
        s = self.state
        gui = win.get_gui()
        Hw, Ww = self.window_size
        x0 = self.state.size[1] / Ww  # the panel sits right of the image, full height
        with gui.sub_window("taichirast", x0, 0.0, 1.0 - x0, 1.0) as w:
            w.text(f"mode: {s.mode}")
            for m in MODES:
                if w.button(m):
                    s.set_mode(m)
            ls = w.slider_float("log10 sigma", math.log10(s.sigma), -6.0, -1.0)
            lg = w.slider_float("log10 gamma", math.log10(s.gamma), -6.0, -1.0)
            d = [w.slider_float(f"light dir {a}", float(s.light_direction[i]), -1.0, 1.0) for i, a in enumerate("xyz")]
            c = [w.slider_float(f"light {a}", float(s.light_color[i]), 0.0, 1.0) for i, a in enumerate("rgb")]
            show = w.checkbox("gradient view", s.show_gradient)
            if w.button(f"param: {s.grad_param}"):
                s.on_key("p")
            if w.button("target = current"):
                s.set_target()
        new = (10 ** ls, 10 ** lg, np.array(d), np.array(c), show)
        old = (s.sigma, s.gamma, s.light_direction, s.light_color, s.show_gradient)
        if any(not np.allclose(a, b) for a, b in zip(new[:4], old[:4])) or new[4] != old[4]:
            s.sigma, s.gamma, s.light_direction, s.light_color, s.show_gradient = new
            s.version += 1

    def handle_input(self) -> None:
        """Poll keys and mouse (window only) and forward them to the state's handlers."""
        if not self.show_window:
            return
        import taichi as ti

        for k in self.display.poll():
            if k == "escape":
                self.display.close()
                return
            self.state.on_key(k)
        src = self.display.window if self.display.window is not None else self.display.gui
        if src is None:
            return
        mod = ti.ui if self.display.window is not None else ti.GUI
        x, y = src.get_cursor_pos()
        (Hw, Ww), (H, W) = self.window_size, self.state.size
        pos = (float(x) * Ww / W, (1.0 - float(y)) * Hw / H)  # in image widths / heights, y down
        button = next((b for b, n in ((mod.LMB, "left"), (mod.RMB, "right"), (mod.MMB, "middle")) if src.is_pressed(b)), None)
        if button is not None and self._mouse is None and not (0.0 <= pos[0] <= 1.0 and 0.0 <= pos[1] <= 1.0):
            return  # a press on the panel beside the image is the panel's, not a camera drag
        if button is not None and self._mouse is not None and self._mouse[1] == button:
            dx, dy = pos[0] - self._mouse[0][0], pos[1] - self._mouse[0][1]
            if dx or dy:
                name = {mod.LMB: "left", mod.RMB: "right", mod.MMB: "middle"}[button]
                self.state.on_drag(dx, dy, name)
        self._mouse = (pos, button) if button is not None else None

    def run(self, max_frames: int | None = None) -> None:
        """Event loop until the window closes (or ``max_frames`` frames); re-renders only when something changed."""
        n = 0
        while self.display.running and (self.display.window is not None or self.display.gui is not None):
            self.handle_input()
            if self.display.window is None and self.display.gui is None:
                break
            self._panel()
            self.draw()
            n += 1
            if max_frames is not None and n >= max_frames:
                break

    def close(self) -> None:
        """Close the window."""
        self.display.close()


def view(path, size=(512, 512), mode="hard", show_window=None, out=None, target=None, texture=True, **state_kw):
    """Open the viewer on a mesh file (or ``builtin:NAME``; an OBJ's diffuse texture is drawn unless
    ``texture=False``). Without a display, write ``out`` (default ``view.png``) and
    ``<out>_gradient.png`` offscreen and return their paths."""
    v, f, tex = load_view_scene(path, texture=bool(texture))
    state = ViewerState(v, f, size=size, mode=mode, texture=tex, **state_kw)
    if target is not None:
        from .io import load_texture_image

        state.set_target(load_texture_image(target))
    show = has_display() if show_window is None else show_window
    viewer = Viewer(state, show_window=show)
    if show:
        viewer.run()
        viewer.close()
        return []
    out = out or "view.png"
    p1 = viewer.screenshot(out)
    state.show_gradient = True
    root, ext = os.path.splitext(out)
    p2 = viewer.screenshot(f"{root}_gradient{ext or '.png'}")
    viewer.close()
    return [p1, p2]
